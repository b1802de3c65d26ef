# Self-test of the fallback runner (t/runner): the LAST marker (Test::Base).
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: runs
--- config
    location = /t {
        return 200 "one\n";
    }
--- request
GET /t
--- response_body
one



=== TEST 2: runs, and is the last one
--- LAST
--- config
    location = /t {
        return 200 "two\n";
    }
--- request
GET /t
--- response_body
two



=== TEST 3: never runs (it would fail)
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never
