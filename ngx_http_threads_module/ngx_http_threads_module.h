/*
 * Shared declarations of ngx_http_threads_module's nginx-facing files.
 */

#ifndef NGX_HTTP_THREADS_MODULE_H_INCLUDED_
#define NGX_HTTP_THREADS_MODULE_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_pg.h"
#include "ngx_http_threads_json.h"
#include "ngx_http_threads_args.h"


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
    NGX_HTTP_THREADS_OP_MESSAGE_LIST
} ngx_http_threads_op_e;


typedef struct {
    ngx_http_threads_pg_conf_t    pg;
} ngx_http_threads_main_conf_t;


typedef struct {
    ngx_flag_t                    enable;
    ngx_flag_t                    json_errors;
    ngx_http_complex_value_t     *owner;
    ngx_flag_t                    owner_hash;
    ngx_flag_t                    owner_required;
} ngx_http_threads_loc_conf_t;


#define NGX_HTTP_THREADS_MAX_PARAMS  8

typedef struct {
    ngx_http_threads_pg_query_t   query;
    ngx_http_request_t           *request;
    ngx_http_threads_op_e         op;
    ngx_str_t                     thread_id;   /* NUL-terminated */
    ngx_str_t                     message_id;  /* NUL-terminated */
    ngx_str_t                     owner;       /* NUL-terminated */
    thr_thread_req_t              body;        /* malloc'd by json.c */
    char                         *message;     /* malloc'd by json.c */
    thr_list_args_t               args;        /* malloc'd by args.c */
    const char                   *lo;          /* list cursors, see ops */
    const char                   *hi;

    const char                   *values[NGX_HTTP_THREADS_MAX_PARAMS];
    int                           lengths[NGX_HTTP_THREADS_MAX_PARAMS];

    ngx_str_t                     replacement; /* JSON for nginx's errors */

    unsigned                      own_response:1;
    unsigned                      replace:1;
    unsigned                      replaced:1;
} ngx_http_threads_ctx_t;


extern ngx_module_t  ngx_http_threads_module;

extern ngx_http_threads_pg_stmt_t  ngx_http_threads_stmts[];
extern const ngx_uint_t            ngx_http_threads_nstmts;


/* ngx_http_threads_module.c */
ngx_int_t ngx_http_threads_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);
ngx_int_t ngx_http_threads_send_error(ngx_http_request_t *r,
    thr_error_t *err);

/* ngx_http_threads_ops.c: validates the body, runs the statement */
void ngx_http_threads_id_error(thr_error_t *err, const u_char *id,
    size_t len, const char *prefix, size_t plen, const char *param,
    const char *what);
ngx_int_t ngx_http_threads_op_start(ngx_http_request_t *r,
    ngx_http_threads_ctx_t *ctx, const char *body, size_t len);


#endif /* NGX_HTTP_THREADS_MODULE_H_INCLUDED_ */
