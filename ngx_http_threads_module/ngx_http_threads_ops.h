/*
 * The operations: a routed request becomes one statement, and its one row
 * (or none) becomes the response.
 *
 * An operation's way: ngx_http_threads_op_create() when the request is
 * routed; ngx_http_threads_op_validate() on its body (plain work on memory
 * that may run in a thread of nginx's pool: it touches neither the
 * request nor its memory pool); ngx_http_threads_op_run() back on the
 * event loop, which answers a validation error or hands the statement to
 * the database pool.  The pool's answer arrives from an event, which
 * sends the response and finalizes the request.
 */

#ifndef NGX_HTTP_THREADS_OPS_H_INCLUDED_
#define NGX_HTTP_THREADS_OPS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_pg.h"
#include "ngx_http_threads_json.h"
#include "ngx_http_threads_args.h"
#include "ngx_http_threads_id.h"
#include "ngx_http_threads_items.h"


typedef enum {
    NGX_HTTP_THREADS_OP_THREAD_CREATE = 0,
    NGX_HTTP_THREADS_OP_THREAD_RETRIEVE,
    NGX_HTTP_THREADS_OP_THREAD_MODIFY,
    NGX_HTTP_THREADS_OP_THREAD_DELETE,
    NGX_HTTP_THREADS_OP_THREAD_LIST,
    NGX_HTTP_THREADS_OP_MESSAGE_CREATE,
    NGX_HTTP_THREADS_OP_MESSAGE_RETRIEVE,
    NGX_HTTP_THREADS_OP_MESSAGE_MODIFY,
    NGX_HTTP_THREADS_OP_MESSAGE_DELETE,
    NGX_HTTP_THREADS_OP_MESSAGE_LIST,

    /* conversations: thread_id holds the conversation's id, message_id
     * the item's */
    NGX_HTTP_THREADS_OP_CONVERSATION_CREATE,
    NGX_HTTP_THREADS_OP_CONVERSATION_RETRIEVE,
    NGX_HTTP_THREADS_OP_CONVERSATION_MODIFY,
    NGX_HTTP_THREADS_OP_CONVERSATION_DELETE,
    NGX_HTTP_THREADS_OP_CONVERSATION_LIST,
    NGX_HTTP_THREADS_OP_ITEM_CREATE,
    NGX_HTTP_THREADS_OP_ITEM_RETRIEVE,
    NGX_HTTP_THREADS_OP_ITEM_DELETE,
    NGX_HTTP_THREADS_OP_ITEM_LIST,
    /* POST /threads/{thread_id}/conversation */
    NGX_HTTP_THREADS_OP_THREAD_CONVERT
} ngx_http_threads_op_e;


#define NGX_HTTP_THREADS_MAX_PARAMS  8


/* One operation of one request, in the request's pool. */
typedef struct {
    ngx_http_threads_pg_query_t   query;
    ngx_http_request_t           *request;
    ngx_http_threads_op_e         kind;
    size_t                        page_bytes;  /* a listing's budget */

    /* set when routed; NUL-terminated */
    ngx_str_t                     owner;
    ngx_str_t                     thread_id;   /* a create's new id */
    ngx_str_t                     message_id;

    /* set by ngx_http_threads_op_validate() */
    int                           rc;          /* THR_OK, THR_INVALID... */
    thr_error_t                   err;
    thr_thread_req_t              body;        /* malloc'd by json.c */
    char                         *message;     /* malloc'd by json.c */
    thr_list_args_t               args;        /* malloc'd by args.c */
    thr_conv_req_t                conv;        /* malloc'd by items.c */
    const char                   *lo;          /* list cursors */
    const char                   *hi;
    u_char                        new_id[sizeof("thread_") + THR_ID_CHARS];
    u_char                        limit[NGX_INT_T_LEN + 1];
    u_char                        budget[NGX_INT_T_LEN + 1];

    /*
     * A create's Idempotency-Key, set by the handler (key NUL-terminated,
     * checked; len 0: none), with the digest of its method, path and body
     * (hex SHA-256) and how long it is kept (seconds, as text).  Then,
     * with the digest: the id characters of the key's object (generation
     * 0, ending "AA"), and the key's advisory lock (a bigint, as text).
     */
    ngx_str_t                     idem_key;
    u_char                        idem_digest[2 * 32 + 1];
    u_char                        idem_ttl[NGX_TIME_T_LEN + 1];
    u_char                        idem_id[THR_ID_CHARS];
    u_char                        idem_lock[NGX_INT64_LEN + 1];

    ngx_uint_t                    stmt;
    const char                   *values[NGX_HTTP_THREADS_MAX_PARAMS];
    int                           lengths[NGX_HTTP_THREADS_MAX_PARAMS];

    /* a word of its own: validation writes it, maybe in a thread */
    u_char                        large;        /* big body or result */

    /*
     * A very large create ran in the validation's thread, on a connection
     * of its own (ngx_http_threads_op_direct): its answer, for op_run.
     */
    u_char                        direct;
    ngx_http_threads_pg_status_e  direct_status;
    PGresult                     *direct_res;

    /* written on the event loop only */
    unsigned                      validating:1; /* in a thread right now */
    unsigned                      gone:1;       /* the request went away */
} ngx_http_threads_op_t;


/* Names the operations for the metrics, once per configuration. */
ngx_int_t ngx_http_threads_ops_init_conf(ngx_conf_t *cf);

/* Starts the database pool of this worker process. */
ngx_int_t ngx_http_threads_ops_init_worker(ngx_cycle_t *cycle,
    ngx_http_threads_pg_conf_t *conf);
void ngx_http_threads_ops_exit_worker(void);

ngx_http_threads_op_t *ngx_http_threads_op_create(ngx_http_request_t *r,
    ngx_http_threads_op_e kind);

/* Fills op->rc and op->err (or the statement); body may be NULL. */
void ngx_http_threads_op_validate(ngx_http_threads_op_t *op,
    const char *body, size_t len);

/*
 * Frees what validation allocated.  The request's cleanup does it, but
 * for an op that was being validated then: its thread's end does.
 */
void ngx_http_threads_op_release(ngx_http_threads_op_t *op);

/*
 * For the thread that validated a body of len bytes, right after: a
 * create over NGX_HTTP_THREADS_DIRECT runs there, blocking that thread
 * only, on a connection of its own, so that libpq's copy of its
 * parameters never holds the event loop.
 */
void ngx_http_threads_op_direct(ngx_http_threads_op_t *op, size_t len,
    ngx_log_t *log);

/*
 * NGX_DONE: the statement went to the pool, and the request is finalized
 * when its answer arrives.  Else an error was answered (or is to be): the
 * caller finalizes the request with the value returned.
 */
ngx_int_t ngx_http_threads_op_run(ngx_http_threads_op_t *op);

/* The id error of a path id or a cursor: 400 without the prefix, else 404. */
void ngx_http_threads_id_error(thr_error_t *err, const u_char *id,
    size_t len, const char *prefix, size_t plen, const char *param,
    const char *what);


#endif /* NGX_HTTP_THREADS_OPS_H_INCLUDED_ */
