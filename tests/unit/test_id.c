/*
 * Unit tests for ngx_http_threads_id.c.
 */

#include <stdio.h>
#include <string.h>

#include "ngx_http_threads_id.h"


static int  passed, failed;


static void
check(int ok, int line, const char *what)
{
    if (ok) {
        passed++;
        return;
    }

    failed++;
    printf("FAIL line %d: %s\n", line, what);
}

#define CHECK(cond)  check((cond) != 0, __LINE__, #cond)

#define VALID(s, prefix)  thr_id_is_valid(s, sizeof(s) - 1, prefix)


static void
test_make(void)
{
    char    id[sizeof("thread_") + THR_ID_CHARS];
    char    ids[1000][sizeof("msg_") + THR_ID_CHARS];
    int     seen[256], i, j, distinct, dup;
    size_t  k;

    CHECK(thr_id_make(id, "thread_") == 0);
    CHECK(strlen(id) == 7 + THR_ID_CHARS);
    CHECK(strncmp(id, "thread_", 7) == 0);
    CHECK(thr_id_is_valid(id, strlen(id), "thread_"));
    CHECK(!thr_id_is_valid(id, strlen(id), "msg_"));

    memset(seen, 0, sizeof(seen));

    for (i = 0; i < 1000; i++) {
        CHECK(thr_id_make(ids[i], "msg_") == 0);
        CHECK(thr_id_is_valid(ids[i], strlen(ids[i]), "msg_"));

        for (k = 4; ids[i][k]; k++) {
            seen[(unsigned char) ids[i][k]]++;
        }
    }

    /* 24000 draws: every one of the 62 characters shows, nothing else */
    distinct = 0;

    for (i = 0; i < 256; i++) {
        distinct += (seen[i] != 0);
    }

    CHECK(distinct == 62);
    CHECK(seen['A'] && seen['Z'] && seen['a'] && seen['z'] && seen['0']
          && seen['9']);

    dup = 0;

    for (i = 0; i < 1000; i++) {
        for (j = i + 1; j < 1000; j++) {
            dup += (strcmp(ids[i], ids[j]) == 0);
        }
    }

    CHECK(dup == 0);

    CHECK(thr_id_make(id, "") == 0);
    CHECK(strlen(id) == THR_ID_CHARS);
}


static void
test_is_valid(void)
{
    CHECK(VALID("thread_abcdefghijklmnopqrstuvwx", "thread_"));
    CHECK(VALID("thread_ABCDEFGHIJKLMNOPQRSTUVWX", "thread_"));
    CHECK(VALID("thread_012345678901234567890123", "thread_"));
    CHECK(VALID("msg_abcdefghijklmnopqrstuvwx", "msg_"));

    /* 23 and 25 characters */
    CHECK(!VALID("thread_abcdefghijklmnopqrstuvw", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuvwxy", "thread_"));

    CHECK(!VALID("thread_", "thread_"));
    CHECK(!VALID("", "thread_"));
    CHECK(!VALID("thread", "thread_"));
    CHECK(!VALID("Thread_abcdefghijklmnopqrstuvwx", "thread_"));
    CHECK(!VALID("threadXabcdefghijklmnopqrstuvwx", "thread_"));
    CHECK(!VALID("msg_abcdefghijklmnopqrstuvwx", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuv-x", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuv_x", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuv x", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuv\0x", "thread_"));
    CHECK(!VALID("thread_abcdefghijklmnopqrstuv\xc3", "thread_"));

    /* only len bytes count: a longer buffer is fine */
    CHECK(thr_id_is_valid("thread_abcdefghijklmnopqrstuvwxyz", 31,
                          "thread_"));
}


static void
test_from_hash(void)
{
    unsigned char  hash[32];
    char           a[sizeof("thread_") + THR_ID_CHARS];
    char           b[sizeof("thread_") + THR_ID_CHARS];
    int            i;

    for (i = 0; i < 32; i++) {
        hash[i] = (unsigned char) (i * 37 + 11);
    }

    /* the 24 characters only, after a prefix the caller wrote */
    memcpy(a, "thread_", 7);
    memset(a + 7, '?', THR_ID_CHARS + 1);
    thr_id_from_hash(a + 7, hash);
    CHECK(a[7 + THR_ID_CHARS] == '?');
    a[7 + THR_ID_CHARS] = '\0';
    CHECK(thr_id_is_valid(a, strlen(a), "thread_"));

    /* the same hash, the same id; another hash, another id */
    memcpy(b, a, sizeof(b));
    thr_id_from_hash(b + 7, hash);
    CHECK(strcmp(a, b) == 0);
    hash[0] ^= 1;
    thr_id_from_hash(b + 7, hash);
    CHECK(strcmp(a, b) != 0);

    /* every byte value maps into the alphabet */
    for (i = 0; i < 256; i++) {
        memset(hash, i, sizeof(hash));
        thr_id_from_hash(b + 7, hash);
        CHECK(thr_id_is_valid(b, strlen(b), "thread_"));
    }
}


int
main(void)
{
    test_make();
    test_is_valid();
    test_from_hash();

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
