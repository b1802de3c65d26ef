/*
 * The API's content handler.  See ngx_http_threads_handler.h.
 *
 * A request's way: the owner (from threads_owner, hashed), the route (an
 * operation and the ids in the path), the body, then the operation.
 * Large bodies, and bodies that nginx buffered to a temporary file, are
 * read and validated in a thread of nginx's thread pool, so that the
 * event loop never waits for a disk or a long validation.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>

#include "ngx_http_threads_handler.h"
#include "ngx_http_threads_ops.h"
#include "ngx_http_threads_response.h"
#include "ngx_http_threads_metrics.h"
#include "ngx_http_threads_utf8.h"
#include "ngx_http_threads_owners.h"


/* Bodies past this size are validated off the event loop. */
#define NGX_HTTP_THREADS_INLINE_BODY  (64 * 1024)

/* A raw owner (threads_owner_hash off) is stored as it is: keep it sane. */
#define NGX_HTTP_THREADS_MAX_OWNER    512

/* An Idempotency-Key: 1 to this many printable ASCII characters. */
#define NGX_HTTP_THREADS_MAX_IDEM_KEY 255


typedef struct {
    ngx_flag_t                    enable;
    ngx_http_complex_value_t     *owner;
    ngx_flag_t                    owner_hash;
    ngx_flag_t                    owner_required;
    size_t                        list_max_bytes;
    time_t                        idempotency_ttl;
#if (NGX_THREADS)
    ngx_thread_pool_t            *thread_pool;
#endif
} ngx_http_threads_api_conf_t;


#if (NGX_THREADS)
typedef struct {
    ngx_http_threads_op_t        *op;
    ngx_chain_t                  *bufs;
} ngx_http_threads_body_task_t;
#endif


static void *ngx_http_threads_api_create_conf(ngx_conf_t *cf);
static char *ngx_http_threads_api_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_threads_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_threads_api_init_process(ngx_cycle_t *cycle);
static void ngx_http_threads_api_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_threads_handler(ngx_http_request_t *r);
static void ngx_http_threads_body_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_threads_api_commands[] = {

    { ngx_string("threads_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_threads_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, enable),
      NULL },

    { ngx_string("threads_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, owner),
      NULL },

    { ngx_string("threads_owner_hash"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, owner_hash),
      NULL },

    { ngx_string("threads_owner_required"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, owner_required),
      NULL },

    { ngx_string("threads_list_max_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, list_max_bytes),
      NULL },

    { ngx_string("threads_idempotency_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_threads_api_conf_t, idempotency_ttl),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_threads_api_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_threads_api_create_conf,      /* create location configuration */
    ngx_http_threads_api_merge_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_threads_api_module = {
    NGX_MODULE_V1,
    &ngx_http_threads_api_module_ctx,      /* module context */
    ngx_http_threads_api_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_threads_api_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_threads_api_exit_process,     /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_uint_t  ngx_http_threads_used;

/*
 * SHA-256 for owners, fetched once per worker: OpenSSL 3 looks the
 * algorithm up again on every EVP_sha256() digest otherwise.
 */
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
static EVP_MD        *ngx_http_threads_sha256;
#else
static const EVP_MD  *ngx_http_threads_sha256;
#endif
static EVP_MD_CTX    *ngx_http_threads_md_ctx;


static void *
ngx_http_threads_api_create_conf(ngx_conf_t *cf)
{
    ngx_http_threads_api_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_api_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->enable = NGX_CONF_UNSET;
    conf->owner = NGX_CONF_UNSET_PTR;
    conf->owner_hash = NGX_CONF_UNSET;
    conf->owner_required = NGX_CONF_UNSET;
    conf->list_max_bytes = NGX_CONF_UNSET_SIZE;
    conf->idempotency_ttl = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_threads_api_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_threads_api_conf_t  *prev = parent;
    ngx_http_threads_api_conf_t  *conf = child;

    /* not inherited: the API answers only where it is switched on */
    ngx_conf_init_value(conf->enable, 0);
    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NULL);
    ngx_conf_merge_value(conf->owner_hash, prev->owner_hash, 1);
    ngx_conf_merge_value(conf->owner_required, prev->owner_required, 1);
    ngx_conf_merge_size_value(conf->list_max_bytes, prev->list_max_bytes,
                              4 * 1024 * 1024);
    ngx_conf_merge_sec_value(conf->idempotency_ttl, prev->idempotency_ttl,
                             24 * 60 * 60);

    if (conf->idempotency_ttl < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "threads_idempotency_ttl must be at least 1s");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_threads_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_threads_api_conf_t  *acf = conf;

    char                      *rv;
    ngx_http_core_loc_conf_t  *clcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (!acf->enable) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_threads_handler;
    ngx_http_threads_used = 1;

#if (NGX_THREADS)
    /* nginx's "default" pool, created with its defaults if not declared */
    acf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (acf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#endif

    if (ngx_http_threads_response_api(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_http_threads_metrics_api_location(cf);

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_threads_handler_used(void)
{
    ngx_uint_t  used;

    used = ngx_http_threads_used;
    ngx_http_threads_used = 0;

    return used;
}


static ngx_int_t
ngx_http_threads_api_init_process(ngx_cycle_t *cycle)
{
    /* random bytes the master might have drawn are not this worker's */
    thr_random_forget();
    /* nor are the keys it (or an earlier cycle) might have seen */
    thr_owners_forget();

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

    return NGX_OK;
}


static void
ngx_http_threads_api_exit_process(ngx_cycle_t *cycle)
{
    EVP_MD_CTX_free(ngx_http_threads_md_ctx);
    ngx_http_threads_md_ctx = NULL;
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    EVP_MD_free(ngx_http_threads_sha256);
#endif
    ngx_http_threads_sha256 = NULL;
}


/* Valid UTF-8 without NUL: what PostgreSQL takes as a text parameter. */
static ngx_int_t
ngx_http_threads_text_ok(u_char *p, size_t len)
{
    size_t   n;
    u_char  *last;

    for (last = p + len; p < last; p += n) {
        n = (*p == '\0') ? 0 : thr_utf8_seq(p, last - p);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/* A raw owner is stored as text: valid UTF-8, and not too long. */
static ngx_int_t
ngx_http_threads_owner_ok(ngx_str_t *value)
{
    return value->len <= NGX_HTTP_THREADS_MAX_OWNER
           && ngx_http_threads_text_ok(value->data, value->len);
}


/*
 * The owner named by threads_owner, as a NUL-terminated string: the hex
 * SHA-256 of the value by default, so that API keys are never stored.
 * NGX_DECLINED: none, where one is required; NGX_ABORT: not usable.
 */
static ngx_int_t
ngx_http_threads_owner(ngx_http_request_t *r, ngx_http_threads_api_conf_t *acf,
    ngx_str_t *owner)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen;
    ngx_str_t     value;

    if (acf->owner == NULL) {
        ngx_str_set(owner, "");
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, acf->owner, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0) {
        if (acf->owner_required) {
            return NGX_DECLINED;
        }

        ngx_str_set(owner, "");
        return NGX_OK;
    }

    if (!acf->owner_hash) {
        if (!ngx_http_threads_owner_ok(&value)) {
            return NGX_ABORT;
        }

        owner->data = ngx_pnalloc(r->pool, value.len + 1);
        if (owner->data == NULL) {
            return NGX_ERROR;
        }

        owner->len = value.len;
        ngx_cpystrn(owner->data, value.data, value.len + 1);
        return NGX_OK;
    }

    owner->data = ngx_pnalloc(r->pool, THR_OWNERS_DIGEST_LEN + 1);
    if (owner->data == NULL) {
        return NGX_ERROR;
    }

    owner->len = THR_OWNERS_DIGEST_LEN;
    owner->data[owner->len] = '\0';

    /* a key seen lately: its digest without hashing (3 % of a worker) */
    if (thr_owners_get(value.data, value.len, (char *) owner->data)) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "threads: owner digest cached");
        return NGX_OK;
    }

    if (!EVP_DigestInit_ex(ngx_http_threads_md_ctx, ngx_http_threads_sha256,
                           NULL)
        || !EVP_DigestUpdate(ngx_http_threads_md_ctx, value.data, value.len)
        || !EVP_DigestFinal_ex(ngx_http_threads_md_ctx, md, &mdlen)
        || 2 * mdlen != THR_OWNERS_DIGEST_LEN)
    {
        return NGX_ERROR;
    }

    ngx_hex_dump(owner->data, md, mdlen);
    thr_owners_put(value.data, value.len, (const char *) owner->data);

    return NGX_OK;
}


/*
 * The part of the URI after the location's prefix: "threads",
 * "threads/{id}", ...  For a regex location, the path from its
 * "/threads" segment on.  NGX_DECLINED: the URI has other segments
 * before "threads", which is no route.
 */
static ngx_int_t
ngx_http_threads_route_path(ngx_http_request_t *r, ngx_str_t *path)
{
    u_char                    *p, *last;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    *path = r->uri;
    last = path->data + path->len;

#if (NGX_PCRE)
    if (clcf->regex) {
        for (p = path->data; p + 8 <= last; p++) {
            if (ngx_strncmp(p, "/threads", 8) == 0
                && (p + 8 == last || p[8] == '/'))
            {
                path->data = p + 1;
                path->len = last - path->data;
                return NGX_OK;
            }

            if (p + 14 <= last && ngx_strncmp(p, "/conversations", 14) == 0
                && (p + 14 == last || p[14] == '/'))
            {
                path->data = p + 1;
                path->len = last - path->data;
                return NGX_OK;
            }
        }

        return NGX_DECLINED;
    }
#endif

    if (r->uri.len < clcf->name.len
        || ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) != 0)
    {
        return NGX_DECLINED;
    }

    p = path->data + clcf->name.len;

    /* "location /v1" serves "/v1/threads", not "/v1threads" */
    if (clcf->name.len && clcf->name.data[clcf->name.len - 1] != '/') {
        if (p < last && *p != '/') {
            return NGX_DECLINED;
        }

        if (p < last) {
            p++;
        }
    }

    path->data = p;
    path->len = last - p;

    return NGX_OK;
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

static ngx_http_threads_route_t  ngx_http_threads_conv_routes[] = {
    /* /conversations */
    { 1, "GET, POST", NGX_HTTP_THREADS_OP_CONVERSATION_LIST,
      NGX_HTTP_THREADS_OP_CONVERSATION_CREATE, -1 },
    /* /conversations/{conversation_id} */
    { 2, "GET, POST, DELETE", NGX_HTTP_THREADS_OP_CONVERSATION_RETRIEVE,
      NGX_HTTP_THREADS_OP_CONVERSATION_MODIFY,
      NGX_HTTP_THREADS_OP_CONVERSATION_DELETE },
    /* /conversations/{conversation_id}/items */
    { 3, "GET, POST", NGX_HTTP_THREADS_OP_ITEM_LIST,
      NGX_HTTP_THREADS_OP_ITEM_CREATE, -1 },
    /* /conversations/{conversation_id}/items/{item_id} */
    { 4, "GET, DELETE", NGX_HTTP_THREADS_OP_ITEM_RETRIEVE, -1,
      NGX_HTTP_THREADS_OP_ITEM_DELETE }
};

/* /threads/{thread_id}/conversation: the thread made a conversation */
static ngx_http_threads_route_t  ngx_http_threads_convert_route =
    { 3, "POST", -1, NGX_HTTP_THREADS_OP_THREAD_CONVERT, -1 };


/*
 * The route of a conversation path (segs[0] is "conversations"), or of a
 * thread's conversion; NULL when there is none.
 */
static ngx_http_threads_route_t *
ngx_http_threads_conv_route(ngx_str_t *segs, ngx_uint_t n)
{
    if (segs[0].len == 7) {
        return (n == 3 && segs[2].len == 12
                && ngx_strncmp(segs[2].data, "conversation", 12) == 0)
               ? &ngx_http_threads_convert_route : NULL;
    }

    if (n > 2 && (segs[2].len != 5
                  || ngx_strncmp(segs[2].data, "items", 5) != 0))
    {
        return NULL;
    }

    return &ngx_http_threads_conv_routes[n - 1];
}


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
    return ngx_http_threads_send_error(r, &err);
}


static ngx_int_t
ngx_http_threads_invalid_url(ngx_http_request_t *r)
{
    thr_error_t  err;

    thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                  NULL, NULL, "Invalid URL (%.*s %.*s)",
                  (int) r->method_name.len, r->method_name.data,
                  (int) r->uri.len, r->uri.data);
    return ngx_http_threads_send_error(r, &err);
}


/* A copy of s, NUL-terminated, for a statement parameter. */
static ngx_int_t
ngx_http_threads_param(ngx_http_request_t *r, ngx_str_t *s, ngx_str_t *out)
{
    out->data = ngx_pnalloc(r->pool, s->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = s->len;
    ngx_cpystrn(out->data, s->data, s->len + 1);

    return NGX_OK;
}


/*
 * The Idempotency-Key of a create: NGX_OK with key->len 0 when there is
 * none, NGX_OK with a NUL-terminated copy, or NGX_DECLINED with err set
 * when it is not 1 to 255 printable ASCII characters (or given twice).
 */
static ngx_int_t
ngx_http_threads_idem_key(ngx_http_request_t *r, ngx_str_t *key,
    thr_error_t *err)
{
    u_char           *p;
    ngx_str_t        *found;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    static const char  name[] = "Idempotency-Key";

    found = NULL;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof(name) - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) name,
                               sizeof(name) - 1) != 0)
        {
            continue;
        }

        if (found) {
            thr_error_set(err, NGX_HTTP_BAD_REQUEST, "invalid_request_error",
                          "invalid_value", name,
                          "Send at most one Idempotency-Key header.");
            return NGX_DECLINED;
        }

        found = &h[i].value;
    }

    key->len = 0;
    key->data = NULL;

    if (found == NULL) {
        return NGX_OK;
    }

    if (found->len == 0 || found->len > NGX_HTTP_THREADS_MAX_IDEM_KEY) {
        thr_error_set(err, NGX_HTTP_BAD_REQUEST, "invalid_request_error",
                      "invalid_value", name,
                      "Invalid 'Idempotency-Key': it must have 1 to %d "
                      "characters, it has %lu.", NGX_HTTP_THREADS_MAX_IDEM_KEY,
                      (unsigned long) found->len);
        return NGX_DECLINED;
    }

    for (p = found->data; p < found->data + found->len; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            thr_error_set(err, NGX_HTTP_BAD_REQUEST, "invalid_request_error",
                          "invalid_value", name,
                          "Invalid 'Idempotency-Key': only printable ASCII "
                          "characters are allowed.");
            return NGX_DECLINED;
        }
    }

    key->data = ngx_pnalloc(r->pool, found->len + 1);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = found->len;
    ngx_cpystrn(key->data, found->data, found->len + 1);

    return NGX_OK;
}


/*
 * SHA-256 of the given pieces, each followed by a newline.
 */
static ngx_int_t
ngx_http_threads_idem_hash(u_char *md, ngx_str_t *parts, ngx_uint_t n)
{
    unsigned int  mdlen;
    ngx_int_t     rc;
    ngx_uint_t    i;
    EVP_MD_CTX   *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (!EVP_DigestInit_ex(ctx, ngx_http_threads_sha256, NULL)) {
        goto done;
    }

    for (i = 0; i < n; i++) {
        if ((parts[i].len
             && !EVP_DigestUpdate(ctx, parts[i].data, parts[i].len))
            || !EVP_DigestUpdate(ctx, "\n", 1))
        {
            goto done;
        }
    }

    if (EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32) {
        rc = NGX_OK;
    }

done:

    EVP_MD_CTX_free(ctx);

    return rc;
}


/*
 * What a keyed create is checked and stored by: the hex SHA-256 of its
 * method, path and body, which an earlier use of the key must match; the
 * id of its object (from the owner, the route and the key: the same key
 * makes the same id, another owner's the id of no one else), whose last
 * two characters the statement changes for a key used again after it
 * expired; and the lock that tells a request with the key in flight.  It
 * may run in a thread of nginx's pool: its own digest contexts, the
 * algorithm only read.
 */
static ngx_int_t
ngx_http_threads_idem_digest(ngx_http_threads_op_t *op, u_char *body,
    size_t len)
{
    u_char     md[32];
    int64_t    lock;
    ngx_str_t  parts[4];

    switch (op->kind) {

    case NGX_HTTP_THREADS_OP_THREAD_CREATE:
        ngx_str_set(&parts[0], "POST /threads");
        ngx_str_null(&parts[1]);
        break;

    case NGX_HTTP_THREADS_OP_MESSAGE_CREATE:
        ngx_str_set(&parts[0], "POST /threads/{}/messages");
        parts[1] = op->thread_id;
        break;

    case NGX_HTTP_THREADS_OP_CONVERSATION_CREATE:
        ngx_str_set(&parts[0], "POST /conversations");
        ngx_str_null(&parts[1]);
        break;

    default: /* NGX_HTTP_THREADS_OP_ITEM_CREATE */
        ngx_str_set(&parts[0], "POST /conversations/{}/items");
        parts[1] = op->thread_id;
        break;
    }

    parts[2].data = body;
    parts[2].len = len;

    if (ngx_http_threads_idem_hash(md, parts, 3) != NGX_OK) {
        return NGX_ERROR;
    }

    *ngx_hex_dump(op->idem_digest, md, sizeof(md)) = '\0';

    /* route, parent, owner, key */
    parts[2] = op->owner;
    parts[3] = op->idem_key;

    if (ngx_http_threads_idem_hash(md, parts, 4) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memcpy(&lock, md, sizeof(lock));
    *ngx_sprintf(op->idem_lock, "%L", lock) = '\0';

    /* generation 0 (the statements' NGX_HTTP_THREADS_SQL_KEY_GEN) */
    thr_id_from_hash((char *) op->idem_id, md);
    op->idem_id[THR_ID_CHARS - 2] = 'A';
    op->idem_id[THR_ID_CHARS - 1] = 'A';

    return NGX_OK;
}


static ngx_int_t
ngx_http_threads_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc, kind;
    ngx_str_t                     path, owner, segs[4], key;
    ngx_uint_t                    n, conv;
    thr_error_t                   err;
    ngx_http_threads_op_t        *op;
    ngx_http_threads_route_t     *route;
    ngx_http_threads_api_conf_t  *acf;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_threads_api_module);

    ngx_http_threads_metrics_request(r, NGX_HTTP_THREADS_METRICS_NO_OP);

    if (ngx_http_threads_response_start(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* as OpenAI: without a key, every path is a 401 */
    rc = ngx_http_threads_owner(r, acf, &owner);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        thr_error_set(&err, NGX_HTTP_UNAUTHORIZED, "invalid_request_error",
                      NULL, NULL,
                      "You didn't provide an API key. You need to provide "
                      "your API key in an Authorization header using Bearer "
                      "auth (i.e. Authorization: Bearer YOUR_KEY).");
        return ngx_http_threads_send_error(r, &err);
    }

    if (rc == NGX_ABORT) {
        thr_error_set(&err, NGX_HTTP_UNAUTHORIZED, "invalid_request_error",
                      "invalid_api_key", NULL,
                      "Incorrect API key provided: an owner must be valid "
                      "UTF-8 of at most %d bytes.",
                      NGX_HTTP_THREADS_MAX_OWNER);
        return ngx_http_threads_send_error(r, &err);
    }

    if (ngx_http_threads_route_path(r, &path) != NGX_OK) {
        return ngx_http_threads_invalid_url(r);
    }

    n = ngx_http_threads_split(&path, segs);

    conv = (n != 0 && segs[0].len == 13
            && ngx_strncmp(segs[0].data, "conversations", 13) == 0);

    if (n == 0 || ngx_http_threads_encoded_slash(r)) {
        return ngx_http_threads_invalid_url(r);
    }

    if (conv) {
        route = ngx_http_threads_conv_route(segs, n);

    } else if (segs[0].len != 7
               || ngx_strncmp(segs[0].data, "threads", 7) != 0)
    {
        route = NULL;

    } else if (n > 2 && (segs[2].len != 8
                         || ngx_strncmp(segs[2].data, "messages", 8) != 0))
    {
        route = ngx_http_threads_conv_route(segs, n);

    } else {
        route = &ngx_http_threads_routes[n - 1];
    }

    if (route == NULL) {
        return ngx_http_threads_invalid_url(r);
    }

    switch (r->method) {
    case NGX_HTTP_GET:
        kind = route->get;
        break;
    case NGX_HTTP_POST:
        kind = route->post;
        break;
    case NGX_HTTP_DELETE:
        kind = route->delete;
        break;
    default:
        kind = -1;
    }

    if (kind == -1) {
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

        return ngx_http_threads_send_error(r, &err);
    }

    ngx_http_threads_metrics_request(r, kind);

    if (conv && n >= 2
        && !thr_id_is_valid((char *) segs[1].data, segs[1].len, "conv_"))
    {
        return ngx_http_threads_bad_id(r, &segs[1], "conv", "conversation_id",
                                       "conversation");
    }

    if (conv && n == 4
        && !thr_item_id_is_valid((char *) segs[3].data, segs[3].len))
    {
        /* never made here: an item id is a known prefix and 24 more */
        thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                      NULL, NULL, "No item found with id '%.*s'.",
                      (int) segs[3].len, segs[3].data);
        return ngx_http_threads_send_error(r, &err);
    }

    if (!conv && n >= 2
        && !thr_id_is_valid((char *) segs[1].data, segs[1].len, "thread_"))
    {
        /* never made here: no need to ask the database */
        return ngx_http_threads_bad_id(r, &segs[1], "thread", "thread_id",
                                       "thread");
    }

    if (!conv && n == 4
        && (segs[3].len < 3 || ngx_strncmp(segs[3].data, "msg", 3) != 0))
    {
        /* a malformed one with the prefix may still be a 404 of its
         * thread: the database is asked */
        return ngx_http_threads_bad_id(r, &segs[3], "msg", "message_id",
                                       "message");
    }

    if (!conv && n == 4 && !ngx_http_threads_text_ok(segs[3].data,
                                                     segs[3].len))
    {
        /* no id of ours, and no text PostgreSQL would take: a 404 */
        thr_error_set(&err, NGX_HTTP_NOT_FOUND, "invalid_request_error",
                      NULL, NULL, "No message found with id '%.*s'.",
                      (int) segs[3].len, segs[3].data);
        return ngx_http_threads_send_error(r, &err);
    }

    ngx_str_null(&key);

    if (kind == NGX_HTTP_THREADS_OP_THREAD_CREATE
        || kind == NGX_HTTP_THREADS_OP_MESSAGE_CREATE
        || kind == NGX_HTTP_THREADS_OP_CONVERSATION_CREATE
        || kind == NGX_HTTP_THREADS_OP_ITEM_CREATE)
    {
        rc = ngx_http_threads_idem_key(r, &key, &err);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_threads_send_error(r, &err);
        }
    }

    op = ngx_http_threads_op_create(r, kind);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (key.len) {
        op->idem_key = key;
        *ngx_sprintf(op->idem_ttl, "%T", acf->idempotency_ttl) = '\0';
    }

    op->owner = owner;
    op->page_bytes = acf->list_max_bytes;

    if ((n >= 2 && ngx_http_threads_param(r, &segs[1], &op->thread_id)
                   != NGX_OK)
        || (n == 4 && ngx_http_threads_param(r, &segs[3], &op->message_id)
                      != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, op, ngx_http_threads_api_module);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: route \"%V\": op %d, thread \"%V\"", &r->uri,
                   (int) kind, &op->thread_id);

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

    /* the query string is the input of listings, and nothing of others */
    ngx_http_threads_op_validate(op, (char *) r->args.data, r->args.len);

    r->main->count++;

    if (!r->discard_body) {
        /* notice a client that goes away while the query runs */
        r->read_event_handler = ngx_http_test_reading;
    }

    rc = ngx_http_threads_op_run(op);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    return NGX_DONE;
}


/*
 * The body as one piece of memory: *data, and *copy (malloc'd, for the
 * caller to free) unless it is nginx's single buffer itself.  Plain
 * reads of the temporary file, with pread(2): it may run in a thread.
 */
static ngx_int_t
ngx_http_threads_body_gather(ngx_chain_t *bufs, u_char **data, size_t *len,
    u_char **copy)
{
    off_t         size;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    *data = NULL;
    *len = 0;
    *copy = NULL;

    if (bufs == NULL) {
        return NGX_OK;
    }

    if (bufs->next == NULL && ngx_buf_in_memory(bufs->buf)) {
        *data = bufs->buf->pos;
        *len = bufs->buf->last - bufs->buf->pos;
        return NGX_OK;
    }

    size = 0;
    for (cl = bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    p = malloc(size ? size : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *copy = p;
    *data = p;

    for (cl = bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (b->in_file) {
            n = pread(b->file->fd, p, b->file_last - b->file_pos,
                      b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }
            p += n;
        }
    }

    *len = p - *data;

    return NGX_OK;
}


static void
ngx_http_threads_body_validate(ngx_http_threads_op_t *op, ngx_chain_t *bufs,
    ngx_log_t *thread_log)
{
    u_char  *data, *copy;
    size_t   len;

    if (ngx_http_threads_body_gather(bufs, &data, &len, &copy) != NGX_OK) {
        /* a temporary file that cannot be read back: a server fault */
        op->rc = THR_NOMEM;

    } else if (op->idem_key.len
               && ngx_http_threads_idem_digest(op, data, len) != NGX_OK)
    {
        op->rc = THR_NOMEM;

    } else {
        ngx_http_threads_op_validate(op, (char *) data, len);

        if (thread_log) {
            ngx_http_threads_op_direct(op, len, thread_log);
        }
    }

    free(copy);
}


#if (NGX_THREADS)

static void
ngx_http_threads_body_thread(void *data, ngx_log_t *log)
{
    ngx_http_threads_body_task_t  *t = data;

    ngx_http_threads_body_validate(t->op, t->bufs, log);
}


/* Back on the event loop from the thread pool. */
static void
ngx_http_threads_body_done(ngx_event_t *ev)
{
    ngx_int_t                      rc;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_threads_op_t         *op;
    ngx_http_threads_body_task_t  *t;

    t = ((ngx_thread_task_t *) ev->data)->ctx;
    op = t->op;
    r = op->request;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    op->validating = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "threads: body validated in a thread: %d", op->rc);

    if (op->gone) {
        /* terminated meanwhile: its cleanup ran but left this to us */
        ngx_http_threads_op_release(op);
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
        return;
    }

    rc = ngx_http_threads_op_run(op);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


/*
 * NGX_OK: the body went to a thread; NGX_DECLINED: validate it here;
 * NGX_BUSY: the thread pool's queue is full.
 */
static ngx_int_t
ngx_http_threads_body_post(ngx_http_request_t *r, ngx_http_threads_op_t *op)
{
    off_t                          size;
    ngx_uint_t                     in_file;
    ngx_chain_t                   *cl;
    ngx_thread_task_t             *task;
    ngx_http_threads_api_conf_t   *acf;
    ngx_http_threads_body_task_t  *t;

    acf = ngx_http_get_module_loc_conf(r, ngx_http_threads_api_module);

    if (acf->thread_pool == NULL || r->request_body == NULL) {
        return NGX_DECLINED;
    }

    size = 0;
    in_file = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
        in_file |= cl->buf->in_file;
    }

    if (!in_file && size <= NGX_HTTP_THREADS_INLINE_BODY) {
        return NGX_DECLINED;
    }

    task = ngx_thread_task_alloc(r->pool,
                                 sizeof(ngx_http_threads_body_task_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    t = task->ctx;
    t->op = op;
    t->bufs = r->request_body->bufs;

    task->handler = ngx_http_threads_body_thread;
    task->event.data = task;
    task->event.handler = ngx_http_threads_body_done;

    if (ngx_thread_task_post(acf->thread_pool, task) != NGX_OK) {
        /* the pool's queue is full: an overload, not a fault */
        return NGX_BUSY;
    }

    /* the request and its memory stay until the task is back */
    r->main->blocked++;
    op->validating = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "threads: body of %O bytes goes to a thread", size);

    return NGX_OK;
}

#endif


static void
ngx_http_threads_body_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_threads_op_t  *op;

    op = ngx_http_get_module_ctx(r, ngx_http_threads_api_module);

    /* notice a client that goes away while the query runs */
    r->read_event_handler = ngx_http_test_reading;

#if (NGX_THREADS)
    rc = ngx_http_threads_body_post(r, op);

    if (rc == NGX_OK) {
        return;
    }

    if (rc == NGX_BUSY) {
        thr_error_set(&op->err, NGX_HTTP_SERVICE_UNAVAILABLE, "server_error",
                      NULL, NULL, "The server is overloaded right now. "
                      "Please retry your request after a short wait.");
        ngx_http_finalize_request(r, ngx_http_threads_send_error(r,
                                                                 &op->err));
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
#endif

    /* on the event loop: no statement runs here */
    ngx_http_threads_body_validate(op, r->request_body
                                       ? r->request_body->bufs : NULL, NULL);

    rc = ngx_http_threads_op_run(op);
    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}
