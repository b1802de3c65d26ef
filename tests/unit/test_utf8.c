/*
 * Unit tests for ngx_http_threads_utf8.c: the decoder against a reference
 * that decodes the code point (every lead and second byte, with third and
 * fourth bytes around every boundary), the fast character count against
 * a byte at a time at every length and alignment, and the trim.
 */

#define _GNU_SOURCE              /* vasprintf */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ngx_http_threads_utf8.h"


/* The definition: decode, then refuse overlong, surrogate, past 10FFFF. */

static size_t
ref_seq(const unsigned char *p, size_t left)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (left == 0) {
        return 0;
    }

    if (p[0] < 0x80) {
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
        min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
        min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (left < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = cp << 6 | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static size_t
ref_chars(const char *s, size_t len)
{
    size_t  i, n;

    for (i = 0, n = 0; i < len; i++) {
        n += (((unsigned char) s[i] & 0xc0) != 0x80);
    }

    return n;
}


static void
test_seq(void)
{
    size_t          a, b, c, d, left, bad;
    unsigned char   p[4];

    /* bytes on both sides of every range boundary, and 0x00, 0xff */
    static const unsigned char  edge[] = {
        0x00, 0x41, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
        0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xf4, 0xf5, 0xff
    };

    bad = 0;

    for (a = 0; a < 256; a++) {
        for (b = 0; b < 256; b++) {
            for (c = 0; c < sizeof(edge); c++) {
                for (d = 0; d < sizeof(edge); d++) {
                    p[0] = (unsigned char) a;
                    p[1] = (unsigned char) b;
                    p[2] = edge[c];
                    p[3] = edge[d];

                    for (left = 1; left <= 4; left++) {
                        if (thr_utf8_seq(p, left) != ref_seq(p, left)) {
                            if (bad++ < 5) {
                                printf("FAIL %02zx %02zx %02x %02x left %zu\n",
                                       a, b, p[2], p[3], left);
                            }
                        }
                    }
                }
            }
        }
    }

    check(bad == 0, __LINE__, "thr_utf8_seq() agrees with the reference");

    CHECK(thr_utf8_seq((const unsigned char *) "", 0) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "a", 1) == 1);
    CHECK(thr_utf8_seq((const unsigned char *) "\xc3\xa9", 2) == 2);
    CHECK(thr_utf8_seq((const unsigned char *) "\xe2\x82\xac", 3) == 3);
    CHECK(thr_utf8_seq((const unsigned char *) "\xf0\x9f\x98\x80", 4) == 4);
    CHECK(thr_utf8_seq((const unsigned char *) "\xf4\x8f\xbf\xbf", 4) == 4);

    /* overlong, surrogate, past U+10FFFF, cut short */
    CHECK(thr_utf8_seq((const unsigned char *) "\xc0\xaf", 2) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "\xe0\x80\xaf", 3) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "\xf0\x80\x80\xaf", 4) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "\xed\xa0\x80", 3) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "\xf4\x90\x80\x80", 4) == 0);
    CHECK(thr_utf8_seq((const unsigned char *) "\xf0\x9f\x98", 3) == 0);
}


static void
test_chars(void)
{
    char    buf[80];
    size_t  off, len, i, bad;

    static const char  *units[] = {
        "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80", "\xff"
    };

    bad = 0;
    srand(1);

    for (i = 0; i < 2000; i++) {
        size_t  n = 0;

        /* a random mix of characters and stray bytes */
        while (n < 72) {
            const char  *u = units[rand() % 6];
            size_t       k = strlen(u);

            if (n + k > 72) {
                break;
            }

            memcpy(buf + n, u, k);
            n += k;
        }

        for (off = 0; off < 8 && off < n; off++) {
            for (len = 0; off + len <= n; len++) {
                if (thr_utf8_chars(buf + off, len)
                    != ref_chars(buf + off, len))
                {
                    bad++;
                }
            }
        }
    }

    check(bad == 0, __LINE__, "thr_utf8_chars() agrees at every length");

    CHECK(thr_utf8_chars("", 0) == 0);
    CHECK(thr_utf8_chars("abcdefghij", 10) == 10);
    CHECK(thr_utf8_chars("\xf0\x9f\x98\x80\xf0\x9f\x98\x80x", 9) == 3);
}


static void
test_trim(void)
{
    CHECK(thr_utf8_trim("abc", 3) == 3);
    CHECK(thr_utf8_trim("", 0) == 0);
    CHECK(thr_utf8_trim("a\xc3\xa9", 3) == 3);
    CHECK(thr_utf8_trim("a\xc3", 2) == 1);
    CHECK(thr_utf8_trim("a\xf0\x9f\x98\x80", 5) == 5);
    CHECK(thr_utf8_trim("a\xf0\x9f\x98", 4) == 1);
    CHECK(thr_utf8_trim("a\xf0\x9f", 3) == 1);
    CHECK(thr_utf8_trim("a\xf0", 2) == 1);
    CHECK(thr_utf8_trim("\x80\x80\x80\x80\x80", 5) == 5);
}


int
main(void)
{
    test_seq();
    test_chars();
    test_trim();

    (void) fmt;
    (void) rep;
    (void) check_str;

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
