# Faults: a client that leaves mid-query, and a database that stops and
# comes back.  Neither may crash the worker, hang a request, or leak a
# connection.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

my %scenario;

$scenario{'client-abort'} = sub {
    my ($worker) = grep { $_ } (nginx_pids())[-1];
    my $locked = seed_thread(key => 'k1');

    my ($st) = api('GET', "/v1/threads/$locked", undef, 'k1');
    is($st, 200, 'warm-up request');
    my $fds = fd_count($worker);

    my $holder = lock_row_in_background($locked, 2 * slow_factor());
    my $sock = raw_request('POST', "/v1/threads/$locked",
        '{"metadata":{"abandoned":"1"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5 * slow_factor()),
        'the modify waits on the lock');
    close $sock;                        # the client goes away mid-query

    waitpid($holder, 0);
    ok(wait_for(sub { module_waiting_on_lock() == 0 }, 5 * slow_factor()),
        'the abandoned query finished');

    ($st) = api('GET', "/v1/threads/$locked", undef, 'k1');
    is($st, 200, 'the worker still answers');
    is(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name"
        . " = 'ngx_http_threads_module' AND state <> 'idle'"), 0,
        'no module session is left busy or in a transaction');
    cmp_ok(module_backends(), '<=', 8, 'no more sessions than the pool');
    ok(wait_for(sub { fd_count($worker) <= $fds }, 2),
        "no descriptor leaked ($fds before, " . fd_count($worker) . " after)");
};

$scenario{'database-down'} = sub {
    my $t = seed_thread(key => 'k1');
    my ($st, $body, $h, $secs) = api('GET', "/v1/threads/$t", undef, 'k1');
    is($st, 200, 'before the outage');

    pg_ctl('stop');
    my $ok = eval {
        for my $req (['GET', "/v1/threads/$t", undef],
                     ['POST', '/v1/threads', '{"metadata":{"lost":"?"}}'],
                     ['DELETE', "/v1/threads/$t", undef])
        {
            ($st, $body, $h, $secs) = api(@$req[0 .. 2], 'k1', 15);
            is($st, 503, "$req->[0] during the outage is a 503");
            is($h->{'content-type'}, 'application/json', 'as JSON');
            is($h->{'retry-after'}, '1', 'with Retry-After');
            is(ref $body && $body->{error}{type}, 'server_error',
                'type server_error');
            unlike(ThreadsTest::json()->encode($body),
                qr/(?i)postgres|refused|socket|5434|5435/,
                'no database detail reaches the client');
            cmp_ok($secs, '<', 3 * slow_factor(),
                "answered in ${secs}s, within the connect timeout");
        }
        1;
    };
    pg_ctl('start');
    die $@ unless $ok;

    # service resumes by itself
    ok(wait_for(sub { (api('GET', "/v1/threads/$t", undef, 'k1'))[0] == 200 },
        3 * slow_factor()), 'service resumes once the database is back');
    ($st) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'creates work again');
    is(psql("SELECT count(*) FROM threads WHERE metadata->>'lost' = '?'"), 0,
        'nothing was half-written during the outage');
};

$scenario{'query-timeout'} = sub {
    my $locked = seed_thread(key => 'k1');
    my $holder = lock_row_in_background($locked, 3 * slow_factor());

    my ($st, $body, $h, $secs) = api('POST', "/v1/threads/$locked",
        '{"metadata":{"late":"1"}}', 'k1');
    is($st, 504, 'a statement past the query timeout is a 504');
    is(ref $body && $body->{error}{type}, 'server_error', 'as a JSON server_error');
    cmp_ok($secs, '<', 2 * slow_factor(), "answered in ${secs}s");

    ($st) = api('GET', "/v1/threads/$locked", undef, 'k1');
    is($st, 200, 'the worker goes on serving');
    waitpid($holder, 0);
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: a client that leaves mid-query leaks nothing
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: client-abort
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
--- error_log
client prematurely closed connection

=== TEST 2: a stopped database gives JSON 503s, then service resumes
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: database-down
--- error_code: 404
--- timeout: 120
--- no_error_log
[alert]
[crit]
--- error_log eval
qr/database unavailable, answering 503.*request_id: [0-9a-f]{32}/

=== TEST 3: a statement past threads_pg_query_timeout is a JSON 504
--- http_config eval
$ThreadsTest::HTTP_CONFIG . "    threads_pg_query_timeout 500ms;\n"
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: query-timeout
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
--- error_log
threads: database query timed out
