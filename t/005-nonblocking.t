# The worker never blocks on the database: with one worker, a query held
# up by a row lock leaves every other request free to be answered; large
# results and large bodies do not stall.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Time::HiRes qw(time);

no_shuffle();
use_api_defaults();

our $BIG = seed_thread(key => 'k1',
    metadata => ThreadsTest::json()->encode({ map { ("k$_" => 'x' x 50000) } 1 .. 6 }));

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || ($block->scenario // '') ne 'row-lock';

    my $locked = seed_thread(key => 'k1');
    my $other = seed_thread(key => 'k1');
    my $holder = lock_row_in_background($locked,
        $ENV{TEST_NGINX_USE_VALGRIND} ? 15 : 4);

    # a modify of the locked thread goes in and waits in the database
    my $sock = raw_request('POST', "/v1/threads/$locked",
        '{"metadata":{"m":"1"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5 * slow_factor()),
        'the modify is waiting on the row lock');

    # meanwhile the same single worker answers others at once
    for my $n (1 .. 3) {
        my ($st, $data, $h, $secs) = api('GET', "/v1/threads/$other", undef, 'k1');
        is($st, 200, "retrieve $n answered while the modify waits");
        cmp_ok($secs, '<', 1 * slow_factor(), "retrieve $n took ${secs}s");
    }
    my ($st) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'a create is answered while the modify waits');
    is(module_waiting_on_lock(), 1, 'the modify still waits');

    # and the modify completes once the lock goes
    local $/;
    my $resp = <$sock> // '';
    close $sock;
    like($resp, qr{^HTTP/1\.1 200}, 'the modify completes after the lock');
    like($resp, qr/"m": "1"/, 'with the new metadata');
    waitpid($holder, 0);
});

run_tests();

__DATA__

=== TEST 1: a query waiting on a lock blocks nothing else in the worker
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: row-lock
--- error_code: 404
--- timeout: 30

=== TEST 2: a result larger than 64 KB arrives whole
--- request eval
"GET /v1/threads/$main::BIG"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::BIG, metadata => { map { ("k$_" => 'x' x 50000) } 1 .. 6 } }

=== TEST 3: large results, many times over one connection
--- pipelined_requests eval
[ map { "GET /v1/threads/$main::BIG" } 1 .. 5 ]
--- more_headers
Authorization: Bearer k1
--- error_code eval
[ (200) x 5 ]
--- response_body_like eval
[ (qr/"k6" : "x{50000}"|"k6": "x{50000}"/) x 5 ]
