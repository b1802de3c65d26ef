/*
 * Unit tests for ngx_http_threads_id.c.
 */

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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


static void
test_request_id(void)
{
    char    ids[1000][THR_REQUEST_ID_CHARS + 1];
    int     i, j, dup, ok;
    size_t  k;

    ok = 1;

    for (i = 0; i < 1000; i++) {
        CHECK(thr_request_id(ids[i]) == 0);
        ids[i][THR_REQUEST_ID_CHARS] = '\0';

        for (k = 0; k < THR_REQUEST_ID_CHARS; k++) {
            ok &= (ids[i][k] >= '0' && ids[i][k] <= '9')
                  || (ids[i][k] >= 'a' && ids[i][k] <= 'f');
        }
    }

    CHECK(ok);

    dup = 0;

    for (i = 0; i < 1000; i++) {
        for (j = i + 1; j < 1000; j++) {
            dup += (strcmp(ids[i], ids[j]) == 0);
        }
    }

    CHECK(dup == 0);
}


/* draws across the buffer's end, of every size, never repeat a block */
static void
test_random(void)
{
    unsigned char  a[2000], b[2000], zero[64];
    size_t         n, off;

    memset(zero, 0, sizeof(zero));

    for (off = 0, n = 1; off + n <= sizeof(a); off += n, n = n % 37 + 1) {
        CHECK(thr_random(a + off, n) == 0);
    }

    CHECK(thr_random(b, sizeof(b)) == 0);
    CHECK(memcmp(a, b, 64) != 0);
    CHECK(memcmp(b + 1000, zero, 64) != 0);
    CHECK(memcmp(a + 1000, zero, 64) != 0);
}


/*
 * A child forked with bytes left in the parent's buffer draws the same
 * ones unless it forgets them first: why a worker calls thr_random_forget.
 */
static void
test_forget_after_fork(void)
{
    unsigned char  mine[16], theirs[16];
    int            fd[2], forget, status;
    pid_t          pid;

    for (forget = 0; forget <= 1; forget++) {
        thr_random_forget();
        CHECK(thr_random(mine, 1) == 0);           /* bytes left in buffer */
        CHECK(pipe(fd) == 0);

        pid = fork();
        if (pid == 0) {
            if (forget) {
                thr_random_forget();
            }

            _exit(thr_random(theirs, sizeof(theirs)) != 0
                  || write(fd[1], theirs, sizeof(theirs))
                     != (ssize_t) sizeof(theirs));
        }

        CHECK(pid > 0);
        CHECK(thr_random(mine, sizeof(mine)) == 0);
        CHECK(read(fd[0], theirs, sizeof(theirs)) == (ssize_t) sizeof(theirs));
        CHECK(waitpid(pid, &status, 0) == pid && status == 0);
        close(fd[0]);
        close(fd[1]);

        if (forget) {
            CHECK(memcmp(mine, theirs, sizeof(mine)) != 0);
        } else {
            CHECK(memcmp(mine, theirs, sizeof(mine)) == 0);
        }
    }
}


int
main(void)
{
    test_request_id();
    test_random();
    test_forget_after_fork();
    test_make();
    test_is_valid();
    test_from_hash();

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
