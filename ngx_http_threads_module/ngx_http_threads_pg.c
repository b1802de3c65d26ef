/*
 * The per-worker PostgreSQL pool.  See ngx_http_threads_pg.h.
 *
 * A connection has one owner, this file.  Its socket is wrapped in an
 * nginx connection only to receive events; libpq alone reads, writes and
 * closes it (PQfinish), so nginx's side is freed with ngx_free_connection
 * and never ngx_close_connection.
 *
 * Connections run in libpq's pipeline mode.  Each write is its own sync
 * segment (its own transaction: an error aborts only its own request);
 * the reads given to one connection in one pass of the event loop share
 * one segment, closed when the pass ends, so that they leave in one send
 * (libpq 15 sends at every Sync).  The server answers them together at
 * the Sync (a Flush after each would keep the connection busy after its
 * answer, waiting for the Sync, and send the next request elsewhere).  A
 * read that another read's error aborted never ran: it goes again in a
 * segment of its own.  Each query is sent with its Prepare the first time
 * a connection meets the statement, so that every query is one round
 * trip; a Prepare starts a segment, so that only its own failure can undo
 * it.  A connection carries up to `pipeline` queries at
 * once, but only when every connection of the pool is busy: until then a
 * new query takes an idle or a new connection, so that one slow query
 * (a lock wait) delays nobody else.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>

#include "ngx_http_threads_pg.h"
#include "ngx_http_threads_metrics.h"


/*
 * A connection that received a result larger than this is closed once
 * idle: libpq keeps its input buffer at its largest size for life.
 */
#define NGX_HTTP_THREADS_PG_RECYCLE  (4 * 1024 * 1024)

/*
 * A write in a connection's pipeline counts as this many reads when a
 * query looks for the shortest pipeline: a commit waits for its WAL flush,
 * and everything behind it on that connection waits too.
 */
#define NGX_HTTP_THREADS_PG_WRITE_WEIGHT  8

/*
 * The schema version (scripts/schema.sql) the statements need; with
 * threads_pg_citus on, the write functions of version 9 (keyed creates).
 */
#define NGX_HTTP_THREADS_PG_SCHEMA        6
#define NGX_HTTP_THREADS_PG_SCHEMA_CITUS  9

#define NGX_HTTP_THREADS_PG_SCHEMA_SQL                                       \
    "SELECT coalesce(max(version), 0) FROM public.threads_schema"


/* What an error's SQLSTATE says about the session and the statement. */
typedef enum {
    NGX_HTTP_THREADS_PG_STATEMENT = 0,  /* this statement: a 500 */
    NGX_HTTP_THREADS_PG_SESSION,        /* the session is no good: 503 */
    NGX_HTTP_THREADS_PG_FORGOTTEN,      /* prepared statements gone */
    NGX_HTTP_THREADS_PG_EXISTS,         /* prepared already */
    NGX_HTTP_THREADS_PG_SCHEMA_OLD      /* missing tables or columns */
} ngx_http_threads_pg_error_e;


typedef enum {
    NGX_HTTP_THREADS_PG_CONNECTING = 0,
    NGX_HTTP_THREADS_PG_IDLE,
    NGX_HTTP_THREADS_PG_BUSY
} ngx_http_threads_pg_state_e;


/*
 * A query on the wire.  It outlives its query when the request goes away
 * (query is then NULL): the results still come and are dropped.
 */
typedef struct {
    ngx_queue_t                    queue;    /* in conn.inflight or free */
    ngx_http_threads_pg_query_t   *query;
    ngx_uint_t                     stmt_index;
    ngx_uint_t                     ends;     /* NULL results still due */
    PGresult                      *res;      /* the query's first result */
    uint64_t                       sent;     /* for the metrics, in usec */
    ngx_uint_t                     metrics_op;
    unsigned                       prepare:1;
    unsigned                       error:1;
    unsigned                       unavailable:1; /* 503, not 500 */
    unsigned                       reprepare:1;   /* the server forgot */
    unsigned                       check:1;  /* the schema version */
    unsigned                       writes:1; /* counted in nwrites */
    unsigned                       synced:1; /* a Sync follows it */
    unsigned                       aborted:1; /* another's error: not run */
    unsigned                       group:1;  /* only the Sync of reads */
} ngx_http_threads_pg_slot_t;


struct ngx_http_threads_pg_conn_s {
    ngx_queue_t                    queue;    /* in pool.idle or pool.busy */
    PGconn                        *pg;
    ngx_connection_t              *c;
    ino_t                          ino;      /* to notice a new socket */
    ngx_event_t                    timer;
    ngx_event_t                    flush;    /* posted: send what is sent */
    ngx_http_threads_pg_state_e    state;
    ngx_queue_t                    inflight; /* slots, oldest first */
    ngx_uint_t                     ninflight; /* slots, with group */
    ngx_uint_t                     nsyncs;   /* of those, reads' Syncs */
    ngx_uint_t                     nwrites;  /* of those, writes */
    /* the Sync that ends this pass's reads, counted in ninflight */
    ngx_http_threads_pg_slot_t    *group;
    uint64_t                       prepared; /* bit per statement */
    unsigned                       flushing:1;
    unsigned                       corked:1; /* TCP_CORK until the flush */
    unsigned                       unix_socket:1; /* no TCP_CORK there */
    unsigned                       reused:1;
    unsigned                       recycle:1; /* close once idle */
    unsigned                       checking:1; /* schema check on it */
    unsigned                       eof_seen:1; /* read on once after FIN */

    ngx_uint_t                     host;     /* the host being tried */
    ngx_uint_t                     tries;    /* hosts tried so far */
    ngx_msec_t                     deadline; /* of the whole attempt */
};


typedef struct {
    ngx_http_threads_pg_conf_t    *conf;
    ngx_http_threads_pg_stmt_t    *stmts;
    ngx_uint_t                     nstmts;
    ngx_log_t                     *log;

    ngx_queue_t                    idle;
    ngx_queue_t                    busy;     /* connecting or querying */
    ngx_uint_t                     nconns;
    ngx_uint_t                     nconnecting;
    ngx_uint_t                     nchecking; /* ready, schema check out */
    ngx_uint_t                     nidle;

    ngx_queue_t                    waiting;
    ngx_uint_t                     nwaiting;

    ngx_queue_t                    free_slots;

    const char                   **values;   /* one host's conninfo */
    ngx_uint_t                     good_host; /* where to start */
} ngx_http_threads_pg_pool_t;


static ngx_http_threads_pg_pool_t  ngx_http_threads_pg_pool;


/* This worker's pool state for the metrics, after every pool event. */
static void
ngx_http_threads_pg_gauges(void)
{
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    ngx_http_threads_metrics_gauges(pool->nidle,
                                    pool->nconns - pool->nconnecting
                                    - pool->nidle,
                                    pool->nconnecting, pool->nwaiting);
}


static ngx_int_t ngx_http_threads_pg_connect(void);
static ngx_int_t ngx_http_threads_pg_register(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_unregister(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_event(ngx_event_t *ev);
static void ngx_http_threads_pg_timeout(ngx_event_t *ev);
static void ngx_http_threads_pg_flush(ngx_event_t *ev);
static ngx_int_t ngx_http_threads_pg_group_end(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_poll(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_io(ngx_http_threads_pg_conn_t *pc);
static ngx_int_t ngx_http_threads_pg_slot_done(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_slot_t *slot);
static ngx_int_t ngx_http_threads_pg_send(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_query_t *q);
static ngx_int_t ngx_http_threads_pg_idle_check(
    ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_fail(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_status_e status);
static void ngx_http_threads_pg_close(ngx_http_threads_pg_conn_t *pc);
static ngx_int_t ngx_http_threads_pg_assign(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_finish(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res);
static void ngx_http_threads_pg_fail_waiting(void);
static void ngx_http_threads_pg_pump(void);
static void ngx_http_threads_pg_wait_timeout(ngx_event_t *ev);
static void ngx_http_threads_pg_enqueue(ngx_http_threads_pg_query_t *q,
    ngx_msec_t timeout);
static ngx_int_t ngx_http_threads_pg_read_ready(ngx_http_threads_pg_conn_t *pc);
static void ngx_http_threads_pg_start(ngx_http_threads_pg_query_t *q);
static ngx_int_t ngx_http_threads_pg_error(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_slot_t *slot, PGresult *res);
static ngx_int_t ngx_http_threads_pg_send_check(
    ngx_http_threads_pg_conn_t *pc);
static char *ngx_http_threads_pg_split_hosts(ngx_conf_t *cf,
    ngx_http_threads_pg_conf_t *conf);
static ngx_str_t ngx_http_threads_pg_list_get(const char *list,
    ngx_uint_t i);


ngx_int_t
ngx_http_threads_pg_init_worker(ngx_cycle_t *cycle,
    ngx_http_threads_pg_conf_t *conf, ngx_http_threads_pg_stmt_t *stmts,
    ngx_uint_t nstmts)
{
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (nstmts > 64) {
        return NGX_ERROR;
    }

    ngx_memzero(pool, sizeof(ngx_http_threads_pg_pool_t));

    pool->conf = conf;
    pool->stmts = stmts;
    pool->nstmts = nstmts;
    pool->log = cycle->log;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->busy);
    ngx_queue_init(&pool->waiting);
    ngx_queue_init(&pool->free_slots);

    pool->values = ngx_alloc((conf->nvalues + 1) * sizeof(char *),
                             cycle->log);
    if (pool->values == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_threads_pg_exit_worker(void)
{
    ngx_queue_t                 *head, *q;
    ngx_http_threads_pg_conn_t  *pc;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (pool->conf == NULL) {
        return;
    }

    for (head = &pool->idle; head; head = (head == &pool->idle)
                                          ? &pool->busy : NULL)
    {
        while (!ngx_queue_empty(head)) {
            q = ngx_queue_head(head);
            pc = ngx_queue_data(q, ngx_http_threads_pg_conn_t, queue);
            ngx_http_threads_pg_close(pc);
        }
    }

    while (!ngx_queue_empty(&pool->free_slots)) {
        q = ngx_queue_head(&pool->free_slots);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_threads_pg_slot_t, queue));
    }

    ngx_free(pool->values);
    pool->values = NULL;
    pool->conf = NULL;
}


/* Takes an idle connection that is still good, or NULL. */
static ngx_http_threads_pg_conn_t *
ngx_http_threads_pg_take_idle(void)
{
    ngx_queue_t                 *head;
    ngx_http_threads_pg_conn_t  *pc;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    while (!ngx_queue_empty(&pool->idle)) {
        head = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(head, ngx_http_threads_pg_conn_t, queue);

        /*
         * A server that ended the session (restart, pg_terminate_backend,
         * idle_session_timeout) said so before closing: that news may be
         * waiting unread in the socket.  Check before trusting it.
         */
        if (ngx_http_threads_pg_read_ready(pc)
            && ngx_http_threads_pg_idle_check(pc) != NGX_OK)
        {
            continue;
        }

        ngx_queue_remove(head);
        ngx_queue_insert_tail(&pool->busy, head);
        pool->nidle--;

        pc->c->idle = 0;
        pc->reused = 1;
        pc->state = NGX_HTTP_THREADS_PG_BUSY;

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        return pc;
    }

    return NULL;
}


/*
 * The busy connection with the shortest pipeline, if it has room: the
 * fewest queries in flight, a write counted as WRITE_WEIGHT of them, so
 * that a retrieve goes behind other retrieves rather than behind commits.
 */
static ngx_http_threads_pg_conn_t *
ngx_http_threads_pg_take_busy(void)
{
    ngx_uint_t                   load, best_load;
    ngx_queue_t                 *q;
    ngx_http_threads_pg_conn_t  *pc, *best;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    best = NULL;
    best_load = 0;

    for (q = ngx_queue_head(&pool->busy);
         q != ngx_queue_sentinel(&pool->busy);
         q = ngx_queue_next(q))
    {
        pc = ngx_queue_data(q, ngx_http_threads_pg_conn_t, queue);

        /* a reads' Sync is no query: it counts for neither */
        if (pc->state != NGX_HTTP_THREADS_PG_BUSY
            || pc->checking
            || pc->ninflight - pc->nsyncs >= pool->conf->pipeline)
        {
            continue;
        }

        load = pc->ninflight - pc->nsyncs
               + (NGX_HTTP_THREADS_PG_WRITE_WEIGHT - 1) * pc->nwrites;

        if (best == NULL || load < best_load) {
            best = pc;
            best_load = load;
        }
    }

    return best;
}


void
ngx_http_threads_pg_run(ngx_http_threads_pg_query_t *q)
{
    ngx_http_threads_pg_start(q);
    ngx_http_threads_pg_gauges();
}


static void
ngx_http_threads_pg_start(ngx_http_threads_pg_query_t *q)
{
    ngx_http_threads_pg_conn_t  *pc;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    q->slot = NULL;
    q->waiting = 0;
    q->sent = 0;

    if (pool->conf == NULL) {
        ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_UNAVAILABLE, NULL);
        return;
    }

    /*
     * A retry skips the idle connections: the one that just failed may
     * not have been the only dead one.
     */
    pc = q->retried ? NULL : ngx_http_threads_pg_take_idle();

    if (pc == NULL && pool->nconns < pool->conf->pool_size) {
        ngx_http_threads_pg_enqueue(q, ngx_max(pool->conf->queue_timeout,
                                               pool->conf->connect_timeout));

        if (ngx_http_threads_pg_connect() != NGX_OK && pool->nconns == 0) {
            ngx_http_threads_pg_fail_waiting();
        }

        return;
    }

    if (pc == NULL) {
        pc = ngx_http_threads_pg_take_busy();
    }

    if (pc) {
        if (ngx_http_threads_pg_send(pc, q) != NGX_OK) {
            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        }

        return;
    }

    if (pool->nwaiting - ngx_min(pool->nwaiting,
                                 pool->nconnecting + pool->nchecking)
        >= pool->conf->queue_size)
    {
        ngx_log_error(NGX_LOG_WARN, q->log, 0,
                      "threads: database pool queue is full (%ui waiting)",
                      pool->nwaiting);
        ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_QUEUE_OVERFLOW);
        ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_UNAVAILABLE, NULL);
        return;
    }

    ngx_http_threads_pg_enqueue(q, pool->conf->queue_timeout);
}


void
ngx_http_threads_pg_cancel(ngx_http_threads_pg_query_t *q)
{
    ngx_http_threads_pg_slot_t  *slot;

    if (q->waiting) {
        ngx_queue_remove(&q->queue);
        ngx_http_threads_pg_pool.nwaiting--;
        q->waiting = 0;
    }

    if (q->wait.timer_set) {
        ngx_del_timer(&q->wait);
    }

    if (q->done.posted) {
        ngx_delete_posted_event(&q->done);
    }

    if (q->res) {
        PQclear(q->res);
        q->res = NULL;
    }

    slot = q->slot;

    if (slot) {
        /* the result is read and dropped; the connection goes on */
        slot->query = NULL;
        q->slot = NULL;
    }

    ngx_http_threads_pg_gauges();
}


static void
ngx_http_threads_pg_enqueue(ngx_http_threads_pg_query_t *q,
    ngx_msec_t timeout)
{
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    ngx_queue_insert_tail(&pool->waiting, &q->queue);
    pool->nwaiting++;
    q->waiting = 1;

    q->wait.handler = ngx_http_threads_pg_wait_timeout;
    q->wait.data = q;
    q->wait.log = q->log;
    ngx_add_timer(&q->wait, timeout);
}


static void
ngx_http_threads_pg_wait_timeout(ngx_event_t *ev)
{
    ngx_http_threads_pg_query_t  *q = ev->data;

    ngx_log_error(NGX_LOG_WARN, q->log, 0,
                  "threads: no database connection became free in time");
    ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_QUEUE_TIMEOUT);

    ngx_queue_remove(&q->queue);
    ngx_http_threads_pg_pool.nwaiting--;
    q->waiting = 0;

    ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_UNAVAILABLE, NULL);
    ngx_http_threads_pg_gauges();
}


static void
ngx_http_threads_pg_done(ngx_event_t *ev)
{
    PGresult                     *res;
    ngx_http_threads_pg_query_t  *q = ev->data;

    res = q->res;
    q->res = NULL;

    q->handler(q, q->status, res);
}


/*
 * The query is over for the pool; its handler learns it from a posted
 * event, once the code that ended it (maybe the request's own handler,
 * maybe another request's result on the same connection) has returned.
 */
static void
ngx_http_threads_pg_finish(ngx_http_threads_pg_query_t *q,
    ngx_http_threads_pg_status_e status, PGresult *res)
{
    if (q->wait.timer_set) {
        ngx_del_timer(&q->wait);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "threads: query done, status %d", (int) status);

    q->slot = NULL;
    q->status = status;
    q->res = res;

    q->done.handler = ngx_http_threads_pg_done;
    q->done.data = q;
    q->done.log = q->log;

    ngx_post_event(&q->done, &ngx_posted_events);
}


/* Everyone waiting gets 503: the database just refused a connection. */
static void
ngx_http_threads_pg_fail_waiting(void)
{
    ngx_queue_t                  *head;
    ngx_http_threads_pg_query_t  *q;
    ngx_http_threads_pg_pool_t   *pool = &ngx_http_threads_pg_pool;

    while (!ngx_queue_empty(&pool->waiting)) {
        head = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(head, ngx_http_threads_pg_query_t, queue);

        ngx_queue_remove(head);
        pool->nwaiting--;
        q->waiting = 0;

        ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_UNAVAILABLE, NULL);
    }
}


/* Server notices go to nginx's log, not to libpq's default, stderr. */
static void
ngx_http_threads_pg_notice(void *arg, const char *message)
{
    ngx_log_error(NGX_LOG_NOTICE, ngx_http_threads_pg_pool.log, 0,
                  "threads: database notice: %s", message);
}


/*
 * Starts libpq on the host pc->tries steps after the last good one, with
 * a timer for that host alone; with one host (or none), libpq gets the
 * conninfo as it is.  NGX_ERROR: it failed at once.
 */
static ngx_int_t
ngx_http_threads_pg_start_host(ngx_http_threads_pg_conn_t *pc)
{
    ngx_msec_t                   timeout, left;
    ngx_uint_t                   i, nhosts;
    const char                 **values;
    ngx_http_threads_pg_host_t  *h;
    ngx_http_threads_pg_conf_t  *conf;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    conf = pool->conf;
    values = conf->values;
    timeout = conf->connect_timeout;
    nhosts = conf->hosts ? conf->hosts->nelts : 0;

    if (nhosts > 1) {
        pc->host = (pool->good_host + pc->tries) % nhosts;
        h = (ngx_http_threads_pg_host_t *) conf->hosts->elts + pc->host;

        ngx_memcpy(pool->values, conf->values,
                   (conf->nvalues + 1) * sizeof(char *));
        values = pool->values;

        for (i = 0; i < 3; i++) {
            if (conf->host_kw[i] >= 0) {
                values[conf->host_kw[i]] = (i == 0) ? h->host
                                         : (i == 1) ? h->hostaddr : h->port;
            }
        }

        left = (pc->deadline > ngx_current_msec)
               ? pc->deadline - ngx_current_msec : 1;
        timeout = ngx_min(conf->host_timeout, left);

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "threads: connecting to host %ui \"%s\" (%s)",
                       pc->host, h->host, h->hostaddr ? h->hostaddr : "");
    }

    /* host names were resolved at configuration time: no DNS here */
    pc->pg = PQconnectStartParams(conf->keywords, values, 0);

    if (pc->pg == NULL || PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: cannot connect to the database: %s",
                      pc->pg ? PQerrorMessage(pc->pg) : "out of memory");
        PQfinish(pc->pg);
        pc->pg = NULL;
        return NGX_ERROR;
    }

    PQsetNoticeProcessor(pc->pg, ngx_http_threads_pg_notice, NULL);

    if (ngx_http_threads_pg_register(pc) != NGX_OK) {
        PQfinish(pc->pg);
        pc->pg = NULL;
        return NGX_ERROR;
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->timer.cancelable = 0;
    ngx_add_timer(&pc->timer, timeout);

    return NGX_OK;
}


/*
 * This host failed or was silent for its timeout: the next one, while
 * hosts and time are left.  NGX_OK: another host is being tried.
 */
static ngx_int_t
ngx_http_threads_pg_next_host(ngx_http_threads_pg_conn_t *pc)
{
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (pool->conf->hosts == NULL || pool->conf->hosts->nelts < 2) {
        return NGX_DECLINED;
    }

    ngx_http_threads_pg_unregister(pc);
    PQfinish(pc->pg);
    pc->pg = NULL;

    while (++pc->tries < pool->conf->hosts->nelts
           && ngx_current_msec < pc->deadline)
    {
        if (ngx_http_threads_pg_start_host(pc) == NGX_OK) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_threads_pg_connect(void)
{
    ngx_uint_t                   nhosts;
    ngx_http_threads_pg_conn_t  *pc;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    pc = ngx_calloc(sizeof(ngx_http_threads_pg_conn_t), pool->log);
    if (pc == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&pc->inflight);
    pc->state = NGX_HTTP_THREADS_PG_CONNECTING;
    pc->timer.handler = ngx_http_threads_pg_timeout;
    pc->timer.data = pc;
    pc->timer.log = pool->log;
    pc->flush.handler = ngx_http_threads_pg_flush;
    pc->flush.data = pc;
    pc->flush.log = pool->log;
    pc->deadline = ngx_current_msec + pool->conf->connect_timeout;

    nhosts = pool->conf->hosts ? pool->conf->hosts->nelts : 1;

    while (ngx_http_threads_pg_start_host(pc) != NGX_OK) {
        if (nhosts < 2 || ++pc->tries >= nhosts) {
            ngx_http_threads_metrics_event(
                                    NGX_HTTP_THREADS_METRICS_CONNECT_FAILURE);
            if (pc->timer.timer_set) {
                ngx_del_timer(&pc->timer);
            }
            ngx_free(pc);
            return NGX_ERROR;
        }
    }

    ngx_queue_insert_tail(&pool->busy, &pc->queue);
    pool->nconns++;
    pool->nconnecting++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "threads: connecting, %ui connections", pool->nconns);

    return NGX_OK;
}


/* Wraps libpq's current socket in an nginx connection for its events. */
static ngx_int_t
ngx_http_threads_pg_register(ngx_http_threads_pg_conn_t *pc)
{
    int                          fd;
    struct stat                  st;
    ngx_event_t                 *rev, *wev;
    ngx_connection_t            *c;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    fd = PQsocket(pc->pg);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: database connection has no socket");
        return NGX_ERROR;
    }

    if (fstat(fd, &st) == -1) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, ngx_errno, "fstat() failed");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->shared = 0;
    rev = c->read;
    wev = c->write;
    rev->handler = ngx_http_threads_pg_event;
    wev->handler = ngx_http_threads_pg_event;
    rev->log = pool->log;
    wev->log = pool->log;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            goto failed;
        }

    } else {
        if (ngx_add_event(rev, NGX_READ_EVENT,
                          (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                          ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
            != NGX_OK
            || ngx_add_event(wev, NGX_WRITE_EVENT,
                             (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                             ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
               != NGX_OK)
        {
            goto failed;
        }
    }

    pc->c = c;
    pc->ino = st.st_ino;

    return NGX_OK;

failed:

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    return NGX_ERROR;
}


/* Forgets the socket on nginx's side; libpq closes it. */
static void
ngx_http_threads_pg_unregister(ngx_http_threads_pg_conn_t *pc)
{
    ngx_connection_t  *c = pc->c;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* NGX_CLOSE_EVENT: the fd is (about to be) closed, epoll forgets it */

    if (ngx_del_conn) {
        ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active || c->read->disabled) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active || c->write->disabled) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
    pc->c = NULL;
}


static void
ngx_http_threads_pg_event(ngx_event_t *ev)
{
    ngx_connection_t            *c = ev->data;
    ngx_http_threads_pg_conn_t  *pc = c->data;

    /*
     * Writable is news only to a connection being set up or with bytes
     * left to send; what arrives is the read event's (epoll reports both
     * edges at once after every answer: this saves a read and an ioctl).
     */
    if (ev->write && !pc->flushing
        && pc->state != NGX_HTTP_THREADS_PG_CONNECTING)
    {
        return;
    }

    switch (pc->state) {

    case NGX_HTTP_THREADS_PG_CONNECTING:
        ngx_http_threads_pg_poll(pc);
        break;

    case NGX_HTTP_THREADS_PG_IDLE:
        (void) ngx_http_threads_pg_idle_check(pc);
        break;

    default:
        ngx_http_threads_pg_io(pc);
        break;
    }

    ngx_http_threads_pg_gauges();
}


static void
ngx_http_threads_pg_timeout(ngx_event_t *ev)
{
    ngx_http_threads_pg_conn_t  *pc = ev->data;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    switch (pc->state) {

    case NGX_HTTP_THREADS_PG_CONNECTING:
        if (pool->conf->hosts && pool->conf->hosts->nelts > 1) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "threads: database host %ui did not answer in "
                          "time", pc->host);

            if (ngx_http_threads_pg_next_host(pc) == NGX_OK) {
                break;
            }
        }

        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: connecting to the database timed out");
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        break;

    case NGX_HTTP_THREADS_PG_IDLE:
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "threads: closing idle database connection");
        ngx_http_threads_pg_close(pc);
        break;

    default:
        /*
         * No result for query_timeout: the requests get a 504 and the
         * connection is closed (a blocking PQcancel is no option here).
         * The server may still finish the statement, as after any gateway
         * timeout: set statement_timeout in the conninfo's options to
         * bound it there too.
         */
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: database query timed out");
        ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_QUERY_TIMEOUT);
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_TIMEOUT);
        break;
    }

    ngx_http_threads_pg_gauges();
}


/*
 * A connection with room serves the oldest waiters, or rests in the pool.
 * NGX_OK: it is busy; NGX_DONE: it went idle; NGX_ERROR: it is gone.
 */
static ngx_int_t
ngx_http_threads_pg_assign(ngx_http_threads_pg_conn_t *pc)
{
    ngx_queue_t                  *head;
    ngx_http_threads_pg_query_t  *q;
    ngx_http_threads_pg_pool_t   *pool = &ngx_http_threads_pg_pool;

    if (pc->state == NGX_HTTP_THREADS_PG_IDLE) {
        pc->state = NGX_HTTP_THREADS_PG_BUSY;
    }

    /*
     * One waiter, and more only for waiters that no connection under way
     * will serve: each of those was opened for a waiter of its own.
     */
    /*
     * Nothing goes behind an unfinished schema check: each statement is
     * its own transaction, and would commit on a schema the check then
     * refuses.
     */
    while (!ngx_queue_empty(&pool->waiting)
           && !pc->checking
           && pc->ninflight - pc->nsyncs < pool->conf->pipeline
           && (pc->ninflight == 0
               || pool->nwaiting > pool->nconnecting + pool->nchecking))
    {
        head = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(head, ngx_http_threads_pg_query_t, queue);

        ngx_queue_remove(head);
        pool->nwaiting--;
        q->waiting = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        if (ngx_http_threads_pg_send(pc, q) != NGX_OK) {
            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
            return NGX_ERROR;
        }
    }

    if (pc->ninflight) {
        return NGX_OK;
    }

    if (ngx_exiting || ngx_terminate || ngx_quit || pc->recycle) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "threads: closing a database connection%s",
                       pc->recycle ? " that grew large" : "");
        ngx_http_threads_pg_close(pc);
        ngx_http_threads_pg_pump();
        return NGX_ERROR;
    }

    pc->state = NGX_HTTP_THREADS_PG_IDLE;
    pc->c->idle = 1;

    ngx_queue_remove(&pc->queue);
    ngx_queue_insert_head(&pool->idle, &pc->queue);
    pool->nidle++;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pool->conf->idle_timeout) {
        pc->timer.cancelable = 1;
        ngx_add_timer(&pc->timer, pool->conf->idle_timeout);
    }

    /* a server that closed meanwhile shows as readable now */
    if (ngx_http_threads_pg_read_ready(pc)
        && ngx_http_threads_pg_idle_check(pc) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


/* A cleared slot: a freed one again, or a new one (NULL: no memory). */
static ngx_http_threads_pg_slot_t *
ngx_http_threads_pg_slot_get(void)
{
    ngx_queue_t                 *head;
    ngx_http_threads_pg_slot_t  *slot;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (ngx_queue_empty(&pool->free_slots)) {
        return ngx_calloc(sizeof(ngx_http_threads_pg_slot_t), pool->log);
    }

    head = ngx_queue_head(&pool->free_slots);
    ngx_queue_remove(head);
    slot = ngx_queue_data(head, ngx_http_threads_pg_slot_t, queue);
    ngx_memzero(slot, sizeof(ngx_http_threads_pg_slot_t));

    return slot;
}


/*
 * Puts q on the wire, with a Prepare in front the first time this
 * connection meets the statement: a write as its own sync segment, a read
 * in this pass's segment of reads (the flush ends it).  NGX_ERROR: the
 * connection is broken; q is on it, not sent, and the caller's
 * ngx_http_threads_pg_fail() retries it elsewhere.
 */
static ngx_int_t
ngx_http_threads_pg_send(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_query_t *q)
{
    int                                rc;
    uint64_t                           bit;
    ngx_uint_t                         own_sync, first, prepare, ends_group;
    ngx_http_threads_pg_slot_t        *slot, *group;
    ngx_http_threads_pg_pool_t        *pool = &ngx_http_threads_pg_pool;
    const ngx_http_threads_pg_stmt_t  *stmt = q->stmt;

    bit = (uint64_t) 1 << q->stmt_index;
    own_sync = stmt->writes || q->alone || pool->conf->pipeline == 1;
    prepare = pool->conf->prepare && !(pc->prepared & bit);
    first = (pc->ninflight == 0);

    /*
     * A Prepare starts a segment too: aborted by another statement's
     * error, it would leave its statement unprepared while segments sent
     * meanwhile execute it.
     */
    ends_group = pc->group && (own_sync || prepare);

    slot = ngx_http_threads_pg_slot_get();
    if (slot == NULL) {
        ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_ERROR, NULL);
        return NGX_OK;
    }

    group = NULL;

    if (!own_sync && (pc->group == NULL || ends_group)) {
        /* a read opens this pass's segment of reads: its Sync */
        group = ngx_http_threads_pg_slot_get();
        if (group == NULL) {
            ngx_queue_insert_head(&pool->free_slots, &slot->queue);
            ngx_http_threads_pg_finish(q, NGX_HTTP_THREADS_PG_ERROR, NULL);
            return NGX_OK;
        }

        group->synced = 1;
        group->group = 1;
    }
    slot->stmt_index = q->stmt_index;
    slot->writes = stmt->writes;
    slot->sent = ngx_http_threads_metrics_now();
    slot->metrics_op = q->metrics_op;
    slot->ends = 1;
    slot->synced = own_sync;
    rc = 1;

    /*
     * libpq 15 sends each sync at once: a second one in this pass of the
     * event loop corks the socket, so that it and the next ones leave in
     * one segment when the pass ends (a Unix socket has no cork).
     */
    if ((own_sync || ends_group)
        && pc->flush.posted && !pc->corked && !pc->unix_socket)
    {
        int  on = 1;

        if (setsockopt(PQsocket(pc->pg), IPPROTO_TCP, TCP_CORK, &on,
                       sizeof(on)) == 0)
        {
            pc->corked = 1;

        } else {
            pc->unix_socket = 1;    /* or whatever takes no cork */
        }
    }

    /* the reads before a write or a Prepare end their segment first */
    if (ends_group) {
        rc = (ngx_http_threads_pg_group_end(pc) == NGX_OK);
    }

    if (group) {
        pc->group = group;
        pc->ninflight++;
        pc->nsyncs++;
    }

    if (rc && prepare) {
        rc = PQsendPrepare(pc->pg, stmt->name, stmt->sql, stmt->nparams,
                           NULL);
        /* set now: the next segment may use it before this one is back */
        pc->prepared |= bit;
        slot->prepare = 1;
        slot->ends = 2;
    }

    if (rc && pool->conf->prepare) {
        rc = PQsendQueryPrepared(pc->pg, stmt->name, stmt->nparams,
                                 q->values, q->lengths, NULL, 0);

    } else if (rc) {
        /* unnamed statements: they survive transaction-mode poolers */
        rc = PQsendQueryParams(pc->pg, stmt->sql, stmt->nparams, NULL,
                               q->values, q->lengths, NULL, 0);
    }

    if (rc && own_sync) {
        rc = PQpipelineSync(pc->pg);
    }

    ngx_queue_insert_tail(&pc->inflight, &slot->queue);
    pc->ninflight++;
    pc->nwrites += slot->writes;

    if (!rc) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "threads: cannot send to the database: %s",
                      PQerrorMessage(pc->pg));
        /* q is not on the wire: the failure may give it another go */
        slot->query = q;
        q->slot = slot;
        return NGX_ERROR;
    }

    slot->query = q;
    q->slot = slot;
    q->sent = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "threads: %ui queries in flight", pc->ninflight - pc->nsyncs);

    if (first) {
        pc->timer.cancelable = 0;
        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }
        ngx_add_timer(&pc->timer, pool->conf->query_timeout);
    }

    /*
     * Sent once this pass of the event loop is over, with the queries of
     * other requests that came in the same pass: one send for them all.
     * Until then a write edge flushes too.
     */
    pc->flushing = 1;

    if (!pc->flush.posted) {
        ngx_post_event(&pc->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * The Sync after this pass's reads: its slot, reserved when the first of
 * them was sent, goes on the wire behind them.  NGX_ERROR: the connection
 * is broken (the slot is on it).
 */
static ngx_int_t
ngx_http_threads_pg_group_end(ngx_http_threads_pg_conn_t *pc)
{
    ngx_http_threads_pg_slot_t  *group = pc->group;

    pc->group = NULL;
    ngx_queue_insert_tail(&pc->inflight, &group->queue);

    /*
     * The Sync's own flush may stop at a full socket, and an earlier
     * PQflush in this pass may have cleared flushing: the rest goes on
     * write events.
     */
    pc->flushing = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_http_threads_pg_pool.log, 0,
                   "threads: reads' segment ends");

    return PQpipelineSync(pc->pg) ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_threads_pg_flush(ngx_event_t *ev)
{
    int                          rc;
    ngx_http_threads_pg_conn_t  *pc = ev->data;

    rc = 0;

    if (pc->group && ngx_http_threads_pg_group_end(pc) != NGX_OK) {
        rc = -1;
    }

    /* the Sync's own flush may leave bytes queued: they go on write events */
    if (rc == 0 && pc->flushing) {
        rc = PQflush(pc->pg);
    }

    if (pc->corked) {
        int  off = 0;

        /* what is queued goes now; the rest on write events, uncorked */
        (void) setsockopt(PQsocket(pc->pg), IPPROTO_TCP, TCP_CORK, &off,
                          sizeof(off));
        pc->corked = 0;
    }

    if (rc == -1) {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "threads: cannot send to the database: %s",
                      PQerrorMessage(pc->pg));
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        ngx_http_threads_pg_gauges();
        return;
    }

    /* rc == 1: the rest goes out on write events */
    pc->flushing = (rc == 1);
}


/*
 * Sorts an error by its SQLSTATE.  Session classes: connection failures
 * (08), an administrator or crash shutdown (57P01-57P03), an idle session
 * ended by the server (57P05), too many
 * connections (53300), and a read-only server (25006: a demoted primary,
 * default_transaction_read_only) all mean that this session cannot serve
 * this statement, which did not take effect.
 */
static ngx_http_threads_pg_error_e
ngx_http_threads_pg_classify(const char *sqlstate)
{
    if (sqlstate == NULL || ngx_strlen(sqlstate) != 5) {
        return NGX_HTTP_THREADS_PG_STATEMENT;
    }

    if (ngx_strncmp(sqlstate, "08", 2) == 0
        || ngx_strcmp(sqlstate, "57P01") == 0
        || ngx_strcmp(sqlstate, "57P02") == 0
        || ngx_strcmp(sqlstate, "57P03") == 0
        || ngx_strcmp(sqlstate, "57P05") == 0
        || ngx_strcmp(sqlstate, "53300") == 0
        || ngx_strcmp(sqlstate, "25006") == 0)
    {
        return NGX_HTTP_THREADS_PG_SESSION;
    }

    /* a pooler's DISCARD ALL or DEALLOCATE: prepare again */
    if (ngx_strcmp(sqlstate, "26000") == 0) {
        return NGX_HTTP_THREADS_PG_FORGOTTEN;
    }

    /* a Prepare of a statement the session has (after a 26000 above) */
    if (ngx_strcmp(sqlstate, "42P05") == 0) {
        return NGX_HTTP_THREADS_PG_EXISTS;
    }

    /* undefined table, column, function */
    if (ngx_strcmp(sqlstate, "42P01") == 0
        || ngx_strcmp(sqlstate, "42703") == 0
        || ngx_strcmp(sqlstate, "42883") == 0)
    {
        return NGX_HTTP_THREADS_PG_SCHEMA_OLD;
    }

    return NGX_HTTP_THREADS_PG_STATEMENT;
}


/*
 * An error result of slot's segment.  NGX_OK: the connection goes on;
 * else it was failed (closed) here.
 */
static ngx_int_t
ngx_http_threads_pg_error(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_slot_t *slot, PGresult *res)
{
    ngx_log_t                   *log;
    ngx_queue_t                 *q;
    const char                  *sqlstate, *name;
    ExecStatusType               st;
    ngx_http_threads_pg_slot_t  *s;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    st = PQresultStatus(res);
    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    log = slot->query ? slot->query->log : pool->log;
    name = slot->check ? "schema check"
           : slot->group ? "Sync of reads"
           : pool->stmts[slot->stmt_index].name;

    if (slot->prepare && slot->ends == 2) {
        /* it was never prepared after all */
        pc->prepared &= ~((uint64_t) 1 << slot->stmt_index);
    }

    if (st == PGRES_PIPELINE_ABORTED && !slot->error && !slot->check
        && PQstatus(pc->pg) != CONNECTION_BAD)
    {
        /* an earlier read of its segment failed: this one never ran */
        slot->aborted = 1;
        PQclear(res);
        return NGX_OK;
    }

    slot->error = 1;

    if (st != PGRES_PIPELINE_ABORTED
        && ngx_http_threads_pg_classify(sqlstate)
           == NGX_HTTP_THREADS_PG_SESSION)
    {
        ngx_http_threads_metrics_db_error(sqlstate);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: database session cannot serve \"%s\" "
                      "(SQLSTATE %s), closing it: %s", name, sqlstate,
                      PQresultErrorMessage(res));
        PQclear(res);

        /*
         * Neither this statement nor those behind it on this session took
         * effect (it ended, or refuses writes): they may go to a fresh one.
         */
        for (q = ngx_queue_head(&pc->inflight);
             q != ngx_queue_sentinel(&pc->inflight);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_threads_pg_slot_t, queue);
            if (s->query) {
                s->query->sent = 0;
            }
        }

        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        return NGX_ERROR;
    }

    if (PQstatus(pc->pg) == CONNECTION_BAD) {
        /* the session ended without saying why: outcomes unknown */
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: database connection lost: %s",
                      PQresultErrorMessage(res));
        PQclear(res);
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        return NGX_ERROR;
    }

    if (st == PGRES_PIPELINE_ABORTED || slot->check) {
        /* the error itself came first; a check speaks for itself */
        PQclear(res);
        return NGX_OK;
    }

    ngx_http_threads_metrics_db_error(sqlstate);

    /* the text goes to the log only, never to a client */

    switch (ngx_http_threads_pg_classify(sqlstate)) {

    case NGX_HTTP_THREADS_PG_FORGOTTEN:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "threads: the database forgot the prepared statements "
                      "(a pooler's DISCARD ALL?), preparing them again");
        pc->prepared = 0;
        slot->reprepare = 1;
        break;

    case NGX_HTTP_THREADS_PG_EXISTS:
        /*
         * A 26000 cleared every statement's bit, also of those this
         * session still has (the 26000 may have followed a Prepare that
         * failed for its own reasons): it is prepared, once more without.
         */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "threads: \"%s\" was prepared already, using it",
                      name);
        pc->prepared |= (uint64_t) 1 << slot->stmt_index;
        slot->reprepare = 1;
        break;

    case NGX_HTTP_THREADS_PG_SCHEMA_OLD:
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: the database schema is missing or older "
                      "than version %d (SQLSTATE %s in \"%s\"): apply "
                      "scripts/schema.sql, which upgrades any older "
                      "version: %s", pool->conf->citus
                                     ? NGX_HTTP_THREADS_PG_SCHEMA_CITUS
                                     : NGX_HTTP_THREADS_PG_SCHEMA, sqlstate,
                      name, PQresultErrorMessage(res));
        slot->unavailable = 1;
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: database error in \"%s\" (SQLSTATE %s): %s",
                      name, sqlstate ? sqlstate : "none",
                      PQresultErrorMessage(res));
        break;
    }

    PQclear(res);

    return NGX_OK;
}


static void
ngx_http_threads_pg_io(ngx_http_threads_pg_conn_t *pc)
{
    int                          rc;
    PGresult                    *res;
    ngx_queue_t                 *head;
    ExecStatusType               st;
    ngx_http_threads_pg_slot_t  *slot;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (pc->flushing) {
        rc = PQflush(pc->pg);

        if (rc == -1) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "threads: cannot send to the database: %s",
                          PQerrorMessage(pc->pg));
            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
            return;
        }

        pc->flushing = (rc == 1);
    }

    /*
     * The query timeout counts silence, not the whole answer: a large
     * result that keeps arriving is not cut.
     */
    if (pc->ninflight) {
        pc->timer.cancelable = 0;
        ngx_add_timer(&pc->timer, pool->conf->query_timeout);
    }

    for ( ;; ) {

        if (!PQconsumeInput(pc->pg)) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "threads: database connection lost: %s",
                          PQerrorMessage(pc->pg));
            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
            return;
        }

        while (!ngx_queue_empty(&pc->inflight) && !PQisBusy(pc->pg)) {
            head = ngx_queue_head(&pc->inflight);
            slot = ngx_queue_data(head, ngx_http_threads_pg_slot_t, queue);

            res = PQgetResult(pc->pg);

            if (res == NULL) {
                if (slot->ends == 0) {
                    /* libpq 15 sends no NULL after a statement's last */
                    ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                                  "threads: unexpected end of results");
                    ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_ERROR);
                    return;
                }

                slot->ends--;

                /* a read of a segment of reads: the Sync is another slot's */
                if (slot->ends == 0 && !slot->synced
                    && ngx_http_threads_pg_slot_done(pc, slot) != NGX_OK)
                {
                    /* the connection went idle, or was closed */
                    return;
                }

                continue;
            }

            st = PQresultStatus(res);

            if (st == PGRES_PIPELINE_SYNC) {
                PQclear(res);

                if (ngx_http_threads_pg_slot_done(pc, slot) != NGX_OK) {
                    /* the connection went idle, or was closed */
                    return;
                }

                continue;
            }

            if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {

                if (ngx_http_threads_pg_error(pc, slot, res) != NGX_OK) {
                    /* the connection is gone */
                    return;
                }

                continue;
            }

            if (slot->prepare && slot->ends == 2) {
                PQclear(res);           /* the Prepare's own result */

            } else if (slot->res == NULL) {
                slot->res = res;

            } else {
                PQclear(res);
            }
        }

        if (!ngx_http_threads_pg_read_ready(pc)) {
            return;
        }
    }
}


/*
 * A query's segment is complete: its request gets the answer.  NGX_OK:
 * the connection has more in flight; else it went idle or is gone.
 */
static ngx_int_t
ngx_http_threads_pg_slot_done(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_slot_t *slot)
{
    ngx_int_t                     version, need;
    PGresult                     *res;
    ngx_http_threads_pg_query_t  *q;
    ngx_http_threads_pg_pool_t   *pool = &ngx_http_threads_pg_pool;

    ngx_queue_remove(&slot->queue);
    pc->ninflight--;
    pc->nsyncs -= slot->group;
    pc->nwrites -= slot->writes;

    if (slot->sent) {
        ngx_http_threads_metrics_pg(slot->metrics_op,
                                    ngx_http_threads_metrics_now()
                                    - slot->sent);
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pc->ninflight) {
        /* progress: the next query gets a full query_timeout */
        pc->timer.cancelable = 0;
        ngx_add_timer(&pc->timer, pool->conf->query_timeout);
    }

    res = slot->res;
    slot->res = NULL;
    q = slot->query;

    if (slot->check) {
        ngx_queue_insert_head(&pool->free_slots, &slot->queue);
        pc->checking = 0;
        pool->nchecking--;

        version = (res && PQntuples(res) == 1 && !slot->error)
                  ? ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                             PQgetlength(res, 0, 0))
                  : 0;
        PQclear(res);

        need = pool->conf->citus ? NGX_HTTP_THREADS_PG_SCHEMA_CITUS
                                 : NGX_HTTP_THREADS_PG_SCHEMA;

        if (version < need) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "threads: the database has schema version %i, "
                          "this module needs %i: apply scripts/schema.sql "
                          "(it upgrades any older version, data kept)",
                          version, need);
            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
            return NGX_ERROR;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "threads: database schema version %i", version);

    } else if (q && ((slot->reprepare && !q->retried)
                     || (slot->aborted && !slot->error && !q->alone)))
    {
        /*
         * Once more, prepared again or in a segment of its own: first in
         * the queue, served by the assign() below or by the next
         * connection with room, never from in here, where this connection
         * is still being read.
         */
        PQclear(res);
        ngx_queue_insert_head(&pool->free_slots, &slot->queue);
        q->slot = NULL;

        if (slot->aborted && !slot->error) {
            ngx_log_error(NGX_LOG_INFO, q->log, 0,
                          "threads: another read's error ended its "
                          "segment before it ran: sent again, alone");
            q->alone = 1;

        } else {
            q->retried = 1;
        }

        q->sent = 0;
        ngx_queue_insert_head(&pool->waiting, &q->queue);
        pool->nwaiting++;
        q->waiting = 1;
        q->wait.handler = ngx_http_threads_pg_wait_timeout;
        q->wait.data = q;
        q->wait.log = q->log;
        ngx_add_timer(&q->wait, pool->conf->queue_timeout);

    } else if (q) {
        if (res && PQresultMemorySize(res) > NGX_HTTP_THREADS_PG_RECYCLE) {
            /* libpq's buffers only grow: this one goes once it is idle */
            pc->recycle = 1;
        }

        ngx_http_threads_pg_finish(q, slot->unavailable || slot->reprepare
                                      ? NGX_HTTP_THREADS_PG_UNAVAILABLE
                                      : slot->error || res == NULL
                                      ? NGX_HTTP_THREADS_PG_ERROR
                                      : NGX_HTTP_THREADS_PG_OK,
                                   slot->unavailable || slot->reprepare
                                   ? NULL : res);
        if (slot->unavailable || slot->reprepare) {
            PQclear(res);
        }

        ngx_queue_insert_head(&pool->free_slots, &slot->queue);

    } else {
        /* its request went away */
        PQclear(res);
        ngx_queue_insert_head(&pool->free_slots, &slot->queue);
    }

    if (PQstatus(pc->pg) != CONNECTION_OK) {
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        return NGX_ERROR;
    }

    return ngx_http_threads_pg_assign(pc);
}


/*
 * The connection broke or timed out.  Its queries get the status, but a
 * statement that may safely run twice gets one more go on a fresh
 * connection when the broken one came from the idle pool (it may just
 * have been a dead idle connection); one that never left this worker
 * too.  A create that reached the server is never sent again.
 */
static void
ngx_http_threads_pg_fail(ngx_http_threads_pg_conn_t *pc,
    ngx_http_threads_pg_status_e status)
{
    ngx_uint_t                    connecting, reused;
    ngx_queue_t                   failed, *head;
    ngx_http_threads_pg_slot_t   *slot;
    ngx_http_threads_pg_query_t  *q;
    ngx_http_threads_pg_pool_t   *pool = &ngx_http_threads_pg_pool;

    connecting = (pc->state == NGX_HTTP_THREADS_PG_CONNECTING);
    reused = pc->reused;

    if (connecting) {
        ngx_http_threads_metrics_event(
                                    NGX_HTTP_THREADS_METRICS_CONNECT_FAILURE);

    } else if (status == NGX_HTTP_THREADS_PG_UNAVAILABLE) {
        ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_RECONNECT);
    }

    /* take the in-flight queries off the connection before closing it */
    ngx_queue_init(&failed);

    while (!ngx_queue_empty(&pc->inflight)) {
        head = ngx_queue_head(&pc->inflight);
        ngx_queue_remove(head);
        ngx_queue_insert_tail(&failed, head);
    }

    pc->ninflight = 0;
    pc->nsyncs = 0;
    pc->nwrites = 0;
    ngx_http_threads_pg_close(pc);

    if (connecting) {
        /*
         * The database refused or did not answer: the waiters get a 503
         * at once, unless a live connection may still serve them.
         */
        if (pool->nconns == 0) {
            ngx_http_threads_pg_fail_waiting();
        }

        return;
    }

    while (!ngx_queue_empty(&failed)) {
        head = ngx_queue_head(&failed);
        ngx_queue_remove(head);
        slot = ngx_queue_data(head, ngx_http_threads_pg_slot_t, queue);

        q = slot->query;

        if (slot->res) {
            PQclear(slot->res);
        }

        ngx_queue_insert_head(&pool->free_slots, &slot->queue);

        if (q == NULL) {
            continue;
        }

        q->slot = NULL;

        if (status == NGX_HTTP_THREADS_PG_UNAVAILABLE && !q->retried
            && (!q->sent || (reused && q->stmt->idempotent)))
        {
            ngx_log_error(NGX_LOG_INFO, q->log, 0,
                          "threads: retrying on a fresh database connection");
            q->retried = 1;
            ngx_http_threads_pg_run(q);
            continue;
        }

        ngx_http_threads_pg_finish(q, status, NULL);
    }

    ngx_http_threads_pg_pump();
}


static void
ngx_http_threads_pg_close(ngx_http_threads_pg_conn_t *pc)
{
    ngx_queue_t                 *head;
    ngx_http_threads_pg_slot_t  *slot;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (pc->flush.posted) {
        ngx_delete_posted_event(&pc->flush);
    }

    if (pc->state == NGX_HTTP_THREADS_PG_CONNECTING) {
        pool->nconnecting--;

    } else if (pc->state == NGX_HTTP_THREADS_PG_IDLE) {
        pool->nidle--;
    }

    if (pc->checking) {
        pool->nchecking--;
        pc->checking = 0;
    }

    if (pc->group) {
        /* the Sync of reads never ended */
        ngx_queue_insert_head(&pool->free_slots, &pc->group->queue);
        pc->group = NULL;
    }

    /* queries still on it are forgotten: their requests are going away */
    while (!ngx_queue_empty(&pc->inflight)) {
        head = ngx_queue_head(&pc->inflight);
        ngx_queue_remove(head);
        slot = ngx_queue_data(head, ngx_http_threads_pg_slot_t, queue);

        if (slot->query) {
            slot->query->slot = NULL;
        }

        if (slot->res) {
            PQclear(slot->res);
        }

        ngx_queue_insert_head(&pool->free_slots, &slot->queue);
    }

    ngx_queue_remove(&pc->queue);
    pool->nconns--;

    ngx_http_threads_pg_unregister(pc);

    PQfinish(pc->pg);
    ngx_free(pc);
}


/*
 * Is there more to read?  epoll is edge-triggered here: what is left in
 * the socket after a read brings no new event.
 */
static ngx_int_t
ngx_http_threads_pg_read_ready(ngx_http_threads_pg_conn_t *pc)
{
    int   n;
    SSL  *ssl;

    /* with TLS, decrypted bytes may wait inside OpenSSL, not the socket */
    if (PQsslInUse(pc->pg)) {
        ssl = PQsslStruct(pc->pg, "OpenSSL");
        if (ssl && SSL_pending(ssl) > 0) {
            return 1;
        }
    }

    if (ioctl(PQsocket(pc->pg), FIONREAD, &n) == -1) {
        return 0;
    }

    /*
     * No bytes may also be the server's FIN, which came with the last
     * ones in the same edge: epoll said so (EPOLLRDHUP), and reading on
     * lets libpq see the end now rather than at a timeout.
     */
    if (n > 0) {
        return 1;
    }

    if (pc->c && pc->c->read->pending_eof && !pc->eof_seen) {
        pc->eof_seen = 1;
        return 1;
    }

    return 0;
}


static void
ngx_http_threads_pg_poll(ngx_http_threads_pg_conn_t *pc)
{
    int                           fd, n;
    struct stat                   st;
    struct pollfd                 pfd;
    ngx_uint_t                    i;
    PostgresPollingStatusType     rc;
    ngx_http_threads_pg_pool_t   *pool = &ngx_http_threads_pg_pool;

    /* set by the loop, which runs at least once (for the compiler) */
    rc = PGRES_POLLING_FAILED;

    for (i = 0; i < 64; i++) {

        rc = PQconnectPoll(pc->pg);

        if (rc == PGRES_POLLING_FAILED) {
            ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                          "threads: cannot connect to the database: %s",
                          PQerrorMessage(pc->pg));

            if (ngx_http_threads_pg_next_host(pc) == NGX_OK) {
                return;
            }

            ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
            return;
        }

        /*
         * libpq may have moved to a new socket (next host, SSL or GSS
         * fallback), possibly with the same number: compare inodes.
         */
        fd = PQsocket(pc->pg);

        if (fd != pc->c->fd
            || fstat(fd, &st) == -1
            || st.st_ino != pc->ino)
        {
            ngx_http_threads_pg_unregister(pc);

            if (ngx_http_threads_pg_register(pc) != NGX_OK) {
                ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
                return;
            }
        }

        if (rc == PGRES_POLLING_OK) {
            break;
        }

        /* an edge may have passed while the socket changed: look now */
        pfd.fd = fd;
        pfd.events = (rc == PGRES_POLLING_READING) ? POLLIN : POLLOUT;
        pfd.revents = 0;

        n = poll(&pfd, 1, 0);
        if (n <= 0) {
            return;
        }
    }

    if (rc != PGRES_POLLING_OK) {
        return;
    }

    if (PQsetnonblocking(pc->pg, 1) != 0
        || PQenterPipelineMode(pc->pg) != 1)
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: cannot set up the database connection: %s",
                      PQerrorMessage(pc->pg));
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "threads: database connection ready (host %ui)", pc->host);

    /* the next connection starts where this one succeeded */
    pool->good_host = pc->host;

    pool->nconnecting--;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    /* its first round trip checks the schema; queries may follow it */
    pc->state = NGX_HTTP_THREADS_PG_BUSY;

    if (ngx_http_threads_pg_send_check(pc) != NGX_OK) {
        ngx_http_threads_pg_fail(pc, NGX_HTTP_THREADS_PG_UNAVAILABLE);
        return;
    }

    (void) ngx_http_threads_pg_assign(pc);
}


/* Sends the schema version check on a new connection. */
static ngx_int_t
ngx_http_threads_pg_send_check(ngx_http_threads_pg_conn_t *pc)
{
    int                          rc;
    ngx_http_threads_pg_slot_t  *slot;
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    slot = ngx_http_threads_pg_slot_get();
    if (slot == NULL) {
        return NGX_ERROR;
    }

    slot->check = 1;
    slot->ends = 1;
    slot->synced = 1;

    ngx_queue_insert_tail(&pc->inflight, &slot->queue);
    pc->ninflight++;
    pc->checking = 1;
    pool->nchecking++;

    rc = PQsendQueryParams(pc->pg, NGX_HTTP_THREADS_PG_SCHEMA_SQL, 0, NULL,
                           NULL, NULL, NULL, 0);
    if (rc) {
        rc = PQpipelineSync(pc->pg);
    }

    if (rc) {
        rc = PQflush(pc->pg);
        rc = (rc == -1) ? 0 : rc + 1;
    }

    if (!rc) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "threads: cannot send to the database: %s",
                      PQerrorMessage(pc->pg));
        return NGX_ERROR;
    }

    /* what PQflush left goes out on write events */
    pc->flushing = (rc == 2);

    pc->timer.cancelable = 0;
    ngx_add_timer(&pc->timer, pool->conf->query_timeout);

    return NGX_OK;
}


/* NGX_OK if the idle connection is still good; else it is closed. */
static ngx_int_t
ngx_http_threads_pg_idle_check(ngx_http_threads_pg_conn_t *pc)
{
    PGresult  *res;

    if (pc->c->close) {
        /* worker is shutting down or reloading */
        ngx_http_threads_pg_close(pc);
        return NGX_DECLINED;
    }

    do {
        if (!PQconsumeInput(pc->pg)) {
            ngx_log_error(NGX_LOG_INFO, ngx_http_threads_pg_pool.log, 0,
                          "threads: idle database connection closed: %s",
                          PQerrorMessage(pc->pg));
            ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_RECONNECT);
            ngx_http_threads_pg_close(pc);
            return NGX_DECLINED;
        }

        while (!PQisBusy(pc->pg)) {
            res = PQgetResult(pc->pg);
            if (res == NULL) {
                break;
            }
            PQclear(res);
        }

    } while (ngx_http_threads_pg_read_ready(pc));

    if (PQstatus(pc->pg) != CONNECTION_OK) {
        ngx_http_threads_metrics_event(NGX_HTTP_THREADS_METRICS_RECONNECT);
        ngx_http_threads_pg_close(pc);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* Opens connections for waiters that no connection under way will serve. */
static void
ngx_http_threads_pg_pump(void)
{
    ngx_http_threads_pg_pool_t  *pool = &ngx_http_threads_pg_pool;

    while (pool->conf
           && pool->nwaiting > pool->nconnecting + pool->nchecking
           && pool->nconns < pool->conf->pool_size)
    {
        if (ngx_http_threads_pg_connect() != NGX_OK) {
            if (pool->nconns == 0) {
                ngx_http_threads_pg_fail_waiting();
            }

            return;
        }
    }
}


static char *
ngx_http_threads_pg_strdup(ngx_pool_t *pool, const char *s)
{
    size_t   len;
    u_char  *p;

    len = ngx_strlen(s) + 1;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NULL;
    }

    return (char *) ngx_cpymem(p, s, len) - len;
}


/* Appends an entry to a comma-separated list being built in out. */
static ngx_int_t
ngx_http_threads_pg_list_add(ngx_array_t *out, const char *s, size_t len)
{
    u_char  *p;

    p = ngx_array_push_n(out, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *p++ = ',';

    if (len) {
        /* an entry may be empty, and its text then NULL */
        ngx_memcpy(p, s, len);
    }

    return NGX_OK;
}


/* The list's text without its leading comma, NUL-terminated. */
static const char *
ngx_http_threads_pg_list_end(ngx_array_t *out)
{
    u_char  *p;

    p = ngx_array_push(out);
    if (p == NULL) {
        return NULL;
    }

    *p = '\0';

    return (const char *) out->elts + (out->nelts > 1 ? 1 : 0);
}


/* The i-th entry of a comma-separated list, or NULL. */
static ngx_str_t
ngx_http_threads_pg_list_get(const char *list, ngx_uint_t i)
{
    ngx_str_t    e;
    const char  *p, *end;

    e.data = NULL;
    e.len = 0;

    for (p = list; p; p = end ? end + 1 : NULL, i--) {
        end = strchr(p, ',');

        if (i == 0) {
            e.data = (u_char *) p;
            e.len = end ? (size_t) (end - p) : strlen(p);
            break;
        }
    }

    return e;
}


/*
 * Host names become addresses here, at configuration time, so that
 * PQconnectStartParams never resolves a name inside a worker.  Every
 * address of a name becomes an entry of its own, in getaddrinfo's order
 * (IPv6 and IPv4 alike), with the name kept in "host" for TLS
 * verification and messages, and its port repeated when ports are given
 * per host: libpq then tries each address in turn, as it would have done
 * itself.
 */
static char *
ngx_http_threads_pg_resolve(ngx_conf_t *cf, const char **hosts,
    const char **hostaddr, const char **ports)
{
    int               rc;
    char              addr[INET6_ADDRSTRLEN];
    u_char            buf[sizeof(struct in6_addr)];
    ngx_str_t         name, port;
    ngx_uint_t        i, resolved, per_host;
    ngx_array_t       h, a, pt;
    struct addrinfo   hints, *res, *ai;

    if (ngx_array_init(&h, cf->pool, 256, 1) != NGX_OK
        || ngx_array_init(&a, cf->pool, 256, 1) != NGX_OK
        || ngx_array_init(&pt, cf->pool, 64, 1) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    per_host = (*ports && strchr(*ports, ','));
    resolved = 0;

    for (i = 0; ; i++) {
        name = ngx_http_threads_pg_list_get(*hosts, i);
        if (name.data == NULL) {
            break;
        }

        port = per_host ? ngx_http_threads_pg_list_get(*ports, i)
                        : (ngx_str_t) ngx_null_string;

        if (name.len == 0 || name.data[0] == '/' || name.data[0] == '@'
            || name.len >= sizeof(addr))
        {
            /* a socket directory, or nothing: libpq's own default */
            if (ngx_http_threads_pg_list_add(&h, (char *) name.data,
                                             name.len) != NGX_OK
                || ngx_http_threads_pg_list_add(&a, "", 0) != NGX_OK
                || ngx_http_threads_pg_list_add(&pt, (char *) port.data,
                                                port.len) != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_memcpy(addr, name.data, name.len);
        addr[name.len] = '\0';

        if (inet_pton(AF_INET, addr, buf) == 1
            || inet_pton(AF_INET6, addr, buf) == 1)
        {
            if (ngx_http_threads_pg_list_add(&h, addr, name.len) != NGX_OK
                || ngx_http_threads_pg_list_add(&a, addr, name.len) != NGX_OK
                || ngx_http_threads_pg_list_add(&pt, (char *) port.data,
                                                port.len) != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_memzero(&hints, sizeof(struct addrinfo));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;

        rc = getaddrinfo(addr, NULL, &hints, &res);
        if (rc != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "threads: host \"%V\" not found: %s",
                               &name, gai_strerror(rc));
            return NGX_CONF_ERROR;
        }

        for (ai = res; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET6) {
                inet_ntop(AF_INET6,
                          &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr,
                          addr, sizeof(addr));

            } else if (ai->ai_family == AF_INET) {
                inet_ntop(AF_INET,
                          &((struct sockaddr_in *) ai->ai_addr)->sin_addr,
                          addr, sizeof(addr));

            } else {
                continue;
            }

            ngx_log_debug2(NGX_LOG_DEBUG_CORE, cf->log, 0,
                           "threads: host \"%V\" is %s", &name, addr);

            if (ngx_http_threads_pg_list_add(&h, (char *) name.data,
                                             name.len) != NGX_OK
                || ngx_http_threads_pg_list_add(&a, addr, ngx_strlen(addr))
                   != NGX_OK
                || ngx_http_threads_pg_list_add(&pt, (char *) port.data,
                                                port.len) != NGX_OK)
            {
                freeaddrinfo(res);
                return NGX_CONF_ERROR;
            }
        }

        freeaddrinfo(res);
        resolved++;
    }

    if (!resolved) {
        /* addresses and sockets only: libpq needs no hostaddr */
        *hostaddr = NULL;
        return NGX_CONF_OK;
    }

    *hosts = ngx_http_threads_pg_list_end(&h);
    *hostaddr = ngx_http_threads_pg_list_end(&a);

    if (per_host) {
        *ports = ngx_http_threads_pg_list_end(&pt);
    }

    if (*hosts == NULL || *hostaddr == NULL || (per_host && *ports == NULL)) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_threads_pg_parse_conninfo(ngx_conf_t *cf,
    ngx_http_threads_pg_conf_t *conf, ngx_str_t *conninfo)
{
    char              *err, *ci;
    ngx_uint_t         n, i, has_app, has_enc, has_gss, resolved;
    const char        *host, *hostaddr, *port, *value;
    PQconninfoOption  *opts, *o;

    ci = ngx_pnalloc(cf->pool, conninfo->len + 1);
    if (ci == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_cpystrn((u_char *) ci, conninfo->data, conninfo->len + 1);

    err = NULL;
    opts = PQconninfoParse(ci, &err);

    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "threads: invalid conninfo \"%V\": %s", conninfo,
                           err ? err : "out of memory");
        PQfreemem(err);
        return NGX_CONF_ERROR;
    }

    n = 0;
    host = NULL;
    hostaddr = NULL;
    port = NULL;
    has_app = 0;
    has_enc = 0;
    has_gss = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        n++;

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = o->val;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            port = o->val;

        } else if (ngx_strcmp(o->keyword, "application_name") == 0
                   || ngx_strcmp(o->keyword, "fallback_application_name")
                      == 0)
        {
            has_app = 1;

        } else if (ngx_strcmp(o->keyword, "client_encoding") == 0) {
            has_enc = 1;

        } else if (ngx_strcmp(o->keyword, "gssencmode") == 0) {
            has_gss = 1;
        }
    }

    conf->keywords = ngx_pcalloc(cf->pool, (n + 5) * sizeof(char *));
    conf->values = ngx_pcalloc(cf->pool, (n + 5) * sizeof(char *));
    if (conf->keywords == NULL || conf->values == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    resolved = 0;

    if (host && hostaddr == NULL) {
        if (ngx_http_threads_pg_resolve(cf, &host, &hostaddr, &port)
            != NGX_CONF_OK)
        {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }

        resolved = (hostaddr != NULL);
    }

    i = 0;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        value = o->val;

        if (ngx_strcmp(o->keyword, "host") == 0) {
            value = host;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            value = port;
        }

        conf->keywords[i] = ngx_http_threads_pg_strdup(cf->pool, o->keyword);
        conf->values[i] = ngx_http_threads_pg_strdup(cf->pool, value);
        if (conf->keywords[i] == NULL || conf->values[i] == NULL) {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }
        i++;
    }

    if (resolved) {
        conf->keywords[i] = "hostaddr";
        conf->values[i++] = hostaddr;
    }

    PQconninfoFree(opts);

    if (!has_app) {
        conf->keywords[i] = "fallback_application_name";
        conf->values[i++] = "ngx_http_threads_module";
    }

    /* responses are JSON text, which is UTF-8 */
    if (!has_enc) {
        conf->keywords[i] = "client_encoding";
        conf->values[i++] = "UTF8";
    }

    /*
     * "prefer" looks for Kerberos credentials at every connect, which may
     * touch files and the network from the worker: ask for it explicitly.
     */
    if (!has_gss) {
        conf->keywords[i] = "gssencmode";
        conf->values[i++] = "disable";
    }

    conf->keywords[i] = NULL;
    conf->values[i] = NULL;
    conf->nvalues = i;
    conf->conninfo = *conninfo;

    return ngx_http_threads_pg_split_hosts(cf, conf);
}


/*
 * Each host of a multi-host conninfo becomes an entry of its own, so that
 * a silent host costs its own timeout (threads_pg_host_connect_timeout),
 * then the next one is tried: libpq ignores connect_timeout when driven
 * by PQconnectPoll.
 */
static char *
ngx_http_threads_pg_split_hosts(ngx_conf_t *cf,
    ngx_http_threads_pg_conf_t *conf)
{
    u_char                      *v;
    ngx_str_t                    e;
    ngx_uint_t                   i, k, n;
    const char                  *list[3];
    ngx_http_threads_pg_host_t  *h;
    static const char           *names[3] = { "host", "hostaddr", "port" };

    for (k = 0; k < 3; k++) {
        conf->host_kw[k] = -1;
        list[k] = NULL;

        for (i = 0; conf->keywords[i]; i++) {
            if (ngx_strcmp(conf->keywords[i], names[k]) == 0) {
                conf->host_kw[k] = i;
                list[k] = conf->values[i];
            }
        }
    }

    if (list[0] == NULL || strchr(list[0], ',') == NULL) {
        return NGX_CONF_OK;
    }

    conf->hosts = ngx_array_create(cf->pool, 4,
                                   sizeof(ngx_http_threads_pg_host_t));
    if (conf->hosts == NULL) {
        return NGX_CONF_ERROR;
    }

    for (n = 0; ; n++) {
        e = ngx_http_threads_pg_list_get(list[0], n);
        if (e.data == NULL) {
            break;
        }

        h = ngx_array_push(conf->hosts);
        if (h == NULL) {
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < 3; k++) {
            e = ngx_http_threads_pg_list_get(list[k] ? list[k] : "",
                                             (k == 2 && list[2]
                                              && strchr(list[2], ',') == NULL)
                                             ? 0 : n);
            v = ngx_pnalloc(cf->pool, e.len + 1);
            if (v == NULL) {
                return NGX_CONF_ERROR;
            }

            if (e.len) {
                ngx_memcpy(v, e.data, e.len);
            }
            v[e.len] = '\0';

            if (k == 0) {
                h->host = (char *) v;
            } else if (k == 1) {
                h->hostaddr = list[1] ? (char *) v : NULL;
            } else {
                h->port = list[2] ? (char *) v : NULL;
            }
        }
    }

    return NGX_CONF_OK;
}


/*
 * One statement on a connection of its own, for a thread of nginx's pool
 * and never for the event loop: a create so large that libpq's copy of
 * its parameters into a pool connection's buffer would hold the event
 * loop for tens of milliseconds.  It blocks its thread only: it connects
 * (to the addresses resolved at configuration), checks the schema
 * version as every pool connection does, runs the statement unnamed
 * with the pool's timeouts, and closes.  It reads the configuration and
 * nothing else of the pool.
 */
ngx_http_threads_pg_status_e
ngx_http_threads_pg_direct(const ngx_http_threads_pg_stmt_t *stmt,
    const char *const *values, const int *lengths, ngx_log_t *log,
    PGresult **out)
{
    char                          tmo[NGX_INT_T_LEN + 1], *opts;
    const char                   *sqlstate, *old, **kw, **val;
    size_t                        len;
    PGconn                       *pg;
    PGresult                     *res;
    ngx_int_t                     version, need;
    ngx_uint_t                    i, n;
    ngx_http_threads_pg_status_e  status;
    ngx_http_threads_pg_conf_t   *conf = ngx_http_threads_pg_pool.conf;

    *out = NULL;

    kw = malloc((conf->nvalues + 3) * sizeof(char *));
    val = malloc((conf->nvalues + 3) * sizeof(char *));
    opts = NULL;
    old = NULL;

    if (kw == NULL || val == NULL) {
        free(kw);
        free(val);
        return NGX_HTTP_THREADS_PG_ERROR;
    }

    n = 0;

    for (i = 0; conf->keywords[i]; i++) {
        if (ngx_strcmp(conf->keywords[i], "options") == 0) {
            old = conf->values[i];
            continue;
        }

        if (ngx_strcmp(conf->keywords[i], "connect_timeout") == 0) {
            continue;
        }

        kw[n] = conf->keywords[i];
        val[n] = conf->values[i];
        n++;
    }

    /* libpq counts whole seconds, and takes 1 as 2 */
    ngx_sprintf((u_char *) tmo, "%ui%Z",
                ngx_max((conf->connect_timeout + 999) / 1000, 2));
    kw[n] = "connect_timeout";
    val[n] = tmo;
    n++;

    len = (old ? ngx_strlen(old) + 1 : 0) + sizeof("-c statement_timeout=")
          + NGX_INT_T_LEN + 2;
    opts = malloc(len);

    if (opts == NULL) {
        status = NGX_HTTP_THREADS_PG_ERROR;
        pg = NULL;
        goto done;
    }

    ngx_sprintf((u_char *) opts, "%s%s-c statement_timeout=%M%Z",
                old ? old : "", old ? " " : "", conf->query_timeout);
    kw[n] = "options";
    val[n] = opts;
    n++;

    kw[n] = NULL;
    val[n] = NULL;

    pg = PQconnectdbParams(kw, val, 0);

    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: cannot connect to the database: %s",
                      pg ? PQerrorMessage(pg) : "out of memory");
        status = NGX_HTTP_THREADS_PG_UNAVAILABLE;
        goto done;
    }

    res = PQexecParams(pg, NGX_HTTP_THREADS_PG_SCHEMA_SQL, 0, NULL, NULL,
                       NULL, NULL, 0);

    version = -1;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        version = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                           ngx_strlen(PQgetvalue(res, 0, 0)));
    }

    PQclear(res);

    need = conf->citus ? NGX_HTTP_THREADS_PG_SCHEMA_CITUS
                       : NGX_HTTP_THREADS_PG_SCHEMA;

    if (version < need) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: the database has schema version %i, this "
                      "module needs %i: apply scripts/schema.sql",
                      version < 0 ? 0 : version, need);
        status = NGX_HTTP_THREADS_PG_UNAVAILABLE;
        goto done;
    }

    res = PQexecParams(pg, stmt->sql, stmt->nparams, NULL, values, lengths,
                       NULL, 0);

    switch (PQresultStatus(res)) {

    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        *out = res;
        status = NGX_HTTP_THREADS_PG_OK;
        break;

    default:
        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "threads: statement \"%s\" failed: %s", stmt->name,
                      PQresultErrorMessage(res));

        if (sqlstate && ngx_strcmp(sqlstate, "57014") == 0) {
            /* statement_timeout: the pool's query timeout */
            status = NGX_HTTP_THREADS_PG_TIMEOUT;

        } else if (res == NULL
                   || ngx_http_threads_pg_classify(sqlstate)
                      != NGX_HTTP_THREADS_PG_STATEMENT)
        {
            status = NGX_HTTP_THREADS_PG_UNAVAILABLE;

        } else {
            status = NGX_HTTP_THREADS_PG_ERROR;
        }

        PQclear(res);
        break;
    }

done:

    if (pg) {
        PQfinish(pg);
    }

    free(opts);
    free(kw);
    free(val);

    return status;
}
