package FaultsTest;

# Helpers for the fault suite (t/faults/*.t, run by scripts/test-faults):
# PostgreSQL clusters of the tests' own (a primary and a streaming
# standby), PgBouncer, and bounded concurrent HTTP load whose every
# request is recorded.  Everything here is bounded in time; every process
# started here is stopped by the test that started it, and
# scripts/test-faults stops what is left under TEST_NGINX_FAULTS_DIR.

use strict;
use warnings;

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Temp ();
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use ThreadsTest ();

our @EXPORT = qw(faults_dir pg_bin run_as_postgres cluster_create
    cluster_start cluster_stop cluster_promote cluster_destroy psql_at
    standby_create failover_pair pgbouncer_start pgbouncer_stop
    run_load http_request worker_pids error_log_text summarize
    conninfo_at port create_retrieve_step proxied_config
    tcp_proxy_start tcp_proxy_drop tcp_proxy_stop sleep_until);

my $JSON = JSON::PP->new->utf8->canonical;

sub faults_dir {
    $ENV{TEST_NGINX_FAULTS_DIR}
        or die "TEST_NGINX_FAULTS_DIR is not set: run scripts/test-faults\n";
}

sub pg_bin {
    $ENV{TEST_NGINX_PG_BIN} or die "TEST_NGINX_PG_BIN is not set\n";
}

sub port { ThreadsTest::nginx_port() }

# Runs a command (as the postgres user when we are root) with its output
# in $log (or /dev/null); kills it after $timeout seconds.  True on success.
sub run_as_postgres {
    my ($cmd, %o) = @_;
    my @run = $> == 0 ? ('runuser', '-u', 'postgres', '--') : ();
    my $timeout = $o{timeout} // 60;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $log = $o{log} // '/dev/null';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or open STDOUT, '>', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec @run, @$cmd or POSIX::_exit(127);
    }
    my $end = time + $timeout;
    while (time < $end) {
        return $? == 0 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    Test::More::diag("timed out after ${timeout}s: @$cmd");
    return 0;
}

sub conninfo_at {
    my ($port, $db) = @_;
    return "host=127.0.0.1 port=$port dbname=" . ($db // 'postgres')
        . " user=postgres connect_timeout=5";
}

# psql against another cluster; dies on error, like ThreadsTest::psql.
sub psql_at {
    my ($port, $db, $sql) = @_;
    local $ENV{TEST_NGINX_PG_CONNINFO} = conninfo_at($port, $db);
    return ThreadsTest::psql($sql);
}

# A new cluster in faults_dir()/$name listening on 127.0.0.1:$port.
# Returns { name, dir, port }.  $opts{conf}: lines for postgresql.conf.
sub cluster_create {
    my ($name, $port, %opts) = @_;
    my $dir = faults_dir() . "/$name";
    remove_tree($dir) if -d $dir;
    make_path($dir);
    if ($> == 0) {
        my (undef, undef, $uid, $gid) = getpwnam('postgres');
        chown $uid, $gid, $dir;
    }
    chmod 0700, $dir;
    run_as_postgres([pg_bin() . '/initdb', '-D', $dir, '-A', 'trust',
        '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8'],
        log => faults_dir() . "/$name.initdb.log", timeout => 120)
        or die "initdb of $name failed\n";
    my $c = { name => $name, dir => $dir, port => $port };
    append_conf($c, $opts{conf}) if $opts{conf};
    cluster_start($c);
    return $c;
}

sub append_conf {
    my ($c, $text) = @_;
    open my $fh, '>>', "$c->{dir}/postgresql.conf" or die "conf: $!";
    print $fh "\n$text\n";
    close $fh;
}

sub cluster_start {
    my ($c) = @_;
    run_as_postgres([pg_bin() . '/pg_ctl', '-D', $c->{dir}, '-w', '-t', 60,
        '-l', "$c->{dir}/server.log", '-o',
        "-k $c->{dir} -p $c->{port} -c listen_addresses=127.0.0.1",
        'start'], timeout => 90)
        or die "cannot start cluster $c->{name}\n";
}

sub cluster_stop {
    my ($c, $mode) = @_;
    return 1 unless -f "$c->{dir}/postmaster.pid";
    run_as_postgres([pg_bin() . '/pg_ctl', '-D', $c->{dir}, '-w', '-t', 60,
        '-m', $mode // 'fast', 'stop'], timeout => 90);
}

sub cluster_promote {
    my ($c) = @_;
    run_as_postgres([pg_bin() . '/pg_ctl', '-D', $c->{dir}, '-w', '-t', 60,
        'promote'], timeout => 90) or die "promote of $c->{name} failed\n";
}

sub cluster_destroy {
    my ($c) = @_;
    return unless $c && -d $c->{dir};
    cluster_stop($c, 'immediate');
    remove_tree($c->{dir});
}

# Creates database $db with the project's schema on a cluster.
sub apply_schema {
    my ($port, $db) = @_;
    psql_at($port, 'postgres', qq{CREATE DATABASE "$db"});
    my $schema = $ENV{TEST_NGINX_SCHEMA} or die "TEST_NGINX_SCHEMA is not set\n";
    open my $fh, '<', $schema or die "$schema: $!";
    local $/;
    psql_at($port, $db, scalar <$fh>);
}

# A standby of $primary streaming from it (pg_basebackup -R).
sub standby_create {
    my ($primary, $name, $port) = @_;
    my $dir = faults_dir() . "/$name";
    remove_tree($dir) if -d $dir;
    run_as_postgres([pg_bin() . '/pg_basebackup', '-h', '127.0.0.1',
        '-p', $primary->{port}, '-U', 'postgres', '-D', $dir, '-R',
        '-X', 'stream', '-c', 'fast'],
        log => faults_dir() . "/$name.basebackup.log", timeout => 120)
        or die "pg_basebackup for $name failed\n";
    chmod 0700, $dir;
    my $c = { name => $name, dir => $dir, port => $port };
    # the primary's postmaster.pid and logs are not copied; its port is in
    # no file, cluster_start passes ours
    append_conf($c, "cluster_name = '$name'");
    cluster_start($c);
    return $c;
}

# A primary on TEST_NGINX_FO_PORT1 with database $db and the schema, and a
# synchronous streaming standby on TEST_NGINX_FO_PORT2: a commit is
# acknowledged only once the standby has flushed it.
sub failover_pair {
    my ($db) = @_;
    my $p1 = $ENV{TEST_NGINX_FO_PORT1} or die "TEST_NGINX_FO_PORT1 is not set\n";
    my $p2 = $ENV{TEST_NGINX_FO_PORT2} or die "TEST_NGINX_FO_PORT2 is not set\n";
    my $primary = cluster_create('primary', $p1,
        conf => "wal_level = replica\nmax_wal_senders = 5\n"
              . "synchronous_commit = on\ncluster_name = 'primary'");
    apply_schema($p1, $db);
    my $standby = standby_create($primary, 'standby', $p2);
    ThreadsTest::wait_for(sub {
        psql_at($p1, 'postgres', "SELECT count(*) FROM pg_stat_replication"
            . " WHERE state = 'streaming'") >= 1 }, 30)
        or die "the standby does not stream\n";
    psql_at($p1, 'postgres', "ALTER SYSTEM SET synchronous_standby_names"
        . " = '*'");
    psql_at($p1, 'postgres', "SELECT pg_reload_conf()");
    ThreadsTest::wait_for(sub {
        psql_at($p1, 'postgres', "SELECT count(*) FROM pg_stat_replication"
            . " WHERE sync_state = 'sync'") >= 1 }, 30)
        or die "the standby is not synchronous\n";
    return ($primary, $standby);
}

# PgBouncer in transaction pooling mode on TEST_NGINX_BOUNCER_PORT in
# front of the main cluster's database $db, with $pool server
# connections.  Runs as the postgres user (it refuses root).
sub pgbouncer_start {
    my (%o) = @_;
    my $dir = faults_dir() . '/bouncer';
    remove_tree($dir) if -d $dir;
    make_path($dir);
    my $port = $ENV{TEST_NGINX_BOUNCER_PORT}
        or die "TEST_NGINX_BOUNCER_PORT is not set\n";
    my $db = $o{db} // 'threads_faults';
    my $pool = $o{pool} // 2;
    my $pg = $ENV{TEST_NGINX_PG_PORT};
    my $bin = -x '/usr/sbin/pgbouncer' ? '/usr/sbin/pgbouncer' : 'pgbouncer';
    open my $fh, '>', "$dir/userlist.txt" or die "$dir: $!";
    print $fh qq{"postgres" ""\n};
    close $fh;
    open $fh, '>', "$dir/pgbouncer.ini" or die "$dir: $!";
    print $fh <<INI;
[databases]
$db = host=127.0.0.1 port=$pg dbname=$db user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $pool
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = postgres
INI
    close $fh;
    if ($> == 0) {
        my (undef, undef, $uid, $gid) = getpwnam('postgres');
        chown $uid, $gid, $dir, map { "$dir/$_" } qw(userlist.txt pgbouncer.ini);
    }
    run_as_postgres([$bin, '-d', "$dir/pgbouncer.ini"],
        log => "$dir/start.log", timeout => 30)
        or die "pgbouncer did not start: " . slurp("$dir/start.log")
             . slurp("$dir/pgbouncer.log") . "\n";
    ThreadsTest::wait_for(sub {
        (eval { psql_at($port, $db, 'SELECT 1') } // '') eq '1' }, 10)
        or die "pgbouncer does not answer: " . slurp("$dir/pgbouncer.log");
    my $version = `$bin --version 2>&1` // '';
    $version =~ s/\s+$//;
    $version =~ s/\n.*//s;
    return { dir => $dir, port => $port, version => $version };
}

sub pgbouncer_stop {
    my ($b) = @_;
    return unless $b;
    my $pid = slurp("$b->{dir}/pgbouncer.pid") // return;
    ($pid) = $pid =~ /(\d+)/ or return;
    kill 'TERM', $pid;
    ThreadsTest::wait_for(sub { !kill 0, $pid }, 5) or kill 'KILL', $pid;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    return scalar <$fh>;
}

# The worker processes of the nginx under test (children of the master).
sub worker_pids {
    my ($master, @workers) = ThreadsTest::nginx_pids();
    return @workers;
}

sub error_log_text {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    return slurp("$root/logs/error.log") // '';
}

# One request: returns a record { method, path, status, t0, t1, secs,
# ct, retry_after, body (decoded JSON or undef), raw }.
sub http_request {
    my ($http, $method, $path, $body, $key) = @_;
    my %h = (Authorization => 'Bearer ' . ($key // 'k1'));
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $t0 = time;
    my $res = $http->request($method, 'http://127.0.0.1:' . port() . $path,
        { headers => \%h, (defined $body ? (content => $body) : ()) });
    my $t1 = time;
    my $data = eval { $JSON->decode($res->{content}) };
    return { method => $method, path => $path, status => $res->{status},
        t0 => $t0, t1 => $t1, secs => $t1 - $t0,
        ct => $res->{headers}{'content-type'} // '',
        retry_after => $res->{headers}{'retry-after'},
        worker => $res->{headers}{'x-worker-pid'},
        body => $data,
        raw => ($data ? undef : substr($res->{content} // '', 0, 300)) };
}

# Bounded concurrent load.  run_load(clients => 4, seconds => 8,
# step => sub { my ($client, $i, $state, $http) = @_; ... return record })
# Each client is a process that calls step until its time is up (and at
# most max_requests times); step makes one request with http_request()
# and returns its record (plus any fields of its own).  Returns the
# records of all clients, sorted by start time.  Clients that have not
# finished $grace seconds after the end are killed.
sub run_load {
    my (%o) = @_;
    my $clients = $o{clients} // 4;
    my $seconds = $o{seconds} // 5;
    my $max = $o{max_requests} // 100_000;
    my $pause = $o{pause} // 0.01;
    my $grace = $o{grace} // 30;
    my $start = $o{start_at} // time;
    my $end = $start + $seconds;
    my $tmp = File::Temp->newdir('/tmp/faults-load.XXXXXX');
    my @pids;
    for my $n (1 .. $clients) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $ok = eval {
                my $http = HTTP::Tiny->new(timeout => $o{timeout} // 10,
                    keep_alive => $o{keep_alive} // 1);
                my %state;
                open my $out, '>', "$tmp/$n.jsonl" or die "$tmp: $!";
                sleep_until($start);
                for (my $i = 0; $i < $max && time < $end; $i++) {
                    my $rec = $o{step}->($n, $i, \%state, $http);
                    next unless $rec;
                    $rec->{client} = $n;
                    delete $rec->{body} unless $o{keep_bodies};
                    print $out $JSON->encode($rec), "\n";
                    sleep $pause if $pause;
                }
                close $out;
                1;
            };
            print STDERR "load client $n: $@" unless $ok;
            POSIX::_exit($ok ? 0 : 1);
        }
        push @pids, $pid;
    }
    my $during_ok = eval { $o{during}->() if $o{during}; 1 };
    my $during_err = $@;
    my $deadline = $end + $grace;
    my %left = map { $_ => 1 } @pids;
    while (%left && time < $deadline) {
        for my $pid (keys %left) {
            delete $left{$pid} if waitpid($pid, WNOHANG) == $pid;
        }
        sleep 0.05 if %left;
    }
    for my $pid (keys %left) {
        Test::More::diag("load client $pid still running: killed");
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    die $during_err unless $during_ok;
    my @recs;
    for my $n (1 .. $clients) {
        open my $in, '<', "$tmp/$n.jsonl" or next;
        while (my $line = <$in>) {
            push @recs, $JSON->decode($line);
        }
    }
    return sort { $a->{t0} <=> $b->{t0} } @recs;
}

# A load step that alternates a create (marked with metadata run => $run
# and seq => "client-i") and a retrieve of the thread created last.
sub create_retrieve_step {
    my ($run, $key) = @_;
    return sub {
        my ($n, $i, $state, $http) = @_;
        my $rec;
        if ($i % 2 == 0 || !$state->{last}) {
            my $seq = "$n-$i";
            $rec = http_request($http, 'POST', '/v1/threads',
                $JSON->encode({ metadata => { run => $run, seq => $seq } }),
                $key);
            $rec->{seq} = $seq;
            if ($rec->{status} == 200 && ref $rec->{body}) {
                $rec->{id} = $rec->{body}{id};
                $state->{last} = $rec->{id};
            }
        } else {
            $rec = http_request($http, 'GET', "/v1/threads/$state->{last}",
                undef, $key);
        }
        $rec->{error_type} = ref $rec->{body} eq 'HASH' && $rec->{body}{error}
            ? $rec->{body}{error}{type} : undef;
        return $rec;
    };
}

# The shared http configuration with the module's conninfo through the
# TCP proxy on $TEST_NGINX_PROXY_PORT (tcp_proxy_start) to the faults
# database.
sub proxied_config {
    return $ThreadsTest::HTTP_CONFIG
        =~ s/threads_pg_conninfo "[^"]*"/threads_pg_conninfo "host=127.0.0.1 port=\$TEST_NGINX_PROXY_PORT dbname=threads_faults user=postgres"/r;
}

# A TCP proxy on 127.0.0.1:$listen to 127.0.0.1:$target, in a process of
# its own that lives at most $lifetime seconds.  tcp_proxy_drop() makes it
# end every connection it carries the way a firewall or a load balancer
# that forgets idle connections does: the server side is closed (the
# backend goes away), the client side stays open without a word, and the
# client's next bytes are answered with a reset.  New connections are
# carried as before.  With $rate, what the server sends reaches its client
# at that many bytes a second: a slow link; with $up_rate, what the client
# sends reaches the server so (and the proxy's small receive buffer holds
# the client's sends back).
sub tcp_proxy_start {
    my ($listen, $target, $lifetime, $rate, $up_rate) = @_;
    require IO::Socket::INET;
    require IO::Select;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $listen, Listen => 64, ReuseAddr => 1)
        or die "proxy: cannot listen on $listen: $!\n";
    # a small fixed receive buffer (no autotuning), inherited by the
    # accepted sockets: a slow reader holds its clients' sends back
    setsockopt($srv, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 65536)
        if $up_rate;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $drop = 0;
        local $SIG{USR1} = sub { $drop = 1 };
        local $SIG{PIPE} = 'IGNORE';
        my (%other, %dead, %all);
        my $sel = IO::Select->new($srv);
        my $close = sub {
            my ($s, $reset) = @_;
            $sel->remove($s);
            delete $all{fileno $s};
            delete $other{fileno $s};
            delete $dead{fileno $s};
            setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(),
                pack('ii', 1, 0)) if $reset;
            close $s;
        };
        my $end = time + ($lifetime // 120);
        while (time < $end) {
            if ($drop) {
                $drop = 0;
                for my $fd (keys %other) {
                    my ($c, $s) = @{ $other{$fd} // next };
                    next unless $c;                  # keyed by the client
                    $close->($s);
                    delete $other{$fd};
                    $dead{$fd} = $c;
                }
            }
            for my $s ($sel->can_read(0.1)) {
                if ($s == $srv) {
                    my $c = $srv->accept or next;
                    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                        PeerPort => $target, Timeout => 5);
                    if (!$u) { close $c; next }
                    $other{fileno $c} = [$c, $u];
                    $other{fileno $u} = [undef, $c];
                    $all{fileno $_} = $_ for $c, $u;
                    $sel->add($c, $u);
                    next;
                }
                my $fd = fileno $s;
                my $n = sysread($s, my $buf, 65536);
                if ($dead{$fd}) {               # a forgotten connection
                    $close->($s, 1);
                    next;
                }
                my $pair = $other{$fd} or do { $close->($s); next };
                my $to = $pair->[1];
                if (!$n) {
                    my $peer = $pair->[1];
                    $close->($s);
                    $close->($peer) if $peer && $all{fileno $peer};
                    next;
                }
                my $off = 0;
                while ($off < $n) {
                    my $w = syswrite($to, $buf, $n - $off, $off);
                    last unless defined $w;
                    $off += $w;
                }
                # $rate bytes a second from the server to its client,
                # $up_rate from the client to its server
                Time::HiRes::sleep($n / $rate) if $rate && !$pair->[0];
                Time::HiRes::sleep($n / $up_rate) if $up_rate && $pair->[0];
            }
        }
        POSIX::_exit(0);
    }
    close $srv;
    return { pid => $pid, port => $listen };
}

sub tcp_proxy_drop {
    my ($p) = @_;
    kill 'USR1', $p->{pid};
}

sub tcp_proxy_stop {
    my ($p) = @_;
    return unless $p && $p->{pid};
    kill 'TERM', $p->{pid};
    ThreadsTest::wait_for(sub { waitpid($p->{pid}, WNOHANG) != 0 }, 5)
        or kill 'KILL', $p->{pid};
    waitpid($p->{pid}, WNOHANG);
    delete $p->{pid};
}

# Sleeps until the time $t (at once if it has passed).
sub sleep_until {
    my ($t) = @_;
    my $left = $t - time;
    sleep $left if $left > 0;
}

# "sent 812: 200 x 640, 503 x 172"
sub summarize {
    my (@recs) = @_;
    my %by;
    $by{$_->{status}}++ for @recs;
    return 'sent ' . scalar(@recs) . ': '
        . join(', ', map { "$_ x $by{$_}" } sort keys %by);
}

1;
