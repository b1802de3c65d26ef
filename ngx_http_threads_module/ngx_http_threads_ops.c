/*
 * The operations.  See ngx_http_threads_ops.h; the SQL is in
 * ngx_http_threads_sql.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#if (NGX_LINUX) && defined(__GLIBC__)
#include <malloc.h>
#define NGX_HTTP_THREADS_TRIM  1
#endif

#include "ngx_http_threads_ops.h"
#include "ngx_http_threads_response.h"
#include "ngx_http_threads_sql.h"
#include "ngx_http_threads_metrics.h"


/* A body or a result past this size marks its request as large. */
#define NGX_HTTP_THREADS_LARGE  (1024 * 1024)

/*
 * A create past this size runs in its validation's thread: libpq copies
 * about 1 ms of parameters per 2 MB, and its buffer's first growth costs
 * page faults besides.
 */
#define NGX_HTTP_THREADS_DIRECT  (4 * 1024 * 1024)


enum {
    NGX_HTTP_THREADS_STMT_THREAD_CREATE = 0,
    NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE,
    NGX_HTTP_THREADS_STMT_THREAD_MODIFY,
    NGX_HTTP_THREADS_STMT_THREAD_DELETE,
    NGX_HTTP_THREADS_STMT_THREAD_LIST,      /* 4 variants, see below */
    NGX_HTTP_THREADS_STMT_MESSAGE_CREATE = NGX_HTTP_THREADS_STMT_THREAD_LIST + 4,
    NGX_HTTP_THREADS_STMT_MESSAGE_RETRIEVE,
    NGX_HTTP_THREADS_STMT_MESSAGE_MODIFY,
    NGX_HTTP_THREADS_STMT_MESSAGE_DELETE,
    NGX_HTTP_THREADS_STMT_MESSAGE_LIST,     /* 4 variants */

    /* creates with an Idempotency-Key */
    NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED =
        NGX_HTTP_THREADS_STMT_MESSAGE_LIST + 4,
    NGX_HTTP_THREADS_STMT_MESSAGE_CREATE_KEYED,

    /* conversations */
    NGX_HTTP_THREADS_STMT_CONV_CREATE,
    NGX_HTTP_THREADS_STMT_CONV_RETRIEVE,
    NGX_HTTP_THREADS_STMT_CONV_MODIFY,
    NGX_HTTP_THREADS_STMT_CONV_DELETE,
    NGX_HTTP_THREADS_STMT_CONV_LIST,        /* 4 variants */
    NGX_HTTP_THREADS_STMT_ITEMS_CREATE = NGX_HTTP_THREADS_STMT_CONV_LIST + 4,
    NGX_HTTP_THREADS_STMT_ITEM_RETRIEVE,
    NGX_HTTP_THREADS_STMT_ITEM_DELETE,
    NGX_HTTP_THREADS_STMT_ITEM_LIST,        /* 4 variants */
    NGX_HTTP_THREADS_STMT_THREAD_CONVERT = NGX_HTTP_THREADS_STMT_ITEM_LIST + 4,
    NGX_HTTP_THREADS_STMT_CONV_CREATE_KEYED,
    NGX_HTTP_THREADS_STMT_ITEMS_CREATE_KEYED,

    /* listings filtered by a metadata pair */
    NGX_HTTP_THREADS_STMT_THREAD_FILTER,    /* 4 variants */
    NGX_HTTP_THREADS_STMT_CONV_FILTER = NGX_HTTP_THREADS_STMT_THREAD_FILTER + 4,

    /* a fresh key's create; no row: THREAD_CREATE_KEYED tells what then */
    NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED_NEW =
        NGX_HTTP_THREADS_STMT_CONV_FILTER + 4
};


/*
 * name, SQL, parameters, idempotent (safe to send twice), writes (commits a
 * change: the pool sends reads behind other connections' writes rather
 * than behind its own)
 */
static ngx_http_threads_pg_stmt_t  ngx_http_threads_stmts[] = {

    { "threads_thread_create", NGX_HTTP_THREADS_SQL_THREAD_CREATE, 5, 0, 1 },
    { "threads_thread_retrieve", NGX_HTTP_THREADS_SQL_THREAD_RETRIEVE, 2,
      1, 0 },
    { "threads_thread_modify", NGX_HTTP_THREADS_SQL_THREAD_MODIFY, 4, 1, 1 },
    { "threads_thread_delete", NGX_HTTP_THREADS_SQL_THREAD_DELETE, 2, 0, 1 },

    /* desc forward, asc forward, desc backward, asc backward */
    { "threads_thread_list_df", NGX_HTTP_THREADS_SQL_THREAD_LIST_DF, 5, 1, 0 },
    { "threads_thread_list_af", NGX_HTTP_THREADS_SQL_THREAD_LIST_AF, 5, 1, 0 },
    { "threads_thread_list_db", NGX_HTTP_THREADS_SQL_THREAD_LIST_DB, 5, 1, 0 },
    { "threads_thread_list_ab", NGX_HTTP_THREADS_SQL_THREAD_LIST_AB, 5, 1, 0 },

    { "threads_message_create", NGX_HTTP_THREADS_SQL_MESSAGE_CREATE, 4, 0, 1 },
    { "threads_message_retrieve", NGX_HTTP_THREADS_SQL_MESSAGE_RETRIEVE, 3,
      1, 0 },
    { "threads_message_modify", NGX_HTTP_THREADS_SQL_MESSAGE_MODIFY, 4, 1, 1 },
    { "threads_message_delete", NGX_HTTP_THREADS_SQL_MESSAGE_DELETE, 3, 0, 1 },

    { "threads_message_list_df", NGX_HTTP_THREADS_SQL_MESSAGE_LIST_DF, 7,
      1, 0 },
    { "threads_message_list_af", NGX_HTTP_THREADS_SQL_MESSAGE_LIST_AF, 7,
      1, 0 },
    { "threads_message_list_db", NGX_HTTP_THREADS_SQL_MESSAGE_LIST_DB, 7,
      1, 0 },
    { "threads_message_list_ab", NGX_HTTP_THREADS_SQL_MESSAGE_LIST_AB, 7,
      1, 0 },

    /*
     * Keyed creates are safe to send twice: a second one that finds the
     * first committed replays its answer, one that finds it running is
     * "busy" (409).
     */
    { "threads_thread_create_keyed", NGX_HTTP_THREADS_SQL_THREAD_CREATE_KEYED,
      8, 1, 1 },
    { "threads_message_create_keyed",
      NGX_HTTP_THREADS_SQL_MESSAGE_CREATE_KEYED, 7, 1, 1 },

    /* conversations */
    { "threads_conv_create", NGX_HTTP_THREADS_SQL_CONV_CREATE, 4, 0, 1 },
    { "threads_conv_retrieve", NGX_HTTP_THREADS_SQL_CONV_RETRIEVE, 2, 1, 0 },
    { "threads_conv_modify", NGX_HTTP_THREADS_SQL_CONV_MODIFY, 3, 1, 1 },
    { "threads_conv_delete", NGX_HTTP_THREADS_SQL_CONV_DELETE, 2, 0, 1 },

    { "threads_conv_list_df", NGX_HTTP_THREADS_SQL_CONV_LIST_DF, 5, 1, 0 },
    { "threads_conv_list_af", NGX_HTTP_THREADS_SQL_CONV_LIST_AF, 5, 1, 0 },
    { "threads_conv_list_db", NGX_HTTP_THREADS_SQL_CONV_LIST_DB, 5, 1, 0 },
    { "threads_conv_list_ab", NGX_HTTP_THREADS_SQL_CONV_LIST_AB, 5, 1, 0 },

    { "threads_items_create", NGX_HTTP_THREADS_SQL_ITEMS_CREATE, 3, 0, 1 },
    { "threads_item_retrieve", NGX_HTTP_THREADS_SQL_ITEM_RETRIEVE, 3, 1, 0 },
    { "threads_item_delete", NGX_HTTP_THREADS_SQL_ITEM_DELETE, 3, 0, 1 },

    { "threads_item_list_df", NGX_HTTP_THREADS_SQL_ITEM_LIST_DF, 6, 1, 0 },
    { "threads_item_list_af", NGX_HTTP_THREADS_SQL_ITEM_LIST_AF, 6, 1, 0 },
    { "threads_item_list_db", NGX_HTTP_THREADS_SQL_ITEM_LIST_DB, 6, 1, 0 },
    { "threads_item_list_ab", NGX_HTTP_THREADS_SQL_ITEM_LIST_AB, 6, 1, 0 },

    { "threads_thread_convert", NGX_HTTP_THREADS_SQL_THREAD_CONVERT, 3, 0, 1 },

    { "threads_conv_create_keyed", NGX_HTTP_THREADS_SQL_CONV_CREATE_KEYED, 7,
      1, 1 },
    { "threads_items_create_keyed", NGX_HTTP_THREADS_SQL_ITEMS_CREATE_KEYED,
      6, 1, 1 },

    { "threads_thread_filter_df", NGX_HTTP_THREADS_SQL_THREAD_FILTER_DF, 7,
      1, 0 },
    { "threads_thread_filter_af", NGX_HTTP_THREADS_SQL_THREAD_FILTER_AF, 7,
      1, 0 },
    { "threads_thread_filter_db", NGX_HTTP_THREADS_SQL_THREAD_FILTER_DB, 7,
      1, 0 },
    { "threads_thread_filter_ab", NGX_HTTP_THREADS_SQL_THREAD_FILTER_AB, 7,
      1, 0 },

    { "threads_conv_filter_df", NGX_HTTP_THREADS_SQL_CONV_FILTER_DF, 7, 1, 0 },
    { "threads_conv_filter_af", NGX_HTTP_THREADS_SQL_CONV_FILTER_AF, 7, 1, 0 },
    { "threads_conv_filter_db", NGX_HTTP_THREADS_SQL_CONV_FILTER_DB, 7, 1, 0 },
    { "threads_conv_filter_ab", NGX_HTTP_THREADS_SQL_CONV_FILTER_AB, 7, 1, 0 },

    { "threads_thread_create_keyed_new",
      NGX_HTTP_THREADS_SQL_THREAD_CREATE_KEYED_NEW, 7, 1, 1 },
};


/* threads_pg_citus on: the writes, through scripts/citus.sql's functions */
static const struct {
    ngx_uint_t   stmt;
    const char  *sql;
} ngx_http_threads_citus_stmts[] = {
    { NGX_HTTP_THREADS_STMT_THREAD_CREATE,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_CREATE },
    { NGX_HTTP_THREADS_STMT_THREAD_MODIFY,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_MODIFY },
    { NGX_HTTP_THREADS_STMT_THREAD_DELETE,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_DELETE },
    { NGX_HTTP_THREADS_STMT_MESSAGE_CREATE,
      NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_CREATE },
    { NGX_HTTP_THREADS_STMT_MESSAGE_MODIFY,
      NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_MODIFY },
    { NGX_HTTP_THREADS_STMT_MESSAGE_DELETE,
      NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_DELETE },
    { NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_CREATE_KEYED },
    /* the function answers every case in one row: never a second statement */
    { NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED_NEW,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_CREATE_KEYED },
    { NGX_HTTP_THREADS_STMT_MESSAGE_CREATE_KEYED,
      NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_CREATE_KEYED },
    { NGX_HTTP_THREADS_STMT_CONV_CREATE,
      NGX_HTTP_THREADS_SQL_CITUS_CONV_CREATE },
    { NGX_HTTP_THREADS_STMT_CONV_MODIFY,
      NGX_HTTP_THREADS_SQL_CITUS_CONV_MODIFY },
    { NGX_HTTP_THREADS_STMT_CONV_DELETE,
      NGX_HTTP_THREADS_SQL_CITUS_CONV_DELETE },
    { NGX_HTTP_THREADS_STMT_ITEMS_CREATE,
      NGX_HTTP_THREADS_SQL_CITUS_ITEMS_CREATE },
    { NGX_HTTP_THREADS_STMT_ITEM_DELETE,
      NGX_HTTP_THREADS_SQL_CITUS_ITEM_DELETE },
    { NGX_HTTP_THREADS_STMT_THREAD_CONVERT,
      NGX_HTTP_THREADS_SQL_CITUS_THREAD_CONVERT },
    { NGX_HTTP_THREADS_STMT_CONV_CREATE_KEYED,
      NGX_HTTP_THREADS_SQL_CITUS_CONV_CREATE_KEYED },
    { NGX_HTTP_THREADS_STMT_ITEMS_CREATE_KEYED,
      NGX_HTTP_THREADS_SQL_CITUS_ITEMS_CREATE_KEYED },
};


static int ngx_http_threads_op_prepare_conv(ngx_http_threads_op_t *op,
    const char *input, size_t len);
static void ngx_http_threads_op_cleanup(void *data);
static void ngx_http_threads_op_done(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res);
static ngx_uint_t ngx_http_threads_op_key_seen(ngx_http_threads_op_t *op,
    PGresult *res);
static ngx_int_t ngx_http_threads_op_result(ngx_http_request_t *r,
    ngx_http_threads_op_t *op, ngx_http_threads_pg_status_e status,
    PGresult *res);


#if (NGX_HTTP_THREADS_TRIM)
static ngx_event_t       ngx_http_threads_trim_event;
/* timers name their event's connection in debug logs: a dummy one */
static ngx_connection_t  ngx_http_threads_trim_conn;
#endif


/* op="..." of the metrics, in the order of ngx_http_threads_op_e */
static const char  *ngx_http_threads_op_names[] = {
    "thread_create", "thread_retrieve", "thread_modify", "thread_delete",
    "thread_list", "message_create", "message_retrieve", "message_modify",
    "message_delete", "message_list",
    "conversation_create", "conversation_retrieve", "conversation_modify",
    "conversation_delete", "conversation_list", "item_create",
    "item_retrieve", "item_delete", "item_list", "thread_convert"
};


ngx_int_t
ngx_http_threads_ops_init_conf(ngx_conf_t *cf)
{
    ngx_uint_t  i;

    for (i = 0; i < sizeof(ngx_http_threads_op_names) / sizeof(char *); i++) {
        if (ngx_http_threads_metrics_add_op(cf, ngx_http_threads_op_names[i])
            != (ngx_int_t) i)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_threads_ops_init_worker(ngx_cycle_t *cycle,
    ngx_http_threads_pg_conf_t *conf)
{
    ngx_uint_t  i;

    /* jansson's allocator and hash seed, before any thread validates */
    thr_json_init();

    /* a worker's own copy of the table: set once, before any query */
    if (conf->citus) {
        for (i = 0; i < sizeof(ngx_http_threads_citus_stmts)
                        / sizeof(ngx_http_threads_citus_stmts[0]); i++)
        {
            ngx_http_threads_stmts[ngx_http_threads_citus_stmts[i].stmt].sql =
                ngx_http_threads_citus_stmts[i].sql;
        }

        /* the fast keyed create calls the full function: all its eight */
        ngx_http_threads_stmts[NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED_NEW]
            .nparams =
            ngx_http_threads_stmts[NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED]
            .nparams;
    }

    return ngx_http_threads_pg_init_worker(cycle, conf, ngx_http_threads_stmts,
                                           sizeof(ngx_http_threads_stmts)
                                           / sizeof(ngx_http_threads_stmts[0]));
}


void
ngx_http_threads_ops_exit_worker(void)
{
#if (NGX_HTTP_THREADS_TRIM)
    if (ngx_http_threads_trim_event.timer_set) {
        ngx_del_timer(&ngx_http_threads_trim_event);
    }
#endif

    ngx_http_threads_pg_exit_worker();
}


#if (NGX_HTTP_THREADS_TRIM)

static void
ngx_http_threads_trim(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "threads: giving freed memory back");

    (void) malloc_trim(0);
}


/*
 * Memory that a large request freed stays with the allocator; a second
 * later (once a burst is over) it goes back to the system.
 */
static void
ngx_http_threads_schedule_trim(void)
{
    ngx_event_t  *ev = &ngx_http_threads_trim_event;

    if (ev->timer_set) {
        return;
    }

    ngx_http_threads_trim_conn.fd = (ngx_socket_t) -1;

    ev->handler = ngx_http_threads_trim;
    ev->log = ngx_cycle->log;
    ev->data = &ngx_http_threads_trim_conn;
    ev->cancelable = 1;

    ngx_add_timer(ev, 1000);
}

#endif


ngx_http_threads_op_t *
ngx_http_threads_op_create(ngx_http_request_t *r, ngx_http_threads_op_e kind)
{
    ngx_http_cleanup_t     *cln;
    ngx_http_threads_op_t  *op;

    op = ngx_pcalloc(r->pool, sizeof(ngx_http_threads_op_t));
    if (op == NULL) {
        return NULL;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_threads_op_cleanup;
    cln->data = op;

    op->request = r;
    op->kind = kind;

    return op;
}


void
ngx_http_threads_op_release(ngx_http_threads_op_t *op)
{
    thr_thread_req_free(&op->body);
    thr_list_args_free(&op->args);
    thr_conv_req_free(&op->conv);
    free(op->message);

    if (op->direct_res) {
        PQclear(op->direct_res);
        op->direct_res = NULL;
    }
    op->message = NULL;
}


/* The request goes away: its query is forgotten, its memory given back. */
static void
ngx_http_threads_op_cleanup(void *data)
{
    ngx_http_threads_op_t  *op = data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->request->connection->log, 0,
                   "threads: request done, op %d", (int) op->kind);

    ngx_http_threads_pg_cancel(&op->query);

    op->gone = 1;

    if (op->validating) {
        /* a thread still works on it; the task's end frees it */
        return;
    }

    ngx_http_threads_op_release(op);

#if (NGX_HTTP_THREADS_TRIM)
    if (op->large) {
        ngx_http_threads_schedule_trim();
    }
#endif
}


static void
ngx_http_threads_op_param(ngx_http_threads_op_t *op, ngx_uint_t i,
    const char *value)
{
    op->values[i] = value;
    op->lengths[i] = value ? (int) ngx_strlen(value) : 0;
}


void
ngx_http_threads_id_error(thr_error_t *err, const u_char *id, size_t len,
    const char *prefix, size_t plen, const char *param, const char *what)
{
    if (len < plen || ngx_strncmp(id, prefix, plen) != 0) {
        thr_error_set(err, NGX_HTTP_BAD_REQUEST, "invalid_request_error",
                      "invalid_value", param,
                      "Invalid '%s': '%.*s'. Expected an ID that begins "
                      "with '%.*s'.", param, (int) len, id, (int) plen,
                      prefix);
        return;
    }

    thr_error_set(err, NGX_HTTP_NOT_FOUND, "invalid_request_error", NULL,
                  NULL, "No %s found with id '%.*s'.", what, (int) len, id);
}


/*
 * A cursor must look like an id of the listed kind ("thread_", "msg_"); a
 * NULL prefix: an item id of any type.
 */
static int
ngx_http_threads_op_cursor(const char *id, const char *param,
    const char *prefix, const char *what, thr_error_t *err)
{
    if (id == NULL
        || (prefix && thr_id_is_valid(id, ngx_strlen(id), prefix))
        || (prefix == NULL && thr_item_id_is_valid(id, ngx_strlen(id))))
    {
        return THR_OK;
    }

    if (prefix == NULL) {
        thr_error_set(err, NGX_HTTP_BAD_REQUEST, "invalid_request_error",
                      "invalid_value", param,
                      "Invalid '%s': '%s'. Expected an item ID.", param, id);
        return THR_INVALID;
    }

    ngx_http_threads_id_error(err, (u_char *) id, ngx_strlen(id), prefix,
                              ngx_strlen(prefix) - 1, param, what);
    return THR_INVALID;
}


/*
 * Query args to a list statement: which of the four variants, the keyset
 * bounds lo/hi (see ngx_http_threads_sql.h), the limit and the budget.
 */
static int
ngx_http_threads_op_list(ngx_http_threads_op_t *op, const char *args,
    size_t len)
{
    int                rc;
    ngx_uint_t         kind, variant;
    const char        *prefix, *what;
    thr_list_args_t   *a = &op->args;

    switch (op->kind) {

    case NGX_HTTP_THREADS_OP_THREAD_LIST:
        kind = THR_LIST_THREADS;
        prefix = "thread_";
        what = "thread";
        break;

    case NGX_HTTP_THREADS_OP_CONVERSATION_LIST:
        kind = THR_LIST_THREADS;
        prefix = "conv_";
        what = "conversation";
        break;

    case NGX_HTTP_THREADS_OP_ITEM_LIST:
        kind = THR_LIST_ITEMS;
        prefix = NULL;
        what = "item";
        break;

    default:
        kind = THR_LIST_MESSAGES;
        prefix = "msg_";
        what = "message";
    }

    rc = thr_list_args_parse(args, len, kind, a, &op->err);
    if (rc != THR_OK) {
        return rc;
    }

    rc = ngx_http_threads_op_cursor(a->after, "after", prefix, what,
                                    &op->err);
    if (rc == THR_OK) {
        rc = ngx_http_threads_op_cursor(a->before, "before", prefix, what,
                                        &op->err);
    }

    if (rc != THR_OK) {
        return rc;
    }

    if (a->before && a->after == NULL) {
        /* a page just before the cursor: scan away from it, then turn */
        variant = a->desc ? 2 : 3;
        op->lo = a->desc ? a->before : NULL;
        op->hi = a->desc ? NULL : a->before;

    } else {
        variant = a->desc ? 0 : 1;
        op->lo = a->desc ? a->before : a->after;
        op->hi = a->desc ? a->after : a->before;
    }

    *ngx_sprintf(op->limit, "%ui", (ngx_uint_t) a->limit) = '\0';
    *ngx_sprintf(op->budget, "%uz", op->page_bytes) = '\0';

    if (kind == THR_LIST_ITEMS) {
        op->stmt = NGX_HTTP_THREADS_STMT_ITEM_LIST + variant;
        ngx_http_threads_op_param(op, 2, (char *) op->limit);
        ngx_http_threads_op_param(op, 3, op->lo);
        ngx_http_threads_op_param(op, 4, op->hi);
        ngx_http_threads_op_param(op, 5, (char *) op->budget);
        return THR_OK;
    }

    if (kind == THR_LIST_THREADS) {
        /* a metadata filter has statements of its own (the pair tables) */
        if (op->kind == NGX_HTTP_THREADS_OP_CONVERSATION_LIST) {
            op->stmt = a->meta_key ? NGX_HTTP_THREADS_STMT_CONV_FILTER
                                   : NGX_HTTP_THREADS_STMT_CONV_LIST;
        } else {
            op->stmt = a->meta_key ? NGX_HTTP_THREADS_STMT_THREAD_FILTER
                                   : NGX_HTTP_THREADS_STMT_THREAD_LIST;
        }

        op->stmt += variant;
        ngx_http_threads_op_param(op, 1, (char *) op->limit);
        ngx_http_threads_op_param(op, 2, op->lo);
        ngx_http_threads_op_param(op, 3, op->hi);
        ngx_http_threads_op_param(op, 4, (char *) op->budget);
        ngx_http_threads_op_param(op, 5, a->meta_key);
        ngx_http_threads_op_param(op, 6, a->meta_value);
        return THR_OK;
    }

    op->stmt = NGX_HTTP_THREADS_STMT_MESSAGE_LIST + variant;
    ngx_http_threads_op_param(op, 2, (char *) op->limit);
    ngx_http_threads_op_param(op, 3, op->lo);
    ngx_http_threads_op_param(op, 4, op->hi);
    ngx_http_threads_op_param(op, 5, a->run_id);
    ngx_http_threads_op_param(op, 6, (char *) op->budget);

    return THR_OK;
}


/* A keyed create of one object: its id is the key's (the handler's). */
static void
ngx_http_threads_op_key_id(ngx_http_threads_op_t *op, u_char *id,
    const char *prefix)
{
    ngx_memcpy(id + ngx_strlen(prefix), op->idem_id, THR_ID_CHARS);
}


/*
 * The conversation operations (but the listings), as
 * ngx_http_threads_op_prepare(): $1 owner, $2 the conversation (or the
 * thread to convert).
 */
static int
ngx_http_threads_op_prepare_conv(ngx_http_threads_op_t *op,
    const char *input, size_t len)
{
    int  rc;

    switch (op->kind) {

    case NGX_HTTP_THREADS_OP_CONVERSATION_CREATE:
        rc = thr_items_conversation_create(input, len, &op->conv, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        if (thr_id_make((char *) op->new_id, "conv_") != 0) {
            return THR_NOMEM;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_CONV_CREATE;
        ngx_http_threads_op_param(op, 1, (char *) op->new_id);
        ngx_http_threads_op_param(op, 2, op->conv.metadata);
        ngx_http_threads_op_param(op, 3, op->conv.items);

        if (op->idem_key.len) {
            ngx_http_threads_op_key_id(op, op->new_id, "conv_");
            op->stmt = NGX_HTTP_THREADS_STMT_CONV_CREATE_KEYED;
            ngx_http_threads_op_param(op, 4, (char *) op->idem_digest);
            ngx_http_threads_op_param(op, 5, (char *) op->idem_lock);
            ngx_http_threads_op_param(op, 6, (char *) op->idem_ttl);
        }

        return THR_OK;

    case NGX_HTTP_THREADS_OP_CONVERSATION_MODIFY:
        rc = thr_items_conversation_update(input, len, &op->conv, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_CONV_MODIFY;
        ngx_http_threads_op_param(op, 2, op->conv.metadata);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_CONVERSATION_RETRIEVE:
        op->stmt = NGX_HTTP_THREADS_STMT_CONV_RETRIEVE;
        return THR_OK;

    case NGX_HTTP_THREADS_OP_CONVERSATION_DELETE:
        op->stmt = NGX_HTTP_THREADS_STMT_CONV_DELETE;
        return THR_OK;

    case NGX_HTTP_THREADS_OP_ITEM_CREATE:
        rc = thr_items_create(input, len, &op->conv, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_ITEMS_CREATE;
        ngx_http_threads_op_param(op, 2, op->conv.items);

        if (op->idem_key.len) {
            op->stmt = NGX_HTTP_THREADS_STMT_ITEMS_CREATE_KEYED;
            ngx_http_threads_op_param(op, 3, (char *) op->idem_key.data);
            ngx_http_threads_op_param(op, 4, (char *) op->idem_digest);
            ngx_http_threads_op_param(op, 5, (char *) op->idem_ttl);
        }

        return THR_OK;

    case NGX_HTTP_THREADS_OP_ITEM_RETRIEVE:
        op->stmt = NGX_HTTP_THREADS_STMT_ITEM_RETRIEVE;
        ngx_http_threads_op_param(op, 2, (char *) op->message_id.data);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_ITEM_DELETE:
        op->stmt = NGX_HTTP_THREADS_STMT_ITEM_DELETE;
        ngx_http_threads_op_param(op, 2, (char *) op->message_id.data);
        return THR_OK;

    default: /* NGX_HTTP_THREADS_OP_THREAD_CONVERT */
        if (thr_id_make((char *) op->new_id, "conv_") != 0) {
            return THR_NOMEM;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_THREAD_CONVERT;
        ngx_http_threads_op_param(op, 2, (char *) op->new_id);
        return THR_OK;
    }
}


/*
 * Runs wherever the caller likes, a thread of nginx's pool included: it
 * reads input and writes op's own fields, nothing else of the request.
 */
static int
ngx_http_threads_op_prepare(ngx_http_threads_op_t *op, const char *input,
    size_t len)
{
    int  rc;

    /* $1 is always the owner, $2 the thread id (but for thread lists) */
    ngx_http_threads_op_param(op, 0, (char *) op->owner.data);
    ngx_http_threads_op_param(op, 1, (char *) op->thread_id.data);

    switch (op->kind) {

    case NGX_HTTP_THREADS_OP_THREAD_CREATE:
        rc = thr_json_thread_create(input, len, &op->body, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        if (thr_id_make((char *) op->new_id, "thread_") != 0) {
            return THR_NOMEM;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_THREAD_CREATE;
        ngx_http_threads_op_param(op, 1, (char *) op->new_id);
        ngx_http_threads_op_param(op, 2, op->body.metadata);
        ngx_http_threads_op_param(op, 3, op->body.tool_resources);
        ngx_http_threads_op_param(op, 4, op->body.messages);

        if (op->idem_key.len) {
            /* the fast statement sends the first seven */
            ngx_http_threads_op_key_id(op, op->new_id, "thread_");
            op->stmt = NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED_NEW;
            ngx_http_threads_op_param(op, 5, (char *) op->idem_digest);
            ngx_http_threads_op_param(op, 6, (char *) op->idem_lock);
            ngx_http_threads_op_param(op, 7, (char *) op->idem_ttl);
        }

        return THR_OK;

    case NGX_HTTP_THREADS_OP_THREAD_MODIFY:
        rc = thr_json_thread_modify(input, len, &op->body, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        if (op->body.metadata == NULL && op->body.tool_resources == NULL) {
            /* {} changes nothing: no row lock, no write */
            op->stmt = NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE;
            return THR_OK;
        }

        op->stmt = NGX_HTTP_THREADS_STMT_THREAD_MODIFY;
        ngx_http_threads_op_param(op, 2, op->body.metadata);
        ngx_http_threads_op_param(op, 3, op->body.tool_resources);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_THREAD_RETRIEVE:
        op->stmt = NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE;
        return THR_OK;

    case NGX_HTTP_THREADS_OP_THREAD_DELETE:
        op->stmt = NGX_HTTP_THREADS_STMT_THREAD_DELETE;
        return THR_OK;

    case NGX_HTTP_THREADS_OP_MESSAGE_CREATE:
        rc = thr_json_message_create(input, len, &op->message, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        /* the normalized object begins {"id":"msg_...", */
        if (ngx_strncmp(op->message, "{\"id\":\"", 7) != 0
            || !thr_id_is_valid(op->message + 7, 4 + THR_ID_CHARS, "msg_"))
        {
            return THR_NOMEM;
        }

        ngx_cpystrn(op->new_id, (u_char *) op->message + 7,
                    4 + THR_ID_CHARS + 1);

        op->stmt = NGX_HTTP_THREADS_STMT_MESSAGE_CREATE;
        ngx_http_threads_op_param(op, 2, op->message);
        ngx_http_threads_op_param(op, 3, (char *) op->new_id);

        if (op->idem_key.len) {
            /* the keyed statement stores $4's id, not the object's */
            ngx_http_threads_op_key_id(op, op->new_id, "msg_");
            op->stmt = NGX_HTTP_THREADS_STMT_MESSAGE_CREATE_KEYED;
            ngx_http_threads_op_param(op, 4, (char *) op->idem_digest);
            ngx_http_threads_op_param(op, 5, (char *) op->idem_lock);
            ngx_http_threads_op_param(op, 6, (char *) op->idem_ttl);
        }

        return THR_OK;

    case NGX_HTTP_THREADS_OP_MESSAGE_MODIFY:
        rc = thr_json_message_modify(input, len, &op->message, &op->err);
        if (rc != THR_OK) {
            return rc;
        }

        op->stmt = op->message ? NGX_HTTP_THREADS_STMT_MESSAGE_MODIFY
                               : NGX_HTTP_THREADS_STMT_MESSAGE_RETRIEVE;
        ngx_http_threads_op_param(op, 2, (char *) op->message_id.data);
        ngx_http_threads_op_param(op, 3, op->message);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_MESSAGE_RETRIEVE:
        op->stmt = NGX_HTTP_THREADS_STMT_MESSAGE_RETRIEVE;
        ngx_http_threads_op_param(op, 2, (char *) op->message_id.data);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_MESSAGE_DELETE:
        op->stmt = NGX_HTTP_THREADS_STMT_MESSAGE_DELETE;
        ngx_http_threads_op_param(op, 2, (char *) op->message_id.data);
        return THR_OK;

    case NGX_HTTP_THREADS_OP_CONVERSATION_CREATE:
    case NGX_HTTP_THREADS_OP_CONVERSATION_MODIFY:
    case NGX_HTTP_THREADS_OP_ITEM_CREATE:
    case NGX_HTTP_THREADS_OP_ITEM_RETRIEVE:
    case NGX_HTTP_THREADS_OP_ITEM_DELETE:
    case NGX_HTTP_THREADS_OP_CONVERSATION_RETRIEVE:
    case NGX_HTTP_THREADS_OP_CONVERSATION_DELETE:
    case NGX_HTTP_THREADS_OP_THREAD_CONVERT:
        return ngx_http_threads_op_prepare_conv(op, input, len);

    default: /* the lists */
        return ngx_http_threads_op_list(op, input, len);
    }
}


void
ngx_http_threads_op_validate(ngx_http_threads_op_t *op, const char *input,
    size_t len)
{
    op->rc = ngx_http_threads_op_prepare(op, input, len);

    if (len > NGX_HTTP_THREADS_LARGE) {
        op->large = 1;
    }
}


void
ngx_http_threads_op_direct(ngx_http_threads_op_t *op, size_t len,
    ngx_log_t *log)
{
    if (op->rc != THR_OK || len <= NGX_HTTP_THREADS_DIRECT
        || (op->kind != NGX_HTTP_THREADS_OP_THREAD_CREATE
            && op->kind != NGX_HTTP_THREADS_OP_MESSAGE_CREATE
            && op->kind != NGX_HTTP_THREADS_OP_CONVERSATION_CREATE
            && op->kind != NGX_HTTP_THREADS_OP_ITEM_CREATE))
    {
        return;
    }

    op->direct_status = ngx_http_threads_pg_direct(
                            &ngx_http_threads_stmts[op->stmt], op->values,
                            op->lengths, log, &op->direct_res);

    if (op->direct_status == NGX_HTTP_THREADS_PG_OK
        && ngx_http_threads_op_key_seen(op, op->direct_res))
    {
        PQclear(op->direct_res);
        op->direct_res = NULL;
        op->direct_status = ngx_http_threads_pg_direct(
                                &ngx_http_threads_stmts[op->stmt], op->values,
                                op->lengths, log, &op->direct_res);
    }

    op->direct = 1;
}


ngx_int_t
ngx_http_threads_op_run(ngx_http_threads_op_t *op)
{
    PGresult  *res;

    ngx_http_request_t  *r = op->request;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: op %d validated: %d, statement \"%s\"",
                   (int) op->kind, op->rc,
                   op->rc == THR_OK ? ngx_http_threads_stmts[op->stmt].name
                                    : "");

    if (op->rc == THR_INVALID) {
        return ngx_http_threads_send_error(r, &op->err);
    }

    if (op->rc != THR_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (op->kind == NGX_HTTP_THREADS_OP_THREAD_CREATE
        || op->kind == NGX_HTTP_THREADS_OP_CONVERSATION_CREATE)
    {
        op->thread_id.data = op->new_id;
        op->thread_id.len = ngx_strlen(op->new_id);
    }

    /*
     * Validating a large body may have taken a while; the timers the pool
     * sets next count from nginx's cached clock, which must not be stale.
     */
    if (op->large) {
        ngx_time_update();
    }

    if (op->direct) {
        /* it ran in the validation's thread: the answer is here */
        op->direct = 0;
        res = op->direct_res;
        op->direct_res = NULL;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "threads: op %d ran in a thread", (int) op->kind);

        return ngx_http_threads_op_result(r, op, op->direct_status, res);
    }

    op->query.stmt = &ngx_http_threads_stmts[op->stmt];
    op->query.stmt_index = op->stmt;
    op->query.values = op->values;
    op->query.lengths = op->lengths;
    op->query.handler = ngx_http_threads_op_done;
    op->query.data = op;
    op->query.log = r->connection->log;
    op->query.metrics_op = op->kind;

    ngx_http_threads_pg_run(&op->query);

    return NGX_DONE;
}


/*
 * 1 when a fresh key's create stored nothing (no row): the key was used
 * before, or is held right now.  op->stmt is then the statement that tells
 * which, to be sent next.
 */
static ngx_uint_t
ngx_http_threads_op_key_seen(ngx_http_threads_op_t *op, PGresult *res)
{
    if (op->stmt != NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED_NEW
        || PQntuples(res) != 0)
    {
        return 0;
    }

    op->stmt = NGX_HTTP_THREADS_STMT_THREAD_CREATE_KEYED;

    return 1;
}


/* From an event of the pool: the statement's answer is in. */
static void
ngx_http_threads_op_done(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_threads_op_t  *op = q->data;

    r = op->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "threads: op %d answered, status %d", (int) op->kind,
                   (int) status);

    if (status == NGX_HTTP_THREADS_PG_OK
        && ngx_http_threads_op_key_seen(op, res))
    {
        /* the same query, its statement changed: the handler runs again */
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "threads: idempotency key seen before, asking how");
        PQclear(res);
        q->stmt = &ngx_http_threads_stmts[op->stmt];
        q->stmt_index = op->stmt;
        q->retried = 0;
        q->alone = 0;
        ngx_http_threads_pg_run(q);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_threads_op_result(r, op, status,
                                                             res));
    ngx_http_run_posted_requests(c);
}


/* The 404 of a statement that found no row, or a NULL body. */
static ngx_int_t
ngx_http_threads_op_not_found(ngx_http_request_t *r,
    ngx_http_threads_op_t *op, PGresult *res)
{
    char         *miss;
    ngx_uint_t    conv;
    const char   *what, *id;
    thr_error_t   err;

    conv = (op->kind >= NGX_HTTP_THREADS_OP_CONVERSATION_CREATE
            && op->kind <= NGX_HTTP_THREADS_OP_ITEM_LIST);

    what = conv ? "conversation" : "thread";
    id = (char *) op->thread_id.data;

    if (PQntuples(res) == 1) {
        miss = (PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
               ? PQgetvalue(res, 0, 1) : NULL;

        if (conv && op->kind != NGX_HTTP_THREADS_OP_CONVERSATION_LIST) {
            what = "item";
            id = (char *) op->message_id.data;

        } else if (!conv && op->kind != NGX_HTTP_THREADS_OP_THREAD_LIST) {
            what = "message";
            id = (char *) op->message_id.data;
        }

        if (miss) {
            /* a cursor that names nothing, not even a tombstone */
            id = (miss[0] == 'l') ? op->lo : op->hi;
        }
    }

    thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error", NULL,
                  NULL, "No %s found with id '%s'.", what, id ? id : "");

    return ngx_http_threads_send_error(r, &err);
}


static void
ngx_http_threads_op_clear_result(void *data)
{
    PQclear(data);
}


/*
 * The row of a keyed create (see ngx_http_threads_sql.h): NGX_OK when its
 * body is to be sent (a replay marked so), else the error was answered
 * and its code is in *rc.
 */
static ngx_int_t
ngx_http_threads_op_keyed(ngx_http_request_t *r, ngx_http_threads_op_t *op,
    PGresult *res, ngx_int_t *rc)
{
    char         *state;
    thr_error_t   err;

    if (PQntuples(res) != 1 || PQnfields(res) != 2 || PQgetisnull(res, 0, 1)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "threads: a keyed create returned an unexpected row");
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    state = PQgetvalue(res, 0, 1);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: idempotency key: %s", state);

    if (ngx_strcmp(state, "new") == 0 && !PQgetisnull(res, 0, 0)) {
        return NGX_OK;
    }

    if (ngx_strcmp(state, "replay") == 0 && !PQgetisnull(res, 0, 0)) {
        if (ngx_http_threads_add_header(r, "Idempotent-Replayed", "true", 4)
            != NGX_OK)
        {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strcmp(state, "missing") == 0) {
        thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                      NULL, NULL, "No %s found with id '%s'.",
                      op->kind == NGX_HTTP_THREADS_OP_ITEM_CREATE
                      ? "conversation" : "thread",
                      (char *) op->thread_id.data);

    } else if (ngx_strcmp(state, "reused") == 0) {
        thr_error_set(&err, 422, "invalid_request_error",
                      "idempotency_key_reused", NULL,
                      "Keys for idempotent requests can only be used with "
                      "the same method, path and body they were first used "
                      "with. Use another key than '%s' for a different "
                      "request.", (char *) op->idem_key.data);

        if (ngx_http_threads_add_header(r, "x-should-retry", "false", 5)
            != NGX_OK)
        {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_ERROR;
        }

    } else {
        /* busy: the first request with this key is still in flight */
        thr_error_set(&err, NGX_HTTP_CONFLICT, "invalid_request_error",
                      "idempotency_key_in_use", NULL,
                      "Another request with the Idempotency-Key '%s' is in "
                      "progress. Retry this one after a short wait.",
                      (char *) op->idem_key.data);

        if (ngx_http_threads_add_header(r, "x-should-retry", "true", 4)
            != NGX_OK)
        {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_ERROR;
        }
    }

    *rc = ngx_http_threads_send_error(r, &err);

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_threads_op_result(ngx_http_request_t *r, ngx_http_threads_op_t *op,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    size_t               len;
    ngx_int_t            rc;
    thr_error_t          err;
    ngx_pool_cleanup_t  *cln;

    switch (status) {

    case NGX_HTTP_THREADS_PG_OK:
        /* only the creates take a key: each has its keyed statement */
        if (op->idem_key.len
            && ngx_http_threads_op_keyed(r, op, res, &rc) != NGX_OK)
        {
            PQclear(res);
            return rc;
        }

        if (PQntuples(res) != 1 || PQnfields(res) < 1
            || PQgetisnull(res, 0, 0))
        {
            rc = ngx_http_threads_op_not_found(r, op, res);
            PQclear(res);
            return rc;
        }

        /* the body goes out from the result itself, freed with r */
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            PQclear(res);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_threads_op_clear_result;
        cln->data = res;

        len = PQgetlength(res, 0, 0);

        if (len > NGX_HTTP_THREADS_LARGE) {
            op->large = 1;
        }

        return ngx_http_threads_send_json(r, NGX_HTTP_OK,
                                          (u_char *) PQgetvalue(res, 0, 0),
                                          len);

    case NGX_HTTP_THREADS_PG_UNAVAILABLE:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "threads: database unavailable, answering 503");
        thr_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE, "server_error",
                      NULL, NULL,
                      "The server cannot reach its database right now. "
                      "Please retry your request after a short wait.");
        return ngx_http_threads_send_error(r, &err);

    case NGX_HTTP_THREADS_PG_TIMEOUT:
        /*
         * The statement may still be applied.  Sending it again is safe
         * for reads, modifies and keyed creates; a create without a key
         * may then be stored twice, and the SDKs must not retry it.
         */
        if (ngx_http_threads_stmts[op->stmt].idempotent) {
            thr_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT, "server_error",
                          NULL, NULL,
                          "The database did not answer in time. "
                          "Please retry your request.");
            rc = ngx_http_threads_add_header(r, "x-should-retry", "true", 4);

        } else {
            thr_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT, "server_error",
                          NULL, NULL,
                          "The database did not answer in time; the write "
                          "may or may not have been applied. Send creates "
                          "with an Idempotency-Key to retry them safely.");
            rc = ngx_http_threads_add_header(r, "x-should-retry", "false",
                                             5);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_threads_send_error(r, &err);

    default:
        /* the details went to the error log */
        PQclear(res);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
