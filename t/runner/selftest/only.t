# Self-test of the fallback runner (t/runner): the ONLY marker (Test::Base);
# "I found ONLY" on stderr is expected here.
use Test::Nginx::Socket;

plan tests => 2;

run_tests();

__DATA__

=== TEST 1: never runs (it would fail)
--- config
    location = /t {
        return 500;
    }
--- request
GET /t



=== TEST 2: the only one
--- ONLY
--- config
    location = /t {
        return 200 "only\n";
    }
--- request
GET /t
--- response_body
only
