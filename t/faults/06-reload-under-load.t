# Issue 4, reload under steady load: 2 workers, 4 clients creating and
# retrieving for ~6 s (a new connection per request, so that no request
# races nginx closing an idle keep-alive connection, which clients must
# retry anyway), and `kill -HUP` to the master twice.  No request fails,
# every acknowledged create is stored, and the old workers exit within a
# few seconds of each reload.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

master_on();
workers(2);
log_level('info');
no_shuffle();
use_api_defaults();

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->scenario;

    my ($master, @first) = ThreadsTest::nginx_pids();
    is(scalar @first, 2, 'two workers');
    my $run = 'reload-' . int(rand(1e9));
    my $t_start = time + 0.3;
    my (@reloads, @exit_secs);
    my @recs = run_load(clients => 4, seconds => 6, keep_alive => 0,
        start_at => $t_start, timeout => 10, pause => 0.01,
        step => create_retrieve_step($run),
        during => sub {
            for my $at (2, 4) {
                sleep_until($t_start + $at);
                my @old = worker_pids();
                my $t_hup = time;
                kill 'HUP', $master;
                push @reloads, $t_hup;
                my $gone = wait_for(sub { !grep { kill 0, $_ } @old },
                    5 * slow_factor());
                push @exit_secs, $gone ? time - $t_hup : undef;
            }
        });

    my @failed = grep { $_->{status} < 200 || $_->{status} > 299 } @recs;
    is(scalar @failed, 0, 'no request failed across two reloads ('
        . summarize(@recs) . ')');
    diag(explain([@failed[0 .. ($#failed < 2 ? $#failed : 2)]])) if @failed;
    for my $n (0 .. $#reloads) {
        my $s = $exit_secs[$n];
        ok(defined $s, sprintf('reload %d: the old workers exited (%s)',
            $n + 1, defined $s ? sprintf('%.2fs', $s) : 'not within 5 s'));
        cmp_ok(scalar(grep { $_->{t0} > $reloads[$n] && $_->{t0} < $reloads[$n] + 1 }
            @recs), '>', 0, "reload " . ($n + 1) . ": requests were in flight");
    }
    my (undef, @now) = ThreadsTest::nginx_pids();
    is(scalar @now, 2, 'two workers after the reloads');
    is(scalar(grep { my $p = $_; grep { $_ == $p } @first } @now), 0,
        'all of them new');

    my %acked = map { $_->{id} => 1 }
        grep { $_->{method} eq 'POST' && $_->{status} == 200 } @recs;
    my %stored = map { $_ => 1 } split /\n/, psql("SELECT id FROM threads"
        . " WHERE metadata->>'run' = '$run'");
    my @lost = grep { !$stored{$_} } keys %acked;
    is(scalar @lost, 0, 'every acknowledged create is stored');
    ok(wait_for(sub { module_backends() <= 2 * 8 }, 5),
        'no more sessions than workers x pool size');

    diag(sprintf "reload under load: %s; 2 reloads; old workers exited"
        . " after %s; lost: %d", summarize(@recs),
        join(' and ', map { defined $_ ? sprintf('%.2fs', $_) : 'never' }
            @exit_secs), scalar(@lost) + scalar(@failed));
});

run_tests();

__DATA__

=== TEST 1: two reloads under a steady load
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: reload
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]
exited on signal
