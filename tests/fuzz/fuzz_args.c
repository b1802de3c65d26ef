/*
 * libFuzzer harness for ngx_http_threads_args.c: the input is a list query
 * string, parsed for both kinds.  Beyond the sanitizers it checks the
 * contract: on success every value is in range and every string is UTF-8
 * (as jansson judges it), nothing is set on failure, every error renders;
 * the parameters both kinds share come out the same; and the result,
 * encoded again, parses back to itself.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_threads_args.h"


static void
must(int ok)
{
    if (!ok) {
        abort();
    }
}


static int
same(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}


/* NULL, or a UTF-8 string of min..max code points */

static void
check_string(const char *s, size_t min, size_t max)
{
    size_t   i, n;
    json_t  *j;

    if (s == NULL) {
        return;
    }

    j = json_string(s);
    must(j != NULL);
    json_decref(j);

    n = 0;

    for (i = 0; s[i] != '\0'; i++) {
        n += (((unsigned char) s[i] & 0xc0) != 0x80);
    }

    must(n >= min && n <= max);
}


static void
check_error(const thr_error_t *err)
{
    char    *s;
    json_t  *j, *e;

    must(err->status == 400);
    must(strcmp(err->type, "invalid_request_error") == 0);
    must(err->code != NULL);

    s = thr_error_json(err);
    must(s != NULL);

    j = json_loads(s, 0, NULL);
    e = json_object_get(j, "error");
    must(json_object_size(e) == 4
         && json_is_string(json_object_get(e, "message")));
    json_decref(j);
    free(s);
}


/* s with every byte but the unreserved ones as %XX */

static size_t
enc(char *dst, const char *s)
{
    size_t       n;
    const char  *p;

    n = 0;

    for (p = s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL)
        {
            dst[n++] = *p;

        } else {
            n += (size_t) sprintf(dst + n, "%%%02X", (unsigned char) *p);
        }
    }

    dst[n] = '\0';

    return n;
}


/* "&name=value", name as it is, value encoded */

static size_t
put(char *dst, const char *name, const char *value)
{
    size_t  n;

    n = (size_t) sprintf(dst, "&%s=", name);

    return n + enc(dst + n, value);
}


static void
round_trip(const thr_list_args_t *a, int kind)
{
    int               rc;
    char             *q, *name;
    size_t            n, size;
    thr_error_t       err;
    thr_list_args_t   b;

    size = 64;
    size += a->after ? strlen(a->after) * 3 + 16 : 0;
    size += a->before ? strlen(a->before) * 3 + 16 : 0;
    size += a->run_id ? strlen(a->run_id) * 3 + 16 : 0;
    size += a->meta_key ? strlen(a->meta_key) * 3 + 32 : 0;
    size += a->meta_value ? strlen(a->meta_value) * 3 : 0;

    q = malloc(size);
    must(q != NULL);

    n = (size_t) sprintf(q, "limit=%u&order=%s", a->limit,
                         a->desc ? "desc" : "asc");

    if (a->after) {
        n += put(q + n, "after", a->after);
    }

    if (a->before) {
        n += put(q + n, "before", a->before);
    }

    if (a->run_id) {
        n += put(q + n, "run_id", a->run_id);
    }

    if (a->meta_key) {
        /* the brackets escaped too, as SDKs send them */
        name = malloc(strlen(a->meta_key) * 3 + 16);
        must(name != NULL);
        strcpy(name, "metadata%5B");
        strcpy(name + 11 + enc(name + 11, a->meta_key), "%5D");

        n += put(q + n, name, a->meta_value);
        free(name);
    }

    must(n < size);

    rc = thr_list_args_parse(q, n, kind, &b, &err);
    must(rc == THR_OK);
    must(b.limit == a->limit && b.desc == a->desc);
    must(same(b.after, a->after) && same(b.before, a->before)
         && same(b.run_id, a->run_id) && same(b.meta_key, a->meta_key)
         && same(b.meta_value, a->meta_value));

    thr_list_args_free(&b);
    free(q);
}


static int
parse(const uint8_t *data, size_t size, int kind, thr_list_args_t *a)
{
    int          rc;
    thr_error_t  err;

    rc = thr_list_args_parse((const char *) data, size, kind, a, &err);

    /* nothing fails to allocate here */
    must(rc == THR_OK || rc == THR_INVALID);

    if (rc == THR_INVALID) {
        must(a->after == NULL && a->before == NULL && a->run_id == NULL
             && a->meta_key == NULL && a->meta_value == NULL);
        must(a->limit == THR_LIST_LIMIT_DEFAULT && a->desc == 1);
        check_error(&err);
        return rc;
    }

    must(a->limit >= 1 && a->limit <= THR_LIST_LIMIT_MAX);
    must(a->desc == 0 || a->desc == 1);

    check_string(a->after, 1, SIZE_MAX);
    check_string(a->before, 1, SIZE_MAX);
    check_string(a->run_id, 1, SIZE_MAX);
    check_string(a->meta_key, 1, THR_MAX_METADATA_KEY);
    check_string(a->meta_value, 0, THR_MAX_METADATA_VALUE);

    must(kind == THR_LIST_MESSAGES || a->run_id == NULL);
    must(kind == THR_LIST_THREADS
         || (a->meta_key == NULL && a->meta_value == NULL));
    must((a->meta_key == NULL) == (a->meta_value == NULL));

    round_trip(a, kind);

    return rc;
}


int LLVMFuzzerInitialize(int *argc, char ***argv);


/* the allocator jansson uses here, before any of it is used */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    thr_json_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rm, rt;
    thr_list_args_t   m, t;

    rm = parse(data, size, THR_LIST_MESSAGES, &m);
    rt = parse(data, size, THR_LIST_THREADS, &t);

    /* what both kinds take is read the same way */
    if (rm == THR_OK && rt == THR_OK) {
        must(m.limit == t.limit && m.desc == t.desc);
        must(same(m.after, t.after) && same(m.before, t.before));
    }

    thr_list_args_free(&m);
    thr_list_args_free(&t);

    return 0;
}
