/*
 * libFuzzer harness for ngx_http_threads_json.c: the input is a request
 * body for each entry point, and an id echoed into an error.  Beyond the
 * sanitizers it checks the contract: outputs on success are JSON, nothing
 * is set on failure, and every error renders.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_threads_json.h"


static void
must(int ok)
{
    if (!ok) {
        abort();
    }
}


/* NULL, or JSON text of the given type */

static void
check_text(const char *s, json_type type)
{
    json_t  *j;

    if (s == NULL) {
        return;
    }

    j = json_loads(s, 0, NULL);
    must(j != NULL && json_typeof(j) == type);
    json_decref(j);
}


static void
check_error(const thr_error_t *err, unsigned status)
{
    char    *s;
    json_t  *j, *e;

    must(err->status == status);

    s = thr_error_json(err);
    must(s != NULL);

    j = json_loads(s, 0, NULL);
    e = json_object_get(j, "error");
    must(json_object_size(e) == 4
         && json_is_string(json_object_get(e, "message"))
         && json_is_string(json_object_get(e, "type")));
    json_decref(j);
    free(s);
}


static void
check_thread(int rc, thr_thread_req_t *req, thr_error_t *err, int create)
{
    json_t  *j;

    if (rc == THR_INVALID) {
        must(req->metadata == NULL && req->tool_resources == NULL
             && req->messages == NULL);
        check_error(err, 400);
        return;
    }

    must(rc == THR_OK);
    must(!create || (req->metadata && req->tool_resources && req->messages));
    must(create || req->messages == NULL);

    check_text(req->metadata, JSON_OBJECT);
    check_text(req->tool_resources, JSON_OBJECT);

    if (req->messages != NULL) {
        j = json_loads(req->messages, 0, NULL);
        must(json_is_array(j) && json_array_size(j) == req->nmessages
             && req->nmessages <= THR_MAX_MESSAGES);
        json_decref(j);
    }

    thr_thread_req_free(req);
}


static void
check_out(int rc, char *out, thr_error_t *err)
{
    if (rc == THR_INVALID) {
        must(out == NULL);
        check_error(err, 400);
        return;
    }

    must(rc == THR_OK);
    check_text(out, JSON_OBJECT);
    free(out);
}


int LLVMFuzzerInitialize(int *argc, char ***argv);


/* the allocator jansson uses here, before any of it is used */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    thr_json_init();

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc;
    char              *out, *id;
    const char        *body;
    thr_error_t        err;
    thr_thread_req_t   req;

    body = (const char *) data;

    rc = thr_json_thread_create(body, size, &req, &err);
    check_thread(rc, &req, &err, 1);

    rc = thr_json_thread_modify(body, size, &req, &err);
    check_thread(rc, &req, &err, 0);

    rc = thr_json_message_create(body, size, &out, &err);
    must(rc != THR_OK || out != NULL);
    check_out(rc, out, &err);

    rc = thr_json_message_modify(body, size, &out, &err);
    check_out(rc, out, &err);

    /* the bytes as an id from a path: any bytes, up to the first NUL */
    id = malloc(size + 1);
    must(id != NULL);
    memcpy(id, data, size);
    id[size] = '\0';

    thr_error_set(&err, 404, "invalid_request_error", NULL, id,
                  "No thread found with id '%s'.", id);
    check_error(&err, 404);

    thr_error_set(&err, 400, "invalid_request_error", "invalid_value",
                  "thread_id", "Invalid 'thread_id': '%s'. Expected an ID "
                  "that begins with 'thread'.", id);
    check_error(&err, 400);

    free(id);

    return 0;
}
