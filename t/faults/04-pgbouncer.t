# Issue 4, PgBouncer (Debian's package) in transaction pooling mode in
# front of PostgreSQL, with 2 server connections for up to 8 of the
# module's: with threads_pg_prepare off (unnamed statements) the whole API
# works over many concurrent requests.  With threads_pg_prepare on, named
# prepared statements meet other clients' server connections; what
# happens is reported, and the worker must survive it.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use JSON::PP ();
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

our $BOUNCER = pgbouncer_start(db => 'threads_faults', pool => 2);
END { local $?; pgbouncer_stop($BOUNCER) }

sub http_config {
    my ($prepare) = @_;
    return $ThreadsTest::HTTP_CONFIG
        =~ s/threads_pg_conninfo "[^"]*"/threads_pg_conninfo "host=127.0.0.1 port=\$TEST_NGINX_BOUNCER_PORT dbname=threads_faults user=postgres"/r
        . "    threads_pg_prepare $prepare;\n";
}
our $OFF = http_config('off');
our $ON = http_config('on');

my $J = JSON::PP->new->utf8->canonical;

# One client's cycle over the whole API; each record carries the status
# it should have had.
sub cycle_step {
    my ($run) = @_;
    my @ops = qw(create retrieve modify msg_create msg_list delete gone);
    return sub {
        my ($n, $i, $state, $http) = @_;
        my $op = $ops[$i % @ops];
        my $t = $state->{thread};
        my $rec;
        if ($op eq 'create') {
            $rec = http_request($http, 'POST', '/v1/threads', $J->encode({
                metadata => { run => $run, c => "$n-$i" },
                messages => [ { role => 'user', content => "hello $n-$i" },
                              { role => 'assistant', content => 'hi' } ] }));
            $state->{thread} = ref $rec->{body} ? $rec->{body}{id} : undef;
            $rec->{ok} = $rec->{status} == 200 && $state->{thread}
                && $state->{thread} =~ /^thread_/;
        } elsif (!$t) {
            return undef;
        } elsif ($op eq 'retrieve') {
            $rec = http_request($http, 'GET', "/v1/threads/$t");
            $rec->{ok} = $rec->{status} == 200 && $rec->{body}{id} eq $t;
        } elsif ($op eq 'modify') {
            $rec = http_request($http, 'POST', "/v1/threads/$t",
                '{"metadata":{"modified":"yes"}}');
            $rec->{ok} = $rec->{status} == 200
                && ($rec->{body}{metadata}{modified} // '') eq 'yes';
        } elsif ($op eq 'msg_create') {
            $rec = http_request($http, 'POST', "/v1/threads/$t/messages",
                '{"role":"user","content":"third"}');
            $rec->{ok} = $rec->{status} == 200
                && ($rec->{body}{id} // '') =~ /^msg_/;
        } elsif ($op eq 'msg_list') {
            $rec = http_request($http, 'GET', "/v1/threads/$t/messages?order=asc");
            $rec->{ok} = $rec->{status} == 200
                && ref $rec->{body}{data} eq 'ARRAY'
                && @{ $rec->{body}{data} } == 3
                && $rec->{body}{data}[2]{content}[0]{text}{value} eq 'third';
        } elsif ($op eq 'delete') {
            $rec = http_request($http, 'DELETE', "/v1/threads/$t");
            $rec->{ok} = $rec->{status} == 200 && $rec->{body}{deleted};
        } else {
            $rec = http_request($http, 'GET', "/v1/threads/$t");
            $rec->{ok} = $rec->{status} == 404;
            $state->{thread} = undef;
        }
        $rec->{op} = $op;
        $rec->{ok} = $rec->{ok} ? 1 : 0;
        $rec->{error} = $rec->{body}{error}{message}
            if ref $rec->{body} eq 'HASH' && $rec->{body}{error};
        return $rec;
    };
}

# The most server sessions of the database seen while $code runs.
sub max_sessions_during {
    my ($stop) = @_;
    my $max = 0;
    for (1 .. 200) {
        last if $stop->();
        # PgBouncer's server sessions: not this test's own psql sessions,
        # which a slow (sanitizer) run sees overlap the sampling, nor an
        # autovacuum worker visiting the database (it counted once)
        my $n = psql("SELECT count(*) FROM pg_stat_activity WHERE datname ="
            . " 'threads_faults' AND pid <> pg_backend_pid()"
            . " AND backend_type = 'client backend'"
            . " AND application_name IS DISTINCT FROM 'psql'");
        $max = $n if $n > $max;
        sleep 0.1;
    }
    return $max;
}

sub by_op {
    my (@recs) = @_;
    my %s;
    $s{"$_->{op} $_->{status}"}++ for @recs;
    return join ', ', map { "$_ x $s{$_}" } sort keys %s;
}

my %scenario;

$scenario{'prepare-off'} = sub {
    my $run = 'bouncer-' . int(rand(1e9));
    my $t_end = time + 0.3 + 6;
    my $max = 0;
    my @recs = run_load(clients => 6, seconds => 6, max_requests => 70,
        pause => 0, start_at => time + 0.3, step => cycle_step($run),
        during => sub { $max = max_sessions_during(sub { time > $t_end }) });
    my @bad = grep { !$_->{ok} } @recs;
    cmp_ok(scalar @recs, '>=', 100, 'many requests went through PgBouncer ('
        . scalar(@recs) . ')');
    is(scalar @bad, 0, 'every operation through PgBouncer succeeds');
    diag(explain([@bad[0 .. ($#bad < 2 ? $#bad : 2)]])) if @bad;
    my %ops = map { $_->{op} => 1 } @recs;
    is(join(',', sort keys %ops), 'create,delete,gone,modify,msg_create,'
        . 'msg_list,retrieve', 'all operations were exercised');
    cmp_ok($max, '<=', 2, "PostgreSQL saw at most PgBouncer's 2 server"
        . " connections ($max)");
    cmp_ok(module_backends(), '<=', 2, 'the module\'s sessions are '
        . "PgBouncer's");
    diag("PgBouncer ($BOUNCER->{version}), transaction mode, 2 server"
        . " connections, threads_pg_prepare off: " . summarize(@recs)
        . "; by operation: " . by_op(@recs) . "; most server sessions seen: $max");
};

$scenario{'prepare-on'} = sub {
    my $run = 'bouncer-on-' . int(rand(1e9));
    my @recs = run_load(clients => 6, seconds => 4, max_requests => 35,
        pause => 0, start_at => time + 0.3, step => cycle_step($run));
    my @failed = grep { !$_->{ok} } @recs;
    my @not_json = grep { !ref $_->{body} && $_->{ct} ne 'application/json' }
        @recs;
    is(scalar(grep { $_->{status} >= 599 } @recs), 0,
        'with prepare on, every request is answered');
    is(scalar @not_json, 0, 'as JSON');
    # a statement prepared on one server connection and found on another
    # (42P05) is taken as prepared; if it is not there either, a 503
    is(scalar(grep { $_->{status} != 200 && $_->{status} != 404
        && $_->{status} != 500 && $_->{status} != 503 } @recs), 0,
        'with 200, 404, 500 or 503');
    my %err;
    my $log = error_log_text();
    $err{$1}++ while $log =~ /database error in "[^"]+": (ERROR: +[^\n]*)/g;
    my ($st) = api('GET', '/v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA',
        undef, 'k1');
    ok($st == 404 || $st == 500, "the worker still answers ($st)");
    diag("PgBouncer ($BOUNCER->{version}), transaction mode, threads_pg_prepare"
        . " on: " . summarize(@recs) . "; " . scalar(@failed) . " operations"
        . " failed; by operation: " . by_op(@recs) . "; database errors: "
        . (join('; ', map { "$_ x $err{$_}" } sort keys %err) || 'none'));
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: the whole API through PgBouncer, threads_pg_prepare off
--- http_config eval
$main::OFF
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: prepare-off
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
threads: database error

=== TEST 2: through PgBouncer with threads_pg_prepare on (reported)
--- http_config eval
$main::ON
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: prepare-on
--- error_code_like: ^(404|500)$
--- timeout: 60
--- no_error_log
[alert]
[crit]
