/*
 * Query strings of the list endpoints:
 *
 *   GET /threads?limit=&order=&after=&before=&metadata[KEY]=VALUE
 *   GET /threads/{id}/messages?limit=&order=&after=&before=&run_id=
 *
 * Plain C, free of nginx types, so that it can be unit tested and fuzzed
 * alone.  The strings returned come from malloc(3); thr_list_args_free()
 * frees them.
 */

#ifndef NGX_HTTP_THREADS_ARGS_H_INCLUDED_
#define NGX_HTTP_THREADS_ARGS_H_INCLUDED_

#include <stddef.h>

#include "ngx_http_threads_json.h"


#define THR_LIST_MESSAGES       0
#define THR_LIST_THREADS        1
/* GET /conversations/{id}/items: limit, order, after, before (include and
 * other parameters are ignored) */
#define THR_LIST_ITEMS          2

#define THR_LIST_LIMIT_DEFAULT  20
#define THR_LIST_LIMIT_MAX      100


typedef struct {
    unsigned     limit;         /* 1..100, default 20 */
    unsigned     desc;          /* order: 1 desc (default), 0 asc */
    char        *after;         /* decoded, malloc'd, or NULL */
    char        *before;
    char        *run_id;        /* messages only, else NULL */
    char        *meta_key;      /* threads only: metadata[KEY]=VALUE */
    char        *meta_value;
} thr_list_args_t;


/*
 * args: the raw query string after '?', not NUL-terminated, may be NULL or
 * empty.  Returns THR_OK, THR_INVALID (err filled, status 400) or
 * THR_NOMEM.  On failure every pointer in *out is NULL.
 *
 * The strings returned are valid UTF-8 without NUL; after, before and
 * run_id are not empty.  Their format (an id?) is for the caller to check.
 */
int thr_list_args_parse(const char *args, size_t len, int kind,
    thr_list_args_t *out, thr_error_t *err);

/* Frees the strings and sets them to NULL; safe to call twice. */
void thr_list_args_free(thr_list_args_t *a);


#endif /* NGX_HTTP_THREADS_ARGS_H_INCLUDED_ */
