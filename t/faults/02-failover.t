# Issue 4, failover: a primary and a synchronous streaming standby on
# loopback (pg_basebackup -R; synchronous_standby_names = '*' on the
# primary, so a commit is acknowledged only once the standby has it), the
# module pointed at both with target_session_attrs=read-write.  Threads
# are created, a steady writer keeps going, the primary stops, the standby
# is promoted: writes resume without touching nginx, and every thread
# acknowledged before (and during) the failover is on the new primary.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);

log_level('info');
no_shuffle();
use_api_defaults();

our $HTTP = <<'CONF';
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_FO_PORT1,$TEST_NGINX_FO_PORT2 dbname=threads_fo user=postgres target_session_attrs=read-write";
    threads_pg_connect_timeout 2s;
    client_max_body_size 32m;
CONF

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->scenario;

    my ($primary, $standby);
    my $ok = eval {
        ($primary, $standby) = failover_pair('threads_fo');
        my ($p1, $p2) = ($primary->{port}, $standby->{port});
        is(psql_at($p2, 'threads_fo', 'SELECT pg_is_in_recovery()'), 't',
            'the second host is a standby');

        # threads acknowledged before the failover
        my @before;
        for my $n (1 .. 20) {
            my ($st, $data) = api('POST', '/v1/threads',
                qq({"metadata":{"phase":"before","n":"$n"}}), 'k1');
            push @before, $data->{id} if $st == 200;
        }
        is(scalar @before, 20, 'creates before the failover succeed');
        my ($t_stop, $t_stopped, $t_promoted);

        # a steady writer across the failover
        my $run = 'failover-' . int(rand(1e9));
        my $t_start = time + 0.3;
        my @recs = run_load(clients => 2, seconds => 8, pause => 0.05,
            start_at => $t_start, timeout => 10,
            step => create_retrieve_step($run),
            during => sub {
                sleep_until($t_start + 1.5);
                $t_stop = time;
                cluster_stop($primary, 'fast') or die "cannot stop the primary\n";
                $t_stopped = time;
                cluster_promote($standby);
                $t_promoted = time;
            });

        is(psql_at($p2, 'threads_fo', 'SELECT pg_is_in_recovery()'), 'f',
            'the standby was promoted');

        my @bad = grep { $_->{status} != 200 && $_->{status} != 503 } @recs;
        is(scalar @bad, 0, 'during the failover: only 200s and 503s ('
            . summarize(@recs) . ')');
        diag(explain($bad[0])) if @bad;
        my @e503 = grep { $_->{status} == 503 } @recs;
        is(scalar(grep { $_->{ct} ne 'application/json'
            || ($_->{retry_after} // '') ne '1' } @e503), 0,
            'the 503s are JSON with Retry-After');
        my ($first_ok) = sort { $a->{t1} <=> $b->{t1} }
            grep { $_->{status} == 200 && $_->{t0} >= $t_promoted } @recs;
        my $resumed = $first_ok ? $first_ok->{t1} - $t_promoted : undef;
        ok(defined $resumed && $resumed <= 2,
            sprintf('writes resume after the promotion (%s)',
                defined $resumed ? sprintf('%.3fs', $resumed) : 'never'));
        is(scalar(grep { $_->{status} != 200 && $_->{t0} > $t_promoted + 1 }
            @recs), 0, 'every request 1 s after the promotion is a 200');

        # writes go to the new primary, nginx untouched
        my ($st, $data) = api('POST', '/v1/threads',
            '{"metadata":{"phase":"after"}}', 'k1');
        is($st, 200, 'a create after the failover succeeds');
        is(psql_at($p2, 'threads_fo', "SELECT count(*) FROM threads WHERE"
            . " id = '$data->{id}'"), 1, 'and is on the new primary');
        ($st) = api('GET', "/v1/threads/$before[0]", undef, 'k1');
        is($st, 200, 'a thread created before the failover is retrieved');

        # nothing acknowledged is lost
        my $list = join ',', map { "'$_'" } @before;
        is(psql_at($p2, 'threads_fo', "SELECT count(*) FROM threads"
            . " WHERE id IN ($list)"), 20,
            'every thread acknowledged before the failover is on the new primary');
        my %acked = map { $_->{id} => 1 }
            grep { $_->{method} eq 'POST' && $_->{status} == 200 } @recs;
        my %stored = map { $_ => 1 } split /\n/, psql_at($p2, 'threads_fo',
            "SELECT id FROM threads WHERE metadata->>'run' = '$run'");
        my @lost = grep { !$stored{$_} } keys %acked;
        is(scalar @lost, 0, 'every create acknowledged during the failover'
            . ' is on the new primary');

        diag(sprintf "failover (synchronous replication): 20 creates before,"
            . " then %s across it; primary stopped in %.2fs, promoted in"
            . " %.2fs; writes resumed %s after the promotion; lost: %d",
            summarize(@recs), $t_stopped - $t_stop, $t_promoted - $t_stopped,
            defined $resumed ? sprintf('%.3fs', $resumed) : 'never',
            scalar @lost);
        1;
    };
    my $err = $@;
    cluster_destroy($standby);
    cluster_destroy($primary);
    fail("failover scenario: $err") unless $ok;
});

run_tests();

__DATA__

=== TEST 1: stop the primary, promote the standby: writes resume
--- http_config eval
$main::HTTP
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: failover
--- error_code: 503
--- timeout: 120
--- no_error_log
[alert]
[crit]
[emerg]
