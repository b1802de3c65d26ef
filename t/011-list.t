# Listings: messages of a thread and an owner's threads, keyset pages in
# exact creation order, cursors at both ends, parameters at their limits.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;

no_shuffle();
use_api_defaults();

my %scenario;
our $K = "tlister-$$-" . time;
our $K2 = "$K-2";

# Creates a thread with 32 messages in one request (one created_at
# second) plus 8 more one by one; returns (thread, ids in creation order).
sub make_thread {
    my ($key) = @_;
    my $msgs = [ map { +{ role => 'user', content => "m$_" } } 1 .. 32 ];
    my ($st, $t) = api('POST', '/v1/threads',
        json()->encode({ messages => $msgs, metadata => { list => 'yes' } }), $key);
    die "create: $st" unless $st == 200;
    my @ids = split /\n/, psql("SELECT id FROM messages WHERE thread_id = '$t->{id}' ORDER BY seq");
    for my $i (33 .. 40) {
        my ($s, $m) = api('POST', "/v1/threads/$t->{id}/messages",
            json()->encode({ role => 'assistant', content => "m$i" }), $key);
        die "message: $s" unless $s == 200;
        push @ids, $m->{id};
    }
    return ($t->{id}, @ids);
}

# Follows has_more/last_id from a first query; returns all ids seen.
sub walk {
    my ($path, $key, $cursor) = @_;
    my (@seen, $q);
    $cursor //= 'after';
    $q = '';
    for my $n (1 .. 100) {
        my $sep = $path =~ /\?/ ? '&' : '?';
        my ($st, $page) = api('GET', "$path$q", undef, $key);
        is($st, 200, "page $n of $path") or return @seen;
        push @seen, map { $_->{id} } @{ $page->{data} };
        if (@{ $page->{data} }) {
            is($page->{first_id}, $page->{data}[0]{id}, 'first_id');
            is($page->{last_id}, $page->{data}[-1]{id}, 'last_id');
        }
        last unless $page->{has_more};
        $q = $sep . "$cursor=" . ($cursor eq 'after' ? $page->{last_id} : $page->{first_id});
    }
    return @seen;
}

$scenario{messages} = sub {
    my ($t, @ids) = make_thread('lister');

    my ($st, $page) = api('GET', "/v1/threads/$t/messages", undef, 'lister');
    is($st, 200, 'list');
    is($page->{object}, 'list', 'a list object');
    is(scalar @{ $page->{data} }, 20, 'default limit 20');
    is($page->{data}[0]{id}, $ids[-1], 'newest first by default');
    ok($page->{has_more}, 'has_more');
    is($page->{data}[0]{object}, 'thread.message', 'full message objects');

    is_deeply([ walk("/v1/threads/$t/messages?order=asc&limit=7", 'lister') ],
        \@ids, 'asc pages walk every message once, in creation order');
    is_deeply([ walk("/v1/threads/$t/messages?limit=100", 'lister') ],
        [ reverse @ids ], 'one desc page of 100 holds all');
    is_deeply([ walk("/v1/threads/$t/messages?limit=3", 'lister') ],
        [ reverse @ids ], 'desc pages of 3');

    # before: the page just before a cursor, in the listing's order
    ($st, $page) = api('GET', "/v1/threads/$t/messages?order=asc&limit=5&before=$ids[20]", undef, 'lister');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ @ids[15 .. 19] ],
        'asc before: the five just before');
    ok($page->{has_more}, 'more before them');
    ($st, $page) = api('GET', "/v1/threads/$t/messages?limit=5&before=$ids[20]", undef, 'lister');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ reverse @ids[21 .. 25] ],
        'desc before: the five just newer, newest first');
    ($st, $page) = api('GET', "/v1/threads/$t/messages?order=asc&after=$ids[9]&before=$ids[13]", undef, 'lister');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ @ids[10 .. 12] ],
        'after and before together bound the page');
    ok(!$page->{has_more}, 'nothing more between them');

    # the ends
    ($st, $page) = api('GET', "/v1/threads/$t/messages?after=$ids[0]", undef, 'lister');
    is_deeply($page->{data}, [], 'nothing after the oldest in desc order');
    is($page->{first_id}, undef, 'first_id null on an empty page');
    ok(!$page->{has_more}, 'has_more false at the end');
    ($st, $page) = api('GET', "/v1/threads/$t/messages?order=asc&after=$ids[-1]", undef, 'lister');
    is_deeply($page->{data}, [], 'nothing after the newest in asc order');

    # a cursor deleted between two pages still pages on
    ($st) = api('DELETE', "/v1/threads/$t/messages/$ids[4]", undef, 'lister');
    is($st, 200, 'delete the cursor message');
    ($st, $page) = api('GET', "/v1/threads/$t/messages?order=asc&limit=3&after=$ids[4]", undef, 'lister');
    is($st, 200, 'a deleted cursor is still a cursor');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ @ids[5 .. 7] ],
        'the page after a deleted cursor');

    # a message created meanwhile lands at the end, not in the middle
    my ($s2, $new) = api('POST', "/v1/threads/$t/messages", '{"role":"user","content":"late"}', 'lister');
    ($st, $page) = api('GET', "/v1/threads/$t/messages?order=asc&limit=2&after=$ids[-1]", undef, 'lister');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ $new->{id} ],
        'a new message comes after the last one');

    # run_id filter (no runs here)
    ($st, $page) = api('GET', "/v1/threads/$t/messages?run_id=run_abc", undef, 'lister');
    is_deeply($page->{data}, [], 'run_id filters');

    # another owner
    ($st) = api('GET', "/v1/threads/$t/messages", undef, 'someone-else');
    is($st, 404, "another owner cannot list the thread's messages");
};

$scenario{threads} = sub {
    my @mine;
    for my $i (1 .. 12) {
        my ($st, $t) = api('POST', '/v1/threads',
            json()->encode({ metadata => { n => "$i", parity => $i % 2 ? 'odd' : 'even' } }), $main::K);
        push @mine, $t->{id};
    }
    api('POST', '/v1/threads', '{"metadata":{"parity":"odd"}}', $main::K2);

    my @all = walk('/v1/threads?limit=5', $main::K);
    is_deeply(\@all, [ reverse @mine ], "an owner's own threads, newest first, every one once");
    is_deeply([ walk('/v1/threads?order=asc&limit=100', $main::K) ], \@mine,
        'oldest first with order=asc');

    my ($st, $page) = api('GET', '/v1/threads?metadata%5Bparity%5D=odd&limit=100', undef, $main::K);
    is($st, 200, 'filter by a metadata pair');
    is_deeply([ map { $_->{id} } @{ $page->{data} } ],
        [ reverse @mine[0, 2, 4, 6, 8, 10] ], 'only the matching threads, of this owner');
    is($page->{data}[0]{object}, 'thread', 'thread objects');

    ($st, $page) = api('GET', "/v1/threads?limit=2&after=$mine[5]", undef, $main::K);
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ @mine[4, 3] ], 'after, desc');

    ($st) = api('DELETE', "/v1/threads/$mine[3]", undef, $main::K);
    ($st, $page) = api('GET', "/v1/threads?limit=2&after=$mine[3]", undef, $main::K);
    is_deeply([ map { $_->{id} } @{ $page->{data} } ], [ @mine[2, 1] ],
        'a deleted thread is still a cursor');

    ($st, $page) = api('GET', "/v1/threads?after=$mine[0]", undef, $main::K2);
    is($st, 404, "another owner's thread is no cursor");

    # filtered listings' plans: t/019-metadata-filter.t
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: walk messages in every direction
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages
--- more_headers
Authorization: Bearer k1
--- scenario: messages
--- error_code: 404
--- timeout: 120

=== TEST 2: walk an owner's threads
--- request
GET /v1/threads?limit=1
--- more_headers
Authorization: Bearer nobody-has-threads
--- scenario: threads
--- error_code: 200
--- json eval
{ object => 'list', data => [], first_id => undef, last_id => undef, has_more => 0 }
--- timeout: 120

=== TEST 3: limit 100 is the most
--- request
GET /v1/threads?limit=100
--- more_headers
Authorization: Bearer k1
--- error_code: 200

=== TEST 4: limit 101 is too many
--- request
GET /v1/threads?limit=101
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'limit', code => 'integer_above_max_value', type => 'invalid_request_error' } }

=== TEST 5: limit 0 is too few
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages?limit=0
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'limit', code => 'integer_below_min_value' } }

=== TEST 6: limit must be a number
--- request
GET /v1/threads?limit=ten
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'limit', code => 'invalid_type' } }

=== TEST 7: order is asc or desc
--- request
GET /v1/threads?order=sideways
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'order', code => 'invalid_value' } }

=== TEST 8: a cursor that is not a message id
--- request
GET /v1/threads/thread_AAAAAAAAAAAAAAAAAAAAAAAA/messages?after=thread_x
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { param => 'after', code => 'invalid_value' } }

=== TEST 9: a cursor that names no message
--- request eval
my $t = ThreadsTest::seed_thread(key => 'k1');
"GET /v1/threads/$t/messages?before=msg_" . ('q' x 24)
--- more_headers
Authorization: Bearer k1
--- error_code: 404
--- json eval
{ error => { message => "No message found with id 'msg_" . ('q' x 24) . "'." } }

=== TEST 10: two metadata filters are refused
--- request
GET /v1/threads?metadata[a]=1&metadata[b]=2
--- more_headers
Authorization: Bearer k1
--- error_code: 400
--- json eval
{ error => { code => 'invalid_value', param => 'metadata[b]' } }
