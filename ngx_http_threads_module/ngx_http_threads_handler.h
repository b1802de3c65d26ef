/*
 * The API's content handler: the owner, routing by method and path, and
 * the request body, which becomes an operation (ngx_http_threads_ops.h).
 *
 * It is an nginx module of its own (ngx_http_threads_api_module) with the
 * location directives threads_api, threads_owner, threads_owner_hash,
 * threads_owner_required and threads_list_max_bytes.
 */

#ifndef NGX_HTTP_THREADS_HANDLER_H_INCLUDED_
#define NGX_HTTP_THREADS_HANDLER_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* Whether a threads_api location was configured since the last call. */
ngx_uint_t ngx_http_threads_handler_used(void);


#endif /* NGX_HTTP_THREADS_HANDLER_H_INCLUDED_ */
