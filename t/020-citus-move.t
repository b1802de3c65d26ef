# Citus only (scripts/test-citus): creation order holds across a shard
# move.  An owner's threads and a thread's messages are made before and
# after its shard moves to the other worker; every listing then returns
# each of them once, in creation order.  Skipped on plain PostgreSQL.
use lib 't/lib';
use Test::Nginx::Socket;
use ThreadsTest;

if (!ThreadsTest::on_citus()) {
    plan skip_all => 'Citus only: scripts/test-citus runs it';
} else {
    plan 'no_plan';
}

no_shuffle();
use_api_defaults();

our $K = "mover-$$-" . time;

# every id of a listing, following has_more
sub walk {
    my ($path, $order) = @_;
    my (@ids, $after);
    for (1 .. 100) {
        my ($st, $page) = api('GET', "$path?order=$order&limit=7"
            . ($after ? "&after=$after" : ''), undef, $K);
        return "status $st" unless $st == 200 && ref $page;
        push @ids, map { $_->{id} } @{ $page->{data} };
        last unless $page->{has_more};
        $after = $page->{last_id};
    }
    return @ids;
}

sub create_some {
    my ($thread, $n, $tag, $threads, $messages) = @_;
    for my $i (1 .. $n) {
        my ($st, $t) = api('POST', '/v1/threads',
            qq({"metadata":{"m":"$tag-$i"}}), $K);
        push @$threads, $st == 200 && ref $t ? $t->{id} : "bad-$st";
        my ($s, $m) = api('POST', "/v1/threads/$thread/messages",
            qq({"role":"user","content":"$tag-$i"}), $K);
        push @$messages, $s == 200 && ref $m ? $m->{id} : "bad-$s";
    }
}

ThreadsTest::run_scenarios({ move => sub {
    my ($st, $t) = api('POST', '/v1/threads', '{}', $K);
    is($st, 200, 'a thread for the messages') or return;
    my (@threads, @messages) = ($t->{id});
    create_some($t->{id}, 12, 'before', \@threads, \@messages);

    my $owner = owner_of($K);
    my ($shard, $node, $port) = split /\|/, psql("SELECT s.shardid,"
        . " s.nodename, s.nodeport FROM citus_shards s WHERE s.table_name"
        . " = 'threads'::regclass AND s.shardid = get_shard_id_for_"
        . "distribution_column('threads', " . ThreadsTest::quote($owner) . ")");
    my ($to_node, $to_port) = split /\|/, psql("SELECT nodename, nodeport"
        . " FROM pg_dist_node WHERE noderole = 'primary' AND groupid <> 0"
        . " AND NOT (nodename = '$node' AND nodeport = $port) LIMIT 1");
    ok($to_port, "the owner's shard $shard is on $node:$port, moves to"
        . " $to_node:$to_port") or return;
    psql("SELECT citus_move_shard_placement($shard, '$node', $port,"
        . " '$to_node', $to_port, shard_transfer_mode => 'block_writes')");
    is(psql("SELECT nodeport FROM citus_shards WHERE shardid = $shard"),
        $to_port, 'moved');

    create_some($t->{id}, 12, 'after', \@threads, \@messages);
    is(scalar(grep { /^bad/ } @threads, @messages), 0,
        'every create answered');
    my @all = reverse @threads;
    is_deeply([ walk('/v1/threads', 'desc') ], \@all,
        'the threads, newest first, each once');
    is_deeply([ walk('/v1/threads', 'asc') ], \@threads,
        'oldest first, each once');
    is_deeply([ walk("/v1/threads/$t->{id}/messages", 'asc') ], \@messages,
        'the messages in creation order, each once');
    my @seq = split /\n/, psql("SELECT seq FROM threads WHERE owner = "
        . ThreadsTest::quote($owner) . " ORDER BY seq");
    is(scalar @seq, scalar @threads, 'as many rows as creates');
} });

run_tests();

__DATA__

=== TEST 1: threads and messages made before and after a shard move
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer nobody-moves
--- scenario: move
--- error_code: 200
--- timeout: 120
--- no_error_log
[error]
[alert]
