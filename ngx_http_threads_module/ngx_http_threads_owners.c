/*
 * Owner digests by raw value, a set-associative table: THR_OWNERS_SETS sets
 * of THR_OWNERS_WAYS entries, the set chosen by an FNV-1a hash of the
 * value, the entry replaced being the one of its set used least recently.
 * A lookup reads one set; memory is fixed (about 84 KiB); entries are
 * compared in constant time and wiped when replaced, so that the table
 * tells nothing of the keys it holds by its timing, nor keeps a key longer
 * than its entry.  Plain C, no nginx types.
 */

#include <stdint.h>
#include <string.h>

#include "ngx_http_threads_owners.h"


typedef struct {
    size_t          len;            /* 0: empty */
    uint64_t        used;           /* the tick of its last use */
    unsigned char   value[THR_OWNERS_VALUE_MAX];
    char            digest[THR_OWNERS_DIGEST_LEN];
} thr_owners_entry_t;


static thr_owners_entry_t  thr_owners[THR_OWNERS_SETS][THR_OWNERS_WAYS];
static uint64_t            thr_owners_tick;


static unsigned
thr_owners_set(const unsigned char *value, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= value[i];
        h *= 16777619u;
    }

    return (h ^ (h >> 16)) % THR_OWNERS_SETS;
}


/* 1 if a and b (len bytes each) are equal, in time that depends on len */
static int
thr_owners_equal(const unsigned char *a, const unsigned char *b, size_t len)
{
    size_t         i;
    unsigned char  d;

    d = 0;

    for (i = 0; i < len; i++) {
        d |= a[i] ^ b[i];
    }

    return d == 0;
}


int
thr_owners_get(const unsigned char *value, size_t len, char *digest)
{
    unsigned             w;
    thr_owners_entry_t  *set;

    if (len == 0 || len > THR_OWNERS_VALUE_MAX) {
        return 0;
    }

    set = thr_owners[thr_owners_set(value, len)];

    for (w = 0; w < THR_OWNERS_WAYS; w++) {
        if (set[w].len == len && thr_owners_equal(set[w].value, value, len)) {
            set[w].used = ++thr_owners_tick;
            memcpy(digest, set[w].digest, THR_OWNERS_DIGEST_LEN);
            return 1;
        }
    }

    return 0;
}


void
thr_owners_put(const unsigned char *value, size_t len, const char *digest)
{
    unsigned             w, victim;
    thr_owners_entry_t  *set, *e;

    if (len == 0 || len > THR_OWNERS_VALUE_MAX) {
        return;
    }

    set = thr_owners[thr_owners_set(value, len)];
    victim = 0;

    for (w = 0; w < THR_OWNERS_WAYS; w++) {
        if (set[w].len == len && thr_owners_equal(set[w].value, value, len)) {
            victim = w;
            break;
        }

        if (set[w].used < set[victim].used) {
            victim = w;
        }
    }

    e = &set[victim];
    explicit_bzero(e, sizeof(thr_owners_entry_t));

    e->len = len;
    e->used = ++thr_owners_tick;
    memcpy(e->value, value, len);
    memcpy(e->digest, digest, THR_OWNERS_DIGEST_LEN);
}


void
thr_owners_forget(void)
{
    explicit_bzero(thr_owners, sizeof(thr_owners));
    thr_owners_tick = 0;
}
