/*
 * libFuzzer harness for ngx_http_threads_items.c: the input is a body for
 * each entry point, and an item id.  Beyond the sanitizers it checks the
 * contract: outputs on success are JSON (items an array of objects, each
 * with a valid id of its type), nothing is set on failure, every error
 * renders.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_threads_items.h"
#include "ngx_http_threads_id.h"


static void
must(int ok)
{
    if (!ok) {
        abort();
    }
}


static void
check_items(const char *s)
{
    size_t       i;
    json_t      *j, *el, *id, *type;
    const char  *prefix;

    if (s == NULL) {
        return;
    }

    j = json_loads(s, 0, NULL);
    must(j != NULL && json_is_array(j));

    json_array_foreach(j, i, el) {
        id = json_object_get(el, "id");
        type = json_object_get(el, "type");
        must(json_is_string(id) && json_is_string(type));
        prefix = thr_item_prefix(json_string_value(type));
        must(prefix != NULL);
        must(thr_id_is_valid(json_string_value(id),
                             json_string_length(id), prefix));
    }

    json_decref(j);
}


static void
run(int (*fn)(const char *, size_t, thr_conv_req_t *, thr_error_t *),
    const char *body, size_t len)
{
    int             rc;
    char           *e;
    json_t         *j;
    thr_error_t     err;
    thr_conv_req_t  req;

    rc = fn(body, len, &req, &err);

    if (rc == THR_OK) {
        if (req.metadata) {
            j = json_loads(req.metadata, 0, NULL);
            must(j != NULL && json_is_object(j));
            json_decref(j);
        }

        check_items(req.items);
        thr_conv_req_free(&req);
        return;
    }

    must(req.metadata == NULL && req.items == NULL);

    if (rc == THR_INVALID) {
        e = thr_error_json(&err);
        must(e != NULL);
        free(e);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char  *body = (const char *) data;

    run(thr_items_conversation_create, body, size);
    run(thr_items_conversation_update, body, size);
    run(thr_items_create, body, size);

    (void) thr_item_id_is_valid(body, size);

    return 0;
}
