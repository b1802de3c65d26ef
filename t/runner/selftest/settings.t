# Self-test of the fallback runner (t/runner): master_on, workers,
# worker_connections, log_level (global and per block), no_root_location,
# no_long_string.
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
worker_connections(128);
log_level('info');
no_root_location();
no_long_string();

add_response_body_check(sub {
    my ($block) = @_;
    my $pat = $block->conf_like;
    return unless defined $pat;
    open my $in, '<', server_root() . "/conf/nginx.conf" or die $!;
    my $conf = do { local $/; <$in> };
    like($conf, qr/$pat/m, $block->name . " - nginx.conf like");
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: no root location: the test can define "location /" itself
--- config
    location / {
        return 200 "my own root\n";
    }
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /
--- response_body
my own root
--- conf_like eval
qr/^worker_processes\s+2;\n(?s:.*)^master_process on;\n(?s:.*)worker_connections\s+128;/m
--- no_error_log
[debug]



=== TEST 2: the master and 2 workers serve requests
--- request eval
["GET /t", "GET /t", "GET /t"]
--- response_body eval
["ok\n", "ok\n", "ok\n"]
--- conf_like: ^error_log \S+ info;$



=== TEST 3: per-block log_level
--- config
    location = /t {
        return 200 "ok\n";
    }
--- log_level: debug
--- request
GET /t
--- response_body
ok
--- error_log
[debug]
--- conf_like: ^error_log \S+ debug;$
