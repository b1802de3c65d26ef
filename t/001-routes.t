# Routing: the four thread routes, unknown paths and methods, owners,
# malformed ids, and the headers every API response carries.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

our $T1 = seed_thread(key => 'k1', metadata => '{"seeded":"yes"}');
our $T2 = seed_thread(key => 'k2');

# The x-request-id of a response and the headers that name $request_id.
sub ids_of {
    my $sock = ThreadsTest::raw_request('GET', "/v1/threads/$T1", '', 'k1');
    local $/;
    my $raw = <$sock>;
    my %h;
    $h{lc $1} = $2 while $raw =~ /^([\w-]+):[ \t]*(.*?)\r$/mg;
    return \%h;
}

ThreadsTest::run_scenarios({
    'request id is the variable' => sub {
        my ($a, $b) = (ids_of(), ids_of());
        Test::More::like($a->{'x-request-id'}, qr/^[0-9a-f]{32}$/, 'x-request-id');
        Test::More::is($a->{'x-logged-id'}, $a->{'x-request-id'},
            '$request_id (what access logs name) is the x-request-id sent');
        Test::More::isnt($b->{'x-request-id'}, $a->{'x-request-id'},
            'each request its own id');
    },
    # More keys than a worker caches digests for (256): each key, asked
    # again after the others pushed it out or kept it, is its own owner.
    'owner digests kept per worker' => sub {
        my @keys = ((map { "sk-cache-$_-" . ('x' x ($_ % 40)) } 1 .. 400),
            'L' x 256, 'M' x 257, 'N' x 1000);
        my (%thread, $bad);
        for my $round (1, 2) {
            for my $k (@keys) {
                my ($st, $t) = ThreadsTest::api('POST', '/v1/threads', '{}',
                    $k);
                $bad++, next unless $st == 200 && ref $t;
                push @{ $thread{$k} }, $t->{id};
            }
        }
        Test::More::ok(!$bad, 'every key creates (' . ($bad // 0)
            . ' did not)');
        my ($wrong, $seen) = (0, 0);
        for my $i (0 .. $#keys) {
            my ($k, $next) = ($keys[$i], $keys[($i + 1) % @keys]);
            for my $id (@{ $thread{$k} }) {
                my ($st) = ThreadsTest::api('GET', "/v1/threads/$id", undef, $k);
                $wrong++ unless $st == 200;
                ($st) = ThreadsTest::api('GET', "/v1/threads/$id", undef, $next);
                $wrong++ unless $st == 404;
                $seen++;
            }
        }
        Test::More::is($seen, 2 * @keys, 'two threads per key');
        Test::More::is($wrong, 0, 'each found by its own key alone');
        my $owners = ThreadsTest::psql("SELECT string_agg(DISTINCT owner, ',')"
            . " FROM threads WHERE id IN ('"
            . join("','", map { @{ $thread{$_} } } @keys) . "')");
        Test::More::is_deeply([ sort split /,/, $owners ],
            [ sort map { ThreadsTest::owner_of($_) } @keys ],
            'stored under the SHA-256 of each key, cached or not');
    },
    'request id asked for early' => sub {
        my $a = ids_of();
        Test::More::is($a->{'x-early-id'}, $a->{'x-request-id'},
            'a $request_id taken before the module ran is the one sent');
    },
});

run_tests();

__DATA__

=== TEST 1: unknown path under the API location is a JSON 404
--- request
GET /v1/assistants
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- response_headers
Content-Type: application/json
--- json eval
{ error => { message => 'Invalid URL (GET /v1/assistants)',
  type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 2: a deeper unknown path is a 404 too
--- request
GET /v1/threads/thread_abc/runs/x
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => 'Invalid URL (GET /v1/threads/thread_abc/runs/x)' } }

=== TEST 3: a trailing slash is not a thread id
--- request
POST /v1/threads/
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => 'Invalid URL (POST /v1/threads/)' } }

=== TEST 4: PUT on the collection is 405 with Allow
--- request
PUT /v1/threads
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, POST
Content-Type: application/json
--- json eval
{ error => { message => 'Invalid method for URL (PUT /v1/threads)',
  type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 5: PATCH on a thread is 405 with Allow
--- request
PATCH /v1/threads/thread_abc
--- more_headers
Authorization: Bearer k1
--- error_code: 405
--- response_headers
Allow: GET, POST, DELETE
--- json eval
{ error => { message => 'Invalid method for URL (PATCH /v1/threads/thread_abc)' } }

=== TEST 6: no Authorization header is a 401 in OpenAI's format
--- request
GET /v1/threads/thread_abc
--- error_code: 401
--- response_headers
Content-Type: application/json
--- json eval
{ error => { message => qr/provide your API key in an Authorization header using Bearer auth/,
  type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 7: a key that is not Bearer is a 401
--- request
POST /v1/threads
--- more_headers
Authorization: Basic dXNlcjpwYXNz
--- error_code: 401
--- json eval
{ error => { type => 'invalid_request_error' } }

=== TEST 8: an id that does not begin with 'thread' is a 400, with no query
--- request
GET /v1/threads/msg_abc
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { message => "Invalid 'thread_id': 'msg_abc'. Expected an ID that begins with 'thread'.",
  type => 'invalid_request_error', param => 'thread_id' } }
--- no_error_log
threads: database

=== TEST 9: an id that begins with 'thread' but was never made is a 404
--- request
DELETE /v1/threads/thread_nope
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id 'thread_nope'.",
  type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 10: a well-formed id that does not exist is a 404
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id 'thread_AAAAAAAAAAAAAAAAAAAAAAAA'." } }

=== TEST 11: retrieve a seeded thread
--- request eval
"GET /v1/threads/$main::T1"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- response_headers_like
Content-Type: application/json
x-request-id: [0-9a-f]{32}
--- json eval
{ id => $main::T1, object => 'thread', created_at => 1764200000,
  metadata => { seeded => 'yes' }, tool_resources => {} }

=== TEST 12: another owner's thread is exactly a missing one
--- request eval
"GET /v1/threads/$main::T2"
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No thread found with id '$main::T2'.",
  type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 13: percent-encoded ids are decoded
--- request eval
my $id = $main::T1; $id =~ s/_/%5F/; $id =~ s/^t/%74/;
"GET /v1/threads/$id"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- json eval
{ id => $main::T1 }

=== TEST 14: the OpenAI-Beta header is accepted
--- request eval
"GET /v1/threads/$main::T1"
--- more_headers
Authorization: Bearer k1
OpenAI-Beta: assistants=v2
--- error_code: 200
--- json eval
{ id => $main::T1 }

=== TEST 15: an over-long id is a 404, not a crash
--- request eval
"GET /v1/threads/thread_" . ("x" x 5000)
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => qr/^No thread found with id 'thread_x+/ } }

=== TEST 16: owners without threads_owner_required may be empty
--- config
    location /v1/ {
        threads_api on;
        threads_owner $http_x_owner;
        threads_owner_required off;
    }
--- request
POST /v1/threads
--- error_code: 200
--- json eval
{ object => 'thread', id => qr/^thread_[A-Za-z0-9]{24}$/ }

=== TEST 17: a location without threads_api is not the API
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
    location /other/ {
        return 200 "plain\n";
    }
--- request
GET /other/threads
--- error_code: 200
--- response_body
plain

=== TEST 18: an encoded slash does not split an id
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA%2Fmessages
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => 'Invalid URL (GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages)' } }

=== TEST 19: threads_json_errors in a server: nginx's own refusals are JSON too
--- config
    threads_json_errors on;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
--- raw_request eval
"GET /v1/threads/%zz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'invalid_request_error', param => undef, code => undef } }

=== TEST 20: an over-long request line is a JSON 414 with threads_json_errors
--- config
    threads_json_errors on;
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
    }
--- raw_request eval
"GET /v1/threads/thread_" . ("x" x 20000) . " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- error_code: 414
--- response_headers
Content-Type: application/json
--- json eval
{ error => { type => 'invalid_request_error' } }

=== TEST 21: an error_page redirect out of the API location logs without crashing
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 10;
        error_page 413 /missing.html;
    }
--- raw_request eval
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n{\"metadata\":{\"a\":\"0123456789\"}}\r\n0\r\n\r\n"
--- error_code: 404
--- error_log eval
qr/open\(\) ".*missing.html" failed.*request_id: [0-9a-f]{32}/
--- no_error_log
[alert]
signal

=== TEST 22: an error_page redirect back into the API location
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        client_max_body_size 10;
        error_page 413 /v1/nowhere;
    }
--- raw_request eval
"POST /v1/threads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer k1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n{\"metadata\":{\"a\":\"0123456789\"}}\r\n0\r\n\r\n"
--- error_code: 413
--- response_headers
Content-Type: application/json
--- no_error_log
[alert]
signal

=== TEST 23: x-request-id is $request_id, the id access logs name
--- config
    location /v1/ {
        threads_api on;
        threads_owner $threads_api_key;
        add_header X-Logged-Id $request_id always;
    }
--- request eval
"GET /v1/threads/$main::T1"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- scenario: request id is the variable
--- no_error_log
[alert]

=== TEST 24: a $request_id evaluated before the module is kept
--- config
    location /v1/ {
        set $early $request_id;
        threads_api on;
        threads_owner $threads_api_key;
        add_header X-Early-Id $early always;
    }
--- request eval
"GET /v1/threads/$main::T1"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- scenario: request id asked for early
--- no_error_log
[alert]

=== TEST 25: owner digests, cached per worker, never cross keys
--- request eval
"GET /v1/threads/$main::T1"
--- more_headers
Authorization: Bearer k1
--- error_code: 200
--- scenario: owner digests kept per worker
--- timeout: 300
--- error_log
threads: owner digest cached
--- no_error_log
[alert]
[error]
