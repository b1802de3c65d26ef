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

run_scenarios({
    'burst' => \&burst_scenario,
    'reads go behind reads' => \&reads_scenario,
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
