# Issue 4, idle connections killed: pool connections that the server ends
# while they rest in the pool (pg_terminate_backend, idle_session_timeout)
# must not fail the next requests, and a create is never applied twice.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

# a proxy between the module and PostgreSQL, for TEST 3
our $PROXY = tcp_proxy_start($ENV{TEST_NGINX_PROXY_PORT}
    // die("TEST_NGINX_PROXY_PORT is not set: run scripts/test-faults\n"),
    $ENV{TEST_NGINX_PG_PORT}, 120);
END { local $?; tcp_proxy_stop($PROXY) if $PROXY }

our $PROXIED = proxied_config();

log_level('info');
no_shuffle();
use_api_defaults();

my $KILL = "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
    . " WHERE application_name = 'ngx_http_threads_module'";

# Opens $n pool connections at once: $n modifies wait on a row lock, each
# on a connection of its own; they rest in the pool afterwards.
sub open_pool_connections {
    my ($n) = @_;
    my $t = seed_thread(key => 'k1');
    my $holder = lock_row_in_background($t, 1 * slow_factor());
    my @socks = map { raw_request('POST', "/v1/threads/$t",
        qq({"metadata":{"warm":"$_"}}), 'k1') } 1 .. $n;
    my $waiting = wait_for(sub { module_waiting_on_lock() >= $n }, 5 * slow_factor());
    waitpid($holder, 0);
    my $ok = 0;
    for my $sock (@socks) {
        local $/;
        local $SIG{ALRM} = sub { die "no answer within 10 s\n" };
        alarm 10;
        my $resp = eval { <$sock> } // '';
        alarm 0;
        close $sock;
        $ok++ if $resp =~ m{^HTTP/1\.1 200};
    }
    return $waiting ? $ok : 0;
}

# Requests right after the kill: a retrieve and a create per killed
# connection, each create with a marker of its own.
sub requests_after {
    my ($label, $n, $t) = @_;
    $t //= seed_thread(key => 'k1');
    my (@st, @markers);
    for my $i (1 .. $n) {
        my ($st) = api('GET', "/v1/threads/$t", undef, 'k1');
        push @st, "GET $st";
        my $m = "$label-$i-" . int(rand(1e9));
        ($st) = api('POST', '/v1/threads', qq({"metadata":{"m":"$m"}}), 'k1');
        push @st, "POST $st";
        push @markers, $m;
    }
    is(scalar(grep { !/ 200$/ } @st), 0, "$label: every request succeeds (@st)");
    my $list = join ',', map { "'$_'" } @markers;
    my %count = split /[|\n]/, psql("SELECT metadata->>'m', count(*) FROM"
        . " threads WHERE metadata->>'m' IN ($list) GROUP BY 1");
    my @twice = grep { ($count{$_} // 0) > 1 } @markers;
    is(scalar @twice, 0, "$label: no create was applied twice");
    return scalar grep { / 200$/ } @st;
}

sub log_count {
    my ($re) = @_;
    return scalar(() = error_log_text() =~ /$re/g);
}

my %scenario;

$scenario{'terminate'} = sub {
    for my $round (['right after the kill', 0], ['0.3 s after the kill', 0.3]) {
        my ($label, $pause) = @$round;
        my $opened = open_pool_connections(4);
        is($opened, 4, "$label: 4 pool connections opened");
        my $n = module_backends();
        my $t = seed_thread(key => 'k1');
        my $retries = log_count(qr/retrying on a fresh database connection/);
        my $closed = log_count(qr/idle database connection closed/);
        is(psql($KILL), $n, "$label: the $n module sessions were terminated");
        sleep $pause if $pause;
        my $ok = requests_after($label, $n, $t);
        diag(sprintf "idle connections killed (%s): %d sessions killed;"
            . " %d of %d requests after succeeded; %d closed while idle,"
            . " %d retried on a fresh connection", $label, $n, $ok, 2 * $n,
            log_count(qr/idle database connection closed/) - $closed,
            log_count(qr/retrying on a fresh database connection/) - $retries);
    }
};

$scenario{'idle-session-timeout'} = sub {
    psql($KILL);    # sessions opened before the setting do not have it
    psql("ALTER DATABASE threads_faults SET idle_session_timeout = '1s'");
    my $ok = eval {
        for my $round (1 .. 2) {
            my $opened = open_pool_connections(3);
            is($opened, 3, "round $round: 3 pool connections opened");
            sleep 2;
            ok(wait_for(sub { module_backends() == 0 }, 3),
                "round $round: the server ended the idle sessions");
            my $got = requests_after("idle_session_timeout round $round", 3);
            diag("idle_session_timeout 1s, waited 2 s: $got of 6 requests succeeded");
        }
        1;
    };
    my $err = $@;
    psql("ALTER DATABASE threads_faults RESET idle_session_timeout");
    psql($KILL);
    die $err unless $ok;
};

$scenario{'silent-drop'} = sub {
    my $t = seed_thread(key => 'k1');
    is(open_pool_connections(4), 4, '4 pool connections opened through the proxy');
    is(module_backends(), 4, 'the server has their 4 sessions');
    my $retries = log_count(qr/retrying on a fresh database connection/);
    tcp_proxy_drop($PROXY);
    ok(wait_for(sub { module_backends() == 0 }, 5),
        'the proxy dropped them: the sessions are gone, the worker was not told');

    my @st;
    my ($st) = api('GET', "/v1/threads/$t", undef, 'k1');
    push @st, "GET $st";
    is($st, 200, 'a retrieve right after succeeds (it may run twice:'
        . ' retried on a fresh connection)');
    for my $i (1 .. 4) {
        my $m = "drop-$i-" . int(rand(1e9));
        ($st) = api('POST', '/v1/threads', qq({"metadata":{"m":"$m"}}), 'k1');
        push @st, "POST $st";
        ok($st == 200 || $st == 503, "create $i: a 200 or a 503 ($st)");
        is(psql("SELECT count(*) FROM threads WHERE metadata->>'m' = '$m'"),
            $st == 200 ? 1 : 0, "create $i: applied once if acknowledged,"
            . " never if not");
    }
    my $ok = requests_after('after the dropped connections are gone', 2, $t);
    diag(sprintf "connections dropped silently by a proxy: 4 dropped; the"
        . " requests right after: %s; %d retried on a fresh connection;"
        . " then %d of 4 succeeded", join(', ', @st),
        log_count(qr/retrying on a fresh database connection/) - $retries, $ok);
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: pg_terminate_backend on every pooled connection
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: terminate
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 2: idle_session_timeout ends pooled connections
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: idle-session-timeout
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 3: connections dropped silently (a proxy forgets them)
--- http_config eval
$main::PROXIED
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: silent-drop
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
