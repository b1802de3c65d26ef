/*
 * What every API response carries: JSON bodies with their headers, the
 * request's id in a header and in its error log lines, and the filter
 * that turns nginx's own error pages into the API's JSON errors.
 *
 * It is an nginx filter module of its own (ngx_http_threads_filter_module)
 * with the directive threads_json_errors.
 */

#ifndef NGX_HTTP_THREADS_RESPONSE_H_INCLUDED_
#define NGX_HTTP_THREADS_RESPONSE_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_threads_json.h"


/* Marks the location being configured as an API location (threads_api). */
ngx_int_t ngx_http_threads_response_api(ngx_conf_t *cf);

/* Called once an API request reaches its handler: log lines name it. */
ngx_int_t ngx_http_threads_response_start(ngx_http_request_t *r);

/* Sends data as the JSON body with status; data must outlive the send. */
ngx_int_t ngx_http_threads_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *data, size_t len);

/* Sends the error envelope of err with err->status. */
ngx_int_t ngx_http_threads_send_error(ngx_http_request_t *r,
    thr_error_t *err);

/* Adds a response header; key and value must outlive the request. */
ngx_int_t ngx_http_threads_add_header(ngx_http_request_t *r,
    const char *key, const char *value, size_t len);


#endif /* NGX_HTTP_THREADS_RESPONSE_H_INCLUDED_ */
