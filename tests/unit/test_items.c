/*
 * Unit tests of ngx_http_threads_items.c: normalized items, ids, and the
 * error of each refusal.
 */

#define _GNU_SOURCE

#include <jansson.h>

#include "ngx_http_threads_items.h"
#include "ngx_http_threads_id.h"
#include "unit.h"


/* the items of a create, with each id replaced by its prefix */
static char *
items_of(const char *body, int *rc, thr_error_t *err)
{
    char            *s, *d;
    size_t           i, n;
    json_free_t      jfree;
    json_t          *j, *el, *id;
    thr_conv_req_t   req;

    *rc = thr_items_conversation_create(body, strlen(body), &req, err);
    if (*rc != THR_OK) {
        return NULL;
    }

    j = json_loads(req.items, 0, NULL);

    json_array_foreach(j, i, el) {
        id = json_object_get(el, "id");
        n = strcspn(json_string_value(id), "_") + 1;
        check(thr_item_id_is_valid(json_string_value(id),
                                   json_string_length(id)), __LINE__,
              "an item id");
        json_object_set_new(el, "id",
                            json_stringn(json_string_value(id), n));
    }

    /* jansson's text comes from json.c's allocator: a copy from malloc */
    d = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    s = strdup(d);
    json_get_alloc_funcs(NULL, &jfree);
    jfree(d);
    json_decref(j);
    thr_conv_req_free(&req);

    return s;
}


#define OK(body, want)                                                        \
    do {                                                                      \
        int rc_; thr_error_t e_; char *s_ = items_of(body, &rc_, &e_);         \
        check(rc_ == THR_OK, __LINE__, "accepted: " body);                    \
        check_str(__LINE__, body, s_, want);                                  \
        free(s_);                                                             \
    } while (0)

#define BAD(body, c_, p_)                                                \
    do {                                                                      \
        int rc_; thr_error_t e_; char *s_ = items_of(body, &rc_, &e_);         \
        check(rc_ == THR_INVALID && e_.status == 400, __LINE__,               \
              "refused: " body);                                              \
        if (rc_ == THR_INVALID) {                                             \
            check_str(__LINE__, "code of " body, e_.code, c_);              \
            check_str(__LINE__, "param of " body, e_.param, p_);           \
        }                                                                     \
        free(s_);                                                             \
    } while (0)


int
main(void)
{
    int             rc;
    thr_error_t     err;
    thr_conv_req_t  req;

    (void) fmt;
    (void) rep;

    OK("{}", "[]");
    OK("{\"items\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
       "[{\"content\":[{\"text\":\"Hi\",\"type\":\"input_text\"}],"
       "\"id\":\"msg_\",\"role\":\"user\",\"status\":\"completed\","
       "\"type\":\"message\"}]");
    OK("{\"items\":[{\"role\":\"assistant\",\"content\":\"Hi\","
       "\"phase\":\"commentary\",\"id\":\"msg_given\"}]}",
       "[{\"content\":[{\"annotations\":[],\"logprobs\":[],\"text\":\"Hi\","
       "\"type\":\"output_text\"}],\"id\":\"msg_\",\"phase\":\"commentary\","
       "\"role\":\"assistant\",\"status\":\"completed\",\"type\":\"message\"}]");
    OK("{\"items\":[{\"type\":\"function_call\",\"call_id\":\"c\","
       "\"name\":\"f\",\"arguments\":\"{}\",\"status\":\"in_progress\"}]}",
       "[{\"arguments\":\"{}\",\"call_id\":\"c\",\"id\":\"fc_\",\"name\":\"f\","
       "\"status\":\"in_progress\",\"type\":\"function_call\"}]");
    OK("{\"items\":[{\"type\":\"function_call_output\",\"call_id\":\"c\","
       "\"output\":[{\"type\":\"input_image\",\"file_id\":\"f\"}]}]}",
       "[{\"call_id\":\"c\",\"id\":\"fco_\",\"output\":[{\"detail\":\"auto\","
       "\"file_id\":\"f\",\"image_url\":null,\"type\":\"input_image\"}],"
       "\"status\":\"completed\",\"type\":\"function_call_output\"}]");
    OK("{\"items\":[{\"type\":\"web_search_call\",\"action\":{\"q\":1}}]}",
       "[{\"action\":{\"q\":1},\"id\":\"ws_\",\"status\":\"completed\","
       "\"type\":\"web_search_call\"}]");
    OK("{\"items\":[{\"type\":\"reasoning\",\"summary\":[]}]}",
       "[{\"id\":\"rs_\",\"summary\":[],\"type\":\"reasoning\"}]");

    BAD("{\"items\":[{\"type\":\"item_reference\",\"id\":\"x\"}]}",
        "invalid_value", "items[0].type");
    BAD("{\"items\":[{\"role\":\"user\",\"content\":\"x\",\"x\":1}]}",
        "unknown_parameter", "items[0].x");
    BAD("{\"items\":[{\"role\":\"user\",\"content\":[{\"type\":\"refusal\","
        "\"refusal\":\"r\"}]}]}", "invalid_value", "items[0].content[0].type");
    BAD("{\"items\":[{\"type\":\"function_call\",\"name\":\"f\","
        "\"arguments\":\"\"}]}", "missing_required_parameter",
        "items[0].call_id");
    BAD("{\"items\":[{\"type\":\"function_call_output\",\"call_id\":\"\","
        "\"output\":\"\"}]}", "string_below_min_length", "items[0].call_id");
    BAD("{\"items\":[{\"type\":\"mcp_call\",\"foo\":1}]}",
        "unknown_parameter", "items[0].foo");
    BAD("{\"metadata\":[]}", "invalid_type", "metadata");
    BAD("{\"items\":{}}", "invalid_type", "items");

    rc = thr_items_conversation_update("{}", 2, &req, &err);
    check(rc == THR_INVALID, __LINE__, "update needs metadata");
    check_str(__LINE__, "its param", err.param, "metadata");

    rc = thr_items_conversation_update("{\"metadata\":null}", 17, &req, &err);
    check(rc == THR_OK, __LINE__, "null metadata resets");
    check_str(__LINE__, "to {}", req.metadata, "{}");
    thr_conv_req_free(&req);

    rc = thr_items_create("{\"items\":[]}", 12, &req, &err);
    check(rc == THR_INVALID, __LINE__, "no items to add");
    check_str(__LINE__, "empty", err.code, "empty_array");

    rc = thr_items_create("{\"items\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                          41, &req, &err);
    check(rc == THR_OK && req.nitems == 1 && req.metadata == NULL, __LINE__,
          "one item added");
    thr_conv_req_free(&req);

    check(thr_item_id_is_valid("fco_abcdefghijklmnopqrstuvwx", 28), __LINE__,
          "an output's id");
    check(!thr_item_id_is_valid("thread_abcdefghijklmnopqrstuvwx", 31),
          __LINE__, "a thread id is no item id");
    check(!thr_item_id_is_valid("msg_short", 9), __LINE__, "too short");
    check_str(__LINE__, "prefix", thr_item_prefix("mcp_call"), "mcp_");
    check(thr_item_prefix("nope") == NULL, __LINE__, "no prefix");

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
