# Self-test of the fallback runner (t/runner): request bodies, several
# requests per block, pipelined requests.  The request body is echoed back by
# proxying to this same server with the body in a request header.
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a body after the request line gets a Content-Length (trimmed)
--- config
    location = /echo {
        return 200 "method=$request_method len=$http_content_length body=$http_x_body\n";
    }
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body $request_body;
    }
--- request
POST /t
hello world
--- response_body
method=POST len=11 body=hello world



=== TEST 2: an explicit Content-Length keeps the body as it is
--- request eval
"POST /t\n  hi  "
--- more_headers
Content-Length: 6
--- response_body
method=POST len=6 body=hi



=== TEST 3: chunked request body via raw_request
--- raw_request eval
"POST /t HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
5\r
hello\r
6\r
 there\r
0\r
\r
"
--- response_body
method=POST len=11 body=hello there



=== TEST 4: raw_request sent as several packets
--- raw_request eval
["GET /echo HTTP/1.1\r\nHost: loc", "alhost\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.05
--- response_body
method=GET len= body=



=== TEST 5: several requests in one block (one connection each)
--- config
    location = /a {
        return 200 "a\n";
    }
    location = /b {
        return 201 "b:$http_x_n\n";
    }
--- request eval
["GET /a", "GET /b"]
--- more_headers eval
["X-N: 1", "X-N: 2"]
--- error_code eval
[200, 201]
--- response_body eval
["a\n", "b:2\n"]



=== TEST 6: pipelined requests on one keep-alive connection
--- config
    location = /a {
        return 200 "a:$connection_requests\n";
    }
    location = /b {
        ssi on;
        ssi_types text/plain;
        return 404 "b:$connection_requests<!--# echo var=\"uri\" -->\n";
    }
    location = /echo {
        return 200 "len=$http_content_length body=$http_x_body\n";
    }
    location = /post {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/echo;
        proxy_set_header X-Body $request_body;
    }
--- pipelined_requests eval
["GET /a", "GET /b", "POST /post\nabc", "GET /a"]
--- error_code eval
[200, 404, 200, 200]
--- response_headers eval
["Content-Length: 4", "!Content-Length", "", "X-None:"]
--- response_body eval
["a:1\n", "b:2/b\n", "len=3 body=abc\n", "a:4\n"]
