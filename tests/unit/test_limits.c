/*
 * Unit tests for the bounds of ngx_http_threads_json.c: every cap on what a
 * message counts at its limit and one past it, parse bombs refused within
 * their memory budget, the largest valid bodies accepted under it, the
 * budget counted per thread (two threads parsing at once), and the JSON
 * text written as jansson would write it.
 */

#define _GNU_SOURCE              /* vasprintf */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "unit.h"
#include "ngx_http_threads_json.h"


#define CH4  "\xf0\x9f\x98\x80"         /* U+1F600: one character, 4 bytes */

#define NESTED                                                                \
    "The JSON body of your request is too deeply nested or has too many "     \
    "values."


enum {
    CREATE,
    MODIFY,
    MSG_CREATE
};


static int
run(int kind, const char *body, size_t len, thr_error_t *err)
{
    int                rc;
    char              *out;
    thr_thread_req_t   req;

    out = NULL;
    memset(&req, 0, sizeof(req));

    switch (kind) {

    case CREATE:
        rc = thr_json_thread_create(body, len, &req, err);
        break;

    case MODIFY:
        rc = thr_json_thread_modify(body, len, &req, err);
        break;

    default:
        rc = thr_json_message_create(body, len, &out, err);
    }

    thr_thread_req_free(&req);
    free(out);

    return rc;
}


static void
good(int line, int kind, char *body)
{
    int          rc;
    thr_error_t  err;

    rc = run(kind, body, strlen(body), &err);

    if (rc != THR_OK) {
        failed++;
        printf("FAIL line %d: rc %d: %s (%s)\n", line, rc,
               rc == THR_INVALID ? err.message : "", err.param);

    } else {
        passed++;
    }

    free(body);
}


/* A 400 with the code and param given; message NULL: not compared. */

static void
bad(int line, int kind, char *body, const char *code, const char *param,
    const char *message)
{
    int          rc;
    thr_error_t  err;

    rc = run(kind, body, strlen(body), &err);
    free(body);

    if (rc != THR_INVALID) {
        failed++;
        printf("FAIL line %d: rc %d, want THR_INVALID\n", line, rc);
        return;
    }

    check(err.status == 400, line, "status 400");
    check_str(line, "type", err.type, "invalid_request_error");
    check_str(line, "code", err.code, code);
    check_str(line, "param", err.param, param);

    if (message != NULL) {
        check_str(line, "message", err.message, message);
    }
}

#define GOOD(kind, body)  good(__LINE__, kind, body)
#define BAD(kind, body, code, param, message)                                 \
    bad(__LINE__, kind, body, code, param, message)


/* n copies of unit, joined by commas */

static char *
list(const char *unit, size_t n)
{
    char    *s;
    size_t   len, i;

    len = strlen(unit);
    s = malloc((len + 1) * n + 1);

    if (s == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        memcpy(s + i * (len + 1), unit, len);
        s[i * (len + 1) + len] = ',';
    }

    s[n ? (len + 1) * n - 1 : 0] = '\0';

    return s;
}


/* A message body with the given content and attachments JSON. */

static char *
message(const char *content, const char *attachments)
{
    return fmt("{\"role\":\"user\",\"content\":%s%s%s}", content,
               attachments ? ",\"attachments\":" : "",
               attachments ? attachments : "");
}


static char *
parts(size_t n)
{
    char  *l, *s;

    l = list("{\"type\":\"text\",\"text\":\"t\"}", n);
    s = fmt("[%s]", l);
    free(l);

    return s;
}


static char *
attachments(size_t n, size_t tools)
{
    char  *t, *a, *l, *s;

    t = list("{\"type\":\"file_search\"}", tools);
    a = fmt("{\"file_id\":\"file-1\",\"tools\":[%s]}", t);
    l = list(a, n);
    s = fmt("[%s]", l);
    free(t);
    free(a);
    free(l);

    return s;
}


/* "CH4 * n" as a JSON string's contents */

static char *
chars(size_t n)
{
    return rep(CH4, n);
}


static void
test_parts(void)
{
    char  *c, *m;

    c = parts(THR_MAX_CONTENT_PARTS);
    GOOD(MSG_CREATE, message(c, NULL));
    m = message(c, NULL);
    GOOD(CREATE, fmt("{\"messages\":[%s]}", m));
    free(m);
    free(c);

    c = parts(THR_MAX_CONTENT_PARTS + 1);
    BAD(MSG_CREATE, message(c, NULL), "array_above_max_length", "content",
        "Invalid 'content': array too long. Expected an array with maximum "
        "length 32, but got an array with length 33 instead.");
    m = message(c, NULL);
    BAD(CREATE, fmt("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},%s]}",
                    m),
        "array_above_max_length", "messages[1].content", NULL);
    free(m);
    free(c);
}


static void
test_attachments(void)
{
    char  *a;

    a = attachments(THR_MAX_ATTACHMENTS, 1);
    GOOD(MSG_CREATE, message("\"x\"", a));
    free(a);

    a = attachments(THR_MAX_ATTACHMENTS + 1, 1);
    BAD(MSG_CREATE, message("\"x\"", a), "array_above_max_length",
        "attachments",
        "Invalid 'attachments': array too long. Expected an array with "
        "maximum length 10, but got an array with length 11 instead.");
    free(a);

    a = attachments(1, THR_MAX_ATTACHMENT_TOOLS);
    GOOD(MSG_CREATE, message("\"x\"", a));
    free(a);

    a = attachments(2, THR_MAX_ATTACHMENT_TOOLS + 1);
    BAD(MSG_CREATE, message("\"x\"", a), "array_above_max_length",
        "attachments[0].tools",
        "Invalid 'attachments[0].tools': array too long. Expected an array "
        "with maximum length 2, but got an array with length 3 instead.");
    free(a);

    a = attachments(1, THR_MAX_ATTACHMENT_TOOLS + 1);
    BAD(CREATE, fmt("{\"messages\":[{\"role\":\"user\",\"content\":\"x\","
                    "\"attachments\":%s}]}", a),
        "array_above_max_length", "messages[0].attachments[0].tools", NULL);
    free(a);
}


static void
test_ids(void)
{
    char  *ok, *over;

    ok = chars(THR_MAX_FILE_ID_LEN);
    over = chars(THR_MAX_FILE_ID_LEN + 1);

    /* image_file.file_id */
    GOOD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":[{\"type\":"
                         "\"image_file\",\"image_file\":{\"file_id\":\"%s\"}}]}",
                         ok));
    BAD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":[{\"type\":"
                        "\"image_file\",\"image_file\":{\"file_id\":\"%s\"}}]}",
                        over),
        "string_above_max_length", "content[0].image_file.file_id",
        "Invalid 'content[0].image_file.file_id': string too long. Expected "
        "a string with maximum length 128, but got a string with length 129 "
        "instead.");

    /* attachments[].file_id */
    GOOD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":\"x\","
                         "\"attachments\":[{\"file_id\":\"%s\"}]}", ok));
    BAD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":\"x\","
                        "\"attachments\":[{\"file_id\":\"f\"},"
                        "{\"file_id\":\"%s\"}]}", over),
        "string_above_max_length", "attachments[1].file_id", NULL);

    /* code_interpreter.file_ids[], in create and modify */
    GOOD(CREATE, fmt("{\"tool_resources\":{\"code_interpreter\":"
                     "{\"file_ids\":[\"a\",\"%s\"]}}}", ok));
    BAD(CREATE, fmt("{\"tool_resources\":{\"code_interpreter\":"
                    "{\"file_ids\":[\"a\",\"%s\"]}}}", over),
        "string_above_max_length", "tool_resources.code_interpreter.file_ids[1]",
        NULL);
    BAD(MODIFY, fmt("{\"tool_resources\":{\"code_interpreter\":"
                    "{\"file_ids\":[\"%s\"]}}}", over),
        "string_above_max_length", "tool_resources.code_interpreter.file_ids[0]",
        NULL);

    free(ok);
    free(over);

    ok = chars(THR_MAX_VECTOR_STORE_ID_LEN);
    over = chars(THR_MAX_VECTOR_STORE_ID_LEN + 1);

    GOOD(MODIFY, fmt("{\"tool_resources\":{\"file_search\":"
                     "{\"vector_store_ids\":[\"%s\"]}}}", ok));
    BAD(CREATE, fmt("{\"tool_resources\":{\"file_search\":"
                    "{\"vector_store_ids\":[\"%s\"]}}}", over),
        "string_above_max_length",
        "tool_resources.file_search.vector_store_ids[0]",
        "Invalid 'tool_resources.file_search.vector_store_ids[0]': string too "
        "long. Expected a string with maximum length 128, but got a string "
        "with length 129 instead.");

    /* the type is still checked first */
    BAD(CREATE, fmt("{\"tool_resources\":{\"file_search\":"
                    "{\"vector_store_ids\":[1]}}}"),
        "invalid_type", "tool_resources.file_search.vector_store_ids[0]",
        NULL);

    free(ok);
    free(over);
}


static void
test_url(void)
{
    char  *ok, *over;

    /* "https://" is 8 characters */
    ok = chars(THR_MAX_URL_LEN - 8);
    over = chars(THR_MAX_URL_LEN - 7);

    GOOD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":[{\"type\":"
                         "\"image_url\",\"image_url\":{\"url\":\"https://%s\"}}]}",
                         ok));
    BAD(MSG_CREATE, fmt("{\"role\":\"user\",\"content\":[{\"type\":"
                        "\"image_url\",\"image_url\":{\"url\":\"https://%s\"}}]}",
                        over),
        "string_above_max_length", "content[0].image_url.url",
        "Invalid 'content[0].image_url.url': string too long. Expected a "
        "string with maximum length 8192, but got a string with length 8193 "
        "instead.");

    free(ok);
    free(over);
}


/* bombs */

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* open + n * unit (comma-joined) + close, refused within its budget */

static void
bomb(int line, const char *open, const char *unit, size_t n,
    const char *close)
{
    int           rc;
    char         *l, *body;
    size_t        len, peak, budget;
    double        t;
    thr_error_t   err;

    l = list(unit, n);
    body = fmt("%s%s%s", open, l, close);
    free(l);

    len = strlen(body);
    budget = thr_json_parse_budget(len);

    t = now();
    rc = run(CREATE, body, len, &err);
    t = now() - t;

    peak = thr_json_parse_peak();
    free(body);

    if (rc != THR_INVALID) {
        failed++;
        printf("FAIL line %d: rc %d, want THR_INVALID\n", line, rc);
        return;
    }

    check_str(line, "message", err.message, NESTED);
    check(err.code == NULL && err.param[0] == '\0', line, "code, param null");

    /*
     * The allocation that crosses the budget is made (jansson cannot take
     * a failure there), and the chunk being read is finished: a hash table
     * of many keys doubles at most, so half the budget again bounds it.
     */
    check(peak > budget && peak < budget + budget / 2, line,
          "peak within budget and a half");

    printf("  bomb line %d: %zu bytes, peak %zu (budget %zu), %.1f ms\n",
           line, len, peak, budget, t * 1e3);
}


static void
test_bombs(void)
{
    int          rc;
    char        *body, *p;
    thr_error_t  err;

    /* 8 MiB of each shape */
    bomb(__LINE__, "{\"x\":[", "{}", (8 << 20) / 3, "]}");
    bomb(__LINE__, "[", "[]", (8 << 20) / 3, "]");
    bomb(__LINE__, "{\"x\":[", "\"\"", (8 << 20) / 3, "]}");
    bomb(__LINE__, "{\"x\":[", "0", (8 << 20) / 2, "]}");
    bomb(__LINE__, "{\"x\":[", "{\"a\":[]}", (8 << 20) / 9, "]}");

    /* many keys: {"k0":0,"k1":0,...} */
    {
        size_t  i, n;

        n = (8 << 20) / 12;
        body = malloc(n * 16 + 3);
        if (body == NULL) {
            abort();
        }

        p = body;
        *p++ = '{';

        for (i = 0; i < n; i++) {
            p += sprintf(p, "%s\"k%zu\":0", i ? "," : "", i);
        }

        *p++ = '}';
        *p = '\0';

        rc = run(CREATE, body, p - body, &err);
        check(rc == THR_INVALID, __LINE__, "many keys refused");
        check_str(__LINE__, "many keys", err.message, NESTED);
        check(thr_json_parse_peak() < thr_json_parse_budget(p - body) * 3 / 2,
              __LINE__, "many keys: peak within budget and a half");
        free(body);
    }

    /* deep nesting: jansson's depth limit, the same answer */
    p = rep("[", 100000);
    body = fmt("{\"x\":%s", p);
    free(p);
    rc = run(CREATE, body, strlen(body), &err);
    check(rc == THR_INVALID, __LINE__, "deep nesting refused");
    check_str(__LINE__, "deep nesting", err.message, NESTED);
    free(body);

    body = rep("{\"a\":", 5000);
    rc = run(MSG_CREATE, body, strlen(body), &err);
    check(rc == THR_INVALID, __LINE__, "deep objects refused");
    check_str(__LINE__, "deep objects", err.message, NESTED);
    free(body);

    /* small bodies never come near the floor: their own errors */
    p = list("{}", 1000);
    BAD(CREATE, fmt("{\"x\":[%s]}", p), "unknown_parameter", "x", NULL);
    free(p);
}


/*
 * The largest valid bodies: one of long texts (32 messages of 256,000
 * four-byte characters, with full metadata everywhere), one of as many
 * values as the caps allow.  Both pass, with their peak well under the
 * budget; what the peaks are is printed for the record.
 */

static char *
metadata(int wide)
{
    int    i;
    char  *s, *t, *k, *v;

    k = wide ? chars(THR_MAX_METADATA_KEY - 2) : fmt("");
    v = wide ? chars(THR_MAX_METADATA_VALUE) : fmt("v");
    s = fmt("{");

    for (i = 0; i < THR_MAX_METADATA_PAIRS; i++) {
        t = fmt("%s%s\"%02d%s\":\"%s\"", s, i ? "," : "", i, k, v);
        free(s);
        s = t;
    }

    t = fmt("%s}", s);
    free(s);
    free(k);
    free(v);

    return t;
}


static char *
thread_body(const char *msg, int wide)
{
    int    i;
    char  *md, *ids, *id, *msgs, *s, *vs;

    md = metadata(wide);

    id = wide ? chars(THR_MAX_FILE_ID_LEN) : fmt("f");
    s = fmt("\"%s\"", id);
    ids = list(s, THR_MAX_FILE_IDS);
    free(s);
    free(id);

    vs = wide ? chars(THR_MAX_VECTOR_STORE_ID_LEN) : fmt("v");
    msgs = list(msg, THR_MAX_MESSAGES);

    s = fmt("{\"metadata\":%s,\"tool_resources\":{\"code_interpreter\":"
            "{\"file_ids\":[%s]},\"file_search\":{\"vector_store_ids\":"
            "[\"%s\"]}},\"messages\":[%s]}", md, ids, vs, msgs);

    free(md);
    free(ids);
    free(vs);
    free(msgs);

    (void) i;

    return s;
}


static void
largest(int line, char *body)
{
    int          rc;
    size_t       len, peak, budget;
    double       t;
    thr_error_t  err;

    len = strlen(body);
    budget = thr_json_parse_budget(len);

    t = now();
    rc = run(CREATE, body, len, &err);
    t = now() - t;

    peak = thr_json_parse_peak();

    if (rc != THR_OK) {
        failed++;
        printf("FAIL line %d: rc %d: %s (%s)\n", line, rc,
               rc == THR_INVALID ? err.message : "", err.param);

    } else {
        passed++;
    }

    /* a margin of twice at least */
    check(peak * 2 < budget, line, "peak under half the budget");

    printf("  largest line %d: %zu bytes, peak %zu (%.2f x), budget %zu, "
           "%.1f ms\n", line, len, peak, (double) peak / len, budget,
           t * 1e3);

    free(body);
}


static void
test_largest(void)
{
    int    i;
    char  *text, *md, *msg, *url, *part, *pl, *a, *t, *tl, *al;

    /* long texts */
    text = chars(THR_MAX_CONTENT_CHARS);
    md = metadata(1);
    msg = fmt("{\"role\":\"user\",\"content\":\"%s\",\"metadata\":%s}",
              text, md);
    largest(__LINE__, thread_body(msg, 1));
    free(text);
    free(md);
    free(msg);

    /* the most values: every list at its cap, every string short */
    url = fmt("https://u");
    part = fmt("{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\","
               "\"detail\":\"low\"}}", url);
    pl = list(part, THR_MAX_CONTENT_PARTS);
    t = list("{\"type\":\"code_interpreter\"}", THR_MAX_ATTACHMENT_TOOLS);
    a = fmt("{\"file_id\":\"f\",\"tools\":[%s]}", t);
    al = list(a, THR_MAX_ATTACHMENTS);
    md = metadata(0);
    msg = fmt("{\"role\":\"user\",\"content\":[%s],\"attachments\":[%s],"
              "\"metadata\":%s}", pl, al, md);
    largest(__LINE__, thread_body(msg, 0));

    free(url);
    free(part);
    free(pl);
    free(t);
    free(a);
    free(al);
    free(md);
    free(msg);

    (void) i;
    (void) tl;
}


/*
 * Two threads parse at once, over and over: each sees the peak of its own
 * body, as when alone, and a bomb in one leaves the other's body valid.
 */

typedef struct {
    const char        *body;
    size_t             len;
    int                want;
    size_t             peak;        /* alone */
    int                bad;
    pthread_barrier_t *barrier;
} worker_t;


static void *
worker(void *data)
{
    int           i, rc;
    worker_t     *w = data;
    thr_error_t   err;

    for (i = 0; i < 20; i++) {
        pthread_barrier_wait(w->barrier);

        rc = run(CREATE, w->body, w->len, &err);

        if (rc != w->want || thr_json_parse_peak() != w->peak) {
            w->bad++;
        }
    }

    return NULL;
}


static void
test_threads(void)
{
    int                 i;
    char               *l, *text;
    worker_t            w[2];
    pthread_t           tid[2];
    thr_error_t         err;
    pthread_barrier_t   barrier;

    text = chars(THR_MAX_CONTENT_CHARS);
    w[0].body = fmt("{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"},"
                    "{\"role\":\"user\",\"content\":\"%s\"}]}", text, text);
    w[0].want = THR_OK;
    free(text);

    l = list("{}", 3 << 20);
    w[1].body = fmt("{\"x\":[%s]}", l);
    w[1].want = THR_INVALID;
    free(l);

    pthread_barrier_init(&barrier, NULL, 2);

    for (i = 0; i < 2; i++) {
        w[i].len = strlen(w[i].body);
        w[i].bad = 0;
        w[i].barrier = &barrier;

        /* alone first */
        CHECK(run(CREATE, w[i].body, w[i].len, &err) == w[i].want);
        w[i].peak = thr_json_parse_peak();
    }

    CHECK(w[0].peak != w[1].peak);

    for (i = 0; i < 2; i++) {
        CHECK(pthread_create(&tid[i], NULL, worker, &w[i]) == 0);
    }

    for (i = 0; i < 2; i++) {
        pthread_join(tid[i], NULL);
        check(w[i].bad == 0, __LINE__, "each thread counts its own parse");
        free((char *) w[i].body);
    }

    pthread_barrier_destroy(&barrier);
}


/* What thr_dumps() writes is what jansson writes, byte for byte. */

static void
test_text(void)
{
    int                  c;
    char                *esc, *p, *body, *out, *want;
    json_t              *j;
    thr_error_t          err;
    json_malloc_t        m;
    json_free_t          f;

    /* every ASCII character, escaped, and a few longer ones */
    esc = malloc(0x80 * 6 + 64);
    if (esc == NULL) {
        abort();
    }

    p = esc;

    for (c = 1; c < 0x80; c++) {
        p += sprintf(p, "\\u%04x", c);
    }

    strcpy(p, "\\/\\\"\xc3\xa9\xe2\x82\xac" CH4 "\\ud83d\\ude00\xe2\x80\xa8");

    body = fmt("{\"role\":\"user\",\"content\":\"%s\",\"metadata\":"
               "{\"%s\":\"x\"}}", esc, "\\n\\u0001k\\\"");
    free(esc);

    CHECK(thr_json_message_create(body, strlen(body), &out, &err) == THR_OK);
    free(body);

    j = json_loads(out, 0, NULL);
    CHECK(j != NULL);

    want = json_dumps(j, JSON_COMPACT);
    check_str(__LINE__, "as jansson writes it", out, want);

    json_get_alloc_funcs(&m, &f);
    f(want);
    json_decref(j);
    free(out);
}


int
main(void)
{
    thr_json_init();

    test_parts();
    test_attachments();
    test_ids();
    test_url();
    test_bombs();
    test_largest();
    test_threads();
    test_text();

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
