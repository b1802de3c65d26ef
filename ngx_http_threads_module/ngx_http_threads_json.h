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

#define THR_MAX_MESSAGES        32
#define THR_MAX_CONTENT_CHARS   256000
#define THR_MAX_METADATA_PAIRS  16
#define THR_MAX_METADATA_KEY    64
#define THR_MAX_METADATA_VALUE  512
#define THR_MAX_FILE_IDS        20
#define THR_MAX_VECTOR_STORES   1

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


#endif /* NGX_HTTP_THREADS_JSON_H_INCLUDED_ */
