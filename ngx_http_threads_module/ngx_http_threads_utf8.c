/*
 * UTF-8 for the validation code.  See ngx_http_threads_utf8.h.
 */

#include <stdint.h>
#include <string.h>

#include "ngx_http_threads_utf8.h"


#define THR_UTF8_ONES   0x0101010101010101ULL


size_t
thr_utf8_seq(const unsigned char *p, size_t left)
{
    size_t          n, i;
    unsigned char   lo, hi;

    if (left == 0) {
        return 0;
    }

    if (p[0] < 0x80) {
        return 1;
    }

    /* the second byte's range rules out overlong forms, surrogates and
     * code points past U+10FFFF */

    lo = 0x80;
    hi = 0xbf;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        lo = (p[0] == 0xe0) ? 0xa0 : 0x80;
        hi = (p[0] == 0xed) ? 0x9f : 0xbf;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        lo = (p[0] == 0xf0) ? 0x90 : 0x80;
        hi = (p[0] == 0xf4) ? 0x8f : 0xbf;

    } else {
        return 0;
    }

    if (left < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


/*
 * Eight bytes at a time: a continuation byte is 10xxxxxx, bit 7 set and
 * bit 6 clear.  The texts counted reach a megabyte, and a body holds 32 of
 * them.
 */

size_t
thr_utf8_chars(const char *s, size_t len)
{
    size_t    i, cont;
    uint64_t  w, m;

    cont = 0;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        m = (w >> 7) & ~(w >> 6) & THR_UTF8_ONES;
        cont += (size_t) ((m * THR_UTF8_ONES) >> 56);
    }

    for ( /* void */ ; i < len; i++) {
        if (((unsigned char) s[i] & 0xc0) == 0x80) {
            cont++;
        }
    }

    return len - cont;
}


size_t
thr_utf8_trim(const char *s, size_t len)
{
    size_t          i, need;
    unsigned char   c;

    /* the lead byte of the last character is among the last 4 bytes */
    for (i = len; i > 0 && len - i < 4; i--) {
        c = (unsigned char) s[i - 1];

        if ((c & 0xc0) != 0x80) {
            need = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : (c >= 0xc0) ? 2 : 1;
            return (len - (i - 1) < need) ? i - 1 : len;
        }
    }

    /* no lead byte: not UTF-8 anyway, cut anywhere */
    return len;
}
