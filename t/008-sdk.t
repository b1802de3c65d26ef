# The stock OpenAI Node SDK against the module: create, retrieve, update,
# delete and its error classes (t/sdk/check.mjs).  scripts/test installs
# the SDK with npm; without it this file is skipped.
use lib 't/lib';
use Test::Nginx::Socket;
use ThreadsTest;

if (!-d 't/sdk/node_modules/openai' || system('node --version >/dev/null 2>&1') != 0) {
    plan skip_all => 'the OpenAI Node SDK is not installed (npm ci --prefix t/sdk)';
} else {
    plan 'no_plan';
}

use_api_defaults();

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry;
    my $port = ThreadsTest::nginx_port();
    my $out = `node t/sdk/check.mjs http://127.0.0.1:$port/v1 2>&1`;
    is($?, 0, 'the SDK checks pass') or diag($out);
    like($out, qr/^ok \d+ - delete$/m, 'the SDK deleted a thread');
});

run_tests();

__DATA__

=== TEST 1: the OpenAI Node SDK works unchanged
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- timeout: 60
