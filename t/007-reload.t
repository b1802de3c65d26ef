# nginx -s reload with open pool connections and a query in flight: old
# workers finish their requests, close their database sessions and exit.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

master_on();
workers(2);
no_shuffle();
use_api_defaults();

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->scenario;

    my ($master, @old) = nginx_pids();
    is(scalar @old, 2, 'two workers before the reload');

    my $t = seed_thread(key => 'k1');
    for (1 .. 20) {
        my ($st) = api('GET', "/v1/threads/$t", undef, 'k1');
        is($st, 200, 'request before the reload') if $_ == 20;
    }
    cmp_ok(module_backends(), '>=', 1, 'pool connections are open');

    # a query in flight across the reload
    my $holder = lock_row_in_background($t, 2 * slow_factor());
    my $sock = raw_request('POST', "/v1/threads/$t",
        '{"metadata":{"across":"reload"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5), 'a query is in flight');

    kill 'HUP', $master;

    local $/;
    my $resp = <$sock> // '';
    close $sock;
    like($resp, qr{^HTTP/1\.1 200}, 'the in-flight request completes');
    waitpid($holder, 0);

    ok(wait_for(sub { !grep { kill 0, $_ } @old }, 5 * slow_factor()),
        'old workers exit within 5 seconds');
    my (undef, @new) = nginx_pids();
    is(scalar @new, 2, 'two new workers');

    my ($st, $data) = api('GET', "/v1/threads/$t", undef, 'k1');
    is($st, 200, 'requests succeed after the reload');
    is($data->{metadata}{across}, 'reload', 'the in-flight write is there');
    ok(wait_for(sub { module_backends() <= 2 * 8 }, 5),
        'no more sessions than workers x pool size');
});

run_tests();

__DATA__

=== TEST 1: reload with open pool connections
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: reload
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]
