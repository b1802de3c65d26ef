/*
 * ngx_http_threads_module: the OpenAI-compatible Threads API served from
 * nginx workers.  This file holds the directives, routing by method and
 * path, body reading, responses, and the filter that turns nginx's own
 * error pages inside an API location into the API's JSON errors.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>

#include "ngx_http_threads_module.h"
#include "ngx_http_threads_id.h"


static void *ngx_http_threads_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_threads_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_threads_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_threads_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_threads_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_threads_conninfo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_threads_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_threads_init_process(ngx_cycle_t *cycle);
static void ngx_http_threads_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_threads_handler(ngx_http_request_t *r);
static void ngx_http_threads_body_handler(ngx_http_request_t *r);
static ngx_http_threads_ctx_t *ngx_http_threads_get_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_threads_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_threads_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_conf_num_bounds_t  ngx_http_threads_pool_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


static ngx_command_t  ngx_http_threads_commands[] = {

    { ngx_string("threads_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_threads_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_loc_conf_t, enable),
      NULL },

    { ngx_string("threads_json_errors"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_loc_conf_t, json_errors),
      NULL },

    { ngx_string("threads_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_loc_conf_t, owner),
      NULL },

    { ngx_string("threads_owner_hash"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_loc_conf_t, owner_hash),
      NULL },

    { ngx_string("threads_owner_required"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_loc_conf_t, owner_required),
      NULL },

    { ngx_string("threads_pg_conninfo"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_threads_conninfo,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("threads_pg_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.pool_size),
      &ngx_http_threads_pool_bounds },

    { ngx_string("threads_pg_queue_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.queue_size),
      NULL },

    { ngx_string("threads_pg_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.queue_timeout),
      NULL },

    { ngx_string("threads_pg_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.connect_timeout),
      NULL },

    { ngx_string("threads_pg_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.query_timeout),
      NULL },

    { ngx_string("threads_pg_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.idle_timeout),
      NULL },

    { ngx_string("threads_pg_pipeline"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.pipeline),
      &ngx_http_threads_pool_bounds },

    { ngx_string("threads_pg_prepare"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.prepare),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_threads_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_threads_postconfiguration,    /* postconfiguration */

    ngx_http_threads_create_main_conf,     /* create main configuration */
    ngx_http_threads_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_threads_create_loc_conf,      /* create location configuration */
    ngx_http_threads_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_threads_module = {
    NGX_MODULE_V1,
    &ngx_http_threads_module_ctx,          /* module context */
    ngx_http_threads_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_threads_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_threads_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_int_t   ngx_http_threads_request_id_index;
static ngx_uint_t  ngx_http_threads_used;

/*
 * SHA-256 for owners, fetched once per worker: OpenSSL 3 looks the
 * algorithm up again on every EVP_sha256() digest otherwise.
 */
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
static EVP_MD      *ngx_http_threads_sha256;
#else
static const EVP_MD  *ngx_http_threads_sha256;
#endif
static EVP_MD_CTX  *ngx_http_threads_md_ctx;


static void *
ngx_http_threads_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_threads_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->pg.pool_size = NGX_CONF_UNSET_UINT;
    mcf->pg.queue_size = NGX_CONF_UNSET_UINT;
    mcf->pg.queue_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.query_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.idle_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.prepare = NGX_CONF_UNSET;
    mcf->pg.pipeline = NGX_CONF_UNSET_UINT;

    return mcf;
}


static char *
ngx_http_threads_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_threads_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->pg.pool_size, 4);
    ngx_conf_init_uint_value(mcf->pg.queue_size, 1024);
    ngx_conf_init_msec_value(mcf->pg.queue_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.connect_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.query_timeout, 30000);
    ngx_conf_init_msec_value(mcf->pg.idle_timeout, 60000);
    ngx_conf_init_value(mcf->pg.prepare, 1);
    ngx_conf_init_uint_value(mcf->pg.pipeline, 16);

    return NGX_CONF_OK;
}


static void *
ngx_http_threads_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_threads_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->enable = NGX_CONF_UNSET;
    lcf->json_errors = NGX_CONF_UNSET;
    lcf->owner = NGX_CONF_UNSET_PTR;
    lcf->owner_hash = NGX_CONF_UNSET;
    lcf->owner_required = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_threads_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_threads_loc_conf_t  *prev = parent;
    ngx_http_threads_loc_conf_t  *conf = child;

    /* not inherited: the API answers only where it is switched on */
    ngx_conf_init_value(conf->enable, 0);
    ngx_conf_merge_value(conf->json_errors, prev->json_errors, 0);
    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NULL);
    ngx_conf_merge_value(conf->owner_hash, prev->owner_hash, 1);
    ngx_conf_merge_value(conf->owner_required, prev->owner_required, 1);

    return NGX_CONF_OK;
}


static char *
ngx_http_threads_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_threads_loc_conf_t  *lcf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (lcf->enable) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->handler = ngx_http_threads_handler;
        ngx_http_threads_used = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_threads_conninfo(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_threads_main_conf_t  *mcf = conf;

    ngx_str_t  *value;

    if (mcf->pg.keywords) {
        return "is duplicate";
    }

    value = cf->args->elts;

    return ngx_http_threads_pg_parse_conninfo(cf, &mcf->pg, &value[1]);
}


static ngx_int_t
ngx_http_threads_postconfiguration(ngx_conf_t *cf)
{
    ngx_str_t                      name = ngx_string("request_id");
    ngx_http_threads_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_threads_module);

    if (ngx_http_threads_used && mcf->pg.keywords == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"threads_api\" needs \"threads_pg_conninfo\" "
                           "in the http block");
        return NGX_ERROR;
    }

    ngx_http_threads_used = 0;

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


/* Connections open lazily, in the worker, never in the master. */
static ngx_int_t
ngx_http_threads_init_process(ngx_cycle_t *cycle)
{
    ngx_http_threads_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_threads_module);

    if (mcf == NULL || mcf->pg.keywords == NULL) {
        return NGX_OK;
    }

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    ngx_http_threads_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
#else
    ngx_http_threads_sha256 = EVP_sha256();
#endif
    ngx_http_threads_md_ctx = EVP_MD_CTX_new();

    if (ngx_http_threads_sha256 == NULL || ngx_http_threads_md_ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "threads: SHA-256 is not available");
        return NGX_ERROR;
    }

    if (ngx_http_threads_pg_init_worker(cycle, &mcf->pg,
                                        ngx_http_threads_stmts,
                                        ngx_http_threads_nstmts)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_threads_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_threads_pg_exit_worker();

    EVP_MD_CTX_free(ngx_http_threads_md_ctx);
    ngx_http_threads_md_ctx = NULL;
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    EVP_MD_free(ngx_http_threads_sha256);
#endif
    ngx_http_threads_sha256 = NULL;
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


static ngx_int_t
ngx_http_threads_wrap_log_handler(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

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


static void
ngx_http_threads_cleanup(void *data)
{
    ngx_http_threads_ctx_t  *ctx = data;

    ngx_http_threads_pg_cancel(&ctx->query);
    thr_thread_req_free(&ctx->body);
    thr_list_args_free(&ctx->args);
    free(ctx->message);
    ctx->message = NULL;
}


static ngx_http_threads_ctx_t *
ngx_http_threads_get_ctx(ngx_http_request_t *r)
{
    ngx_http_cleanup_t      *cln;
    ngx_http_threads_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_threads_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_threads_cleanup;
    cln->data = ctx;

    ctx->request = r;

    ngx_http_set_ctx(r, ctx, ngx_http_threads_module);

    if (ngx_http_threads_wrap_log_handler(r) != NGX_OK) {
        return NULL;
    }

    return ctx;
}


static ngx_int_t
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

    return NGX_OK;
}


static void
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
        (void) ngx_http_threads_add_header(r, "Retry-After", "1", 1);
    }
}


ngx_int_t
ngx_http_threads_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len)
{
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_chain_t              out;
    ngx_http_threads_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_module);
    ctx->own_response = 1;

    ngx_http_threads_set_json_headers(r, status, len);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* The JSON text of err, in r's pool. */
static ngx_int_t
ngx_http_threads_error_text(ngx_http_request_t *r, thr_error_t *err,
    ngx_str_t *out)
{
    char  *json;

    json = thr_error_json(err);
    if (json == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(json);
    out->data = ngx_pnalloc(r->pool, out->len);

    if (out->data == NULL) {
        free(json);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, json, out->len);
    free(json);

    return NGX_OK;
}


ngx_int_t
ngx_http_threads_send_error(ngx_http_request_t *r, thr_error_t *err)
{
    ngx_str_t  text;

    if (ngx_http_threads_error_text(r, err, &text) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_threads_send_json(r, err->status, text.data, text.len);
}


/* An error answered before the body was read: the body is dropped. */
static ngx_int_t
ngx_http_threads_reject(ngx_http_request_t *r, thr_error_t *err)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_threads_send_error(r, err);
}


/*
 * The owner named by threads_owner, as a NUL-terminated string: the hex
 * SHA-256 of the value by default, so that API keys are never stored.
 */
static ngx_int_t
ngx_http_threads_owner(ngx_http_request_t *r, ngx_http_threads_loc_conf_t *lcf,
    ngx_str_t *owner)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;
    ngx_str_t     value;

    if (lcf->owner == NULL) {
        ngx_str_set(owner, "");
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, lcf->owner, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        if (lcf->owner_required) {
            return NGX_DECLINED;
        }

        ngx_str_set(owner, "");
        return NGX_OK;
    }

    if (!lcf->owner_hash) {
        owner->data = ngx_pnalloc(r->pool, value.len + 1);
        if (owner->data == NULL) {
            return NGX_ERROR;
        }

        owner->len = value.len;
        ngx_cpystrn(owner->data, value.data, value.len + 1);
        return NGX_OK;
    }

    if (!EVP_DigestInit_ex(ngx_http_threads_md_ctx, ngx_http_threads_sha256,
                           NULL)
        || !EVP_DigestUpdate(ngx_http_threads_md_ctx, value.data, value.len)
        || !EVP_DigestFinal_ex(ngx_http_threads_md_ctx, md, &mdlen))
    {
        return NGX_ERROR;
    }

    owner->data = ngx_pnalloc(r->pool, 2 * mdlen + 1);
    if (owner->data == NULL) {
        return NGX_ERROR;
    }

    owner->len = ngx_hex_dump(owner->data, md, mdlen) - owner->data;
    owner->data[owner->len] = '\0';

    return NGX_OK;
}


/*
 * The part of the URI after the location's prefix: "threads",
 * "threads/{id}", ...  For a regex location, the path from its
 * "/threads" segment on.
 */
static void
ngx_http_threads_route_path(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char                    *p, *last;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    *path = r->uri;

#if (NGX_PCRE)
    if (clcf->regex == NULL)
#endif
    {
        if (r->uri.len >= clcf->name.len
            && ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) == 0)
        {
            path->data += clcf->name.len;
            path->len -= clcf->name.len;
        }
    }

    last = path->data + path->len;

    if (path->len < sizeof("threads") - 1
        || ngx_strncmp(path->data, "threads", 7) != 0)
    {
        /* not right after the prefix: find the "/threads" segment */
        for (p = path->data; p + 8 <= last; p++) {
            if (ngx_strncmp(p, "/threads", 8) == 0
                && (p + 8 == last || p[8] == '/'))
            {
                path->data = p;
                break;
            }
        }
    }

    while (path->data < last && *path->data == '/') {
        path->data++;
    }

    path->len = last - path->data;
}


/*
 * Routes: the path's segments after the location prefix, and for each
 * shape the operation of each method.  -1: the method is not allowed.
 */
typedef struct {
    ngx_uint_t   nsegs;
    const char  *allow;
    ngx_int_t    get, post, delete;
} ngx_http_threads_route_t;

static ngx_http_threads_route_t  ngx_http_threads_routes[] = {
    /* /threads */
    { 1, "GET, POST", NGX_HTTP_THREADS_OP_THREAD_LIST,
      NGX_HTTP_THREADS_OP_THREAD_CREATE, -1 },
    /* /threads/{thread_id} */
    { 2, "GET, POST, DELETE", NGX_HTTP_THREADS_OP_THREAD_RETRIEVE,
      NGX_HTTP_THREADS_OP_THREAD_MODIFY, NGX_HTTP_THREADS_OP_THREAD_DELETE },
    /* /threads/{thread_id}/messages */
    { 3, "GET, POST", NGX_HTTP_THREADS_OP_MESSAGE_LIST,
      NGX_HTTP_THREADS_OP_MESSAGE_CREATE, -1 },
    /* /threads/{thread_id}/messages/{message_id} */
    { 4, "GET, POST, DELETE", NGX_HTTP_THREADS_OP_MESSAGE_RETRIEVE,
      NGX_HTTP_THREADS_OP_MESSAGE_MODIFY, NGX_HTTP_THREADS_OP_MESSAGE_DELETE }
};


/*
 * Splits path into at most 4 non-empty segments; returns their number, or
 * 0 when the path has another shape (an empty segment, too many).
 */
static ngx_uint_t
ngx_http_threads_split(ngx_str_t *path, ngx_str_t *segs)
{
    u_char      *p, *last, *slash;
    ngx_uint_t   n;

    p = path->data;
    last = path->data + path->len;

    for (n = 0; p <= last; n++) {
        if (n == 4) {
            return 0;
        }

        slash = ngx_strlchr(p, last, '/');
        if (slash == NULL) {
            slash = last;
        }

        if (slash == p) {
            return 0;
        }

        segs[n].data = p;
        segs[n].len = slash - p;
        p = slash + 1;
    }

    return n;
}


/*
 * An id never holds a slash: "%2F" in the raw path must not split it
 * into two segments once nginx has decoded the URI.
 */
static ngx_uint_t
ngx_http_threads_encoded_slash(ngx_http_request_t *r)
{
    u_char  *p, *last;

    last = r->unparsed_uri.data + r->unparsed_uri.len;

    if (r->args_start && r->args_start > r->unparsed_uri.data
        && r->args_start <= last)
    {
        last = r->args_start;
    }

    for (p = r->unparsed_uri.data; p + 2 < last; p++) {
        if (p[0] == '%' && p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_threads_bad_id(ngx_http_request_t *r, ngx_str_t *id,
    const char *prefix, const char *param, const char *what)
{
    thr_error_t  err;

    ngx_http_threads_id_error(&err, id->data, id->len, prefix,
                              ngx_strlen(prefix), param, what);
    return ngx_http_threads_reject(r, &err);
}


static ngx_int_t
ngx_http_threads_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc, op;
    ngx_str_t                     path, segs[4];
    ngx_uint_t                    n;
    thr_error_t                   err;
    ngx_http_threads_ctx_t       *ctx;
    ngx_http_threads_route_t     *route;
    ngx_http_threads_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_threads_module);

    ctx = ngx_http_threads_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* as OpenAI: without a key, every path is a 401 */
    rc = ngx_http_threads_owner(r, lcf, &ctx->owner);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        thr_error_set(&err, NGX_HTTP_UNAUTHORIZED, "invalid_request_error",
                      NULL, NULL,
                      "You didn't provide an API key. You need to provide "
                      "your API key in an Authorization header using Bearer "
                      "auth (i.e. Authorization: Bearer YOUR_KEY).");
        return ngx_http_threads_reject(r, &err);
    }

    ngx_http_threads_route_path(r, &path);

    n = ngx_http_threads_split(&path, segs);

    if (n == 0
        || ngx_http_threads_encoded_slash(r)
        || segs[0].len != 7 || ngx_strncmp(segs[0].data, "threads", 7) != 0
        || (n > 2 && (segs[2].len != 8
                      || ngx_strncmp(segs[2].data, "messages", 8) != 0)))
    {
        thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                      NULL, NULL, "Invalid URL (%.*s %.*s)",
                      (int) r->method_name.len, r->method_name.data,
                      (int) r->uri.len, r->uri.data);
        return ngx_http_threads_reject(r, &err);
    }

    route = &ngx_http_threads_routes[n - 1];

    switch (r->method) {
    case NGX_HTTP_GET:
        op = route->get;
        break;
    case NGX_HTTP_POST:
        op = route->post;
        break;
    case NGX_HTTP_DELETE:
        op = route->delete;
        break;
    default:
        op = -1;
    }

    if (op == -1) {
        thr_error_set(&err, NGX_HTTP_NOT_ALLOWED, "invalid_request_error",
                      NULL, NULL, "Invalid method for URL (%.*s %.*s)",
                      (int) r->method_name.len, r->method_name.data,
                      (int) r->uri.len, r->uri.data);

        if (ngx_http_threads_add_header(r, "Allow", route->allow,
                                        ngx_strlen(route->allow))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_threads_reject(r, &err);
    }

    ctx->op = op;

    if (n >= 2) {
        if (!thr_id_is_valid((char *) segs[1].data, segs[1].len, "thread_")) {
            /* never made here: no need to ask the database */
            return ngx_http_threads_bad_id(r, &segs[1], "thread",
                                           "thread_id", "thread");
        }

        ctx->thread_id.data = ngx_pnalloc(r->pool, segs[1].len + 1);
        if (ctx->thread_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->thread_id.len = segs[1].len;
        ngx_cpystrn(ctx->thread_id.data, segs[1].data, segs[1].len + 1);
    }

    if (n == 4) {
        if (segs[3].len < 3 || ngx_strncmp(segs[3].data, "msg", 3) != 0) {
            return ngx_http_threads_bad_id(r, &segs[3], "msg",
                                           "message_id", "message");
        }

        /* a malformed one may still be a 404 of its thread: ask */
        ctx->message_id.data = ngx_pnalloc(r->pool, segs[3].len + 1);
        if (ctx->message_id.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->message_id.len = segs[3].len;
        ngx_cpystrn(ctx->message_id.data, segs[3].data, segs[3].len + 1);
    }

    if (r->method == NGX_HTTP_POST) {
        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_threads_body_handler);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    if (!r->discard_body) {
        /* notice a client that goes away while the query runs */
        r->read_event_handler = ngx_http_test_reading;
    }

    rc = ngx_http_threads_op_start(r, ctx, NULL, 0);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    return NGX_DONE;
}


/* The whole body as one piece of memory: in memory, or in a temp file. */
static ngx_int_t
ngx_http_threads_read_body(ngx_http_request_t *r, u_char **data, size_t *len)
{
    u_char       *p;
    off_t         size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = NULL;
    *len = 0;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && ngx_buf_in_memory(cl->buf)) {
        *data = cl->buf->pos;
        *len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    size = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, size ? size : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                              "threads: cannot read the buffered body");
                return NGX_ERROR;
            }
            p += n;
        }
    }

    *len = p - *data;

    return NGX_OK;
}


static void
ngx_http_threads_body_handler(ngx_http_request_t *r)
{
    u_char                  *data;
    size_t                   len;
    ngx_int_t                rc;
    ngx_http_threads_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_module);

    if (ngx_http_threads_read_body(r, &data, &len) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* notice a client that goes away while the query runs */
    r->read_event_handler = ngx_http_test_reading;

    rc = ngx_http_threads_op_start(r, ctx, (char *) data, len);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/* The API's JSON envelope for an error page that nginx itself made. */
static ngx_int_t
ngx_http_threads_error_page(ngx_http_request_t *r, ngx_http_threads_ctx_t *ctx)
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
    ngx_http_threads_ctx_t       *ctx;
    ngx_http_variable_value_t    *id;
    ngx_http_threads_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_threads_module);

    /*
     * Inside an API location; or anywhere threads_json_errors is on, which
     * at server level also covers what nginx refuses before it picks a
     * location (a malformed or over-long request line, say).
     */
    if (r != r->main || lcf == NULL || !(lcf->enable || lcf->json_errors)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_threads_get_ctx(r);
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
    if (!lcf->enable
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

    ngx_http_threads_set_json_headers(r, r->headers_out.status,
                                      ctx->replacement.len);

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_threads_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t               *b;
    ngx_chain_t             *cl, out;
    ngx_http_threads_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_module);

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
