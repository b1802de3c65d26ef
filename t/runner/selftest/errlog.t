# Self-test of the fallback runner (t/runner): error.log checks.
use Test::Nginx::Socket;

repeat_each(2);

plan tests => repeat_each() * (2 * blocks() + 6);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: error_log lines (string and regex) for a missing file
--- config
    location /files/ {
        alias html/;
    }
--- request
GET /files/missing.html
--- error_code: 404
--- error_log eval
["No such file or directory", qr/\[error\] .*?open\(\) ".*?missing\.html" failed/]
--- no_error_log
[alert]
[crit]



=== TEST 2: error_log as a multi-line list; the same config is reused
--- request
GET /files/missing2.html
--- error_code: 404
--- error_log
missing2.html
(2: No such file or directory)



=== TEST 3: no_error_log only sees what this block appended
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- no_error_log eval
[qr/No such file/, "[error]"]



=== TEST 4: a 413 is logged
--- config
    location = /t {
        client_max_body_size 10;
        return 200 "should not get here\n";
    }
--- request
POST /t
this body is longer than ten bytes
--- error_code: 413
--- error_log
client intended to send too large body
