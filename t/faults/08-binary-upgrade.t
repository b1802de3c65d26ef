# Issue 4, binary upgrade under steady load: `kill -USR2` starts a second
# master from the binary (as an upgrade to a new nginx would), WINCH lets
# the old workers finish and exit, QUIT ends the old master.  No request
# fails, every acknowledged create is stored, the new workers serve.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);
use POSIX ();

master_on();
workers(2);
log_level('info');
no_shuffle();
use_api_defaults();

sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $s, '<', $stat or next;
        my @f = split ' ', (<$s> // '');
        push @kids, $f[0] if @f > 3 && $f[3] == $ppid;
    }
    return @kids;
}

# Running, not a zombie: this test is a child subreaper (ThreadsTest), so
# an exited master lingers as its zombie until reaped here.
sub alive {
    my ($pid) = @_;
    waitpid($pid, POSIX::WNOHANG());
    open my $s, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$s> // '');
    return @f > 2 && $f[2] ne 'Z';
}

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->scenario;

    my ($old_master, @old) = ThreadsTest::nginx_pids();
    is(scalar @old, 2, 'two workers before the upgrade');
    my $run = 'upgrade-' . int(rand(1e9));
    my $t_start = time + 0.3;
    my ($new_master, $old_gone);
    my @recs = run_load(clients => 4, seconds => 6, keep_alive => 0,
        start_at => $t_start, timeout => 10, pause => 0.01,
        step => create_retrieve_step($run),
        during => sub {
            sleep_until($t_start + 1.5);
            kill 'USR2', $old_master;
            wait_for(sub {
                ($new_master) = ThreadsTest::nginx_pids();
                $new_master && $new_master != $old_master
            }, 5);
            wait_for(sub { children_of($new_master) >= 2 }, 5);
            sleep_until($t_start + 3);
            kill 'WINCH', $old_master;      # old workers finish and exit
            $old_gone = wait_for(sub { !grep { alive($_) } @old },
                5 * slow_factor());
            kill 'QUIT', $old_master;
        });

    ok($new_master && $new_master != $old_master, 'a new master started');
    ok($old_gone, 'the old workers exited');
    ok(wait_for(sub { !alive($old_master) }, 5), 'the old master exited');
    is(scalar(children_of($new_master)), 2, 'the new master has its workers');

    my @failed = grep { $_->{status} < 200 || $_->{status} > 299 } @recs;
    is(scalar @failed, 0, 'no request failed across the upgrade ('
        . summarize(@recs) . ')');
    my %acked = map { $_->{id} => 1 }
        grep { $_->{method} eq 'POST' && $_->{status} == 200 } @recs;
    my %stored = map { $_ => 1 } split /\n/, psql("SELECT id FROM threads"
        . " WHERE metadata->>'run' = '$run'");
    is(scalar(grep { !$stored{$_} } keys %acked), 0,
        'every acknowledged create is stored');

    my ($st) = api('POST', '/v1/threads', '{}', 'k1');
    is($st, 200, 'the upgraded nginx serves');
    diag(sprintf "binary upgrade under load: %s; lost: %d",
        summarize(@recs), scalar(@failed));
});

run_tests();

__DATA__

=== TEST 1: USR2, WINCH and QUIT under a steady load
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: upgrade
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[emerg]
