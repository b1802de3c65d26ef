# Several requests' statements share one connection (libpq pipeline mode)
# once every pooled connection is busy: each gets its own answer, an error
# in one touches no other, and the database sees no more sessions.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Time::HiRes qw(time);

no_shuffle();
use_api_defaults();

our $ONE = $ThreadsTest::HTTP_CONFIG . "    threads_pg_pool_size 1;\n    threads_pg_pipeline 16;\n";

psql("ALTER TABLE messages DROP CONSTRAINT IF EXISTS test_no_boom");
psql("ALTER TABLE messages ADD CONSTRAINT test_no_boom "
    . "CHECK (content::text NOT LIKE '%BOOM%') NOT VALID");
END { eval { psql("ALTER TABLE messages DROP CONSTRAINT IF EXISTS test_no_boom") } }

# Reads the response on each socket (sent already): [code, body], the body
# decoded when it is JSON.
sub read_all {
    my @out;
    local $/;
    for my $s (@_) {
        my $resp = <$s> // '';
        close $s;
        my ($code) = $resp =~ m{^HTTP/1\.1 (\d+)};
        my ($body) = $resp =~ /\r\n\r\n(.*)\z/s;
        push @out, [ $code // 0, eval { json()->decode($body) } // $body ];
    }
    return @out;
}

# Sends every request at once on its own connection, then reads them all.
sub burst { read_all(map { raw_request(@$_) } @_) }

our $TWO = $ThreadsTest::HTTP_CONFIG . "    threads_pg_pool_size 2;\n    threads_pg_pipeline 16;\n";

sub burst_scenario {
    my @threads = map { seed_thread(key => 'k1', metadata => qq({"n":"$_"})) } 1 .. 10;
    for my $round (1 .. 3) {
        my @reqs = map { [ 'GET', "/v1/threads/$threads[$_]", undef, 'k1' ] } 0 .. 9;
        push @reqs, map { [ 'POST', '/v1/threads', qq({"metadata":{"r":"$$-$round-$_"}}), 'k1' ] } 1 .. 5;
        push @reqs, [ 'POST', '/v1/threads', '{"messages":[{"role":"user","content":"BOOM"}]}', 'k1' ];
        push @reqs, [ 'POST', "/v1/threads/$threads[0]", qq({"metadata":{"round":"$round"}}), 'k1' ];
        my @res = burst(@reqs);

        my $ok = 1;
        for my $n (0 .. 9) {
            $ok &&= $res[$n][0] == 200 && ref $res[$n][1]
                && $res[$n][1]{id} eq $threads[$n];
        }
        ok($ok, "round $round: each retrieve got its own thread");
        is(scalar(grep { $_->[0] == 200 && $_->[1]{metadata}{r} } @res[10 .. 14]), 5,
            "round $round: creates answered");
        is($res[15][0], 500, "round $round: the failing statement is a 500");
        is($res[16][0], 200, "round $round: a statement after it is not touched");
        is($res[16][1]{metadata}{round}, $round, "round $round: modify applied");
    }
    is(psql("SELECT count(*) FROM threads WHERE metadata->>'r' LIKE '$$-%'"), 15,
        'every acknowledged create is stored, once');
    cmp_ok(module_backends(), '<=', 1, 'all of it over one database session');
}

# A write that waits (a row lock) holds up what is pipelined behind it on
# its connection: retrieves go to the other connection, behind reads.
sub reads_scenario {
    my $locked = seed_thread(key => 'k1');
    my @reads = map { seed_thread(key => 'k1') } 1 .. 6;

    # both connections open and idle: a retrieve while a modify waits
    my $locker = lock_row_in_background($locked, 1);
    my ($m0) = raw_request('POST', "/v1/threads/$locked",
        '{"metadata":{"m":"0"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5),
        'a modify waits on the lock');
    my ($st) = api('GET', "/v1/threads/$reads[0]", undef, 'k1');
    is($st, 200, 'a retrieve meanwhile, on a second connection');
    is((read_all($m0))[0][0], 200, 'the modify, once the lock goes');
    waitpid $locker, 0;
    is(module_backends(), 2, 'two database sessions');

    $locker = lock_row_in_background($locked, 3);
    my ($m1) = raw_request('POST', "/v1/threads/$locked",
        '{"metadata":{"m":"1"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5),
        'a modify waits on the lock again');
    my $t0 = time;
    my @codes = map { $_->[0] }
        burst(map { [ 'GET', "/v1/threads/$_", undef, 'k1' ] } @reads);
    my $took = time - $t0;
    is_deeply(\@codes, [ (200) x 6 ], 'six retrieves answered');
    cmp_ok($took, '<', 1.5, sprintf 'none waited behind the modify (%.2f s'
        . ' for all six; the lock holds 3 s)', $took);
    cmp_ok(module_waiting_on_lock(), '>=', 1, 'the modify still waits');
    is((read_all($m1))[0][0], 200, 'and is answered after the lock');
    waitpid $locker, 0;
}

# Transactions of the test database so far, committed or rolled back (a
# session's counts arrive when it ends), and the module's sessions, both
# asked from another database: asking adds no transaction of its own.
my ($DB) = ThreadsTest::conninfo() =~ /dbname=(\S+)/;
sub xacts {
    psql_at('postgres', "SELECT xact_commit + xact_rollback"
        . " FROM pg_stat_database WHERE datname = '$DB'");
}
sub sessions {
    my ($where) = @_;
    psql_at('postgres', "SELECT count(*) FROM pg_stat_activity WHERE"
        . " application_name = 'ngx_http_threads_module'" . ($where // ''));
}

# The block's own request opened the pool's connection; it closes idle
# (threads_pg_idle_timeout), so that the scenario starts from none.
sub pool_empty { ok(wait_for(sub { sessions() == 0 }, 5), 'the pool is empty') }

# Reads given to one connection in one pass of the event loop share one
# Sync: here eight retrieves wait for the pool's only connection, whose
# schema check waits on a lock, and go out together once it is done.
sub segment_scenario {
    my @threads = map { seed_thread(key => 'k1') } 1 .. 8;
    pool_empty();
    sleep 0.5;          # the ended session's counts arrive
    my $before = xacts();
    my $locker = hold_in_background(
        "BEGIN; LOCK TABLE threads_schema IN ACCESS EXCLUSIVE MODE;", 1);
    my @socks = map { raw_request('GET', "/v1/threads/$_", undef, 'k1') } @threads;
    ok(wait_for(sub { sessions(" AND wait_event_type = 'Lock'") >= 1 }, 5),
        'the new connection\'s schema check waits');
    my @res = read_all(@socks);
    is_deeply([ map { $_->[0] } @res ], [ (200) x 8 ], 'eight retrieves answered');
    ok(!(grep { !ref $res[$_][1] || $res[$_][1]{id} ne $threads[$_] } 0 .. 7),
        'each got its own thread');
    waitpid $locker, 0;
    pool_empty();       # the module's session ended: its counts are in
    sleep 0.5;
    my $n = xacts() - $before;
    # two sessions' start-up (each reads the catalogs in a transaction),
    # the lock holder's, the schema check's, then the reads': 5, not 12
    ok($n >= 4 && $n <= 6, "the eight reads were one transaction, not eight"
        . " ($n transactions in all)");
}

# Segments of reads ended so far (the debug log says each).
sub segment_ends {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    open my $fh, '<', "$root/logs/error.log" or return 0;
    return scalar grep { /threads: reads' segment ends/ } <$fh>;
}

# A Prepare that fails (a lock wait past lock_timeout) while a second
# execution of its statement is on the wire: that one finds no prepared
# statement (26000), which clears what the pool knows of every
# statement; the next Prepare of one the session still has (42P05) is
# taken as done, and the statement runs.
sub failed_prepare_scenario {
    my @threads = map { seed_thread(key => 'k1') } 1 .. 2;
    my $t = seed_thread(key => 'k1');
    is(sessions(), 1, 'one session, which has the retrieve prepared');
    my $messages = hold_in_background(
        "BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE;", 2.5);
    my $a = raw_request('GET', "/v1/threads/$t/messages", undef, 'k1');
    sleep 0.3;
    my $b = raw_request('GET', "/v1/threads/$t/messages?order=desc", undef, 'k1');
    my ($ra, $rb) = read_all($a, $b);
    isnt($ra->[0], 200, "the list whose Prepare waited past lock_timeout failed ($ra->[0])");
    waitpid $messages, 0;
    my @after = map { [ api('GET', "/v1/threads/$_", undef, 'k1') ] } @threads;
    is_deeply([ map { $_->[0] } @after ], [ 200, 200 ],
        'retrieves afterwards are answered (prepared already, used)');
    my ($st) = api('GET', "/v1/threads/$t/messages", undef, 'k1');
    is($st, 200, 'and so is the list');
    is(sessions(), 1, 'on the same session');
}

# Reads, then a write, then reads, all given to the connection in the
# same pass: the write ends the reads' segment before its own.
sub mixed_pass_scenario {
    my @threads = map { seed_thread(key => 'k1') } 1 .. 5;
    pool_empty();
    my $locker = hold_in_background(
        "BEGIN; LOCK TABLE threads_schema IN ACCESS EXCLUSIVE MODE;", 1);
    my @reqs = map { [ 'GET', "/v1/threads/$_", undef, 'k1' ] } @threads;
    splice @reqs, 3, 0, [ 'POST', '/v1/threads', qq({"metadata":{"pass":"$$"}}), 'k1' ];
    my $ends = segment_ends();
    my @socks;
    for (@reqs) {
        push @socks, raw_request(@$_);
        sleep 0.05;     # in this order into the queue
    }
    my @res = read_all(@socks);
    is_deeply([ map { $_->[0] } @res ], [ (200) x 6 ], 'reads and a create answered');
    is(segment_ends() - $ends, 2, 'the create ended the first reads\' segment'
        . ' before its own; the pass\'s end the second one\'s');
    is($res[3][1]{metadata}{pass}, $$, 'the create, with its metadata');
    is(psql("SELECT count(*) FROM threads WHERE metadata->>'pass' = '$$'"), 1,
        'stored once');
    ok(!(grep { !ref $res[$_][1] || $res[$_][1]{id} ne $threads[$_ > 3 ? $_ - 1 : $_] }
        0 .. 2, 4 .. 5), 'each read got its own thread');
    waitpid $locker, 0;
}

# A read whose segment another read's error ended never ran: it is sent
# again alone and answered.  The list waits on a lock past lock_timeout
# (conninfo options); the retrieves were in its segment, behind it.
sub aborted_scenario {
    my @threads = map { seed_thread(key => 'k1') } 1 .. 6;
    my $t = seed_thread(key => 'k1');
    pool_empty();
    my $schema = hold_in_background(
        "BEGIN; LOCK TABLE threads_schema IN ACCESS EXCLUSIVE MODE;", 0.5);
    my $messages = hold_in_background(
        "BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE;", 4);
    my $list = raw_request('GET', "/v1/threads/$t/messages", undef, 'k1');
    sleep 0.1;
    my @socks = map { raw_request('GET', "/v1/threads/$_", undef, 'k1') } @threads;
    my ($l) = read_all($list);
    my @res = read_all(@socks);
    isnt($l->[0], 200, "the list failed on the lock ($l->[0])");
    ok(ref $l->[1] && $l->[1]{error}, 'with a JSON error');
    is_deeply([ map { $_->[0] } @res ], [ (200) x 6 ],
        'the retrieves of its segment were answered');
    ok(!(grep { !ref $res[$_][1] || $res[$_][1]{id} ne $threads[$_] } 0 .. 5),
        'each with its own thread');
    waitpid $_, 0 for $schema, $messages;
}

our $ONE_IDLE = $ONE . "    threads_pg_idle_timeout 200ms;\n";
our $ONE_LOCK_TIMEOUT = with_conninfo_options($ONE_IDLE, '-c lock_timeout=1000');
# the pool's session stays: the retrieve the block's request prepared
our $ONE_LOCK_TIMEOUT_KEEP = with_conninfo_options($ONE, '-c lock_timeout=1000');
# unnamed statements: no Prepare starts a segment of its own, so that the
# list and the retrieves behind it share one
our $ONE_LOCK_TIMEOUT_UNNAMED = $ONE_LOCK_TIMEOUT . "    threads_pg_prepare off;\n";

run_scenarios({
    'burst' => \&burst_scenario,
    'reads go behind reads' => \&reads_scenario,
    'one segment of reads' => \&segment_scenario,
    'a read aborted by another' => \&aborted_scenario,
    'reads and a write in one pass' => \&mixed_pass_scenario,
    'a failed Prepare' => \&failed_prepare_scenario,
});

run_tests();

__DATA__

=== TEST 1: a burst over one pipelined connection
--- http_config eval: $main::ONE
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: burst
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
--- error_log eval
qr/threads: ([2-9]|1\d) queries in flight/

=== TEST 2: retrieves go behind reads, not behind a write that waits
--- http_config eval: $main::TWO
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: reads go behind reads
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]



=== TEST 3: reads sent together share one Sync (one transaction)
--- http_config eval: $main::ONE_IDLE
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: one segment of reads
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]



=== TEST 4: a read that another read's error aborted is sent again alone
--- http_config eval: $main::ONE_LOCK_TIMEOUT_UNNAMED
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: a read aborted by another
--- error_code: 404
--- timeout: 60
--- log_level: info
--- error_log
another read's error ended its segment before it ran: sent again, alone
--- no_error_log
[alert]
[crit]



=== TEST 5: reads and a write given to one connection in the same pass
--- http_config eval: $main::ONE_IDLE
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: reads and a write in one pass
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
[error]



=== TEST 6: a failed Prepare does not leave the session's statements failing
--- http_config eval: $main::ONE_LOCK_TIMEOUT_KEEP
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: a failed Prepare
--- error_code: 404
--- timeout: 60
--- log_level: warn
--- error_log
"threads_thread_retrieve" was prepared already, using it
--- no_error_log
[alert]
[crit]
