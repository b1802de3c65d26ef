# Self-test of the fallback runner (t/runner): basic requests and checks.
# Must pass unchanged under the real Test::Nginx::Socket too.
use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: exact response body, default status check
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello



=== TEST 2: error_code and response_body_like
--- config
    location = /t {
        return 404;
    }
--- request
GET /t
--- error_code: 404
--- response_body_like: 404 Not Found



=== TEST 3: response_headers, present and absent
--- config
    location = /t {
        add_header X-Foo "bar baz";
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-Foo: bar baz
Content-Type: text/plain
!X-Missing
--- response_body
ok



=== TEST 4: response_headers_like and raw_response_headers_like
--- config
    location = /t {
        add_header X-Num 12345;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
X-Num: \d+
Server: nginx/.*
--- raw_response_headers_like: ^HTTP/1.1 200 OK\r\n
--- raw_response_headers_unlike: X-Num: \D
--- response_body
ok



=== TEST 5: more_headers, comment lines and leading blanks in the request
--- config
    location = /t {
        return 200 "foo=$http_x_foo bar=$http_x_bar conn=$http_connection host=$host\n";
    }
--- request
    # a comment line
    GET /t
--- more_headers
X-Foo: hello
# skipped comment
X-Bar: world
--- response_body
foo=hello bar=world conn=close host=localhost



=== TEST 6: request eval and response_body eval
--- config
    location = /t {
        return 200 "a=$arg_a\tend";
    }
--- request eval
"GET /t?a=" . ("x" x 3)
--- response_body eval
"a=xxx\tend"



=== TEST 7: response_body eval with a regex, response_body_like eval
--- config
    location = /t {
        return 200 "number 42 here";
    }
--- request
GET /t
--- response_body eval
qr/number \d+/



=== TEST 8: response_body_like with a regex from eval
--- config
    location = /t {
        return 200 "Number 42 here";
    }
--- request
GET /t
--- response_body_like eval
qr/^number \d+ here$/i



=== TEST 9: HEAD request has no body
--- config
    location = /t {
        return 200 "not sent for HEAD\n";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 18
--- response_body



=== TEST 10: http_config is placed in the http block
--- http_config
    map $uri $mapped {
        default  "unmapped";
        /t       "mapped";
    }
--- config
    location = /t {
        return 200 "$mapped\n";
    }
--- request
GET /t
--- response_body
mapped



=== TEST 11: main_config is placed at the top level
--- main_config
    thread_pool selftest_pool threads=2;
--- config
    location = /index.html {
        root html;
        aio threads=selftest_pool;
    }
--- request
GET /index.html
--- response_body_like: It works!



=== TEST 12: $TEST_NGINX_* in config and expected body, $ServerPort
--- config
    location = /t {
        return 200 "port=$TEST_NGINX_SERVER_PORT root=$TEST_NGINX_SERVER_ROOT\n";
    }
--- request
GET /t
--- response_body
port=$ServerPort root=$TEST_NGINX_SERVER_ROOT



=== TEST 13: the default root location serves html/index.html
--- config
--- request
GET /
--- response_body_like: ^<html><head><title>It works!</title>
--- no_error_log
[error]



=== TEST 14: chunked response (ssi drops Content-Length)
--- config
    location = /t {
        ssi on;
        ssi_types text/plain;
        return 200 'a<!--# echo var="uri" -->b';
    }
--- request
GET /t
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body chomp
a/tb



=== TEST 15: response_body_unlike, error_code_like
--- config
    location = /t {
        return 200 "all good here\n";
    }
--- request
GET /t
--- response_body_unlike: error|fail
--- error_code_like: ^2\d\d$



=== TEST 16: $TEST_NGINX_RAND_PORT_N: one free port for all sections of a block
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            return 200 "backend\n";
        }
    }
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
    }
--- request
GET /t
--- response_body
backend
