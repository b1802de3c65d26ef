# The Conversations API's validation: every field of messages, function
# calls and their outputs, the type and size of other items, the limits.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

sub body { my ($items) = @_; "POST /v1/conversations\n" . '{"items":[' . $items . ']}' }

our $BIG = 'x' x 10485761;
our $MANY = join(',', ('{"role":"user","content":"x"}') x 21);
our $PARTS = join(',', ('{"type":"input_text","text":"x"}') x 33);
our $META = '{' . join(',', map { "\"k$_\":\"v\"" } 1 .. 17) . '}';
our $E = "\x{e9}";

run_tests();

__DATA__

=== TEST 1: at most 20 items
--- request eval
main::body($main::MANY)
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'array_above_max_length', param => 'items', type => 'invalid_request_error' } }

=== TEST 2: 20 items are fine
--- request eval
main::body(CORE::join(',', ('{"role":"user","content":"x"}') x 20))
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 3: unknown body fields
--- request
POST /v1/conversations
{"metadata":{},"name":"x"}
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'name' } }

=== TEST 4: metadata: 16 pairs at most
--- request eval
"POST /v1/conversations\n" . '{"metadata":' . $main::META . '}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'object_above_max_properties', param => 'metadata' } }

=== TEST 5: metadata values: 512 characters, counted in characters
--- request eval
"POST /v1/conversations\n" . '{"metadata":{"k":"' . ("\xc3\xa9" x 513) . '"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'metadata.k' } }

=== TEST 6: metadata values of 512 two-byte characters are fine
--- request eval
"POST /v1/conversations\n" . '{"metadata":{"k":"' . ("\xc3\xa9" x 512) . '","' . ("\xc3\xa9" x 64) . '":"v"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 7: metadata keys: 64 characters
--- request eval
"POST /v1/conversations\n" . '{"metadata":{"' . ('k' x 65) . '":"v"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'metadata' } }

=== TEST 8: an item must be an object
--- request eval
main::body('"hello"')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_type', param => 'items[0]' } }

=== TEST 9: unknown item types
--- request eval
main::body('{"type":"item_reference","id":"msg_1"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].type', message => qr/^Invalid value: 'item_reference'\. Supported values are: 'message', / } }

=== TEST 10: a message needs a role
--- request eval
main::body('{"type":"message","content":"x"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].role' } }

=== TEST 11: roles
--- request eval
main::body('{"role":"tool","content":"x"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].role', message => "Invalid value: 'tool'. Supported values are: 'user', 'assistant', 'system', and 'developer'." } }

=== TEST 12: a message needs content
--- request eval
main::body('{"role":"user"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].content' } }

=== TEST 13: content of a wrong type
--- request eval
main::body('{"role":"user","content":5}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_type', param => 'items[0].content' } }

=== TEST 14: empty content parts
--- request eval
main::body('{"role":"user","content":[]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'empty_array', param => 'items[0].content' } }

=== TEST 15: at most 32 parts
--- request eval
main::body('{"role":"user","content":[' . $main::PARTS . ']}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'array_above_max_length', param => 'items[0].content' } }

=== TEST 16: a user's part must be an input part
--- request eval
main::body('{"role":"user","content":[{"type":"output_text","text":"x"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].content[0].type', message => "Invalid value: 'output_text'. Supported values are: 'input_text', 'input_image', and 'input_file'." } }

=== TEST 17: an assistant's part must be an output part
--- request eval
main::body('{"role":"assistant","content":[{"type":"input_text","text":"x"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].content[0].type' } }

=== TEST 18: unknown part fields
--- request eval
main::body('{"role":"user","content":[{"type":"input_text","text":"x","annotations":[]}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'items[0].content[0].annotations' } }

=== TEST 19: unknown message fields
--- request eval
main::body('{"role":"user","content":"x","metadata":{}}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'items[0].metadata' } }

=== TEST 20: texts: 10,485,760 characters
--- request eval
main::body('{"role":"user","content":"' . $main::BIG . '"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'items[0].content' } }

=== TEST 21: status and phase
--- request eval
main::body('{"role":"assistant","content":[{"type":"output_text","text":"a","annotations":[{"type":"url_citation","url":"https://e.com","start_index":0,"end_index":1,"title":"t"}]},{"type":"refusal","refusal":"no"}],"status":"incomplete","phase":"final_answer"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 22: a bad status
--- request eval
main::body('{"role":"user","content":"x","status":"done"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].status' } }

=== TEST 23: a bad phase
--- request eval
main::body('{"role":"assistant","content":"x","phase":"middle"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].phase' } }

=== TEST 24: annotations are checked
--- request eval
main::body('{"role":"assistant","content":[{"type":"output_text","text":"a","annotations":[{"type":"file_citation","file_id":"f","index":-1,"filename":"n"}]}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'integer_below_min_value', param => 'items[0].content[0].annotations[0].index' } }

=== TEST 25: logprobs are checked
--- request eval
main::body('{"role":"assistant","content":[{"type":"output_text","text":"a","logprobs":[{"token":"a","logprob":-0.1,"bytes":[300],"top_logprobs":[]}]}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].content[0].logprobs[0].bytes[0]' } }

=== TEST 26: an input_image needs an image_url or a file_id
--- request eval
main::body('{"role":"user","content":[{"type":"input_image","detail":"low"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].content[0].image_url' } }

=== TEST 27: an input_image's detail
--- request eval
main::body('{"role":"user","content":[{"type":"input_image","file_id":"file-1","detail":"max"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].content[0].detail' } }

=== TEST 28: an input_image's URL: http(s) or a data URL
--- request eval
main::body('{"role":"user","content":[{"type":"input_image","image_url":"ftp://x/y"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'items[0].content[0].image_url' } }

=== TEST 29: images and files
--- request eval
main::body('{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"original"},{"type":"input_file","file_id":"file-1","filename":"a.pdf"},{"type":"input_text","text":"x","prompt_cache_breakpoint":{"mode":"explicit"}}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 30: an input_file needs a file
--- request eval
main::body('{"role":"user","content":[{"type":"input_file","filename":"a.pdf"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].content[0].file_id' } }

=== TEST 31: a function call needs call_id, name, arguments
--- request eval
main::body('{"type":"function_call","call_id":"c","arguments":"{}"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].name' } }

=== TEST 32: a function call's call_id: 64 characters
--- request eval
main::body('{"type":"function_call","call_id":"' . ('c' x 65) . '","name":"f","arguments":"{}"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'items[0].call_id' } }

=== TEST 33: a function call's empty name
--- request eval
main::body('{"type":"function_call","call_id":"c","name":"","arguments":"{}"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_below_min_length', param => 'items[0].name' } }

=== TEST 34: a function call's namespace pattern
--- request eval
main::body('{"type":"function_call","call_id":"c","name":"f","arguments":"{}","namespace":"a b"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].namespace' } }

=== TEST 35: a function call's caller
--- request eval
main::body('{"type":"function_call","call_id":"c","name":"f","arguments":"{}","caller":{"type":"program"}}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].caller.caller_id' } }

=== TEST 36: unknown function call fields
--- request eval
main::body('{"type":"function_call","call_id":"c","name":"f","arguments":"{}","output":"x"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'items[0].output' } }

=== TEST 37: arguments must be a string
--- request eval
main::body('{"type":"function_call","call_id":"c","name":"f","arguments":{}}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_type', param => 'items[0].arguments' } }

=== TEST 38: a function call output needs output
--- request eval
main::body('{"type":"function_call_output","call_id":"c"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items[0].output' } }

=== TEST 39: a function call output of parts
--- request eval
main::body('{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"x"},{"type":"refusal","refusal":"n"}]}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].output[1].type' } }

=== TEST 40: a function call output's output: 10,485,760 characters
--- request eval
main::body('{"type":"function_call_output","call_id":"c","output":"' . $main::BIG . '"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'string_above_max_length', param => 'items[0].output' } }

=== TEST 41: other types: unknown fields
--- request eval
main::body('{"type":"reasoning","summary":[],"color":"red"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'items[0].color' } }

=== TEST 42: other types: their size
--- request eval
main::body('{"type":"image_generation_call","status":"completed","result":"' . $main::BIG . '"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'item_too_large', param => 'items[0]' } }

=== TEST 43: other types: a bad status
--- request eval
main::body('{"type":"web_search_call","status":"lost","action":{}}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'items[0].status' } }

=== TEST 44: items for a missing conversation are validated, then 404
--- request
POST /v1/conversations/conv_AAAAAAAAAAAAAAAAAAAAAAAA/items
{"items":[{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}]}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 45: an id given is a string
--- request eval
main::body('{"type":"message","id":5,"role":"user","content":"x"}')
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_type', param => 'items[0].id' } }

=== TEST 46: not JSON
--- request
POST /v1/conversations
{"items":
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { type => 'invalid_request_error', message => qr/We could not parse the JSON body/ } }

=== TEST 47: a parse bomb
--- request eval
"POST /v1/conversations\n" . '{"items":[' . ('[' x 100000) . ']'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { message => qr/too deeply nested|could not parse/ } }
