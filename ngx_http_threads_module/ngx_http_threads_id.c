/*
 * Object ids and request ids from the kernel's CSPRNG.  Plain C, no nginx
 * types.
 */

#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <sys/random.h>

#include "ngx_http_threads_id.h"


static const char  thr_id_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#define THR_ID_ALPHABET_LEN  (sizeof(thr_id_alphabet) - 1)

/* 248 = 4 * 62: bytes below it map onto the alphabet evenly */
#define THR_ID_BYTE_LIMIT    (256 / THR_ID_ALPHABET_LEN * THR_ID_ALPHABET_LEN)


/*
 * getrandom(2) bytes, THR_RANDOM_BUF at a time, so that one system call
 * serves dozens of ids and request ids.  Per thread: the validation thread
 * pool draws ids too.  A worker forgets what its parent drew
 * (thr_random_forget at its start), so no two processes hand out the same
 * bytes; each byte is wiped once handed out.
 */
#define THR_RANDOM_BUF  512

static __thread unsigned char  thr_random_buf[THR_RANDOM_BUF];
static __thread size_t         thr_random_pos;
static __thread size_t         thr_random_end;


int
thr_random(unsigned char *dst, size_t n)
{
    size_t   take;
    ssize_t  r;

    while (n > 0) {

        if (thr_random_pos == thr_random_end) {
            r = getrandom(thr_random_buf, sizeof(thr_random_buf), 0);

            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }

                return -1;
            }

            /* a short read is fine: use what came and ask again */
            thr_random_pos = 0;
            thr_random_end = (size_t) r;
            continue;
        }

        take = thr_random_end - thr_random_pos;
        if (take > n) {
            take = n;
        }

        memcpy(dst, thr_random_buf + thr_random_pos, take);
        memset(thr_random_buf + thr_random_pos, 0, take);

        thr_random_pos += take;
        dst += take;
        n -= take;
    }

    return 0;
}


void
thr_random_forget(void)
{
    memset(thr_random_buf, 0, sizeof(thr_random_buf));
    thr_random_pos = 0;
    thr_random_end = 0;
}


int
thr_id_make(char *dst, const char *prefix)
{
    unsigned char  buf[32];
    size_t         plen, n, i;

    plen = strlen(prefix);
    memcpy(dst, prefix, plen);
    dst += plen;

    n = 0;
    i = sizeof(buf);

    while (n < THR_ID_CHARS) {

        if (i == sizeof(buf)) {
            if (thr_random(buf, sizeof(buf)) != 0) {
                return -1;
            }

            i = 0;
        }

        if (buf[i] < THR_ID_BYTE_LIMIT) {
            dst[n++] = thr_id_alphabet[buf[i] % THR_ID_ALPHABET_LEN];
        }

        i++;
    }

    dst[n] = '\0';

    return 0;
}


int
thr_request_id(char *dst)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      buf[THR_REQUEST_ID_CHARS / 2];
    size_t             i;

    if (thr_random(buf, sizeof(buf)) != 0) {
        return -1;
    }

    for (i = 0; i < sizeof(buf); i++) {
        dst[2 * i] = hex[buf[i] >> 4];
        dst[2 * i + 1] = hex[buf[i] & 0xf];
    }

    return 0;
}


int
thr_id_is_valid(const char *s, size_t len, const char *prefix)
{
    size_t  plen, i;
    char    c;

    plen = strlen(prefix);

    if (len != plen + THR_ID_CHARS || memcmp(s, prefix, plen) != 0) {
        return 0;
    }

    /* ASCII ranges on purpose: isalnum(3) depends on the locale */
    for (i = plen; i < len; i++) {
        c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9')))
        {
            return 0;
        }
    }

    return 1;
}


void
thr_id_from_hash(char *dst, const unsigned char *hash)
{
    size_t  n;

    /* a hash is uniform already: the small bias of % 62 is no matter */
    for (n = 0; n < THR_ID_CHARS; n++) {
        dst[n] = thr_id_alphabet[hash[n] % THR_ID_ALPHABET_LEN];
    }
}
