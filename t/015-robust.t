# What a hostile client or a failing database may do to a worker: reset
# connections while the answer is a 503 that the pool gives at once,
# pages of huge messages, the largest create beside other requests,
# bodies in temporary files, extra path segments, unusable owners.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);
use IO::Select;

no_shuffle();
use_api_defaults();

my %scenario;

# Sends a request and resets the connection at once (RST, not FIN).
sub reset_request {
    my $s = raw_request(@_);
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
}

sub worker { serving_pid() }

# The largest valid create: 32 messages of 256,000 characters, each of 4
# bytes of UTF-8 (a body over NGX_HTTP_THREADS_DIRECT: run in a thread).
sub largest_create {
    my $text = "\xf0\x9f\x98\x80" x 256000;
    return '{"messages":[' . join(',', map {
        '{"role":"user","content":"' . $text . '"}' } 1 .. 32) . ']}';
}

$scenario{'reset-db-down'} = sub {
    my $w = worker();
    for my $i (1 .. 40) {
        reset_request('GET', '/v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA',
            undef, 'k1');
        reset_request('POST', '/v1/threads', '{"metadata":{"a":"b"}}', 'k1');
    }
    sleep 0.5;
    my ($st, $body, $h) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 503, 'the database is still down: 503');
    is($h->{'retry-after'}, '1', 'with Retry-After');
    is(worker(), $w, 'the same worker serves: nothing crashed');
};

$scenario{'reset-queue-full'} = sub {
    my $w = worker();
    my $locked = seed_thread(key => 'k1');
    my $holder = lock_row_in_background($locked, 3 * slow_factor());
    # the pool's one connection waits on the lock, one request waits
    # in the queue; every further one is refused at once
    my $busy = raw_request('POST', "/v1/threads/$locked",
        '{"metadata":{"x":"1"}}', 'k1');
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5 * slow_factor()),
        'the connection is busy');
    my $queued = raw_request('GET', "/v1/threads/$locked", undef, 'k1');
    sleep 0.2;
    my ($st, $body, $h) = api('GET', "/v1/threads/$locked", undef, 'k1');
    is($st, 503, 'the queue is full: 503');
    for my $i (1 .. 40) {
        reset_request('GET', "/v1/threads/$locked", undef, 'k1');
    }
    waitpid($holder, 0);
    local $/;
    my $r1 = <$busy>;
    my $r2 = <$queued>;
    like($r1, qr{^HTTP/1\.1 200}, 'the busy request completes');
    like($r2, qr{^HTTP/1\.1 200}, 'the queued request completes');
    is(worker(), $w, 'the same worker serves: nothing crashed');
};

# A page of huge messages is cut at the byte budget; paging goes on.
$scenario{'page-budget'} = sub {
    my $t = seed_thread(key => 'k1');
    my $big = 'x' x (1024 * 1024);
    my $owner = owner_of('k1');
    for my $i (1 .. 6) {
        my $mid = 'msg_' . ('B' x 23) . $i;
        psql("INSERT INTO messages (owner, thread_id, id, created_at, role,"
            . " content) VALUES ('$owner', '$t', '$mid', 1764200000,"
            . " 'user', jsonb_build_array(jsonb_build_object('type', 'text',"
            . " 'text', jsonb_build_object('value', repeat('x', 1048576),"
            . " 'annotations', '[]'::jsonb))))");
    }
    my ($after, @seen, $pages) = (undef);
    while (1) {
        my ($st, $body) = api('GET', "/v1/threads/$t/messages?order=asc&limit=100"
            . (defined $after ? "&after=$after" : ''), undef, 'k1');
        is($st, 200, 'a page');
        last unless ref $body eq 'HASH';
        $pages++;
        cmp_ok(scalar @{$body->{data}}, '<=', 2,
            'a page holds what fits in 2.5 MB, not the limit of 100');
        cmp_ok(scalar @{$body->{data}}, '>=', 1, 'at least one item');
        push @seen, map { $_->{id} } @{$body->{data}};
        last unless $body->{has_more};
        $after = $body->{last_id};
        last if $pages > 10;
    }
    is_deeply(\@seen, [map { 'msg_' . ('B' x 23) . $_ } 1 .. 6],
        'every message once, in order, over several pages');
};

# The largest valid create is validated off the event loop: other
# requests on the same worker are not held up.
$scenario{'big-create'} = sub {
    my $t = seed_thread(key => 'k1');
    my $body = largest_create();
    # a retrieve's usual time on this machine, before the create
    my @base = sort { $a <=> $b } map {
        sleep 0.005; (api('GET', "/v1/threads/$t", undef, 'k1'))[3] } 1 .. 30;
    my $usual = $base[15];
    my $sock = raw_request('POST', '/v1/threads', $body, 'k1');
    my ($worst, $n, $t0) = (0, 0, time);
    my $sel = IO::Select->new($sock);
    while (!$sel->can_read(0) && time - $t0 < 30) {
        my ($st, undef, undef, $secs) = api('GET', "/v1/threads/$t",
            undef, 'k1');
        is($st, 200, 'a retrieve meanwhile') if $n == 0;
        $worst = $secs if $secs > $worst;
        $n++;
        sleep 0.005;
    }
    my $reply = do { local $/; <$sock> };
    like($reply, qr{^HTTP/1\.1 200}, 'the largest create is stored');
    my ($id) = $reply =~ /"id" : "(thread_\w+)"/;
    is(psql("SELECT count(*) || ' ' || sum(length(content->0->'text'->>'value'))"
        . " FROM messages WHERE thread_id = '$id'"), '32 8192000',
        'whole: 32 messages of 256,000 characters');
    cmp_ok($n, '>', 5, "$n retrieves ran while it was under way");
    # Validating this body on the event loop held every other request for
    # 0.5 s and more; off it, 30-60 ms were left of libpq copying the
    # 34 MB parameter into a pool connection's buffer.  Now the statement
    # runs in the validation's thread (15-20 ms measured here, on a
    # loaded machine).
    my $bound = 0.05 * ($ENV{THREADS_ASAN} ? 4 : slow_factor());
    cmp_ok($worst - $usual, '<', $bound,
        sprintf('others are held up less than %d ms (worst delay'
            . ' %.1f ms, usual %.1f ms)', $bound * 1e3,
            ($worst - $usual) * 1e3, $usual * 1e3));

    # the same with an Idempotency-Key: stored once, then replayed (an
    # owner of this run's own: an external database keeps earlier runs')
    my $big = "k-big-$$";
    my $keyed = sub {
        my $k = connect_nginx();
        print $k "POST /v1/threads HTTP/1.1\r\nHost: localhost\r\n"
            . "Authorization: Bearer $big\r\nIdempotency-Key: big-1\r\n"
            . "Connection: close\r\nContent-Length: " . length($body)
            . "\r\n\r\n$body";
        local $/;
        return scalar <$k>;
    };
    my $k1 = $keyed->();
    my $k2 = $keyed->();
    like($k1, qr{^HTTP/1\.1 200}, 'a keyed largest create: 200');
    like($k2, qr{^Idempotent-Replayed: true\r$}mi, 'again: replayed');
    is((split /\r\n\r\n/, $k2, 2)[1], (split /\r\n\r\n/, $k1, 2)[1],
        'byte for byte');
    is(psql("SELECT count(*) FROM threads WHERE owner = '"
        . owner_of($big) . "'"), 1, 'one thread');

    # a client that resets while the statement runs in the thread (an owner
    # of this run's own: an external database keeps earlier runs' rows)
    my $w = worker();
    my $gone = "k-gone-$$-" . time;
    my $r = raw_request('POST', '/v1/threads', $body, $gone);
    sleep 0.3;
    setsockopt($r, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $r;
    my $o = owner_of($gone);
    ok(wait_for(sub {
        psql("SELECT count(*) FROM threads WHERE owner = '$o'") > 0 }, 20),
        'the create the client left went on');
    is(psql("SELECT count(*) FROM messages WHERE owner = '$o'"), 32,
        'whole');
    my ($st) = api('GET', "/v1/threads/$t", undef, 'k1');
    is($st, 200, 'the worker goes on serving');
    is(worker(), $w, 'the same worker: nothing crashed');
};

# The largest create, run in the validation's thread, outlives
# threads_pg_query_timeout behind a table lock: a 504 that says not to
# retry, and the worker lives (it once read a statement the thread's path
# never set, and crashed).
$scenario{'big-create-timeout'} = sub {
    my $body = largest_create();
    my $w = worker();
    # held until the answer is in (a slow build may validate for long)
    my $pid = hold_in_background(
        "BEGIN; LOCK TABLE threads IN SHARE ROW EXCLUSIVE MODE;", 60,
        'threads-tlock');
    my $sock = raw_request('POST', '/v1/threads', $body, 'k-slow-big');
    my $reply = do { local $/; <$sock> };
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        . " WHERE application_name = 'threads-tlock'");
    waitpid $pid, 0;
    like($reply, qr{^HTTP/1\.1 504}, 'the create that timed out: 504');
    like($reply, qr{^x-should-retry: false\r$}mi,
        'a create without a key: not to be retried blindly');
    my ($st) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 200, 'the worker goes on serving');
    is(worker(), $w, 'the same worker: nothing crashed');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: clients that reset while the database refuses connections
--- http_config
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=127.0.0.1 port=1 dbname=x user=postgres";
    threads_pg_connect_timeout 1s;
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: reset-db-down
--- error_code: 503
--- timeout: 60
--- no_error_log
[alert]
[crit]
count is zero

=== TEST 2: clients that reset while the pool's queue is full
--- http_config eval
$ThreadsTest::HTTP_CONFIG . <<'CONF'
    threads_pg_pool_size 1;
    threads_pg_pipeline 1;
    threads_pg_queue_size 1;
CONF
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: reset-queue-full
--- error_code: 200
--- timeout: 60
--- no_error_log
[alert]
[crit]
count is zero

=== TEST 3: a listing's page stops at threads_list_max_bytes
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        threads_list_max_bytes 2500k;
    }
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: page-budget
--- error_code: 200
--- timeout: 60
--- no_error_log
[alert]

=== TEST 4: the largest create does not hold up other requests: it is validated and stored off the event loop
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 40m;
    }
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: big-create
--- error_code: 200
--- timeout: 120
--- no_error_log
[alert]

=== TEST 4b: the largest create timing out in its thread is a 504, not a crash
--- http_config eval
$ThreadsTest::HTTP_CONFIG . "    threads_pg_query_timeout 1s;\n"
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 40m;
    }
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: big-create-timeout
--- error_code: 200
--- timeout: 120
--- no_error_log
[alert]

=== TEST 5: a body that nginx buffered to a temporary file
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_body_buffer_size 1k;
    }
--- request eval
"POST /v1/threads\n" . ThreadsTest::json()->encode({ metadata => {
    map { ("k$_" => 'v' x 500) } 1 .. 16 } })
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ object => 'thread', metadata => { k1 => 'v' x 500, k16 => 'v' x 500 } }
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[alert]

=== TEST 6: a path with segments before /threads is no route
--- request
GET /v1/anything/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => 'Invalid URL (GET /v1/anything/threads)', type => 'invalid_request_error' } }

=== TEST 7: nor is one deeper down
--- request
POST /v1/x/y/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages
{}
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => qr/^Invalid URL/ } }

=== TEST 8: a location without a trailing slash serves its own path only
--- config
    location /v1 {
        threads_api on;
        threads_owner $threads_api_key;
    }
--- pipelined_requests eval
["GET /v1threads", "GET /v1/threads"]
--- more_headers
Authorization: Bearer k1
--- error_code eval
[404, 200]

=== TEST 9: a raw owner too long for a key is a 401, not a 500
--- config
    location /v1/ {
        threads_api on;
        threads_owner $http_x_owner;
        threads_owner_hash off;
    }
--- request
POST /v1/threads
--- more_headers eval
"X-Owner: " . ("o" x 3000)
--- error_code: 401
--- json eval
{ error => { type => 'invalid_request_error', code => 'invalid_api_key' } }

=== TEST 10: a raw owner that is not UTF-8 is a 401, not a 500
--- config
    location /v1/ {
        threads_api on;
        threads_owner $http_x_owner;
        threads_owner_hash off;
    }
--- request
GET /v1/threads
--- more_headers eval
"X-Owner: ab\xff\xfecd"
--- error_code: 401
--- json eval
{ error => { code => 'invalid_api_key' } }

=== TEST 11: a raw owner at the limit is served
--- config
    location /v1/ {
        threads_api on;
        threads_owner $http_x_owner;
        threads_owner_hash off;
    }
--- request
GET /v1/threads
--- more_headers eval
"X-Owner: " . ("\xc3\xa9" x 256)
--- error_code: 200
--- json eval
{ object => 'list', data => [] }

=== TEST 12: a message id that is not UTF-8 is a 404, not a database error
--- request eval
"GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages/msg%FF%FE"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { type => 'invalid_request_error', message => qr/^No message found with id 'msg/ } }
--- no_error_log
[error]

=== TEST 13: a raw owner with a UTF-16 surrogate in UTF-8 is a 401, not a 500
--- config
    location /v1/ {
        threads_api on;
        threads_owner $http_x_owner;
        threads_owner_hash off;
    }
--- request
GET /v1/threads
--- more_headers eval
"X-Owner: ab\xed\xa0\x80cd"
--- error_code: 401
--- json eval
{ error => { code => 'invalid_api_key' } }
