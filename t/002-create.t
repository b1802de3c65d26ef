# Create: optional bodies, stored fields, and messages written with their
# thread in one transaction.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

our $NOW = sub { my $t = shift; defined $t && $t =~ /^\d+$/ && abs($t - time) < 120 };
our $ID = qr/^thread_[A-Za-z0-9]{24}$/;

# The id of the thread the last response created, for SQL checks.
sub created { ThreadsTest::json()->decode($_[0])->{id} }

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->sql_check;
    my ($sql, $want) = split /\n---\n/, $block->sql_check;
    if ($sql =~ /:id/) {
        my $id = created($body);
        $sql =~ s/:id/'$id'/g;
    }
    chomp $want;
    is(psql($sql), $want, $block->name . ' - stored rows');
});

# A constraint the test DB enforces on messages only, so that a create can
# fail after its thread row was inserted: the whole statement must vanish.
psql("ALTER TABLE messages DROP CONSTRAINT IF EXISTS test_no_boom");
psql("ALTER TABLE messages ADD CONSTRAINT test_no_boom "
    . "CHECK (content::text NOT LIKE '%BOOM%') NOT VALID");
END { eval { psql("ALTER TABLE messages DROP CONSTRAINT IF EXISTS test_no_boom") } }

run_tests();

__DATA__

=== TEST 1: no body creates an empty thread
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- response_headers
Content-Type: application/json
--- json eval
{ id => $main::ID, object => 'thread', created_at => $main::NOW,
  metadata => {}, tool_resources => {} }

=== TEST 2: an empty body creates an empty thread
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer k1
Content-Length: 0
--- error_code: 200
--- json eval
{ id => $main::ID, metadata => {}, tool_resources => {} }

=== TEST 3: {} creates an empty thread
--- request
POST /v1/threads
{}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::ID, object => 'thread', metadata => {}, tool_resources => {} }

=== TEST 4: metadata and tool_resources are stored and returned
--- request
POST /v1/threads
{"metadata":{"user":"u1","tier":"gold"},"tool_resources":{"code_interpreter":{"file_ids":["file-1","file-2"]},"file_search":{"vector_store_ids":["vs_1"]}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::ID, metadata => { user => 'u1', tier => 'gold' },
  tool_resources => { code_interpreter => { file_ids => ['file-1', 'file-2'] },
                      file_search => { vector_store_ids => ['vs_1'] } } }
--- sql_check
SELECT metadata::text || ' ' || tool_resources::text FROM threads WHERE id = :id
---
{"tier": "gold", "user": "u1"} {"file_search": {"vector_store_ids": ["vs_1"]}, "code_interpreter": {"file_ids": ["file-1", "file-2"]}}

=== TEST 5: null metadata and tool_resources mean empty objects
--- request
POST /v1/threads
{"metadata":null,"tool_resources":null,"messages":null}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => {}, tool_resources => {} }

=== TEST 6: tool_resources keeps only the keys that were set
--- request
POST /v1/threads
{"tool_resources":{"file_search":{"vector_store_ids":["vs_9"]}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ tool_resources => sub { my $t = shift; CORE::join(',', sort keys %$t) eq 'file_search' } }

=== TEST 7: messages are stored with the thread, in order, as full messages
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"Hello"},{"role":"assistant","content":[{"type":"text","text":"Hi there"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}],"metadata":{"k":"v"}},{"role":"user","content":"third","attachments":[{"file_id":"file-9","tools":[{"type":"file_search"}]}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::ID, object => 'thread' }
--- sql_check
SELECT string_agg(role || ' ' || content::text || ' ' || attachments::text || ' ' || metadata::text || ' ' || (id ~ '^msg_[A-Za-z0-9]{24}$')::text, E'\n' ORDER BY seq) FROM messages WHERE thread_id = :id
---
user [{"text": {"value": "Hello", "annotations": []}, "type": "text"}] [] {} true
assistant [{"text": {"value": "Hi there", "annotations": []}, "type": "text"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}}] [] {"k": "v"} true
user [{"text": {"value": "third", "annotations": []}, "type": "text"}] [{"tools": [{"type": "file_search"}], "file_id": "file-9"}] {} true

=== TEST 8: messages share the thread's created_at and owner
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}
--- more_headers
Authorization: Bearer k7
--- error_code: 200
--- sql_check
SELECT count(*) || ' ' || bool_and(m.created_at = t.created_at) || ' ' || bool_and(m.owner = encode(sha256('k7'::bytea), 'hex')) FROM messages m JOIN threads t ON t.owner = m.owner AND t.id = m.thread_id WHERE t.id = :id
---
2 true true

=== TEST 9: the owner is stored as a hash of the key, never the key
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer secret-key-123
--- error_code: 200
--- sql_check
SELECT owner FROM threads WHERE id = :id
---
dc87f94e8f44b5018e54a588eebeaae61eebdb6c256f8f2f61b7c6ba347bca63

=== TEST 10: a thread whose messages fail is not written at all
--- request
POST /v1/threads
{"metadata":{"a":"b"},"messages":[{"role":"user","content":"ok"},{"role":"user","content":"x","bogus":1}]}
--- more_headers
Authorization: Bearer k-atomic
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'messages[1].bogus' } }
--- sql_check
SELECT count(*) FROM threads WHERE owner = encode(sha256('k-atomic'::bytea), 'hex')
---
0

=== TEST 11: a database failure after the thread row leaves nothing behind
--- request
POST /v1/threads
{"metadata":{"marker":"atomic"},"messages":[{"role":"user","content":"fine"},{"role":"user","content":"BOOM"}]}
--- more_headers
Authorization: Bearer k-atomic
--- error_code: 500
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'server_error', param => undef, code => undef,
  message => qr/^The server had an error/ } }
--- sql_check
SELECT count(*) FROM threads WHERE owner = encode(sha256('k-atomic'::bytea), 'hex')
---
0
--- error_log
threads: database error in "threads_thread_create"

=== TEST 12: database error text never reaches the client
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"BOOM"}]}
--- more_headers
Authorization: Bearer k-atomic
--- error_code: 500
--- response_body_unlike
(?i)constraint|violat|test_no_boom|postgres|sql

=== TEST 13: auth_request names the owner (the README's recipe)
--- config
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/auth-service;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
    location = /auth-service {
        if ($http_authorization = "Bearer team-key") {
            add_header X-Tenant team-a;
            return 204;
        }
        return 401;
    }
    location /v1/ {
        auth_request /_auth;
        auth_request_set $tenant $upstream_http_x_tenant;
        threads_api on;
        threads_owner $tenant;
        threads_owner_hash off;
    }
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer team-key
--- error_code: 200
--- sql_check
SELECT owner FROM threads WHERE id = :id
---
team-a

=== TEST 14: auth_request's refusal is a JSON 401
--- config
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/auth-service;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
    location = /auth-service {
        return 401;
    }
    location /v1/ {
        auth_request /_auth;
        auth_request_set $tenant $upstream_http_x_tenant;
        threads_api on;
        threads_owner $tenant;
    }
--- request
POST /v1/threads
--- more_headers
Authorization: Bearer wrong
--- error_code: 401
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'invalid_request_error', param => undef, code => undef } }
