# Issue 4, hostile HTTP input: pipelined requests, bodies sent slowly or
# not at all, chunked bodies, bodies buffered to a temp file,
# Expect: 100-continue, percent-encoded and over-long ids.  Each behaves as
# SPEC.md says; where nginx answers before the module is reached, the test
# says what happens.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use JSON::PP ();
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

our $T = seed_thread(key => 'k1', metadata => '{"seeded":"yes"}');
our $D = seed_thread(key => 'k1');
our $RUN = 'hostile-' . int(rand(1e9));

our $SMALL_BUFFERS = <<'CONF';
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_body_buffer_size 1k;
    }
CONF

our $BODY_TIMEOUT = <<'CONF';
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_body_timeout 1s;
    }
CONF

our $LIMIT_1K = <<'CONF';
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 1k;
    }
CONF

our $BIG_HEADERS = <<'CONF';
    large_client_header_buffers 4 32k;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
CONF

my $J = JSON::PP->new->utf8->canonical;

# A whole response: status, headers (lower-case names), decoded body.
sub parse {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw // '', 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.[01] (\d{3})};
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    if (($h{'transfer-encoding'} // '') eq 'chunked') {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last unless $n;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    my $data = eval { $J->decode($body // '') };
    return ($status // 0, \%h, $data // $body);
}

sub full_response {
    my ($s, $timeout) = @_;
    return read_until($s, $timeout // 10);
}

sub head {
    my ($method, $path, %h) = @_;
    my $extra = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    return "$method $path HTTP/1.1\r\nHost: localhost\r\n$extra\r\n";
}

sub count_marker {
    my ($m) = @_;
    return psql("SELECT count(*) FROM threads WHERE metadata->>'m' = '$m'");
}

my %scenario;

$scenario{'pipelined-stored'} = sub {
    is(psql("SELECT string_agg(metadata->>'p', ',' ORDER BY metadata->>'p')"
        . " FROM threads WHERE metadata->>'run' = '$RUN'"), '1,2,3',
        'each pipelined create is stored once');
};

# A body in 5 pieces over 2 s; meanwhile the worker serves others.
$scenario{'slow-body'} = sub {
    my $m = "slow-$RUN";
    my $body = $J->encode({ metadata => { m => $m } });
    my $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Content-Type' => 'application/json',
        'Content-Length' => length $body, Connection => 'close');
    my @pieces = unpack '(a' . int(length($body) / 5 + 1) . ')*', $body;
    my $t0 = time;
    my $worst = 0;
    for my $p (@pieces) {
        sleep 0.4;
        my (undef, undef, undef, $secs) = api('GET', "/v1/threads/$T", undef, 'k1');
        $worst = $secs if $secs > $worst;
        print $s $p;
    }
    my ($st, $h, $data) = parse(full_response($s));
    close $s;
    is($st, 200, sprintf('a body sent in %d pieces over %.1fs creates a'
        . ' thread', scalar @pieces, time - $t0));
    is(ref $data && $data->{metadata}{m}, $m, 'with the body that was sent');
    cmp_ok($worst, '<', 0.5 * slow_factor(), sprintf('meanwhile other'
        . ' requests are served at once (slowest %.3fs)', $worst));
    is(count_marker($m), 1, 'stored once');
};

# Half a body, then silence: client_body_timeout (1s) ends it, nothing
# is stored, the worker goes on.
$scenario{'stalled-body'} = sub {
    my $m = "stalled-$RUN";
    my $body = $J->encode({ metadata => { m => $m } });
    my $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Content-Length' => length $body, Connection => 'close')
        . substr($body, 0, 10);
    my $t0 = time;
    my $raw = read_until($s, 5);
    my $secs = time - $t0;
    close $s;
    my ($st) = parse($raw);
    ok($raw eq '' || $st == 408, "the stalled request is ended (closed"
        . " without an answer, or 408: '" . substr($raw, 0, 40) . "')");
    cmp_ok($secs, '<', 3, sprintf('after client_body_timeout (%.2fs)', $secs));
    is(count_marker($m), 0, 'nothing was stored');
    my ($st2) = api('GET', "/v1/threads/$T", undef, 'k1');
    is($st2, 200, 'the worker goes on serving');
};

# A 100 KB body (and a chunked one) over client_body_buffer_size 1k:
# nginx buffers it in a temp file, the module reads it from there.
$scenario{'temp-file'} = sub {
    my $m = "tempfile-$RUN";
    my $text = join '', map { chr(97 + $_ % 26) } 1 .. 100_000;
    my $body = $J->encode({ metadata => { m => $m },
        messages => [ { role => 'user', content => $text } ] });
    cmp_ok(length $body, '>', 100_000, 'the body is over 100 KB');
    my ($st, $data) = api('POST', '/v1/threads', $body, 'k1');
    is($st, 200, 'a 100 KB body buffered to a temp file creates a thread');
    is(psql("SELECT length(content->0->'text'->>'value') FROM messages"
        . " WHERE thread_id = '" . (ref $data ? $data->{id} : '') . "'"),
        100_000, 'its message holds the 100,000 characters sent');

    my $mc = "tempfile-chunked-$RUN";
    $body = $J->encode({ metadata => { m => $mc },
        messages => [ { role => 'user', content => $text } ] });
    my $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Transfer-Encoding' => 'chunked', Connection => 'close');
    for my $piece (unpack '(a7000)*', $body) {
        print $s sprintf("%x\r\n%s\r\n", length $piece, $piece);
    }
    print $s "0\r\n\r\n";
    my ($st2, undef, $data2) = parse(full_response($s));
    close $s;
    is($st2, 200, 'a chunked 100 KB body buffered to a temp file creates a thread');
    is(psql("SELECT length(content->0->'text'->>'value') FROM messages"
        . " WHERE thread_id = '" . (ref $data2 ? $data2->{id} : '') . "'"),
        100_000, 'whole');
};

# A chunked body sent chunk by chunk, slowly.
$scenario{'slow-chunks'} = sub {
    my $m = "slowchunks-$RUN";
    my $body = $J->encode({ metadata => { m => $m } });
    my $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Transfer-Encoding' => 'chunked', Connection => 'close');
    for my $piece (unpack '(a6)*', $body) {
        sleep 0.1;
        print $s sprintf("%x;ext=1\r\n%s\r\n", length $piece, $piece);
    }
    sleep 0.1;
    print $s "0\r\n\r\n";
    my ($st, undef, $data) = parse(full_response($s));
    close $s;
    is($st, 200, 'a chunked body in small chunks with extensions, sent slowly');
    is(ref $data && $data->{metadata}{m}, $m, 'arrives whole');
    is(count_marker($m), 1, 'stored once');
};

$scenario{'expect'} = sub {
    # the ordinary case: headers, 100 Continue, then the body
    my $m = "expect-$RUN";
    my $body = $J->encode({ metadata => { m => $m } });
    my $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Content-Length' => length $body, Expect => '100-continue',
        Connection => 'close');
    my $interim = read_until($s, 3, sub { $_[0] =~ /\r\n\r\n/ });
    like($interim, qr{^HTTP/1\.1 100 Continue\r\n\r\n\z},
        'Expect: 100-continue is answered with 100 Continue');
    print $s $body;
    my ($st, $h, $data) = parse(full_response($s));
    close $s;
    is($st, 200, 'then the body creates the thread');
    is(ref $data && $data->{metadata}{m}, $m, 'with that body');
    is(count_marker($m), 1, 'stored once');

    # too large: refused before the body is asked for
    $s = connect_nginx();
    print $s head('POST', '/v1/threads', Authorization => 'Bearer k1',
        'Content-Length' => 5000, Expect => '100-continue',
        Connection => 'close');
    my $raw = read_until($s, 3);
    close $s;
    unlike($raw, qr{^HTTP/1\.1 100}, 'a body over client_max_body_size gets'
        . ' no 100 Continue');
    ($st, $h, $data) = parse($raw);
    is($st, 413, 'but a 413');
    is($h->{'content-type'}, 'application/json', 'in JSON');
    is(ref $data && $data->{error}{type}, 'invalid_request_error',
        'an invalid_request_error');

    # no key: a JSON 401 (nginx may ask for the body first, to discard it)
    $s = connect_nginx();
    print $s head('POST', '/v1/threads', 'Content-Length' => 2,
        Expect => '100-continue', Connection => 'close');
    $raw = read_until($s, 3, sub { $_[0] =~ /\r\n\r\n/ });
    if ($raw =~ s{^HTTP/1\.1 100 Continue\r\n\r\n}{}) {
        print $s '{}';
    }
    $raw .= read_until($s, 3);
    close $s;
    ($st, $h, $data) = parse($raw);
    is($st, 401, 'without a key: 401');
    is($h->{'content-type'}, 'application/json', 'in JSON');
};

# Ids percent-encoded as SDKs send them are decoded.
$scenario{'percent-encoded'} = sub {
    my $t = seed_thread(key => 'k1');
    my $all = join '', map { sprintf '%%%02X', ord } split //, $t;
    my $lower = lc $all;
    my ($st, $data) = api('GET', "/v1/threads/$all", undef, 'k1');
    is($st, 200, 'an id with every character percent-encoded is found');
    is(ref $data && $data->{id}, $t, 'and answered with its decoded id');
    ($st) = api('GET', "/v1/threads/$lower", undef, 'k1');
    is($st, 200, 'lower-case hex digits too');
    ($st, $data) = api('POST', "/v1/threads/$all", '{"metadata":{"enc":"1"}}', 'k1');
    is($st, 200, 'modify with an encoded id');
    is(ref $data && $data->{metadata}{enc}, '1', 'modified');
    ($st, $data) = api('POST', "/v1/threads/$all/messages",
        '{"role":"user","content":"x"}', 'k1');
    is($st, 200, 'a message created under an encoded id');
    ($st, $data) = api('DELETE', "/v1/threads/$all", undef, 'k1');
    is($st, 200, 'delete with an encoded id');
    is(ref $data && $data->{id}, $t, 'deletes that thread');

    my $enc_prefix = '%74%68%72%65%61%64_nothing';
    ($st, $data) = api('GET', "/v1/threads/$enc_prefix", undef, 'k1');
    is($st, 404, 'an encoded id that begins with "thread" but is not ours: 404');
    is(ref $data && $data->{error}{message},
        "No thread found with id 'thread_nothing'.", 'naming the decoded id');
    ($st, $data) = api('GET', '/v1/threads/%6Dsg_1', undef, 'k1');
    is($st, 400, 'an encoded id that does not begin with "thread": 400');
    is(ref $data && $data->{error}{message}, "Invalid 'thread_id': 'msg_1'."
        . " Expected an ID that begins with 'thread'.", 'naming the decoded id');
    ($st, $data) = api('GET', "/v1/threads/$T%3Fx=1", undef, 'k1');
    is($st, 404, 'an encoded "?" stays in the id: 404');

    # nginx refuses malformed escapes before any location is chosen
    my $h;
    ($st, $data, $h) = api('GET', '/v1/threads/thread_%zz', undef, 'k1');
    is($st, 400, 'a malformed escape is a 400');
    ($st, $data, $h) = api('GET', '/v1/threads/thread_%00abc', undef, 'k1');
    is($st, 400, 'an encoded NUL is a 400');
    is($h->{'content-type'}, 'application/json', 'in JSON (threads_json_errors)');

    # an encoded "/" is part of the id, not a path separator
    ($st, $data) = api('GET', "/v1/threads/$T%2Fmessages", undef, 'k1');
    is($st, 404, 'an id with an encoded "/" is a 404');
    is(ref $data && $data->{error} && $data->{error}{message},
        "Invalid URL (GET /v1/threads/$T/messages)", 'an invalid URL');
};

# An id of 10,000 characters: over nginx's default request-line buffer
# (large_client_header_buffers 4 8k), so a 414 from nginx.
$scenario{'long-id-default'} = sub {
    my $long = 'thread_' . ('x' x 9993);
    is(length $long, 10_000, 'an id of 10,000 characters');
    my ($st, $data, $h) = api('GET', "/v1/threads/$long", undef, 'k1');
    is($st, 414, 'over the request-line buffer: 414');
    is($h->{'content-type'}, 'application/json', 'in JSON (threads_json_errors)');
    ($st) = api('POST', "/v1/threads/$long", '{}', 'k1');
    is($st, 414, 'for a modify too');
    ($st) = api('GET', "/v1/threads/$T", undef, 'k1');
    is($st, 200, 'the worker goes on serving');
};

# $got is $want or its beginning (the module caps error messages at 1 KiB)
# and holds the first 100 characters of it at least.
sub is_prefix {
    my ($got, $want, $name) = @_;
    $got //= '';
    ok(length $got >= 100 && substr($want, 0, length $got) eq $got,
        "$name (" . length($got) . ' of ' . length($want) . ' characters)')
        or diag('got: ' . substr($got, 0, 120) . '...');
}

# The same ids with room for them: the module answers 404 in JSON.
$scenario{'long-id-room'} = sub {
    my $long = 'thread_' . ('x' x 9993);
    my ($st, $data, $h) = api('GET', "/v1/threads/$long", undef, 'k1');
    is($st, 404, 'an id of 10,000 characters is a 404');
    is($h->{'content-type'}, 'application/json', 'in JSON');
    is_prefix(ref $data && $data->{error}{message},
        "No thread found with id '$long'.", 'naming the id');
    my $enc = join '', map { sprintf '%%%02X', ord } split //, $long;
    ($st, $data) = api('DELETE', "/v1/threads/$enc", undef, 'k1');
    is($st, 404, 'percent-encoded (30,000 characters): 404');
    is_prefix(ref $data && $data->{error}{message},
        "No thread found with id '$long'.", 'naming the decoded id');
    my $long_msg = 'msg_' . ('y' x 9996);
    ($st, $data) = api('GET', "/v1/threads/$T/messages/$long_msg", undef, 'k1');
    is($st, 404, 'a message id of 10,000 characters: 404');
    ($st) = api('POST', "/v1/threads/thread_" . ('z' x 24), '{}', 'k1');
    is($st, 404, 'and the worker goes on');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: three creates pipelined on one connection
--- pipelined_requests eval
[ map { "POST /v1/threads\n{\"metadata\":{\"p\":\"$_\",\"run\":\"$main::RUN\"}}" } 1 .. 3 ]
--- more_headers
Authorization: Bearer k1
--- error_code eval
[200, 200, 200]
--- json eval
[ map { { object => 'thread', metadata => { p => "$_" } } } 1 .. 3 ]
--- no_error_log
[alert]
[crit]

=== TEST 2: pipelined create, retrieve, delete, retrieve of the deleted
--- pipelined_requests eval
[ "POST /v1/threads\n{}", "GET /v1/threads/$main::T",
  "DELETE /v1/threads/$main::D", "GET /v1/threads/$main::D" ]
--- more_headers
Authorization: Bearer k1
--- error_code eval
[200, 200, 200, 404]
--- json eval
[ { object => 'thread' }, { id => $main::T, metadata => { seeded => 'yes' } },
  { id => $main::D, deleted => JSON::PP::true() },
  { error => { message => "No thread found with id '$main::D'." } } ]

=== TEST 3: the pipelined creates are stored once each
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: pipelined-stored
--- error_code: 404

=== TEST 4: a body sent slowly, in pieces over 2 s
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: slow-body
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]

=== TEST 5: a body that stops half-way: client_body_timeout ends it
--- config eval
$main::BODY_TIMEOUT
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: stalled-body
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]

=== TEST 6: a chunked body in 1-byte chunks with extensions
--- raw_request eval
my $body = qq({"metadata":{"via":"tiny chunks"}});
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
  . CORE::join('', map { "1;e=$_\r\n$_\r\n" } split //, $body) . "0\r\n\r\n"
--- error_code: 200
--- json eval
{ metadata => { via => 'tiny chunks' } }

=== TEST 7: a chunked body whose chunks arrive one by one
--- raw_request eval
my $body = qq({"metadata":{"via":"packets"}});
[ "POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
  (map { sprintf("%x\r\n%s\r\n", length, $_) } unpack '(a8)*', $body), "0\r\n\r\n" ]
--- raw_request_middle_delay: 0.2
--- error_code: 200
--- json eval
{ metadata => { via => 'packets' } }

=== TEST 8: chunks sent slowly with extensions
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: slow-chunks
--- error_code: 404
--- timeout: 30

=== TEST 9: a malformed chunked body is a JSON 400
--- raw_request eval
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
--- error_code: 400
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 10: a chunked body that ends before its last chunk
--- raw_request eval
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n{\"metadata\":{}}"
--- config eval
$main::BODY_TIMEOUT
--- ignore_response
--- timeout: 5
--- no_error_log
[alert]
[crit]

=== TEST 11: 100 KB bodies over client_body_buffer_size 1k go through a temp file
--- config eval
$main::SMALL_BUFFERS
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: temp-file
--- error_code: 404
--- timeout: 30
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[alert]
[crit]

=== TEST 12: Expect: 100-continue
--- config eval
$main::LIMIT_1K
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: expect
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]

=== TEST 13: percent-encoded ids
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: percent-encoded
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]

=== TEST 14: an id of 10,000 characters, default buffers
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: long-id-default
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]

=== TEST 15: an id of 10,000 characters with room for it
--- config eval
$main::BIG_HEADERS
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: long-id-room
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]
[crit]
