# Self-test of the fallback runner (t/runner): timeout, abort, wait.
use Test::Nginx::Socket 'no_plan';

timeout(5);
run_tests();

__DATA__

=== TEST 1: abort: nginx waits for a body that never comes; no failure
--- config
    location = /echo {
        return 200 "never\n";
    }
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
    }
--- raw_request eval
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 100\r\n\r\nhello"
--- timeout: 300ms
--- abort
--- ignore_response
--- wait: 0.1
--- error_log
client prematurely closed connection



=== TEST 2: a per-block timeout in seconds that does not expire
--- config
    location = /t {
        return 200 "quick\n";
    }
--- request
GET /t
--- timeout: 2
--- response_body
quick
--- no_error_log
client prematurely closed connection
