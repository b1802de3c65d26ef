# Validation of request bodies: every limit at its edge and one past it,
# types, unknown parameters at every level, and bodies that are not JSON.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

# "POST /v1/threads\n" followed by the JSON of a Perl structure.
sub create { "POST /v1/threads\n" . ThreadsTest::json()->encode($_[0]) }
sub meta { my ($n, $klen, $vlen, $ch) = @_; $ch //= 'v';
    +{ map { (sprintf("%0${klen}d", $_) => $ch x $vlen) } 1 .. $n } }
sub msgs { [ map { +{ role => 'user', content => "m$_" } } 1 .. $_[0] ] }
sub bad { my ($code, $param, $msg) = @_;
    +{ error => { type => 'invalid_request_error', code => $code,
                  param => $param, (defined $msg ? (message => $msg) : ()) } } }

run_tests();

__DATA__

=== TEST 1: not JSON
--- request
POST /v1/threads
{"metadata":
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { type => 'invalid_request_error', param => undef, code => undef,
  message => qr/could not parse the JSON body/ } }

=== TEST 2: not UTF-8
--- request eval
"POST /v1/threads\n{\"metadata\":{\"a\":\"\xff\xfe\"}}"
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { message => qr/could not parse the JSON body/ } }

=== TEST 3: \u0000 is refused
--- request
POST /v1/threads
{"metadata":{"a":"x\u0000y"}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { message => qr/could not parse the JSON body/ } }

=== TEST 4: a lone surrogate escape is refused
--- request
POST /v1/threads
{"metadata":{"a":"\ud800"}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { message => qr/could not parse the JSON body/ } }

=== TEST 5: a JSON array body is not an object
--- request
POST /v1/threads
[]
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { type => 'invalid_request_error', code => 'invalid_type' } }

=== TEST 6: a JSON string body is not an object
--- request
POST /v1/threads
"hello"
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_type' } }

=== TEST 7: unknown top-level parameter
--- request
POST /v1/threads
{"foo":1}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'foo', "Unknown parameter: 'foo'.")

=== TEST 8: unknown parameter inside tool_resources
--- request
POST /v1/threads
{"tool_resources":{"foo":{}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'tool_resources.foo', "Unknown parameter: 'tool_resources.foo'.")

=== TEST 9: unknown parameter inside code_interpreter
--- request
POST /v1/threads
{"tool_resources":{"code_interpreter":{"file_ids":[],"x":1}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'tool_resources.code_interpreter.x')

=== TEST 10: unknown parameter inside a message
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"a","x":1}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'messages[0].x')

=== TEST 11: unknown parameter inside a content part
--- request
POST /v1/threads
{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://a.b/c.png","x":1}}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'messages[0].content[0].image_url.x')

=== TEST 12: unknown parameter inside an attachment tool
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"a","attachments":[{"file_id":"f","tools":[{"type":"file_search","x":1}]}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unknown_parameter', 'messages[0].attachments[0].tools[0].x')

=== TEST 13: metadata of the wrong type
--- request
POST /v1/threads
{"metadata":"x"}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_type', 'metadata', "Invalid type for 'metadata': expected an object, but got a string instead.")

=== TEST 14: messages of the wrong type
--- request
POST /v1/threads
{"messages":{}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_type', 'messages')

=== TEST 15: 16 metadata pairs are fine
--- request eval
main::create({ metadata => main::meta(16, 2, 1) })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => main::meta(16, 2, 1) }

=== TEST 16: 17 metadata pairs are too many
--- request eval
main::create({ metadata => main::meta(17, 2, 1) })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('object_above_max_properties', 'metadata')

=== TEST 17: a 64-character key is fine
--- request eval
main::create({ metadata => main::meta(1, 64, 1) })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 18: a 65-character key is too long
--- request eval
main::create({ metadata => main::meta(1, 65, 1) })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'metadata')

=== TEST 19: a 512-character value is fine
--- request eval
main::create({ metadata => main::meta(1, 1, 512) })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 20: a 513-character value is too long, named by its key
--- request eval
main::create({ metadata => { k => 'v' x 513 } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'metadata.k')

=== TEST 21: 512 two-byte characters are 512 characters
--- request eval
main::create({ metadata => { k => "\x{e9}" x 512 } })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => { k => "\x{e9}" x 512 } }

=== TEST 22: 513 two-byte characters are too many
--- request eval
main::create({ metadata => { k => "\x{e9}" x 513 } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'metadata.k')

=== TEST 23: 64 four-byte characters make a valid key
--- request eval
main::create({ metadata => { ("\x{1F600}" x 64) => 'v' } })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 24: a metadata value that is not a string
--- request
POST /v1/threads
{"metadata":{"n":1}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_type', 'metadata.n')

=== TEST 25: 20 file ids are fine
--- request eval
main::create({ tool_resources => { code_interpreter => { file_ids => [ map { "f$_" } 1 .. 20 ] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 26: 21 file ids are too many
--- request eval
main::create({ tool_resources => { code_interpreter => { file_ids => [ map { "f$_" } 1 .. 21 ] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'tool_resources.code_interpreter.file_ids')

=== TEST 27: one vector store id is fine
--- request eval
main::create({ tool_resources => { file_search => { vector_store_ids => ['vs_1'] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 28: two vector store ids are too many
--- request eval
main::create({ tool_resources => { file_search => { vector_store_ids => ['vs_1', 'vs_2'] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'tool_resources.file_search.vector_store_ids')

=== TEST 29: the vector_stores helper is refused with a way out
--- request
POST /v1/threads
{"tool_resources":{"file_search":{"vector_stores":[{"file_ids":["f1"]}]}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('unsupported_parameter', 'tool_resources.file_search.vector_stores', qr/vector_store_ids/)

=== TEST 30: a file id that is not a string
--- request
POST /v1/threads
{"tool_resources":{"code_interpreter":{"file_ids":[1]}}}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_type', 'tool_resources.code_interpreter.file_ids[0]')

=== TEST 31: 32 messages are fine
--- request eval
main::create({ messages => main::msgs(32) })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 32: 33 messages are too many
--- request eval
main::create({ messages => main::msgs(33) })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'messages')

=== TEST 33: 256,000 characters of content are fine
--- request eval
main::create({ messages => [ { role => 'user', content => "\x{e9}" x 256000 } ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 34: 256,001 characters of content are too many
--- request eval
main::create({ messages => [ { role => 'user', content => 'a' x 256001 } ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'messages[0].content')

=== TEST 35: a message needs a role
--- request
POST /v1/threads
{"messages":[{"content":"a"}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('missing_required_parameter', 'messages[0].role')

=== TEST 36: a message needs content
--- request
POST /v1/threads
{"messages":[{"role":"user"}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('missing_required_parameter', 'messages[0].content')

=== TEST 37: the role is user or assistant
--- request
POST /v1/threads
{"messages":[{"role":"system","content":"a"}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_value', 'messages[0].role')

=== TEST 38: content may not be an empty array
--- request
POST /v1/threads
{"messages":[{"role":"user","content":[]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('empty_array', 'messages[0].content')

=== TEST 39: content of the wrong type
--- request
POST /v1/threads
{"messages":[{"role":"user","content":5}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_type', 'messages[0].content')

=== TEST 40: an unknown content part type
--- request
POST /v1/threads
{"messages":[{"role":"user","content":[{"type":"audio","audio":{}}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_value', 'messages[0].content[0].type')

=== TEST 41: an image_url must be http(s)
--- request
POST /v1/threads
{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_value', 'messages[0].content[0].image_url.url')

=== TEST 42: an image detail must be auto, low or high
--- request
POST /v1/threads
{"messages":[{"role":"user","content":[{"type":"image_file","image_file":{"file_id":"f","detail":"max"}}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_value', 'messages[0].content[0].image_file.detail')

=== TEST 43: an attachment tool must be known
--- request
POST /v1/threads
{"messages":[{"role":"user","content":"a","attachments":[{"file_id":"f","tools":[{"type":"web"}]}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('invalid_value', 'messages[0].attachments[0].tools[0].type')

=== TEST 44: message metadata follows the metadata rules
--- request eval
main::create({ messages => [ { role => 'user', content => 'a', metadata => main::meta(17, 2, 1) } ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('object_above_max_properties', 'messages[0].metadata')

=== TEST 45: a body near 32 MiB is accepted and stored without stalling
--- request eval
main::create({ messages => [ map { +{ role => 'user', content => "\x{20AC}" x 256000 } } 1 .. 32 ] })
--- more_headers
Authorization: Bearer k1
--- timeout: 300
--- error_code: 200
--- json eval
{ object => 'thread' }

=== TEST 46: a body over client_max_body_size is a JSON 413
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 1k;
    }
--- request eval
main::create({ metadata => { k => 'v' x 500, l => 'v' x 500, m => 'v' x 500 } })
--- more_headers
Authorization: Bearer k1
--- error_code: 413
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'invalid_request_error', message => qr/too large/ } }

=== TEST 47: a chunked body over the limit is a JSON 413 too
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 1k;
    }
--- raw_request eval
my $body = main::create({ metadata => { k => 'v' x 500, l => 'v' x 500, m => 'v' x 500 } });
$body =~ s/^.*?\n//;
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
  . sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body), $body)
--- error_code: 413
--- response_headers
Content-Type: application/json
--- json eval
{ error => { message => qr/too large/ } }

=== TEST 48: a chunked body within the limit creates a thread
--- raw_request eval
my $body = '{"metadata":{"via":"chunks"}}';
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
  . "5\r\n" . substr($body, 0, 5) . "\r\n" . sprintf("%x", length($body) - 5) . "\r\n" . substr($body, 5) . "\r\n0\r\n\r\n"
--- error_code: 200
--- json eval
{ metadata => { via => 'chunks' } }
