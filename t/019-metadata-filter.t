# Listings filtered by a metadata pair (issue 15): the pairs live in
# thread_metadata and conversation_metadata (schema version 6), written by
# the statement that writes the object; a filtered page is read from that
# index and each row checked against its object.  Pages in both orders,
# after and before cursors, creates plain and keyed, updates, deletes,
# conversions, empty and non-ASCII pairs, and the plan of a big owner's
# rare pair.
use utf8;
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use HTTP::Tiny;

no_shuffle();
use_api_defaults();

my %scenario;
my $K = "filter-$$-" . time;

sub enc {
    my ($s) = @_;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# the query of a listing filtered by KEY=VALUE, with more args
sub filter {
    my ($k, $v, $more) = @_;
    return 'metadata%5B' . enc($k) . '%5D=' . enc($v)
        . (defined $more ? "&$more" : '');
}

# (ids, page) of GET PATH
sub ids {
    my ($path, $key) = @_;
    my ($st, $p) = api('GET', $path, undef, $key);
    is($st, 200, "GET $path") or diag(explain($p));
    return ([ map { $_->{id} } @{ ref $p eq 'HASH' ? $p->{data} : [] } ], $p);
}

sub decoded {
    my ($s) = @_;
    utf8::decode($s);
    return $s;
}

# "k=v,k=v" of an object's rows in TABLE, joined to it by (owner, seq)
sub pairs_of {
    my ($table, $parent, $key, $id) = @_;
    return decoded(psql("SELECT coalesce(string_agg(m.key || '=' || m.value,"
        . " ',' ORDER BY m.key, m.value), '') FROM $table m JOIN $parent t"
        . " ON t.owner = m.owner AND t.seq = m.seq WHERE t.owner = '"
        . owner_of($key) . "' AND t.id = '$id'"));
}

sub rows_at_seq {
    my ($table, $key, $seq) = @_;
    return psql("SELECT count(*) FROM $table WHERE owner = '" . owner_of($key)
        . "' AND seq = $seq");
}

# a POST with an Idempotency-Key: (status, body, headers)
sub keyed_post {
    my ($path, $body, $key, $idem) = @_;
    my $port = ThreadsTest::nginx_port();
    my $res = HTTP::Tiny->new(timeout => 10)->request('POST',
        "http://127.0.0.1:$port$path", { headers => {
            Authorization => "Bearer $key", 'Idempotency-Key' => $idem,
            'Content-Type' => 'application/json' }, content => $body });
    my $data = eval { json()->decode($res->{content}) } // $res->{content};
    return ($res->{status}, $data, $res->{headers});
}

# Follows a filtered listing page by page (after = last_id); all ids seen.
sub walk {
    my ($path, $key) = @_;
    my (@seen, $q);
    $q = '';
    for my $n (1 .. 50) {
        my ($ids, $page) = ids("$path$q", $key);
        push @seen, @$ids;
        last unless ref $page eq 'HASH' && $page->{has_more};
        $q = "&after=$page->{last_id}";
    }
    return @seen;
}


# EXPLAIN ANALYZE of a statement for ARGS, custom plan or generic
sub explain_stmt {
    my ($name, $types, $args, $generic) = @_;
    return psql(($generic ? "SET plan_cache_mode = force_generic_plan;\n"
                          : '')
        . "PREPARE s($types) AS " . module_sql('threads_' . lc $name) . ";\n"
        . "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE s($args);");
}

# the same for a statement that writes, rolled back
sub explain_write {
    my ($name, $types, $args, $generic) = @_;
    return psql("BEGIN;\n"
        . ($generic ? "SET LOCAL plan_cache_mode = force_generic_plan;\n"
                    : '')
        . "PREPARE w($types) AS " . module_sql('threads_' . lc $name) . ";\n"
        . "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE w($args);\n"
        . "ROLLBACK;");
}

$scenario{threads} = sub {
    my (@t, @a);
    for my $i (1 .. 12) {
        my ($st, $t) = api('POST', '/v1/threads', json()->encode({
            metadata => { team => $i % 2 ? 'a' : 'b', n => "$i" } }), $K);
        is($st, 200, "create $i") or return;
        push @t, $t->{id};
        push @a, $t->{id} if $i % 2;
    }
    is(pairs_of('thread_metadata', 'threads', $K, $t[0]), 'n=1,team=a',
        'a create writes its pairs');
    is(pairs_of('thread_metadata', 'threads', $K, $t[1]), 'n=2,team=b',
        'each its own');
    api('POST', '/v1/threads', '{"metadata":{"team":"a"}}', "$K-other");

    my ($ids, $p) = ids('/v1/threads?' . filter('team', 'a', 'limit=100'), $K);
    is_deeply($ids, [ reverse @a ], 'team=a: only the matching threads, of'
        . ' this owner, newest first');
    ok(!$p->{has_more}, 'no more');
    is($p->{data}[0]{object}, 'thread', 'thread objects');
    is_deeply($p->{data}[0]{metadata}, { team => 'a', n => '11' },
        'with their metadata');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'order=asc&limit=100'),
        $K);
    is_deeply($ids, \@a, 'oldest first with order=asc');
    ($ids) = ids('/v1/threads?' . filter('n', '1'), $K);
    is_deeply($ids, [ $t[0] ], 'n=1: the one');
    ($ids) = ids('/v1/threads?' . filter('team', 'A'), $K);
    is_deeply($ids, [], 'values compare exactly');
    ($ids) = ids('/v1/threads?' . filter('nobody', 'a'), $K);
    is_deeply($ids, [], 'a key no thread has');

    # pages and cursors, both orders
    is_deeply([ walk('/v1/threads?' . filter('team', 'a', 'limit=2'), $K) ],
        [ reverse @a ], 'desc pages of 2 walk every match once');
    is_deeply([ walk('/v1/threads?' . filter('team', 'a',
        'order=asc&limit=4'), $K) ], \@a, 'asc pages of 4');
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a', 'limit=5'), $K);
    ok($p->{has_more}, 'limit 5 of 6: has_more');
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a', 'limit=6'), $K);
    ok(!$p->{has_more}, 'limit 6 of 6: no more');
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a',
        "limit=2&before=$a[2]"), $K);
    is_deeply($ids, [ @a[4, 3] ], 'desc before: the two just newer');
    ok($p->{has_more}, 'and more beyond');
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a',
        "order=asc&limit=2&before=$a[3]"), $K);
    is_deeply($ids, [ @a[1, 2] ], 'asc before: the two just older');
    ok($p->{has_more}, 'and more before them');
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a',
        "order=asc&after=$a[0]&before=$a[4]"), $K);
    is_deeply($ids, [ @a[1 .. 3] ], 'after and before bound the page');
    ok(!$p->{has_more}, 'nothing more between them');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', "after=$t[5]"), $K);
    is_deeply($ids, [ @a[2, 1, 0] ], 'a cursor that does not match pages');
    ($ids) = ids('/v1/threads?' . filter('team', 'a',
        "order=asc&after=$t[5]"), $K);
    is_deeply($ids, [ @a[3 .. 5] ], 'asc too');
    my ($st) = api('GET', '/v1/threads?' . filter('team', 'a',
        'after=thread_' . ('Q' x 24)), undef, $K);
    is($st, 404, 'a cursor that names nothing: 404');

    # empty and non-ASCII pairs
    my ($s1, $e) = api('POST', '/v1/threads', '{"metadata":{"e":""}}', $K);
    ($ids) = ids('/v1/threads?' . filter('e', ''), $K);
    is_deeply($ids, [ $e->{id} ], 'an empty value is a value');
    is(pairs_of('thread_metadata', 'threads', $K, $e->{id}), 'e=',
        'stored as the empty string');
    my ($uk, $uv) = ('ключ名', "välüe ☃ 名\x{1F600}");
    my ($s2, $u) = api('POST', '/v1/threads',
        json()->encode({ metadata => { $uk => $uv } }), $K);
    ($ids) = ids('/v1/threads?' . filter($uk, $uv), $K);
    is_deeply($ids, [ $u->{id} ], 'a non-ASCII pair');
    is(pairs_of('thread_metadata', 'threads', $K, $u->{id}), "$uk=$uv",
        'stored as sent');
    ($ids) = ids('/v1/threads?' . filter($uk, 'välüe'), $K);
    is_deeply($ids, [], 'a prefix of it is another value');

    # an update replaces the pairs
    ($st) = api('POST', "/v1/threads/$a[0]",
        '{"metadata":{"team":"c","n":"1"}}', $K);
    is($st, 200, 'modify the oldest team=a thread to team=c');
    is(pairs_of('thread_metadata', 'threads', $K, $a[0]), 'n=1,team=c',
        'its pairs follow');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'order=asc'), $K);
    is_deeply($ids, [ @a[1 .. 5] ], 'the old pair no longer matches');
    ($ids) = ids('/v1/threads?' . filter('team', 'c'), $K);
    is_deeply($ids, [ $a[0] ], 'the new pair does');
    ($ids) = ids('/v1/threads?' . filter('n', '1'), $K);
    is_deeply($ids, [ $a[0] ], 'a pair kept still does');
    ($st) = api('POST', "/v1/threads/$a[0]",
        '{"tool_resources":{"code_interpreter":{"file_ids":["f"]}}}', $K);
    is($st, 200, 'modify tool_resources only');
    is(pairs_of('thread_metadata', 'threads', $K, $a[0]), 'n=1,team=c',
        'the pairs stay');
    ($st) = api('POST', "/v1/threads/$a[0]", '{"metadata":{}}', $K);
    is(pairs_of('thread_metadata', 'threads', $K, $a[0]), '',
        'metadata {} leaves no pair');
    ($ids) = ids('/v1/threads?' . filter('team', 'c'), $K);
    is_deeply($ids, [], 'and nothing matches');

    # a delete removes them
    my $seq = psql("SELECT seq FROM threads WHERE id = '$a[1]'");
    is(rows_at_seq('thread_metadata', $K, $seq), 2, 'two pairs before');
    ($st) = api('DELETE', "/v1/threads/$a[1]", undef, $K);
    is($st, 200, 'delete one');
    is(rows_at_seq('thread_metadata', $K, $seq), 0, 'its pairs are gone');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'order=asc'), $K);
    is_deeply($ids, [ @a[2 .. 5] ], 'and it is not listed');
    ($ids) = ids('/v1/threads?' . filter('team', 'a',
        "order=asc&after=$a[1]"), $K);
    is_deeply($ids, [ @a[2 .. 5] ], 'a deleted cursor still pages');

    # keyed creates, a replay writes nothing more
    my $body = '{"metadata":{"team":"a","n":"keyed"}}';
    my ($ks, $kt, $kh) = keyed_post('/v1/threads', $body, $K, "fk-$$");
    is($ks, 200, 'a keyed create');
    ($ks, my $kt2, $kh) = keyed_post('/v1/threads', $body, $K, "fk-$$");
    is($kh->{'idempotent-replayed'}, 'true', 'replayed');
    is(pairs_of('thread_metadata', 'threads', $K, $kt->{id}),
        'n=keyed,team=a', 'a keyed create writes its pairs, once');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'limit=1'), $K);
    is_deeply($ids, [ $kt->{id} ], 'listed first');

    # the page comes from the pairs, each checked against its thread
    my $behind = seed_thread(key => $K, metadata => '{"team":"a"}');
    ($ids) = ids('/v1/threads?limit=1', $K);
    is_deeply($ids, [ $behind ], 'a thread written behind the module\'s back');
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'limit=1'), $K);
    is_deeply($ids, [ $kt->{id} ], 'has no pairs, so no filter finds it');
    psql("INSERT INTO thread_metadata (owner, key, value, seq)"
        . " SELECT t.owner, e.key, e.value #>> '{}', t.seq"
        . " FROM threads t, jsonb_each(t.metadata) e"
        . " WHERE jsonb_typeof(e.value) = 'string' ON CONFLICT DO NOTHING");
    ($ids) = ids('/v1/threads?' . filter('team', 'a', 'limit=1'), $K);
    is_deeply($ids, [ $behind ], 'until schema.sql\'s backfill runs again');
    psql("INSERT INTO thread_metadata SELECT owner, 'team', 'a', seq"
        . " FROM threads WHERE id = '$t[1]'");
    ($ids, $p) = ids('/v1/threads?' . filter('team', 'a',
        "order=asc&limit=2&after=$t[0]"), $K);
    is_deeply($ids, [ @a[2, 3] ], 'a pair the thread no longer holds is'
        . ' not listed');
    ok($p->{has_more}, 'nor counted');
};

# Updates of one thread that wait on each other's row lock each read the
# pairs as they were before the others: a pair may be left over, never
# listed (a run here left n=2,n=3,n=4,n=8,team=r2,...,team=r8 for a thread
# whose metadata was team=r8); the pairs of the metadata that won are all
# there.
$scenario{race} = sub {
    my ($st, $t) = api('POST', '/v1/threads', '{"metadata":{"team":"r0"}}',
        $K);
    my $holder = lock_row_in_background($t->{id}, 1.5);
    my @socks = map { raw_request('POST', "/v1/threads/$t->{id}",
        '{"metadata":{"team":"r' . $_ . '","n":"' . $_ . '"}}', $K) } 1 .. 8;
    ok(wait_for(sub { module_waiting_on_lock() >= 2 }, 5),
        'updates wait on one another');
    my @st = map { local $/; my $r = <$_>; $r =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0 }
        @socks;
    waitpid($holder, 0);
    is_deeply(\@st, [ (200) x 8 ], 'each applied');
    my ($s2, $now) = api('GET', "/v1/threads/$t->{id}", undef, $K);
    my $won = $now->{metadata}{team};
    like(pairs_of('thread_metadata', 'threads', $K, $t->{id}),
        qr/(^|,)n=$now->{metadata}{n}(,|$).*team=$won/,
        "the pairs of the metadata that won ($won) are there");
    my @listed;
    for my $v (map { "r$_" } 0 .. 8) {
        my ($ids) = ids('/v1/threads?' . filter('team', $v), $K);
        push @listed, $v if grep { $_ eq $t->{id} } @$ids;
    }
    is_deeply(\@listed, [ $won ], 'only the pair it holds lists it');
};

# A big owner's rare pair reads its page, not the owner's threads.
$scenario{plan} = sub {
    # on Citus the coordinator's plan is one task: the shards' plans are on
    # the workers
    return pass('plans are read on plain PostgreSQL only') if on_citus();
    my $o = 'plan-owner';
    psql("INSERT INTO threads (owner, id, created_at, metadata)"
        . " SELECT '$o', 'thread_pl' || lpad(g::text, 22, '0'), 1764200000,"
        . " jsonb_build_object('n', g::text, 'rare',"
        . "  CASE WHEN g % 500 = 0 THEN 'yes' ELSE 'no' END)"
        . " FROM generate_series(1, 30000) g ON CONFLICT DO NOTHING;"
        . " INSERT INTO thread_metadata SELECT t.owner, e.key, e.value #>> '{}',"
        . " t.seq FROM threads t, jsonb_each(t.metadata) e WHERE t.owner = '$o'"
        . " ON CONFLICT DO NOTHING; ANALYZE threads; ANALYZE thread_metadata");
    my $deep = psql("SELECT id FROM threads WHERE owner = '$o'"
        . " AND metadata->>'rare' = 'yes' ORDER BY seq LIMIT 1 OFFSET 30");
    my $types = 'text,int,text,text,bigint,text,text';
    for my $case (
        [ 'FILTER_DF', "'$o',20,NULL,NULL,1048576,'rare','yes'", 'desc' ],
        [ 'FILTER_AF', "'$o',20,NULL,NULL,1048576,'rare','yes'", 'asc' ],
        [ 'FILTER_DF', "'$o',20,NULL,'$deep',1048576,'rare','yes'",
          'desc, deep after cursor' ],
        [ 'FILTER_AB', "'$o',20,NULL,'$deep',1048576,'rare','yes'",
          'asc, deep before cursor' ],
        [ 'FILTER_DF', "'$o',20,NULL,NULL,1048576,'rare','no'",
          'desc, a common pair' ])
    {
        my ($stmt, $args, $what) = @$case;
        for my $generic (0, 1) {
            my $name = "$what, " . ($generic ? 'generic' : 'custom') . ' plan';
            my $plan = explain_stmt("THREAD_$stmt", $types, $args, $generic);
            my ($pairs) = $plan =~ m{Index\ Only\ Scan(?:\ Backward)?\ using
                \ thread_metadata_pkey\ on\ thread_metadata\ k\ \(actual
                \ [^)]*\ rows=(\d+)\ loops=1\)}x;
            ok(defined $pairs && $pairs <= 21,
                "$name: at most a page of pairs read ("
                . ($pairs // 'no pair index scan') . ')') or diag($plan);
            my ($loops) = $plan =~ m{Index\ Scan\ using\ threads_by_seq
                \ on\ threads\ t\ \(actual\ [^)]*\ loops=(\d+)\)}x;
            ok(defined $loops && $loops <= 21,
                "$name: each joined to its thread ("
                . ($loops // 'no join') . ' lookups)') or diag($plan);
            unlike($plan, qr/Seq Scan|Merge Join|Hash Join/,
                "$name: no scan of the owner's threads");
        }
    }

    # Modifying or deleting an object whose pair 29,940 others share (its
    # rare=no) reads that object's pairs only, custom plan or generic.
    psql("INSERT INTO conversations (owner, id, created_at, metadata)"
        . " SELECT '$o', 'conv_pl' || lpad(g::text, 24, '0'), 1764200000,"
        . " jsonb_build_object('n', g::text, 'rare',"
        . "  CASE WHEN g % 500 = 0 THEN 'yes' ELSE 'no' END)"
        . " FROM generate_series(1, 30000) g ON CONFLICT DO NOTHING;"
        . " INSERT INTO conversation_metadata SELECT c.owner, e.key,"
        . " e.value #>> '{}', c.seq FROM conversations c,"
        . " jsonb_each(c.metadata) e WHERE c.owner = '$o'"
        . " ON CONFLICT DO NOTHING; ANALYZE conversations;"
        . " ANALYZE conversation_metadata");
    my $t = 'thread_pl' . ('0' x 19) . '501';
    my $c = 'conv_pl' . ('0' x 21) . '501';
    for my $case (
        [ 'THREAD_MODIFY', 'text,text,jsonb,jsonb',
          "'$o','$t','{\"n\":\"501\"}',NULL", 'thread_metadata', 1 ],
        [ 'THREAD_DELETE', 'text,text', "'$o','$t'", 'thread_metadata', 2 ],
        [ 'CONV_MODIFY', 'text,text,jsonb', "'$o','$c','{\"n\":\"501\"}'",
          'conversation_metadata', 1 ],
        [ 'CONV_DELETE', 'text,text', "'$o','$c'", 'conversation_metadata',
          2 ])
    {
        my ($stmt, $types, $args, $table, $gone) = @$case;
        for my $generic (0, 1) {
            my $name = "$stmt, " . ($generic ? 'generic' : 'custom') . ' plan';
            my $plan = explain_write($stmt, $types, $args, $generic);
            my ($rows) = $plan =~ m{Index\ Scan\ using\ \Q$table\E_seq
                \ on\ \Q$table\E\ k\ \(actual\ [^)]*\ rows=(\d+)
                \ loops=1\)}x;
            is($rows // 'no scan by seq', $gone,
                "$name: the object's pairs to delete read by its seq, no"
                . ' other') or diag($plan);
            unlike($plan, qr/Seq Scan|Rows Removed by (?:Join )?Filter: [1-9]\d/,
                "$name: no pair read and thrown away") or diag($plan);
        }
    }
};

$scenario{conversations} = sub {
    my (@c, @a);
    for my $i (1 .. 8) {
        my ($st, $c) = api('POST', '/v1/conversations', json()->encode({
            metadata => { team => $i % 2 ? 'a' : 'b', n => "$i" } }), $K);
        is($st, 200, "create conversation $i") or return;
        push @c, $c->{id};
        push @a, $c->{id} if $i % 2;
    }
    is(pairs_of('conversation_metadata', 'conversations', $K, $c[0]),
        'n=1,team=a', 'a create writes its pairs');
    my ($ids, $p) = ids('/v1/conversations?' . filter('team', 'a'), $K);
    is_deeply($ids, [ reverse @a ], 'team=a, newest first');
    is($p->{data}[0]{object}, 'conversation', 'conversation objects');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a', 'order=asc'), $K);
    is_deeply($ids, \@a, 'oldest first');
    is_deeply([ walk('/v1/conversations?' . filter('team', 'a', 'limit=1'),
        $K) ], [ reverse @a ], 'pages of 1');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a',
        "limit=2&before=$a[1]"), $K);
    is_deeply($ids, [ @a[3, 2] ], 'desc before');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a',
        "order=asc&limit=2&before=$a[2]"), $K);
    is_deeply($ids, [ @a[0, 1] ], 'asc before');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a',
        "order=asc&after=$c[2]"), $K);
    is_deeply($ids, [ @a[2, 3] ], 'asc after a cursor that does not match');

    my ($st) = api('POST', "/v1/conversations/$a[0]",
        json()->encode({ metadata => { team => 'z', 'é' => '' } }), $K);
    is($st, 200, 'modify');
    is(pairs_of('conversation_metadata', 'conversations', $K, $a[0]),
        'team=z,é=', 'its pairs follow');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a', 'order=asc'), $K);
    is_deeply($ids, [ @a[1 .. 3] ], 'the old pair no longer matches');
    ($ids) = ids('/v1/conversations?' . filter('é', ''), $K);
    is_deeply($ids, [ $a[0] ], 'the new ones do');

    my $seq = psql("SELECT seq FROM conversations WHERE id = '$a[1]'");
    ($st) = api('DELETE', "/v1/conversations/$a[1]", undef, $K);
    is($st, 200, 'delete');
    is(rows_at_seq('conversation_metadata', $K, $seq), 0, 'its pairs go');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a', 'order=asc'), $K);
    is_deeply($ids, [ @a[2, 3] ], 'not listed');

    my ($ks, $kc) = keyed_post('/v1/conversations',
        '{"metadata":{"team":"a"}}', $K, "fc-$$");
    is($ks, 200, 'a keyed create');
    is(pairs_of('conversation_metadata', 'conversations', $K, $kc->{id}),
        'team=a', 'writes its pairs');
    ($ids) = ids('/v1/conversations?' . filter('team', 'a', 'limit=1'), $K);
    is_deeply($ids, [ $kc->{id} ], 'listed');

    # a thread made a conversation brings its metadata
    my ($s1, $t) = api('POST', '/v1/threads',
        '{"metadata":{"from":"thread","team":"a"}}', $K);
    my ($s2, $cv) = api('POST', "/v1/threads/$t->{id}/conversation", undef,
        $K);
    is($s2, 200, 'a thread made a conversation') or diag(explain($cv));
    is(pairs_of('conversation_metadata', 'conversations', $K, $cv->{id}),
        'from=thread,team=a', 'with its pairs');
    ($ids) = ids('/v1/conversations?' . filter('from', 'thread'), $K);
    is_deeply($ids, [ $cv->{id} ], 'found by them');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: threads filtered by a metadata pair
--- request
GET /v1/threads?metadata[team]=a
--- more_headers
Authorization: Bearer nobody-has-threads
--- scenario: threads
--- error_code: 200
--- json eval
{ object => 'list', data => [], has_more => 0 }
--- timeout: 120
--- no_error_log
[error]

=== TEST 2: updates racing on one thread
--- request
GET /v1/threads?metadata[team]=r0
--- more_headers
Authorization: Bearer nobody-has-threads
--- scenario: race
--- error_code: 200
--- timeout: 60
--- no_error_log
[error]

=== TEST 3: a big owner's rare pair reads a page of pairs
--- request
GET /v1/threads?metadata[rare]=yes
--- more_headers
Authorization: Bearer nobody-has-threads
--- scenario: plan
--- error_code: 200
--- timeout: 120

=== TEST 4: conversations filtered by a metadata pair
--- request
GET /v1/conversations?metadata[team]=a
--- more_headers
Authorization: Bearer nobody-has-threads
--- scenario: conversations
--- error_code: 200
--- json eval
{ object => 'list', data => [], has_more => 0 }
--- timeout: 120
--- no_error_log
[error]
