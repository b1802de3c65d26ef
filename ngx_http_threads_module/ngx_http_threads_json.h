/*
 * Request validation and error shaping for the Threads API.
 *
 * Plain C over jansson, free of nginx types, so that it can be unit tested
 * and fuzzed alone.  Every function that returns a string returns memory
 * from malloc(3); the caller frees it (thr_thread_req_free() for requests).
 */

#ifndef NGX_HTTP_THREADS_JSON_H_INCLUDED_
#define NGX_HTTP_THREADS_JSON_H_INCLUDED_

#include <stddef.h>


#define THR_OK           0
#define THR_INVALID     -1      /* err is filled: answer err->status */
#define THR_NOMEM       -2      /* out of memory: answer 500 */

/*
 * Caps on everything countable in a request; lengths count characters.
 * Each one past its cap is a 400, array_above_max_length or
 * string_above_max_length, param the dotted path.
 */

/* messages given to create a thread */
#define THR_MAX_MESSAGES        32

/* a text: OpenAI's cap on texts of the Assistants API (maxLength 256000) */
#define THR_MAX_CONTENT_CHARS   256000

/* OpenAI's Metadata: maxProperties 16, keys maxLength 64, values 512 */
#define THR_MAX_METADATA_PAIRS  16
#define THR_MAX_METADATA_KEY    64
#define THR_MAX_METADATA_VALUE  512

/* tool_resources: OpenAI's maxItems 20 (code_interpreter.file_ids) and 1
 * (file_search.vector_store_ids) */
#define THR_MAX_FILE_IDS        20
#define THR_MAX_VECTOR_STORES   1

/*
 * Content parts of one message.  OpenAI states none (minItems 1 only).
 * 32, like the messages of a thread: a text and a few dozen images is far
 * more than a message to a model holds, and 32 texts at their cap are
 * already 32 MiB, the body limit.
 */
#define THR_MAX_CONTENT_PARTS   32

/*
 * Attachments of one message.  OpenAI's v2 schema states none; its v1
 * messages took "a maximum of 10 files attached to a message" (file_ids,
 * maxItems 10), which attachments replaced.
 */
#define THR_MAX_ATTACHMENTS     10

/*
 * Tools of one attachment.  OpenAI states none; there are two tool types
 * (code_interpreter, file_search), so a longer list only repeats them.
 */
#define THR_MAX_ATTACHMENT_TOOLS  2

/*
 * Length of a file id (image_file.file_id, attachments[].file_id,
 * code_interpreter.file_ids[]) and of a vector store id.  OpenAI states
 * none; its ids are about 30 characters ("file-" or "vs_" and 24 more).
 * 128 leaves room for other providers' ids, as OpenAI's own caps on
 * names do (maxLength 64 to 256), and bounds what an id can cost.
 */
#define THR_MAX_FILE_ID_LEN     128
#define THR_MAX_VECTOR_STORE_ID_LEN  128

/*
 * Length of image_url.url.  OpenAI's Responses API allows 20 MiB
 * (maxLength 20971520) for image URLs because they may be base64 data
 * URLs; here only http(s) URLs are taken, and 8192 is what HTTP servers
 * commonly allow for a URL (nginx's large_client_header_buffers is 8k).
 */
#define THR_MAX_URL_LEN         8192

/*
 * Memory jansson may hold to parse one body, its own blocks counted:
 * THR_PARSE_MEM_FACTOR times the body's length plus THR_PARSE_MEM_FLOOR.
 * A body past it is a 400 ("too deeply nested or has too many values"),
 * refused within a kilobyte of input once the budget is spent.
 *
 * A valid body is mostly its strings, which cost their length once
 * parsed: the largest valid create (32 texts of 256,000 four-byte
 * characters, every metadata and id at its cap, 34.0 MB) peaks at 1.03
 * times its length.  The caps allow few other values: a body with every
 * list at its cap and every string short (103 kB) peaks at 1.6 MB.  A
 * bomb such as {"x":[{},{},...]} costs some 70 times its length.  So
 * 2 x + 8 MiB leaves every valid body a margin of twice at least, and
 * stops a 32 MiB bomb after about a megabyte of it.
 */
#define THR_PARSE_MEM_FACTOR    2
#define THR_PARSE_MEM_FLOOR     (8 * 1024 * 1024)

#define THR_ID_RANDOM_LEN       24


typedef struct {
    unsigned     status;        /* HTTP status: 400, 401, 404, ... */
    const char  *type;          /* static: "invalid_request_error", ... */
    const char  *code;          /* static, or NULL for JSON null */
    char         param[512];    /* "" for JSON null */
    char         message[1024];
} thr_error_t;


/*
 * A validated thread body.  Each field is JSON text ready to be passed to
 * PostgreSQL as a jsonb parameter.
 *
 * create: metadata and tool_resources are "{}" when absent or null;
 *         messages is "[]" when absent or null.
 * modify: metadata and tool_resources are NULL when absent (leave as is),
 *         "{}" when null (reset), the normalized value otherwise;
 *         messages is always NULL.
 */
typedef struct {
    char    *metadata;
    char    *tool_resources;
    char    *messages;
    size_t   nmessages;
} thr_thread_req_t;


/*
 * Installs the counting allocator in jansson and seeds its hashing; once
 * per process, before threads start.  Every function below calls it too
 * (pthread_once), so it only has to come first where jansson is used
 * directly.  Nothing else in the process may use jansson with another
 * allocator.
 */
void thr_json_init(void);

/*
 * Peak bytes that the last parse of a body in the calling thread held at
 * once (each thread counts its own), and the budget it had.
 */
size_t thr_json_parse_peak(void);
size_t thr_json_parse_budget(size_t len);


/* body may be NULL or empty: that means "{}" for both. */
int thr_json_thread_create(const char *body, size_t len,
    thr_thread_req_t *req, thr_error_t *err);
int thr_json_thread_modify(const char *body, size_t len,
    thr_thread_req_t *req, thr_error_t *err);
void thr_thread_req_free(thr_thread_req_t *req);


/*
 * One message, as accepted in create's "messages" array and by
 * POST /threads/{id}/messages.  *out is a normalized message object:
 * {"id":"msg_...","role":..,"content":[..],"attachments":[..],"metadata":{..}}
 */
int thr_json_message_create(const char *body, size_t len, char **out,
    thr_error_t *err);

/* POST /threads/{id}/messages/{id}: metadata only; *metadata as for modify. */
int thr_json_message_modify(const char *body, size_t len, char **metadata,
    thr_error_t *err);


/*
 * Fills err; message is printf-formatted.  param may be NULL (JSON null),
 * code may be NULL.  Over-long text is cut at a UTF-8 character boundary.
 */
void thr_error_set(thr_error_t *err, unsigned status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/*
 * The error envelope
 * {"error":{"message":..,"type":..,"param":..,"code":..}} as JSON text.
 * Bytes that are not valid UTF-8 (an id echoed from a path, say) come out
 * as U+FFFD.  Returns NULL when out of memory.
 */
char *thr_error_json(const thr_error_t *err);


/*
 * The checks that ngx_http_threads_items.c shares.  Each check has the
 * shape int check(ctx, v, &out): v is the value (NULL when the key is
 * absent), ctx->path its dotted path for errors, and on THR_OK *out is a
 * new reference to the normalized value.  On failure *out is NULL and
 * nothing is held.  (struct json_t is jansson's json_t.)
 */

struct json_t;

typedef struct {
    thr_error_t  *err;
    size_t        len;
    char          path[sizeof(((thr_error_t *) 0)->param)];
} thr_ctx_t;

typedef int (*thr_check_pt)(thr_ctx_t *ctx, struct json_t *v,
    struct json_t **out);

typedef struct {
    const char   *names[5];
    const char   *list;             /* the names, as the error shows them */
} thr_enum_t;

/* a body to an object within its memory budget; "" is {} */
int thr_load(const char *body, size_t len, struct json_t **root,
    thr_error_t *err);
/* compact JSON text (malloc'd); v NULL gives NULL */
int thr_dump(struct json_t *v, char **out);
struct json_t *thr_pair(const char *k1, struct json_t *v1, const char *k2,
    struct json_t *v2);

size_t thr_path_key(thr_ctx_t *ctx, const char *key);
size_t thr_path_index(thr_ctx_t *ctx, size_t i);
void thr_path_pop(thr_ctx_t *ctx, size_t mark);

/* 400 invalid_request_error, param ctx->path */
int thr_fail(thr_ctx_t *ctx, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int thr_bad_type(thr_ctx_t *ctx, struct json_t *v, const char *expected);
int thr_missing(thr_ctx_t *ctx);
int thr_too_long(thr_ctx_t *ctx, size_t max, size_t n);
int thr_too_many(thr_ctx_t *ctx, size_t max, size_t n);

/* check(obj[key]) with key added to the path */
int thr_member(thr_ctx_t *ctx, struct json_t *obj, const char *key,
    thr_check_pt check, struct json_t **out);
/* unknown_parameter for the first key not in names (NULL-terminated) */
int thr_check_keys(thr_ctx_t *ctx, struct json_t *obj,
    const char *const *names);
/* the array of each(element) */
int thr_map(thr_ctx_t *ctx, struct json_t *v, thr_check_pt each,
    struct json_t **out);
/* an optional array of at most max: absent or null is [] */
int thr_list(thr_ctx_t *ctx, struct json_t *v, size_t max,
    thr_check_pt each, struct json_t **out);
/* a required string of at most max characters */
int thr_need_string(thr_ctx_t *ctx, struct json_t *v, size_t max);
int thr_enum(thr_ctx_t *ctx, struct json_t *v, const thr_enum_t *e,
    struct json_t **out);

/* metadata (absent or null is {}), an http(s) URL, a file id */
int thr_metadata(thr_ctx_t *ctx, struct json_t *v, struct json_t **out);
int thr_url(thr_ctx_t *ctx, struct json_t *v, struct json_t **out);
int thr_file_id(thr_ctx_t *ctx, struct json_t *v, struct json_t **out);


#endif /* NGX_HTTP_THREADS_JSON_H_INCLUDED_ */
