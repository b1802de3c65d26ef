/*
 * Object ids from the kernel's CSPRNG.  Plain C, no nginx types.
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


int
thr_id_make(char *dst, const char *prefix)
{
    unsigned char  buf[32];
    size_t         plen, n, have, i;
    ssize_t        r;

    plen = strlen(prefix);
    memcpy(dst, prefix, plen);
    dst += plen;

    n = 0;
    have = 0;
    i = 0;

    while (n < THR_ID_CHARS) {

        if (i == have) {
            r = getrandom(buf, sizeof(buf), 0);

            if (r < 0) {
                if (errno == EINTR) {
                    continue;
                }

                return -1;
            }

            /* a short read is fine: use what came and ask again */
            have = (size_t) r;
            i = 0;
            continue;
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
