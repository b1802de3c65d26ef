# The Conversations API: conversations and their items, scoped by owner,
# stored beside threads; listings; a thread made a conversation.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Test::More;
use ThreadsTest;

no_shuffle();
use_api_defaults();

my $O1 = owner_of('k1');
my $O2 = owner_of('k2');
our $C = 'conv_' . ('c' x 24);
our $OTHER = 'conv_' . ('o' x 24);
our $I1 = 'msg_' . ('a' x 24);
our $I2 = 'fc_' . ('b' x 24);
psql("DELETE FROM conversations WHERE owner IN ('$O1', '$O2')");
psql("INSERT INTO conversations (owner, id, created_at, metadata) VALUES"
    . " ('$O1', '$C', 1764200000, '{\"k\":\"v\"}'),"
    . " ('$O2', '$OTHER', 1764200000, '{}')");
psql("INSERT INTO conversation_items (owner, conversation_id, id, created_at, item) VALUES"
    . " ('$O1', '$C', '$I1', 1764200000, '{\"id\":\"$I1\",\"type\":\"message\","
    . "\"status\":\"completed\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"seeded\"}]}'),"
    . " ('$O1', '$C', '$I2', 1764200000, '{\"id\":\"$I2\",\"type\":\"function_call\","
    . "\"status\":\"completed\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":\"{}\"}')");

our $CONV = qr/^conv_[A-Za-z0-9]{24}$/;
our $MSG = qr/^msg_[A-Za-z0-9]{24}$/;
our $NOW = sub { my $t = shift; defined $t && abs($t - time) < 120 };

sub ok_api {
    my ($method, $path, $body, $key, $status, $name) = @_;
    my ($st, $data) = api($method, $path, $body, $key // 'k3');
    is($st, $status, $name) or diag(explain($data));
    return $data;
}

run_scenarios({
    # items are listed newest first by default, pages by after over more
    # than one page, and a deleted cursor still pages
    paging => sub {
        my $c = ok_api('POST', '/v1/conversations', '{}', 'k3', 200, 'paging: create');
        my @ids;
        for my $n (1 .. 5) {
            my $l = ok_api('POST', "/v1/conversations/$c->{id}/items",
                '{"items":[{"role":"user","content":"n' . $n . '"}]}', 'k3', 200, "paging: add $n");
            push @ids, $l->{data}[0]{id};
        }
        my $p = ok_api('GET', "/v1/conversations/$c->{id}/items?limit=2", undef, 'k3', 200, 'page 1');
        is_deeply([map { $_->{id} } @{$p->{data}}], [@ids[4, 3]], 'desc by default');
        ok($p->{has_more}, 'page 1 has more');
        is($p->{first_id}, $ids[4], 'first_id');
        is($p->{last_id}, $ids[3], 'last_id');
        my $q = ok_api('GET', "/v1/conversations/$c->{id}/items?limit=2&after=$p->{last_id}", undef, 'k3', 200, 'page 2');
        is_deeply([map { $_->{id} } @{$q->{data}}], [@ids[2, 1]], 'page 2');
        ok_api('DELETE', "/v1/conversations/$c->{id}/items/$ids[1]", undef, 'k3', 200, 'delete the cursor');
        my $r = ok_api('GET', "/v1/conversations/$c->{id}/items?limit=2&after=$ids[1]", undef, 'k3', 200, 'after a deleted cursor');
        is_deeply([map { $_->{id} } @{$r->{data}}], [$ids[0]], 'pages on from a tombstone');
        ok(!$r->{has_more}, 'the last page');
        my $a = ok_api('GET', "/v1/conversations/$c->{id}/items?order=asc&include[]=message.input_image.image_url&include=reasoning.encrypted_content", undef, 'k3', 200, 'asc with include');
        is_deeply([map { $_->{id} } @{$a->{data}}], [@ids[0, 2, 3, 4]], 'asc order, include ignored');
        my $b = ok_api('GET', "/v1/conversations/$c->{id}/items?before=$ids[2]", undef, 'k3', 200, 'before');
        is_deeply([map { $_->{id} } @{$b->{data}}], [@ids[4, 3]], 'before a cursor, desc');
        my $e = ok_api('GET', "/v1/conversations/$c->{id}/items?after=thread_AAAAAAAAAAAAAAAAAAAAAAAA", undef, 'k3', 400, 'a cursor of another kind');
        is($e->{error}{param}, 'after', 'param after');
        $e = ok_api('GET', "/v1/conversations/$c->{id}/items?after=msg_ZZZZZZZZZZZZZZZZZZZZZZZZ", undef, 'k3', 404, 'a cursor that names nothing');
        is($e->{error}{message}, "No item found with id 'msg_ZZZZZZZZZZZZZZZZZZZZZZZZ'.", '404 message');
        ok_api('GET', "/v1/conversations/$c->{id}/items?limit=0", undef, 'k3', 400, 'limit 0');
        ok_api('GET', "/v1/conversations/$c->{id}/items?limit=101", undef, 'k3', 400, 'limit 101');
        ok_api('GET', "/v1/conversations/$c->{id}/items?order=up", undef, 'k3', 400, 'bad order');
        # deleting the conversation deletes its items
        ok_api('DELETE', "/v1/conversations/$c->{id}", undef, 'k3', 200, 'delete the conversation');
        is(psql("SELECT count(*) FROM conversation_items WHERE conversation_id = '$c->{id}'"), 0, 'its items are gone');
        ok_api('GET', "/v1/conversations/$c->{id}/items", undef, 'k3', 404, 'its items answer 404');
    },
    # GET /conversations: the caller's, newest first, metadata filter
    listing => sub {
        psql("DELETE FROM conversations WHERE owner = '" . owner_of('k4') . "'");
        my @ids;
        for my $n (1 .. 3) {
            push @ids, ok_api('POST', '/v1/conversations', '{"metadata":{"n":"' . $n . '"}}', 'k4', 200, "listing: create $n")->{id};
        }
        my $l = ok_api('GET', '/v1/conversations', undef, 'k4', 200, 'list');
        is_deeply([map { $_->{id} } @{$l->{data}}], [reverse @ids], 'newest first, own only');
        is($l->{object}, 'list', 'a list');
        is($l->{data}[0]{object}, 'conversation', 'of conversations');
        $l = ok_api('GET', '/v1/conversations?order=asc&limit=1&after=' . $ids[0], undef, 'k4', 200, 'asc after');
        is_deeply([map { $_->{id} } @{$l->{data}}], [$ids[1]], 'asc page');
        ok($l->{has_more}, 'has more');
        $l = ok_api('GET', '/v1/conversations?metadata%5Bn%5D=2', undef, 'k4', 200, 'filter');
        is_deeply([map { $_->{id} } @{$l->{data}}], [$ids[1]], 'metadata filter');
        $l = ok_api('GET', '/v1/conversations?before=' . $ids[0], undef, 'k4', 200, 'before');
        is_deeply([map { $_->{id} } @{$l->{data}}], [@ids[2, 1]], 'before, desc');
        ok_api('DELETE', "/v1/conversations/$ids[1]", undef, 'k4', 200, 'delete one');
        $l = ok_api('GET', "/v1/conversations?after=$ids[1]", undef, 'k4', 200, 'after a deleted one');
        is_deeply([map { $_->{id} } @{$l->{data}}], [$ids[0]], 'tombstone cursor');
        my $e = ok_api('GET', '/v1/conversations?after=thread_AAAAAAAAAAAAAAAAAAAAAAAA', undef, 'k4', 400, 'cursor of another kind');
        is($e->{error}{param}, 'after', 'param');
        $l = ok_api('GET', '/v1/conversations', undef, 'k5', 200, 'another owner');
        is_deeply($l->{data}, [], 'sees none of them');
    },
    # a thread made a conversation: its messages in order, content intact
    convert => sub {
        my $t = ok_api('POST', '/v1/threads', '{"metadata":{"from":"thread"},"messages":['
            . '{"role":"user","content":"Hello \u00e9"},'
            . '{"role":"assistant","content":[{"type":"text","text":"Hi"}]},'
            . '{"role":"user","content":[{"type":"image_file","image_file":{"file_id":"file-1","detail":"low"}},'
            . '{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}', 'k3', 200, 'a thread');
        my $m = ok_api('POST', "/v1/threads/$t->{id}/messages", '{"role":"user","content":"last"}', 'k3', 200, 'a fourth message');
        my $msgs = ok_api('GET', "/v1/threads/$t->{id}/messages?order=asc", undef, 'k3', 200, 'its messages');
        my $c = ok_api('POST', "/v1/threads/$t->{id}/conversation", undef, 'k3', 200, 'convert');
        like($c->{id}, $main::CONV, 'a conversation id');
        is($c->{object}, 'conversation', 'a conversation');
        is_deeply($c->{metadata}, { from => 'thread' }, 'the metadata');
        my $items = ok_api('GET', "/v1/conversations/$c->{id}/items?order=asc", undef, 'k3', 200, 'its items');
        is_deeply([map { $_->{id} } @{$items->{data}}], [map { $_->{id} } @{$msgs->{data}}], 'the messages, in order, ids kept');
        is_deeply($items->{data}[0], { id => $msgs->{data}[0]{id}, type => 'message', status => 'completed',
            role => 'user', content => [ { type => 'input_text', text => "Hello \x{e9}" } ] }, 'a user text');
        is_deeply($items->{data}[1]{content}, [ { type => 'output_text', text => 'Hi', annotations => [], logprobs => [] } ], 'an assistant text');
        is_deeply($items->{data}[2]{content}, [
            { type => 'input_image', file_id => 'file-1', image_url => undef, detail => 'low' },
            { type => 'input_image', image_url => 'https://example.com/a.png', file_id => undef, detail => 'auto' } ], 'images');
        is($items->{data}[3]{content}[0]{text}, 'last', 'the added message');
        ok_api('GET', "/v1/threads/$t->{id}", undef, 'k3', 200, 'the thread stays');
        ok_api('POST', "/v1/threads/$t->{id}/conversation", undef, 'k2', 404, "another owner's thread");
        ok_api('POST', '/v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/conversation', undef, 'k3', 404, 'a missing thread');
        ok_api('GET', "/v1/threads/$t->{id}/conversation", undef, 'k3', 405, 'GET is not allowed');
        my $e = ok_api('POST', '/v1/threads', '{}', 'k3', 200, 'an empty thread');
        my $c2 = ok_api('POST', "/v1/threads/$e->{id}/conversation", undef, 'k3', 200, 'convert an empty thread');
        my $i2 = ok_api('GET', "/v1/conversations/$c2->{id}/items", undef, 'k3', 200, 'no items');
        is_deeply($i2->{data}, [], 'none');
    },
});

run_tests();

__DATA__

=== TEST 1: create with metadata and items
--- request
POST /v1/conversations
{"metadata":{"topic":"demo"},"items":[{"type":"message","role":"user","content":"Hello!"},{"role":"assistant","content":"Hi"}]}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::CONV, object => 'conversation', created_at => $main::NOW, metadata => { topic => 'demo' } }

=== TEST 2: create with nothing
--- request
POST /v1/conversations
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::CONV, object => 'conversation', metadata => {} }

=== TEST 3: null metadata and items
--- request
POST /v1/conversations
{"metadata":null,"items":null}
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ metadata => {} }

=== TEST 4: retrieve
--- request eval
"GET /v1/conversations/$main::C"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::C, object => 'conversation', created_at => 1764200000, metadata => { k => 'v' } }

=== TEST 5: another owner's conversation is a 404 like a missing one
--- request eval
"GET /v1/conversations/$main::OTHER"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id '$main::OTHER'.", type => 'invalid_request_error' } }

=== TEST 6: a missing conversation
--- request
GET /v1/conversations/conv_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id 'conv_AAAAAAAAAAAAAAAAAAAAAAAA'." } }

=== TEST 7: an id that is not a conversation's
--- request
GET /v1/conversations/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'conversation_id' } }

=== TEST 8: a malformed conversation id with the prefix
--- request
GET /v1/conversations/conv_short
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id 'conv_short'." } }

=== TEST 9: update the metadata
--- request eval
"POST /v1/conversations/$main::C\n" . '{"metadata":{"k":"w","n":"2"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::C, object => 'conversation', metadata => { k => 'w', n => '2' } }

=== TEST 10: update needs metadata
--- request eval
"POST /v1/conversations/$main::C\n" . '{}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'metadata' } }

=== TEST 11: update takes metadata only
--- request eval
"POST /v1/conversations/$main::C\n" . '{"metadata":{},"items":[]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'unknown_parameter', param => 'items' } }

=== TEST 12: update another owner's conversation
--- request eval
"POST /v1/conversations/$main::OTHER\n" . '{"metadata":{"x":"y"}}'
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 13: retrieve an item
--- request eval
"GET /v1/conversations/$main::C/items/$main::I1"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::I1, type => 'message', status => 'completed', role => 'user',
  content => [ { type => 'input_text', text => 'seeded' } ] }

=== TEST 14: retrieve a missing item
--- request eval
"GET /v1/conversations/$main::C/items/msg_AAAAAAAAAAAAAAAAAAAAAAAA"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No item found with id 'msg_AAAAAAAAAAAAAAAAAAAAAAAA'." } }

=== TEST 15: an item of another owner's conversation
--- request eval
"GET /v1/conversations/$main::OTHER/items/$main::I1"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id '$main::OTHER'." } }

=== TEST 16: an item id that is none of ours
--- request eval
"GET /v1/conversations/$main::C/items/item_123"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No item found with id 'item_123'." } }

=== TEST 17: list items, newest first
--- request eval
"GET /v1/conversations/$main::C/items"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'list', data => [ { id => $main::I2, type => 'function_call' }, { id => $main::I1, type => 'message' } ],
  first_id => $main::I2, last_id => $main::I1, has_more => JSON::PP::false }

=== TEST 18: add items: the new ones as a list
--- request eval
"POST /v1/conversations/$main::C/items\n" . '{"items":[{"type":"message","role":"user","content":[{"type":"input_text","text":"Hello!"}]},{"type":"function_call_output","call_id":"c","output":"42"}]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'list', has_more => JSON::PP::false, first_id => $main::MSG, last_id => qr/^fco_[A-Za-z0-9]{24}$/,
  data => [ { id => $main::MSG, type => 'message', status => 'completed', role => 'user', content => [ { type => 'input_text', text => 'Hello!' } ] },
            { id => qr/^fco_/, type => 'function_call_output', call_id => 'c', output => '42', status => 'completed' } ] }

=== TEST 19: add items needs items
--- request eval
"POST /v1/conversations/$main::C/items\n" . '{}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'missing_required_parameter', param => 'items' } }

=== TEST 20: add no items
--- request eval
"POST /v1/conversations/$main::C/items\n" . '{"items":[]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'empty_array', param => 'items' } }

=== TEST 21: add items to another owner's conversation
--- request eval
"POST /v1/conversations/$main::OTHER/items\n" . '{"items":[{"role":"user","content":"x"}]}'
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id '$main::OTHER'." } }

=== TEST 22: delete an item answers the conversation
--- request eval
"DELETE /v1/conversations/$main::C/items/$main::I2"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::C, object => 'conversation', created_at => 1764200000 }

=== TEST 23: delete it again
--- request eval
"DELETE /v1/conversations/$main::C/items/$main::I2"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No item found with id '$main::I2'." } }

=== TEST 24: items cannot be modified
--- request eval
"POST /v1/conversations/$main::C/items/$main::I1\n{}"
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, DELETE

=== TEST 25: no PUT on conversations
--- request
PUT /v1/conversations
{}
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, POST

=== TEST 26: unknown sub-resource
--- request eval
"GET /v1/conversations/$main::C/messages"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => qr/^Invalid URL/ } }

=== TEST 27: without a key
--- request
GET /v1/conversations
--- error_code: 401

=== TEST 28: delete another owner's conversation
--- request eval
"DELETE /v1/conversations/$main::OTHER"
--- more_headers
Authorization: Bearer k1
--- error_code: 404

=== TEST 29: delete
--- request eval
"DELETE /v1/conversations/$main::C"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::C, object => 'conversation.deleted', deleted => JSON::PP::true }

=== TEST 30: deleted
--- request eval
"GET /v1/conversations/$main::C/items/$main::I1"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No conversation found with id '$main::C'." } }

=== TEST 31: item pages, include, cascade on delete
--- request
GET /v1/conversations
--- more_headers
Authorization: Bearer k3
--- error_code: 200
--- scenario: paging

=== TEST 32: listing the caller's conversations
--- request
GET /v1/conversations
--- more_headers
Authorization: Bearer k4
--- error_code: 200
--- scenario: listing

=== TEST 33: a thread made a conversation
--- request
GET /v1/conversations
--- more_headers
Authorization: Bearer k3
--- error_code: 200
--- scenario: convert
