# Writes whose bytes take seconds to reach the database (a slow link
# towards it; more of them than the socket's buffer holds), and a read
# given to the same connection meanwhile: the read's segment ends when its
# pass does, and what that leaves unsent still goes out on write events,
# so all are answered.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

# 2 MB/s from the module to the database: 4.5 s for the creates
our $PROXY = tcp_proxy_start($ENV{TEST_NGINX_PROXY_PORT}
    // die("TEST_NGINX_PROXY_PORT is not set: run scripts/test-faults\n"),
    $ENV{TEST_NGINX_PG_PORT}, 120, 0, 2e6);
END { local $?; tcp_proxy_stop($PROXY) }

our $CONF = proxied_config() . "    threads_pg_pool_size 1;\n    threads_pg_query_timeout 5s;\n";

my %scenario;

$scenario{'slow-upload'} = sub {
    my $t = seed_thread(key => 'k1');
    # below the 4 MB that a thread of their own sends
    my $text = "\xf0\x9f\x98\x80" x 256000;
    my $body = '{"metadata":{"up":"' . $$ . '"},"messages":['
        . join(',', map { '{"role":"user","content":"' . $text . '"}' } 1 .. 3) . ']}';
    my $t0 = time;
    # 9 MB in all: more than the socket's send buffer (4 MB at most)
    my @creates;
    for my $n (1 .. 3) {
        (my $b = $body) =~ s/"up":"/"up":"$n-/;
        push @creates, raw_request('POST', '/v1/threads', $b, 'k1');
        sleep 0.3;
    }
    sleep 1;            # validated, sent, still on their way
    my $read = raw_request('GET', "/v1/threads/$t", undef, 'k1');
    my @c = map { (read_until($_, 30) =~ m{^HTTP/1\.1 (\d+)})[0] // 0 } @creates;
    my ($r) = read_until($read, 30) =~ m{^HTTP/1\.1 (\d+)};
    my $secs = time - $t0;
    is_deeply(\@c, [ 200, 200, 200 ], 'the three 3 MB creates answered');
    is($r, 200, 'the retrieve sent behind them answered');
    is(psql("SELECT count(*) FROM threads WHERE metadata->>'up' LIKE '%-$$'"), 3,
        'each create stored once');
    cmp_ok($secs, '>', 3, sprintf('the link was slow: %.1f s', $secs));
    diag(sprintf('three 3 MB creates over a 2 MB/s link, a retrieve behind'
        . ' them: %s and %s in %.1f s', "@c", $r // '-', $secs));
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: a read behind a write still being sent: both answered
--- http_config eval
$main::CONF
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: slow-upload
--- error_code: 404
--- timeout: 90
--- no_error_log
[alert]
database query timed out
