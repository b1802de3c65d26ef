/*
 * ngx_http_threads_module: OpenAI's Threads API served from nginx
 * workers, stored in PostgreSQL.
 *
 * This file is the top of the module: the http{} level directives of the
 * database (threads_pg_*), and a worker's start and exit.  Below it, one
 * role per file, each using only those further down:
 *
 *   ngx_http_threads_handler.c   location directives, owner, routing, body
 *   ngx_http_threads_ops.c       statements (ngx_http_threads_sql.h) and
 *                                their results
 *   ngx_http_threads_pg.c        the per-worker PostgreSQL pool
 *   ngx_http_threads_response.c  JSON responses, the error-page filter
 *   ngx_http_threads_json.c, _args.c, _id.c, _utf8.c
 *                                plain C: validation, query strings, ids
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_handler.h"
#include "ngx_http_threads_ops.h"
#include "ngx_http_threads_pg.h"


typedef struct {
    ngx_http_threads_pg_conf_t    pg;
} ngx_http_threads_main_conf_t;


static void *ngx_http_threads_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_threads_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_threads_conninfo(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_threads_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_threads_init_process(ngx_cycle_t *cycle);
static void ngx_http_threads_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_threads_pool_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};


static ngx_command_t  ngx_http_threads_commands[] = {

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

    { ngx_string("threads_pg_host_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.host_timeout),
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

    { ngx_string("threads_pg_citus"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_threads_main_conf_t, pg.citus),
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

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
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
    mcf->pg.host_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.query_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.idle_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.prepare = NGX_CONF_UNSET;
    mcf->pg.citus = NGX_CONF_UNSET;
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
    ngx_conf_init_msec_value(mcf->pg.host_timeout, 2000);
    ngx_conf_init_msec_value(mcf->pg.query_timeout, 30000);
    ngx_conf_init_msec_value(mcf->pg.idle_timeout, 60000);
    ngx_conf_init_value(mcf->pg.prepare, 1);
    ngx_conf_init_value(mcf->pg.citus, 0);
    ngx_conf_init_uint_value(mcf->pg.pipeline, 16);

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
    ngx_http_threads_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_threads_module);

    if (ngx_http_threads_handler_used() && mcf->pg.keywords == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"threads_api\" needs \"threads_pg_conninfo\" "
                           "in the http block");
        return NGX_ERROR;
    }

    return ngx_http_threads_ops_init_conf(cf);
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

    return ngx_http_threads_ops_init_worker(cycle, &mcf->pg);
}


static void
ngx_http_threads_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_threads_ops_exit_worker();
}
