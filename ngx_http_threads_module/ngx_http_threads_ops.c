/*
 * The operations: a validated request becomes one statement, and its one
 * row (or none) becomes the response.  PostgreSQL builds the response
 * JSON, so the worker neither parses nor re-serializes stored objects.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_module.h"
#include "ngx_http_threads_id.h"


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
    NGX_HTTP_THREADS_STMT_MESSAGE_LIST      /* 4 variants */
};


#define NGX_HTTP_THREADS_THREAD_JSON(t)                                       \
    "json_build_object('id', " t "id, 'object', 'thread',"                    \
    " 'created_at', " t "created_at, 'metadata', " t "metadata,"              \
    " 'tool_resources', " t "tool_resources)"

#define NGX_HTTP_THREADS_MESSAGE_JSON(m)                                      \
    "json_build_object('id', " m "id, 'object', 'thread.message',"            \
    " 'created_at', " m "created_at, 'thread_id', " m "thread_id,"            \
    " 'status', 'completed', 'incomplete_details', NULL,"                     \
    " 'completed_at', " m "created_at, 'incomplete_at', NULL,"                \
    " 'role', " m "role, 'content', " m "content,"                            \
    " 'assistant_id', " m "assistant_id, 'run_id', " m "run_id,"              \
    " 'attachments', " m "attachments, 'metadata', " m "metadata)"


/*
 * Listings are keyset pages over seq, the creation order: rows strictly
 * between the cursors lo and hi (seq of a live row or of a tombstone, so
 * that a deleted cursor still pages), scanned in one direction, returned
 * in the listing's order.  scan/out/back are ASC or DESC; each variant is
 * its own statement, so that every page is an index range scan.
 *
 * The row is (body, missing): body NULL and missing 'lo' or 'hi' when a
 * cursor names nothing.
 */
#define NGX_HTTP_THREADS_LIST_TAIL(scan, out, back, limit)                    \
    " ORDER BY x.seq " scan " LIMIT " limit "::int + 1),"                     \
    " p AS (SELECT * FROM r ORDER BY seq " scan " LIMIT " limit "::int)"      \
    " SELECT CASE WHEN c.miss IS NULL THEN json_build_object("                \
    "'object', 'list',"                                                       \
    " 'data', COALESCE((SELECT json_agg(j ORDER BY seq " out ") FROM p),"     \
    " '[]'::json),"                                                           \
    " 'first_id', (SELECT id FROM p ORDER BY seq " out " LIMIT 1),"           \
    " 'last_id', (SELECT id FROM p ORDER BY seq " back " LIMIT 1),"           \
    " 'has_more', (SELECT count(*) FROM r) > " limit "::int)::text END,"      \
    " c.miss"

#define NGX_HTTP_THREADS_CURSOR_MISS(lo, hi)                                  \
    "(SELECT CASE"                                                            \
    " WHEN " lo "::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo)"        \
    " THEN 'lo'"                                                              \
    " WHEN " hi "::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi)"        \
    " THEN 'hi' END AS miss) c"

/* $1 owner, $2 limit, $3 lo id, $4 hi id, $5 metadata key, $6 value */
#define NGX_HTTP_THREADS_THREAD_LIST(scan, out, back)                         \
    "WITH lo AS (SELECT seq FROM threads WHERE owner = $1 AND id = $3"        \
    " UNION ALL SELECT seq FROM thread_tombstones"                            \
    " WHERE owner = $1 AND id = $3 LIMIT 1),"                                 \
    " hi AS (SELECT seq FROM threads WHERE owner = $1 AND id = $4"            \
    " UNION ALL SELECT seq FROM thread_tombstones"                            \
    " WHERE owner = $1 AND id = $4 LIMIT 1),"                                 \
    " r AS (SELECT x.id, x.seq, " NGX_HTTP_THREADS_THREAD_JSON("x.")          \
    " AS j FROM threads x WHERE x.owner = $1"                                 \
    " AND x.seq > COALESCE((SELECT seq FROM lo), 0)"                          \
    " AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807)"        \
    " AND ($5::text IS NULL"                                                  \
    " OR x.metadata @> jsonb_build_object($5::text, $6::text))"               \
    NGX_HTTP_THREADS_LIST_TAIL(scan, out, back, "$2")                         \
    " FROM " NGX_HTTP_THREADS_CURSOR_MISS("$3", "$4")

/* $1 owner, $2 thread, $3 limit, $4 lo id, $5 hi id, $6 run_id */
#define NGX_HTTP_THREADS_MESSAGE_LIST(scan, out, back)                        \
    "WITH lo AS (SELECT seq FROM messages"                                    \
    " WHERE owner = $1 AND thread_id = $2 AND id = $4"                        \
    " UNION ALL SELECT seq FROM message_tombstones"                           \
    " WHERE owner = $1 AND thread_id = $2 AND id = $4 LIMIT 1),"              \
    " hi AS (SELECT seq FROM messages"                                        \
    " WHERE owner = $1 AND thread_id = $2 AND id = $5"                        \
    " UNION ALL SELECT seq FROM message_tombstones"                           \
    " WHERE owner = $1 AND thread_id = $2 AND id = $5 LIMIT 1),"              \
    " r AS (SELECT x.id, x.seq, " NGX_HTTP_THREADS_MESSAGE_JSON("x.")         \
    " AS j FROM messages x WHERE x.owner = $1 AND x.thread_id = $2"           \
    " AND x.seq > COALESCE((SELECT seq FROM lo), 0)"                          \
    " AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807)"        \
    " AND ($6::text IS NULL OR x.run_id = $6)"                                \
    NGX_HTTP_THREADS_LIST_TAIL(scan, out, back, "$3")                         \
    " FROM threads t, " NGX_HTTP_THREADS_CURSOR_MISS("$4", "$5")              \
    " WHERE t.owner = $1 AND t.id = $2"


/*
 * Every statement filters by owner ($1) and names ids as parameters, so
 * that a planner distributing by owner routes each to one shard.  Each
 * returns no row when the thread is not there (another owner's included),
 * else one row whose first column is the response body.
 */
ngx_http_threads_pg_stmt_t  ngx_http_threads_stmts[] = {

    /* $1 owner, $2 id, $3 metadata, $4 tool_resources, $5 messages:
     * the thread and its messages in one statement, one transaction */
    { "threads_thread_create",
      "WITH t AS ("
      " INSERT INTO threads (owner, id, created_at, metadata,"
      " tool_resources)"
      " VALUES ($1, $2, floor(extract(epoch FROM now()))::bigint,"
      " $3::jsonb, $4::jsonb)"
      " RETURNING id, created_at, metadata, tool_resources),"
      " m AS ("
      " INSERT INTO messages (owner, thread_id, id, created_at, role,"
      " content, attachments, metadata)"
      " SELECT $1, $2, e->>'id', t.created_at, e->>'role', e->'content',"
      " e->'attachments', e->'metadata'"
      " FROM t, jsonb_array_elements($5::jsonb) WITH ORDINALITY AS x(e, n)"
      " ORDER BY n)"
      " SELECT " NGX_HTTP_THREADS_THREAD_JSON("") "::text FROM t",
      5, 0 },

    /* $1 owner, $2 id */
    { "threads_thread_retrieve",
      "SELECT " NGX_HTTP_THREADS_THREAD_JSON("") "::text"
      " FROM threads WHERE owner = $1 AND id = $2",
      2, 1 },

    /* $1 owner, $2 id, $3 metadata or NULL, $4 tool_resources or NULL:
     * NULL leaves the stored value as it is */
    { "threads_thread_modify",
      "UPDATE threads SET"
      " metadata = COALESCE($3::jsonb, metadata),"
      " tool_resources = COALESCE($4::jsonb, tool_resources)"
      " WHERE owner = $1 AND id = $2"
      " RETURNING " NGX_HTTP_THREADS_THREAD_JSON("") "::text",
      4, 1 },

    /* $1 owner, $2 id; messages go with it (ON DELETE CASCADE); the
     * tombstone keeps listings that use it as a cursor paging */
    { "threads_thread_delete",
      "WITH d AS (DELETE FROM threads WHERE owner = $1 AND id = $2"
      " RETURNING id, seq),"
      " s AS (INSERT INTO thread_tombstones (owner, id, seq)"
      " SELECT $1, $2, seq FROM d ON CONFLICT DO NOTHING)"
      " SELECT json_build_object('id', id, 'object', 'thread.deleted',"
      " 'deleted', true)::text FROM d",
      2, 0 },

    /* listings: desc forward, asc forward, desc backward, asc backward */
    { "threads_thread_list_df",
      NGX_HTTP_THREADS_THREAD_LIST("DESC", "DESC", "ASC"), 6, 1 },
    { "threads_thread_list_af",
      NGX_HTTP_THREADS_THREAD_LIST("ASC", "ASC", "DESC"), 6, 1 },
    { "threads_thread_list_db",
      NGX_HTTP_THREADS_THREAD_LIST("ASC", "DESC", "ASC"), 6, 1 },
    { "threads_thread_list_ab",
      NGX_HTTP_THREADS_THREAD_LIST("DESC", "ASC", "DESC"), 6, 1 },

    /* $1 owner, $2 thread, $3 message object, $4 message id; the thread
     * row is locked against a concurrent delete */
    { "threads_message_create",
      "WITH t AS (SELECT id FROM threads WHERE owner = $1 AND id = $2"
      " FOR KEY SHARE),"
      " m AS (INSERT INTO messages (owner, thread_id, id, created_at, role,"
      " content, attachments, metadata)"
      " SELECT $1, $2, $4, floor(extract(epoch FROM now()))::bigint,"
      " $3::jsonb->>'role', $3::jsonb->'content',"
      " $3::jsonb->'attachments', $3::jsonb->'metadata' FROM t"
      " RETURNING *)"
      " SELECT " NGX_HTTP_THREADS_MESSAGE_JSON("") "::text FROM m",
      4, 0 },

    /* $1 owner, $2 thread, $3 message: a NULL body is a missing message */
    { "threads_message_retrieve",
      "SELECT (SELECT " NGX_HTTP_THREADS_MESSAGE_JSON("m.") "::text"
      " FROM messages m"
      " WHERE m.owner = $1 AND m.thread_id = $2 AND m.id = $3)"
      " FROM threads WHERE owner = $1 AND id = $2",
      3, 1 },

    /* $1 owner, $2 thread, $3 message, $4 metadata or NULL */
    { "threads_message_modify",
      "WITH u AS (UPDATE messages SET metadata = COALESCE($4::jsonb, metadata)"
      " WHERE owner = $1 AND thread_id = $2 AND id = $3 RETURNING *)"
      " SELECT (SELECT " NGX_HTTP_THREADS_MESSAGE_JSON("u.") "::text FROM u)"
      " FROM threads WHERE owner = $1 AND id = $2",
      4, 1 },

    /* $1 owner, $2 thread, $3 message */
    { "threads_message_delete",
      "WITH d AS (DELETE FROM messages"
      " WHERE owner = $1 AND thread_id = $2 AND id = $3 RETURNING id, seq),"
      " s AS (INSERT INTO message_tombstones (owner, thread_id, id, seq)"
      " SELECT $1, $2, $3, seq FROM d ON CONFLICT DO NOTHING)"
      " SELECT (SELECT json_build_object('id', id,"
      " 'object', 'thread.message.deleted', 'deleted', true)::text FROM d)"
      " FROM threads WHERE owner = $1 AND id = $2",
      3, 0 },

    { "threads_message_list_df",
      NGX_HTTP_THREADS_MESSAGE_LIST("DESC", "DESC", "ASC"), 6, 1 },
    { "threads_message_list_af",
      NGX_HTTP_THREADS_MESSAGE_LIST("ASC", "ASC", "DESC"), 6, 1 },
    { "threads_message_list_db",
      NGX_HTTP_THREADS_MESSAGE_LIST("ASC", "DESC", "ASC"), 6, 1 },
    { "threads_message_list_ab",
      NGX_HTTP_THREADS_MESSAGE_LIST("DESC", "ASC", "DESC"), 6, 1 },
};

const ngx_uint_t  ngx_http_threads_nstmts =
    sizeof(ngx_http_threads_stmts) / sizeof(ngx_http_threads_stmts[0]);


static void ngx_http_threads_op_done(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res);
static ngx_int_t ngx_http_threads_op_result(ngx_http_request_t *r,
    ngx_http_threads_ctx_t *ctx, ngx_http_threads_pg_status_e status,
    PGresult *res);


static void
ngx_http_threads_op_param(ngx_http_threads_ctx_t *ctx, ngx_uint_t i,
    const char *value)
{
    ctx->values[i] = value;
    ctx->lengths[i] = value ? (int) ngx_strlen(value) : 0;
}


/*
 * An id that is not one of ours: 400 naming param when it does not even
 * begin with the kind's prefix (its first plen bytes), else 404, as a
 * well-formed id that names nothing.  For path ids and list cursors alike.
 */
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


/* A cursor must look like an id of the listed kind ("thread_", "msg_"). */
static int
ngx_http_threads_op_cursor(const char *id, const char *param,
    const char *prefix, const char *what, thr_error_t *err)
{
    if (id == NULL || thr_id_is_valid(id, ngx_strlen(id), prefix)) {
        return THR_OK;
    }

    ngx_http_threads_id_error(err, (u_char *) id, ngx_strlen(id), prefix,
                              ngx_strlen(prefix) - 1, param, what);
    return THR_INVALID;
}


/*
 * Query args to a list statement: which of the four variants, the keyset
 * bounds lo/hi (see NGX_HTTP_THREADS_LIST_TAIL) and the limit.
 */
static int
ngx_http_threads_op_list(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx,
    ngx_uint_t *stmt, thr_error_t *err)
{
    int                rc;
    u_char            *limit;
    ngx_uint_t         kind, variant;
    const char        *prefix, *what;
    thr_list_args_t   *a = &ctx->args;

    kind = (ctx->op == NGX_HTTP_THREADS_OP_THREAD_LIST) ? THR_LIST_THREADS
                                                        : THR_LIST_MESSAGES;
    prefix = (kind == THR_LIST_THREADS) ? "thread_" : "msg_";
    what = (kind == THR_LIST_THREADS) ? "thread" : "message";

    rc = thr_list_args_parse((char *) r->args.data, r->args.len, kind, a, err);
    if (rc != THR_OK) {
        return rc;
    }

    rc = ngx_http_threads_op_cursor(a->after, "after", prefix, what, err);
    if (rc == THR_OK) {
        rc = ngx_http_threads_op_cursor(a->before, "before", prefix, what,
                                        err);
    }

    if (rc != THR_OK) {
        return rc;
    }

    if (a->before && a->after == NULL) {
        /* a page just before the cursor: scan away from it, then turn */
        variant = a->desc ? 2 : 3;
        ctx->lo = a->desc ? a->before : NULL;
        ctx->hi = a->desc ? NULL : a->before;

    } else {
        variant = a->desc ? 0 : 1;
        ctx->lo = a->desc ? a->before : a->after;
        ctx->hi = a->desc ? a->after : a->before;
    }

    limit = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
    if (limit == NULL) {
        return THR_NOMEM;
    }
    *ngx_sprintf(limit, "%ui", (ngx_uint_t) a->limit) = '\0';

    if (kind == THR_LIST_THREADS) {
        *stmt = NGX_HTTP_THREADS_STMT_THREAD_LIST + variant;
        ngx_http_threads_op_param(ctx, 1, (char *) limit);
        ngx_http_threads_op_param(ctx, 2, ctx->lo);
        ngx_http_threads_op_param(ctx, 3, ctx->hi);
        ngx_http_threads_op_param(ctx, 4, a->meta_key);
        ngx_http_threads_op_param(ctx, 5, a->meta_value);

    } else {
        *stmt = NGX_HTTP_THREADS_STMT_MESSAGE_LIST + variant;
        ngx_http_threads_op_param(ctx, 2, (char *) limit);
        ngx_http_threads_op_param(ctx, 3, ctx->lo);
        ngx_http_threads_op_param(ctx, 4, ctx->hi);
        ngx_http_threads_op_param(ctx, 5, a->run_id);
    }

    return THR_OK;
}


ngx_int_t
ngx_http_threads_op_start(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx,
    const char *body, size_t len)
{
    int                           rc;
    u_char                       *id;
    ngx_uint_t                    stmt;
    thr_error_t                   err;

    stmt = 0;
    rc = THR_OK;

    /* $1 is always the owner, $2 the thread id (but for thread lists) */
    ngx_http_threads_op_param(ctx, 0, (char *) ctx->owner.data);
    ngx_http_threads_op_param(ctx, 1, (char *) ctx->thread_id.data);

    switch (ctx->op) {

    case NGX_HTTP_THREADS_OP_THREAD_CREATE:
        rc = thr_json_thread_create(body, len, &ctx->body, &err);
        if (rc != THR_OK) {
            break;
        }

        id = ngx_pnalloc(r->pool, sizeof("thread_") + THR_ID_CHARS);
        if (id == NULL || thr_id_make((char *) id, "thread_") != 0) {
            rc = THR_NOMEM;
            break;
        }

        ctx->thread_id.data = id;
        ctx->thread_id.len = ngx_strlen(id);

        stmt = NGX_HTTP_THREADS_STMT_THREAD_CREATE;
        ngx_http_threads_op_param(ctx, 1, (char *) id);
        ngx_http_threads_op_param(ctx, 2, ctx->body.metadata);
        ngx_http_threads_op_param(ctx, 3, ctx->body.tool_resources);
        ngx_http_threads_op_param(ctx, 4, ctx->body.messages);
        break;

    case NGX_HTTP_THREADS_OP_THREAD_MODIFY:
        rc = thr_json_thread_modify(body, len, &ctx->body, &err);
        if (rc != THR_OK) {
            break;
        }

        if (ctx->body.metadata == NULL && ctx->body.tool_resources == NULL) {
            /* {} changes nothing: no row lock, no write */
            stmt = NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE;
            break;
        }

        stmt = NGX_HTTP_THREADS_STMT_THREAD_MODIFY;
        ngx_http_threads_op_param(ctx, 2, ctx->body.metadata);
        ngx_http_threads_op_param(ctx, 3, ctx->body.tool_resources);
        break;

    case NGX_HTTP_THREADS_OP_THREAD_RETRIEVE:
        stmt = NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE;
        break;

    case NGX_HTTP_THREADS_OP_THREAD_DELETE:
        stmt = NGX_HTTP_THREADS_STMT_THREAD_DELETE;
        break;

    case NGX_HTTP_THREADS_OP_MESSAGE_CREATE:
        rc = thr_json_message_create(body, len, &ctx->message, &err);
        if (rc != THR_OK) {
            break;
        }

        /* the normalized object begins {"id":"msg_...", */
        id = ngx_pnalloc(r->pool, sizeof("msg_") + THR_ID_CHARS);
        if (id == NULL
            || ngx_strncmp(ctx->message, "{\"id\":\"", 7) != 0
            || !thr_id_is_valid(ctx->message + 7, 4 + THR_ID_CHARS, "msg_"))
        {
            rc = THR_NOMEM;
            break;
        }

        ngx_cpystrn(id, (u_char *) ctx->message + 7, 4 + THR_ID_CHARS + 1);

        stmt = NGX_HTTP_THREADS_STMT_MESSAGE_CREATE;
        ngx_http_threads_op_param(ctx, 2, ctx->message);
        ngx_http_threads_op_param(ctx, 3, (char *) id);
        break;

    case NGX_HTTP_THREADS_OP_MESSAGE_MODIFY:
        rc = thr_json_message_modify(body, len, &ctx->message, &err);
        if (rc != THR_OK) {
            break;
        }

        stmt = ctx->message ? NGX_HTTP_THREADS_STMT_MESSAGE_MODIFY
                            : NGX_HTTP_THREADS_STMT_MESSAGE_RETRIEVE;
        ngx_http_threads_op_param(ctx, 2, (char *) ctx->message_id.data);
        ngx_http_threads_op_param(ctx, 3, ctx->message);
        break;

    case NGX_HTTP_THREADS_OP_MESSAGE_RETRIEVE:
        stmt = NGX_HTTP_THREADS_STMT_MESSAGE_RETRIEVE;
        ngx_http_threads_op_param(ctx, 2, (char *) ctx->message_id.data);
        break;

    case NGX_HTTP_THREADS_OP_MESSAGE_DELETE:
        stmt = NGX_HTTP_THREADS_STMT_MESSAGE_DELETE;
        ngx_http_threads_op_param(ctx, 2, (char *) ctx->message_id.data);
        break;

    default: /* the lists */
        rc = ngx_http_threads_op_list(r, ctx, &stmt, &err);
        break;
    }

    if (rc == THR_INVALID) {
        return ngx_http_threads_send_error(r, &err);
    }

    if (rc != THR_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (len > 256 * 1024) {
        /*
         * Validating a large body takes a while; the timers the pool sets
         * next count from nginx's cached clock, which must not be stale.
         */
        ngx_time_update();
    }

    ctx->query.stmt = &ngx_http_threads_stmts[stmt];
    ctx->query.stmt_index = stmt;
    ctx->query.values = ctx->values;
    ctx->query.lengths = ctx->lengths;
    ctx->query.handler = ngx_http_threads_op_done;
    ctx->query.data = ctx;
    ctx->query.log = r->connection->log;

    ngx_http_threads_pg_run(&ctx->query);

    return NGX_DONE;
}


static void
ngx_http_threads_op_done(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_threads_ctx_t  *ctx = q->data;

    r = ctx->request;
    c = r->connection;

    ngx_http_finalize_request(r, ngx_http_threads_op_result(r, ctx, status,
                                                             res));
    ngx_http_run_posted_requests(c);
}


/* The 404 of a statement that found no row, or a NULL body. */
static ngx_int_t
ngx_http_threads_op_not_found(ngx_http_request_t *r,
    ngx_http_threads_ctx_t *ctx, PGresult *res)
{
    char         *miss;
    const char   *what, *id;
    thr_error_t   err;

    what = "thread";
    id = (char *) ctx->thread_id.data;

    if (PQntuples(res) == 1) {
        miss = (PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
               ? PQgetvalue(res, 0, 1) : NULL;

        if (ctx->op != NGX_HTTP_THREADS_OP_THREAD_LIST) {
            what = "message";
            id = (char *) ctx->message_id.data;
        }

        if (miss) {
            /* a cursor that names nothing, not even a tombstone */
            id = (miss[0] == 'l') ? ctx->lo : ctx->hi;
        }
    }

    thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error", NULL,
                  NULL, "No %s found with id '%s'.", what, id ? id : "");

    return ngx_http_threads_send_error(r, &err);
}


static ngx_int_t
ngx_http_threads_op_result(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    u_char       *data;
    size_t        len;
    thr_error_t   err;

    switch (status) {

    case NGX_HTTP_THREADS_PG_OK:
        if (PQntuples(res) != 1 || PQnfields(res) < 1
            || PQgetisnull(res, 0, 0))
        {
            return ngx_http_threads_op_not_found(r, ctx, res);
        }

        len = PQgetlength(res, 0, 0);

        data = ngx_pnalloc(r->pool, len);
        if (data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(data, PQgetvalue(res, 0, 0), len);

        return ngx_http_threads_send_json(r, NGX_HTTP_OK, data, len);

    case NGX_HTTP_THREADS_PG_UNAVAILABLE:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "threads: database unavailable, answering 503");
        thr_error_set(&err, NGX_HTTP_SERVICE_UNAVAILABLE, "server_error",
                      NULL, NULL,
                      "The server cannot reach its database right now. "
                      "Please retry your request after a short wait.");
        return ngx_http_threads_send_error(r, &err);

    case NGX_HTTP_THREADS_PG_TIMEOUT:
        thr_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT, "server_error",
                      NULL, NULL,
                      "The database did not answer in time. "
                      "Please retry your request.");
        return ngx_http_threads_send_error(r, &err);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
