# Modify (replace, leave, reset) and delete, scoped by owner.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

our $A = seed_thread(key => 'k1', metadata => '{"a":"1","b":"2"}',
    tool_resources => '{"code_interpreter":{"file_ids":["f1"]}}');
our $D = seed_thread(key => 'k1', metadata => '{"keep":"me"}');
seed_message(key => 'k1', thread_id => $D, id => 'msg_' . ('d' x 24));
seed_message(key => 'k1', thread_id => $D, id => 'msg_' . ('e' x 24));

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->sql_check;
    my ($sql, $want) = split /\n---\n/, $block->sql_check;
    $sql =~ s/:A\b/'$main::A'/g;
    $sql =~ s/:D\b/'$main::D'/g;
    chomp $want;
    is(psql($sql), $want, $block->name . ' - stored rows');
});

run_tests();

__DATA__

=== TEST 1: metadata present replaces the stored value whole; tool_resources absent is left
--- request eval
"POST /v1/threads/$main::A\n" . '{"metadata":{"c":"3"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::A, object => 'thread', created_at => 1764200000,
  metadata => { c => '3' }, tool_resources => { code_interpreter => { file_ids => ['f1'] } } }
--- sql_check
SELECT metadata::text FROM threads WHERE id = :A
---
{"c": "3"}

=== TEST 2: tool_resources present replaces; metadata absent is left
--- request eval
"POST /v1/threads/$main::A\n" . '{"tool_resources":{"file_search":{"vector_store_ids":["vs_2"]}}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => { c => '3' }, tool_resources => { file_search => { vector_store_ids => ['vs_2'] } } }

=== TEST 3: {} changes nothing and returns the thread
--- request eval
"POST /v1/threads/$main::A\n{}"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::A, metadata => { c => '3' }, tool_resources => { file_search => { vector_store_ids => ['vs_2'] } } }

=== TEST 4: an empty body means {}
--- request eval
"POST /v1/threads/$main::A"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::A, metadata => { c => '3' } }

=== TEST 5: null resets to {}
--- request eval
"POST /v1/threads/$main::A\n" . '{"metadata":null,"tool_resources":null}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => {}, tool_resources => {} }
--- sql_check
SELECT metadata::text || tool_resources::text FROM threads WHERE id = :A
---
{}{}

=== TEST 6: messages cannot be given to modify
--- request eval
"POST /v1/threads/$main::A\n" . '{"messages":[]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'messages' } }

=== TEST 7: modify validates metadata as create does
--- request eval
"POST /v1/threads/$main::A\n" . '{"metadata":{"k":' . ('"' . ('x' x 513) . '"') . '}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'metadata.k' } }

=== TEST 8: modify refuses the vector_stores helper
--- request eval
"POST /v1/threads/$main::A\n" . '{"tool_resources":{"file_search":{"vector_stores":[{}]}}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unsupported_parameter' } }

=== TEST 9: another owner cannot modify the thread
--- request eval
"POST /v1/threads/$main::A\n" . '{"metadata":{"stolen":"yes"}}'
--- more_headers
Authorization: Bearer k2
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::A'." } }
--- sql_check
SELECT metadata::text FROM threads WHERE id = :A
---
{}

=== TEST 10: another owner cannot delete the thread
--- request eval
"DELETE /v1/threads/$main::D"
--- more_headers
Authorization: Bearer k2
--- error_code: 404
--- sql_check
SELECT count(*) FROM threads WHERE id = :D
---
1

=== TEST 11: delete answers thread.deleted and takes the messages along
--- request eval
"DELETE /v1/threads/$main::D"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- response_headers
Content-Type: application/json
--- json eval
{ id => $main::D, object => 'thread.deleted', deleted => 1 }
--- sql_check
SELECT (SELECT count(*) FROM threads WHERE id = :D) || ' ' || (SELECT count(*) FROM messages WHERE thread_id = :D)
---
0 0

=== TEST 12: a deleted thread cannot be retrieved
--- request eval
"GET /v1/threads/$main::D"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::D'.", type => 'invalid_request_error' } }

=== TEST 13: deleting twice is a 404
--- request eval
"DELETE /v1/threads/$main::D"
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 14: a deleted thread cannot be modified
--- request eval
"POST /v1/threads/$main::D\n" . '{"metadata":{}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 15: a request body on delete is ignored
--- request eval
"DELETE /v1/threads/$main::A\n" . '{"whatever":true}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::A, deleted => 1 }
