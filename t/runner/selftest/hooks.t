# Self-test of the fallback runner (t/runner): add_response_body_check (JSON
# bodies), add_block_preprocessor, env_to_nginx, init, user_files, html_dir,
# server_root, server_port.
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();

env_to_nginx("SELFTEST_VAR=hello");

# A made-up section, as tests of the real module may use: "--- json" holds
# JSON that the response body must be equal to (as data, not as text).
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $want = $block->json;
    return unless defined $want;
    my $name = $block->name;
    my $got = eval { JSON::PP::decode_json($body // '') };
    ok(defined $got, "$name - body is JSON (req $req_idx)") or diag $@;
    is_deeply($got, JSON::PP::decode_json($want), "$name - JSON body (req $req_idx)");
});

# Another one: "--- conf_like" is a regex the generated nginx.conf must match.
add_response_body_check(sub {
    my ($block) = @_;
    my $pat = $block->conf_like;
    return unless defined $pat;
    open my $in, '<', server_root() . "/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    like($conf, qr/$pat/m, $block->name . " - nginx.conf like");
});

# Blocks without a request get "GET /t"; blocks without a config get one.
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(request => "GET /t") unless defined $block->request;
    if (!defined $block->config) {
        $block->set_value(config => <<'_EOC_');
    location = /t {
        return 200 '{"default": true}';
    }
_EOC_
    }
});

run_tests();

__DATA__

=== TEST 1: JSON body checked by add_response_body_check
--- config
    location = /t {
        return 200 '{"a": [1, 2, {"b": null}], "s": "x"}';
    }
--- json
{"s": "x", "a": [1, 2, {"b": null}]}



=== TEST 2: config and request both from the block preprocessor
--- json
{"default": true}



=== TEST 3: env_to_nginx, server_port in nginx.conf
--- conf_like eval
qr/^env SELFTEST_VAR=hello;\n(?s:.*)^\s*listen\s+${\ main::server_port() };/m
--- json
{"default": true}



=== TEST 4: init runs after nginx starts; html_dir
--- config
    location /files/ {
        alias html/;
    }
--- init
open my $out, '>', html_dir() . "/made_by_init.txt" or die $!;
print $out "from init\n";
close $out;
--- request
GET /files/made_by_init.txt
--- response_body
from init



=== TEST 5: user_files
--- config
    location /files/ {
        alias html/;
    }
--- user_files
>>> a.json
{"file": "a"}
>>> sub/b.txt
port $TEST_NGINX_SERVER_PORT
--- request eval
["GET /files/a.json", "GET /files/sub/b.txt"]
--- response_body eval
[qr/"file"/, "port $ENV{TEST_NGINX_SERVER_PORT}\n"]
