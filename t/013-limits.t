# Caps on what a message counts (content parts, attachments, tools per
# attachment, id and URL lengths), each at its limit and one past it,
# through nginx; and parse bombs: 32 MiB bodies that would take jansson
# gigabytes are a 400 within a bounded memory and in well under 2 s.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

# "POST /v1/threads\n" followed by the JSON of a Perl structure.
sub create { "POST /v1/threads\n" . ThreadsTest::json()->encode($_[0]) }
sub msg { +{ role => 'user', content => 'x', @_ } }
sub parts { [ map { +{ type => 'text', text => "t$_" } } 1 .. $_[0] ] }
sub atts { my ($n, $t) = @_;
    [ map { +{ file_id => "file-$_",
               tools => [ ({ type => 'file_search' }) x ($t // 1) ] } } 1 .. $n ] }
sub bad { my ($code, $param, $msg) = @_;
    +{ error => { type => 'invalid_request_error', code => $code,
                  param => $param, (defined $msg ? (message => $msg) : ()) } } }

# the same configuration, with room for a 32 MiB body and more
(our $BIG_CONFIG = $ThreadsTest::API_CONFIG)
    =~ s/threads_api on;/threads_api on;\n        client_max_body_size 40m;/;

our $NESTED = qr/too deeply nested or has too many values/;

# kB of resident memory of the workers: now, and the most they ever held
sub worker_kb {
    my ($field) = @_;
    my ($master, @workers) = nginx_pids();
    @workers = ($master) if !@workers && defined $master;
    my $kb = 0;
    for my $pid (@workers) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^$field:\s+(\d+)/ }
    }
    return $kb;
}

sub bomb {
    my ($name, $body) = @_;
    my ($rss0, $hwm0) = (worker_kb('VmRSS'), worker_kb('VmHWM'));
    my ($st, $data, $h, $secs) = api('POST', '/v1/threads', $body, 'k1', 60);
    my ($rss1, $hwm1) = (worker_kb('VmRSS'), worker_kb('VmHWM'));
    is($st, 400, "$name: 400");
    like(ref $data ? $data->{error}{message} : $data, $NESTED,
        "$name: the body is too deeply nested or has too many values");
    is(ref $data ? $data->{error}{type} : '', 'invalid_request_error',
        "$name: invalid_request_error");
    cmp_ok($secs, '<', 2 * slow_factor(), "$name: answered in ${secs}s");
    diag(sprintf "%s: %.0f ms, worker RSS %d -> %d kB, peak %d -> %d kB",
        $name, $secs * 1000, $rss0, $rss1, $hwm0, $hwm1);
    # the body itself is 32 MiB in memory, the parse at most 2 x + 8 MiB
    # of it: 160 MiB bounds it all (unbounded, it took 2.4 GB).  Under
    # valgrind or ASan (padding, quarantine) RSS means something else.
    my $measured = !$ENV{TEST_NGINX_USE_VALGRIND} && !$ENV{THREADS_ASAN};
    cmp_ok($hwm1 - $hwm0, '<', 160 * 1024, "$name: peak memory bounded")
        if $measured;
    cmp_ok($rss1 - $rss0, '<', 64 * 1024, "$name: memory given back")
        if $measured;
}

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || ($block->scenario // '') ne 'bombs';

    # warm the worker up: its first large body sets its baseline
    api('POST', '/v1/threads', '{"metadata":{"a":"' . ('b' x 500) . '"}}', 'k1');

    my $n = int((32 * 1024 * 1024 - 10) / 3);
    bomb('{"x":[{},{},...]}', '{"x":[' . join(',', ('{}') x $n) . ']}');
    bomb('[[],[],...]', '[' . join(',', ('[]') x $n) . ']');
    bomb('deep nesting', '{"x":' . ('[' x 100000) . (']' x 100000) . '}');
});

run_tests();

__DATA__

=== TEST 1: 32 content parts are taken
--- request eval
main::create({ messages => [ main::msg(content => main::parts(32)) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'thread' }

=== TEST 2: 33 content parts are refused
--- request eval
main::create({ messages => [ main::msg(), main::msg(content => main::parts(33)) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'messages[1].content',
  "Invalid 'messages[1].content': array too long. Expected an array with "
  . "maximum length 32, but got an array with length 33 instead.")

=== TEST 3: 10 attachments of 2 tools each are taken
--- request eval
main::create({ messages => [ main::msg(attachments => main::atts(10, 2)) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'thread' }

=== TEST 4: 11 attachments are refused
--- request eval
main::create({ messages => [ main::msg(attachments => main::atts(11)) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'messages[0].attachments',
  "Invalid 'messages[0].attachments': array too long. Expected an array "
  . "with maximum length 10, but got an array with length 11 instead.")

=== TEST 5: 3 tools on an attachment are refused
--- request eval
main::create({ messages => [ main::msg(attachments => main::atts(1, 3)) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'messages[0].attachments[0].tools')

=== TEST 6: a file id of 128 characters is taken, everywhere
--- request eval
my $id = "\x{1F600}" x 128;
main::create({
  tool_resources => { code_interpreter => { file_ids => [ $id ] },
                      file_search => { vector_store_ids => [ $id ] } },
  messages => [ main::msg(
    content => [ { type => 'image_file', image_file => { file_id => $id } } ],
    attachments => [ { file_id => $id } ]) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'thread', tool_resources => {
  code_interpreter => { file_ids => [ "\x{1F600}" x 128 ] },
  file_search => { vector_store_ids => [ "\x{1F600}" x 128 ] } } }

=== TEST 7: an image file id of 129 characters is refused
--- request eval
main::create({ messages => [ main::msg(content => [
  { type => 'image_file', image_file => { file_id => "\x{1F600}" x 129 } } ]) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'messages[0].content[0].image_file.file_id',
  "Invalid 'messages[0].content[0].image_file.file_id': string too long. "
  . "Expected a string with maximum length 128, but got a string with "
  . "length 129 instead.")

=== TEST 8: an attachment's file id of 129 characters is refused
--- request eval
main::create({ messages => [ main::msg(attachments => [ { file_id => 'f' x 129 } ]) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'messages[0].attachments[0].file_id')

=== TEST 9: a code_interpreter file id of 129 characters is refused
--- request eval
main::create({ tool_resources => { code_interpreter =>
  { file_ids => [ 'a', 'f' x 129 ] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'tool_resources.code_interpreter.file_ids[1]')

=== TEST 10: a vector store id of 129 characters is refused, in modify too
--- request eval
"POST /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA\n"
. ThreadsTest::json()->encode({ tool_resources => { file_search =>
  { vector_store_ids => [ 'v' x 129 ] } } })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'tool_resources.file_search.vector_store_ids[0]')

=== TEST 11: an image URL of 8192 characters is taken
--- request eval
main::create({ messages => [ main::msg(content => [
  { type => 'image_url', image_url => { url => 'https://' . ('u' x 8184) } } ]) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'thread' }

=== TEST 12: an image URL of 8193 characters is refused
--- request eval
main::create({ messages => [ main::msg(content => [
  { type => 'image_url', image_url => { url => 'https://' . ('u' x 8185) } } ]) ] })
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('string_above_max_length', 'messages[0].content[0].image_url.url',
  "Invalid 'messages[0].content[0].image_url.url': string too long. "
  . "Expected a string with maximum length 8192, but got a string with "
  . "length 8193 instead.")

=== TEST 13: the caps hold for POST /threads/{id}/messages too
--- request eval
"POST /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages\n"
. ThreadsTest::json()->encode(main::msg(content => main::parts(33)))
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
main::bad('array_above_max_length', 'content')

=== TEST 14: parse bombs of 32 MiB are 400s, fast, in bounded memory
--- config eval: $main::BIG_CONFIG
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: bombs
--- error_code: 404
--- timeout: 120
