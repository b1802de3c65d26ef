/*
 * Unit tests for ngx_http_threads_owners.c: hits, misses, which entry a
 * full set gives up, the length bounds, and that no key is ever answered
 * with another key's digest.
 */

#define _GNU_SOURCE
#include <stdint.h>

#include "unit.h"
#include "ngx_http_threads_owners.h"


/* the table's set of a value, computed as it does (FNV-1a, folded) */
static unsigned
set_of(const char *v)
{
    uint32_t  h = 2166136261u;

    for (; *v; v++) {
        h ^= (unsigned char) *v;
        h *= 16777619u;
    }

    return (h ^ (h >> 16)) % THR_OWNERS_SETS;
}


/* a digest that names its value: 64 characters, v's repeated */
static void
digest_of(const char *v, char *d)
{
    size_t  i, n = strlen(v);

    for (i = 0; i < THR_OWNERS_DIGEST_LEN; i++) {
        d[i] = n ? v[i % n] : '-';
    }
}


static int
get(const char *v, char *d)
{
    return thr_owners_get((const unsigned char *) v, strlen(v), d);
}


static void
put(const char *v)
{
    char  d[THR_OWNERS_DIGEST_LEN];

    digest_of(v, d);
    thr_owners_put((const unsigned char *) v, strlen(v), d);
}


/* 1 if v is cached with its own digest */
static int
cached(const char *v)
{
    char  got[THR_OWNERS_DIGEST_LEN], want[THR_OWNERS_DIGEST_LEN];

    if (!get(v, got)) {
        return 0;
    }

    digest_of(v, want);
    return memcmp(got, want, sizeof(want)) == 0;
}


static void
test_hit_miss(void)
{
    char  d[THR_OWNERS_DIGEST_LEN + 1];

    thr_owners_forget();
    CHECK(!get("sk-one", d));
    put("sk-one");
    CHECK(get("sk-one", d));
    d[THR_OWNERS_DIGEST_LEN] = '\0';
    check_str(__LINE__, "the digest put", d,
              "sk-onesk-onesk-onesk-onesk-onesk-onesk-onesk-onesk-onesk-one"
              "sk-o");
    CHECK(!get("sk-two", d));
    CHECK(!get("sk-on", d));            /* a prefix is another key */
    CHECK(!get("sk-one ", d));
    CHECK(!get("sk-onf", d));           /* same length, one byte off */
    put("sk-one");                      /* twice: still one entry */
    CHECK(cached("sk-one"));
    thr_owners_forget();
    CHECK(!get("sk-one", d));
}


static void
test_lengths(void)
{
    char  d[THR_OWNERS_DIGEST_LEN], *v;

    thr_owners_forget();
    put("");
    CHECK(!get("", d));

    v = rep("k", THR_OWNERS_VALUE_MAX);
    put(v);
    CHECK(cached(v));                   /* the longest cached */
    free(v);

    v = rep("k", THR_OWNERS_VALUE_MAX + 1);
    put(v);
    CHECK(!get(v, d));                  /* one more is not */
    free(v);
}


/* three keys of one set: the one used least recently goes */
static void
test_eviction(void)
{
    char      *v[THR_OWNERS_WAYS + 1];
    unsigned   set;
    int        n, i;

    set = set_of("key-0");
    v[0] = fmt("key-0");
    n = 1;

    for (i = 1; n <= THR_OWNERS_WAYS && i < 100000; i++) {
        char  *k = fmt("key-%d", i);

        if (set_of(k) == set) {
            v[n++] = k;
        } else {
            free(k);
        }
    }

    CHECK(n == THR_OWNERS_WAYS + 1);
    if (n != THR_OWNERS_WAYS + 1) {
        return;
    }

    thr_owners_forget();
    put(v[0]);
    put(v[1]);
    CHECK(cached(v[0]));                /* v[0] used after v[1] */
    put(v[2]);                          /* takes v[1]'s place */
    CHECK(cached(v[0]));
    CHECK(!cached(v[1]));
    CHECK(cached(v[2]));

    for (i = 0; i < n; i++) {
        free(v[i]);
    }
}


/* many keys: each found right after it is put, none with another's digest */
static void
test_many(void)
{
    char  d[THR_OWNERS_DIGEST_LEN], want[THR_OWNERS_DIGEST_LEN], k[32];
    int   i, hits, wrong, found;

    thr_owners_forget();
    found = 1;

    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "sk-proj-%08d", i);
        put(k);
        found &= cached(k);
    }

    CHECK(found);

    hits = wrong = 0;

    for (i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "sk-proj-%08d", i);
        if (get(k, d)) {
            hits++;
            digest_of(k, want);
            wrong += memcmp(d, want, sizeof(want)) != 0;
        }
    }

    CHECK(wrong == 0);
    CHECK(hits > 0 && hits <= THR_OWNERS_SETS * THR_OWNERS_WAYS);
}


int
main(void)
{
    test_hit_miss();
    test_lengths();
    test_eviction();
    test_many();

    printf("test_owners: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
