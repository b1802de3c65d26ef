# Issue 10: a pooler that gives the module's client connection a fresh
# server session (PgBouncer in transaction mode after its server
# connection was lost, or a reset by DISCARD ALL) leaves named prepared
# statements behind: every Execute then fails with SQLSTATE 26000.  The
# pool prepares again and retries once, so clients see no error at all.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

# one server connection behind one module connection: every statement of
# the module meets the same server session, until it is replaced
our $BOUNCER = pgbouncer_start(db => 'threads_faults', pool => 1);
END { local $?; pgbouncer_stop($BOUNCER) }

our $CONF = $ThreadsTest::HTTP_CONFIG
    =~ s/threads_pg_conninfo "[^"]*"/threads_pg_conninfo "host=127.0.0.1 port=\$TEST_NGINX_BOUNCER_PORT dbname=threads_faults user=postgres"/r
    . "    threads_pg_prepare on;\n    threads_pg_pool_size 1;\n";

sub api_at { my @r = ThreadsTest::api(@_); return $r[0] }

my %scenario;

$scenario{'reset'} = sub {
    my $http = HTTP::Tiny->new(timeout => 10);
    my $t = (ThreadsTest::api('POST', '/v1/threads', '{}', 'k1'))[1]{id};
    ok($t, 'a thread');
    my @ops = (
        ['GET', "/v1/threads/$t", undef],
        ['POST', "/v1/threads/$t", '{"metadata":{"a":"b"}}'],
        ['GET', '/v1/threads', undef],
        ['POST', "/v1/threads/$t/messages", '{"role":"user","content":"x"}'],
        ['GET', "/v1/threads/$t/messages", undef],
        ['POST', '/v1/threads', '{}'],
    );
    # every statement prepared on the server session
    is(api_at(@$_, 'k1'), 200, "warm: $_->[0] $_->[1]") for @ops;

    my (%seen, $rounds);
    for my $round (1 .. 3) {
        # the server session goes; PgBouncer opens another on demand
        my $killed = psql_at($ENV{TEST_NGINX_PG_PORT}, 'postgres',
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            . " WHERE datname = 'threads_faults'"
            . " AND pid <> pg_backend_pid()");
        cmp_ok($killed, '>=', 1, "round $round: the server session was ended");
        sleep 0.2;
        for my $op (@ops) {
            my $st = api_at(@$op, 'k1');
            $seen{$st}++;
        }
        $rounds++;
    }
    my $sent = $rounds * @ops;
    diag("session reset behind PgBouncer: sent $sent after $rounds resets: "
        . join(', ', map { "$_ x $seen{$_}" } sort keys %seen));
    is($seen{200} // 0, $sent, 'every request after a reset is a 200');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: prepared statements forgotten by a fresh server session are prepared again
--- http_config eval
$main::CONF
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: reset
--- error_code: 404
--- timeout: 60
--- error_log
forgot the prepared statements
--- no_error_log
[alert]
