#!/usr/bin/env perl
# Hostile-client generator of scripts/soak: valid API traffic mixed with
# malformed and mutated requests (bodies, headers, paths, query strings,
# chunking), resets mid-request and mid-response, slow clients and
# pipelining, from several client processes, on loopback only.  Stops by
# itself after --seconds or --max-requests.
#
#   hostile-client.pl --port 4621 --seconds 600 [--clients 6] [--seed N]
#                     [--bomb-mb 32] [--max-requests N] [--prefix /v1]
#
# Prints the totals at the end: requests sent, statuses seen (counts),
# resets sent, connections the server closed or reset without an answer,
# timeouts (and waits the generator cuts short on purpose), and answers that break the contract (5xx other than 503/504,
# non-JSON error bodies under the API prefix).  Exit status 0; judging the
# run (sanitizer reports, [alert] lines, RSS) is scripts/soak's job.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(SOL_SOCKET SO_LINGER IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
use POSIX qw(_exit);
use Fcntl qw(:flock);
use Getopt::Long;

my %opt = (port => 4621, seconds => 600, clients => 6, seed => time() ^ $$,
           'bomb-mb' => 32, 'max-requests' => 0, prefix => '/v1',
           'stats-dir' => "/tmp/hostile-client.$$");
GetOptions(\%opt, 'port=i', 'seconds=i', 'clients=i', 'seed=i', 'bomb-mb=i',
           'max-requests=i', 'prefix=s', 'stats-dir=s')
    or die "bad options\n";

my $P        = $opt{prefix};
my $deadline = time() + $opt{seconds};
my $bomb_lock = "$opt{'stats-dir'}/bomb.lock";
mkdir $opt{'stats-dir'};

# ------------------------------------------------------------ statistics

my %st;    # per client: name => count

sub count { $st{$_[0]} += $_[1] // 1 }

# -------------------------------------------------------------- helpers

sub R { int rand $_[0] }
sub pick { $_[R(scalar @_)] }
sub chance { rand() < $_[0] }

sub key { 'soak-key-' . R(4) }    # a few owners, so lists have rows

sub rand_bytes {
    my $n = shift;
    join '', map { chr R(256) } 1 .. $n;
}

sub rand_str {
    my $n = shift;
    join '', map { pick('a' .. 'z', 'A' .. 'Z', 0 .. 9, ' ', '_') } 1 .. $n;
}

sub connect_srv {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $opt{port}, Proto => 'tcp',
                                  Timeout => 5);
    if (!$s) { count('connect failures'); return }
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $s;
    $s->blocking(0);
    return $s;
}

# closes with an RST instead of a FIN
sub reset_close {
    my $s = shift;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
    count('resets sent');
}

# writes all of $data (non-blocking socket), false when the peer is gone
sub send_all {
    my ($s, $data, $timeout) = @_;
    my $sel = IO::Select->new($s);
    my $end = time() + ($timeout // 10);
    my $off = 0;
    while ($off < length $data) {
        return 0 if time() > $end;
        next unless $sel->can_write(0.5);
        my $n = syswrite($s, $data, 65536, $off);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# trickles $data in small pieces
sub send_slow {
    my ($s, $data, $total_delay) = @_;
    my @pieces;
    push @pieces, substr($data, 0, 1 + R(7), '') while length $data;
    my $delay = $total_delay / (@pieces || 1);
    for my $p (@pieces) {
        send_all($s, $p, 5) or return 0;
        sleep $delay;
    }
    return 1;
}

# Reads answers until $want of them are complete, the peer closes, or the
# timeout.  Returns a list of [status, headers, body]; counts outcomes.
sub read_answers {
    my ($s, $want, $timeout, $head_only, $cut) = @_;
    my $sel = IO::Select->new($s);
    my $end = time() + ($timeout // 15);
    my ($buf, @ans, $eof, $err) = ('');
    while (@ans < $want) {
        # complete answers already in the buffer
        while (@ans < $want && $buf =~ /\r\n\r\n/) {
            my $he = index($buf, "\r\n\r\n");
            my $head = substr($buf, 0, $he);
            my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})};
            if (!defined $status) { count('garbled answers'); $buf = ''; last }
            if ($status =~ /^1/) {    # 100 Continue: the answer follows
                count("status $status");
                $buf = substr($buf, $he + 4);
                next;
            }
            my $len;
            my $body;
            if ($head_only || $status == 204 || $status == 304) {
                $len = 0;
            } elsif ($head =~ /^content-length:\s*(\d+)/im) {
                $len = $1;
            } elsif ($head =~ /^transfer-encoding:\s*chunked/im) {
                my $rest = substr($buf, $he + 4);
                my $dec = '';
                my $ok = 0;
                while ($rest =~ /^([0-9a-fA-F]+)[^\r]*\r\n/) {
                    my $n = hex $1;
                    my $hl = length($&);
                    last if length($rest) < $hl + $n + 2;
                    if ($n == 0) {
                        last unless $rest =~ /^0[^\r]*\r\n(?:[^\r]*\r\n)*?\r\n/;
                        $ok = length($&);
                        $rest = substr($rest, $ok);
                        last;
                    }
                    $dec .= substr($rest, $hl, $n);
                    $rest = substr($rest, $hl + $n + 2);
                }
                last unless $ok;
                push @ans, [$status, $head, $dec];
                $buf = $rest;
                next;
            } else {
                last unless $eof;    # body until close
                $len = length($buf) - $he - 4;
            }
            last if length($buf) < $he + 4 + $len;
            $body = substr($buf, $he + 4, $len);
            push @ans, [$status, $head, $body];
            $buf = substr($buf, $he + 4 + $len);
        }
        last if @ans >= $want || $eof || $err;
        my $left = $end - time();
        if ($left <= 0) {
            count($cut ? 'waits cut short on purpose' : 'answer timeouts');
            last;
        }
        next unless $sel->can_read($left < 0.5 ? $left : 0.5);
        my $n = sysread($s, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            $err = 1;
            count('connections reset by the server')
                if $!{ECONNRESET} && !@ans;
        } elsif ($n == 0) {
            $eof = 1;
        }
    }
    count('closed without an answer') if !@ans && $eof;
    for my $a (@ans) {
        count("status $a->[0]");
        judge($a);
    }
    return @ans;
}

# Answers that break the contract.
my $last_path = '';
sub judge {
    my $a = shift;
    my ($status, $head, $body) = @$a;
    # 501 (an unknown transfer coding) and 505 (HTTP/2.0 in the request
    # line) are nginx's right answers; 503 and 504 the pool's
    if ($status >= 500 && $status !~ /^50[1345]$/) {
        count("contract: $status");
        note_bad("$status on $last_path");
    }
    if ($status >= 400 && $last_path =~ m{^\Q$P\E/} && $head !~ /^HTTP\/1\.1 499/
        && ($head !~ m{^content-type:\s*application/json}im
            || $body =~ /<html/i))
    {
        count('contract: non-JSON error');
        note_bad("non-JSON $status on $last_path");
    }
}

my %bad_seen;
sub note_bad {
    my $m = substr(shift, 0, 200);
    $m =~ s/[^\x20-\x7e]/?/g;
    print STDERR "hostile-client: $m\n" unless $bad_seen{$m}++ || keys %bad_seen > 20;
}

sub request {
    my (%a) = @_;
    my $m = $a{method} // 'GET';
    my $path = $a{path};
    my $body = $a{body};
    my @h = ("Host: localhost");
    push @h, "Authorization: Bearer " . ($a{key} // key())
        unless $a{no_auth};
    push @h, "OpenAI-Beta: assistants=v2" if chance(0.5);
    if (defined $body && !$a{no_length}) {
        push @h, "Content-Type: application/json" unless $a{no_type};
        push @h, "Content-Length: " . length($body);
    }
    push @h, @{ $a{headers} // [] };
    push @h, "Connection: close" if $a{close};
    $last_path = $path;
    return "$m $path HTTP/1.1\r\n" . join('', map { "$_\r\n" } @h) . "\r\n"
        . ($body // '');
}

# One request, one answer; returns the answer or undef.
sub exchange {
    my ($req, %o) = @_;
    my $s = connect_srv() or return;
    count('requests sent');
    my $ok = $o{slow} ? send_slow($s, $req, $o{slow}) : send_all($s, $req);
    if (!$ok) { count('send failures'); close $s; return }
    my @a = read_answers($s, 1, $o{timeout} // 20, $o{head_only}, $o{cut});
    if ($o{rst_after}) { reset_close($s) } else { close $s }
    return $a[0];
}

# ------------------------------------------------------------ JSON bodies

sub metadata {
    my $n = shift // R(4);
    return '{' . join(',', map { qq("k$_":"v) . rand_str(R(20)) . '"' } 1 .. $n) . '}';
}

sub message_json {
    my $content = chance(0.7)
        ? '"' . rand_str(1 + R(200)) . '"'
        : '[{"type":"text","text":"' . rand_str(1 + R(100)) . '"}]';
    my $role = chance(0.9) ? 'user' : 'assistant';
    return qq({"role":"$role","content":$content)
        . (chance(0.3) ? ',"metadata":' . metadata() : '') . '}';
}

sub thread_json {
    my @m = map { message_json() } 1 .. R(4);
    my @parts;
    push @parts, '"messages":[' . join(',', @m) . ']' if @m || chance(0.3);
    push @parts, '"metadata":' . metadata() if chance(0.5);
    return '{' . join(',', @parts) . '}';
}

sub mutate {
    my $b = shift;
    my $k = R(14);
    if ($k == 0) {    # bit flips
        for (1 .. 1 + R(4)) {
            next unless length $b;
            my $i = R(length $b);
            substr($b, $i, 1) = chr(ord(substr($b, $i, 1)) ^ (1 << R(8)));
        }
    } elsif ($k == 1) { $b = substr($b, 0, R(length($b) + 1)) }        # truncate
    elsif ($k == 2) { substr($b, R(length($b) + 1), 0) = rand_bytes(1 + R(8)) }
    elsif ($k == 3) { $b = ('[' x (1 + R(100000))) . ']' x R(3) }     # deep
    elsif ($k == 4) { $b = '{"messages":' . ('[' x (1 + R(5000))) }
    elsif ($k == 5) {                                             # invalid UTF-8
        $b = '{"metadata":{"a":"' . pick("\xff\xfe", "\xc3", "\xed\xa0\x80",
              "\xf4\x90\x80\x80", "\xc0\xaf", "\xe2\x82") . '"}}';
    } elsif ($k == 6) { $b = '{"metadata":{"a\u0000b":"c\u0000"}}' }
    elsif ($k == 7) { $b = '{"metadata":{"a":"1","a":"2"},"metadata":{}}' }
    elsif ($k == 8) {                                       # arrays of {} / []
        my $n = 1 + R(200000);
        $b = '{"x":[' . join(',', (pick('{}', '[]')) x $n) . ']}';
    } elsif ($k == 9) {                                         # huge string
        $b = '{"messages":[{"role":"user","content":"' . ('x' x R(400000)) . '"}]}';
    } elsif ($k == 10) {    # wrong types, limits, numbers
        $b = pick('{"messages":{}}', '{"metadata":[]}', '{"metadata":null}',
                  '{"messages":[{"role":"user"}]}', '1e999999', '-0', 'null',
                  '{"metadata":{"' . ('k' x 65) . '":"v"}}',
                  '{"metadata":{' . join(',', map { qq("k$_":"v") } 1 .. 17) . '}}',
                  '{"messages":[' . join(',', (message_json()) x 33) . ']}',
                  '{"tool_resources":{"code_interpreter":{"file_ids":[' . ('"f",' x 30) . '"f"]}}}',
                  '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}',
                  '"\ud800"', '{"a":"\udc00\ud800"}', '', ' ', "\x00",
                  '{"metadata":{"a":' . ('9' x 5000) . '}}');
    } elsif ($k == 11) { $b .= rand_bytes(R(10)) }             # trailing junk
    elsif ($k == 12) { $b = "\xef\xbb\xbf" . $b }               # BOM
    else { $b = rand_bytes(R(2000)) }
    return $b;
}

# ------------------------------------------------------------ scenarios

my @threads;    # [key, thread id] known to exist
my @msgs;       # [key, thread id, message id]

sub id_of { $_[0] && $_[0][2] =~ /"id"\s*:\s*"([a-z]+_[A-Za-z0-9]+)"/ ? $1 : undef }

sub valid_flow {
    my $k = key();
    my $a = exchange(request(method => 'POST', path => "$P/threads",
                             body => thread_json(), key => $k));
    my $t = id_of($a) or return;
    push @threads, [$k, $t];
    shift @threads while @threads > 200;
    exchange(request(path => "$P/threads/$t", key => $k));
    exchange(request(method => 'POST', path => "$P/threads/$t", key => $k,
                     body => '{"metadata":' . metadata() . '}'));
    my $m = id_of(exchange(request(method => 'POST',
        path => "$P/threads/$t/messages", key => $k, body => message_json())));
    if ($m) {
        push @msgs, [$k, $t, $m];
        shift @msgs while @msgs > 200;
        exchange(request(path => "$P/threads/$t/messages/$m", key => $k));
        exchange(request(method => 'POST', path => "$P/threads/$t/messages/$m",
                         key => $k, body => '{"metadata":' . metadata() . '}'));
    }
    exchange(request(path => "$P/threads/$t/messages?limit=" . (1 + R(100))
                     . pick('', '&order=asc', '&order=desc'), key => $k));
    exchange(request(path => "$P/threads?limit=" . (1 + R(20)), key => $k));
    if (chance(0.3)) {
        exchange(request(method => 'DELETE', path => "$P/threads/$t/messages/$m",
                         key => $k)) if $m;
        exchange(request(method => 'DELETE', path => "$P/threads/$t", key => $k));
    }
}

sub some_thread {
    return @threads ? @{ pick(@threads) } : (key(), 'thread_' . rand_str(24) =~ s/ /x/gr);
}

sub mutated_body {
    my ($k, $t) = some_thread();
    my $path = pick("$P/threads", "$P/threads/$t", "$P/threads/$t/messages");
    my $body = mutate(chance(0.5) ? thread_json() : message_json());
    exchange(request(method => 'POST', path => $path, body => $body, key => $k),
             timeout => 60);
}

sub bomb {
    # the big ones: one at a time across all clients
    open my $lk, '>', $bomb_lock or return;
    flock($lk, LOCK_EX | LOCK_NB) or return mutated_body();
    my $mb = 1 + R($opt{'bomb-mb'});
    my $unit = pick('{},', '[],', '{"a":[]},', '"",');
    my $n = int($mb * 1024 * 1024 / length $unit) - 2;
    my $body = '{"x":[' . ($unit x $n);
    chop $body;
    $body .= ']}';
    count('bombs sent');
    exchange(request(method => 'POST', path => "$P/threads", body => $body),
             timeout => 120);
    close $lk;
}

sub bad_length {
    my $body = thread_json();
    my $k = R(8);
    my @h;
    my $req;
    if ($k == 0) {    # longer than sent: the server waits; we reset
        my $s = connect_srv() or return;
        count('requests sent');
        send_all($s, request(method => 'POST', path => "$P/threads", no_length => 1,
            headers => ['Content-Type: application/json',
                        'Content-Length: ' . (length($body) + 1 + R(1000))],
            body => $body));
        sleep rand 0.5;
        read_answers($s, 1, 0.2, 0, 1);
        reset_close($s);
        return;
    }
    if ($k == 1) { @h = ('Content-Length: ' . (length($body) - 1 - R(length $body || 1))) }
    elsif ($k == 2) { @h = ('Content-Length: -1') }
    elsif ($k == 3) { @h = ('Content-Length: 12abc') }
    elsif ($k == 4) { @h = ('Content-Length: 5', 'Content-Length: 6') }
    elsif ($k == 5) { @h = ('Content-Length: ' . length($body), 'Transfer-Encoding: chunked') }
    elsif ($k == 6) { @h = ('Content-Length: 99999999999999999999999') }
    else { @h = ('Content-Length: 40000000') }
    exchange(request(method => 'POST', path => "$P/threads", no_length => 1,
                     headers => ['Content-Type: application/json', @h],
                     body => $body), timeout => ($k == 7 ? 2 : 10), cut => $k == 7);
}

sub chunked {
    my $body = chance(0.5) ? thread_json() : mutate(thread_json());
    my $k = R(9);
    my $enc = '';
    if ($k <= 2) {    # valid, in random pieces
        my $b = $body;
        while (length $b) {
            my $p = substr($b, 0, 1 + R(50), '');
            $enc .= sprintf("%x", length $p) . (chance(0.1) ? ';ext=1' : '')
                  . "\r\n$p\r\n";
        }
        $enc .= "0\r\n\r\n";
    } elsif ($k == 3) { $enc = "ffffffffffffffffffff\r\n$body\r\n0\r\n\r\n" }
    elsif ($k == 4) { $enc = "-5\r\n$body\r\n0\r\n\r\n" }
    elsif ($k == 5) { $enc = sprintf("%x", length $body) . "\r\n${body}0\r\n\r\n" }
    elsif ($k == 6) { $enc = "zz\r\n$body\r\n0\r\n\r\n" }
    elsif ($k == 7) { $enc = sprintf("%x\r\n%s", length($body) + 100, $body) }    # short
    else { $enc = "7fffffffffffffff\r\n" . substr($body, 0, 10) }
    my $req = request(method => 'POST', path => "$P/threads", no_length => 1,
                      headers => ['Content-Type: application/json',
                                  'Transfer-Encoding: chunked'],
                      body => $enc);
    if ($k >= 7) {    # incomplete: give up and reset
        my $s = connect_srv() or return;
        count('requests sent');
        send_all($s, $req);
        read_answers($s, 1, 0.3 + rand, 0, 1);
        reset_close($s);
        return;
    }
    exchange($req, timeout => 10);
}

sub odd_headers {
    my $k = R(10);
    my @h;
    my %r = (path => "$P/threads");
    if ($k == 0) { @h = ('X-Big: ' . ('a' x (1000 + R(70000)))) }
    elsif ($k == 1) { @h = map { "X-H$_: " . rand_str(20) } 1 .. (10 + R(3000)) }
    elsif ($k == 2) { $r{no_auth} = 1; @h = ('Authorization: ' . pick('Bearer', 'Bearer ',
        'Bearer  a b', 'Basic eA==', "Bearer \x01\x02", 'Bearer ' . ('k' x 9000),
        'bearer lower')) }
    elsif ($k == 3) { @h = ("X-Nul: a\x00b") }
    elsif ($k == 4) { @h = ("X-Fold: a", " folded") }
    elsif ($k == 5) { @h = ('Host: a', 'Host: b') }
    elsif ($k == 6) { @h = ('Content-Type: text/html; charset=' . rand_str(R(300))) }
    elsif ($k == 7) { @h = ("Bad Header Name: x", ": empty") }
    elsif ($k == 8) { @h = ('Expect: 100-continue') }
    else { @h = ('Transfer-Encoding: gzip, chunked') }
    my $body = chance(0.5) ? thread_json() : undef;
    exchange(request(%r, method => $body ? 'POST' : 'GET', headers => \@h,
                     body => $body), timeout => 10);
}

sub odd_request_line {
    my ($k, $t) = some_thread();
    my $line = pick(
        "GET $P//threads HTTP/1.1", "GET $P/threads/%2F HTTP/1.1",
        "GET $P/threads/../threads HTTP/1.1", "GET $P/x/threads HTTP/1.1",
        "GET $P/threads/$t%2Fmessages HTTP/1.1",
        "GET $P/threads/$t/messages/%00 HTTP/1.1",
        "GET $P/threads/" . ('t' x (100 + R(20000))) . " HTTP/1.1",
        "GET $P/threads/%zz HTTP/1.1", "GET $P/threads/\xff\xfe HTTP/1.1",
        "GET $P/threads/thread_%41%42 HTTP/1.1",
        "GET /%2e%2e/v1/threads HTTP/1.1", "GET $P/threads/./$t HTTP/1.1",
        "PUT $P/threads HTTP/1.1", "PATCH $P/threads/$t HTTP/1.1",
        "HEAD $P/threads HTTP/1.1", "OPTIONS $P/threads HTTP/1.1",
        "DELETE $P/threads HTTP/1.1", "FOO $P/threads HTTP/1.1",
        "GET $P/threads HTTP/1.0", "GET $P/threads", "GET $P/threads HTTP/2.0",
        "GET $P/threads HTTP/1.1 extra", "\x16\x03\x01\x02\x00\x01",
        "GET http://localhost$P/threads HTTP/1.1",
        "GET $P/threads/$t/messages/msg_x/y HTTP/1.1",
        "DELETE $P/threads/$t/messages HTTP/1.1",
        "GET $P/threads/" . ('%' x R(50)) . " HTTP/1.1");
    my $head = $line =~ /^HEAD/;
    $last_path = (split / /, $line)[1] // '';
    exchange("$line\r\nHost: localhost\r\nAuthorization: Bearer $k\r\n\r\n",
             timeout => 10, head_only => $head);
}

sub odd_query {
    my ($k, $t) = some_thread();
    my $base = pick("$P/threads", "$P/threads/$t/messages");
    my $q = pick('limit=-1', 'limit=0', 'limit=101', 'limit=1e9', 'limit=abc',
                 'limit=', 'limit=1&limit=2', 'order=sideways', 'order=',
                 'after=thread_nope', 'before=msg_%00', 'after=' . ('a' x 5000),
                 'after=%zz', 'run_id=x', '%', '&&&', '=x', 'limit=%31%30',
                 join('&', map { "metadata[k$_]=v$_" } 1 .. (1 + R(3000))),
                 'metadata[' . ('[' x R(100)) . ']=x',
                 'metadata[a]=' . ('%ff' x 100), 'metadata=x',
                 'metadata[a]=1&metadata[a]=2',
                 join('&', map { "x$_=" . rand_str(5) } 1 .. R(5000)));
    exchange(request(path => "$base?$q", key => $k), timeout => 15);
}

sub reset_mid {
    my ($k, $t) = some_thread();
    my $s = connect_srv() or return;
    count('requests sent');
    my $req = pick(
        request(method => 'POST', path => "$P/threads", body => thread_json(), key => $k),
        request(path => "$P/threads/$t", key => $k),
        request(path => "$P/threads?limit=100", key => $k),
        request(path => "$P/threads/$t/messages?limit=100", key => $k),
        request(method => 'POST', path => "$P/threads/$t/messages",
                body => message_json(), key => $k));
    my $k2 = R(4);
    if ($k2 == 0) {    # mid-request
        send_all($s, substr($req, 0, R(length $req)));
    } elsif ($k2 == 1) {    # right after the request: the answer is pending
        send_all($s, $req);
    } elsif ($k2 == 2) {    # after a little of the wait
        send_all($s, $req);
        sleep rand 0.02;
    } else {    # mid-response: read a few bytes first
        send_all($s, $req);
        my $sel = IO::Select->new($s);
        if ($sel->can_read(5)) { my $x; sysread($s, $x, 1 + R(50)) }
    }
    reset_close($s);
}

sub slow_client {
    my ($k, $t) = some_thread();
    my $req = pick(
        request(method => 'POST', path => "$P/threads", body => thread_json(), key => $k),
        request(path => "$P/threads/$t/messages", key => $k));
    if (chance(0.3)) {    # slow, then gone
        my $s = connect_srv() or return;
        count('requests sent');
        send_slow($s, substr($req, 0, R(length $req)), rand 1.5);
        chance(0.5) ? reset_close($s) : close($s);
        return;
    }
    exchange($req, slow => rand 2, timeout => 20);
}

sub pipelined {
    my ($k, $t) = some_thread();
    my $n = 2 + R(12);
    my @r = map {
        pick(request(path => "$P/threads/$t", key => $k),
             request(path => "$P/threads?limit=5", key => $k),
             request(method => 'POST', path => "$P/threads", body => thread_json(), key => $k),
             request(method => 'POST', path => "$P/threads", body => mutate(thread_json()), key => $k),
             request(path => "$P/threads/nope", key => $k))
    } 1 .. $n;
    my $s = connect_srv() or return;
    count('requests sent', $n);
    count('pipelines');
    send_all($s, join '', @r) or do { close $s; return };
    my @a = read_answers($s, $n, 20);
    chance(0.3) ? reset_close($s) : close($s);
}

my @mix = (
    [\&valid_flow, 20], [\&mutated_body, 20], [\&bad_length, 6],
    [\&chunked, 8], [\&odd_headers, 6], [\&odd_request_line, 8],
    [\&odd_query, 8], [\&reset_mid, 12], [\&slow_client, 4],
    [\&pipelined, 6], [\&bomb, 0.15],
);
my $weights = 0;
$weights += $_->[1] for @mix;

sub one_scenario {
    my $x = rand $weights;
    for my $m (@mix) {
        return $m->[0]->() if ($x -= $m->[1]) < 0;
    }
    $mix[0][0]->();
}

# ----------------------------------------------------------------- main

$SIG{PIPE} = 'IGNORE';
my @kids;
my $per_client = $opt{'max-requests'} ? int($opt{'max-requests'} / $opt{clients}) + 1 : 0;
for my $c (1 .. $opt{clients}) {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        srand($opt{seed} + $c);
        while (time() < $deadline) {
            last if $per_client && ($st{'requests sent'} // 0) >= $per_client;
            eval { one_scenario(); 1 } or count('client errors');
        }
        open my $f, '>', "$opt{'stats-dir'}/client.$c" or _exit(1);
        print $f "$_\t$st{$_}\n" for sort keys %st;
        close $f;
        _exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;

my %tot;
for my $c (1 .. $opt{clients}) {
    open my $f, '<', "$opt{'stats-dir'}/client.$c" or next;
    while (<$f>) { chomp; my ($k, $v) = split /\t/; $tot{$k} += $v }
    unlink "$opt{'stats-dir'}/client.$c";
}
unlink $bomb_lock;
rmdir $opt{'stats-dir'};

printf "hostile-client: %d clients, %ds, seed %d\n", $opt{clients},
       $opt{seconds}, $opt{seed};
for my $k (sort { ($a =~ /^status/) <=> ($b =~ /^status/) || $a cmp $b } keys %tot) {
    printf "  %-36s %d\n", $k, $tot{$k};
}
exit 0;
