# Idempotency-Key on the creates (issue 11): an answer replayed byte for
# byte, 422 for another body, 409 while the first is in flight, 400 for a
# malformed key, keys scoped by owner, kept at least
# threads_idempotency_ttl and then serving a new create of the next
# generation (items: stored answers pruned through an index);
# x-should-retry on 503 and 504; conversations and their items; the
# schema's upgrade from version 2; and the stock Node SDK retrying a create
# whose response was lost after its commit (t/sdk/idempotency.mjs).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Time::HiRes qw(time sleep);
use Digest::SHA qw(sha256);

no_shuffle();
use_api_defaults();

my $PORT = ThreadsTest::nginx_port();

# A raw HTTP/1.1 request with any headers (an empty value, a repeated one,
# bytes HTTP::Tiny would refuse).  send_req returns the socket, read_res
# its answer: { status, headers (lower-cased names), body (raw), json }.
sub send_req {
    my (%a) = @_;
    my $sock = connect_nginx();
    my $body = $a{body} // '';
    my $h = "$a{method} $a{path} HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\n";
    $h .= "Authorization: Bearer $a{key}\r\n" if defined $a{key};
    $h .= "Idempotency-Key: $a{idem}\r\n" if defined $a{idem};
    $h .= "$_\r\n" for @{ $a{headers} || [] };
    print $sock "$h\r\n$body";
    return $sock;
}

sub read_res {
    my ($sock) = @_;
    local $/;
    my $raw = <$sock> // '';
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %h;
    for (split /\r\n/, $head // '') {
        $h{lc $1} = $2 if /^([^:]+):\s*(.*)$/;
    }
    my $json = eval { ThreadsTest::json()->decode($body // '') };
    return { status => $status // 0, headers => \%h, body => $body // '',
             json => $json };
}

sub req { read_res(send_req(@_)) }

sub create {
    my ($key, $idem, $body) = @_;
    return req(method => 'POST', path => '/v1/threads', key => $key,
        idem => $idem, body => $body);
}

sub threads_of {
    my ($key) = @_;
    return psql("SELECT count(*) FROM threads WHERE owner = '"
        . owner_of($key) . "'");
}

sub keys_of {
    my ($key) = @_;
    return psql("SELECT count(*) FROM idempotency_keys WHERE owner = '"
        . owner_of($key) . "'");
}

# The advisory lock the module takes for a key of POST /threads: the first
# 8 bytes of SHA-256 of the route, its parent, the owner and the key.
sub key_lock {
    my ($owner, $idem) = @_;
    return unpack 'q<', substr(sha256("POST /threads\n\n$owner\n$idem\n"),
        0, 8);
}

sub add_items {
    my ($key, $conv, $idem) = @_;
    return req(method => 'POST', path => "/v1/conversations/$conv/items",
        key => $key, idem => $idem,
        body => '{"items":[{"type":"message","role":"user","content":"x"}]}');
}

sub statuses {
    my (%n);
    $n{$_}++ for @_;
    return join ', ', map { "$_ x $n{$_}" } sort keys %n;
}

my %scenario;

$scenario{'replay'} = sub {
    my $k = "idem-a-$$";
    my $body = '{"metadata":{"a":"1"},"messages":[{"role":"user",'
        . '"content":"hi"}]}';
    my $r1 = create($k, 'key-1', $body);
    is($r1->{status}, 200, 'a keyed create is a 200');
    ok(!exists $r1->{headers}{'idempotent-replayed'},
        'the first answer is not marked replayed');
    my $id = $r1->{json} && $r1->{json}{id};
    like($id // '', qr/^thread_\w{24}$/, 'it made a thread');

    my $r2 = create($k, 'key-1', $body);
    is($r2->{status}, 200, 'the same key and body again: 200');
    is($r2->{headers}{'idempotent-replayed'}, 'true',
        'with Idempotent-Replayed: true');
    is($r2->{body}, $r1->{body}, 'the stored body, byte for byte');
    is(threads_of($k), 1, 'nothing new was stored');
    is(psql("SELECT count(*) FROM messages WHERE thread_id = '$id'"), 1,
        'the initial message once');

    my $get = req(method => 'GET', path => "/v1/threads/$id", key => $k);
    is($get->{body}, $r1->{body},
        'the keyed answer is byte for byte what a retrieve returns');

    my $r3 = create($k, 'key-1', '{"metadata":{"a":"2"}}');
    is($r3->{status}, 422, 'the same key with another body: 422');
    is($r3->{json} && $r3->{json}{error}{code}, 'idempotency_key_reused',
        'code idempotency_key_reused');
    is($r3->{json} && $r3->{json}{error}{type}, 'invalid_request_error',
        'type invalid_request_error');
    is($r3->{headers}{'x-should-retry'}, 'false', 'x-should-retry: false');
    is(threads_of($k), 1, 'still one thread');

    my $b = "idem-b-$$";
    my $o = create($b, 'key-1', $body);
    is($o->{status}, 200, 'another owner with the same key: 200');
    ok(!exists $o->{headers}{'idempotent-replayed'}, 'not a replay');
    isnt($o->{json} && $o->{json}{id}, $id, 'its own thread');
    is(threads_of($b), 1, 'stored for that owner');

    my @plain = map { create($k, undef, $body) } 1 .. 2;
    is(join(',', map { $_->{status} } @plain), '200,200',
        'without a key, creates are not deduplicated');
    is(threads_of($k), 3, 'two more threads');

    # a validation error stores nothing: the body may be fixed, same key
    my $bad = create($k, 'key-2', '{"metadata":"nope"}');
    is($bad->{status}, 400, 'an invalid body with a key: 400');
    is(threads_of($k), 3, 'nothing was stored');
    my $fixed = create($k, 'key-2', '{"metadata":{}}');
    is($fixed->{status}, 200, 'the fixed body with the same key: 200');
    ok(!exists $fixed->{headers}{'idempotent-replayed'}, 'a new create');

    # messages
    my $mbody = '{"role":"user","content":"hello","metadata":{"m":"1"}}';
    my $m1 = req(method => 'POST', path => "/v1/threads/$id/messages",
        key => $k, idem => 'msg-1', body => $mbody);
    is($m1->{status}, 200, 'a keyed message create: 200');
    my $mid = $m1->{json} && $m1->{json}{id};
    like($mid // '', qr/^msg_\w{24}$/, 'it made a message');
    my $m2 = req(method => 'POST', path => "/v1/threads/$id/messages",
        key => $k, idem => 'msg-1', body => $mbody);
    is($m2->{status}, 200, 'again: 200');
    is($m2->{headers}{'idempotent-replayed'}, 'true', 'replayed');
    is($m2->{body}, $m1->{body}, 'byte for byte');
    is(psql("SELECT count(*) FROM messages WHERE thread_id = '$id'"), 2,
        'one message added');
    my $mget = req(method => 'GET', path => "/v1/threads/$id/messages/$mid",
        key => $k);
    is($mget->{body}, $m1->{body}, 'the keyed answer is what a retrieve returns');

    my $other = $plain[0]{json}{id};
    my $m3 = req(method => 'POST', path => "/v1/threads/$other/messages",
        key => $k, idem => 'msg-1', body => $mbody);
    # a key belongs to its owner and its create's path
    is($m3->{status}, 200, 'the same key on another thread\'s path: 200');
    ok(!exists $m3->{headers}{'idempotent-replayed'}, 'another key there');
    isnt($m3->{json}{id}, $mid, 'another message');
    my $m4 = create($k, 'msg-1', '{}');
    is($m4->{status}, 200, 'the same key on another route: 200');
    ok(!exists $m4->{headers}{'idempotent-replayed'}, 'another key there too');

    my $gone = random_thread_id();
    my $m5 = req(method => 'POST', path => "/v1/threads/$gone/messages",
        key => $k, idem => 'msg-2', body => $mbody);
    is($m5->{status}, 404, 'a keyed message to a missing thread: 404');
    is(psql("SELECT count(*) FROM messages WHERE owner = '" . owner_of($k)
        . "' AND key_digest IS NOT NULL"), 2, 'nothing was stored');

    # keys on other routes are ignored
    my $mod = req(method => 'POST', path => "/v1/threads/$id", key => $k,
        idem => 'key-1', body => '{"metadata":{"z":"1"}}');
    is($mod->{status}, 200, 'a modify with a key is a plain modify');

    # the key of a deleted object still replays, and creates nothing
    my $d1 = create($k, 'del-1', '{}');
    my $did = $d1->{json}{id};
    is(req(method => 'DELETE', path => "/v1/threads/$did", key => $k)
        ->{status}, 200, 'a keyed thread deleted');
    my $d2 = create($k, 'del-1', '{}');
    is($d2->{status}, 200, 'its key again: 200');
    is($d2->{headers}{'idempotent-replayed'}, 'true', 'a replay');
    is($d2->{body}, $d1->{body}, 'of the first answer, byte for byte');
    is(psql("SELECT count(*) FROM threads WHERE id = '$did'"), 0,
        'the deleted thread stays deleted');
    is(create($k, 'del-1', '{"metadata":{"x":"y"}}')->{status}, 422,
        'another body with it: 422');
    my $dm1 = req(method => 'POST', path => "/v1/threads/$id/messages",
        key => $k, idem => 'del-m', body => $mbody);
    my $dmid = $dm1->{json}{id};
    req(method => 'DELETE', path => "/v1/threads/$id/messages/$dmid",
        key => $k);
    my $dm2 = req(method => 'POST', path => "/v1/threads/$id/messages",
        key => $k, idem => 'del-m', body => $mbody);
    is($dm2->{headers}{'idempotent-replayed'}, 'true',
        'a deleted message\'s key replays too');
    is($dm2->{body}, $dm1->{body}, 'byte for byte');
    is(psql("SELECT count(*) FROM messages WHERE id = '$dmid'"), 0,
        'and the message stays deleted');
};

$scenario{'conversations'} = sub {
    my $k = "idem-conv-$$";
    my $body = '{"metadata":{"c":"1"},"items":[{"type":"message",'
        . '"role":"user","content":"hi"}]}';
    my $c1 = req(method => 'POST', path => '/v1/conversations', key => $k,
        idem => 'conv-1', body => $body);
    is($c1->{status}, 200, 'a keyed conversation create: 200');
    my $cid = $c1->{json} && $c1->{json}{id};
    like($cid // '', qr/^conv_\w{24}$/, 'it made a conversation');
    my $c2 = req(method => 'POST', path => '/v1/conversations', key => $k,
        idem => 'conv-1', body => $body);
    is($c2->{headers}{'idempotent-replayed'}, 'true', 'again: a replay');
    is($c2->{body}, $c1->{body}, 'byte for byte');
    my $get = req(method => 'GET', path => "/v1/conversations/$cid",
        key => $k);
    is($get->{body}, $c1->{body}, 'what a retrieve returns');
    is(psql("SELECT count(*) FROM conversations WHERE owner = '"
        . owner_of($k) . "'"), 1, 'one conversation');
    is(psql("SELECT count(*) FROM conversation_items WHERE"
        . " conversation_id = '$cid'"), 1, 'its item once');
    my $c3 = req(method => 'POST', path => '/v1/conversations', key => $k,
        idem => 'conv-1', body => '{}');
    is($c3->{status}, 422, 'another body: 422');
    is($c3->{json} && $c3->{json}{error}{code}, 'idempotency_key_reused',
        'idempotency_key_reused');

    my $i1 = add_items($k, $cid, 'items-1');
    is($i1->{status}, 200, 'keyed items: 200');
    my $i2 = add_items($k, $cid, 'items-1');
    is($i2->{headers}{'idempotent-replayed'}, 'true', 'again: a replay');
    is($i2->{body}, $i1->{body}, 'byte for byte, with the same item ids');
    is(psql("SELECT count(*) FROM conversation_items WHERE"
        . " conversation_id = '$cid'"), 2, 'the item was added once');
    my $i3 = req(method => 'POST', path => "/v1/conversations/$cid/items",
        key => $k, idem => 'items-1', body => '{"items":[]}');
    isnt($i3->{status}, 200, 'another body with the key is refused');
    my $gone = 'conv_' . ('Z' x 24);
    my $i4 = add_items($k, $gone, 'items-2');
    is($i4->{status}, 404, 'keyed items for a missing conversation: 404');
    is(keys_of($k), 1, 'only the stored answer of the items was kept');
    my $bad = req(method => 'POST', path => '/v1/conversations', key => $k,
        headers => ['Idempotency-Key: '], body => '{}');
    is($bad->{status}, 400, 'an empty key on a conversation create: 400');
    is($bad->{json} && $bad->{json}{error}{param}, 'Idempotency-Key',
        'param Idempotency-Key');
};

$scenario{'bad-keys'} = sub {
    my $k = "idem-bad-$$";
    my @cases = (
        [ 'an empty key', ['Idempotency-Key: '] ],
        [ 'a key of 256 characters', ['Idempotency-Key: ' . ('x' x 256)] ],
        [ 'a non-ASCII key', ["Idempotency-Key: cl\xc3\xa9"] ],
        [ 'a control character', ["Idempotency-Key: a\x01b"] ],
        [ 'two keys', ['Idempotency-Key: a', 'idempotency-key: b'] ],
    );
    for my $c (@cases) {
        my $r = req(method => 'POST', path => '/v1/threads', key => $k,
            headers => $c->[1], body => '{}');
        is($r->{status}, 400, "$c->[0]: 400");
        is($r->{json} && $r->{json}{error}{param}, 'Idempotency-Key',
            "$c->[0]: param Idempotency-Key");
        is($r->{json} && $r->{json}{error}{type}, 'invalid_request_error',
            "$c->[0]: invalid_request_error");
    }
    my $tid = seed_thread(key => $k);
    my $r = req(method => 'POST', path => "/v1/threads/$tid/messages",
        key => $k, headers => ['Idempotency-Key: '],
        body => '{"role":"user","content":"x"}');
    is($r->{status}, 400, 'a message create with an empty key: 400');
    is(threads_of($k), 1, 'nothing was created');

    my $long = join '', map { chr(32 + $_ % 95) } 0 .. 254;
    $r = create($k, $long, '{}');
    is($r->{status}, 200, '255 printable characters (space, quotes, '
        . 'backslash included) are a key');
    my $again = create($k, $long, '{}');
    is($again->{headers}{'idempotent-replayed'}, 'true', 'and replay');
    is($again->{body}, $r->{body}, 'the same body');
    my $r2 = create($k, 'k', '{}');
    is($r2->{status}, 200, 'a 1-character key');
};

$scenario{'in-flight'} = sub {
    my $k = "idem-busy-$$";
    my $o = owner_of($k);
    my $pid = hold_in_background("BEGIN; SELECT pg_advisory_xact_lock("
        . key_lock($o, 'busy-1') . ");", 1.5);
    my $r = create($k, 'busy-1', '{}');
    is($r->{status}, 409, 'a key held by a request in flight: 409');
    is($r->{json} && $r->{json}{error}{code}, 'idempotency_key_in_use',
        'code idempotency_key_in_use');
    is($r->{headers}{'x-should-retry'}, 'true', 'x-should-retry: true');
    is(threads_of($k), 0, 'nothing was stored');
    waitpid($pid, 0);
    $r = create($k, 'busy-1', '{}');
    is($r->{status}, 200, 'once it is done, the retry creates');
    is(threads_of($k), 1, 'one thread');
};

$scenario{'concurrent'} = sub {
    my $k = "idem-conc-$$";
    my $body = '{"metadata":{"same":"body"}}';
    my @socks = map { send_req(method => 'POST', path => '/v1/threads',
        key => $k, idem => 'one-key', body => $body) } 1 .. 50;
    my @r = map { read_res($_) } @socks;
    my @st = map { $_->{status} } @r;
    my @ok = grep { $_->{status} == 200 } @r;
    is(scalar(grep { $_ != 200 && $_ != 409 } @st), 0,
        '50 concurrent identical creates: each a 200 or a 409 ('
        . statuses(@st) . ')');
    ok(@ok >= 1, 'at least one 200');
    is(threads_of($k), 1, 'exactly one thread was stored');
    my %ids = map { (($_->{json} && $_->{json}{id}) // 'none') => 1 } @ok;
    is(scalar(keys %ids), 1, 'every 200 carries the same id');
    is(scalar(grep { !exists $_->{headers}{'idempotent-replayed'} } @ok), 1,
        'exactly one 200 is the original, the others replays');
    my %bodies = map { $_->{body} => 1 } @ok;
    is(scalar(keys %bodies), 1, 'with the same body');
    is(scalar(grep { $_->{status} == 409
                     && ($_->{json}{error}{code} // '')
                        eq 'idempotency_key_in_use' } @r),
        scalar(grep { $_ == 409 } @st), 'every 409 says in use');
    # the SDK's way: retry the 409s until they replay
    my $end = time + 10;
    my @busy = grep { $_->{status} == 409 } @r;
    while (@busy && time < $end) {
        sleep 0.1;
        @busy = grep { $_->{status} == 409 }
            map { create($k, 'one-key', $body) } @busy;
    }
    is(scalar(@busy), 0, 'retried, the 409s get the stored answer');
    is(threads_of($k), 1, 'still one thread');
};

$scenario{'expiry'} = sub {
    my $k = "idem-ttl-$$";
    my $o = owner_of($k);
    # a ttl of 2 s; time moves by created_at, set back with psql
    my $age = sub {
        my ($table, $id, $secs) = @_;
        psql("UPDATE $table SET created_at = floor(extract(epoch FROM now()))"
            . "::bigint - $secs WHERE owner = '$o' AND id = '$id'");
    };
    my $r1 = create($k, 'ttl-1', '{"metadata":{"v":"1"}}');
    is($r1->{status}, 200, 'a keyed create');
    like($r1->{json}{id}, qr/^thread_\w{22}AA$/, 'its id is generation 0');
    my $tid = req(method => 'POST', path => '/v1/threads', key => $k,
        body => '{}')->{json}{id};
    my $m1 = req(method => 'POST', path => "/v1/threads/$tid/messages",
        key => $k, idem => 'ttl-m',
        body => '{"role":"user","content":"one"}');
    my $c1 = req(method => 'POST', path => '/v1/conversations', key => $k,
        idem => 'ttl-c', body => '{"metadata":{"v":"1"}}');
    like($m1->{json}{id} // '', qr/^msg_\w{22}AA$/, 'a keyed message');
    like($c1->{json}{id} // '', qr/^conv_\w{22}AA$/, 'a keyed conversation');
    $age->('threads', $r1->{json}{id}, 1);
    my $r2 = create($k, 'ttl-1', '{"metadata":{"v":"1"}}');
    is($r2->{headers}{'idempotent-replayed'}, 'true',
        'replayed a second on, within threads_idempotency_ttl');
    is($r2->{body} =~ s/"created_at" : \d+/T/r,
       $r1->{body} =~ s/"created_at" : \d+/T/r, 'the same answer');
    # created_at exactly ttl seconds back (within one second of the
    # clock, tried again if it ticked meanwhile): still replayed, so a key
    # is kept at least the ttl
    my $edge;
    for (1 .. 5) {
        my $t = int(time);
        $age->('threads', $r1->{json}{id}, 2);
        $edge = create($k, 'ttl-1', '{"metadata":{"v":"1"}}');
        last if int(time) == $t;
    }
    is($edge->{headers}{'idempotent-replayed'}, 'true',
        'replayed with created_at ttl seconds back');
    $age->('threads', $r1->{json}{id}, 4);
    $age->('messages', $m1->{json}{id}, 4);
    $age->('conversations', $c1->{json}{id}, 4);
    my $r4 = create($k, 'ttl-1', '{"metadata":{"v":"2"}}');
    is($r4->{status}, 200, 'expired, the key serves a new create');
    ok(!exists $r4->{headers}{'idempotent-replayed'}, 'not a replay');
    is($r4->{json}{id}, substr($r1->{json}{id}, 0, -2) . 'AB',
        'a new thread, of generation 1');
    my $r5 = create($k, 'ttl-1', '{"metadata":{"v":"2"}}');
    is($r5->{headers}{'idempotent-replayed'}, 'true',
        'the key replays the new answer');
    is($r5->{body}, $r4->{body}, 'byte for byte');
    is(create($k, 'ttl-1', '{"metadata":{"v":"1"}}')->{status}, 422,
        'the first body is now another body');
    is(threads_of($k), 3, 'three threads (one unkeyed)');
    my $m2 = req(method => 'POST', path => "/v1/threads/$tid/messages",
        key => $k, idem => 'ttl-m',
        body => '{"role":"user","content":"two"}');
    is($m2->{status}, 200, 'an expired message key adds a message');
    is($m2->{json}{id}, substr($m1->{json}{id}, 0, -2) . 'AB',
        'of generation 1');
    my $c2 = req(method => 'POST', path => '/v1/conversations', key => $k,
        idem => 'ttl-c', body => '{"metadata":{"v":"1"}}');
    ok(!exists $c2->{headers}{'idempotent-replayed'},
        'an expired conversation key, the same body: not a replay');
    is($c2->{json}{id}, substr($c1->{json}{id}, 0, -2) . 'AB',
        'a new conversation, of generation 1');

    # generation 1 deleted: its key still replays, then expires, and the
    # walk passes a row (0) and a tombstone (1) to make generation 2
    is(req(method => 'DELETE', path => "/v1/threads/$r4->{json}{id}",
        key => $k)->{status}, 200, 'generation 1 deleted');
    my $r6 = create($k, 'ttl-1', '{"metadata":{"v":"2"}}');
    is($r6->{headers}{'idempotent-replayed'}, 'true',
        'its key replays from the tombstone');
    is($r6->{body}, $r4->{body}, 'byte for byte');
    psql("UPDATE thread_tombstones SET created_at = created_at - 4"
        . " WHERE owner = '$o' AND id = '$r4->{json}{id}'");
    my $r7 = create($k, 'ttl-1', '{"metadata":{"v":"3"}}');
    is($r7->{status}, 200, 'expired again: a new create');
    is($r7->{json}{id}, substr($r1->{json}{id}, 0, -2) . 'AC',
        'of generation 2');
    is(create($k, 'ttl-1', '{"metadata":{"v":"3"}}')->{headers}
        {'idempotent-replayed'}, 'true', 'which the key replays');
    is(threads_of($k), 3, 'three threads: generations 0 and 2, one unkeyed');

    # the fast statement meets a tombstone of generation 0: the whole one
    # walks on to generation 1
    my $g = create($k, 'ttl-2', '{}');
    is(req(method => 'DELETE', path => "/v1/threads/$g->{json}{id}",
        key => $k)->{status}, 200, 'a keyed thread deleted');
    psql("UPDATE thread_tombstones SET created_at = created_at - 4"
        . " WHERE owner = '$o' AND id = '$g->{json}{id}'");
    is(create($k, 'ttl-2', '{}')->{json}{id},
        substr($g->{json}{id}, 0, -2) . 'AB',
        'its expired key makes generation 1 past the tombstone');

    # 100 generations at most: then the key stays a 422
    my $h = create($k, 'ttl-3', '{}');
    my $base = substr($h->{json}{id}, 0, -2);
    psql("INSERT INTO threads (owner, id, created_at, key_digest)"
        . " SELECT '$o', threads_key_gen('$h->{json}{id}', n), 1,"
        . " '\\x00'::bytea FROM generate_series(1, 99) n;"
        . " UPDATE threads SET created_at = 1 WHERE owner = '$o'"
        . " AND id = '$h->{json}{id}'");
    my $cap = create($k, 'ttl-3', '{}');
    is($cap->{status}, 422, 'a key past its 100th generation is a 422');
    is($cap->{json}{error}{code} // '', 'idempotency_key_reused',
        'idempotency_key_reused');
    my $g99 = psql("SELECT threads_key_gen('$h->{json}{id}', 99)");
    is($g99, "${base}Bl", 'generation 99 ends Bl (62 + 37)');
    psql("DELETE FROM threads WHERE owner = '$o' AND id = '$g99'");
    is(create($k, 'ttl-3', '{}')->{json}{id}, $g99,
        'and the 100th is the last one made');

    # items keep their answers in idempotency_keys, for the ttl
    my $cid = req(method => 'POST', path => '/v1/conversations', key => $k,
        body => '{}')->{json}{id};
    is(add_items($k, $cid, 'ttl-i')->{status}, 200, 'keyed items');
    is(psql("SELECT extract(epoch FROM expires_at - created_at)::int"
        . " FROM idempotency_keys WHERE owner = '$o' AND key = 'ttl-i'"), 2,
        'their answer is kept for threads_idempotency_ttl');
    sleep 2.2;
    my $i2 = add_items($k, $cid, 'ttl-i');
    is($i2->{status}, 200, 'once expired, the key adds again');
    ok(!exists $i2->{headers}{'idempotent-replayed'}, 'not a replay');

    # pruning: one keyed add of items in 8 (by the key's hash) deletes up
    # to 32 expired keys of its owner, by index; other owners' keys stay
    my @gate = split ' ', psql("SELECT string_agg(k, ' ') FROM (SELECT"
        . " 'prune-' || i AS k FROM generate_series(1, 1000) i"
        . " WHERE hashtext('prune-' || i) & 7 = 0 LIMIT 3) x");
    my ($skip) = psql("SELECT 'skip-' || i FROM generate_series(1, 1000) i"
        . " WHERE hashtext('skip-' || i) & 7 <> 0 LIMIT 1");
    psql("INSERT INTO idempotency_keys (owner, key, digest, body,"
        . " created_at, expires_at) SELECT '$o', 'old-' || i, 'd', '{}',"
        . " now() - interval '2 days', now() - interval '1 day' + i * interval '1 s'"
        . " FROM generate_series(1, 40) i");
    psql("INSERT INTO idempotency_keys (owner, key, digest, body,"
        . " created_at, expires_at) SELECT 'other-' || i, 'k', 'd', '{}',"
        . " now() - interval '2 days', now() - interval '1 day'"
        . " FROM generate_series(1, 5000) i; ANALYZE idempotency_keys");
    my $old = sub {
        psql("SELECT count(*) FROM idempotency_keys WHERE owner = '$o'"
            . " AND key LIKE 'old-%'");
    };
    my $stats = sub {
        psql("SELECT coalesce(seq_scan, 0) || ' ' || coalesce(("
            . "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname"
            . " = 'idempotency_keys_expiry'), 0) FROM pg_stat_user_tables"
            . " WHERE relname = 'idempotency_keys'");
    };
    my ($seq0, $idx0) = split ' ', $stats->();
    is(add_items($k, $cid, $skip)->{status}, 200, "keyed items ($skip)");
    is($old->(), 40, 'the 7 creates in 8 that do not prune leave them');
    is(add_items($k, $cid, $gate[0])->{status}, 200, "keyed items ($gate[0])");
    is($old->(), 8, 'one that prunes deletes 32 expired keys');
    is(psql("SELECT min(substr(key, 5)::int) FROM idempotency_keys"
        . " WHERE owner = '$o' AND key LIKE 'old-%'"), 33, 'the oldest first');
    add_items($k, $cid, $_) for @gate[1, 2];
    is($old->(), 0, 'the next one deletes the rest');
    SKIP: {
        # on Citus the coordinator holds no rows: its views count nothing
        skip 'index statistics live on the Citus workers\' shards', 2
            if on_citus();
        my ($seq, $idx);
        # statistics reach the views within a few seconds
        ok(wait_for(sub { ($seq, $idx) = split ' ', $stats->();
            $idx >= $idx0 + 3 }, 15),
            'each pruning add went through the (owner, expires_at) index');
        is($seq, $seq0, 'no keyed add scanned the whole table');
    }
    is(psql("SELECT count(*) FROM idempotency_keys WHERE owner LIKE"
        . " 'other-%'"), 5000, 'other owners\' keys are untouched');
    psql("DELETE FROM idempotency_keys WHERE owner LIKE 'other-%'");
};

# A create held by a lock past threads_pg_query_timeout: a 504 whose write
# may still be applied.
$scenario{'timeout'} = sub {
    my $k = "idem-504-$$";
    my $pid = hold_in_background("BEGIN; LOCK TABLE threads IN SHARE MODE;", 1.5);
    my $plain = send_req(method => 'POST', path => '/v1/threads', key => $k,
        body => '{"metadata":{"p":"1"}}');
    my $keyed = send_req(method => 'POST', path => '/v1/threads', key => $k,
        idem => 'slow-1', body => '{"metadata":{"p":"2"}}');
    my ($p, $q) = map { read_res($_) } $plain, $keyed;
    is($p->{status}, 504, 'a create without a key past the query timeout: 504');
    is($p->{headers}{'x-should-retry'}, 'false',
        'x-should-retry: false (its outcome is unknown)');
    is($p->{json} && $p->{json}{error}{type}, 'server_error', 'a server_error');
    is($q->{status}, 504, 'a keyed one too');
    is($q->{headers}{'x-should-retry'}, 'true', 'but x-should-retry: true');
    waitpid($pid, 0);
    my $r;
    ok(wait_for(sub {
        $r = create($k, 'slow-1', '{"metadata":{"p":"2"}}');
        $r->{status} == 200 }, 5), 'the keyed retry succeeds');
    SKIP: {
        # seen with Citus 13.2.2: the coordinator rolls back the writes of
        # a session the module closed at the timeout
        skip 'on Citus a 504\'s write was rolled back', 2
            if on_citus();
        is($r->{headers}{'idempotent-replayed'}, 'true',
            'with the answer of the write the 504 hid');
        ok(wait_for(sub { threads_of($k) == 2 }, 5), 'the unkeyed write was'
            . ' applied too (a blind retry would duplicate)');
    }
    is(psql("SELECT count(*) FROM threads WHERE owner = '" . owner_of($k)
        . "' AND metadata->>'p' = '2'"), 1, 'the keyed one once');
};

$scenario{'unavailable'} = sub {
    my $r = create("idem-503-$$", 'down-1', '{}');
    is($r->{status}, 503, 'no database: 503');
    is($r->{headers}{'retry-after'}, '1', 'Retry-After: 1');
    is($r->{headers}{'x-should-retry'}, 'true', 'x-should-retry: true');
};

# schema version 2 (scripts/schema.sql before this change), then upgraded
(my $v2 = ThreadsTest::conninfo()) =~ s/dbname=\S+/dbname=threads_v2/;
psql_at('postgres', 'DROP DATABASE IF EXISTS threads_v2');
psql_at('postgres', 'CREATE DATABASE threads_v2');
$ENV{TEST_NGINX_THREADS_V2_CONNINFO} = $v2;
apply_schema('threads_v2');
{
    local $ENV{TEST_NGINX_PG_CONNINFO} = $v2;
    # back to version 2: what versions 3 and up added goes
    psql("DROP TABLE thread_metadata, conversation_metadata;"
        . " CREATE INDEX threads_metadata ON threads"
        . "  USING gin (metadata jsonb_path_ops);"
        . " DROP TABLE idempotency_keys; DROP TABLE conversation_item_tombstones,"
        . " conversation_tombstones, conversation_items, conversations;"
        . " ALTER TABLE threads DROP COLUMN key_digest;"
        . " ALTER TABLE messages DROP COLUMN key_digest;"
        . " ALTER TABLE thread_tombstones DROP COLUMN key_digest,"
        . "  DROP COLUMN created_at;"
        . " ALTER TABLE message_tombstones DROP COLUMN key_digest,"
        . "  DROP COLUMN created_at;"
        . " DELETE FROM threads_schema WHERE version >= 3");
    seed_thread(key => 'k1', id => 'thread_' . ('W' x 24));
}

$scenario{'upgrade'} = sub {
    my $r = create('k1', 'up-1', '{}');
    is($r->{status}, 503, 'on a version 2 schema a keyed create is a 503');
    apply_schema('threads_v2');
    apply_schema('threads_v2');
    ok(wait_for(sub { $r = create('k1', 'up-1', '{}'); $r->{status} == 200 },
        5), 'scripts/schema.sql (applied twice) upgrades it: keyed creates'
        . ' work');
    my $again = create('k1', 'up-1', '{}');
    is($again->{headers}{'idempotent-replayed'}, 'true', 'and replay');
    local $ENV{TEST_NGINX_PG_CONNINFO} = $v2;
    is(psql("SELECT count(*) FROM threads WHERE id = 'thread_" . ('W' x 24)
        . "'"), 1, 'the version 2 data was kept');
    is(psql('SELECT max(version) FROM threads_schema'), 9,
        'the schema says version 9');
};

$scenario{'sdk'} = sub {
    SKIP: {
        skip 'the OpenAI Node SDK is not installed', 2
            if !-d 't/sdk/node_modules/openai'
               || system('node --version >/dev/null 2>&1') != 0;
        my $out = `node t/sdk/idempotency.mjs http://127.0.0.1:$PORT/v1 2>&1`;
        is($?, 0, 'the SDK idempotency checks pass') or diag($out);
        like($out, qr/^ok \d+ - the SDK retry with a key stores one thread$/m,
            'the SDK\'s retry after a lost response stored one thread');
    }
};

# A fresh key's create is one statement; only a key seen before (or held)
# takes a second one, which tells replay, reused and busy apart.
$scenario{'fresh-key'} = sub {
    my $k = "idem-fresh-$$";
    my $r = create($k, "fresh-" . time, '{"metadata":{"f":"1"}}');
    is($r->{status}, 200, 'a fresh key creates');
    is(threads_of($k), 1, 'one thread');
};

$scenario{'seen-key'} = sub {
    my $k = "idem-seen-$$";
    my $idem = "seen-" . time;
    my $r1 = create($k, $idem, '{"metadata":{"s":"1"}}');
    my $r2 = create($k, $idem, '{"metadata":{"s":"1"}}');
    is($r2->{status}, 200, 'the replay is a 200');
    is($r2->{headers}{'idempotent-replayed'}, 'true', 'marked replayed');
    is($r2->{body}, $r1->{body}, 'byte for byte');
    my $r3 = create($k, $idem, '{"metadata":{"s":"2"}}');
    is($r3->{status}, 422, 'another body: 422');
    is(threads_of($k), 1, 'one thread');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: replays, another body, another owner, messages, validation
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: replay
--- error_code: 404
--- timeout: 30
--- no_error_log
[error]
[alert]

=== TEST 2: malformed keys are a 400 naming Idempotency-Key
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: bad-keys
--- error_code: 404
--- timeout: 30
--- no_error_log
[error]
[alert]

=== TEST 3: a key in flight is a 409
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: in-flight
--- error_code: 404
--- timeout: 30
--- no_error_log
[error]
[alert]

=== TEST 4: 50 concurrent identical creates with one key store one thread
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: concurrent
--- error_code: 404
--- timeout: 60
--- no_error_log
[error]
[alert]

=== TEST 5: keys expire after threads_idempotency_ttl and are pruned by index
--- config
    threads_json_errors on;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        threads_idempotency_ttl 2s;
    }
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: expiry
--- error_code: 404
--- timeout: 60
--- no_error_log
[error]
[alert]

=== TEST 6: a 504 says whether a retry is safe
--- http_config eval
$ThreadsTest::HTTP_CONFIG . "    threads_pg_query_timeout 400ms;\n"
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: timeout
--- error_code: 404
--- timeout: 30
--- no_error_log
[alert]

=== TEST 7: a 503 says retry
--- http_config
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=127.0.0.1 port=1 dbname=threads_test user=postgres";
    threads_pg_connect_timeout 1s;
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: unavailable
--- error_code: 503
--- response_headers
Retry-After: 1
x-should-retry: true
--- timeout: 30
--- no_error_log
[alert]

=== TEST 8: a version 2 schema is upgraded by scripts/schema.sql
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_V2_CONNINFO/;
$c
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: upgrade
--- error_code: 503
--- timeout: 30
--- error_log eval
qr/the database has schema version 2, this module needs [69]:/
--- no_error_log
[alert]

=== TEST 9: the stock Node SDK retries a create whose response was lost
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: sdk
--- error_code: 404
--- timeout: 90
--- no_error_log
[alert]

=== TEST 10: conversations and their items take a key
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: conversations
--- error_code: 404
--- timeout: 30
--- no_error_log
[error]
[alert]


=== TEST 11: a fresh key's create is one statement
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: fresh-key
--- error_code: 404
--- timeout: 30
--- error_log
threads: idempotency key: new
--- no_error_log
idempotency key seen before
[error]
[alert]

=== TEST 12: a key seen before is asked about in a second statement
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: seen-key
--- error_code: 404
--- timeout: 30
--- error_log eval
# threads_pg_citus on: the keyed create's function answers in one row
[($ENV{TEST_NGINX_PG_CITUS} ? ()
  : ('threads: idempotency key seen before, asking how')),
 'threads: idempotency key: replay', 'threads: idempotency key: reused']
--- no_error_log eval
['[error]', '[alert]',
 ($ENV{TEST_NGINX_PG_CITUS} ? ('idempotency key seen before') : ())]
