# The messages sub-resource: create, retrieve, modify, delete, scoped by
# thread and owner.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

our $T = seed_thread(key => 'k1');
our $U = seed_thread(key => 'k1');
our $OTHER = seed_thread(key => 'k2');
our $M = 'msg_' . ('m' x 24);
psql("INSERT INTO messages (owner, thread_id, id, created_at, role, content,"
    . " attachments, metadata) VALUES ('" . owner_of('k1') . "', '$T', '$M',"
    . " 1764200001, 'user', '[{\"type\":\"text\",\"text\":{\"value\":\"seeded\","
    . "\"annotations\":[]}}]', '[]', '{\"a\":\"1\"}')");

our $MSG = qr/^msg_[A-Za-z0-9]{24}$/;
our $NOW = sub { my $t = shift; defined $t && abs($t - time) < 120 };

run_tests();

__DATA__

=== TEST 1: create a message from a string
--- request eval
"POST /v1/threads/$main::T/messages\n" . '{"role":"user","content":"Hello there","metadata":{"k":"v"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::MSG, object => 'thread.message', created_at => $main::NOW,
  thread_id => $main::T, status => 'completed', incomplete_details => undef,
  completed_at => $main::NOW, incomplete_at => undef, role => 'user',
  content => [ { type => 'text', text => { value => 'Hello there', annotations => [] } } ],
  assistant_id => undef, run_id => undef, attachments => [], metadata => { k => 'v' } }

=== TEST 2: create a message from parts, with attachments
--- request eval
"POST /v1/threads/$main::T/messages\n" . '{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"image_file","image_file":{"file_id":"file-1","detail":"low"}}],"attachments":[{"file_id":"file-2","tools":[{"type":"code_interpreter"}]}]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ role => 'assistant',
  content => [ { type => 'text', text => { value => 'a', annotations => [] } },
               { type => 'image_file', image_file => { file_id => 'file-1', detail => 'low' } } ],
  attachments => [ { file_id => 'file-2', tools => [ { type => 'code_interpreter' } ] } ] }

=== TEST 3: a message needs a role
--- request eval
"POST /v1/threads/$main::T/messages\n" . '{"content":"x"}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'role', type => 'invalid_request_error' } }

=== TEST 4: unknown parameters are refused
--- request eval
"POST /v1/threads/$main::T/messages\n" . '{"role":"user","content":"x","thread_id":"t"}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'thread_id' } }

=== TEST 5: a message for a thread that does not exist
--- request
POST /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages
{"role":"user","content":"x"}
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id 'thread_AAAAAAAAAAAAAAAAAAAAAAAA'." } }

=== TEST 6: a message for another owner's thread
--- request eval
"POST /v1/threads/$main::OTHER/messages\n" . '{"role":"user","content":"x"}'
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::OTHER'." } }

=== TEST 7: retrieve a message
--- request eval
"GET /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::M, object => 'thread.message', thread_id => $main::T,
  created_at => 1764200001, completed_at => 1764200001, metadata => { a => '1' },
  content => [ { type => 'text', text => { value => 'seeded', annotations => [] } } ] }

=== TEST 8: a message asked for through another thread is not found
--- request eval
"GET /v1/threads/$main::U/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No message found with id '$main::M'.", type => 'invalid_request_error' } }

=== TEST 9: a message of another owner's thread is not found
--- request eval
"GET /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k2
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::T'." } }

=== TEST 10: a message id that does not begin with msg is a 400
--- request eval
"GET /v1/threads/$main::T/messages/thread_x"
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'message_id', code => 'invalid_value',
  message => "Invalid 'message_id': 'thread_x'. Expected an ID that begins with 'msg'." } }

=== TEST 11: a malformed msg id is a 404
--- request eval
"GET /v1/threads/$main::T/messages/msg_nope"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No message found with id 'msg_nope'." } }

=== TEST 12: modify replaces metadata
--- request eval
"POST /v1/threads/$main::T/messages/$main::M\n" . '{"metadata":{"b":"2"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::M, metadata => { b => '2' },
  content => [ { type => 'text', text => { value => 'seeded', annotations => [] } } ] }

=== TEST 13: modify with {} changes nothing
--- request eval
"POST /v1/threads/$main::T/messages/$main::M\n{}"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::M, metadata => { b => '2' } }

=== TEST 14: modify takes metadata only
--- request eval
"POST /v1/threads/$main::T/messages/$main::M\n" . '{"role":"assistant"}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'role' } }

=== TEST 15: modify with null metadata resets it
--- request eval
"POST /v1/threads/$main::T/messages/$main::M\n" . '{"metadata":null}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => {} }

=== TEST 16: modify of a missing message
--- request eval
"POST /v1/threads/$main::T/messages/msg_" . ('z' x 24) . "\n" . '{"metadata":{}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No message found with id 'msg_" . ('z' x 24) . "'." } }

=== TEST 17: delete a message
--- request eval
"DELETE /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::M, object => 'thread.message.deleted', deleted => 1 }

=== TEST 18: a deleted message is gone
--- request eval
"GET /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 19: deleting it twice is a 404
--- request eval
"DELETE /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No message found with id '$main::M'." } }

=== TEST 20: methods a messages path does not take
--- request eval
"PUT /v1/threads/$main::T/messages"
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, POST

=== TEST 21: methods a message path does not take
--- request eval
"PATCH /v1/threads/$main::T/messages/$main::M"
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, POST, DELETE

=== TEST 22: a path below a message is not a route
--- request eval
"GET /v1/threads/$main::T/messages/$main::M/files"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "Invalid URL (GET /v1/threads/$main::T/messages/$main::M/files)" } }

=== TEST 23: a thread's messages go with it
--- request eval
"DELETE /v1/threads/$main::T"
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 24: and its message list is a 404
--- request eval
"GET /v1/threads/$main::T/messages"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::T'." } }
