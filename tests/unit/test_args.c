/*
 * Unit tests for ngx_http_threads_args.c: every rule at its limit and one
 * past it, percent-decoding, malformed text, duplicates, unknown
 * parameters, both kinds, and allocation failure at every allocation.
 *
 * Linked with -Wl,--wrap=malloc: __wrap_malloc() below fails on demand.
 */

#define _GNU_SOURCE              /* vasprintf */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "ngx_http_threads_args.h"


#define MSGS     THR_LIST_MESSAGES
#define THREADS  THR_LIST_THREADS

#define LIMIT_TYPE                                                            \
    "Invalid type for 'limit': expected an integer, but got a string "        \
    "instead."
#define LIMIT_MIN                                                             \
    "Invalid 'limit': integer below minimum value. Expected a value >= 1, "   \
    "but got 0 instead."
#define LIMIT_MAX(n)                                                          \
    "Invalid 'limit': integer above maximum value. Expected a value <= 100, " \
    "but got " n " instead."
#define ORDER(v)                                                              \
    "Invalid value: '" v "'. Supported values are: 'asc' and 'desc'."
#define ESCAPE(p)                                                             \
    "Invalid '" p "': the query string is malformed: '%' must be followed "   \
    "by two hexadecimal digits."
#define UTF8(p)                                                               \
    "Invalid '" p "': the query string is malformed: once percent-decoded, "  \
    "it must be valid UTF-8."
#define NUL(p)                                                                \
    "Invalid '" p "': the query string is malformed: it must not contain "    \
    "NUL characters."
#define EMPTY(p)                                                              \
    "Invalid '" p "': expected an ID, but got an empty string instead."
#define SHAPE(p)                                                              \
    "Invalid '" p "': expected a metadata filter of the form "                \
    "'metadata[KEY]=VALUE'."
#define SECOND(p, first)                                                      \
    "Invalid '" p "': only one metadata filter is supported, and '" first     \
    "' was given already."


typedef struct {
    int               rc;
    thr_list_args_t   a;
    thr_error_t       err;
} result_t;


/* what a successful parse must give; NULL strings: absent */
typedef struct {
    unsigned     limit;
    unsigned     desc;
    const char  *after;
    const char  *before;
    const char  *run_id;
    const char  *meta_key;
    const char  *meta_value;
} want_t;


void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);


static long  alloc_countdown = -1;  /* the allocation that fails, or -1 */
static int   alloc_failed;


void *
__wrap_malloc(size_t n)
{
    if (alloc_countdown >= 0 && alloc_countdown-- == 0) {
        alloc_failed = 1;
        return NULL;
    }

    return __real_malloc(n);
}


static void
run(int kind, const char *args, size_t len, result_t *r)
{
    memset(r, 0xa5, sizeof(result_t));
    r->rc = thr_list_args_parse(args, len, kind, &r->a, &r->err);
}


static int
outputs_null(result_t *r)
{
    return r->a.after == NULL && r->a.before == NULL && r->a.run_id == NULL
           && r->a.meta_key == NULL && r->a.meta_value == NULL
           && r->a.limit == THR_LIST_LIMIT_DEFAULT && r->a.desc == 1;
}


static void
good_len(int line, int kind, const char *args, size_t len, const want_t *w)
{
    result_t  r;

    run(kind, args, len, &r);

    if (r.rc != THR_OK) {
        failed++;
        printf("FAIL line %d: rc %d: %s (%s)\n", line, r.rc, r.err.message,
               r.err.param);
        thr_list_args_free(&r.a);
        return;
    }

    check(r.a.limit == w->limit, line, "limit");
    check(r.a.desc == w->desc, line, "desc");
    check_str(line, "after", r.a.after, w->after);
    check_str(line, "before", r.a.before, w->before);
    check_str(line, "run_id", r.a.run_id, w->run_id);
    check_str(line, "meta_key", r.a.meta_key, w->meta_key);
    check_str(line, "meta_value", r.a.meta_value, w->meta_value);

    thr_list_args_free(&r.a);
    check(r.a.after == NULL && r.a.meta_value == NULL, line, "freed");

    /* freeing twice is harmless */
    thr_list_args_free(&r.a);
}

/* GOOD(kind, args, limit, desc, after, before, run_id, key, value) */
#define GOOD(kind, args, ...)                                                 \
    do {                                                                      \
        want_t  w_ = { __VA_ARGS__ };                                         \
        good_len(__LINE__, kind, args, strlen(args), &w_);                    \
    } while (0)

/* the defaults: limit 20, desc, nothing else */
#define DEFAULTS(kind, args)                                                  \
    GOOD(kind, args, 20, 1, NULL, NULL, NULL, NULL, NULL)


/* A query that must fail with 400; message NULL: not compared. */

static void
bad_len(int line, int kind, const char *args, size_t len, const char *code,
    const char *param, const char *message)
{
    char      *text;
    json_t    *j;
    result_t   r;

    run(kind, args, len, &r);

    if (r.rc != THR_INVALID) {
        failed++;
        printf("FAIL line %d: rc %d, want THR_INVALID\n", line, r.rc);
        thr_list_args_free(&r.a);
        return;
    }

    check(outputs_null(&r), line, "outputs are NULL");
    check(r.err.status == 400, line, "status 400");
    check_str(line, "type", r.err.type, "invalid_request_error");
    check_str(line, "code", r.err.code, code);
    check_str(line, "param", r.err.param, param ? param : "");

    if (message != NULL) {
        check_str(line, "message", r.err.message, message);
    }

    /* the envelope always renders and parses back */
    text = thr_error_json(&r.err);
    j = text ? json_loads(text, 0, NULL) : NULL;
    check(j != NULL && json_object_size(json_object_get(j, "error")) == 4,
          line, "error envelope");
    json_decref(j);
    free(text);
}

#define BAD(kind, args, code, param, message)                                 \
    bad_len(__LINE__, kind, args, strlen(args), code, param, message)

/* the same error for both kinds */
#define BAD2(args, code, param, message)                                      \
    do {                                                                      \
        BAD(MSGS, args, code, param, message);                                \
        BAD(THREADS, args, code, param, message);                             \
    } while (0)


static void
test_empty(void)
{
    want_t  w = { 20, 1, NULL, NULL, NULL, NULL, NULL };

    good_len(__LINE__, MSGS, NULL, 0, &w);
    good_len(__LINE__, THREADS, NULL, 0, &w);

    /* a NULL query with a length is still no query */
    good_len(__LINE__, THREADS, NULL, 10, &w);

    /* len rules, not the NUL */
    good_len(__LINE__, MSGS, "limit=0", 0, &w);

    DEFAULTS(MSGS, "");
    DEFAULTS(THREADS, "");
    DEFAULTS(MSGS, "&");
    DEFAULTS(THREADS, "&&&");
}


static void
test_limit(void)
{
    want_t  w = { 5, 1, NULL, NULL, NULL, NULL, NULL };

    GOOD(MSGS, "limit=1", 1, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(THREADS, "limit=100", 100, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "limit=20", 20, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "limit=007", 7, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "limit=%31%30%30", 100, 1, NULL, NULL, NULL, NULL, NULL);

    /* not NUL-terminated: "limit=5" out of "limit=50" */
    good_len(__LINE__, MSGS, "limit=50", 7, &w);

    BAD2("limit=0", "integer_below_min_value", "limit", LIMIT_MIN);
    BAD2("limit=000", "integer_below_min_value", "limit", LIMIT_MIN);
    BAD2("limit=101", "integer_above_max_value", "limit", LIMIT_MAX("101"));
    BAD(MSGS, "limit=0101", "integer_above_max_value", "limit",
        LIMIT_MAX("101"));
    BAD(MSGS, "limit=100000000000", "integer_above_max_value", "limit",
        LIMIT_MAX("100000000000"));

    /* 2^32 + 1 would be 1 in 32 bits: echoed as given, not wrapped */
    BAD(MSGS, "limit=4294967297", "integer_above_max_value", "limit",
        LIMIT_MAX("4294967297"));

    /* INT64_MAX is an integer; one more is not */
    BAD(THREADS, "limit=9223372036854775807", "integer_above_max_value",
        "limit", LIMIT_MAX("9223372036854775807"));
    BAD(THREADS, "limit=0009223372036854775807", "integer_above_max_value",
        "limit", LIMIT_MAX("9223372036854775807"));
    BAD(THREADS, "limit=9223372036854775808", "invalid_type", "limit",
        LIMIT_TYPE);
    BAD(THREADS, "limit=18446744073709551617", "invalid_type", "limit",
        LIMIT_TYPE);
    BAD(MSGS, "limit=99999999999999999999999999999999", "invalid_type",
        "limit", LIMIT_TYPE);

    BAD2("limit=", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=-1", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=-0", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=%2B1", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=+1", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=1+", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=%201", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=abc", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=1a", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=1.0", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=1e2", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=0x10", "invalid_type", "limit", LIMIT_TYPE);
    BAD2("limit=%D9%A1", "invalid_type", "limit", LIMIT_TYPE);
}


static void
test_order(void)
{
    GOOD(MSGS, "order=asc", 20, 0, NULL, NULL, NULL, NULL, NULL);
    GOOD(THREADS, "order=desc", 20, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "order=as%63", 20, 0, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "limit=3&order=asc", 3, 0, NULL, NULL, NULL, NULL, NULL);

    BAD2("order=ASC", "invalid_value", "order", ORDER("ASC"));
    BAD2("order=Desc", "invalid_value", "order", ORDER("Desc"));
    BAD2("order=", "invalid_value", "order", ORDER(""));
    BAD2("order", "invalid_value", "order", ORDER(""));
    BAD2("order=descending", "invalid_value", "order", ORDER("descending"));
    BAD2("order=as", "invalid_value", "order", ORDER("as"));
    BAD2("order=asc+", "invalid_value", "order", ORDER("asc "));
    BAD2("order=%C3%A9", "invalid_value", "order", ORDER("\xc3\xa9"));
    BAD2("order='", "invalid_value", "order", ORDER("'"));

    /* a value with a % in it is text, not a format */
    BAD2("order=%25s%25n", "invalid_value", "order", ORDER("%s%n"));
}


static void
test_cursors(void)
{
    GOOD(MSGS, "after=msg_abc", 20, 1, "msg_abc", NULL, NULL, NULL, NULL);
    GOOD(THREADS, "before=thread_x", 20, 1, NULL, "thread_x", NULL, NULL,
         NULL);
    GOOD(MSGS, "after=a&before=b", 20, 1, "a", "b", NULL, NULL, NULL);
    GOOD(MSGS, "after=msg%5F1", 20, 1, "msg_1", NULL, NULL, NULL, NULL);
    GOOD(THREADS, "after=x", 20, 1, "x", NULL, NULL, NULL, NULL);

    /* no format check here: the caller knows which prefix it wants */
    GOOD(MSGS, "after=%E2%82%AC+x", 20, 1, "\xe2\x82\xac x", NULL, NULL,
         NULL, NULL);
    GOOD(MSGS, "before=a=b", 20, 1, NULL, "a=b", NULL, NULL, NULL);

    BAD2("after=", "invalid_value", "after", EMPTY("after"));
    BAD2("after", "invalid_value", "after", EMPTY("after"));
    BAD2("before=", "invalid_value", "before", EMPTY("before"));
    BAD2("limit=5&before", "invalid_value", "before", EMPTY("before"));
}


static void
test_run_id(void)
{
    GOOD(MSGS, "run_id=run_abc", 20, 1, NULL, NULL, "run_abc", NULL, NULL);
    GOOD(MSGS, "run%5Fid=r", 20, 1, NULL, NULL, "r", NULL, NULL);
    GOOD(MSGS, "limit=2&run_id=r&order=asc", 2, 0, NULL, NULL, "r", NULL,
         NULL);

    BAD(MSGS, "run_id=", "invalid_value", "run_id", EMPTY("run_id"));
    BAD(MSGS, "run_id", "invalid_value", "run_id", EMPTY("run_id"));

    /* threads: an unknown parameter, ignored, empty or not */
    DEFAULTS(THREADS, "run_id=run_abc");
    DEFAULTS(THREADS, "run_id=");
    DEFAULTS(THREADS, "run_id");
}


/* the long error texts are cut at a character, and still render */

static void
run_long_key(const char *q)
{
    char      *text;
    json_t    *j, *e;
    result_t   r;

    run(THREADS, q, strlen(q), &r);

    CHECK(r.rc == THR_INVALID);
    CHECK(outputs_null(&r));
    check_str(__LINE__, "code", r.err.code, "string_above_max_length");
    CHECK(strlen(r.err.param) < sizeof(r.err.param));
    CHECK(strstr(r.err.message, "but got a key with length 1000 instead.")
          != NULL);
    CHECK(strncmp(r.err.param, "metadata[\xe2\x82\xac", 12) == 0);

    /* 9 bytes of "metadata[", then whole 3-byte characters */
    CHECK((strlen(r.err.param) - 9) % 3 == 0);

    text = thr_error_json(&r.err);
    j = text ? json_loads(text, 0, NULL) : NULL;
    e = json_object_get(j, "error");
    CHECK(json_is_string(json_object_get(e, "param")));
    CHECK(json_is_string(json_object_get(e, "message")));
    CHECK(strstr(text, "\\ufffd") == NULL);
    json_decref(j);
    free(text);
}


static void
test_metadata(void)
{
    char  *k, *v, *q, *name, *msg;

    GOOD(THREADS, "metadata[project]=alpha", 20, 1, NULL, NULL, NULL,
         "project", "alpha");
    GOOD(THREADS, "metadata%5Bproject%5D=alpha+beta", 20, 1, NULL, NULL,
         NULL, "project", "alpha beta");
    GOOD(THREADS, "metadata%5bk%5d=v", 20, 1, NULL, NULL, NULL, "k", "v");
    GOOD(THREADS, "metadata[a+b]=%26%3D", 20, 1, NULL, NULL, NULL, "a b",
         "&=");
    GOOD(THREADS, "limit=1&metadata[k]=v&order=asc", 1, 0, NULL, NULL, NULL,
         "k", "v");

    /* an empty value is a value; no '=' is an empty value */
    GOOD(THREADS, "metadata[k]=", 20, 1, NULL, NULL, NULL, "k", "");
    GOOD(THREADS, "metadata[k]", 20, 1, NULL, NULL, NULL, "k", "");

    /* the key runs to the last ']': any stored key can be asked for */
    GOOD(THREADS, "metadata[a]b]=v", 20, 1, NULL, NULL, NULL, "a]b", "v");
    GOOD(THREADS, "metadata[a][b]=v", 20, 1, NULL, NULL, NULL, "a][b", "v");
    GOOD(THREADS, "metadata[[]=v", 20, 1, NULL, NULL, NULL, "[", "v");
    GOOD(THREADS, "metadata[]]=v", 20, 1, NULL, NULL, NULL, "]", "v");

    /* the name ends at the first '=': a key with one needs %3D */
    GOOD(THREADS, "metadata[a%3Db]=c", 20, 1, NULL, NULL, NULL, "a=b", "c");
    BAD(THREADS, "metadata[a=b]=c", "invalid_value", "metadata[a",
        SHAPE("metadata[a"));

    BAD(THREADS, "metadata[]=v", "string_below_min_length", "metadata[]",
        "Invalid 'metadata[]': string too short. Expected a metadata key "
        "with minimum length 1, but got an empty string instead.");
    BAD(THREADS, "metadata[k=v", "invalid_value", "metadata[k",
        SHAPE("metadata[k"));
    BAD(THREADS, "metadata[k]x=v", "invalid_value", "metadata[k]x",
        SHAPE("metadata[k]x"));
    BAD(THREADS, "metadata[k] =v", "invalid_value", "metadata[k] ",
        SHAPE("metadata[k] "));
    BAD(THREADS, "metadata[=v", "invalid_value", "metadata[",
        SHAPE("metadata["));
    BAD(THREADS, "metadata[", "invalid_value", "metadata[",
        SHAPE("metadata["));

    /* not a filter at all: unknown, ignored */
    DEFAULTS(THREADS, "metadata=v");
    DEFAULTS(THREADS, "metadata]=v");
    DEFAULTS(THREADS, "Metadata[k]=v");
    DEFAULTS(THREADS, "metadata.k=v");

    /* messages: no filter, so ignored, however it looks */
    DEFAULTS(MSGS, "metadata[k]=v");
    DEFAULTS(MSGS, "metadata[=v");
    DEFAULTS(MSGS, "metadata[]=v");

    /* keys: 64 characters of 1, 2 and 4 bytes; 65 */
    k = rep("k", 64);
    q = fmt("metadata[%s]=v", k);
    GOOD(THREADS, q, 20, 1, NULL, NULL, NULL, k, "v");
    free(q);
    free(k);

    k = rep("%C3%A9", 64);
    q = fmt("metadata[%s]=v", k);
    free(k);
    k = rep("\xc3\xa9", 64);
    GOOD(THREADS, q, 20, 1, NULL, NULL, NULL, k, "v");
    free(q);
    free(k);

    k = rep("\xf0\x9f\x98\x80", 64);
    q = fmt("metadata[%s]=v", k);
    GOOD(THREADS, q, 20, 1, NULL, NULL, NULL, k, "v");
    free(q);
    free(k);

    k = rep("k", 65);
    q = fmt("metadata[%s]=v", k);
    name = fmt("metadata[%s]", k);
    msg = fmt("Invalid '%s': string too long. Expected a metadata key with "
              "maximum length 64, but got a key with length 65 instead.",
              name);
    BAD(THREADS, q, "string_above_max_length", name, msg);
    free(msg);
    free(name);
    free(q);
    free(k);

    k = rep("\xf0\x9f\x98\x80", 65);
    q = fmt("metadata[%s]=v", k);
    name = fmt("metadata[%s]", k);
    BAD(THREADS, q, "string_above_max_length", name, NULL);
    free(name);
    free(q);
    free(k);

    /* values: 512 characters of 1 and 3 bytes; 513 */
    v = rep("v", 512);
    q = fmt("metadata[k]=%s", v);
    GOOD(THREADS, q, 20, 1, NULL, NULL, NULL, "k", v);
    free(q);
    free(v);

    v = rep("%E2%82%AC", 512);
    q = fmt("metadata[k]=%s", v);
    free(v);
    v = rep("\xe2\x82\xac", 512);
    GOOD(THREADS, q, 20, 1, NULL, NULL, NULL, "k", v);
    free(q);
    free(v);

    v = rep("v", 513);
    q = fmt("metadata[k]=%s", v);
    BAD(THREADS, q, "string_above_max_length", "metadata[k]",
        "Invalid 'metadata[k]': string too long. Expected a string with "
        "maximum length 512, but got a string with length 513 instead.");
    free(q);
    free(v);

    v = rep("\xe2\x82\xac", 513);
    q = fmt("metadata[k]=%s", v);
    BAD(THREADS, q, "string_above_max_length", "metadata[k]", NULL);
    free(q);
    free(v);

    /* a key far past the param's room: cut, still UTF-8 */
    k = rep("\xe2\x82\xac", 1000);
    q = fmt("metadata[%s]=v", k);
    run_long_key(q);
    free(q);
    free(k);
}


static void
test_filters(void)
{
    /* one filter; the same one again is a duplicate: the last wins */
    GOOD(THREADS, "metadata[a]=1&metadata[a]=2", 20, 1, NULL, NULL, NULL,
         "a", "2");
    GOOD(THREADS, "metadata[a]=1&metadata%5Ba%5D=2", 20, 1, NULL, NULL,
         NULL, "a", "2");

    BAD(THREADS, "metadata[a]=1&metadata[b]=2", "invalid_value",
        "metadata[b]", SECOND("metadata[b]", "metadata[a]"));
    BAD(THREADS, "metadata[a]=1&metadata[a]=2&metadata[b]=3",
        "invalid_value", "metadata[b]", SECOND("metadata[b]", "metadata[a]"));

    /* the second one is named, not the third */
    BAD(THREADS, "metadata[a]=1&metadata[b]=2&metadata[c]=3",
        "invalid_value", "metadata[b]", SECOND("metadata[b]", "metadata[a]"));
    BAD(THREADS, "metadata[a]=1&metadata[b]=2&metadata[a]=3",
        "invalid_value", "metadata[b]", SECOND("metadata[b]", "metadata[a]"));

    /* two filters is the first fault, even when one is malformed */
    BAD(THREADS, "metadata[a=1&metadata[b]=2", "invalid_value",
        "metadata[b]", SECOND("metadata[b]", "metadata[a"));
    BAD(THREADS, "metadata[]=1&metadata[b]=2", "invalid_value",
        "metadata[b]", SECOND("metadata[b]", "metadata[]"));

    /* keys differ by case or by a space: two filters */
    BAD(THREADS, "metadata[a]=1&metadata[A]=2", "invalid_value",
        "metadata[A]", NULL);
    BAD(THREADS, "metadata[a]=1&metadata[a+]=2", "invalid_value",
        "metadata[a ]", NULL);
}


static void
test_decode(void)
{
    /* names are decoded too, with hex digits of either case */
    GOOD(MSGS, "li%6Dit=5", 5, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "%6C%69%6d%69%74=5", 5, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "%6c%49%4D%49%54=5", 20, 1, NULL, NULL, NULL, NULL, NULL);

    GOOD(MSGS, "after=a+b", 20, 1, "a b", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=a%2Bb", 20, 1, "a+b", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=a%2bb", 20, 1, "a+b", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%25", 20, 1, "%", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%2541", 20, 1, "%41", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%41%42", 20, 1, "AB", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%26", 20, 1, "&", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=++", 20, 1, "  ", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%e2%82%ac", 20, 1, "\xe2\x82\xac", NULL, NULL, NULL,
         NULL);

    /* raw bytes that are UTF-8 pass as they are */
    GOOD(MSGS, "after=\xc3\xa9", 20, 1, "\xc3\xa9", NULL, NULL, NULL, NULL);

    /* UTF-8 at its edges */
    GOOD(MSGS, "after=%7F", 20, 1, "\x7f", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%C2%80", 20, 1, "\xc2\x80", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%DF%BF", 20, 1, "\xdf\xbf", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=%E0%A0%80", 20, 1, "\xe0\xa0\x80", NULL, NULL, NULL,
         NULL);
    GOOD(MSGS, "after=%ED%9F%BF", 20, 1, "\xed\x9f\xbf", NULL, NULL, NULL,
         NULL);
    GOOD(MSGS, "after=%EE%80%80", 20, 1, "\xee\x80\x80", NULL, NULL, NULL,
         NULL);
    GOOD(MSGS, "after=%EF%BF%BF", 20, 1, "\xef\xbf\xbf", NULL, NULL, NULL,
         NULL);
    GOOD(MSGS, "after=%F0%90%80%80", 20, 1, "\xf0\x90\x80\x80", NULL, NULL,
         NULL, NULL);
    GOOD(MSGS, "after=%F4%8F%BF%BF", 20, 1, "\xf4\x8f\xbf\xbf", NULL, NULL,
         NULL, NULL);
}


static void
test_malformed(void)
{
    want_t  w = { 20, 1, "A", NULL, NULL, NULL, NULL };

    BAD2("after=%", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%4", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=a%", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%4g", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%g4", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%%41", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%+1", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=% 1", "invalid_value", "after", ESCAPE("after"));
    BAD2("limit=%", "invalid_value", "limit", ESCAPE("limit"));
    BAD2("order=%zz", "invalid_value", "order", ESCAPE("order"));
    BAD2("after=%4&limit=5", "invalid_value", "after", ESCAPE("after"));

    /* the escape is cut by len, not by the NUL */
    bad_len(__LINE__, MSGS, "after=%41", 8, "invalid_value", "after",
            ESCAPE("after"));
    bad_len(__LINE__, MSGS, "after=%41", 7, "invalid_value", "after",
            ESCAPE("after"));
    good_len(__LINE__, MSGS, "after=%41&", 9, &w);

    /* in a name: the name as given */
    BAD2("%zz=1", "invalid_value", "%zz", ESCAPE("%zz"));
    BAD2("lim%it=1", "invalid_value", "lim%it", ESCAPE("lim%it"));
    BAD(THREADS, "metadata[%zz]=1", "invalid_value", "metadata[%zz]",
        ESCAPE("metadata[%zz]"));

    /* no name to show */
    BAD2("=%zz", "invalid_value", NULL,
         "The query string is malformed: '%' must be followed by two "
         "hexadecimal digits.");

    /* unknown parameters too: the query string as a whole is refused */
    BAD2("foo=%zz", "invalid_value", "foo", ESCAPE("foo"));
    BAD2("foo=%FF&limit=5", "invalid_value", "foo", UTF8("foo"));

    /* not UTF-8, decoded or raw */
    BAD2("after=%FF", "invalid_value", "after", UTF8("after"));
    BAD2("after=\xff", "invalid_value", "after", UTF8("after"));
    BAD2("after=%80", "invalid_value", "after", UTF8("after"));
    BAD2("after=%C3", "invalid_value", "after", UTF8("after"));
    BAD2("after=%C3a", "invalid_value", "after", UTF8("after"));
    BAD2("after=%E2%82", "invalid_value", "after", UTF8("after"));
    BAD2("after=%C0%AF", "invalid_value", "after", UTF8("after"));
    BAD2("after=%C1%BF", "invalid_value", "after", UTF8("after"));
    BAD2("after=%E0%9F%BF", "invalid_value", "after", UTF8("after"));
    BAD2("after=%F0%8F%BF%BF", "invalid_value", "after", UTF8("after"));
    BAD2("after=%ED%A0%80", "invalid_value", "after", UTF8("after"));
    BAD2("after=%ED%BF%BF", "invalid_value", "after", UTF8("after"));
    BAD2("after=%ED%A0%BD%ED%B8%80", "invalid_value", "after",
         UTF8("after"));
    BAD2("after=%F4%90%80%80", "invalid_value", "after", UTF8("after"));
    BAD2("after=%F5%80%80%80", "invalid_value", "after", UTF8("after"));
    BAD2("after=%F8%88%80%80%80", "invalid_value", "after", UTF8("after"));
    BAD2("after=%FE", "invalid_value", "after", UTF8("after"));
    BAD2("%FF=1", "invalid_value", "%FF", UTF8("%FF"));
    BAD(THREADS, "metadata[k]=%C3", "invalid_value", "metadata[k]",
        UTF8("metadata[k]"));

    /* a name that is raw bytes, not UTF-8: shown as given */
    bad_len(__LINE__, MSGS, "\xff=1", 3, "invalid_value", "\xff",
            UTF8("\xff"));

    /* NUL, decoded or raw */
    BAD2("after=%00", "invalid_value", "after", NUL("after"));
    BAD2("after=a%00b", "invalid_value", "after", NUL("after"));
    BAD2("limit=5%00", "invalid_value", "limit", NUL("limit"));
    bad_len(__LINE__, MSGS, "after=a\0b", 9, "invalid_value", "after",
            NUL("after"));
    bad_len(__LINE__, THREADS, "limit=5&after=\0", 15, "invalid_value",
            "after", NUL("after"));
    BAD2("li%00mit=5", "invalid_value", "li%00mit", NUL("li%00mit"));

    /* a raw NUL in a name ends the name shown */
    bad_len(__LINE__, MSGS, "li\0mit=5", 8, "invalid_value", "li",
            NUL("li"));
    bad_len(__LINE__, MSGS, "\0=5", 3, "invalid_value", NULL,
            "The query string is malformed: it must not contain NUL "
            "characters.");

    /* the first fault in the query string is the one reported */
    BAD2("after=%FF&before=%zz", "invalid_value", "after", UTF8("after"));
    BAD2("before=%zz&after=%FF", "invalid_value", "before",
         ESCAPE("before"));
    BAD2("after=%zz%FF", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%FF%zz", "invalid_value", "after", ESCAPE("after"));
    BAD2("after=%00%FF", "invalid_value", "after", NUL("after"));
    BAD2("after=%FF%00", "invalid_value", "after", UTF8("after"));

    /* malformed text beats a bad value anywhere */
    BAD2("limit=0&after=%", "invalid_value", "after", ESCAPE("after"));
}


static void
test_duplicates(void)
{
    GOOD(MSGS, "limit=0&limit=5", 5, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "limit=abc&limit=5", 5, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "order=asc&order=desc", 20, 1, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "order=x&order=asc", 20, 0, NULL, NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=a&after=b", 20, 1, "b", NULL, NULL, NULL, NULL);
    GOOD(MSGS, "after=&after=b", 20, 1, "b", NULL, NULL, NULL, NULL);
    GOOD(THREADS, "before=a&before=b", 20, 1, NULL, "b", NULL, NULL, NULL);
    GOOD(MSGS, "run_id=a&run_id=b", 20, 1, NULL, NULL, "b", NULL, NULL);

    BAD2("limit=5&limit=0", "integer_below_min_value", "limit", LIMIT_MIN);
    BAD2("order=asc&order=up", "invalid_value", "order", ORDER("up"));
    BAD2("after=b&after=", "invalid_value", "after", EMPTY("after"));
    BAD(MSGS, "run_id=a&run_id", "invalid_value", "run_id",
        EMPTY("run_id"));
}


static void
test_precedence(void)
{
    /* values are checked in a fixed order, wherever they stand */
    BAD2("order=x&limit=0", "integer_below_min_value", "limit", LIMIT_MIN);
    BAD2("after=&order=x", "invalid_value", "order", ORDER("x"));
    BAD2("before=&after=", "invalid_value", "after", EMPTY("after"));
    BAD(MSGS, "run_id=&before=", "invalid_value", "before",
        EMPTY("before"));
    BAD(THREADS, "metadata[a]=1&metadata[b]=2&limit=abc", "invalid_type",
        "limit", LIMIT_TYPE);
    BAD(THREADS, "metadata[]=1&after=", "invalid_value", "after",
        EMPTY("after"));
}


static void
test_unknown(void)
{
    DEFAULTS(MSGS, "foo=bar");
    DEFAULTS(THREADS, "foo");
    DEFAULTS(MSGS, "=");
    DEFAULTS(MSGS, "==");
    DEFAULTS(MSGS, "=5");
    DEFAULTS(MSGS, "stream=true&api-version=2&x[y]=z");

    /* names are exact: case and spaces count */
    DEFAULTS(MSGS, "LIMIT=0");
    DEFAULTS(MSGS, "Limit=0");
    DEFAULTS(MSGS, "limit+=0");
    DEFAULTS(MSGS, "limit%20=0");
    DEFAULTS(MSGS, "+limit=0");
    DEFAULTS(MSGS, "limits=0");
    DEFAULTS(MSGS, "order[]=x");

    GOOD(MSGS, "foo=1&limit=7&&bar&=x&", 7, 1, NULL, NULL, NULL, NULL,
         NULL);
    GOOD(THREADS, "x=1&after=t&y=2&metadata[k]=v&z", 20, 1, "t", NULL, NULL,
         "k", "v");
}


static void
test_kinds(void)
{
    const char  *q;

    q = "limit=10&order=asc&after=a&before=b&run_id=r&metadata[k]=v";

    GOOD(MSGS, q, 10, 0, "a", "b", "r", NULL, NULL);
    GOOD(THREADS, q, 10, 0, "a", "b", NULL, "k", "v");
}


static void
test_long(void)
{
    char      *n, *q, *text;
    json_t    *j;
    result_t   r;

    /* a malformed name of 2000 bytes: the param holds what fits */
    n = rep("\xc3\xa9", 1000);
    q = fmt("%s%%=1", n);

    run(MSGS, q, strlen(q), &r);
    CHECK(r.rc == THR_INVALID);
    CHECK(outputs_null(&r));
    CHECK(strlen(r.err.param) == sizeof(r.err.param) - 2);
    CHECK(strlen(r.err.message) < sizeof(r.err.message));

    text = thr_error_json(&r.err);
    j = text ? json_loads(text, 0, NULL) : NULL;
    CHECK(j != NULL);
    CHECK(text && strstr(text, "\\ufffd") == NULL);
    json_decref(j);
    free(text);
    free(q);
    free(n);

    /* long values pass whole */
    n = rep("x", 100000);
    q = fmt("after=%s&limit=100", n);
    GOOD(MSGS, q, 100, 1, n, NULL, NULL, NULL, NULL);
    free(q);
    free(n);

    /* many parts */
    q = rep("limit=5&a=b&&", 10000);
    GOOD(THREADS, q, 5, 1, NULL, NULL, NULL, NULL, NULL);
    free(q);

    q = rep("a", 10000);
    DEFAULTS(THREADS, q);
    free(q);

    q = rep("&", 10000);
    DEFAULTS(THREADS, q);
    free(q);

    q = rep("=", 10000);
    DEFAULTS(THREADS, q);
    free(q);
}


static void
nomem(int line, int kind, const char *args, int want)
{
    long      n;
    result_t  r;

    for (n = 0; ; n++) {
        alloc_countdown = n;
        alloc_failed = 0;

        run(kind, args, strlen(args), &r);

        if (!alloc_failed) {
            check(r.rc == want, line, "rc without failure");
            thr_list_args_free(&r.a);
            break;
        }

        if (r.rc != THR_NOMEM || !outputs_null(&r)) {
            failed++;
            printf("FAIL line %d: allocation %ld failed: rc %d\n", line, n,
                   r.rc);
        }

        thr_list_args_free(&r.a);
    }

    alloc_countdown = -1;

    check(n > 0 || args[0] == '\0', line, "allocations were made");
}


static void
test_nomem(void)
{
    result_t  r;

    nomem(__LINE__, MSGS, "", THR_OK);
    nomem(__LINE__, MSGS, "limit=5", THR_OK);
    nomem(__LINE__, MSGS,
          "limit=5&order=asc&after=msg_a&before=msg_b&run_id=run_c",
          THR_OK);
    nomem(__LINE__, THREADS,
          "limit=5&order=asc&after=t_a&before=t_b&metadata%5Bk%5D=v",
          THR_OK);
    nomem(__LINE__, THREADS, "metadata[k]=", THR_OK);
    nomem(__LINE__, THREADS, "metadata[k]=v&after=", THR_INVALID);
    nomem(__LINE__, MSGS, "after=%zz", THR_INVALID);

    /* a length no buffer could be made for; nothing is read */
    run(MSGS, "limit=5", SIZE_MAX, &r);
    CHECK(r.rc == THR_NOMEM);
    CHECK(outputs_null(&r));
}


int
main(void)
{
    thr_json_init();

    test_empty();
    test_limit();
    test_order();
    test_cursors();
    test_run_id();
    test_metadata();
    test_filters();
    test_decode();
    test_malformed();
    test_duplicates();
    test_precedence();
    test_unknown();
    test_kinds();
    test_long();
    test_nomem();

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
