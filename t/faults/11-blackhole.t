# Issue 10: a first host that drops packets (powered off, firewalled: no
# reset, no answer) costs threads_pg_host_connect_timeout, then the next
# host serves.  The silent host is a test host of our own: the far end of
# a veth pair, moved into a network namespace this test makes and left
# down, so nothing answers for its address and nothing leaves the machine.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

my $NS = "thr-bh-$$";
my ($L, $R) = ("thrbh$$" =~ s/^(.{1,11}).*/$1/r . 'a', "thrbh$$" =~ s/^(.{1,11}).*/$1/r . 'b');
my $HOST = '198.18.0.2';                 # the namespace's end: silent
sub ip { system('ip', @_) == 0 }
my $made = $> == 0
    && ip('netns', 'add', $NS)
    && ip('link', 'add', $L, 'type', 'veth', 'peer', 'name', $R)
    && ip('addr', 'add', '198.18.0.1/30', 'dev', $L)
    && ip('link', 'set', $L, 'up')
    && ip('link', 'set', $R, 'netns', $NS);
END {
    local $?;
    system("ip link del $L 2>/dev/null");
    system("ip netns del $NS 2>/dev/null");
}
$ENV{TEST_NGINX_SILENT_HOST} = $HOST;
unless ($made) {
    print "1..0 # SKIP no network namespace could be made here\n";
    exit 0;
}

my %scenario;

$scenario{'blackhole'} = sub {
    my @st;
    my $t0 = time;
    my ($st, $body, $h, $secs) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'the host after the silent one serves');
    cmp_ok($secs, '>=', 0.4, sprintf('the silent host was tried first'
        . ' (%.2f s)', $secs));
    cmp_ok($secs, '<', 2,
        sprintf('the silent host cost its own timeout only (%.2f s)', $secs));
    push @st, $st;
    for (1 .. 20) {
        push @st, (api('GET', '/v1/threads', undef, 'k1'))[0];
    }
    is(scalar(grep { $_ != 200 } @st), 0, 'every request a 200 (sent '
        . scalar(@st) . ')');
    diag(sprintf('black-holed first host: sent %d, 200 x %d, first answer'
        . ' in %.2f s', scalar @st, scalar(grep { $_ == 200 } @st), $secs));
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: a first host that drops packets costs its own timeout only
--- http_config
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=$TEST_NGINX_SILENT_HOST,127.0.0.1 port=5432,$TEST_NGINX_PG_PORT dbname=threads_faults user=postgres";
    threads_pg_connect_timeout 10s;
    threads_pg_host_connect_timeout 500ms;
--- request
GET /v1/nothing
--- more_headers
Authorization: Bearer k1
--- scenario: blackhole
--- error_code: 404
--- timeout: 30
--- error_log
database host 0 did not answer in time
--- no_error_log
[alert]
