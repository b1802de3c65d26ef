/*
 * The per-worker PostgreSQL connection pool and its query state machine.
 *
 * Every libpq call here is non-blocking: connections start with
 * PQconnectStartParams and are driven by PQconnectPoll from nginx events,
 * queries go out with PQsend* and PQflush, results come in with
 * PQconsumeInput/PQisBusy/PQgetResult.  A worker holds at most
 * pool_size connections; requests beyond that wait in a bounded queue.
 */

#ifndef NGX_HTTP_THREADS_PG_H_INCLUDED_
#define NGX_HTTP_THREADS_PG_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


/* How a query ended; the operation maps it to an HTTP status. */
typedef enum {
    NGX_HTTP_THREADS_PG_OK = 0,         /* res holds the result */
    NGX_HTTP_THREADS_PG_UNAVAILABLE,    /* no connection, queue full/timeout */
    NGX_HTTP_THREADS_PG_TIMEOUT,        /* query took too long */
    NGX_HTTP_THREADS_PG_ERROR           /* the statement failed */
} ngx_http_threads_pg_status_e;


typedef struct {
    const char                  *name;  /* prepared statement name */
    const char                  *sql;
    int                          nparams;
    unsigned                     idempotent:1;  /* safe to send twice */
    unsigned                     writes:1;      /* commits a change */
} ngx_http_threads_pg_stmt_t;


/* One host of a multi-host conninfo, tried on its own. */
typedef struct {
    const char                  *host;
    const char                  *hostaddr;  /* or NULL */
    const char                  *port;      /* or NULL */
} ngx_http_threads_pg_host_t;


/* The pool's settings: the http{} level directives. */
typedef struct {
    const char                 **keywords;  /* NULL-terminated, for */
    const char                 **values;    /* PQconnectStartParams */
    ngx_uint_t                   nvalues;
    ngx_str_t                    conninfo;  /* as configured, for logs */
    ngx_array_t                 *hosts;     /* of ..._pg_host_t, or NULL */
    ngx_int_t                    host_kw[3]; /* host, hostaddr, port */
    ngx_msec_t                   host_timeout;
    ngx_uint_t                   pool_size;
    ngx_uint_t                   queue_size;
    ngx_msec_t                   queue_timeout;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   query_timeout;
    ngx_msec_t                   idle_timeout;
    ngx_flag_t                   prepare;
    ngx_flag_t                   citus;     /* writes through functions */
    ngx_uint_t                   pipeline;  /* queries per connection */
} ngx_http_threads_pg_conf_t;


typedef struct ngx_http_threads_pg_conn_s   ngx_http_threads_pg_conn_t;
typedef struct ngx_http_threads_pg_query_s  ngx_http_threads_pg_query_t;

typedef void (*ngx_http_threads_pg_handler_pt)(
    ngx_http_threads_pg_query_t *q, ngx_http_threads_pg_status_e status,
    PGresult *res);


/*
 * One query of one request, allocated from the request's pool.  The
 * handler runs exactly once, from a posted event (never from inside
 * ngx_http_threads_pg_run), unless the query is cancelled first
 * (ngx_http_threads_pg_cancel, from the request's cleanup).  The handler
 * owns the result it is given (PQclear).
 */
struct ngx_http_threads_pg_query_s {
    const ngx_http_threads_pg_stmt_t  *stmt;
    ngx_uint_t                         stmt_index;
    const char                *const  *values;
    const int                         *lengths;
    ngx_http_threads_pg_handler_pt     handler;
    void                              *data;
    ngx_log_t                         *log;
    ngx_uint_t                         metrics_op;

    void                              *slot;     /* while on the wire */
    ngx_queue_t                        queue;    /* while it waits */
    ngx_event_t                        wait;     /* queue timeout */
    ngx_event_t                        done;     /* posted: the answer */
    ngx_http_threads_pg_status_e       status;
    PGresult                          *res;      /* until it is handed */

    unsigned                           waiting:1;
    unsigned                           sent:1;   /* handed to libpq */
    unsigned                           retried:1;
    unsigned                           alone:1;  /* own sync, even a read */
};


ngx_int_t ngx_http_threads_pg_init_worker(ngx_cycle_t *cycle,
    ngx_http_threads_pg_conf_t *conf, ngx_http_threads_pg_stmt_t *stmts,
    ngx_uint_t nstmts);
void ngx_http_threads_pg_exit_worker(void);

/* Runs q.  Its handler runs later, from an event, even for a 503. */
void ngx_http_threads_pg_run(ngx_http_threads_pg_query_t *q);
/* Forgets q: its handler will not run.  Safe to call at any time. */
void ngx_http_threads_pg_cancel(ngx_http_threads_pg_query_t *q);

/*
 * Runs one statement on a connection of its own, blocking its caller: for
 * a thread of nginx's pool only, never the event loop.  *res is the
 * result when NGX_HTTP_THREADS_PG_OK (the caller clears it).
 */
ngx_http_threads_pg_status_e ngx_http_threads_pg_direct(
    const ngx_http_threads_pg_stmt_t *stmt, const char *const *values,
    const int *lengths, ngx_log_t *log, PGresult **res);

/* Parses and resolves a conninfo string at configuration time. */
char *ngx_http_threads_pg_parse_conninfo(ngx_conf_t *cf,
    ngx_http_threads_pg_conf_t *conf, ngx_str_t *conninfo);


#endif /* NGX_HTTP_THREADS_PG_H_INCLUDED_ */
