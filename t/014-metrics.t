# Prometheus metrics (threads_metrics, threads_metrics_zone): the scrape
# passes promtool, counters summed over two workers move by exactly the
# requests sent, the pool gauges match the pool's state while a row lock
# keeps connections busy, and the database counters count their events.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use File::Temp ();
use Time::HiRes qw(time sleep);

master_on();
workers(2);
no_shuffle();
use_api_defaults();

our $METRICS_HTTP = $HTTP_CONFIG . "    threads_metrics_zone 1m;\n";
our $METRICS_CONFIG = <<'CONF';
    threads_json_errors on;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 1k;
        add_header X-Pid $pid always;
    }
    location = /metrics {
        threads_metrics;
    }
CONF

# The scrape as { 'name{labels}' => value } and its text.
sub scrape {
    my $port = ThreadsTest::nginx_port();
    my $res = HTTP::Tiny->new(timeout => 10)
        ->get("http://127.0.0.1:$port/metrics");
    my %m;
    for (split /\n/, $res->{content} // '') {
        next if /^#/ || !/\S/;
        my ($k, $v) = /^(\S+)\s+(\S+)$/ or next;
        $m{$k} = $v;
    }
    return (\%m, $res);
}

# Requests are counted in the log phase, which may come a moment after the
# client has its answer (lingering close): scrapes until $cond holds.
sub scrape_until {
    my ($cond) = @_;
    my ($m, $res);
    wait_for(sub { ($m, $res) = scrape(); $cond->($m) }, 5 * slow_factor());
    return ($m, $res);
}

# The requests counted for $op, over all statuses.
sub op_total {
    my ($m, $op) = @_;
    my $n = 0;
    $n += $m->{$_} for grep { /^threads_requests_total\{op="$op",/ } keys %$m;
    return $n;
}

sub promtool_ok {
    my ($text, $name) = @_;
    my $tmp = File::Temp->new(SUFFIX => '.prom');
    print $tmp $text;
    close $tmp;
    my $out = `promtool check metrics < $tmp 2>&1`;
    is($? >> 8, 0, "$name: promtool check metrics passes")
        or diag($out);
    is($out, '', "$name: promtool has no remarks");
}

sub zero { $_[0] // 0 }

our %SENT;       # "op,status" => requests sent
our %PIDS;

# One API request counted in %SENT under its op and its answer's status.
sub call {
    my ($op, $method, $path, $body, $key) = @_;
    my ($st, $data, $h) = api($method, $path, $body, $key);
    $SENT{"$op,$st"}++;
    $PIDS{$h->{'x-pid'}}++ if $h->{'x-pid'};
    return ($st, $data);
}

# The answers of raw_request sockets: their statuses.
sub statuses {
    my @st;
    local $/;
    for my $sock (@_) {
        my $resp = <$sock> // '';
        close $sock;
        push @st, $resp =~ m{^HTTP/1\.1 (\d+)} ? $1 : 0;
    }
    return @st;
}

my %scenarios;

$scenarios{counts} = sub {
    %SENT = ();
    %PIDS = ();

    my ($before) = scrape();
    is(zero($before->{'threads_requests_total{op="thread_create",status="200"}'}),
       0, 'nothing counted before the first request');

    my @ids;
    for my $n (1 .. 6) {
        my ($st, $t) = call('thread_create', 'POST', '/v1/threads',
            '{"metadata":{"n":"' . $n . '"}}', 'm1');
        push @ids, $t->{id} if $st == 200;
    }
    is(scalar @ids, 6, 'six threads created');
    call('thread_create', 'POST', '/v1/threads', '{"metadata":1}', 'm1')
        for 1 .. 2;                                         # 400s
    call('thread_retrieve', 'GET', "/v1/threads/$_", undef, 'm1') for @ids;
    call('thread_retrieve', 'GET', '/v1/threads/' . random_thread_id(),
         undef, 'm1') for 1 .. 3;                           # 404s
    call('thread_modify', 'POST', "/v1/threads/$ids[0]",
         '{"metadata":{"x":"y"}}', 'm1') for 1 .. 4;
    call('thread_list', 'GET', '/v1/threads?limit=2', undef, 'm1') for 1 .. 3;
    call('thread_list', 'GET', '/v1/threads?limit=1000', undef, 'm1');  # 400

    my @msgs;
    for (1 .. 5) {
        my ($st, $m) = call('message_create', 'POST',
            "/v1/threads/$ids[1]/messages",
            '{"role":"user","content":"hi"}', 'm1');
        push @msgs, $m->{id} if $st == 200;
    }
    call('message_retrieve', 'GET', "/v1/threads/$ids[1]/messages/$_",
         undef, 'm1') for @msgs;
    call('message_modify', 'POST', "/v1/threads/$ids[1]/messages/$msgs[0]",
         '{"metadata":{"a":"b"}}', 'm1') for 1 .. 2;
    call('message_list', 'GET', "/v1/threads/$ids[1]/messages", undef, 'm1')
        for 1 .. 3;
    call('message_delete', 'DELETE', "/v1/threads/$ids[1]/messages/$_",
         undef, 'm1') for @msgs[0 .. 1];
    call('thread_delete', 'DELETE', "/v1/threads/$_", undef, 'm1')
        for @ids[2 .. 5];

    # answered before an operation was known: op "none"
    call('none', 'GET', '/v1/threads', undef, undef) for 1 .. 2;  # 401
    call('none', 'GET', '/v1/nothing', undef, 'm1');              # 404
    call('none', 'PUT', '/v1/threads', '{}', 'm1');               # 405
    # refused by nginx on Content-Length, before the API's handler runs
    call('none', 'POST', '/v1/threads', '{"x":"' . ('a' x 2000) . '"}', 'm1');

    # until both workers have answered (the kernel picks the worker)
    for (1 .. 200) {
        last if keys %PIDS >= 2;
        call('thread_retrieve', 'GET', "/v1/threads/$ids[0]", undef, 'm1');
    }
    cmp_ok(scalar keys %PIDS, '>=', 2, 'requests went through two workers');

    is($SENT{'none,413'}, 1, 'the over-long body was refused with a 413');

    my $total = 0;
    $total += $_ for values %SENT;
    my ($m, $res) = scrape_until(sub {
        my $n = 0;
        $n += op_total($_[0], $_) for qw(none thread_create thread_retrieve
            thread_modify thread_delete thread_list message_create
            message_retrieve message_modify message_delete message_list);
        $n == $total;
    });
    is($res->{status}, 200, 'the scrape answers 200');
    is($res->{headers}{'content-type'},
       'text/plain; version=0.0.4; charset=utf-8', 'in the text format 0.0.4');
    promtool_ok($res->{content}, 'after the requests');

    my %got = map { /^threads_requests_total\{op="(\w+)",status="(\w+)"\}$/
                    ? ("$1,$2" => $m->{$_}) : () } keys %$m;
    is_deeply(\%got, \%SENT, 'threads_requests_total counts exactly the '
        . 'requests sent, by op and status')
        or diag(explain({ got => \%got, sent => \%SENT }));

    my %per_op;
    $per_op{(split /,/)[0]} += $SENT{$_} for keys %SENT;
    for my $op (sort keys %per_op) {
        my $h = "threads_request_duration_seconds";
        is($m->{"${h}_count{op=\"$op\"}"}, $per_op{$op}, "$op: duration count");
        is($m->{"${h}_bucket{op=\"$op\",le=\"+Inf\"}"}, $per_op{$op},
           "$op: +Inf bucket");
        cmp_ok($m->{"${h}_sum{op=\"$op\"}"}, '>', 0, "$op: duration sum");
        my @le = map { $m->{"${h}_bucket{op=\"$op\",le=\"$_\"}"} }
            qw(0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5
               10 +Inf);
        ok(!grep({ $le[$_] < $le[$_ - 1] } 1 .. $#le),
           "$op: buckets are cumulative");
    }

    # statements sent: every 200 and every 404 of a well-formed id
    my %pg = (thread_create => 6, thread_modify => 4, thread_list => 3,
              message_create => 5, message_retrieve => 5,
              message_modify => 2, message_list => 3, message_delete => 2,
              thread_delete => 4,
              thread_retrieve => $SENT{'thread_retrieve,200'} + 3);
    for my $op (sort keys %pg) {
        is($m->{"threads_pg_duration_seconds_count{op=\"$op\"}"}, $pg{$op},
           "$op: one statement timed per request that sent one");
    }
    is($m->{'threads_pg_duration_seconds_count{op="thread_create"}'}
       + 0, 6, 'rejected creates sent no statement');

    is($m->{'threads_pg_connections{state="busy"}'}, 0, 'no connection busy');
    is($m->{'threads_pg_connections{state="connecting"}'}, 0,
       'none connecting');
    is($m->{'threads_pg_connections{state="idle"}'}, module_backends(),
       'idle connections are the module\'s sessions on the server');
    is($m->{threads_pg_queue_waiting}, 0, 'nobody waits');
    is($m->{$_}, 0, "$_ is 0") for qw(threads_pg_queue_timeouts_total
        threads_pg_queue_overflows_total threads_pg_connect_failures_total
        threads_pg_reconnects_total threads_pg_query_timeouts_total);
    ok(!grep(/^threads_pg_errors_total/, keys %$m), 'no database error');
    ok($res->{content} !~ /thread_[A-Za-z0-9]{24}|msg_|m1|owner/,
       'no id, key or owner in any label');

    # a reload keeps the zone and its counters
    my ($master) = nginx_pids();
    kill 'HUP', $master;
    ok(wait_for(sub {
        my ($after) = scrape();
        ($after->{'threads_requests_total{op="thread_create",status="200"}'}
         // 0) == 6 && $after->{'threads_pg_connections{state="idle"}'}
         == module_backends();
    }, 10), 'the counters survive a reload');
};

$scenarios{saturation} = sub {
    my $t = seed_thread(key => 'm1');
    my $holder = lock_row_in_background($t, 5 * slow_factor());

    my @socks = map { raw_request('POST', "/v1/threads/$t",
        '{"metadata":{"s":"1"}}', 'm1') } 1 .. 3;

    my $m;
    ok(wait_for(sub {
        ($m) = scrape();
        $m->{'threads_pg_connections{state="busy"}'}
            + $m->{threads_pg_queue_waiting} == 3
            && $m->{'threads_pg_connections{state="connecting"}'} == 0;
    }, 5 * slow_factor()), 'the three modifies are busy or waiting')
        or diag(Test::More::explain($m));
    my $busy = $m->{'threads_pg_connections{state="busy"}'};
    my $waiting = $m->{threads_pg_queue_waiting};
    ok($busy >= 1 && $busy <= 2, "one busy connection per worker ($busy)");
    ok(wait_for(sub { module_waiting_on_lock() == $busy }, 5),
       'as many sessions wait on the lock as the gauge says are busy');
    is($m->{'threads_pg_connections{state="connecting"}'}, 0,
       'none connecting');
    is($m->{'threads_pg_connections{state="idle"}'} + $busy,
       module_backends(), 'idle + busy are the module\'s sessions');
    is($m->{threads_pg_queue_waiting}, 3 - $busy,
       'the others wait in the queues');

    my @st = sort(statuses(@socks));
    waitpid($holder, 0);
    is_deeply(\@st, [ sort((200) x $busy, (503) x $waiting) ],
              'busy ones complete, waiting ones time out');

    ($m) = scrape_until(sub { op_total($_[0], 'thread_modify') == 3 });
    is($m->{threads_pg_queue_timeouts_total}, $waiting,
       'every queue timeout counted');
    is($m->{'threads_requests_total{op="thread_modify",status="503"}'}
       // 0, $waiting, 'as 503s of thread_modify');
    is($m->{'threads_pg_connections{state="busy"}'}, 0, 'nothing busy after');
    is($m->{threads_pg_queue_waiting}, 0, 'nothing waits after');
};

$scenarios{overflow} = sub {
    my $t = seed_thread(key => 'm1');
    my $holder = lock_row_in_background($t, 3 * slow_factor());
    my @socks = map { raw_request('POST', "/v1/threads/$t",
        '{"metadata":{"s":"1"}}', 'm1') } 1 .. 3;
    my @st = statuses(@socks);
    waitpid($holder, 0);
    my $refused = grep { $_ == 503 } @st;
    cmp_ok($refused, '>=', 1, 'three modifies on two workers: one refused');
    my ($m) = scrape_until(sub { op_total($_[0], 'thread_modify') == 3 });
    is($m->{threads_pg_queue_overflows_total}, $refused,
       'every overflow counted');
    is($m->{threads_pg_queue_timeouts_total}, 0, 'no queue timeout');
};

$scenarios{'connect-failures'} = sub {
    my @st = map { (api('GET', '/v1/threads', undef, 'm1'))[0] } 1 .. 4;
    is_deeply(\@st, [ (503) x 4 ], 'no database: 503s');
    my ($m) = scrape_until(sub { op_total($_[0], 'thread_list') == 4 });
    is($m->{threads_pg_connect_failures_total}, 4,
       'one failed connection attempt per request');
    is($m->{'threads_requests_total{op="thread_list",status="503"}'}, 4,
       'counted as 503s of thread_list');
    is($m->{'threads_pg_duration_seconds_count{op="thread_list"}'}, 0,
       'no statement was sent');
    is($m->{'threads_pg_connections{state="connecting"}'}, 0,
       'none left connecting');
};

$scenarios{'errors-and-timeouts'} = sub {
    my $t = seed_thread(key => 'm1');

    # statement_timeout (conninfo options) cancels a lock wait: 57014
    my $holder = lock_row_in_background($t, 3 * slow_factor());
    my @st = map { (api('POST', "/v1/threads/$t", '{"metadata":{"e":"1"}}',
                        'm1'))[0] } 1 .. 2;
    waitpid($holder, 0);
    is_deeply(\@st, [ 500, 500 ], 'canceled statements: 500s');
    my ($m) = scrape_until(sub { op_total($_[0], 'thread_modify') == 2 });
    is($m->{'threads_pg_errors_total{sqlstate_class="57"}'}, 2,
       'database errors by SQLSTATE class');
    is($m->{'threads_requests_total{op="thread_modify",status="500"}'}, 2,
       'counted as 500s of thread_modify');

    # sessions killed while idle: each is a reconnect
    api('GET', "/v1/threads/$t", undef, 'm1') for 1 .. 4;
    my $n = module_backends();
    cmp_ok($n, '>=', 1, "$n pool connections open");
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        . "WHERE application_name = 'ngx_http_threads_module'");
    ok(wait_for(sub { (scrape())[0]{threads_pg_reconnects_total} == $n }, 5),
       'every lost connection counted once');
    ($m) = scrape();
    is($m->{'threads_pg_connections{state="idle"}'}, 0,
       'and none is idle any more');
    my ($ok) = api('GET', "/v1/threads/$t", undef, 'm1');
    is($ok, 200, 'the pool reconnects');
};

$scenarios{'query-timeout'} = sub {
    my $t = seed_thread(key => 'm1');
    my $holder = lock_row_in_background($t, 3 * slow_factor());
    my ($st) = api('POST', "/v1/threads/$t", '{"metadata":{"q":"1"}}', 'm1');
    waitpid($holder, 0);
    is($st, 504, 'no result within threads_pg_query_timeout: 504');
    my ($m) = scrape_until(sub { op_total($_[0], 'thread_modify') == 1 });
    is($m->{threads_pg_query_timeouts_total}, 1, 'the query timeout counted');
    is($m->{threads_pg_reconnects_total}, 0, 'not as a lost connection');
    is($m->{'threads_requests_total{op="thread_modify",status="504"}'}, 1,
       'counted as a 504 of thread_modify');
};

$scenarios{'too-small'} = sub {
    my $dir = File::Temp->newdir();
    my $conf = "$dir/nginx.conf";
    open my $fh, '>', $conf or die;
    print $fh "load_module $ENV{TEST_NGINX_LOAD_MODULES};\n"
        . "error_log $dir/error.log;\npid $dir/nginx.pid;\n"
        . "events {}\nhttp { threads_metrics_zone 40k; }\n";
    close $fh;
    my $out = `$ENV{TEST_NGINX_BINARY} -t -p $dir -c $conf 2>&1`;
    isnt($? >> 8, 0, 'nginx -t refuses a zone too small for the counters');
    like($out, qr/threads_metrics_zone of \d+ bytes is too small: it needs at least \d+k/,
         'and says how large it must be');
};

run_scenarios(\%scenarios);
run_tests();

__DATA__

=== TEST 1: counts summed over two workers, promtool-clean, no ids in labels
--- http_config eval: $::METRICS_HTTP
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: counts
--- timeout: 60
--- no_error_log
[alert]
[crit]
[emerg]

=== TEST 2: saturation: gauges match the pool, queue timeouts counted
--- http_config eval
$::METRICS_HTTP . <<'CONF'
    threads_pg_pool_size 1;
    threads_pg_pipeline 1;
    threads_pg_queue_timeout 2s;
CONF
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: saturation
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 3: queue overflows counted
--- http_config eval
$::METRICS_HTTP . <<'CONF'
    threads_pg_pool_size 1;
    threads_pg_pipeline 1;
    threads_pg_queue_size 0;
CONF
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: overflow
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 4: connect failures counted
--- http_config eval
(my $c = $::METRICS_HTTP) =~ s/threads_pg_conninfo "[^"]*"/threads_pg_conninfo "host=127.0.0.1 port=1 dbname=x user=x"/;
$c
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: connect-failures
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 5: database errors by SQLSTATE class; lost connections
--- http_config eval
ThreadsTest::with_conninfo_options($::METRICS_HTTP, '-c statement_timeout=300')
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: errors-and-timeouts
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 6: query timeouts counted
--- http_config eval
$::METRICS_HTTP . "    threads_pg_query_timeout 1s;\n"
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: query-timeout
--- timeout: 60
--- no_error_log
[alert]
[crit]

=== TEST 7: a zone too small for the counters is refused with its size
--- http_config eval: $::METRICS_HTTP
--- config eval: $::METRICS_CONFIG
--- request
GET /metrics
--- error_code: 200
--- scenario: too-small
