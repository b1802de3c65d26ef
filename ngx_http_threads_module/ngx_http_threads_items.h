/*
 * Request validation for the Conversations API: conversation bodies and
 * the items they hold (the Responses API's input items).
 *
 * Plain C over jansson, free of nginx types, so that it can be unit tested
 * and fuzzed alone.  Strings returned come from malloc(3);
 * thr_conv_req_free() frees them.
 */

#ifndef NGX_HTTP_THREADS_ITEMS_H_INCLUDED_
#define NGX_HTTP_THREADS_ITEMS_H_INCLUDED_

#include <stddef.h>

#include "ngx_http_threads_json.h"


/* items given to create a conversation, or added at once: OpenAI's 20 */
#define THR_MAX_ITEMS            20

/*
 * A text (input_text, output_text, refusal), a function call's arguments
 * or output, a data URL, a file's data: OpenAI's maxLength for the texts
 * of the Responses API (10,485,760 characters).
 */
#define THR_ITEM_MAX_TEXT        10485760

/* every other item type: its compact JSON text, in bytes */
#define THR_ITEM_MAX_BYTES       10485760

/* call_id (OpenAI: 1 to 64), name (1 to 128), namespace (1 to 64) */
#define THR_ITEM_MAX_CALL_ID     64
#define THR_ITEM_MAX_NAME        128
#define THR_ITEM_MAX_NAMESPACE   64

/* an input_file's filename, an id given in an item (replaced) */
#define THR_ITEM_MAX_FILENAME    256
#define THR_ITEM_MAX_ID          128

/* an output_text's annotations and logprobs; top_logprobs and bytes */
#define THR_ITEM_MAX_ANNOTATIONS 128
#define THR_ITEM_MAX_LOGPROBS    4096
#define THR_ITEM_MAX_TOP_LOGPROBS  20
#define THR_ITEM_MAX_BYTES_LIST  64


/*
 * A validated conversation body, as JSON text for jsonb parameters.
 *
 * create: metadata "{}" when absent or null; items "[]" when absent or
 *         null, else the normalized items, each with its new id.
 * update: metadata required ("{}" when null); items NULL.
 * items:  items required, 1 to 20; metadata NULL.
 */
typedef struct {
    char    *metadata;
    char    *items;
    size_t   nitems;
} thr_conv_req_t;


int thr_items_conversation_create(const char *body, size_t len,
    thr_conv_req_t *req, thr_error_t *err);
int thr_items_conversation_update(const char *body, size_t len,
    thr_conv_req_t *req, thr_error_t *err);
int thr_items_create(const char *body, size_t len, thr_conv_req_t *req,
    thr_error_t *err);
void thr_conv_req_free(thr_conv_req_t *req);

/*
 * The id prefix of an item type ("msg_" for "message"), or NULL for a
 * type that is not one.
 */
const char *thr_item_prefix(const char *type);

/* 1 if s (not NUL-terminated) is an item id: a prefix and 24 [A-Za-z0-9] */
int thr_item_id_is_valid(const char *s, size_t len);


#endif /* NGX_HTTP_THREADS_ITEMS_H_INCLUDED_ */
