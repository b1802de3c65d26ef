# Issue 10: threads_pg_query_timeout counts silence, not the whole answer.
# A 60 MB page over a link slow enough that it takes longer than the
# query timeout to arrive still completes, since bytes keep coming.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use FaultsTest;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;

log_level('info');
no_shuffle();
use_api_defaults();

# 10 MB/s from the database to the module: 6 s for the page
our $PROXY = tcp_proxy_start($ENV{TEST_NGINX_PROXY_PORT},
    $ENV{TEST_NGINX_PG_PORT}, 120, 10e6);
END { local $?; tcp_proxy_stop($PROXY) }

our $CONF = proxied_config() . "    threads_pg_query_timeout 2s;\n";

my %scenario;

$scenario{'slow-page'} = sub {
    my $t = seed_thread(key => 'k1');
    my $owner = owner_of('k1');
    psql("INSERT INTO messages (owner, thread_id, id, created_at, role,"
        . " content) SELECT '$owner', '$t', 'msg_' || lpad(g::text, 24, 'M'),"
        . " 1764200000, 'user', jsonb_build_array(jsonb_build_object('type',"
        . " 'text', 'text', jsonb_build_object('value', repeat('x', 1000000),"
        . " 'annotations', '[]'::jsonb))) FROM generate_series(1, 60) g");
    # read raw: decoding 60 MB of JSON in pure Perl takes longer than
    # the test itself
    my $t0 = time;
    my $res = HTTP::Tiny->new(timeout => 60)->get('http://127.0.0.1:'
        . FaultsTest::port() . "/v1/threads/$t/messages?limit=100&order=asc",
        { headers => { Authorization => 'Bearer k1' } });
    my ($st, $secs) = ($res->{status}, time - $t0);
    my $n = () = $res->{content} =~ /"thread\.message"/g;
    is($st, 200, 'the page arrives whole');
    is($n, 60, 'all 60 messages');
    cmp_ok(length $res->{content}, '>', 60e6, 'all 60 MB of them');
    cmp_ok($secs, ">", 3,
        sprintf('it took %.1f s, longer than the 2 s query timeout', $secs));
    diag(sprintf('60 MB page over a 10 MB/s link: %d in %.1f s', $st, $secs));
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: a page that takes longer than the query timeout to arrive completes
--- http_config eval
$main::CONF
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        threads_list_max_bytes 100m;
    }
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- scenario: slow-page
--- error_code: 404
--- timeout: 90
--- no_error_log
[alert]
database query timed out
