# The stock OpenAI Node SDK's client.conversations against the module, every
# response validated against openapi.yaml's schemas (t/sdk/conversations.mjs).
# scripts/test installs the SDK, Ajv and js-yaml with npm; without them, or
# without OpenAI's openapi.yaml (THREADS_OPENAPI, or shared/openapi/ beside
# the repository), this file is skipped.
use lib 't/lib';
use Test::Nginx::Socket;
use ThreadsTest;

my ($spec) = grep { defined && -f } ($ENV{THREADS_OPENAPI},
    '../shared/openapi/openapi.yaml', '/work/shared/openapi/openapi.yaml');

if (!-d 't/sdk/node_modules/openai' || !-d 't/sdk/node_modules/ajv'
    || system('node --version >/dev/null 2>&1') != 0)
{
    plan skip_all => 'the OpenAI Node SDK or Ajv is not installed (npm ci --prefix t/sdk)';
} elsif (!defined $spec) {
    plan skip_all => "OpenAI's openapi.yaml is not found (set THREADS_OPENAPI)";
} else {
    plan 'no_plan';
}

use_api_defaults();

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry;
    my $port = ThreadsTest::nginx_port();
    my $out = `node t/sdk/conversations.mjs http://127.0.0.1:$port/v1 $spec 2>&1`;
    is($?, 0, 'the SDK checks pass') or diag($out);
    like($out, qr/^ok \d+ - conversations\.delete$/m, 'the SDK deleted a conversation');
});

run_tests();

__DATA__

=== TEST 1: client.conversations works unchanged, its answers match OpenAI's schemas
--- request
GET /v1/conversations/conv_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- timeout: 90
