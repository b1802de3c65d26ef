/*
 * Times the validation of the largest valid create: 32 messages of 256,000
 * four-byte characters, 16 metadata pairs of 64 and 512 four-byte
 * characters on the thread and on every message, 20 file ids and a vector
 * store id.
 *
 *   make -C tests bench [BENCH_RUNS=10]
 */

#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ngx_http_threads_json.h"


#define CH  "\xf0\x9f\x98\x80"          /* U+1F600, 4 bytes */


static char  *p;


static void
put(const char *s)
{
    size_t  n;

    n = strlen(s);
    memcpy(p, s, n);
    p += n;
}


static void
rep(const char *s, size_t n)
{
    while (n--) {
        put(s);
    }
}


static void
metadata(void)
{
    int  i;

    put("{");

    for (i = 0; i < THR_MAX_METADATA_PAIRS; i++) {
        if (i) {
            put(",");
        }

        p += sprintf(p, "\"%02d", i);
        rep(CH, THR_MAX_METADATA_KEY - 2);
        put("\":\"");
        rep(CH, THR_MAX_METADATA_VALUE);
        put("\"");
    }

    put("}");
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    int               i, runs, rc;
    char             *body;
    size_t            len;
    double            t, best, sum;
    thr_error_t       err;
    thr_thread_req_t  req;

    runs = (argc > 1) ? atoi(argv[1]) : 10;

    body = malloc(40 * 1024 * 1024);
    if (body == NULL) {
        return 1;
    }

    p = body;

    put("{\"metadata\":");
    metadata();
    put(",\"tool_resources\":{\"code_interpreter\":{\"file_ids\":[");

    for (i = 0; i < THR_MAX_FILE_IDS; i++) {
        p += sprintf(p, "%s\"file-%022d\"", i ? "," : "", i);
    }

    put("]},\"file_search\":{\"vector_store_ids\":[\"vs_0000000000000000"
        "00000000\"]}},\"messages\":[");

    for (i = 0; i < THR_MAX_MESSAGES; i++) {
        put(i ? ",{" : "{");
        put("\"role\":\"user\",\"content\":\"");
        rep(CH, THR_MAX_CONTENT_CHARS);
        put("\",\"metadata\":");
        metadata();
        put("}");
    }

    put("]}");
    len = p - body;

    best = 1e9;
    sum = 0;

    for (i = 0; i < runs; i++) {
        t = now();
        rc = thr_json_thread_create(body, len, &req, &err);
        t = now() - t;

        if (rc != THR_OK) {
            fprintf(stderr, "rc %d: %s (%s)\n", rc, err.message, err.param);
            return 1;
        }

        thr_thread_req_free(&req);

        sum += t;
        best = (t < best) ? t : best;
    }

    printf("body %zu bytes, %d runs: best %.1f ms, mean %.1f ms\n", len, runs,
           best * 1e3, sum / runs * 1e3);
    printf("parse peak %zu bytes (%.2f x the body), budget %zu\n",
           thr_json_parse_peak(), (double) thr_json_parse_peak() / len,
           thr_json_parse_budget(len));

    free(body);

    return 0;
}
