# Database faults beyond a clean stop: a missing or old schema, sessions
# killed with a FATAL while statements are in flight, a server that turns
# read-only.  Each ends in a 503 (never a 500) and recovers by itself.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;

no_shuffle();
use_api_defaults();

# databases of this file's own on the test cluster
for my $db (qw(threads_noschema threads_v1 threads_v5 threads_v6)) {
    psql_at('postgres', qq{DROP DATABASE IF EXISTS "$db"});
    psql_at('postgres', qq{CREATE DATABASE "$db"});
    (my $ci = ThreadsTest::conninfo()) =~ s/dbname=\S+/dbname=$db/;
    $ENV{'TEST_NGINX_' . uc($db) . '_CONNINFO'} = $ci;
}

# schema version 1, as scripts/schema.sql first shipped it
psql_at('threads_v1', <<'SQL');
CREATE TABLE threads_schema (version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE threads (owner text NOT NULL, id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY, created_at bigint NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    tool_resources jsonb NOT NULL DEFAULT '{}', PRIMARY KEY (owner, id));
CREATE INDEX threads_owner_seq ON threads (owner, seq);
CREATE TABLE messages (owner text NOT NULL, thread_id text NOT NULL,
    id text NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY,
    created_at bigint NOT NULL, role text NOT NULL, content jsonb NOT NULL,
    attachments jsonb NOT NULL DEFAULT '[]',
    metadata jsonb NOT NULL DEFAULT '{}', assistant_id text, run_id text,
    PRIMARY KEY (owner, thread_id, id),
    FOREIGN KEY (owner, thread_id) REFERENCES threads (owner, id)
        ON DELETE CASCADE);
CREATE INDEX messages_thread_seq ON messages (owner, thread_id, seq);
INSERT INTO threads_schema (version) VALUES (1);
SQL

# schema version 5: scripts/schema.sql with what version 6 added taken
# back (the metadata pair tables; the GIN indexes it dropped put back), and
# threads and conversations with metadata in it
apply_schema('threads_v5');
psql_at('threads_v5', <<'SQL');
DROP TABLE thread_metadata, conversation_metadata;
CREATE INDEX threads_metadata ON threads USING gin (metadata jsonb_path_ops);
CREATE INDEX conversations_metadata
    ON conversations USING gin (metadata jsonb_path_ops);
DELETE FROM threads_schema WHERE version >= 6;
SQL
# schema version 6: scripts/schema.sql without version 7's indexes
apply_schema('threads_v6');
psql_at('threads_v6', <<'SQL');
DROP INDEX thread_metadata_seq, conversation_metadata_seq;
DELETE FROM threads_schema WHERE version >= 7;
SQL
my $V5_OWNER = owner_of('k1');
my (@V5_THREADS, @V5_TEAM_A, @V5_CONVS);
for my $i (1 .. 30) {
    my $id = sprintf 'thread_V5%022d', $i;
    my $md = $i % 10 == 0 ? '{"team":"a","n":"' . $i . '"}'
           : $i == 7      ? '{"e":"","ключ":"välüe ☃"}'
           :                '{"team":"b","n":"' . $i . '"}';
    psql_at('threads_v5', "INSERT INTO threads (owner, id, created_at,"
        . " metadata) VALUES ('$V5_OWNER', '$id', 1764200000 + $i, '$md')");
    push @V5_THREADS, $id;
    push @V5_TEAM_A, $id if $i % 10 == 0;
}
for my $i (1 .. 3) {
    my $id = sprintf 'conv_V5%024d', $i;
    psql_at('threads_v5', "INSERT INTO conversations (owner, id, created_at,"
        . " metadata) VALUES ('$V5_OWNER', '$id', 1764200000,"
        . " '{\"team\":\"" . ($i == 2 ? 'a' : 'b') . "\"}')");
    push @V5_CONVS, $id;
}
psql_at('threads_v5', "INSERT INTO threads (owner, id, created_at, metadata)"
    . " VALUES ('someone-else', 'thread_V5" . ('X' x 22) . "', 1764200000,"
    . " '{\"team\":\"a\"}')");

my $V1_THREAD = 'thread_' . ('V' x 24);
psql_at('threads_v1', "INSERT INTO threads (owner, id, created_at, metadata)"
    . " VALUES ('" . owner_of('k1') . "', '$V1_THREAD', 1764200000,"
    . " '{\"kept\":\"yes\"}')");

# A name with two addresses, IPv6 first, while the test cluster listens on
# 127.0.0.1 only (as "localhost" on a stock Debian): every address must be
# tried.  The lines go into /etc/hosts for this file's run only.
my $DUAL = "threads-dual-$$.test";
my $hosts_added;
if ($> == 0 && open my $h, '>>', '/etc/hosts') {
    print $h "::1 $DUAL\n127.0.0.1 $DUAL\n";
    close $h;
    $hosts_added = 1;
}
$ENV{TEST_NGINX_DUAL_HOST} = $DUAL;
END {
    if ($hosts_added && open my $in, '<', '/etc/hosts') {
        my @keep = grep { !/\Q$DUAL\E/ } <$in>;
        close $in;
        if (open my $out, '>', '/etc/hosts') { print $out @keep; close $out }
    }
}

# A tarpit: a port that takes connections (the kernel's backlog) and never
# says a word, as a host that is half there.
my $TARPIT = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 64, ReuseAddr => 1) or die "tarpit: $!";
$ENV{TEST_NGINX_TARPIT_PORT} = $TARPIT->sockport;


sub statuses {
    my (%n);
    $n{$_}++ for @_;
    return join ', ', map { "$_ x $n{$_}" } sort keys %n;
}

my %scenario;

$scenario{'tarpit'} = sub {
    my ($st, $body, $h, $secs) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'the host after the silent one serves');
    cmp_ok($secs, '>=', 0.4, sprintf('the silent host was tried first'
        . ' (%.2f s)', $secs));
    cmp_ok($secs, '<', 2 * slow_factor(),
        sprintf('within the silent host\'s own timeout (%.2f s)', $secs));
    ($st, $body, $h, $secs) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 200, 'and goes on serving');
};

$scenario{'no-schema'} = sub {
    my ($st, $body, $h) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 503, 'without the schema a create is a 503');
    is($h->{'retry-after'}, '1', 'with Retry-After');
    is(ref $body && $body->{error}{type}, 'server_error', 'a server_error');
    unlike(ThreadsTest::json()->encode($body), qr/relation|schema|threads_/,
        'no database text reaches the client');
    ($st) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 503, 'a listing too');

    apply_schema('threads_noschema');
    ok(wait_for(sub { (api('POST', '/v1/threads', '{}', 'k1'))[0] == 200 },
        5), 'once scripts/schema.sql is applied, creates work: no reload');
};

$scenario{'v1-schema'} = sub {
    my ($st) = api('GET', "/v1/threads/$V1_THREAD", undef, 'k1');
    is($st, 503, 'on a version 1 schema the module refuses to serve');
    # a create must not travel behind the schema check and commit there
    for (1 .. 3) {
        ($st) = api('POST', '/v1/threads', '{"metadata":{"old":"schema"}}',
            'k1');
        is($st, 503, 'a create on the old schema is a 503');
    }
    is(psql_at('threads_v1', 'SELECT count(*) FROM threads'), 1,
        'and nothing was written there');
    ($st) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 503, 'listings too');

    apply_schema('threads_v1');
    my $body;
    ok(wait_for(sub {
        ($st, $body) = api('GET', "/v1/threads/$V1_THREAD", undef, 'k1');
        $st == 200 }, 5), 'upgraded in place by scripts/schema.sql');
    is(ref $body && $body->{metadata}{kept}, 'yes', 'the data was kept');
    ($st, $body) = api('GET', '/v1/threads', undef, 'k1');
    is($st, 200, 'listings work after the upgrade');
    is(ref $body && $body->{data}[0]{id}, $V1_THREAD, 'and list the old thread');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bkept%5D=yes', undef,
        'k1');
    is(ref $body && $body->{data}[0]{id}, $V1_THREAD,
        'a filtered listing finds it by its old metadata');
    is(psql_at('threads_v1', 'SELECT max(version) FROM threads_schema'), 9,
        'the schema says version 9');
};

$scenario{'v5-schema'} = sub {
    my ($st) = api('GET', '/v1/threads?metadata%5Bteam%5D=a', undef, 'k1');
    is($st, 503, 'on a version 5 schema a filtered listing is a 503');
    apply_schema('threads_v5');
    apply_schema('threads_v5');
    my $body;
    ok(wait_for(sub {
        ($st, $body) = api('GET', '/v1/threads?metadata%5Bteam%5D=a', undef,
            'k1');
        $st == 200 }, 5), 'scripts/schema.sql (applied twice) upgrades it');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ reverse @V5_TEAM_A ], 'the old threads are found by their pairs,'
        . ' of this owner only');
    is(psql_at('threads_v5', 'SELECT count(*) FROM thread_metadata'),
        29 * 2 + 2 + 1, 'every old pair once, though applied twice');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bteam%5D=a&order=asc'
        . "&limit=1&after=$V5_TEAM_A[0]", undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ $V5_TEAM_A[1] ], 'asc after a cursor');
    ok(ref $body && $body->{has_more}, 'with more');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bteam%5D=a&limit=2'
        . "&before=$V5_TEAM_A[0]", undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ @V5_TEAM_A[2, 1] ], 'desc before a cursor');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bteam%5D=b&limit=100',
        undef, 'k1');
    is(scalar @{ ref $body ? $body->{data} : [] }, 26, 'the common pair');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Be%5D=', undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ $V5_THREADS[6] ], 'an empty value');
    ($st, $body) = api('GET', '/v1/threads?metadata%5B%D0%BA%D0%BB%D1%8E'
        . '%D1%87%5D=v%C3%A4l%C3%BC%C3%A9'
        . '' , undef, 'k1');
    is_deeply($body->{data}, [], 'another value of a non-ASCII key');
    ($st, $body) = api('GET', '/v1/threads?metadata%5B%D0%BA%D0%BB%D1%8E'
        . '%D1%87%5D=v%C3%A4l%C3%BCe%20%E2%98%83', undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ $V5_THREADS[6] ], 'a non-ASCII pair');
    ($st, $body) = api('GET', '/v1/conversations?metadata%5Bteam%5D=a',
        undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ $V5_CONVS[1] ], 'old conversations too');
    # after the upgrade, writes keep the pairs
    ($st) = api('POST', "/v1/threads/$V5_TEAM_A[0]",
        '{"metadata":{"team":"c"}}', 'k1');
    is($st, 200, 'an old thread modified');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bteam%5D=a', undef,
        'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ reverse @V5_TEAM_A[1, 2] ], 'is no longer team=a');
    is(psql_at('threads_v5', "SELECT count(*) FROM pg_indexes WHERE indexname"
        . " IN ('threads_metadata', 'conversations_metadata')"), 0,
        'the GIN indexes are gone');
    is(psql_at('threads_v5', 'SELECT max(version) FROM threads_schema'), 9,
        'the schema says version 9');
};

# A version 6 schema serves as it is (version 7 only adds indexes), and
# scripts/schema.sql adds them with the module serving.
$scenario{'v6-schema'} = sub {
    my $seq_indexes = "SELECT count(*) FROM pg_indexes WHERE indexname"
        . " IN ('thread_metadata_seq', 'conversation_metadata_seq')";
    is(psql_at('threads_v6', $seq_indexes), 0, 'no seq indexes on version 6');
    my @t;
    for my $i (1 .. 3) {
        my ($st, $t) = api('POST', '/v1/threads',
            '{"metadata":{"team":"a","n":"' . $i . '"}}', 'k1');
        is($st, 200, "version 6: create $i");
        push @t, ref $t ? $t->{id} : '';
    }
    my ($st, $body) = api('POST', "/v1/threads/$t[0]",
        '{"metadata":{"team":"b","n":"1"}}', 'k1');
    is($st, 200, 'version 6: modify');
    ($st) = api('DELETE', "/v1/threads/$t[1]", undef, 'k1');
    is($st, 200, 'version 6: delete');
    my $pairs = sub {
        psql_at('threads_v6', "SELECT string_agg(key || '=' || value, ','"
            . " ORDER BY key) FROM thread_metadata m JOIN threads t"
            . " ON t.owner = m.owner AND t.seq = m.seq WHERE t.id = '$_[0]'")
    };
    is($pairs->($t[0]), 'n=1,team=b', 'version 6: the pairs follow a modify');
    is(psql_at('threads_v6', 'SELECT count(*) FROM thread_metadata'), 4,
        'version 6: a delete takes its pairs');
    apply_schema('threads_v6');
    is(psql_at('threads_v6', $seq_indexes), 2, 'scripts/schema.sql adds them');
    is(psql_at('threads_v6', 'SELECT max(version) FROM threads_schema'), 9,
        'the schema says version 9');
    # a pair left over (a race between two updates) is found by seq too
    psql_at('threads_v6', "INSERT INTO thread_metadata (owner, key, value,"
        . " seq) SELECT owner, 'stray', 'x', seq FROM threads"
        . " WHERE id = '$t[2]'");
    ($st) = api('POST', "/v1/threads/$t[2]", '{"metadata":{"n":"3"}}', 'k1');
    is($st, 200, 'upgraded: modify');
    is($pairs->($t[2]), 'n=3', 'upgraded: the pair it no longer has is'
        . ' gone, and the one left over by a race');
    ($st) = api('DELETE', "/v1/threads/$t[0]", undef, 'k1');
    is($st, 200, 'upgraded: delete');
    is(psql_at('threads_v6', 'SELECT count(*) FROM thread_metadata'), 1,
        'upgraded: a delete takes its pairs');
    ($st, $body) = api('GET', '/v1/threads?metadata%5Bn%5D=3', undef, 'k1');
    is_deeply([ map { $_->{id} } @{ ref $body ? $body->{data} : [] } ],
        [ $t[2] ], 'the filter finds what is left');
};

# Sessions are killed (57P01) while statements wait in them.
$scenario{'fatal'} = sub {
    my @t = map { seed_thread(key => 'k1') } 1 .. 4;
    my $holder = lock_row_in_background($t[0], 2);
    my @socks = map { raw_request('POST', "/v1/threads/$t[0]",
        '{"metadata":{"n":"' . $_ . '"}}', 'k1') } 1 .. 3;
    push @socks, map { raw_request('GET', "/v1/threads/$_", undef, 'k1') }
        @t[1 .. 3];
    ok(wait_for(sub { module_waiting_on_lock() >= 1 }, 5),
        'statements wait in the module\'s sessions');
    psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        . " WHERE application_name = 'ngx_http_threads_module'");
    local $/;
    my @st = map { my $r = <$_>; $r =~ m{^HTTP/1\.1 (\d+)} ? $1 : 'none' }
        @socks;
    waitpid($holder, 0);
    is(scalar(grep { $_ eq '500' } @st), 0,
        'no 500 among the killed sessions\' requests (' . statuses(@st) . ')');
    is(scalar(grep { !/^(200|503)$/ } @st), 0, 'each a 200 or a 503');
    my ($s) = api('GET', "/v1/threads/$t[1]", undef, 'k1');
    is($s, 200, 'recovered by itself');
};

# default_transaction_read_only turns on under load, then off.
$scenario{'read-only'} = sub {
    my @st;
    psql("ALTER SYSTEM SET default_transaction_read_only = on");
    psql("SELECT pg_reload_conf()");
    sleep 0.3;
    my $ok = eval {
        for (1 .. 10) {
            push @st, (api('POST', '/v1/threads', '{}', 'k1'))[0];
        }
        1;
    };
    psql("ALTER SYSTEM RESET default_transaction_read_only");
    psql("SELECT pg_reload_conf()");
    die $@ unless $ok;
    is(scalar(grep { $_ == 500 } @st), 0,
        'no 500 while the server is read-only (' . statuses(@st) . ')');
    is(scalar(grep { $_ == 503 } @st), 10, 'every write a 503');
    ok(wait_for(sub { (api('POST', '/v1/threads', '{}', 'k1'))[0] == 200 },
        5), 'writes work again once it is read-write');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: no schema at all: 503s with a log line, then it is applied
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_NOSCHEMA_CONNINFO/;
$c
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: no-schema
--- error_code: 503
--- timeout: 60
--- error_log
this module needs 6: apply scripts/schema.sql
--- no_error_log
[alert]

=== TEST 2: a version 1 schema: 503s, then scripts/schema.sql upgrades it
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_V1_CONNINFO/;
$c
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: v1-schema
--- error_code: 503
--- timeout: 60
--- error_log
the database has schema version 1, this module needs 6
--- no_error_log
[alert]

=== TEST 3: a version 5 schema: filtered listings after the upgrade
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_V5_CONNINFO/;
$c
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: v5-schema
--- error_code: 503
--- timeout: 60
--- error_log
the database has schema version 5, this module needs 6
--- no_error_log
[alert]

=== TEST 4: a version 6 schema serves, and is upgraded in place
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_V6_CONNINFO/;
$c
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k1
--- scenario: v6-schema
--- error_code: 200
--- timeout: 60
--- no_error_log
[error]
[alert]

=== TEST 5: sessions killed while statements are in flight: no 500
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: fatal
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]

=== TEST 6: a server that turns read-only: 503s, not 500s, then writes again
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: read-only
--- error_code: 404
--- timeout: 60
--- error_log
SQLSTATE 25006
--- no_error_log
[alert]

=== TEST 7: a host name whose first address refuses: the next one serves
--- http_config
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=$TEST_NGINX_DUAL_HOST port=$TEST_NGINX_PG_PORT dbname=threads_test user=postgres";
--- pipelined_requests eval
["POST /v1/threads\n{}", "GET /v1/threads"]
--- more_headers
Authorization: Bearer k1
--- error_code eval
[200, 200]
--- no_error_log
[alert]

=== TEST 8: a first host that accepts and never answers costs its own timeout only
--- http_config
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_TARPIT_PORT,$TEST_NGINX_PG_PORT dbname=threads_test user=postgres";
    threads_pg_connect_timeout 10s;
    threads_pg_host_connect_timeout 500ms;
--- request
GET /v1/nothing
--- more_headers
Authorization: Bearer k1
--- scenario: tarpit
--- error_code: 404
--- timeout: 30
--- error_log
database host 0 did not answer in time
--- no_error_log
[alert]
