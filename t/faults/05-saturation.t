# Issue 4, saturation: 2 workers, threads_pg_pool_size 2 (no pipelining),
# threads_pg_queue_size 4, threads_pg_queue_timeout 2s.  A row lock holds
# every statement; 20 concurrent modifies of that row arrive.  In each
# worker 2 run and 4 wait; the excess gets a JSON 503 at once; the rest
# completes once the lock is released; PostgreSQL never sees more than
# workers x pool size = 4 module sessions.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

master_on();
workers(2);
log_level('info');
no_shuffle();
use_api_defaults();

our $HTTP = $ThreadsTest::HTTP_CONFIG . <<'CONF';
    threads_pg_pool_size 2;
    threads_pg_pipeline 1;
    threads_pg_queue_size 4;
    threads_pg_queue_timeout 2s;
CONF

our $API = <<'CONF';
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        add_header X-Worker-Pid $pid always;
    }
CONF

my ($WORKERS, $POOL, $QUEUE, $N) = (2, 2, 4, 20);

add_response_body_check(sub {
    my ($block, $body, $i, $r, $dry) = @_;
    return if $dry || !defined $block->scenario;

    my $t = seed_thread(key => 'k1');
    my $holder = lock_row_in_background($t, 1.5 * slow_factor());
    my $t_locked = time;
    my ($t_release, $max) = (undef, 0);
    my @recs = run_load(clients => $N, seconds => 5, max_requests => 1,
        pause => 0, start_at => time + 0.3, keep_alive => 0, timeout => 10,
        step => sub {
            my ($n, $i, $state, $http) = @_;
            my $rec = http_request($http, 'POST', "/v1/threads/$t",
                qq({"metadata":{"sat":"$n"}}), 'k1');
            $rec->{error_type} = ref $rec->{body} eq 'HASH'
                && $rec->{body}{error} ? $rec->{body}{error}{type} : undef;
            return $rec;
        },
        during => sub {
            # a sampler of the module's sessions, in a process of its own,
            # so that the lock's release is seen here within 5 ms
            my $file = "/tmp/faults-sat-$$";
            my $sampler = fork // die "fork: $!";
            if ($sampler == 0) {
                my $m = 0;
                my $end = time + 6;
                while (time < $end) {
                    my $b = module_backends();
                    $m = $b if $b > $m;
                    if (open my $fh, '>', "$file.tmp") {
                        print $fh $m;
                        close $fh;
                        rename "$file.tmp", $file;
                    }
                    sleep 0.05;
                }
                POSIX::_exit(0);
            }
            my $end = time + 10;
            while (time < $end) {
                if (waitpid($holder, WNOHANG) == $holder) {
                    $t_release = time;
                    last;
                }
                sleep 0.005;
            }
            sleep 1;
            kill 'TERM', $sampler;
            waitpid($sampler, 0);
            if (open my $fh, '<', $file) {
                $max = <$fh> // 0;
                close $fh;
            }
            unlink $file;
        });
    $t_release //= time;

    is(scalar @recs, $N, "$N requests were sent");
    is(scalar(grep { $_->{t0} >= $t_release } @recs), 0,
        'all of them while the lock was held');
    my @ok = grep { $_->{status} == 200 } @recs;
    my @e503 = grep { $_->{status} == 503 } @recs;
    is(@ok + @e503, $N, 'every answer is a 200 or a 503 (' . summarize(@recs) . ')');

    my @malformed = grep { $_->{ct} ne 'application/json'
        || ($_->{retry_after} // '') ne '1'
        || ($_->{error_type} // '') ne 'server_error' } @e503;
    is(scalar @malformed, 0, 'the 503s are JSON server_errors with Retry-After');
    my ($slow503) = sort { $b->{secs} <=> $a->{secs} } @e503;
    cmp_ok($slow503 ? $slow503->{secs} : 0, '<', 0.5 * slow_factor(),
        sprintf('the excess is refused at once (slowest 503: %.3fs)',
            $slow503 ? $slow503->{secs} : 0));
    my ($early) = sort { $a->{t1} <=> $b->{t1} } @ok;
    ok(!$early || $early->{t1} >= $t_release - 0.1,
        sprintf('the 200s come after the lock is released (first %.3fs after)',
            $early ? $early->{t1} - $t_release : 0));
    my ($last) = sort { $b->{t1} <=> $a->{t1} } @ok;

    # per worker: pool size running + queue size waiting, the rest refused
    my %k;
    $k{$_->{worker} // '?'}{$_->{status}}++ for @recs;
    my @split;
    for my $w (sort keys %k) {
        my $got = ($k{$w}{200} // 0) + ($k{$w}{503} // 0);
        my $served = $got < $POOL + $QUEUE ? $got : $POOL + $QUEUE;
        is($k{$w}{200} // 0, $served, "worker $w: $got requests, $served served");
        is($k{$w}{503} // 0, $got - $served, "worker $w: " . ($got - $served)
            . ' refused');
        push @split, "worker $w: " . join(', ', map { "$_ x $k{$w}{$_}" }
            sort keys %{ $k{$w} });
    }
    cmp_ok(scalar @e503, '>=', $N - $WORKERS * ($POOL + $QUEUE),
        'at least the excess over workers x (pool + queue) was refused');
    cmp_ok($max, '<=', $WORKERS * $POOL, "at most workers x pool size"
        . " sessions ($max)");
    is(psql("SELECT metadata->>'sat' IS NOT NULL FROM threads WHERE id = '$t'"),
        't', 'the row was modified');

    diag(sprintf "saturation (2 workers, pool 2, queue 4): %s; %s; slowest"
        . " 503 %.3fs; lock released %.2fs after it was taken; last 200 %.3fs"
        . " after the release; most module sessions seen: %d",
        summarize(@recs), join('; ', @split),
        $slow503 ? $slow503->{secs} : 0, $t_release - $t_locked,
        $last ? $last->{t1} - $t_release : 0, $max);
});

run_tests();

__DATA__

=== TEST 1: more concurrent requests than pool plus queue
--- http_config eval
$main::HTTP
--- config eval
$main::API
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: saturation
--- error_code: 404
--- timeout: 60
--- no_error_log
[alert]
[crit]
--- error_log
threads: database pool queue is full
