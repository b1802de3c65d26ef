# Self-test of the fallback runner (t/runner): TEST_NGINX_LOAD_MODULES.
# Uses Debian's dynamic stream module (package libnginx-mod-stream) if it is
# installed; skipped otherwise.
my $stream;
BEGIN {
    $stream = '/usr/lib/nginx/modules/ngx_stream_module.so';
    if (-f $stream) {
        $ENV{TEST_NGINX_LOAD_MODULES} = join ' ', grep { defined && length }
            $ENV{TEST_NGINX_LOAD_MODULES}, $stream;
    }
}

use Test::Nginx::Socket;

plan skip_all => "$stream not installed" unless -f $stream;
plan tests => 2 * blocks();

run_tests();

__DATA__

=== TEST 1: a stream proxy (from the loaded module) relays a request
--- main_config
    stream {
        server {
            listen unix:$TEST_NGINX_SERVER_ROOT/logs/stream.sock;
            proxy_pass 127.0.0.1:$TEST_NGINX_SERVER_PORT;
        }
    }
--- config
    location = /t {
        proxy_pass http://unix:$TEST_NGINX_SERVER_ROOT/logs/stream.sock:/echo;
    }
    location = /echo {
        return 200 "via stream, from $remote_addr\n";
    }
--- request
GET /t
--- response_body
via stream, from 127.0.0.1
