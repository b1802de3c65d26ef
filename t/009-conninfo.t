# Connection strings: multi-host lists (libpq moves to another socket while
# connecting), host names resolved when nginx reads its configuration, and
# a bad string refused at start.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

our $CONF = <<'CONF';
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                       "";
    }
CONF
# scripts/test-citus: the writes through the functions
$CONF .= "    threads_pg_citus on;\n" if $ENV{TEST_NGINX_PG_CITUS};

run_tests();

__DATA__

=== TEST 1: the first host refuses, the second serves
--- http_config eval
$main::CONF . 'threads_pg_conninfo "host=127.0.0.1,127.0.0.1 port=1,$TEST_NGINX_PG_PORT dbname=threads_test user=postgres";'
--- request
POST /v1/threads
{"metadata":{"via":"second host"}}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => { via => 'second host' } }
--- no_error_log
[alert]

=== TEST 2: read-write is found among several hosts
--- http_config eval
$main::CONF . 'threads_pg_conninfo "host=127.0.0.1,127.0.0.1 port=1,$TEST_NGINX_PG_PORT dbname=threads_test user=postgres target_session_attrs=read-write";'
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 3: a host name is resolved at configuration time
--- http_config eval
$main::CONF . 'threads_pg_conninfo "host=localhost port=$TEST_NGINX_PG_PORT dbname=threads_test user=postgres";'
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 4: no host answers: a quick JSON 503
--- http_config eval
$main::CONF . 'threads_pg_conninfo "host=127.0.0.1,127.0.0.1 port=1,2 dbname=threads_test user=postgres";'
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 503
--- response_headers
Retry-After: 1
Content-Type: application/json
--- json eval
{ error => { type => 'server_error', param => undef, code => undef } }
--- error_log
threads: cannot connect to the database
