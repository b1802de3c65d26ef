/*
 * Request validation and error shaping for the Threads API.
 *
 * Every check below has the shape int check(ctx, v, &out): v is the value
 * (NULL when the key is absent), ctx->path its dotted path for errors, and
 * on THR_OK *out is a new reference to the normalized value.  On failure
 * *out is NULL and nothing is held.
 *
 * Errors are deterministic: in an object, the first unknown key in document
 * order is reported first, then the known members in schema order.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <jansson.h>

#include "ngx_http_threads_json.h"
#include "ngx_http_threads_id.h"
#include "ngx_http_threads_utf8.h"



#define THR_PARSE_MESSAGE                                                     \
    "We could not parse the JSON body of your request. (HINT: This likely "   \
    "means you aren't using your HTTP library correctly. The API expects a "  \
    "JSON payload, but what was sent was not valid JSON.)"


#define THR_NESTED_MESSAGE                                                    \
    "The JSON body of your request is too deeply nested or has too many "     \
    "values."

/* what json_load_callback() is fed at a time: the most a parse can go on
 * after its budget is spent */
#define THR_LOAD_CHUNK  1024


/* the size of a block from thr_mem_alloc(), before it; keeps alignment */
typedef union {
    size_t        size;
    long double   align_ld;
    void         *align_p;
    long long     align_ll;
} thr_mem_hdr_t;


/* a body fed to json_load_callback() */
typedef struct {
    const char   *pos;
    size_t        left;
} thr_feed_t;


/* thr_dumps(): where it writes, or NULL to count only */
typedef struct {
    char         *p;
    size_t        n;
} thr_out_t;


static void thr_error_vset(thr_error_t *err, unsigned status,
    const char *type, const char *code, const char *param, const char *fmt,
    va_list args);
static json_t *thr_json_text(const char *s);
static void thr_path_add(thr_ctx_t *ctx, const char *s, size_t n);

static const char *thr_type_name(json_t *v);

static void thr_json_init_once(void);
static void *thr_mem_alloc(size_t n);
static void thr_mem_free(void *p);
static size_t thr_feed(void *buf, size_t n, void *data);
static char *thr_dumps(json_t *v);
static int thr_write(thr_out_t *out, json_t *v);
static void thr_write_string(thr_out_t *out, const char *s, size_t len);
static void thr_put(thr_out_t *out, const char *s, size_t n);

static int thr_thread(const char *body, size_t len, int create,
    thr_thread_req_t *req, thr_error_t *err);
static int thr_tool_resources(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_code_interpreter(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_file_search(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_resource(thr_ctx_t *ctx, json_t *v, const char *ids_key,
    size_t max, thr_check_pt id_check, const char *helper, json_t **out);
static int thr_messages(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_message(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_role(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_content(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_part(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_part_type(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_text(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_image_file(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_image_url(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_image(thr_ctx_t *ctx, json_t *v, const char *id_key,
    thr_check_pt id_check, json_t **out);
static int thr_detail(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_vector_store_id(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_attachments(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_attachment(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_tools(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_tool(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_tool_type(thr_ctx_t *ctx, json_t *v, json_t **out);


/*
 * Memory that jansson holds, counted per thread: a parse in one thread is
 * not charged for a parse in another.  thr_mem_limit is 0 outside a parse.
 * A block freed by another thread than the one that made it moves the
 * counts of both by its size, which can only loosen a budget by as much.
 */
static __thread size_t  thr_mem_used;
static __thread size_t  thr_mem_limit;
static __thread size_t  thr_mem_peak;
static __thread int     thr_mem_over;

static pthread_once_t   thr_json_once = PTHREAD_ONCE_INIT;


/*
 * Escaped length of each byte in a JSON string, as jansson writes it:
 * \" \\ \b \f \n \r \t, other control characters as \u00XX.
 */
static const unsigned char  thr_escape_len[256] = {
    6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 2, 6, 2, 2, 6, 6,
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
};


static const thr_enum_t  thr_roles = {
    { "user", "assistant", NULL },
    "'user' and 'assistant'"
};

static const thr_enum_t  thr_part_types = {
    { "text", "image_file", "image_url", NULL },
    "'text', 'image_file', and 'image_url'"
};

static const thr_enum_t  thr_details = {
    { "auto", "low", "high", NULL },
    "'auto', 'low', and 'high'"
};

static const thr_enum_t  thr_tool_types = {
    { "code_interpreter", "file_search", NULL },
    "'code_interpreter' and 'file_search'"
};


/* public entry points */

void
thr_json_init(void)
{
    (void) pthread_once(&thr_json_once, thr_json_init_once);
}


size_t
thr_json_parse_peak(void)
{
    return thr_mem_peak;
}


size_t
thr_json_parse_budget(size_t len)
{
    if (len > (SIZE_MAX - THR_PARSE_MEM_FLOOR) / THR_PARSE_MEM_FACTOR) {
        return SIZE_MAX;
    }

    return len * THR_PARSE_MEM_FACTOR + THR_PARSE_MEM_FLOOR;
}


int
thr_json_thread_create(const char *body, size_t len, thr_thread_req_t *req,
    thr_error_t *err)
{
    return thr_thread(body, len, 1, req, err);
}


int
thr_json_thread_modify(const char *body, size_t len, thr_thread_req_t *req,
    thr_error_t *err)
{
    return thr_thread(body, len, 0, req, err);
}


void
thr_thread_req_free(thr_thread_req_t *req)
{
    free(req->metadata);
    free(req->tool_resources);
    free(req->messages);

    req->metadata = NULL;
    req->tool_resources = NULL;
    req->messages = NULL;
    req->nmessages = 0;
}


int
thr_json_message_create(const char *body, size_t len, char **out,
    thr_error_t *err)
{
    int         rc;
    json_t     *root, *msg;
    thr_ctx_t   ctx;

    *out = NULL;

    rc = thr_load(body, len, &root, err);
    if (rc != THR_OK) {
        return rc;
    }

    ctx.err = err;
    ctx.len = 0;
    ctx.path[0] = '\0';

    msg = NULL;

    rc = thr_message(&ctx, root, &msg);

    if (rc == THR_OK) {
        rc = thr_dump(msg, out);
    }

    json_decref(msg);
    json_decref(root);

    return rc;
}


int
thr_json_message_modify(const char *body, size_t len, char **metadata,
    thr_error_t *err)
{
    static const char *const  keys[] = { "metadata", NULL };

    int         rc;
    json_t     *root, *md;
    thr_ctx_t   ctx;

    *metadata = NULL;

    rc = thr_load(body, len, &root, err);
    if (rc != THR_OK) {
        return rc;
    }

    ctx.err = err;
    ctx.len = 0;
    ctx.path[0] = '\0';

    md = NULL;

    rc = thr_check_keys(&ctx, root, keys);

    /* absent: leave the stored metadata as it is */
    if (rc == THR_OK && json_object_get(root, "metadata") != NULL) {
        rc = thr_member(&ctx, root, "metadata", thr_metadata, &md);

        if (rc == THR_OK) {
            rc = thr_dump(md, metadata);
        }
    }

    json_decref(md);
    json_decref(root);

    return rc;
}


void
thr_error_set(thr_error_t *err, unsigned status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    thr_error_vset(err, status, type, code, param, fmt, args);
    va_end(args);
}


char *
thr_error_json(const thr_error_t *err)
{
    char    *s;
    json_t  *root, *e;

    thr_json_init();

    root = json_object();
    if (root == NULL) {
        return NULL;
    }

    e = json_object();

    /* json_object_set_new() takes its value even when it fails */
    if (json_object_set_new(root, "error", e) != 0
        || json_object_set_new(e, "message", thr_json_text(err->message)) != 0
        || json_object_set_new(e, "type", json_string(err->type)) != 0
        || json_object_set_new(e, "param", err->param[0]
                                           ? thr_json_text(err->param)
                                           : json_null()) != 0
        || json_object_set_new(e, "code", err->code ? json_string(err->code)
                                                    : json_null()) != 0)
    {
        json_decref(root);
        return NULL;
    }

    s = thr_dumps(root);
    json_decref(root);

    return s;
}


/* errors and UTF-8 */

static void
thr_error_vset(thr_error_t *err, unsigned status, const char *type,
    const char *code, const char *param, const char *fmt, va_list args)
{
    int     n;
    size_t  len;

    err->status = status;
    err->type = type;
    err->code = code;

    len = 0;

    if (param != NULL) {
        len = strlen(param);

        if (len >= sizeof(err->param)) {
            len = thr_utf8_trim(param, sizeof(err->param) - 1);
        }

        memcpy(err->param, param, len);
    }

    err->param[len] = '\0';

    n = vsnprintf(err->message, sizeof(err->message), fmt, args);

    if (n < 0) {
        err->message[0] = '\0';

    } else if ((size_t) n >= sizeof(err->message)) {
        len = thr_utf8_trim(err->message, sizeof(err->message) - 1);
        err->message[len] = '\0';
    }
}


/* A JSON string of s with each byte that is not UTF-8 turned into U+FFFD. */

static json_t *
thr_json_text(const char *s)
{
    size_t                len, i, j, n;
    json_t               *v;
    unsigned char        *buf;
    const unsigned char  *p;

    p = (const unsigned char *) s;
    len = strlen(s);

    buf = malloc(len * 3 + 1);
    if (buf == NULL) {
        return NULL;
    }

    for (i = 0, j = 0; i < len; i += n) {
        n = thr_utf8_seq(p + i, len - i);

        if (n == 0) {
            buf[j++] = 0xef;
            buf[j++] = 0xbf;
            buf[j++] = 0xbd;
            n = 1;
            continue;
        }

        memcpy(buf + j, p + i, n);
        j += n;
    }

    v = json_stringn((const char *) buf, j);
    free(buf);

    return v;
}


/* paths: "messages[0].content[1].text" */

size_t
thr_path_key(thr_ctx_t *ctx, const char *key)
{
    size_t  mark;

    mark = ctx->len;

    if (mark != 0) {
        thr_path_add(ctx, ".", 1);
    }

    thr_path_add(ctx, key, strlen(key));

    return mark;
}


size_t
thr_path_index(thr_ctx_t *ctx, size_t i)
{
    int     n;
    char    buf[32];
    size_t  mark;

    mark = ctx->len;
    n = snprintf(buf, sizeof(buf), "[%zu]", i);
    thr_path_add(ctx, buf, (size_t) n);

    return mark;
}


static void
thr_path_add(thr_ctx_t *ctx, const char *s, size_t n)
{
    size_t  room;

    /* a path longer than err->param could hold is cut, like the param */
    room = sizeof(ctx->path) - 1 - ctx->len;

    if (n > room) {
        n = thr_utf8_trim(s, room);
    }

    memcpy(ctx->path + ctx->len, s, n);
    ctx->len += n;
    ctx->path[ctx->len] = '\0';
}


void
thr_path_pop(thr_ctx_t *ctx, size_t mark)
{
    ctx->len = mark;
    ctx->path[mark] = '\0';
}


/* validation errors: 400, invalid_request_error, param = ctx->path */

int
thr_fail(thr_ctx_t *ctx, const char *code, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    thr_error_vset(ctx->err, 400, "invalid_request_error", code, ctx->path,
                   fmt, args);
    va_end(args);

    return THR_INVALID;
}


int
thr_bad_type(thr_ctx_t *ctx, json_t *v, const char *expected)
{
    return thr_fail(ctx, "invalid_type",
                    "Invalid type for '%s': expected %s, but got %s instead.",
                    ctx->path, expected, thr_type_name(v));
}


int
thr_missing(thr_ctx_t *ctx)
{
    return thr_fail(ctx, "missing_required_parameter",
                    "Missing required parameter: '%s'.", ctx->path);
}


int
thr_too_long(thr_ctx_t *ctx, size_t max, size_t n)
{
    return thr_fail(ctx, "string_above_max_length",
                    "Invalid '%s': string too long. Expected a string with "
                    "maximum length %zu, but got a string with length %zu "
                    "instead.", ctx->path, max, n);
}


int
thr_too_many(thr_ctx_t *ctx, size_t max, size_t n)
{
    return thr_fail(ctx, "array_above_max_length",
                    "Invalid '%s': array too long. Expected an array with "
                    "maximum length %zu, but got an array with length %zu "
                    "instead.", ctx->path, max, n);
}


static const char *
thr_type_name(json_t *v)
{
    switch (json_typeof(v)) {

    case JSON_OBJECT:
        return "an object";

    case JSON_ARRAY:
        return "an array";

    case JSON_STRING:
        return "a string";

    case JSON_INTEGER:
        return "an integer";

    case JSON_REAL:
        return "a number";

    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";

    default:
        return "null";
    }
}


/* helpers */

static void
thr_json_init_once(void)
{
    json_set_alloc_funcs(thr_mem_alloc, thr_mem_free);
    json_object_seed(0);
}


static void *
thr_mem_alloc(size_t n)
{
    thr_mem_hdr_t  *h;

    if (n > SIZE_MAX - 2 * sizeof(thr_mem_hdr_t)) {
        return NULL;
    }

    h = malloc(sizeof(thr_mem_hdr_t) + n);
    if (h == NULL) {
        return NULL;
    }

    h->size = sizeof(thr_mem_hdr_t) + n;
    thr_mem_used += h->size;

    if (thr_mem_limit != 0) {

        if (thr_mem_used > thr_mem_peak) {
            thr_mem_peak = thr_mem_used;
        }

        /*
         * Never fail here: jansson 2.14 reads past its token buffer when
         * an allocation fails in the middle of a token.  thr_feed() ends
         * the input instead.
         */
        if (thr_mem_used > thr_mem_limit) {
            thr_mem_over = 1;
        }
    }

    return h + 1;
}


static void
thr_mem_free(void *p)
{
    thr_mem_hdr_t  *h;

    if (p == NULL) {
        return;
    }

    h = (thr_mem_hdr_t *) p - 1;
    thr_mem_used -= h->size;

    free(h);
}


/* The body, a chunk at a time; an end of input once the budget is spent. */

static size_t
thr_feed(void *buf, size_t n, void *data)
{
    thr_feed_t  *f = data;

    if (thr_mem_over) {
        return (size_t) -1;
    }

    if (n > f->left) {
        n = f->left;
    }

    if (n > THR_LOAD_CHUNK) {
        n = THR_LOAD_CHUNK;
    }

    memcpy(buf, f->pos, n);
    f->pos += n;
    f->left -= n;

    return n;
}


int
thr_load(const char *body, size_t len, json_t **root, thr_error_t *err)
{
    size_t        i, start;
    thr_feed_t    feed;
    json_error_t  jerr;

    thr_json_init();

    thr_mem_peak = 0;

    if (body == NULL) {
        len = 0;
    }

    for (i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r'
            && body[i] != '\n')
        {
            break;
        }
    }

    /* no body, or only whitespace: the same as "{}" */
    if (i == len) {
        *root = json_object();
        return *root ? THR_OK : THR_NOMEM;
    }

    feed.pos = body;
    feed.left = len;

    start = thr_mem_used;
    thr_mem_peak = start;
    thr_mem_over = 0;
    thr_mem_limit = start + thr_json_parse_budget(len);

    if (thr_mem_limit < start) {
        thr_mem_limit = SIZE_MAX;
    }

    /* JSON_DECODE_ANY: a scalar body is valid JSON, just of a wrong type */
    *root = json_load_callback(thr_feed, &feed, JSON_DECODE_ANY, &jerr);

    thr_mem_limit = 0;
    thr_mem_peak -= start;

    /*
     * Over budget, even if the last chunk completed the document; or past
     * jansson's depth limit.  (Without error text, jansson failed to
     * allocate its lexer and set no code either.)
     */
    if (thr_mem_over
        || (*root == NULL && jerr.text[0] != '\0'
            && json_error_code(&jerr) == json_error_stack_overflow))
    {
        thr_mem_over = 0;
        json_decref(*root);
        *root = NULL;

#if defined(__GLIBC__)
        /* give back what the bomb took: glibc keeps freed small blocks */
        (void) malloc_trim(0);
#endif

        thr_error_set(err, 400, "invalid_request_error", NULL, NULL, "%s",
                      THR_NESTED_MESSAGE);
        return THR_INVALID;
    }

    if (*root == NULL) {

        /* no error text at all: jansson failed to allocate its lexer */
        if (jerr.text[0] == '\0'
            || json_error_code(&jerr) == json_error_out_of_memory)
        {
            return THR_NOMEM;
        }

        thr_error_set(err, 400, "invalid_request_error", NULL, NULL, "%s",
                      THR_PARSE_MESSAGE);
        return THR_INVALID;
    }

    if (!json_is_object(*root)) {
        thr_error_set(err, 400, "invalid_request_error", "invalid_type", NULL,
                      "Invalid type for body: expected an object, but got %s "
                      "instead.", thr_type_name(*root));
        json_decref(*root);
        *root = NULL;
        return THR_INVALID;
    }

    return THR_OK;
}


/* v == NULL (absent) gives NULL (leave as is). */

int
thr_dump(json_t *v, char **out)
{
    if (v == NULL) {
        *out = NULL;
        return THR_OK;
    }

    *out = thr_dumps(v);

    return *out ? THR_OK : THR_NOMEM;
}


/*
 * Compact JSON text in memory from malloc(3), or NULL: what
 * json_dumps(v, JSON_COMPACT) writes, byte for byte, in one pass to size
 * it and one to write it.  Not jansson's dump: it checks the UTF-8 of
 * every string again, character by character, twice as the size is not
 * known (and json_dumps() ignores a failed allocation while it appends an
 * object key, returning broken JSON); the strings here were checked by
 * the parse, and are copied in runs between the bytes to escape.
 */

static char *
thr_dumps(json_t *v)
{
    char       *s;
    thr_out_t   out;

    out.p = NULL;
    out.n = 0;

    if (thr_write(&out, v) != THR_OK || out.n == SIZE_MAX) {
        return NULL;
    }

    s = malloc(out.n + 1);
    if (s == NULL) {
        return NULL;
    }

    out.p = s;
    out.n = 0;

    (void) thr_write(&out, v);

    s[out.n] = '\0';

    return s;
}


static int
thr_write(thr_out_t *out, json_t *v)
{
    int          first;
    char         buf[64];
    size_t       i, n;
    json_t      *el;
    const char  *key;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        thr_put(out, "{", 1);
        first = 1;

        json_object_foreach(v, key, el) {
            if (!first) {
                thr_put(out, ",", 1);
            }

            first = 0;

            thr_write_string(out, key, strlen(key));
            thr_put(out, ":", 1);

            if (thr_write(out, el) != THR_OK) {
                return THR_NOMEM;
            }
        }

        thr_put(out, "}", 1);
        return THR_OK;

    case JSON_ARRAY:
        thr_put(out, "[", 1);

        json_array_foreach(v, i, el) {
            if (i != 0) {
                thr_put(out, ",", 1);
            }

            if (thr_write(out, el) != THR_OK) {
                return THR_NOMEM;
            }
        }

        thr_put(out, "]", 1);
        return THR_OK;

    case JSON_STRING:
        thr_write_string(out, json_string_value(v), json_string_length(v));
        return THR_OK;

    case JSON_TRUE:
        thr_put(out, "true", 4);
        return THR_OK;

    case JSON_FALSE:
        thr_put(out, "false", 5);
        return THR_OK;

    case JSON_NULL:
        thr_put(out, "null", 4);
        return THR_OK;

    default:
        /* numbers, which no normalized value holds: as jansson has them */
        n = json_dumpb(v, buf, sizeof(buf), JSON_ENCODE_ANY);
        if (n == 0 || n > sizeof(buf)) {
            return THR_NOMEM;
        }

        thr_put(out, buf, n);
        return THR_OK;
    }
}


static void
thr_write_string(thr_out_t *out, const char *s, size_t len)
{
    size_t                i, run, n;
    unsigned char         c;
    const unsigned char  *p;
    char                  esc[8];

    static const char     hex[] = "0123456789ABCDEF";

    p = (const unsigned char *) s;

    if (out->p == NULL) {
        n = len + 2;

        for (i = 0; i < len; i++) {
            n += thr_escape_len[p[i]] - 1;
        }

        out->n = (out->n > SIZE_MAX - n) ? SIZE_MAX : out->n + n;
        return;
    }

    thr_put(out, "\"", 1);

    for (i = 0; i < len; /* void */) {

        for (run = i; i < len && thr_escape_len[p[i]] == 1; i++) {
            /* void */
        }

        thr_put(out, s + run, i - run);

        if (i == len) {
            break;
        }

        c = p[i++];
        esc[0] = '\\';

        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;

        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            thr_put(out, esc, 6);
            continue;
        }

        thr_put(out, esc, 2);
    }

    thr_put(out, "\"", 1);
}


/* Appends, or only counts when out->p is NULL. */

static void
thr_put(thr_out_t *out, const char *s, size_t n)
{
    if (out->p != NULL) {
        memcpy(out->p + out->n, s, n);
    }

    /* a count past SIZE_MAX sticks there: thr_dumps() refuses it */
    out->n = (out->n > SIZE_MAX - n) ? SIZE_MAX : out->n + n;
}


/* {k1: v1, k2: v2} with new references to both; NULL if out of memory. */

json_t *
thr_pair(const char *k1, json_t *v1, const char *k2, json_t *v2)
{
    json_t  *obj;

    obj = json_object();

    if (obj != NULL
        && (json_object_set(obj, k1, v1) != 0
            || json_object_set(obj, k2, v2) != 0))
    {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


int
thr_member(thr_ctx_t *ctx, json_t *obj, const char *key, thr_check_pt check,
    json_t **out)
{
    int     rc;
    size_t  mark;

    *out = NULL;
    mark = thr_path_key(ctx, key);

    rc = check(ctx, json_object_get(obj, key), out);

    if (rc == THR_OK) {
        thr_path_pop(ctx, mark);
    }

    return rc;
}


int
thr_check_keys(thr_ctx_t *ctx, json_t *obj, const char *const *names)
{
    void               *it;
    const char         *key;
    const char *const  *name;

    for (it = json_object_iter(obj); it; it = json_object_iter_next(obj, it))
    {
        key = json_object_iter_key(it);

        for (name = names; *name; name++) {
            if (strcmp(key, *name) == 0) {
                break;
            }
        }

        if (*name == NULL) {
            thr_path_key(ctx, key);
            return thr_fail(ctx, "unknown_parameter",
                            "Unknown parameter: '%s'.", ctx->path);
        }
    }

    return THR_OK;
}


/* The array of each(element) for the array v. */

int
thr_map(thr_ctx_t *ctx, json_t *v, thr_check_pt each, json_t **out)
{
    int      rc;
    size_t   i, mark;
    json_t  *res, *el, *item;

    res = json_array();
    if (res == NULL) {
        return THR_NOMEM;
    }

    json_array_foreach(v, i, el) {
        mark = thr_path_index(ctx, i);
        item = NULL;

        rc = each(ctx, el, &item);

        if (rc == THR_OK && json_array_append_new(res, item) != 0) {
            rc = THR_NOMEM;
        }

        if (rc != THR_OK) {
            json_decref(res);
            return rc;
        }

        thr_path_pop(ctx, mark);
    }

    *out = res;

    return THR_OK;
}


/* An optional array of at most max elements: absent or null is []. */

int
thr_list(thr_ctx_t *ctx, json_t *v, size_t max, thr_check_pt each,
    json_t **out)
{
    if (v == NULL || json_is_null(v)) {
        *out = json_array();
        return *out ? THR_OK : THR_NOMEM;
    }

    if (!json_is_array(v)) {
        return thr_bad_type(ctx, v, "an array");
    }

    if (json_array_size(v) > max) {
        return thr_too_many(ctx, max, json_array_size(v));
    }

    return thr_map(ctx, v, each, out);
}


/* A required string of at most max characters. */

int
thr_need_string(thr_ctx_t *ctx, json_t *v, size_t max)
{
    size_t  n;

    if (v == NULL) {
        return thr_missing(ctx);
    }

    if (!json_is_string(v)) {
        return thr_bad_type(ctx, v, "a string");
    }

    /* a character is a byte at least: most strings need no counting */
    n = json_string_length(v);

    if (n <= max) {
        return THR_OK;
    }

    n = thr_utf8_chars(json_string_value(v), n);

    return (n > max) ? thr_too_long(ctx, max, n) : THR_OK;
}


int
thr_enum(thr_ctx_t *ctx, json_t *v, const thr_enum_t *e, json_t **out)
{
    int                 rc;
    const char         *s;
    const char *const  *name;

    rc = thr_need_string(ctx, v, SIZE_MAX);
    if (rc != THR_OK) {
        return rc;
    }

    s = json_string_value(v);

    for (name = e->names; *name; name++) {
        if (strcmp(s, *name) == 0) {
            *out = json_incref(v);
            return THR_OK;
        }
    }

    return thr_fail(ctx, "invalid_value",
                    "Invalid value: '%s'. Supported values are: %s.",
                    s, e->list);
}


/* threads */

static int
thr_thread(const char *body, size_t len, int create, thr_thread_req_t *req,
    thr_error_t *err)
{
    static const char *const  create_keys[] = {
        "metadata", "tool_resources", "messages", NULL
    };
    static const char *const  modify_keys[] = {
        "metadata", "tool_resources", NULL
    };

    int         rc;
    json_t     *root, *md, *tr, *msgs;
    thr_ctx_t   ctx;

    req->metadata = NULL;
    req->tool_resources = NULL;
    req->messages = NULL;
    req->nmessages = 0;

    rc = thr_load(body, len, &root, err);
    if (rc != THR_OK) {
        return rc;
    }

    ctx.err = err;
    ctx.len = 0;
    ctx.path[0] = '\0';

    md = NULL;
    tr = NULL;
    msgs = NULL;

    rc = thr_check_keys(&ctx, root, create ? create_keys : modify_keys);

    /* create fills in absent fields; modify leaves them out (NULL) */

    if (rc == THR_OK && (create || json_object_get(root, "metadata"))) {
        rc = thr_member(&ctx, root, "metadata", thr_metadata, &md);
    }

    if (rc == THR_OK && (create || json_object_get(root, "tool_resources"))) {
        rc = thr_member(&ctx, root, "tool_resources", thr_tool_resources,
                        &tr);
    }

    if (rc == THR_OK && create) {
        rc = thr_member(&ctx, root, "messages", thr_messages, &msgs);
    }

    if (rc == THR_OK) {
        if (thr_dump(md, &req->metadata) != THR_OK
            || thr_dump(tr, &req->tool_resources) != THR_OK
            || thr_dump(msgs, &req->messages) != THR_OK)
        {
            thr_thread_req_free(req);
            rc = THR_NOMEM;

        } else {
            req->nmessages = json_array_size(msgs);
        }
    }

    json_decref(md);
    json_decref(tr);
    json_decref(msgs);
    json_decref(root);

    return rc;
}


/* metadata: absent or null is {} */

int
thr_metadata(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int          rc;
    size_t       n, mark;
    json_t      *val;
    const char  *key;

    if (v == NULL || json_is_null(v)) {
        *out = json_object();
        return *out ? THR_OK : THR_NOMEM;
    }

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    n = json_object_size(v);

    if (n > THR_MAX_METADATA_PAIRS) {
        return thr_fail(ctx, "object_above_max_properties",
                        "Invalid '%s': too many properties. Expected an "
                        "object with at most %d properties, but got an "
                        "object with %zu properties instead.",
                        ctx->path, THR_MAX_METADATA_PAIRS, n);
    }

    json_object_foreach(v, key, val) {

        /* key errors name the metadata object, as OpenAI does */
        n = thr_utf8_chars(key, strlen(key));

        if (n == 0) {
            return thr_fail(ctx, "string_below_min_length",
                            "Invalid '%s': string too short. Expected a "
                            "string with minimum length 1, but got an empty "
                            "string instead.", ctx->path);
        }

        if (n > THR_MAX_METADATA_KEY) {
            return thr_too_long(ctx, THR_MAX_METADATA_KEY, n);
        }

        mark = thr_path_key(ctx, key);

        rc = thr_need_string(ctx, val, THR_MAX_METADATA_VALUE);
        if (rc != THR_OK) {
            return rc;
        }

        thr_path_pop(ctx, mark);
    }

    *out = json_incref(v);

    return THR_OK;
}


/* tool_resources: absent or null is {}; holds the resources given */

static int
thr_tool_resources(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = {
        "code_interpreter", "file_search", NULL
    };

    int      rc;
    json_t  *ci, *fs, *res;

    ci = NULL;
    fs = NULL;

    if (v != NULL && !json_is_null(v)) {

        if (!json_is_object(v)) {
            return thr_bad_type(ctx, v, "an object");
        }

        rc = thr_check_keys(ctx, v, keys);

        if (rc == THR_OK) {
            rc = thr_member(ctx, v, "code_interpreter", thr_code_interpreter,
                            &ci);
        }

        if (rc == THR_OK) {
            rc = thr_member(ctx, v, "file_search", thr_file_search, &fs);
        }

        if (rc != THR_OK) {
            json_decref(ci);
            return rc;
        }
    }

    res = json_object();
    rc = THR_OK;

    if (res == NULL
        || (ci != NULL && json_object_set(res, "code_interpreter", ci) != 0)
        || (fs != NULL && json_object_set(res, "file_search", fs) != 0))
    {
        json_decref(res);
        res = NULL;
        rc = THR_NOMEM;
    }

    json_decref(ci);
    json_decref(fs);

    *out = res;

    return rc;
}


static int
thr_code_interpreter(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_resource(ctx, v, "file_ids", THR_MAX_FILE_IDS, thr_file_id,
                        NULL, out);
}


static int
thr_file_search(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_resource(ctx, v, "vector_store_ids", THR_MAX_VECTOR_STORES,
                        thr_vector_store_id, "vector_stores", out);
}


/*
 * {ids_key: [id, ...]} with at most max ids, each passing id_check;
 * absent or null stays
 * *out == NULL (omitted).  helper names a key that is refused because this
 * server cannot do what it asks.
 */

static int
thr_resource(thr_ctx_t *ctx, json_t *v, const char *ids_key, size_t max,
    thr_check_pt id_check, const char *helper, json_t **out)
{
    int          rc;
    size_t       i, mark, id_mark;
    json_t      *ids, *h, *el, *id;
    const char  *keys[] = { ids_key, helper, NULL };

    if (v == NULL || json_is_null(v)) {
        return THR_OK;
    }

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    rc = thr_check_keys(ctx, v, keys);
    if (rc != THR_OK) {
        return rc;
    }

    h = (helper != NULL) ? json_object_get(v, helper) : NULL;

    if (h != NULL && !json_is_null(h)) {
        thr_path_key(ctx, helper);
        return thr_fail(ctx, "unsupported_parameter",
                        "Unsupported parameter: '%s'. This server cannot "
                        "create vector stores: create the vector store "
                        "separately and pass its id in "
                        "'tool_resources.file_search.vector_store_ids'.",
                        ctx->path);
    }

    ids = json_object_get(v, ids_key);

    if (ids != NULL && !json_is_null(ids)) {
        mark = thr_path_key(ctx, ids_key);

        if (!json_is_array(ids)) {
            return thr_bad_type(ctx, ids, "an array");
        }

        if (json_array_size(ids) > max) {
            return thr_too_many(ctx, max, json_array_size(ids));
        }

        json_array_foreach(ids, i, el) {
            id_mark = thr_path_index(ctx, i);

            rc = id_check(ctx, el, &id);
            if (rc != THR_OK) {
                return rc;
            }

            json_decref(id);
            thr_path_pop(ctx, id_mark);
        }

        thr_path_pop(ctx, mark);

    } else {
        ids = NULL;
    }

    *out = json_object();

    if (*out == NULL
        || (ids != NULL && json_object_set(*out, ids_key, ids) != 0))
    {
        json_decref(*out);
        *out = NULL;
        return THR_NOMEM;
    }

    return THR_OK;
}


/* messages */

static int
thr_messages(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_list(ctx, v, THR_MAX_MESSAGES, thr_message, out);
}


static int
thr_message(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = {
        "role", "content", "attachments", "metadata", NULL
    };

    int      rc;
    char     id[sizeof("msg_") + THR_ID_CHARS];
    json_t  *role, *content, *attachments, *metadata, *msg;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    role = NULL;
    content = NULL;
    attachments = NULL;
    metadata = NULL;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "role", thr_role, &role);
    }

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "content", thr_content, &content);
    }

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "attachments", thr_attachments, &attachments);
    }

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "metadata", thr_metadata, &metadata);
    }

    if (rc == THR_OK) {
        msg = json_object();

        /* no randomness is a server fault, answered as 500 like ENOMEM */
        if (msg == NULL
            || thr_id_make(id, "msg_") != 0
            || json_object_set_new(msg, "id", json_string(id)) != 0
            || json_object_set(msg, "role", role) != 0
            || json_object_set(msg, "content", content) != 0
            || json_object_set(msg, "attachments", attachments) != 0
            || json_object_set(msg, "metadata", metadata) != 0)
        {
            json_decref(msg);
            rc = THR_NOMEM;

        } else {
            *out = msg;
        }
    }

    json_decref(role);
    json_decref(content);
    json_decref(attachments);
    json_decref(metadata);

    return rc;
}


static int
thr_role(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_enum(ctx, v, &thr_roles, out);
}


/* A string becomes one text part; an array must hold at least one part. */

static int
thr_content(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int      rc;
    json_t  *type, *text, *part;

    if (v == NULL) {
        return thr_missing(ctx);
    }

    if (json_is_array(v)) {

        if (json_array_size(v) == 0) {
            return thr_fail(ctx, "empty_array",
                            "Invalid '%s': empty array. Expected an array "
                            "with minimum length 1, but got an empty array "
                            "instead.", ctx->path);
        }

        if (json_array_size(v) > THR_MAX_CONTENT_PARTS) {
            return thr_too_many(ctx, THR_MAX_CONTENT_PARTS,
                                json_array_size(v));
        }

        return thr_map(ctx, v, thr_part, out);
    }

    if (!json_is_string(v)) {
        return thr_bad_type(ctx, v, "one of a string or an array");
    }

    rc = thr_text(ctx, v, &text);
    if (rc != THR_OK) {
        return rc;
    }

    type = json_string("text");
    part = thr_pair("type", type, "text", text);
    json_decref(type);
    json_decref(text);

    *out = json_array();

    /* json_array_append_new() frees part when it fails */
    if (json_array_append_new(*out, part) != 0) {
        json_decref(*out);
        *out = NULL;
        return THR_NOMEM;
    }

    return THR_OK;
}


/* {"type":T, T:{...}}: the member named by type, and nothing else */

static int
thr_part(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int            rc;
    json_t        *type, *member;
    const char    *name, *keys[3];
    thr_check_pt   check;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    rc = thr_member(ctx, v, "type", thr_part_type, &type);
    if (rc != THR_OK) {
        return rc;
    }

    name = json_string_value(type);

    keys[0] = "type";
    keys[1] = name;
    keys[2] = NULL;

    if (strcmp(name, "text") == 0) {
        check = thr_text;

    } else if (strcmp(name, "image_file") == 0) {
        check = thr_image_file;

    } else {
        check = thr_image_url;
    }

    member = NULL;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, name, check, &member);
    }

    if (rc == THR_OK) {
        *out = thr_pair("type", type, name, member);

        if (*out == NULL) {
            rc = THR_NOMEM;
        }
    }

    json_decref(type);
    json_decref(member);

    return rc;
}


static int
thr_part_type(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_enum(ctx, v, &thr_part_types, out);
}


/* A text of at most THR_MAX_CONTENT_CHARS, as {"value":..,"annotations":[]} */

static int
thr_text(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int      rc;
    json_t  *annotations;

    rc = thr_need_string(ctx, v, THR_MAX_CONTENT_CHARS);
    if (rc != THR_OK) {
        return rc;
    }

    annotations = json_array();
    *out = thr_pair("value", v, "annotations", annotations);
    json_decref(annotations);

    return *out ? THR_OK : THR_NOMEM;
}


static int
thr_image_file(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_image(ctx, v, "file_id", thr_file_id, out);
}


static int
thr_image_url(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_image(ctx, v, "url", thr_url, out);
}


/* {id_key: .., "detail": ..} with detail defaulting to "auto" */

static int
thr_image(thr_ctx_t *ctx, json_t *v, const char *id_key,
    thr_check_pt id_check, json_t **out)
{
    int          rc;
    json_t      *id, *detail;
    const char  *keys[] = { id_key, "detail", NULL };

    if (v == NULL) {
        return thr_missing(ctx);
    }

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    id = NULL;
    detail = NULL;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, id_key, id_check, &id);
    }

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "detail", thr_detail, &detail);
    }

    if (rc == THR_OK) {
        *out = thr_pair(id_key, id, "detail", detail);

        if (*out == NULL) {
            rc = THR_NOMEM;
        }
    }

    json_decref(id);
    json_decref(detail);

    return rc;
}


static int
thr_detail(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    if (v == NULL) {
        *out = json_string("auto");
        return *out ? THR_OK : THR_NOMEM;
    }

    return thr_enum(ctx, v, &thr_details, out);
}


int
thr_file_id(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int  rc;

    rc = thr_need_string(ctx, v, THR_MAX_FILE_ID_LEN);

    if (rc == THR_OK) {
        *out = json_incref(v);
    }

    return rc;
}


static int
thr_vector_store_id(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int  rc;

    rc = thr_need_string(ctx, v, THR_MAX_VECTOR_STORE_ID_LEN);

    if (rc == THR_OK) {
        *out = json_incref(v);
    }

    return rc;
}


/* http:// or https:// (any case) and something after it */

int
thr_url(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int          rc;
    size_t       len;
    const char  *s;

    rc = thr_need_string(ctx, v, THR_MAX_URL_LEN);
    if (rc != THR_OK) {
        return rc;
    }

    s = json_string_value(v);
    len = json_string_length(v);

    if ((len > 7 && strncasecmp(s, "http://", 7) == 0)
        || (len > 8 && strncasecmp(s, "https://", 8) == 0))
    {
        *out = json_incref(v);
        return THR_OK;
    }

    return thr_fail(ctx, "invalid_value",
                    "Invalid '%s': Expected a valid URL, but got a value "
                    "with an invalid format.", ctx->path);
}


/* attachments: absent or null is [] */

static int
thr_attachments(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_list(ctx, v, THR_MAX_ATTACHMENTS, thr_attachment, out);
}


static int
thr_attachment(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = { "file_id", "tools", NULL };

    int      rc;
    json_t  *file_id, *tools;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    file_id = NULL;
    tools = NULL;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "file_id", thr_file_id, &file_id);
    }

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "tools", thr_tools, &tools);
    }

    if (rc == THR_OK) {
        *out = thr_pair("file_id", file_id, "tools", tools);

        if (*out == NULL) {
            rc = THR_NOMEM;
        }
    }

    json_decref(file_id);
    json_decref(tools);

    return rc;
}


/* tools: absent or null is [] */

static int
thr_tools(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_list(ctx, v, THR_MAX_ATTACHMENT_TOOLS, thr_tool, out);
}


static int
thr_tool(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = { "type", NULL };

    int      rc;
    json_t  *type;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    type = NULL;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_member(ctx, v, "type", thr_tool_type, &type);
    }

    if (rc == THR_OK) {
        /* v holds nothing but a valid type: it is its own normal form */
        *out = json_incref(v);
    }

    json_decref(type);

    return rc;
}


static int
thr_tool_type(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_enum(ctx, v, &thr_tool_types, out);
}
