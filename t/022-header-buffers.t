# A request line or a first header line that is still incomplete when it
# crosses from one large header buffer into another, on the way to the
# module.  nginx 1.22 then moves the parser's pointers that are still NULL
# (uri_end, method_end, header_name_end) along with the others: pointer
# arithmetic that UBSan reports as an overflow when the new buffer lies
# below the old one, and that ended a worker of the ASan soak.  The
# pointers are set again before anything reads them, and newer nginx
# (1.26) tests them first; scripts/asan-ignorelist.txt names the function.
#
# The new buffer lies below the old one when the allocator hands back a
# freed buffer: two connections each take a large buffer and close, the
# lower first, so the next two large buffers come back high, then low.
# Under ASan that needs its quarantine of freed memory off (set below for
# this file's nginx only; without ASan the variable is unused).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use ThreadsTest;
use Time::HiRes qw(time sleep);

BEGIN {
    $ENV{ASAN_OPTIONS} .= ':quarantine_size_mb=0:thread_local_quarantine_size_kb=0'
        if defined $ENV{ASAN_OPTIONS};
}

# a worker that dies is respawned, under another pid
master_on();
no_shuffle();
use_api_defaults();

my %scenario;

# Two connections that each hold a large header buffer (a header line
# past the 1k client_header_buffer_size, never finished), closed in the
# order they were opened: the worker frees the lower buffer first.
sub free_two_large_buffers {
    my @held;
    for (1 .. 2) {
        my $s = connect_nginx();
        print $s "GET /v1/threads HTTP/1.1\r\nHost: localhost\r\n"
            . "X-Pad: " . ('v' x 2000);
        push @held, $s;
        sleep 0.2;
    }
    for my $s (@held) {
        close $s;
        sleep 0.2;
    }
}

# One request that fills a large buffer to 6.5k, then a pipelined one
# whose $start (request line or first header) is cut at that buffer's
# end and moves into the next.
sub crossing {
    my ($start, $rest) = @_;
    free_two_large_buffers();
    my $s = connect_nginx();
    print $s "GET /v1/threads?limit=1 HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer k-buffers\r\n"
        . "X-Pad: " . ('v' x 6500) . "\r\n\r\n"
        . $start . $rest;
    # a body need not end in a newline: the next status line follows it
    my @answers = read_until($s, 10) =~ m{HTTP/1\.1 (\d{3}) }g;
    close $s;
    return @answers;
}

my $AUTH = "Host: localhost\r\nAuthorization: Bearer k-buffers\r\n"
    . "Connection: close\r\n\r\n";

$scenario{'crossing'} = sub {
    my $w = serving_pid();
    ok($w, 'a worker serves');

    is_deeply([crossing("GET /v1/threads HTTP/1.1\r\n" . ('X' x 3000),
            ": v\r\n$AUTH")], [200, 200],
        'a first header name cut at the buffer end: both requests answered');
    is(serving_pid(), $w, 'the same worker serves');

    is_deeply([crossing('GET /v1/threads?limit=2&pad=' . ('u' x 3000),
            " HTTP/1.1\r\n$AUTH")], [200, 200],
        'a URI cut at the buffer end: both requests answered');
    is(serving_pid(), $w, 'the same worker serves');

    is_deeply([crossing('X' x 3000, " /v1/threads HTTP/1.1\r\n$AUTH")],
        [200, 405],
        'a method cut at the buffer end: both answered, the unknown method 405');
    is(serving_pid(), $w, 'the same worker: nothing crashed');
};

run_scenarios(\%scenario);

run_tests();

__DATA__

=== TEST 1: request and header lines cut at the end of a large header buffer
--- request
GET /v1/threads
--- more_headers
Authorization: Bearer k-buffers
--- scenario: crossing
--- error_code: 200
--- timeout: 60
--- no_error_log
[alert]
[crit]
