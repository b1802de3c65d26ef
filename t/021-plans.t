# The plans of the module's statements where owners differ in size (schema
# version 8).  Most owners with one thread and one owner with thousands:
# a generic plan prices `owner = $1` from the average owner, and with plain
# (owner, seq) indexes a look-up by id took them over the primary key and
# read every row of the big owner.  Here a version 7 database is seeded
# that way, shown to do so, served, upgraded by scripts/schema.sql while
# nginx serves it, and then every statement of the module's table is
# planned (not the functions threads_pg_citus calls): look-ups by id take
# primary keys, listings the creation-order indexes.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

my $DB = 'threads_plans';
(my $CI = ThreadsTest::conninfo()) =~ s/dbname=\S+/dbname=$DB/;
$ENV{TEST_NGINX_THREADS_PLANS_CONNINFO} = $CI;

# the generic plan of a statement (nothing runs: EXPLAIN without ANALYZE)
sub generic_plan {
    my ($n, $sql) = @_;
    return psql_at($DB, "SET plan_cache_mode = force_generic_plan;\n"
        . "PREPARE s AS $sql;\n"
        . 'EXPLAIN (COSTS OFF) EXECUTE s(' . join(',', ('NULL') x $n) . ');');
}

my $BIG = owner_of('k1');
my $BIG_THREAD = 'thread_' . ('B' x 23) . '1';   # lpad('1', 24, 'B')

# version 7's creation-order indexes, as it created them
my $V7 = <<'SQL';
DROP INDEX threads_by_seq, messages_by_seq, conversations_by_seq,
    conversation_items_by_seq;
CREATE INDEX threads_owner_seq ON threads (owner, seq);
CREATE INDEX messages_thread_seq ON messages (owner, thread_id, seq);
CREATE INDEX conversations_owner_seq ON conversations (owner, seq);
CREATE INDEX conversation_items_seq
    ON conversation_items (owner, conversation_id, seq);
DELETE FROM threads_schema WHERE version >= 8;
SQL

# and its keyed-create functions (three ids), stand-ins with their
# signatures (the upgrade keeps them)
for my $f (['thread', 'text, text, jsonb, jsonb, jsonb'],
           ['message', 'text, text, jsonb, text'],
           ['conv', 'text, text, jsonb, jsonb']) {
    $V7 .= "DROP FUNCTION threads_$f->[0]_create_keyed;\n"
        . "CREATE FUNCTION threads_$f->[0]_create_keyed($f->[1], text[],"
        . " text, bigint) RETURNS TABLE (body text, state text)"
        . " LANGUAGE sql AS 'SELECT NULL::text, NULL::text';\n";
}

# k1 owns 5,000 threads and conversations (one of each with 5,000
# messages or items); 50,000 owners one of each, with one message or item
my $SEED = <<SQL;
INSERT INTO threads (owner, id, created_at)
SELECT '$BIG', 'thread_' || lpad(g::text, 24, 'B'), 0
FROM generate_series(1, 5000) g;
INSERT INTO threads (owner, id, created_at)
SELECT md5(g::text), 'thread_' || left(md5(g::text), 24), 0
FROM generate_series(1, 50000) g;
INSERT INTO messages (owner, thread_id, id, created_at, role, content)
SELECT '$BIG', '$BIG_THREAD', 'msg_' || lpad(g::text, 24, 'B'), 0, 'user',
    '[]' FROM generate_series(1, 5000) g;
INSERT INTO messages (owner, thread_id, id, created_at, role, content)
SELECT md5(g::text), 'thread_' || left(md5(g::text), 24),
    'msg_' || left(md5(g::text), 24), 0, 'user', '[]'
FROM generate_series(1, 50000) g;
INSERT INTO conversations (owner, id, created_at)
SELECT '$BIG', 'conv_' || lpad(g::text, 24, 'B'), 0
FROM generate_series(1, 5000) g;
INSERT INTO conversations (owner, id, created_at)
SELECT md5(g::text), 'conv_' || left(md5(g::text), 24), 0
FROM generate_series(1, 50000) g;
INSERT INTO conversation_items (owner, conversation_id, id, created_at, item)
SELECT '$BIG', 'conv_' || lpad('1', 24, 'B'), 'msg_' || lpad(g::text, 24, 'B'),
    0, '{}' FROM generate_series(1, 5000) g;
INSERT INTO conversation_items (owner, conversation_id, id, created_at, item)
SELECT md5(g::text), 'conv_' || left(md5(g::text), 24),
    'msg_' || left(md5(g::text), 24), 0, '{}'
FROM generate_series(1, 50000) g;
ANALYZE;
SQL

psql_at('postgres', qq{DROP DATABASE IF EXISTS "$DB"});
psql_at('postgres', qq{CREATE DATABASE "$DB"});
apply_schema($DB);
psql_at($DB, $V7);
psql_at($DB, $SEED);

my %scenario;

$scenario{'v7'} = sub {
    my @stmts = module_statements();
    ok(@stmts >= 45, scalar(@stmts) . ' statements in the module\'s table');
    my ($retrieve) = grep { $_->[0] eq 'threads_thread_retrieve' } @stmts;
    like(generic_plan(@$retrieve[1, 2]), qr/using threads_owner_seq/,
        'version 7: a retrieve by id takes (owner, seq), and reads all of'
        . ' the owner\'s threads');
    my ($st, $body) = api('GET', "/v1/threads/$BIG_THREAD", undef, 'k1');
    is($st, 200, 'version 7 serves');

    # a concurrent build that failed leaves an INVALID index: the upgrade
    # stops before it drops the old ones
    psql_at($DB, 'CREATE INDEX threads_by_seq ON threads (owner, seq)'
        . ' WHERE seq > 0');
    psql_at($DB, "UPDATE pg_index SET indisvalid = false WHERE indexrelid ="
        . " 'threads_by_seq'::regclass");
    {
        open my $save, '>&', \*STDERR or die;
        open STDERR, '>', '/dev/null' or die;
        ok(!try_schema($DB), 'an INVALID threads_by_seq stops the upgrade');
        open STDERR, '>&', $save or die;
    }
    is(psql_at($DB, "SELECT count(*) FROM pg_indexes WHERE indexname ="
        . " 'threads_owner_seq'"), 1, 'with the old index kept');
    psql_at($DB, 'DROP INDEX threads_by_seq');

    apply_schema($DB);
    is(psql_at($DB, 'SELECT max(version) FROM threads_schema'), 9,
        'scripts/schema.sql upgrades it to version 9');
    is(psql_at($DB, "SELECT string_agg(proname || '('"
        . " || oidvectortypes(proargtypes) || ')', ' '"
        . " ORDER BY proname) FROM pg_proc WHERE proname ~"
        . " '^threads_(thread|message|conv)_create_(keyed|by_key)\$'"),
        join(' ', map { s/\s+/ /gr }
            'threads_conv_create_by_key(text, text, jsonb, jsonb, text,'
            . ' bigint, bigint)',
            'threads_conv_create_keyed(text, text, jsonb, jsonb, text[],'
            . ' text, bigint)',
            'threads_message_create_by_key(text, text, jsonb, text, text,'
            . ' bigint, bigint)',
            'threads_message_create_keyed(text, text, jsonb, text, text[],'
            . ' text, bigint)',
            'threads_thread_create_by_key(text, text, jsonb, jsonb, jsonb,'
            . ' text, bigint, bigint)',
            'threads_thread_create_keyed(text, text, jsonb, jsonb, jsonb,'
            . ' text[], text, bigint)'),
        "version 9's keyed creates by the key's generations, beside"
        . " version 7's for the modules before them");
    is(psql_at($DB, "SELECT count(*) FROM pg_indexes WHERE indexname IN"
        . " ('threads_owner_seq', 'messages_thread_seq',"
        . " 'conversations_owner_seq', 'conversation_items_seq')"), 0,
        'version 7\'s creation-order indexes are gone');
    is(psql_at($DB, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE"
        . " '%by_seq' AND indexdef LIKE '%WHERE (seq > 0)'"), 4,
        'four partial ones in their place');
    psql_at($DB, 'ANALYZE');
    ok(wait_for(sub {
        ($st, $body) = api('GET', "/v1/threads/$BIG_THREAD", undef, 'k1');
        $st == 200 }, 5), 'served after it, by sessions that prepared their statements before');
    ($st, $body) = api('GET', "/v1/threads/$BIG_THREAD/messages?limit=2",
        undef, 'k1');
    is(ref $body && scalar @{ $body->{data} }, 2, 'a long thread\'s page');

    for my $s (@stmts) {
        my ($name, $n, $sql) = @$s;
        my $plan = generic_plan($n, $sql);
        my @by_seq = $plan =~ /using (\w+_by_seq)/g;
        if ($name =~ /_(list|filter)_|_convert$/) {
            ok(@by_seq, "$name: reads in creation order (@by_seq)")
                or diag($plan);
        } else {
            is("@by_seq", '', "$name: no creation-order index")
                or diag($plan);
        }
        unlike($plan, qr/Seq Scan on (threads|messages|conversations|conversation_items)\b/,
            "$name: no scan of a table of objects") or diag($plan);
    }
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: skewed owners: version 7's plan, the upgrade, every statement's plan
--- http_config eval
(my $c = $ThreadsTest::HTTP_CONFIG) =~ s/\$TEST_NGINX_PG_CONNINFO/\$TEST_NGINX_THREADS_PLANS_CONNINFO/;
# its own database is plain PostgreSQL, at version 7 first: not Citus'
# functions of version 9 (scripts/test-citus sets threads_pg_citus on)
$c =~ s/ *threads_pg_citus on;\n//;
$c
--- request
GET /v1/threads/thread_BBBBBBBBBBBBBBBBBBBBBBB1
--- more_headers
Authorization: Bearer k1
--- scenario: v7
--- error_code: 200
--- timeout: 120
--- no_error_log
[alert]
