package Test::Nginx::Socket;

# A small stand-in for Test::Nginx::Socket (openresty/test-nginx), written for
# this repository's own tests.  It reads the same data-driven .t format and is
# meant to be used only where the real module cannot be loaded (put t/runner
# in @INC for that).  It implements the subset of sections and functions our
# tests use, with the same test names and semantics as the real module; a
# block using a section of the real module that is not implemented here fails
# loudly instead of being silently ignored.  TEST_NGINX_VERBOSE=1 makes it
# print its own path.

use strict;
use warnings;

use Test::Base -base;    # lower-case -base: inherit, no source filter
use Test::LongString;
use HTTP::Response ();
use IO::Socket::INET ();
use IO::Select ();
use POSIX qw(SIGQUIT SIGKILL SIGTERM WNOHANG EAGAIN);
use Time::HiRes qw(sleep);
use File::Spec ();
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle min);
use Carp qw(croak);

our $VERSION = '0.01';

our @EXPORT = qw(
    run_tests repeat_each no_shuffle master_on master_off
    master_process_enabled workers worker_connections log_level
    no_long_string no_root_location add_block_preprocessor
    add_response_body_check env_to_nginx server_port server_root html_dir
    server_name server_addr timeout is_str bail_out config_preamble
    add_cleanup_handler add_test_cleanup_handler check_accum_error_log
);

# ---------------------------------------------------------------- settings

our $NginxBinary       = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $ServerPort        = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                         || 1984;
our $ServerAddr        = '127.0.0.1';
our $ServerName        = 'localhost';
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $Sleep             = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess     = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND};
our $Verbose           = $ENV{TEST_NGINX_VERBOSE};
our $LoadModules       = $ENV{TEST_NGINX_LOAD_MODULES};
our $CheckAccumErrLog  = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Daemon            = $UseValgrind ? 'off' : 'on';
our ($Workers, $WorkerConnections, $RepeatEach) = (1, 64, 1);
our ($NoRootLocation, $NoLongString, $ConfigPreamble) = (0, 0, '');
our (@EnvToNginx, @BlockPreprocessors, @ResponseBodyChecks,
     @CleanupHandlers, @TestCleanupHandlers);

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our ($LogDir, $HtmlDir, $ConfDir) = map { "$ServRoot/$_" } qw(logs html conf);
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $PidFile    = "$LogDir/nginx.pid";
our $ConfFile   = "$ConfDir/nginx.conf";

our ($PrevConfig, $ChildPid, $ErrLogFilePos, $InSubprocess, $RandPorts);
my $ConnectFailures = 0;

# Sections of the real module that are not implemented here.  Other unknown
# sections are fine: tests may invent their own for add_response_body_check
# or add_block_preprocessor, as with the real module.
my %Unsupported = map { $_ => 1 } qw(
    http2 http3 curl curl_protocol curl_options curl_error request_eval
    response_body_eval response_body_filters response_body_json_sort
    access_log no_access_log shutdown grep_error_log grep_error_log_out
    shutdown_error_log no_shutdown_error_log error_log_file reload_fails
    skip_eval skip_nginx skip_nginx2 skip_openssl skip_slave todo todo_nginx
    stap stap_out stap_out_like stap_out_unlike udp_listen udp_reply
    udp_reply_delay udp_query tcp_listen tcp_no_close tcp_reply_delay
    tcp_reply tcp_query tcp_query_len tcp_query_auto_timeout tcp_shutdown
    tcp_shutdown_delay must_die suppress_stderr server_addr_for_client
    no_check_leak http09 charset write_resp_body_file no_mockeagain
    quic_max_idle_timeout post_setup_server_root
);

# ------------------------------------------------------ exported functions

sub repeat_each (@)            { $RepeatEach = shift if @_; $RepeatEach }
sub workers (@)                { @_ ? ($Workers = shift) : $Workers }
sub worker_connections (@)     { @_ ? ($WorkerConnections = shift) : $WorkerConnections }
sub log_level (@)              { @_ ? ($LogLevel = shift) : $LogLevel }
sub server_port (@)            { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_name (@)            { @_ ? ($ServerName = shift) : $ServerName }
sub server_addr (@)            { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub timeout (@)                { @_ ? ($Timeout = shift) : $Timeout }
sub no_shuffle ()              { $NoShuffle = 1 }
sub no_long_string ()          { $NoLongString = 1 }
sub no_root_location ()        { $NoRootLocation = 1 }
sub check_accum_error_log ()   { $CheckAccumErrLog = 1 }
sub master_on ()               { $MasterProcess = 'on' }
sub master_off ()              { $MasterProcess = 'off' }
sub html_dir ()                { $HtmlDir }
sub server_root ()             { $ServRoot }
sub config_preamble ($)        { $ConfigPreamble = shift }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }
sub add_cleanup_handler ($)    { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }

sub master_process_enabled (@) {
    return $MasterProcess unless @_;
    $MasterProcess = shift() ? 'on' : 'off';
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return like($got, $expected, $desc) if ref $expected eq 'Regexp';
    return $NoLongString ? is($got, $expected, $desc)
                         : is_string($got, $expected, $desc);
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(@_);
}

# ----------------------------------------------------------------- helpers

# A zombie counts as gone: a daemonized nginx is reparented to PID 1, which
# may be slow to reap it (the real module then waits timeout() for it).
sub is_running {
    my $pid = shift;
    return 0 unless $pid && kill 0, $pid;
    open my $st, '<', "/proc/$pid/stat" or return 1;
    return (split ' ', scalar <$st>)[2] ne 'Z';
}

sub fail_no_ending {    # an unplanned failure: don't complain about the plan
    Test::More->builder->no_ending(1);
    fail($_[0]);
}

sub parse_time ($) {    # "3", "1.5s", "300ms" -> seconds
    my $tm = shift;
    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) { $tm /= 1000 }
        else { $tm =~ s/([^_a-zA-Z])s$/$1/ }
    }
    return $tm;
}

sub fmt_str {
    my $s = shift;
    chomp $s;
    $s =~ s/"/\\"/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

sub slurp {
    my $file = shift;
    open my $in, '<', $file or return undef;
    local $/;
    return scalar <$in>;
}

sub spew {
    my ($file, $data, $name) = @_;
    open my $out, '>', $file
        or bail_out("$name - Cannot open $file for writing: $!\n");
    binmode $out;
    print $out $data;
    close $out;
}

sub gen_rand_port {
    my $used = shift;
    for (1 .. 1000) {
        my $port = int(rand 63547) + 1988;
        next if $used->{$port};
        my $s = IO::Socket::INET->new(LocalAddr => $ServerAddr,
            LocalPort => $port, Proto => 'tcp', Listen => 5, Reuse => 1)
            or next;
        close $s;
        return $port;
    }
    return undef;
}

# Substitutes $TEST_NGINX_* environment variables (and $TEST_NGINX_RAND_PORT_N)
# in a section's text, bailing out on undefined ones, like the real module.
sub expand_env_in_text ($$) {
    my ($text, $name) = @_;
    return undef unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            $RandPorts->{$var} // ($RandPorts->{$var} = gen_rand_port(
                { $ServerPort => 1, map { $_ => 1 } values %$RandPorts })
                // bail_out("$name - Cannot find an available listening "
                            . "port number for $var.\n"));
        } else {
            bail_out("$name - No environment $var defined.\n")
                unless defined $ENV{$var};
            $ENV{$var};
        }
    }eg;
    return $text;
}

sub get_pid_from_pidfile {
    my $name = shift;
    my $pid = slurp($PidFile) // bail_out("$name - Failed to open the pid "
                                           . "file $PidFile for reading: $!");
    chomp $pid;
    return $pid;
}

# Asks a process to quit (SIGQUIT), gives it timeout() seconds, then kills it.
sub kill_process {
    my ($pid, $name) = @_;
    warn "sending QUIT signal to $pid\n" if $Verbose;
    kill SIGQUIT, $pid;
    for (my $left = $Timeout; $left > 0 && is_running($pid); $left -= 0.05) {
        waitpid($pid, WNOHANG);    # reaps it if it is our child (valgrind)
        sleep 0.05;
    }
    for my $i (1 .. 20) {
        waitpid($pid, WNOHANG);
        return unless is_running($pid);
        warn "$name - timeout when waiting for the process $pid to exit\n"
            if $i == 1;
        kill SIGTERM, $pid;
        sleep min(0.5, $Sleep * 1.2 ** $i);
    }
    warn "$name - WARNING: killing the child process $pid with force...\n";
    kill SIGKILL, $pid;
    waitpid($pid, 0);
}

sub cleanup {
    warn "cleaning up everything\n" if $Verbose;
    $_->() for @CleanupHandlers;
    kill_process($ChildPid, 'cleanup') if is_running($ChildPid);
    undef $ChildPid;
}

# --------------------------------------------------------- server control

sub setup_server_root {
    if (-d $ServRoot) {
        # Remove only what we create, so that a mis-set TEST_NGINX_SERVROOT
        # cannot wipe out real data: the final rmdir fails if not empty.
        remove_tree($ConfDir, glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"),
                    "$ServRoot/cache", $HtmlDir, $LogDir);
        rmdir $ServRoot or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }
    spew("$HtmlDir/index.html", '<html><head><title>It works!</title></head>'
                                . '<body>It works!</body></html>', 'setup');
}

# --- user_files: ">>> name [date]" headed parts, or [[name, body, date], ...]
# A relative name is under html/.
sub write_user_files {
    my $block = shift;
    my $name  = $block->name;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my @list;
        for my $line (split /^/, $files) {
            if ($line =~ />>> (\S+)(?:\s+(.+))?/) { push @list, [$1, '', $2] }
            elsif (@list) { $list[-1][1] .= $line }
        }
        $files = \@list;
    }
    bail_out("$name - wrong value type: " . ref($files)
             . ", only scalar or ARRAY are accepted") if ref $files ne 'ARRAY';
    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        make_path($1) if $path =~ m{(.*)/} && !-d $1;
        spew($path, expand_env_in_text($body // '', $name), $name);
        system("TZ=GMT touch -t '$date' '$path'") == 0
            or bail_out("Failed to touch $path\n") if $date;
    }
}

my $NginxV;
sub write_config_file {
    my ($block, $config) = @_;
    my $name = $block->name;
    my $http_config = expand_env_in_text($block->http_config, $name) // '';
    my $post_main = expand_env_in_text($block->post_main_config, $name) // '';
    my $main_config = join ' ', (map { "load_module $_;" } grep { $_ } split /\s+/,
                                 $LoadModules // ''), $block->main_config // '';
    $main_config = expand_env_in_text($main_config, $name);
    my $server_name = $block->server_name // $ServerName;
    my $log_level = $block->log_level || $LogLevel;

    $NginxV //= `$NginxBinary -V 2>&1` // '';
    my $temp_paths = join ' ', map { "${_}_temp_path $ServRoot/${_}_temp;" }
        (grep({ $http_config !~ /\b${_}_temp_path\b/ } qw(client_body proxy)),
         grep({ $NginxV !~ /--without-http_${_}_module/ } qw(fastcgi scgi uwsgi)));
    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" } @EnvToNginx;
    my $root = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $user = defined $ENV{TEST_NGINX_WORKER_USER}
             ? "user $ENV{TEST_NGINX_WORKER_USER};" : $> == 0 ? "user root;" : '';

    spew($ConfFile, <<_EOC_, $name);
worker_processes  $Workers;
daemon $Daemon;
master_process $MasterProcess;
error_log $ErrLogFile $log_level;
pid       $PidFile;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
$env
$main_config

http {
    access_log $AccLogFile; $temp_paths

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort;
        server_name     '$server_name';
        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root    }
}

$post_main

events {
    accept_mutex off;
    worker_connections  $WorkerConnections;
}
env ASAN_OPTIONS;
$user
_EOC_
}

sub stop_nginx {
    my $name = shift;
    return unless -f $PidFile;
    my $pid = get_pid_from_pidfile($name);
    if (is_running($pid)) { kill_process($pid, $name) } else { unlink $PidFile }
}

sub start_nginx {
    my $name = shift;
    my @path = $NginxBinary =~ m{/} ? ('') : map { "$_/" } split /:/, $ENV{PATH};
    bail_out("$name - Cannot find the nginx executable $NginxBinary")
        unless grep { -f "$_$NginxBinary" && -x _ } @path;
    my $cmd = "$NginxBinary -e $ErrLogFile -p $ServRoot/ -c $ConfFile > /dev/null";

    if ($UseValgrind) {
        # Like the real module: nginx runs in the foreground (daemon off)
        # under "valgrind -q" as our child, and valgrind writes its reports
        # to stderr, after the block name.
        my $opts = $UseValgrind;
        if ($UseValgrind =~ /^\d+$/) {
            $opts = "--num-callers=100 --tool=memcheck --leak-check=full "
                  . "--keep-debuginfo=yes --show-possibly-lost=no --gen-suppressions=all";
            $opts .= " --exit-on-first-error=yes --error-exitcode=1"
                if $ENV{TEST_NGINX_VALGRIND_EXIT_ON_FIRST_ERR};
            $opts .= " --suppressions=valgrind.suppress" if -f 'valgrind.suppress';
        }
        $cmd = "valgrind -q $opts $cmd";
        warn "$name\n";
        warn "command: $cmd\n" if $Verbose;
        my $pid = fork() // bail_out("$name - fork() failed: $!");
        if ($pid == 0) {
            $InSubprocess = 1;
            Test::More->builder->no_ending(1);
            setpgrp;
            exec "exec $cmd" or POSIX::_exit(127);
        }
        $ChildPid = $pid;
        sleep $Sleep;
        return;
    }

    warn "starting nginx: $cmd\n" if $Verbose;
    my ($tries, $waited) = (0, 0);
    while (system($cmd) != 0) {    # e.g. the old one still holds the port
        bail_out("$name - Cannot start nginx using command \"$cmd\" "
                 . "(status code $?).") if $waited >= 30;
        my $delay = min(1, 0.1 * ++$tries);
        sleep $delay;
        $waited += $delay;
    }
    sleep $Sleep;
}

# ---------------------------------------------------------------- run loop

sub run_tests () {
    srand($$ + Time::HiRes::time() * 1000000);
    warn "# fallback Test::Nginx::Socket: $INC{'Test/Nginx/Socket.pm'}\n"
        if $Verbose;
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    for my $block ($NoShuffle ? blocks() : shuffle blocks()) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value(name => "$0 " . $block->name);
        run_test($block);
        $_->($block) for @TestCleanupHandlers;
    }
    cleanup();
}

sub run_test {
    my $block = shift;
    my $name = $block->name;

    my @unsupported = grep { $Unsupported{$_} }
                      @{ $block->{_section_order}[0] || [] };
    if (@unsupported) {
        fail_no_ending("$name - section(s) @unsupported not supported by "
                       . "the fallback runner in t/runner");
        return;
    }

    $RandPorts = {};
    my $config = expand_env_in_text($block->config, $name);
    if (defined $config) {
        # Like the real module (by default): a fresh nginx, server root and
        # error.log for every block that has a config.
        $PrevConfig = $config;
        stop_nginx($name);
        setup_server_root();
        write_user_files($block);
        write_config_file($block, $config);
        start_nginx($name);
    } elsif (!defined $PrevConfig) {
        bail_out("$name - No '--- config' section specified and could not "
                 . "get previous one.");
    }    # else: the running nginx is used as it is, like the real module

    if (defined(my $init = $block->init)) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = 0;
    for my $i (0 .. $RepeatEach - 1) {
        warn "Run the test block $name ...\n" if $Verbose;
        write_user_files($block) if $i > 0;
        run_test_helper($block, $i);
    }
    # With valgrind, nginx is stopped after each block so that its report
    # (leaks are found at exit) comes right after the block's name.
    if ($UseValgrind) {
        stop_nginx($name);
        undef $ChildPid;
    }
}

# ------------------------------------------------------------- requests

sub parse_more_headers {
    my ($out, $chunked) = ('', 0);
    for my $header (split /\n+/, shift) {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $chunked);
}

# "METHOD [url [version]]\n[body]" plus extra headers -> the raw request.
# A body gets a Content-Length header (and is trimmed) unless the request
# is chunked or already has one; Host and Connection are added if missing.
sub build_request {
    my ($name, $more, $chunked, $conn, $req) = @_;
    bail_out("$name - Request line should be non-empty")
        unless defined $req && $req =~ /\A([^\n]*\n?)(.*)\z/s && $1;
    my ($first, $content) = ($1, $2);
    $first =~ /^(\s*)(\S+)( *)((\S+)( *))?((\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be "
                    . "'meth [url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($2, $5 // '/', $8 // 'HTTP/1.1');
    my $len = '';
    if (!$chunked && $content ne '' && $more !~ /(?:^|\n)Content-Length:/) {
        $content =~ s/^\s+|\s+$//gs;
        $len = "Content-Length: " . length($content) . "\r\n";
    }
    $more =~ s/(?<!\r)\n/\r\n/gs;
    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn\r\n" if $more !~ /(?:^|\n)Connection/msi;
    return "$meth $url $ver\r\n$headers$more$len\r\n$content";
}

# Returns a list of requests, each a list of packets (strings) to send.
sub get_req_from_block {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [ref $raw eq 'ARRAY' ? [@$raw] : [$raw]];
    }

    my $more = $block->more_headers || '';
    my $headers_for = sub {
        my $i = shift;
        my $h = ref $more eq 'ARRAY' ? $more->[$i] : $more;
        bail_out("--- more_headers lacks data for request $i") unless defined $h;
        return parse_more_headers($h);
    };

    if (my $reqs = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            if ref $reqs ne 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $req = expand_env_in_text($reqs->[$i], $name);
            $all .= build_request($name, $headers_for->($i),
                                  $i == $#$reqs ? 'close' : 'keep-alive', $req);
        }
        return [[$all]];
    }

    my $request = $block->request;
    if (!ref $request) {
        1 while defined $request && $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;
        return [[build_request($name, $headers_for->(0), 'close', $request)]];
    }
    bail_out("$name - invalid ---request : MUST be string or array of requests")
        if ref $request ne 'ARRAY';
    return [map {
        bail_out("$name - requests given as packets are not supported by "
                 . "the fallback runner") if ref $request->[$_];
        [build_request($name, $headers_for->($_), 'close', $request->[$_])]
    } 0 .. $#$request];
}

sub connect_to_nginx {
    my ($name, $timeout) = @_;
    for (my $tries = 1; ; $tries++) {
        my $sock = IO::Socket::INET->new(PeerAddr => $ServerAddr,
            PeerPort => $ServerPort, Proto => 'tcp', Timeout => $timeout);
        return $sock if $sock;
        my $msg = "$name - Can't connect to $ServerAddr:$ServerPort: $!";
        if (defined $ChildPid && waitpid($ChildPid, WNOHANG) != 0) {
            warn "WARNING: Child process $ChildPid is already gone.\n";
            fail_no_ending("$msg (aborted)\n");
            return;
        }
        if ($tries > ($ConnectFailures ? 20 : 50)) {
            bail_out("$msg (aborted)\n") if ++$ConnectFailures >= 3;
            fail_no_ending("$msg (aborted)\n");
            return;
        }
        my $wait = min(1, ($Sleep + $Sleep * $tries) * $tries / 2);
        warn "$msg\n\tRetry connecting after $wait sec\n" if $wait >= 0.6;
        sleep $wait;
    }
}

# Sends the packets on one connection and reads until the server closes it.
# $timeout bounds the wait for each I/O event, as in the real module.
sub send_request ($$$$) {
    my ($packets, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;
    my $head_req = join('', @$packets) =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $sock = connect_to_nginx($name, $timeout) or return;
    $sock->blocking(0);

    local $SIG{PIPE} = 'IGNORE';
    my @todo = @$packets;
    my ($resp, $buf, $off) = ('', shift(@todo) // '', 0);
    my ($rsel, $wsel) = (IO::Select->new($sock), IO::Select->new($sock));
    while ($rsel->count) {
        my ($r, $w) = IO::Select->select($rsel, $wsel->count ? $wsel : undef,
                                         undef, $timeout);
        if (!$r && !$w) {
            if (defined $block->abort) { sleep 0.005 }
            else { fail_no_ending("ERROR: client socket timed out - $name\n") }
            last;
        }
        if ($r && @$r) {
            my $n = sysread($sock, my $chunk, 4096);
            next if !defined $n && $! == EAGAIN;
            warn "WARNING: $name - HTTP response read failure: $!" if !defined $n;
            last if !$n;    # closed (or failed)
            $resp .= $chunk;
        }
        next unless $w && @$w;
        if ($off < length $buf) {
            my $n = syswrite($sock, $buf, length($buf) - $off, $off);
            next if !defined $n && $! == EAGAIN;
            if (!defined $n) {
                warn "write failed: $!\n";
                $resp ||= "write failed: $!";
                last;
            }
            $off += $n;
        } elsif (@todo) {
            ($buf, $off) = (shift @todo, 0);
            sleep $middle_delay if $middle_delay;
        } else {
            $wsel->remove($sock);
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# ------------------------------------------------------------- responses

# Returns the HTTP::Response (with a decoded body), the raw header text and
# what is left after the body (the next pipelined response).
sub parse_response {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $res = HTTP::Response->parse($raw);
    my $code = $res->code;
    if ($code && $code !~ /^\d+$/) { undef $code; $res->code(undef) }
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');
    my $left;
    if (defined $enc && $enc eq 'chunked') {
        my ($body, $decoded, $err) = ($res->content // '', '');
        while (!defined $err) {
            if ($body =~ /\G0[ \t]*\r\n\r\n/gc) {
                $left = substr $body, pos $body if pos $body < length $body;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*\r\n/gc) {
                my ($size, $p) = (hex $1, pos $body);
                $err = "invalid chunked data received (not enought octets "
                     . "for the data section)" if length($body) - $p < $size;
                $decoded .= substr $body, $p, $size;
                pos($body) = $p + $size;
                $err //= "invalid chunked data received (expected CRLF)."
                    if $body !~ /\G\r\n/gc;
            } else {
                $err = $body =~ /\G.+/gcs ? "invalid chunked body received: $&"
                                          : "no last chunk found - $body";
            }
        }
        if (defined $err) {
            fail_no_ending("$name - $err");
            return;
        }
        $res->content($decoded);
    } elsif (defined $len && $len ne '' && $len >= 0) {
        my $body = $res->content;
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected, "
                 . "but got ", length $body, "\n" unless $head_req;
        } elsif (length $body > $len) {
            $left = substr $body, $len;
            $res->content(substr $body, 0, $len);
        }
    }
    return ($res, $raw_headers, $left);
}

# A section's value for the $idx-th response: a list is required (and
# indexed) when the block gets several responses.
sub get_indexed_value {
    my ($name, $value, $idx, $need_array) = @_;
    if (ref $value eq 'ARRAY') {
        bail_out("$name - SHOULD NOT HAPPEN: idx != 0 and don't need array.")
            if !$need_array && $idx != 0;
        return $value->[$need_array ? $idx : 0];
    }
    bail_out("$name - You asked for many requests, the expected results "
             . "should be arrays as well.") if $need_array;
    return $value;
}

# "Name: value" lines, "!Name" for a header that must be absent (undef).
sub parse_headers {
    my (%h, @order);
    for (split /\n/, shift) {
        s/^\s+|\s+$//g;
        next if $_ eq '';
        my $neg = s/^!\s*//;
        my ($key, $val) = $neg ? ($_, undef) : split /\s*:\s*/, $_, 2;
        push @order, $key unless exists $h{$key};
        $h{$key} = $val;
    }
    return map { [$_, $h{$_}] } @order;
}

sub check_response {
    my ($block, $res, $raw_headers, $idx, $rep, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->code) || '';
    my $value = sub {    # the value of a section for this response
        my $section = shift;
        get_indexed_value($name, scalar $block->$section, $idx, $need_array);
    };
    my $port = sub { (my $s = shift) =~ s/\$ServerPort(?:ForClient)?\b/$ServerPort/g; $s };

    if (defined $block->error_code_like) {
        my $pat = $value->('error_code_like');
        like($code, qr/$pat/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($code, $value->('error_code'), "$name - status code ok");
    } else {
        is($code, 200, "$name - status code ok");
    }

    for my $type (qw(like unlike)) {
        next unless defined $block->${\ "raw_response_headers_$type"};
        my $pat = $value->("raw_response_headers_$type");
        ($type eq 'like' ? \&like : \&unlike)->($raw_headers, qr/$pat/s,
            "$name - raw resp headers $type");
    }

    if (defined $block->response_headers) {
        for (parse_headers($value->('response_headers'))) {
            my ($key, $val) = @$_;
            if (defined $val) {
                is(($res && $res->header($key)) // '', $port->($val),
                   "$name - header $key ok");
            } else {
                unlike($raw_headers, qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
            }
        }
    } elsif (defined $block->response_headers_like) {
        for (parse_headers($value->('response_headers_like'))) {
            my ($key, $val) = ($_->[0], $_->[1] // '');
            like(($res && $res->header($key)) // '', qr/^$val$/,
                 "$name - header $key like ok");
        }
    }

    my $content = $res ? $res->content : undef;
    if (defined $block->response_body) {
        my $expected = $value->('response_body');
        $expected = expand_env_in_text($port->($expected), $name)
            if defined $expected && !ref $expected;
        my $desc = "$name - response_body - ";
        if (ref $expected) {
            like($content, $expected, "${desc}like (repeated req $rep, req $idx)");
        } else {
            $desc .= "response is expected (repeated req $rep, req $idx)";
            $NoLongString ? is($content, $expected, $desc)
                          : is_string($content, $expected, $desc);
        }
    } elsif (defined $block->response_body_like
             || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pat = $port->($value->("response_body_$type"));
        my $summary = $content // '';
        $summary =~ s/^\s+|\s+$//g;
        $summary =~ s/\s{2,}|\n/ /g;
        ($type eq 'like' ? \&like : \&unlike)->($content, qr/$pat/s,
            "$name - response_body_$type - response is expected ($summary)");
    }

    $_->($block, $content, $idx, $rep, 0) for @ResponseBodyChecks;
}

# ------------------------------------------------------------- error.log

# The lines appended to error.log since the last look (within this block).
sub error_log_data {
    sleep $Sleep * 3;    # nginx may log after closing the connection
    open my $in, '<', $ErrLogFile or return undef;
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos;
    my @lines = <$in>;
    $ErrLogFilePos = tell $in unless $CheckAccumErrLog;
    return \@lines;
}

sub value_contains {
    my ($val, $pat) = @_;
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    return scalar grep { defined && value_contains($_, $pat) } @$val;
}

# A section's patterns: lines of text, or qr// or a list of both (eval).
sub pattern_list {
    my $pats = shift;
    if (!ref $pats) { chomp $pats; return [split /\n+/, $pats] }
    return ref $pats eq 'Regexp' ? [$pats] : [@$pats];
}

sub line_matches {
    my ($line, $pat) = @_;
    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}

sub check_error_log {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $lines = error_log_data() || [];
    my %warn_on = map { $_ => 1 } qw(alert crit emerg);

    if (defined(my $pats = $block->error_log)) {
        $warn_on{$_} = 0 for grep { value_contains($pats, "[$_") } keys %warn_on;
        $pats = pattern_list($pats);
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next unless defined $pat && line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log (req $rep)");
                undef $pat;
            }
        }
        defined and fail("$name - pattern \"$_\" should match a line in "
                         . "error.log (req $rep)") for @$pats;
    }

    if (defined(my $pats = $block->no_error_log)) {
        $warn_on{$_} = 0 for grep { value_contains($pats, "[$_") } keys %warn_on;
        $pats = pattern_list($pats);
        my %found;
        for my $i (0 .. $#$lines) {
            for my $pat (grep { defined } @$pats) {
                next unless line_matches($lines->[$i], $pat);
                Test::More->builder->no_ending(1) if $found{$pat}++;
                my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];
                fail("$name - pattern \"" . fmt_str($pat) . "\" should not match "
                     . "any line in error.log but matches line \""
                     . fmt_str($lines->[$i]) . "\" (req $rep)\n" . join '', @more);
            }
        }
        pass("$name - pattern \"" . fmt_str($_) . "\" does not match a line "
             . "in error.log (req $rep)") for grep { defined && !$found{$_} } @$pats;
    }

    for my $line (@$lines) {
        warn "WARNING: $name - " . fmt_str($line) . "\n"
            if $line =~ /\[(alert|crit|emerg)\]/ && $warn_on{$1};
        fail_no_ending("$name - " . ($line =~ s/\n\z//r) . "\n")
            if $line =~ /\bAssertion .*?failed\b/;
    }
}

# ------------------------------------------------------ one repetition

sub run_test_helper {
    my ($block, $rep) = @_;
    my $name = $block->name;
    my $reqs = get_req_from_block($block);
    my $timeout = parse_time($block->timeout) // $Timeout;
    my $pipelined = $block->pipelined_requests;
    my $need_array = $pipelined ? 1 : @$reqs > 1;
    my $idx = 0;

    for my $packets (@$reqs) {
        my ($raw, $head_req) = send_request($packets,
            $block->raw_request_middle_delay, $timeout, $block);
        my $n = $pipelined ? scalar @$pipelined : 0;
        while (1) {    # once, or once per pipelined response
            $raw //= '';
            warn "!!! resp: [$raw]\n" if $Verbose;
            my ($res, $raw_headers, $left);
            unless (defined $block->ignore_response) {
                ($res, $raw_headers, $left) = parse_response($name, $raw, $head_req);
            }
            if ($n) {
                ($raw, $n) = ($left, $n - 1);
            } elsif ($left) {
                $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                warn "WARNING: $name - unexpected extra bytes after last "
                     . "chunk in response: \"$left\"\n";
            }
            check_response($block, $res, $raw_headers // '', $idx, $rep, $need_array)
                unless defined $block->ignore_response;
            if ($n || $idx < @$reqs - 1) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $rep);
            }
            $idx++;
            last unless $n;
        }
    }

    sleep $block->wait if $block->wait;
    check_error_log($block, $rep);
}

END {
    return if $InSubprocess;
    local $?;    # keep Test::Builder's exit code
    cleanup();
    if (($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) && -f $PidFile) {
        my $pid = get_pid_from_pidfile('END');
        if (is_running($pid)) { kill_process($pid, 'END') } else { unlink $PidFile }
    }
}

1;
