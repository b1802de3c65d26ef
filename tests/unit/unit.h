/*
 * The few helpers the unit test programs share: pass/fail counting and
 * string builders.  Included by each test_*.c; static on purpose.
 */

#ifndef THREADS_UNIT_H_INCLUDED_
#define THREADS_UNIT_H_INCLUDED_

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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

static void
check_str(int line, const char *what, const char *got, const char *want)
{
    int  ok;

    ok = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;

    if (ok) {
        passed++;
        return;
    }

    failed++;
    printf("FAIL line %d: %s\n  got:  %.300s\n  want: %.300s\n", line, what,
           got ? got : "(null)", want ? want : "(null)");
}

static char *
fmt(const char *f, ...)
{
    char     *s;
    va_list   args;

    va_start(args, f);

    if (vasprintf(&s, f, args) < 0) {
        abort();
    }

    va_end(args);

    return s;
}

/* unit repeated n times */

static char *
rep(const char *unit, size_t n)
{
    char    *s;
    size_t   len, i;

    len = strlen(unit);
    s = malloc(len * n + 1);

    if (s == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        memcpy(s + i * len, unit, len);
    }

    s[len * n] = '\0';

    return s;
}

#define CHECK(cond)  check((cond) != 0, __LINE__, #cond)


#endif /* THREADS_UNIT_H_INCLUDED_ */
