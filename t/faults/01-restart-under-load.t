# Issue 4, database restart under load: 4 clients create and retrieve for
# ~9 s while PostgreSQL is stopped for ~3 s and started again.  Every
# answer during the outage is a JSON 503 with Retry-After within the
# connect timeout, service resumes within a second of the restart, the
# worker survives, every acknowledged create is stored, and the worker's
# descriptors and the module's sessions return to their levels before.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

master_on();
workers(1);
log_level('info');
no_shuffle();
use_api_defaults();

our $HTTP = $ThreadsTest::HTTP_CONFIG =~ s/connect_timeout 5s/connect_timeout 1s/r
    . "    threads_pg_idle_timeout 2s;\n";

my $CONNECT_TIMEOUT = 1;
my $SLACK = 0.5 * slow_factor();

my %scenario;

$scenario{'restart-under-load'} = sub {

    my @workers = worker_pids();
    is(scalar @workers, 1, 'one worker');
    my $worker = $workers[0];
    my $run = 'restart-' . int(rand(1e9));
    my $step = create_retrieve_step($run);

    # warm-up, then the resting levels (idle connections close after 2 s)
    my @warm = run_load(clients => 4, seconds => 1, step => $step);
    is(scalar(grep { $_->{status} != 200 } @warm), 0,
        'warm-up: every request is a 200 (' . summarize(@warm) . ')');
    ok(wait_for(sub { module_backends() == 0 }, 8 * slow_factor()),
        'idle pool connections close before the fault');
    my $fd0 = fd_count($worker);
    my $b0 = module_backends();

    my ($t_down, $t_stopped, $t_up, $t_start);
    $t_start = time + 0.3;
    my @recs = run_load(clients => 4, seconds => 9, step => $step,
        start_at => $t_start, timeout => 10,
        during => sub {
            sleep_until($t_start + 2);
            $t_down = time;
            pg_ctl('stop');
            $t_stopped = time;
            sleep 3;
            pg_ctl('start');
            $t_up = time;
        });

    my @before = grep { $_->{t1} < $t_down } @recs;
    my @outage = grep { $_->{t1} >= $t_down && $_->{t0} < $t_up } @recs;
    my @after = grep { $_->{t0} >= $t_up } @recs;
    my %status;
    $status{$_->{status}}++ for @recs;

    is(scalar(grep { $_->{status} != 200 } @before), 0,
        'before the outage every request is a 200');
    cmp_ok(scalar @outage, '>', 10, 'requests were sent during the outage');
    cmp_ok(scalar(grep { $_->{status} == 503 } @outage), '>', 0,
        'the outage was seen by clients (503s)');

    my @bad = grep { $_->{status} != 200 && $_->{status} != 503 } @recs;
    is(scalar @bad, 0, 'every answer is a 200 or a 503');
    diag(explain([@bad[0 .. ($#bad < 4 ? $#bad : 4)]])) if @bad;

    my @e503 = grep { $_->{status} == 503 } @recs;
    my @malformed = grep {
        $_->{ct} ne 'application/json' || ($_->{retry_after} // '') ne '1'
            || ($_->{error_type} // '') ne 'server_error'
    } @e503;
    is(scalar @malformed, 0, 'every 503 is JSON, server_error, with Retry-After: 1');
    diag(explain($malformed[0])) if @malformed;

    my ($slowest) = sort { $b->{secs} <=> $a->{secs} } @recs;
    cmp_ok($slowest->{secs}, '<=', $CONNECT_TIMEOUT + $SLACK,
        sprintf('no request hangs: the slowest took %.3fs (%s %s, %s)',
            $slowest->{secs}, $slowest->{method}, $slowest->{path},
            $slowest->{status}));

    my ($first_ok) = sort { $a->{t1} <=> $b->{t1} }
        grep { $_->{status} == 200 } @after;
    my $recovery = $first_ok ? $first_ok->{t1} - $t_up : undef;
    ok(defined $recovery && $recovery <= 1,
        sprintf('service resumes within 1 s of the restart (%s)',
            defined $recovery ? sprintf('%.3fs', $recovery) : 'never'));
    my @late = grep { $_->{t0} >= $t_up + 1 && $_->{status} != 200 } @recs;
    is(scalar @late, 0, 'every request sent 1 s after the restart is a 200');

    is(scalar(grep { $_->{status} == 404 } @recs), 0,
        'no acknowledged thread went missing for a retrieve');

    # every acknowledged create is stored
    my %acked = map { $_->{id} => 1 }
        grep { $_->{method} eq 'POST' && $_->{status} == 200 } @recs;
    my %stored = map { $_ => 1 } split /\n/, psql("SELECT id FROM threads"
        . " WHERE metadata->>'run' = '$run'");
    my @lost = grep { !$stored{$_} } keys %acked;
    is(scalar @lost, 0, 'every create answered 200 is in the database');
    my @seq503 = map { $_->{seq} }
        grep { $_->{method} eq 'POST' && $_->{status} == 503 } @recs;
    my %stored_seq = map { $_ => 1 } split /\n/, psql("SELECT"
        . " metadata->>'seq' FROM threads WHERE metadata->>'run' = '$run'");
    my $ambiguous = grep { $stored_seq{$_} } @seq503;

    # the worker survived and nothing leaked
    is_deeply([worker_pids()], [$worker], 'the same worker serves (no crash)');
    ok(wait_for(sub { module_backends() <= $b0 }, 8 * slow_factor()),
        'the module\'s sessions return to their level before ('
        . "$b0, now " . module_backends() . ')');
    ok(wait_for(sub { fd_count($worker) <= $fd0 }, 5 * slow_factor()),
        "the worker's descriptors return to their level before ($fd0, now "
        . fd_count($worker) . ')');
    cmp_ok(fd_count($worker), '==', $fd0, 'exactly');

    diag(sprintf "restart under load: %s; during the outage (%.1fs down,"
        . " %.1fs to stop): %d answered (%d x 503); lost: %d; creates"
        . " answered 503 that were stored anyway: %d; recovery after the"
        . " restart: %s; slowest answer %.3fs; fds %d -> %d; sessions %d -> %d",
        summarize(@recs), $t_up - $t_down, $t_stopped - $t_down,
        scalar @outage, scalar(grep { $_->{status} == 503 } @outage),
        scalar(@lost) + scalar(grep { $_->{status} >= 599 } @recs),
        $ambiguous, defined $recovery ? sprintf('%.3fs', $recovery) : 'never',
        $slowest->{secs}, $fd0, fd_count($worker), $b0, module_backends());
};

# The postmaster stopped (SIGSTOP): connections are accepted by the kernel
# and never answered, so every request depends on the connect timeout.
$scenario{'hung-database'} = sub {
    my @workers = worker_pids();
    my $worker = $workers[0];
    my $run = 'hung-' . int(rand(1e9));
    my $step = create_retrieve_step($run);
    my ($st) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'the database answers before');
    psql("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
        . " WHERE application_name = 'ngx_http_threads_module'");
    ok(wait_for(sub { module_backends() == 0 }, 5), 'the pool is empty');
    my $fd0 = fd_count($worker);

    open my $fh, '<', "$ENV{TEST_NGINX_PG_DIR}/postmaster.pid"
        or die "postmaster.pid: $!";
    my ($postmaster) = (<$fh> // '') =~ /(\d+)/;
    close $fh;
    kill 'STOP', $postmaster;
    my $t_cont;
    my @recs = eval {
        run_load(clients => 4, seconds => 3, step => $step, timeout => 10,
            pause => 0.05)
    };
    my $err = $@;
    kill 'CONT', $postmaster;
    $t_cont = time;
    die $err if $err;

    my @e503 = grep { $_->{status} == 503 } @recs;
    is(scalar @e503, scalar @recs, 'while the database does not answer,'
        . ' every request is a 503 (' . summarize(@recs) . ')');
    is(scalar(grep { $_->{ct} ne 'application/json'
        || ($_->{retry_after} // '') ne '1'
        || ($_->{error_type} // '') ne 'server_error' } @e503), 0,
        'JSON server_errors with Retry-After');
    my ($slowest) = sort { $b->{secs} <=> $a->{secs} } @recs;
    cmp_ok($slowest->{secs}, '<=', $CONNECT_TIMEOUT + $SLACK,
        sprintf('none waits past the connect timeout (slowest %.3fs)',
            $slowest->{secs}));
    cmp_ok($slowest->{secs}, '>=', $CONNECT_TIMEOUT * 0.9,
        'and the connect timeout is what answers them');

    my $t_ok;
    wait_for(sub { my ($s) = api('GET', '/v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA',
        undef, 'k1'); $t_ok = time if $s == 404; $s == 404 }, 5);
    ok(defined $t_ok && $t_ok - $t_cont <= 1, sprintf('service resumes'
        . ' within 1 s once the database answers again (%s)',
        defined $t_ok ? sprintf('%.3fs', $t_ok - $t_cont) : 'never'));
    my %stored_seq = map { $_ => 1 } split /\n/, psql("SELECT"
        . " metadata->>'seq' FROM threads WHERE metadata->>'run' = '$run'");
    is(scalar keys %stored_seq, 0, 'nothing answered 503 was stored');
    is_deeply([worker_pids()], [$worker], 'the same worker serves');
    ok(wait_for(sub { module_backends() == 0 }, 8 * slow_factor()),
        'idle connections close again');
    ok(wait_for(sub { fd_count($worker) <= $fd0 }, 5 * slow_factor()),
        "the worker's descriptors return to their level ($fd0, now "
        . fd_count($worker) . ')');
    diag(sprintf "database hung (postmaster stopped) for %.1fs: %s; lost: 0"
        . " of 0 acknowledged; slowest answer %.3fs (connect timeout 1s);"
        . " service resumed %s after it answered again; fds %d -> %d",
        $t_cont - $recs[0]{t0}, summarize(@recs), $slowest->{secs},
        defined $t_ok ? sprintf('%.3fs', $t_ok - $t_cont) : 'never',
        $fd0, fd_count($worker));
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: PostgreSQL stops and starts again under load
--- http_config eval
$main::HTTP
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: restart-under-load
--- error_code: 404
--- timeout: 120
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
--- error_log eval
qr/database unavailable, answering 503.*request_id: [0-9a-f]{32}/

=== TEST 2: PostgreSQL accepts connections but does not answer
--- http_config eval
$main::HTTP
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: hung-database
--- error_code: 404
--- timeout: 120
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
--- error_log
connecting to the database timed out
