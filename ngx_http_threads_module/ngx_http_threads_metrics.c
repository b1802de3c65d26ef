/*
 * ngx_http_threads_metrics_module: Prometheus metrics (text format 0.0.4)
 * of the Threads API, aggregated over all worker processes.
 *
 * Everything lives in one shared memory zone ("threads_metrics", allocated
 * once from its slab when the zone is created) laid out in fixed slots, so
 * that counting is one atomic add on the request path, never a lock and
 * never an allocation:
 *
 *   - requests by operation and status: a slot for every status from 100
 *     to 599 (and one for anything else) of every operation, so that the
 *     status label is always the exact code;
 *   - histograms: per operation, a non-cumulative count per bucket and a
 *     sum in microseconds; the scrape makes them cumulative;
 *   - database errors by SQLSTATE class: a slot per two-character class
 *     ([0-9A-Z]{2}) and one for errors without a SQLSTATE;
 *   - gauges: a slot per worker process, claimed by its pid when it
 *     starts (compare-and-set), written by that worker only, zeroed and
 *     released when it exits; the scrape sums the live slots.  Slots are
 *     claimed by pid, not by ngx_worker: while a reload's old workers
 *     finish their requests the new ones, with the same ngx_worker
 *     numbers, run beside them, and each process reports what it holds.
 *     A slot whose process died without exiting (a crash) is released by
 *     the next claim or scrape that finds its pid gone.
 *
 * The number of worker slots is what the configured zone size leaves
 * after the counters; when all are taken a worker logs that the zone is
 * full and runs on without gauges.  A reload keeps the zone (and the
 * counters) when its size is unchanged.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <time.h>

#include "ngx_http_threads_metrics.h"


#define NGX_HTTP_THREADS_METRICS_NONE      NGX_HTTP_THREADS_METRICS_MAX_OPS
#define NGX_HTTP_THREADS_METRICS_OPS       (NGX_HTTP_THREADS_METRICS_MAX_OPS + 1)
#define NGX_HTTP_THREADS_METRICS_OP_LEN    48
#define NGX_HTTP_THREADS_METRICS_STATUSES  501    /* 100..599, other */
#define NGX_HTTP_THREADS_METRICS_BOUNDS    14
#define NGX_HTTP_THREADS_METRICS_CLASSES   (36 * 36 + 1)
#define NGX_HTTP_THREADS_METRICS_MAX_PROCS 1024
#define NGX_HTTP_THREADS_METRICS_RELEASING ((ngx_atomic_uint_t) -1)
#define NGX_HTTP_THREADS_METRICS_SIZE      (1024 * 1024)


enum {
    NGX_HTTP_THREADS_METRICS_IDLE = 0,
    NGX_HTTP_THREADS_METRICS_BUSY,
    NGX_HTTP_THREADS_METRICS_CONNECTING,
    NGX_HTTP_THREADS_METRICS_WAITING,
    NGX_HTTP_THREADS_METRICS_NGAUGES
};


typedef struct {
    ngx_atomic_t   bucket[NGX_HTTP_THREADS_METRICS_BOUNDS + 1];
    ngx_atomic_t   sum;                        /* microseconds */
} ngx_http_threads_metrics_hist_t;


/* One cache line per process: workers never write each other's lines. */
typedef struct {
    ngx_atomic_t   pid;                        /* 0: free */
    ngx_atomic_t   gauge[NGX_HTTP_THREADS_METRICS_NGAUGES];
    ngx_atomic_t   pad[3];
} ngx_http_threads_metrics_proc_t;


typedef struct {
    ngx_atomic_t   requests[NGX_HTTP_THREADS_METRICS_OPS]
                           [NGX_HTTP_THREADS_METRICS_STATUSES];
    ngx_http_threads_metrics_hist_t  request_duration
                                         [NGX_HTTP_THREADS_METRICS_OPS];
    ngx_http_threads_metrics_hist_t  pg_duration[NGX_HTTP_THREADS_METRICS_OPS];
    ngx_atomic_t   events[NGX_HTTP_THREADS_METRICS_NEVENTS];
    ngx_atomic_t   db_errors[NGX_HTTP_THREADS_METRICS_CLASSES];

    ngx_uint_t                        nprocs;
    ngx_http_threads_metrics_proc_t  *procs;   /* same mapping everywhere */
} ngx_http_threads_metrics_sh_t;


typedef struct {
    ngx_shm_zone_t  *zone;
    ngx_uint_t       serve;                    /* a location serves them */
    ngx_uint_t       nops;
    ngx_str_t        ops[NGX_HTTP_THREADS_METRICS_MAX_OPS];
} ngx_http_threads_metrics_main_conf_t;


typedef struct {
    ngx_flag_t       api;
} ngx_http_threads_metrics_loc_conf_t;


typedef struct {
    uint64_t         start;                    /* microseconds */
    ngx_uint_t       op;
} ngx_http_threads_metrics_ctx_t;


typedef struct {
    ngx_http_request_t  *r;
    ngx_chain_t         *first;
    ngx_chain_t        **last;
    ngx_buf_t           *b;
    off_t                size;
    ngx_uint_t           failed;
} ngx_http_threads_metrics_out_t;


static void *ngx_http_threads_metrics_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_threads_metrics_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_threads_metrics_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_threads_metrics_zone_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_threads_metrics_serve_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_threads_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_threads_metrics_main_conf_t *mcf, size_t size);
static ngx_int_t ngx_http_threads_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_threads_metrics_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_threads_metrics_init_process(ngx_cycle_t *cycle);
static void ngx_http_threads_metrics_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_threads_metrics_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_threads_metrics_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_threads_metrics_commands[] = {

    { ngx_string("threads_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_threads_metrics_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("threads_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_threads_metrics_serve_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_threads_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_threads_metrics_postconfiguration, /* postconfiguration */

    ngx_http_threads_metrics_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_threads_metrics_create_loc_conf, /* create location configuration */
    ngx_http_threads_metrics_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_threads_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_threads_metrics_module_ctx,  /* module context */
    ngx_http_threads_metrics_commands,     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_threads_metrics_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_threads_metrics_exit_process, /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* Upper bounds of the duration buckets, in microseconds, and as printed. */
static const uint64_t  ngx_http_threads_metrics_bounds[] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};

static const char  *ngx_http_threads_metrics_les[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"
};

static const char  *ngx_http_threads_metrics_class_digits =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";


/* Set in each worker from its own cycle: NULL in the master, or if off. */
static ngx_http_threads_metrics_sh_t    *ngx_http_threads_metrics_sh;
static ngx_http_threads_metrics_proc_t  *ngx_http_threads_metrics_proc;


static void *
ngx_http_threads_metrics_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_metrics_main_conf_t));
}


static void *
ngx_http_threads_metrics_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_threads_metrics_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_threads_metrics_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->api = NGX_CONF_UNSET;

    return lcf;
}


static char *
ngx_http_threads_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_threads_metrics_loc_conf_t  *conf = child;

    /* not inherited, as "threads_api" is not */
    ngx_conf_init_value(conf->api, 0);

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_threads_metrics_add_op(ngx_conf_t *cf, const char *name)
{
    size_t                                 len;
    ngx_uint_t                             i;
    ngx_http_threads_metrics_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf,
                                             ngx_http_threads_metrics_module);

    len = ngx_strlen(name);

    for (i = 0; i < mcf->nops; i++) {
        if (mcf->ops[i].len == len
            && ngx_strncmp(mcf->ops[i].data, name, len) == 0)
        {
            return i;
        }
    }

    /* a Prometheus label value that needs no escaping */
    for (i = 0; i < len; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z')
              || (name[i] >= '0' && name[i] <= '9') || name[i] == '_'))
        {
            break;
        }
    }

    if (len == 0 || len > NGX_HTTP_THREADS_METRICS_OP_LEN || i != len
        || ngx_strcmp(name, "none") == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "threads metrics: invalid operation name \"%s\"",
                           name);
        return NGX_ERROR;
    }

    if (mcf->nops == NGX_HTTP_THREADS_METRICS_MAX_OPS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "threads metrics: more than %d operations",
                           NGX_HTTP_THREADS_METRICS_MAX_OPS);
        return NGX_ERROR;
    }

    mcf->ops[mcf->nops].data = (u_char *) name;
    mcf->ops[mcf->nops].len = len;

    return mcf->nops++;
}


void
ngx_http_threads_metrics_api_location(ngx_conf_t *cf)
{
    ngx_http_threads_metrics_loc_conf_t  *lcf;

    lcf = ngx_http_conf_get_module_loc_conf(cf,
                                            ngx_http_threads_metrics_module);
    lcf->api = 1;
}


static char *
ngx_http_threads_metrics_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_threads_metrics_main_conf_t  *mcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (mcf->zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_threads_metrics_add_zone(cf, mcf, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_threads_metrics_serve_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t              *clcf;
    ngx_http_threads_metrics_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf,
                                             ngx_http_threads_metrics_module);
    mcf->serve = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_threads_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_threads_metrics_add_zone(ngx_conf_t *cf,
    ngx_http_threads_metrics_main_conf_t *mcf, size_t size)
{
    ngx_str_t  name = ngx_string("threads_metrics");

    mcf->zone = ngx_shared_memory_add(cf, &name, size,
                                      &ngx_http_threads_metrics_module);
    if (mcf->zone == NULL) {
        return NGX_ERROR;
    }

    if (mcf->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already in use",
                           &name);
        return NGX_ERROR;
    }

    mcf->zone->init = ngx_http_threads_metrics_init_zone;
    mcf->zone->data = mcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_threads_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    size_t                          head, avail, need;
    ngx_uint_t                      nprocs;
    ngx_slab_pool_t                *shpool;
    ngx_http_threads_metrics_sh_t  *sh;

    if (data) {
        /* a reload with the same zone: the counters go on */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    head = ngx_align(sizeof(ngx_http_threads_metrics_sh_t), 64);
    avail = shpool->pfree * ngx_pagesize;

    if (avail < head + sizeof(ngx_http_threads_metrics_proc_t)) {
        need = shm_zone->shm.size
               + ngx_align(head + sizeof(ngx_http_threads_metrics_proc_t)
                           - avail + 2 * ngx_pagesize, 1024);
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "threads_metrics_zone of %uz bytes is too small: "
                      "it needs at least %uzk", shm_zone->shm.size,
                      need / 1024);
        return NGX_ERROR;
    }

    nprocs = (avail - head) / sizeof(ngx_http_threads_metrics_proc_t);
    nprocs = ngx_min(nprocs, NGX_HTTP_THREADS_METRICS_MAX_PROCS);

    sh = ngx_slab_calloc(shpool,
                         head + nprocs * sizeof(ngx_http_threads_metrics_proc_t));
    if (sh == NULL) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "threads_metrics_zone: cannot allocate the counters");
        return NGX_ERROR;
    }

    sh->nprocs = nprocs;
    sh->procs = (ngx_http_threads_metrics_proc_t *) ((u_char *) sh + head);

    shpool->data = sh;
    shm_zone->data = sh;

    ngx_log_error(NGX_LOG_INFO, shm_zone->shm.log, 0,
                  "threads_metrics_zone: room for %ui worker processes",
                  nprocs);

    return NGX_OK;
}


static ngx_int_t
ngx_http_threads_metrics_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt                   *h;
    ngx_http_core_main_conf_t             *cmcf;
    ngx_http_threads_metrics_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf,
                                             ngx_http_threads_metrics_module);

    if (mcf->serve && mcf->zone == NULL
        && ngx_http_threads_metrics_add_zone(cf, mcf,
                                             NGX_HTTP_THREADS_METRICS_SIZE)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (mcf->zone == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_threads_metrics_log_handler;

    return NGX_OK;
}


/* Frees a slot whose process is gone; only one caller wins the race. */
static void
ngx_http_threads_metrics_release(ngx_http_threads_metrics_proc_t *p,
    ngx_atomic_uint_t pid)
{
    ngx_uint_t  i;

    if (!ngx_atomic_cmp_set(&p->pid, pid, NGX_HTTP_THREADS_METRICS_RELEASING)) {
        return;
    }

    for (i = 0; i < NGX_HTTP_THREADS_METRICS_NGAUGES; i++) {
        p->gauge[i] = 0;
    }

    ngx_memory_barrier();
    p->pid = 0;
}


/* Is the slot's process alive?  Releases it when it is not. */
static ngx_uint_t
ngx_http_threads_metrics_live(ngx_http_threads_metrics_proc_t *p)
{
    ngx_atomic_uint_t  pid;

    pid = p->pid;

    if (pid == 0 || pid == NGX_HTTP_THREADS_METRICS_RELEASING) {
        return 0;
    }

    if (kill((pid_t) pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        ngx_http_threads_metrics_release(p, pid);
        return 0;
    }

    return 1;
}


static ngx_int_t
ngx_http_threads_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                             i;
    ngx_http_threads_metrics_sh_t         *sh;
    ngx_http_threads_metrics_proc_t       *p;
    ngx_http_threads_metrics_main_conf_t  *mcf;

    ngx_http_threads_metrics_sh = NULL;
    ngx_http_threads_metrics_proc = NULL;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_threads_metrics_module);

    if (mcf == NULL || mcf->zone == NULL) {
        return NGX_OK;
    }

    sh = mcf->zone->data;
    ngx_http_threads_metrics_sh = sh;

    /* a slot left by a process that died, or by our pid's last owner */
    for (i = 0; i < sh->nprocs; i++) {
        p = &sh->procs[i];

        if (p->pid == (ngx_atomic_uint_t) ngx_pid) {
            ngx_http_threads_metrics_release(p, p->pid);

        } else {
            (void) ngx_http_threads_metrics_live(p);
        }
    }

    for (i = 0; i < sh->nprocs; i++) {
        p = &sh->procs[i];

        if (p->pid == 0
            && ngx_atomic_cmp_set(&p->pid, 0, (ngx_atomic_uint_t) ngx_pid))
        {
            ngx_http_threads_metrics_proc = p;
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                  "threads_metrics_zone is full: the database pool gauges "
                  "of this worker are not counted (%ui worker slots); "
                  "give the zone more room", sh->nprocs);

    return NGX_OK;
}


static void
ngx_http_threads_metrics_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_threads_metrics_proc_t  *p;

    p = ngx_http_threads_metrics_proc;

    ngx_http_threads_metrics_proc = NULL;
    ngx_http_threads_metrics_sh = NULL;

    if (p) {
        ngx_http_threads_metrics_release(p, (ngx_atomic_uint_t) ngx_pid);
    }
}


uint64_t
ngx_http_threads_metrics_now(void)
{
    struct timespec  ts;

    if (ngx_http_threads_metrics_sh == NULL) {
        return 0;
    }

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static void
ngx_http_threads_metrics_observe(ngx_http_threads_metrics_hist_t *h,
    uint64_t usec)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_THREADS_METRICS_BOUNDS; i++) {
        if (usec <= ngx_http_threads_metrics_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, (ngx_atomic_int_t) usec);
}


static ngx_uint_t
ngx_http_threads_metrics_op_slot(ngx_uint_t op)
{
    return op < NGX_HTTP_THREADS_METRICS_MAX_OPS
           ? op : NGX_HTTP_THREADS_METRICS_NONE;
}


/*
 * The request's clock lives in a pool cleanup too (a no-op one): an
 * internal redirect clears module contexts, not the request's pool.
 */
static void
ngx_http_threads_metrics_marker(void *data)
{
}


static ngx_http_threads_metrics_ctx_t *
ngx_http_threads_metrics_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_threads_metrics_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_threads_metrics_module);
    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_threads_metrics_marker) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_threads_metrics_module);
            return ctx;
        }
    }

    return NULL;
}


void
ngx_http_threads_metrics_request(ngx_http_request_t *r, ngx_uint_t op)
{
    ngx_time_t                      *tp;
    ngx_msec_int_t                   before;
    ngx_pool_cleanup_t              *cln;
    ngx_http_threads_metrics_ctx_t  *ctx;

    if (ngx_http_threads_metrics_sh == NULL) {
        return;
    }

    ctx = ngx_http_threads_metrics_find_ctx(r->main);

    if (ctx == NULL) {
        cln = ngx_pool_cleanup_add(r->main->pool, 0);
        if (cln == NULL) {
            return;
        }

        ctx = ngx_pcalloc(r->main->pool,
                          sizeof(ngx_http_threads_metrics_ctx_t));
        if (ctx == NULL) {
            return;
        }

        /*
         * From the request's arrival: nginx's cached clock (milliseconds)
         * up to now, which is 0 when the request came in during this
         * event loop iteration, then the microsecond clock.
         */
        tp = ngx_timeofday();
        before = (ngx_msec_int_t) ((tp->sec - r->main->start_sec) * 1000
                                   + (tp->msec - r->main->start_msec));

        ctx->start = ngx_http_threads_metrics_now()
                     - (uint64_t) ngx_max(before, 0) * 1000;
        ctx->op = NGX_HTTP_THREADS_METRICS_NONE;

        cln->handler = ngx_http_threads_metrics_marker;
        cln->data = ctx;
        ngx_http_set_ctx(r->main, ctx, ngx_http_threads_metrics_module);
    }

    if (op != NGX_HTTP_THREADS_METRICS_NO_OP) {
        ctx->op = ngx_http_threads_metrics_op_slot(op);
    }
}


static ngx_int_t
ngx_http_threads_metrics_log_handler(ngx_http_request_t *r)
{
    uint64_t                              usec, now;
    ngx_uint_t                            op, status;
    ngx_time_t                           *tp;
    ngx_msec_int_t                        ms;
    ngx_http_threads_metrics_sh_t        *sh;
    ngx_http_threads_metrics_ctx_t       *ctx;
    ngx_http_threads_metrics_loc_conf_t  *lcf;

    sh = ngx_http_threads_metrics_sh;

    if (sh == NULL || r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_threads_metrics_find_ctx(r);

    if (ctx) {
        op = ctx->op;
        now = ngx_http_threads_metrics_now();
        usec = now > ctx->start ? now - ctx->start : 0;

    } else {
        /* answered by nginx before the API's handler ran */
        lcf = ngx_http_get_module_loc_conf(r, ngx_http_threads_metrics_module);
        if (lcf == NULL || !lcf->api) {
            return NGX_OK;
        }

        op = NGX_HTTP_THREADS_METRICS_NONE;
        tp = ngx_timeofday();
        ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                               + (tp->msec - r->start_msec));
        usec = (uint64_t) ngx_max(ms, 0) * 1000;
    }

    /* as $status */
    status = r->err_status ? r->err_status : r->headers_out.status;
    status = (status >= 100 && status <= 599)
             ? status - 100 : NGX_HTTP_THREADS_METRICS_STATUSES - 1;

    (void) ngx_atomic_fetch_add(&sh->requests[op][status], 1);
    ngx_http_threads_metrics_observe(&sh->request_duration[op], usec);

    return NGX_OK;
}


void
ngx_http_threads_metrics_pg(ngx_uint_t op, uint64_t usec)
{
    if (ngx_http_threads_metrics_sh == NULL) {
        return;
    }

    ngx_http_threads_metrics_observe(
        &ngx_http_threads_metrics_sh->pg_duration[
            ngx_http_threads_metrics_op_slot(op)], usec);
}


void
ngx_http_threads_metrics_event(ngx_uint_t event)
{
    if (ngx_http_threads_metrics_sh == NULL
        || event >= NGX_HTTP_THREADS_METRICS_NEVENTS)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&ngx_http_threads_metrics_sh->events[event],
                                1);
}


static ngx_int_t
ngx_http_threads_metrics_class_digit(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'Z') {
        return c - 'A' + 10;
    }

    return -1;
}


void
ngx_http_threads_metrics_db_error(const char *sqlstate)
{
    ngx_int_t   a, b;
    ngx_uint_t  slot;

    if (ngx_http_threads_metrics_sh == NULL) {
        return;
    }

    slot = NGX_HTTP_THREADS_METRICS_CLASSES - 1;

    if (sqlstate && sqlstate[0] && sqlstate[1]) {
        a = ngx_http_threads_metrics_class_digit(sqlstate[0]);
        b = ngx_http_threads_metrics_class_digit(sqlstate[1]);

        if (a >= 0 && b >= 0) {
            slot = a * 36 + b;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_threads_metrics_sh->db_errors[slot],
                                1);
}


void
ngx_http_threads_metrics_gauges(ngx_uint_t idle, ngx_uint_t busy,
    ngx_uint_t connecting, ngx_uint_t waiting)
{
    ngx_http_threads_metrics_proc_t  *p;

    p = ngx_http_threads_metrics_proc;

    if (p == NULL) {
        return;
    }

    /* this worker alone writes its slot: plain word stores */
    p->gauge[NGX_HTTP_THREADS_METRICS_IDLE] = idle;
    p->gauge[NGX_HTTP_THREADS_METRICS_BUSY] = busy;
    p->gauge[NGX_HTTP_THREADS_METRICS_CONNECTING] = connecting;
    p->gauge[NGX_HTTP_THREADS_METRICS_WAITING] = waiting;
}


/* The scrape's text, in buffers of the request's pool. */
static void
ngx_http_threads_metrics_print(ngx_http_threads_metrics_out_t *out,
    const char *fmt, ...)
{
    u_char       *p;
    va_list       args;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (out->failed) {
        return;
    }

    b = out->b;

    /* every line is shorter than 512 bytes (operation names are short) */
    if (b == NULL || b->end - b->last < 512) {
        b = ngx_create_temp_buf(out->r->pool, 16384);
        cl = ngx_alloc_chain_link(out->r->pool);

        if (b == NULL || cl == NULL) {
            out->failed = 1;
            return;
        }

        cl->buf = b;
        cl->next = NULL;
        *out->last = cl;
        out->last = &cl->next;
        out->b = b;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(b->last, b->end, fmt, args);
    va_end(args);

    out->size += p - b->last;
    b->last = p;
}


static void
ngx_http_threads_metrics_family(ngx_http_threads_metrics_out_t *out,
    const char *name, const char *type, const char *help)
{
    ngx_http_threads_metrics_print(out, "# HELP %s %s\n# TYPE %s %s\n",
                                   name, help, name, type);
}


static void
ngx_http_threads_metrics_histogram(ngx_http_threads_metrics_out_t *out,
    const char *name, ngx_str_t *op, ngx_http_threads_metrics_hist_t *h)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  n, sum;

    n = 0;

    for (i = 0; i <= NGX_HTTP_THREADS_METRICS_BOUNDS; i++) {
        n += h->bucket[i];
        ngx_http_threads_metrics_print(out,
                                       "%s_bucket{op=\"%V\",le=\"%s\"} %uA\n",
                                       name, op,
                                       ngx_http_threads_metrics_les[i], n);
    }

    sum = h->sum;

    ngx_http_threads_metrics_print(out, "%s_sum{op=\"%V\"} %uA.%06uA\n"
                                   "%s_count{op=\"%V\"} %uA\n",
                                   name, op, sum / 1000000, sum % 1000000,
                                   name, op, n);
}


static void
ngx_http_threads_metrics_text(ngx_http_threads_metrics_out_t *out,
    ngx_http_threads_metrics_main_conf_t *mcf,
    ngx_http_threads_metrics_sh_t *sh)
{
    ngx_str_t                         none = ngx_string("none"), *op;
    ngx_uint_t                        i, j, nops;
    ngx_atomic_uint_t                 n, g[NGX_HTTP_THREADS_METRICS_NGAUGES];
    ngx_http_threads_metrics_proc_t  *p;

    nops = mcf->nops;

    ngx_http_threads_metrics_family(out, "threads_requests_total", "counter",
        "Requests answered in API locations, by operation and HTTP status "
        "(op none: answered before an operation was known).");

    for (i = 0; i <= nops; i++) {
        j = (i == nops) ? NGX_HTTP_THREADS_METRICS_NONE : i;
        op = (i == nops) ? &none : &mcf->ops[i];

        for (n = 0; n < NGX_HTTP_THREADS_METRICS_STATUSES; n++) {
            if (sh->requests[j][n] == 0) {
                continue;
            }

            if (n == NGX_HTTP_THREADS_METRICS_STATUSES - 1) {
                ngx_http_threads_metrics_print(out,
                    "threads_requests_total{op=\"%V\",status=\"other\"} "
                    "%uA\n", op, sh->requests[j][n]);

            } else {
                ngx_http_threads_metrics_print(out,
                    "threads_requests_total{op=\"%V\",status=\"%uA\"} %uA\n",
                    op, n + 100, sh->requests[j][n]);
            }
        }
    }

    ngx_http_threads_metrics_family(out, "threads_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response, by operation.");

    for (i = 0; i <= nops; i++) {
        j = (i == nops) ? NGX_HTTP_THREADS_METRICS_NONE : i;
        op = (i == nops) ? &none : &mcf->ops[i];

        ngx_http_threads_metrics_histogram(out,
                                           "threads_request_duration_seconds",
                                           op, &sh->request_duration[j]);
    }

    ngx_http_threads_metrics_family(out, "threads_pg_duration_seconds",
        "histogram",
        "Time from sending a statement to its result, by operation.");

    for (i = 0; i < nops; i++) {
        ngx_http_threads_metrics_histogram(out, "threads_pg_duration_seconds",
                                           &mcf->ops[i], &sh->pg_duration[i]);
    }

    ngx_memzero(g, sizeof(g));

    for (i = 0; i < sh->nprocs; i++) {
        p = &sh->procs[i];

        if (!ngx_http_threads_metrics_live(p)) {
            continue;
        }

        for (j = 0; j < NGX_HTTP_THREADS_METRICS_NGAUGES; j++) {
            g[j] += p->gauge[j];
        }
    }

    ngx_http_threads_metrics_family(out, "threads_pg_connections", "gauge",
        "Database connections of all workers' pools, by state.");
    ngx_http_threads_metrics_print(out,
        "threads_pg_connections{state=\"idle\"} %uA\n"
        "threads_pg_connections{state=\"busy\"} %uA\n"
        "threads_pg_connections{state=\"connecting\"} %uA\n",
        g[NGX_HTTP_THREADS_METRICS_IDLE], g[NGX_HTTP_THREADS_METRICS_BUSY],
        g[NGX_HTTP_THREADS_METRICS_CONNECTING]);

    ngx_http_threads_metrics_family(out, "threads_pg_queue_waiting", "gauge",
        "Requests waiting for a database connection, over all workers.");
    ngx_http_threads_metrics_print(out, "threads_pg_queue_waiting %uA\n",
                                   g[NGX_HTTP_THREADS_METRICS_WAITING]);

    ngx_http_threads_metrics_family(out, "threads_pg_queue_timeouts_total",
        "counter",
        "Requests that waited threads_pg_queue_timeout for a database "
        "connection (503).");
    ngx_http_threads_metrics_print(out, "threads_pg_queue_timeouts_total %uA\n",
        sh->events[NGX_HTTP_THREADS_METRICS_QUEUE_TIMEOUT]);

    ngx_http_threads_metrics_family(out, "threads_pg_queue_overflows_total",
        "counter",
        "Requests refused because threads_pg_queue_size requests were "
        "already waiting (503).");
    ngx_http_threads_metrics_print(out,
        "threads_pg_queue_overflows_total %uA\n",
        sh->events[NGX_HTTP_THREADS_METRICS_QUEUE_OVERFLOW]);

    ngx_http_threads_metrics_family(out, "threads_pg_connect_failures_total",
        "counter",
        "Connection attempts that failed or timed out.");
    ngx_http_threads_metrics_print(out,
        "threads_pg_connect_failures_total %uA\n",
        sh->events[NGX_HTTP_THREADS_METRICS_CONNECT_FAILURE]);

    ngx_http_threads_metrics_family(out, "threads_pg_reconnects_total",
        "counter",
        "Established connections lost (server gone, session ended, network "
        "error), each replaced by a new connection when one is needed.");
    ngx_http_threads_metrics_print(out, "threads_pg_reconnects_total %uA\n",
        sh->events[NGX_HTTP_THREADS_METRICS_RECONNECT]);

    ngx_http_threads_metrics_family(out, "threads_pg_query_timeouts_total",
        "counter",
        "Connections closed after threads_pg_query_timeout without a result "
        "(their requests get 504).");
    ngx_http_threads_metrics_print(out, "threads_pg_query_timeouts_total %uA\n",
        sh->events[NGX_HTTP_THREADS_METRICS_QUERY_TIMEOUT]);

    ngx_http_threads_metrics_family(out, "threads_pg_errors_total", "counter",
        "Statements that failed, by SQLSTATE class (the code's first two "
        "characters).");

    for (i = 0; i < NGX_HTTP_THREADS_METRICS_CLASSES; i++) {
        n = sh->db_errors[i];

        if (n == 0) {
            continue;
        }

        if (i == NGX_HTTP_THREADS_METRICS_CLASSES - 1) {
            ngx_http_threads_metrics_print(out,
                "threads_pg_errors_total{sqlstate_class=\"unknown\"} %uA\n",
                n);

        } else {
            ngx_http_threads_metrics_print(out,
                "threads_pg_errors_total{sqlstate_class=\"%c%c\"} %uA\n",
                ngx_http_threads_metrics_class_digits[i / 36],
                ngx_http_threads_metrics_class_digits[i % 36], n);
        }
    }
}


static ngx_int_t
ngx_http_threads_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                              rc;
    ngx_http_threads_metrics_out_t         out;
    ngx_http_threads_metrics_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_threads_metrics_sh == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_threads_metrics_module);

    ngx_memzero(&out, sizeof(ngx_http_threads_metrics_out_t));
    out.r = r;
    out.last = &out.first;

    ngx_http_threads_metrics_text(&out, mcf, ngx_http_threads_metrics_sh);

    if (out.failed || out.first == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out.b->last_buf = (r == r->main) ? 1 : 0;
    out.b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.size;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out.first);
}
