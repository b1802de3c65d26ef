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
    NGX_HTTP_THREADS_STMT_THREAD_DELETE
};


#define NGX_HTTP_THREADS_THREAD_JSON                                          \
    "json_build_object('id', id, 'object', 'thread',"                         \
    " 'created_at', created_at, 'metadata', metadata,"                        \
    " 'tool_resources', tool_resources)::text"


/*
 * Every statement filters by owner ($1) and names ids as parameters, so
 * that a planner distributing by owner routes each to one shard.
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
      " SELECT " NGX_HTTP_THREADS_THREAD_JSON " FROM t",
      5, 0 },

    /* $1 owner, $2 id */
    { "threads_thread_retrieve",
      "SELECT " NGX_HTTP_THREADS_THREAD_JSON
      " FROM threads WHERE owner = $1 AND id = $2",
      2, 1 },

    /* $1 owner, $2 id, $3 metadata or NULL, $4 tool_resources or NULL:
     * NULL leaves the stored value as it is */
    { "threads_thread_modify",
      "UPDATE threads SET"
      " metadata = COALESCE($3::jsonb, metadata),"
      " tool_resources = COALESCE($4::jsonb, tool_resources)"
      " WHERE owner = $1 AND id = $2"
      " RETURNING " NGX_HTTP_THREADS_THREAD_JSON,
      4, 1 },

    /* $1 owner, $2 id; messages go with it (ON DELETE CASCADE) */
    { "threads_thread_delete",
      "DELETE FROM threads WHERE owner = $1 AND id = $2"
      " RETURNING json_build_object('id', id, 'object', 'thread.deleted',"
      " 'deleted', true)::text",
      2, 0 },
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


ngx_int_t
ngx_http_threads_op_start(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx,
    const char *body, size_t len)
{
    int                           rc;
    u_char                       *id;
    ngx_uint_t                    stmt;
    thr_error_t                   err;

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
        rc = THR_OK;
        stmt = NGX_HTTP_THREADS_STMT_THREAD_RETRIEVE;
        break;

    default: /* NGX_HTTP_THREADS_OP_THREAD_DELETE */
        rc = THR_OK;
        stmt = NGX_HTTP_THREADS_STMT_THREAD_DELETE;
        break;
    }

    if (rc == THR_INVALID) {
        return ngx_http_threads_send_error(r, &err);
    }

    if (rc != THR_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_threads_op_param(ctx, 0, (char *) ctx->owner.data);
    ngx_http_threads_op_param(ctx, 1, (char *) ctx->thread_id.data);

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


static ngx_int_t
ngx_http_threads_op_result(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    u_char       *data;
    size_t        len;
    thr_error_t   err;

    switch (status) {

    case NGX_HTTP_THREADS_PG_OK:
        if (PQntuples(res) == 0 || PQnfields(res) != 1) {
            thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                          NULL, NULL, "No thread found with id '%s'.",
                          (char *) ctx->thread_id.data);
            return ngx_http_threads_send_error(r, &err);
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
