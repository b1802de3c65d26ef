package ThreadsTest;

# Helpers for the Test::Nginx suites: the database the tests run against
# (scripts/test starts it and exports TEST_NGINX_PG_*), seeding rows
# directly, and an HTTP client for scenarios that must run while one nginx
# stays up (inside add_response_body_check callbacks).

use strict;
use warnings;

use Digest::SHA qw(sha256_hex);
use HTTP::Tiny;
use JSON::PP;
use Time::HiRes qw(time sleep);
use Exporter 'import';
use POSIX ();

our @EXPORT = qw(psql psql_at apply_schema try_schema module_statements
    module_sql owner_of seed_thread seed_message api pg_ctl
    lock_row_in_background hold_in_background with_conninfo_options
    nginx_pids serving_pid fd_count module_backends json
    random_thread_id wait_for json_matches raw_request connect_nginx
    read_until slow_factor
    run_scenarios on_citus
    module_waiting_on_lock use_api_defaults $HTTP_CONFIG
    $API_CONFIG);

# The configuration most blocks share; a block's own sections win.
our $HTTP_CONFIG = <<'CONF';
    map $http_authorization $threads_api_key {
        "~^Bearer\s+(?<key>\S+)\s*$"  $key;
        default                          "";
    }
    threads_pg_conninfo "$TEST_NGINX_PG_CONNINFO";
    threads_pg_connect_timeout 5s;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
CONF

# scripts/test-citus: the writes through scripts/citus.sql's functions
$HTTP_CONFIG .= "    threads_pg_citus on;\n" if $ENV{TEST_NGINX_PG_CITUS};

our $API_CONFIG = <<'CONF';
    threads_json_errors on;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
CONF

my $JSON = JSON::PP->new->utf8->canonical;

# nginx daemonizes; where PID 1 is slow to reap orphans, its exit shows as
# a zombie that Test::Nginx waits on for seconds per block.  As a child
# subreaper (prctl PR_SET_CHILD_SUBREAPER) this process inherits the
# daemon, and Test::Nginx's own waitpid reaps it at once.
if ($^O eq 'linux') {
    require Config;
    my $arch = $Config::Config{archname} // '';
    my $prctl = $arch =~ /^x86_64/ ? 157 : $arch =~ /^aarch64/ ? 167 : 0;
    syscall($prctl, 36, 1, 0, 0, 0) if $prctl;
}

sub json { $JSON }

sub conninfo {
    $ENV{TEST_NGINX_PG_CONNINFO}
        or die "TEST_NGINX_PG_CONNINFO is not set: run scripts/test\n";
}

# Gives every block the shared configuration and, with a `--- json eval`
# section (a Perl structure), checks the response body against it:
# hashes match as subsets, Regexps with like(), code refs as predicates,
# everything else with is().
sub use_api_defaults {
    main::add_block_preprocessor(sub {
        my ($block) = @_;
        $block->set_value('http_config', $HTTP_CONFIG)
            unless defined $block->http_config;
        $block->set_value('config', $API_CONFIG)
            unless defined $block->config;
    });

    main::add_response_body_check(sub {
        my ($block, $body, $req_idx, $rep_idx, $dry_run) = @_;
        return if $dry_run;
        my ($expect) = $block->json;
        return unless defined $expect;
        $expect = $expect->[$req_idx] if ref $expect eq 'ARRAY'
            && $block->pipelined_requests;
        my $got = eval { $JSON->decode($body) };
        my $name = $block->name . ' - JSON body';
        if (!Test::More::ok(defined $got, "$name parses")) {
            Test::More::diag("body: $body");
            return;
        }
        json_matches($got, $expect, $name);
    });
}

# Blocks with a `--- scenario: NAME` section run $scenarios->{NAME} once
# their response is in, while nginx is still up.
sub run_scenarios {
    my ($scenarios) = @_;
    main::add_response_body_check(sub {
        my ($block, $body, $i, $r, $dry) = @_;
        return if $dry || !defined $block->scenario;
        (my $name = $block->scenario) =~ s/\s+$//;
        my $run = $scenarios->{$name} or die "no scenario '$name'\n";
        $run->();
    });
}

sub json_matches {
    my ($got, $expect, $name, $path) = @_;
    $path //= '';
    if (ref $expect eq 'HASH') {
        if (!Test::More::ok(ref $got eq 'HASH', "$name: $path is an object")) {
            return;
        }
        for my $k (sort keys %$expect) {
            if (!defined $expect->{$k} && exists $got->{$k}) {
                Test::More::ok(!defined $got->{$k}, "$name: $path.$k is null");
                next;
            }
            Test::More::ok(exists $got->{$k}, "$name: $path.$k exists")
                or next;
            json_matches($got->{$k}, $expect->{$k}, $name, "$path.$k");
        }
    } elsif (ref $expect eq 'ARRAY') {
        Test::More::is(ref $got eq 'ARRAY' ? scalar @$got : -1,
            scalar @$expect, "$name: $path length");
        for my $i (0 .. $#$expect) {
            json_matches($got->[$i], $expect->[$i], $name, "$path\[$i]")
                if ref $got eq 'ARRAY';
        }
    } elsif (ref $expect eq 'Regexp') {
        Test::More::like($got, $expect, "$name: $path");
    } elsif (ref $expect eq 'CODE') {
        Test::More::ok($expect->($got), "$name: $path")
            or Test::More::diag("got: " . (defined $got ? $got : 'null'));
    } elsif (!defined $expect) {
        Test::More::ok(!defined $got, "$name: $path is null");
    } else {
        Test::More::is($got, $expect, "$name: $path");
    }
}

# Runs SQL through psql; returns its unaligned output, dies on error.
sub psql {
    my ($sql) = @_;
    # through a file: one argument may not exceed 128 KiB
    require File::Temp;
    my $tmp = File::Temp->new(SUFFIX => '.sql');
    print $tmp $sql;
    close $tmp;
    local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
    open my $fh, '-|', 'psql', '-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1',
        '-d', conninfo(), '-f', $tmp->filename
        or die "psql: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh or die "psql failed ($?) for: " . substr($sql, 0, 200) . "\n";
    $out =~ s/\n+\z//;
    return $out;
}

# psql() on another database of the test cluster
sub psql_at {
    my ($db, $sql) = @_;
    (my $ci = conninfo()) =~ s/dbname=\S+/dbname=$db/;
    local $ENV{TEST_NGINX_PG_CONNINFO} = $ci;
    return psql($sql);
}

# scripts/schema.sql applied to database $db: true if it succeeded
sub try_schema {
    my ($db) = @_;
    (my $ci = conninfo()) =~ s/dbname=\S+/dbname=$db/;
    return system('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $ci,
        '-f', 'scripts/schema.sql') == 0;
}

sub apply_schema { try_schema($_[0]) or die "schema.sql failed\n" }

# The module's statements, [name, number of parameters, SQL], from its
# statement table once the C preprocessor has put the SQL in.
sub module_statements {
    my $src = join '', map {
        open my $fh, '<', "ngx_http_threads_module/$_" or die "$_: $!";
        local $/; <$fh> } qw(ngx_http_threads_sql.h ngx_http_threads_ops.c);
    $src =~ s/^#include.*$//mg;
    # through a file: the source is longer than an argument may be
    require File::Temp;
    my $tmp = File::Temp->new(SUFFIX => '.c');
    print $tmp $src;
    close $tmp;
    open my $cpp, '-|', 'gcc', '-E', '-P', $tmp->filename or die "gcc: $!";
    my $out = do { local $/; <$cpp> };
    close $cpp or die "gcc -E failed\n";
    my @stmts;
    while ($out =~ /\{\s*"(threads_[a-z_]+)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+),
                    \s*(\d+)/gx)
    {
        my ($name, $lits, $n) = ($1, $2, $3);
        my $sql = join '', $lits =~ /"((?:[^"\\]|\\.)*)"/g;
        $sql =~ s/\\"/"/g;
        push @stmts, [ $name, $n, $sql ];
    }
    return @stmts;
}

# the SQL of one statement of the module's table, by its name
sub module_sql {
    my ($name) = @_;
    my ($s) = grep { $_->[0] eq $name } module_statements();
    die "no statement $name\n" unless $s;
    return $s->[2];
}

sub quote {
    my ($s) = @_;
    return 'NULL' unless defined $s;
    $s =~ s/'/''/g;
    return "'$s'";
}

# The owner a bearer key maps to (threads_owner_hash on).
sub owner_of { sha256_hex($_[0]) }

sub random_thread_id {
    my @c = ('a' .. 'z', 'A' .. 'Z', '0' .. '9');
    return 'thread_' . join '', map { $c[rand @c] } 1 .. 24;
}

# seed_thread(key => 'k1', id => ..., metadata => '{}', tool_resources => '{}')
sub seed_thread {
    my (%a) = @_;
    my $id = $a{id} // random_thread_id();
    my $owner = exists $a{owner} ? $a{owner} : owner_of($a{key} // 'k1');
    psql(sprintf "INSERT INTO threads (owner, id, created_at, metadata, "
        . "tool_resources) VALUES (%s, %s, %d, %s::jsonb, %s::jsonb) "
        . "ON CONFLICT (owner, id) DO UPDATE SET metadata = excluded.metadata,"
        . " tool_resources = excluded.tool_resources",
        quote($owner), quote($id), $a{created_at} // 1764200000,
        quote($a{metadata} // '{}'), quote($a{tool_resources} // '{}'));
    return $id;
}

sub seed_message {
    my (%a) = @_;
    my $owner = exists $a{owner} ? $a{owner} : owner_of($a{key} // 'k1');
    psql(sprintf "INSERT INTO messages (owner, thread_id, id, created_at, "
        . "role, content) VALUES (%s, %s, %s, 1764200000, 'user', "
        . "'[]'::jsonb)", quote($owner), quote($a{thread_id}), quote($a{id}));
}

# api(METHOD, '/v1/threads/..', body-or-undef, key-or-undef [, timeout])
# returns (status, decoded-json-or-raw, headers, seconds)
sub api {
    my ($method, $path, $body, $key, $timeout) = @_;
    my $port = nginx_port();
    my $http = HTTP::Tiny->new(timeout => $timeout // 10);
    my %h;
    $h{Authorization} = "Bearer $key" if defined $key;
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $t0 = time;
    my $res = $http->request($method, "http://127.0.0.1:$port$path",
        { headers => \%h, (defined $body ? (content => $body) : ()) });
    my $elapsed = time - $t0;
    my $data = eval { $JSON->decode($res->{content}) } // $res->{content};
    return ($res->{status}, $data, $res->{headers}, $elapsed);
}

# pg_ctl('stop') / pg_ctl('start'): the test cluster scripts/test made.
sub pg_ctl {
    my ($action) = @_;
    my $dir = $ENV{TEST_NGINX_PG_DIR} or die "TEST_NGINX_PG_DIR is not set\n";
    my $port = $ENV{TEST_NGINX_PG_PORT} or die "TEST_NGINX_PG_PORT is not set\n";
    my @run = $> == 0 ? ('runuser', '-u', 'postgres', '--') : ();
    my @cmd = (@run, "$ENV{TEST_NGINX_PG_BIN}/pg_ctl", '-D', $dir, '-w');
    if ($action eq 'start') {
        push @cmd, '-l', "$dir/server.log", '-o',
            "-k $dir -p $port -c listen_addresses=127.0.0.1", 'start';
    } else {
        push @cmd, '-m', 'fast', 'stop';
    }
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    $? == 0 or die "pg_ctl $action failed\n";
}

# Holds a row lock on thread $id for $seconds from another session.
# Returns once the lock is held; the session ends by itself.
sub lock_row_in_background {
    my ($id, $seconds) = @_;
    # by owner too: Citus takes FOR UPDATE on one shard only
    return hold_in_background("SELECT owner AS o FROM threads WHERE id = "
        . quote($id) . " \\gset\nBEGIN; SELECT 1 FROM threads WHERE owner = :'o'"
        . " AND id = " . quote($id) . " FOR UPDATE;", $seconds);
}

# Runs $sql, which opens a transaction and takes a lock, in a background
# psql that holds the lock $seconds, then commits.  Returns the pid once
# the lock is taken.  With $appname, the session is named so (to be
# ended early with pg_terminate_backend).
sub hold_in_background {
    my ($sql, $seconds, $appname) = @_;
    my $flag = "/tmp/threads-lock-$$-" . int(rand(1e9));
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{PGAPPNAME} = $appname if defined $appname;
        open my $p, '|-', 'psql', '-X', '-q', '-d', conninfo()
            or POSIX::_exit(1);
        print $p "$sql \\o $flag\nSELECT 1;\n\\o\nSELECT pg_sleep($seconds); COMMIT;\n";
        close $p;
        POSIX::_exit(0);
    }
    wait_for(sub { -e $flag }, 5) or die "the lock was not taken\n";
    unlink $flag;
    return $pid;
}

# $conf (an http section) with $options in its conninfo's options.
sub with_conninfo_options {
    my ($conf, $options) = @_;
    return $conf =~ s/threads_pg_conninfo "([^"]*)"/threads_pg_conninfo "$1 options='$options'"/r;
}

# Polls $cond every 50 ms for up to $seconds; true if it came true.
sub wait_for {
    my ($cond, $seconds) = @_;
    my $end = time + $seconds;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.05;
    }
    return $cond->();
}

# The pids of nginx processes started from servroot (master and workers).
sub nginx_pids {
    my $root = $ENV{TEST_NGINX_SERVROOT} || 't/servroot';
    local $/ = "\n";
    open my $fh, '<', "$root/logs/nginx.pid" or return ();
    my ($master) = (<$fh> // '') =~ /(\d+)/ or return ();
    my @pids = ($master);
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $s, '<', $stat or next;
        my @f = split ' ', (<$s> // '');
        push @pids, $f[0] if @f > 3 && $f[3] eq $master;
    }
    return @pids;
}

# The process that serves requests: the first worker, or the master when
# nginx runs without one (Test::Nginx's default); undef when it is gone.
sub serving_pid {
    my ($master, @workers) = nginx_pids();
    my $pid = $workers[0] // $master;
    return defined $pid && -e "/proc/$pid" ? $pid : undef;
}

sub fd_count {
    my ($pid) = @_;
    my @fds = glob "/proc/$pid/fd/*";
    return scalar @fds;
}

# The port the nginx under test listens on.
sub nginx_port { $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984 }

# A connection to the nginx under test, nothing sent.
sub connect_nginx {
    require IO::Socket::INET;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . nginx_port(),
        Timeout => 5) or die "connect: $!";
    $s->autoflush(1);
    return $s;
}

# Sends a raw HTTP request and returns the socket without reading.
sub raw_request {
    my ($method, $path, $body, $key) = @_;
    my $sock = connect_nginx();
    $body //= '';
    print $sock "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $key\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    return $sock;
}

# Reads from $s until $done->($buf) (when given), EOF or $timeout seconds.
sub read_until {
    my ($s, $timeout, $done) = @_;
    require IO::Select;
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $end = time + $timeout;
    while (time < $end) {
        last if $done && $done->($buf);
        $sel->can_read($end - time) or last;
        my $n = sysread($s, my $chunk, 65536);
        last unless $n;
        $buf .= $chunk;
    }
    return $buf;
}

# Timing bounds stretch under valgrind.
sub slow_factor { $ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1 }

# How many module sessions wait on a lock right now.
# True when the suite runs on Citus (scripts/test-citus): the variable
# alone only turns the directive on, which CI also does on plain PostgreSQL.
my $ON_CITUS;
sub on_citus {
    return 0 unless $ENV{TEST_NGINX_PG_CITUS};
    $ON_CITUS //= psql("SELECT count(*) FROM pg_extension"
        . " WHERE extname = 'citus'") ? 1 : 0;
    return $ON_CITUS;
}

sub module_waiting_on_lock {
    # on Citus the wait is on a worker, in a backend of the same global pid
    return psql("SELECT count(*) FROM citus_stat_activity w"
        . " WHERE w.wait_event_type = 'Lock' AND w.global_pid IN"
        . " (SELECT global_pid FROM citus_stat_activity"
        . "  WHERE application_name = 'ngx_http_threads_module')")
        if on_citus();
    return psql("SELECT count(*) FROM pg_stat_activity "
        . "WHERE application_name = 'ngx_http_threads_module' "
        . "AND wait_event_type = 'Lock'");
}

# Server sessions opened by the module (its fallback_application_name).
sub module_backends {
    return psql("SELECT count(*) FROM pg_stat_activity "
        . "WHERE application_name = 'ngx_http_threads_module'");
}

1;
