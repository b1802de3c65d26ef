/*
 * Prometheus metrics of the Threads API: ngx_http_threads_metrics_module,
 * built into the same shared object.  Counters live in one shared memory
 * zone, so that any worker's scrape shows the sum over all of them.
 *
 * This module knows nothing of the API's types: callers name operations
 * once at configuration time and then pass plain integers.  Every call is
 * a cheap no-op when no "threads_metrics_zone" is configured.
 */

#ifndef NGX_HTTP_THREADS_METRICS_H_INCLUDED_
#define NGX_HTTP_THREADS_METRICS_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* Operations a configuration may register (op="..." label values). */
#define NGX_HTTP_THREADS_METRICS_MAX_OPS  32

/* A request of an API location that never named an operation (op="none"). */
#define NGX_HTTP_THREADS_METRICS_NO_OP    ((ngx_uint_t) -1)


/* The database pool's counters without labels. */
typedef enum {
    NGX_HTTP_THREADS_METRICS_QUEUE_TIMEOUT = 0,
    NGX_HTTP_THREADS_METRICS_QUEUE_OVERFLOW,
    NGX_HTTP_THREADS_METRICS_CONNECT_FAILURE,
    NGX_HTTP_THREADS_METRICS_RECONNECT,
    NGX_HTTP_THREADS_METRICS_QUERY_TIMEOUT,
    NGX_HTTP_THREADS_METRICS_NEVENTS
} ngx_http_threads_metrics_event_e;


/*
 * Configuration time.  add_op returns the operation's index (the same
 * index for the same name), or NGX_ERROR after logging why.
 * api_location marks the location being parsed as an API location: its
 * requests are counted even when nginx answers them before the content
 * handler runs (a 413 on Content-Length, say).
 */
ngx_int_t ngx_http_threads_metrics_add_op(ngx_conf_t *cf, const char *name);
void ngx_http_threads_metrics_api_location(ngx_conf_t *cf);

/*
 * A request of an API location: the first call starts its clock, a later
 * one names (or renames) its operation.  Its status and duration are
 * counted in the log phase, once the response status is final.
 */
void ngx_http_threads_metrics_request(ngx_http_request_t *r, ngx_uint_t op);

/* A monotonic clock in microseconds; 0 when metrics are off. */
uint64_t ngx_http_threads_metrics_now(void);

/* A statement's result arrived usec after it was sent. */
void ngx_http_threads_metrics_pg(ngx_uint_t op, uint64_t usec);

void ngx_http_threads_metrics_event(ngx_uint_t event);

/* A statement failed with this SQLSTATE (5 characters, or NULL). */
void ngx_http_threads_metrics_db_error(const char *sqlstate);

/* This worker's pool right now; the scrape sums all workers. */
void ngx_http_threads_metrics_gauges(ngx_uint_t idle, ngx_uint_t busy,
    ngx_uint_t connecting, ngx_uint_t waiting);


extern ngx_module_t  ngx_http_threads_metrics_module;


#endif /* NGX_HTTP_THREADS_METRICS_H_INCLUDED_ */
