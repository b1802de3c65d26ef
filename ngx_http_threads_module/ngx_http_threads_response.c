/*
 * JSON responses, the x-request-id header and log lines, and the filter
 * that replaces nginx's own error pages.  See ngx_http_threads_response.h.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_response.h"
#include "ngx_http_threads_id.h"


typedef struct {
    ngx_flag_t                 api;          /* threads_api on here */
    ngx_flag_t                 json_errors;
} ngx_http_threads_filter_conf_t;


/* The filter's state of one request. */
typedef struct {
    ngx_str_t                  replacement;  /* JSON for nginx's page */
    unsigned                   own_response:1;
    unsigned                   replace:1;
    unsigned                   replaced:1;
} ngx_http_threads_filter_ctx_t;


static void *ngx_http_threads_filter_create_conf(ngx_conf_t *cf);
static char *ngx_http_threads_filter_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_threads_filter_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_threads_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_threads_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_command_t  ngx_http_threads_filter_commands[] = {

    { ngx_string("threads_json_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_filter_conf_t, json_errors),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_threads_filter_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_threads_filter_init,          /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_threads_filter_create_conf,   /* create location configuration */
    ngx_http_threads_filter_merge_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_threads_filter_module = {
    NGX_MODULE_V1,
    &ngx_http_threads_filter_module_ctx,   /* module context */
    ngx_http_threads_filter_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_int_t  ngx_http_threads_request_id_index;


static void *
ngx_http_threads_filter_create_conf(ngx_conf_t *cf)
{
    ngx_http_threads_filter_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_filter_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->api = NGX_CONF_UNSET;
    conf->json_errors = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_threads_filter_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_threads_filter_conf_t  *prev = parent;
    ngx_http_threads_filter_conf_t  *conf = child;

    /* not inherited, as threads_api itself */
    ngx_conf_init_value(conf->api, 0);
    ngx_conf_merge_value(conf->json_errors, prev->json_errors, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_threads_filter_init(ngx_conf_t *cf)
{
    ngx_str_t  name = ngx_string("request_id");

    ngx_http_threads_request_id_index = ngx_http_get_variable_index(cf,
                                                                    &name);
    if (ngx_http_threads_request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_threads_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_threads_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_threads_response_api(ngx_conf_t *cf)
{
    ngx_http_threads_filter_conf_t  *conf;

    conf = ngx_http_conf_get_module_loc_conf(cf,
                                             ngx_http_threads_filter_module);
    conf->api = 1;

    return NGX_OK;
}


static ngx_http_threads_filter_ctx_t *
ngx_http_threads_filter_ctx(ngx_http_request_t *r)
{
    ngx_http_threads_filter_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_filter_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_threads_filter_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_threads_filter_module);

    return ctx;
}


/*
 * Error log lines of an API request name its x-request-id.  The handler
 * we wrap is kept in a pool cleanup of the request (a no-op one), not in
 * the module ctx: an internal redirect clears the ctx but keeps
 * r->log_handler, and must find it again, and never wrap it twice.
 */
static void
ngx_http_threads_log_marker(void *data)
{
}


static ngx_http_log_handler_pt
ngx_http_threads_wrapped_log_handler(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_threads_log_marker) {
            return *(ngx_http_log_handler_pt *) cln->data;
        }
    }

    return NULL;
}


static u_char *
ngx_http_threads_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char                     *p;
    ngx_http_log_handler_pt     next;
    ngx_http_variable_value_t  *id;

    next = ngx_http_threads_wrapped_log_handler(r);

    p = next ? next(r, sr, buf, len) : buf;
    len -= p - buf;

    id = ngx_http_get_indexed_variable(r, ngx_http_threads_request_id_index);

    if (id && !id->not_found) {
        p = ngx_snprintf(p, len, ", request_id: %*s", (size_t) id->len,
                         id->data);
    }

    return p;
}


ngx_int_t
ngx_http_threads_response_start(ngx_http_request_t *r)
{
    u_char                     *p;
    ngx_pool_cleanup_t         *cln;
    ngx_http_variable_value_t  *v;

    if (ngx_http_threads_filter_ctx(r) == NULL) {
        return NGX_ERROR;
    }

    /*
     * $request_id, unless something asked for it already, from our own
     * CSPRNG buffer: nginx's asks OpenSSL's DRBG on every request, about
     * 8 % of a worker's CPU in the retrieve-heavy mix (perf).  Set in the
     * variable, so access logs still name the x-request-id sent.
     */
    v = &r->variables[ngx_http_threads_request_id_index];

    if (!v->valid && !v->not_found) {
        p = ngx_pnalloc(r->pool, THR_REQUEST_ID_CHARS);
        if (p == NULL) {
            return NGX_ERROR;
        }

        /* without randomness, nginx's own variable handler answers */
        if (thr_request_id((char *) p) == 0) {
            v->data = p;
            v->len = THR_REQUEST_ID_CHARS;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;
        }
    }

    if (r->log_handler == NULL
        || r->log_handler == ngx_http_threads_log_error)
    {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_log_handler_pt));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_threads_log_marker;
    *(ngx_http_log_handler_pt *) cln->data = r->log_handler;
    r->log_handler = ngx_http_threads_log_error;

    return NGX_OK;
}


ngx_int_t
ngx_http_threads_add_header(ngx_http_request_t *r, const char *key,
    const char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = len;
    h->lowcase_key = NULL;
#if (nginx_version >= 1023000)
    /* since 1.23, headers of one name are chained */
    h->next = NULL;
#endif

    return NGX_OK;
}


/* Headers of a JSON body of len bytes, for ours and for replaced pages. */
static ngx_int_t
ngx_http_threads_set_json_headers(ngx_http_request_t *r, ngx_uint_t status,
    size_t len)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = sizeof("application/json") - 1;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        /* nothing was written: retrying is safe, and what the SDKs do */
        if (ngx_http_threads_add_header(r, "Retry-After", "1", 1) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_threads_add_header(r, "x-should-retry", "true", 4);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_threads_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_str_t                       type = ngx_string("application/json");
    ngx_http_complex_value_t        cv;
    ngx_http_threads_filter_ctx_t  *ctx;

    ctx = ngx_http_threads_filter_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->own_response = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: response %ui, %uz bytes", status, len);

    if (ngx_http_threads_set_json_headers(r, status, len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value.data = data;
    cv.value.len = len;

    return ngx_http_send_response(r, status, &type, &cv);
}


/* The JSON text of err, in r's pool. */
static ngx_int_t
ngx_http_threads_error_text(ngx_http_request_t *r, thr_error_t *err,
    ngx_str_t *out)
{
    char       *json;
    ngx_str_t   text;

    json = thr_error_json(err);
    if (json == NULL) {
        return NGX_ERROR;
    }

    text.data = (u_char *) json;
    text.len = ngx_strlen(json);

    out->data = ngx_pstrdup(r->pool, &text);
    out->len = text.len;
    free(json);

    return out->data ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_threads_send_error(ngx_http_request_t *r, thr_error_t *err)
{
    ngx_str_t  text;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: error %ui \"%s\" param \"%s\"",
                   (ngx_uint_t) err->status, err->code ? err->code : "",
                   err->param);

    if (ngx_http_threads_error_text(r, err, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_threads_send_json(r, err->status, text.data, text.len);
}


/* The API's JSON envelope for an error page that nginx itself made. */
static ngx_int_t
ngx_http_threads_error_page(ngx_http_request_t *r,
    ngx_http_threads_filter_ctx_t *ctx)
{
    ngx_uint_t                 status;
    thr_error_t                err;
    ngx_http_core_loc_conf_t  *clcf;

    status = r->headers_out.status;

    switch (status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
        thr_error_set(&err, status, "invalid_request_error",
                      "request_too_large", NULL,
                      "Request body too large. The limit is %lld bytes.",
                      (long long) clcf->client_max_body_size);
        break;

    case NGX_HTTP_BAD_REQUEST:
        thr_error_set(&err, status, "invalid_request_error", NULL, NULL,
                      "The request could not be read.");
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        thr_error_set(&err, status, "invalid_request_error", NULL, NULL,
                      "The request was not received in time.");
        break;

    case NGX_HTTP_LENGTH_REQUIRED:
        thr_error_set(&err, status, "invalid_request_error", NULL, NULL,
                      "A Content-Length header is required.");
        break;

    default:
        if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            thr_error_set(&err, status, "server_error", NULL, NULL,
                          "The server had an error while processing your "
                          "request. Sorry about that!");
        } else {
            thr_error_set(&err, status, "invalid_request_error", NULL, NULL,
                          "The request failed with HTTP status %u.",
                          (unsigned) status);
        }
        break;
    }

    return ngx_http_threads_error_text(r, &err, &ctx->replacement);
}


static ngx_int_t
ngx_http_threads_header_filter(ngx_http_request_t *r)
{
    ngx_http_variable_value_t       *id;
    ngx_http_threads_filter_ctx_t   *ctx;
    ngx_http_threads_filter_conf_t  *conf;

    conf = ngx_http_get_module_loc_conf(r, ngx_http_threads_filter_module);

    /*
     * Inside an API location; or anywhere threads_json_errors is on, which
     * at server level also covers what nginx refuses before it picks a
     * location (a malformed or over-long request line, say).
     */
    if (r != r->main || conf == NULL || !(conf->api || conf->json_errors)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_threads_filter_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    id = ngx_http_get_indexed_variable(r, ngx_http_threads_request_id_index);

    if (id && !id->not_found
        && ngx_http_threads_add_header(r, "x-request-id", (char *) id->data,
                                       id->len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->own_response || r->headers_out.status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    /*
     * Outside an API location only nginx's own error pages are replaced
     * (text/html from ngx_http_send_special_response), never a body that
     * a `return` or an upstream chose.
     */
    if (!conf->api
        && (r->upstream
            || r->headers_out.content_type.len != sizeof("text/html") - 1
            || ngx_strncmp(r->headers_out.content_type.data, "text/html",
                           sizeof("text/html") - 1) != 0))
    {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_threads_error_page(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->replace = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: nginx's %ui page replaced by JSON",
                   r->headers_out.status);

    if (ngx_http_threads_set_json_headers(r, r->headers_out.status,
                                          ctx->replacement.len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_threads_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl, out;
    ngx_http_threads_filter_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_filter_module);

    if (ctx == NULL || !ctx->replace || in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's HTML page is dropped; our JSON goes out once instead */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (ctx->replaced) {
        return NGX_OK;
    }

    ctx->replaced = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->replacement.data;
    b->last = b->pos + ctx->replacement.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
