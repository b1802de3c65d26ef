/*
 * Conversation bodies and items.  See ngx_http_threads_items.h.
 *
 * Messages, function calls and function call outputs are checked field by
 * field against OpenAI's schemas (EasyInputMessage, InputMessage,
 * OutputMessage, FunctionToolCall, FunctionCallOutputItemParam) and
 * stored as OpenAI returns them (Message, FunctionToolCallResource,
 * FunctionToolCallOutputResource): a string content becomes one
 * input_text part (output_text for the assistant), status defaults to
 * "completed", and every item gets a new id of its type's prefix.  Every
 * other item type of the ConversationItem union is checked for its type,
 * its field names and its size, and stored as given (with its new id).
 *
 * The checks have json.c's shape (see ngx_http_threads_json.h); errors are
 * deterministic: unknown keys first, in document order, then the known
 * members in schema order.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ngx_http_threads_items.h"
#include "ngx_http_threads_id.h"
#include "ngx_http_threads_utf8.h"


typedef struct {
    const char         *type;
    const char         *prefix;
    const char *const  *keys;       /* NULL: checked by its own function */
    int                 status;     /* has a status: "completed" if none */
} thr_item_type_t;


static int thr_conv(const char *body, size_t len, int kind,
    thr_conv_req_t *req, thr_error_t *err);
static int thr_items(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_item(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_item_message(thr_ctx_t *ctx, json_t *v, json_t *res);
static int thr_item_function_call(thr_ctx_t *ctx, json_t *v, json_t *res);
static int thr_item_function_output(thr_ctx_t *ctx, json_t *v, json_t *res);
static int thr_item_other(thr_ctx_t *ctx, json_t *v,
    const thr_item_type_t *t, json_t *res);
static int thr_msg_part(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_input_part(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_part_dispatch(thr_ctx_t *ctx, json_t *v, const thr_enum_t *e,
    json_t **out);
static int thr_annotation(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_logprob(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_top_logprob(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_logprob_fields(thr_ctx_t *ctx, json_t *v);
static int thr_caller(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_image_ref(thr_ctx_t *ctx, json_t *v, json_t **out);
static int thr_field_string(thr_ctx_t *ctx, json_t *obj, const char *key,
    size_t min, size_t max, int need, json_t *res);
static int thr_field_enum(thr_ctx_t *ctx, json_t *obj, const char *key,
    const thr_enum_t *e, const char *dflt, json_t *res);
static int thr_field_check(thr_ctx_t *ctx, json_t *obj, const char *key,
    thr_check_pt check, int need, json_t *res);
static int thr_field_int(thr_ctx_t *ctx, json_t *obj, const char *key,
    int need, json_t *res);
static int thr_field_namespace(thr_ctx_t *ctx, json_t *obj, json_t *res);
static int thr_string_range(thr_ctx_t *ctx, json_t *v, size_t min,
    size_t max);
static int thr_set(json_t *res, const char *key, json_t *v);
static json_t *thr_opt(json_t *obj, const char *key);
static int thr_empty(thr_ctx_t *ctx);


#define THR_CONV_CREATE  0
#define THR_CONV_UPDATE  1
#define THR_CONV_ITEMS   2


static const thr_enum_t  thr_roles = {
    { "user", "assistant", "system", "developer", NULL },
    "'user', 'assistant', 'system', and 'developer'"
};

static const thr_enum_t  thr_statuses = {
    { "in_progress", "completed", "incomplete", NULL },
    "'in_progress', 'completed', and 'incomplete'"
};

static const thr_enum_t  thr_phases = {
    { "commentary", "final_answer", NULL },
    "'commentary' and 'final_answer'"
};

static const thr_enum_t  thr_input_types = {
    { "input_text", "input_image", "input_file", NULL },
    "'input_text', 'input_image', and 'input_file'"
};

static const thr_enum_t  thr_output_types = {
    { "output_text", "refusal", NULL },
    "'output_text' and 'refusal'"
};

static const thr_enum_t  thr_image_details = {
    { "low", "high", "auto", "original", NULL },
    "'low', 'high', 'auto', and 'original'"
};

static const thr_enum_t  thr_file_details = {
    { "auto", "low", "high", NULL },
    "'auto', 'low', and 'high'"
};

static const thr_enum_t  thr_annotation_types = {
    { "file_citation", "url_citation", "container_file_citation",
      "file_path", NULL },
    "'file_citation', 'url_citation', 'container_file_citation', and "
    "'file_path'"
};

static const thr_enum_t  thr_caller_types = {
    { "direct", "program", NULL },
    "'direct' and 'program'"
};

static const thr_enum_t  thr_cache_modes = {
    { "explicit", NULL },
    "'explicit'"
};


/* the field names of each other item type: its schemas' properties */

static const char *const  thr_k_file_search[] = {
    "type", "id", "status", "queries", "results", NULL };
static const char *const  thr_k_web_search[] = {
    "type", "id", "status", "action", NULL };
static const char *const  thr_k_image_gen[] = {
    "type", "id", "status", "result", NULL };
static const char *const  thr_k_computer[] = {
    "type", "id", "call_id", "action", "actions", "pending_safety_checks",
    "status", NULL };
static const char *const  thr_k_computer_out[] = {
    "type", "id", "call_id", "acknowledged_safety_checks", "output",
    "status", NULL };
static const char *const  thr_k_tool_search[] = {
    "type", "id", "call_id", "execution", "arguments", "status", NULL };
static const char *const  thr_k_tool_search_out[] = {
    "type", "id", "call_id", "execution", "tools", "status", NULL };
static const char *const  thr_k_additional_tools[] = {
    "type", "id", "role", "tools", NULL };
static const char *const  thr_k_reasoning[] = {
    "type", "id", "encrypted_content", "summary", "content", "status",
    NULL };
static const char *const  thr_k_program[] = {
    "type", "id", "call_id", "code", "fingerprint", NULL };
static const char *const  thr_k_program_out[] = {
    "type", "id", "call_id", "result", "status", NULL };
static const char *const  thr_k_compaction[] = {
    "type", "id", "encrypted_content", NULL };
static const char *const  thr_k_code_interpreter[] = {
    "type", "id", "status", "container_id", "code", "outputs", NULL };
static const char *const  thr_k_local_shell[] = {
    "type", "id", "call_id", "action", "status", NULL };
static const char *const  thr_k_local_shell_out[] = {
    "type", "id", "call_id", "output", "status", NULL };
static const char *const  thr_k_shell[] = {
    "type", "id", "call_id", "caller", "action", "status", "environment",
    NULL };
static const char *const  thr_k_shell_out[] = {
    "type", "id", "call_id", "caller", "status", "output",
    "max_output_length", NULL };
static const char *const  thr_k_patch[] = {
    "type", "id", "call_id", "caller", "status", "operation", NULL };
static const char *const  thr_k_patch_out[] = {
    "type", "id", "call_id", "caller", "status", "output", NULL };
static const char *const  thr_k_mcp_list[] = {
    "type", "id", "server_label", "tools", "error", NULL };
static const char *const  thr_k_mcp_request[] = {
    "type", "id", "server_label", "name", "arguments", NULL };
static const char *const  thr_k_mcp_response[] = {
    "type", "id", "approval_request_id", "approve", "reason", NULL };
static const char *const  thr_k_mcp_call[] = {
    "type", "id", "server_label", "name", "arguments", "output", "error",
    "status", "approval_request_id", NULL };
static const char *const  thr_k_custom[] = {
    "type", "id", "call_id", "caller", "namespace", "name", "input", NULL };
static const char *const  thr_k_custom_out[] = {
    "type", "id", "call_id", "caller", "output", NULL };


/* the ConversationItem union: each type and the prefix of its ids */
static const thr_item_type_t  thr_item_types[] = {
    { "message", "msg_", NULL, 1 },
    { "function_call", "fc_", NULL, 1 },
    { "function_call_output", "fco_", NULL, 1 },
    { "file_search_call", "fs_", thr_k_file_search, 1 },
    { "web_search_call", "ws_", thr_k_web_search, 1 },
    { "image_generation_call", "ig_", thr_k_image_gen, 1 },
    { "computer_call", "cu_", thr_k_computer, 1 },
    { "computer_call_output", "cuo_", thr_k_computer_out, 1 },
    { "tool_search_call", "tsc_", thr_k_tool_search, 1 },
    { "tool_search_output", "tso_", thr_k_tool_search_out, 1 },
    { "additional_tools", "at_", thr_k_additional_tools, 0 },
    { "reasoning", "rs_", thr_k_reasoning, 0 },
    { "program", "prg_", thr_k_program, 0 },
    { "program_output", "prgo_", thr_k_program_out, 1 },
    { "compaction", "cmp_", thr_k_compaction, 0 },
    { "code_interpreter_call", "ci_", thr_k_code_interpreter, 1 },
    { "local_shell_call", "lsh_", thr_k_local_shell, 1 },
    { "local_shell_call_output", "lsho_", thr_k_local_shell_out, 0 },
    { "shell_call", "sh_", thr_k_shell, 1 },
    { "shell_call_output", "sho_", thr_k_shell_out, 1 },
    { "apply_patch_call", "apc_", thr_k_patch, 1 },
    { "apply_patch_call_output", "apco_", thr_k_patch_out, 1 },
    { "mcp_list_tools", "mcpl_", thr_k_mcp_list, 0 },
    { "mcp_approval_request", "mcpr_", thr_k_mcp_request, 0 },
    { "mcp_approval_response", "mcpa_", thr_k_mcp_response, 0 },
    { "mcp_call", "mcp_", thr_k_mcp_call, 0 },
    { "custom_tool_call", "ctc_", thr_k_custom, 0 },
    { "custom_tool_call_output", "ctco_", thr_k_custom_out, 0 },
    { NULL, NULL, NULL, 0 }
};

#define THR_ITEM_TYPE_LIST                                                    \
    "'message', 'function_call', 'function_call_output', "                    \
    "'file_search_call', 'web_search_call', 'image_generation_call', "        \
    "'computer_call', 'computer_call_output', 'tool_search_call', "           \
    "'tool_search_output', 'additional_tools', 'reasoning', 'program', "      \
    "'program_output', 'compaction', 'code_interpreter_call', "               \
    "'local_shell_call', 'local_shell_call_output', 'shell_call', "           \
    "'shell_call_output', 'apply_patch_call', 'apply_patch_call_output', "    \
    "'mcp_list_tools', 'mcp_approval_request', 'mcp_approval_response', "     \
    "'mcp_call', 'custom_tool_call', and 'custom_tool_call_output'"


/* public entry points */

int
thr_items_conversation_create(const char *body, size_t len,
    thr_conv_req_t *req, thr_error_t *err)
{
    return thr_conv(body, len, THR_CONV_CREATE, req, err);
}


int
thr_items_conversation_update(const char *body, size_t len,
    thr_conv_req_t *req, thr_error_t *err)
{
    return thr_conv(body, len, THR_CONV_UPDATE, req, err);
}


int
thr_items_create(const char *body, size_t len, thr_conv_req_t *req,
    thr_error_t *err)
{
    return thr_conv(body, len, THR_CONV_ITEMS, req, err);
}


void
thr_conv_req_free(thr_conv_req_t *req)
{
    free(req->metadata);
    free(req->items);

    req->metadata = NULL;
    req->items = NULL;
    req->nitems = 0;
}


const char *
thr_item_prefix(const char *type)
{
    const thr_item_type_t  *t;

    for (t = thr_item_types; t->type; t++) {
        if (strcmp(t->type, type) == 0) {
            return t->prefix;
        }
    }

    return NULL;
}


int
thr_item_id_is_valid(const char *s, size_t len)
{
    const thr_item_type_t  *t;

    for (t = thr_item_types; t->type; t++) {
        if (thr_id_is_valid(s, len, t->prefix)) {
            return 1;
        }
    }

    return 0;
}


/* bodies */

static int
thr_conv(const char *body, size_t len, int kind, thr_conv_req_t *req,
    thr_error_t *err)
{
    static const char *const  create_keys[] = { "metadata", "items", NULL };
    static const char *const  update_keys[] = { "metadata", NULL };
    static const char *const  items_keys[] = { "items", NULL };

    int         rc;
    json_t     *root, *md, *items;
    thr_ctx_t   ctx;

    req->metadata = NULL;
    req->items = NULL;
    req->nitems = 0;

    rc = thr_load(body, len, &root, err);
    if (rc != THR_OK) {
        return rc;
    }

    ctx.err = err;
    ctx.len = 0;
    ctx.path[0] = '\0';

    md = NULL;
    items = NULL;

    rc = thr_check_keys(&ctx, root, kind == THR_CONV_CREATE ? create_keys
                                    : kind == THR_CONV_UPDATE ? update_keys
                                    : items_keys);

    if (rc == THR_OK && kind != THR_CONV_ITEMS) {
        if (kind == THR_CONV_UPDATE
            && json_object_get(root, "metadata") == NULL)
        {
            thr_path_key(&ctx, "metadata");
            rc = thr_missing(&ctx);

        } else {
            rc = thr_member(&ctx, root, "metadata", thr_metadata, &md);
        }
    }

    if (rc == THR_OK && kind != THR_CONV_UPDATE) {
        if (kind == THR_CONV_ITEMS) {
            items = json_object_get(root, "items");
            thr_path_key(&ctx, "items");

            if (items == NULL) {
                rc = thr_missing(&ctx);

            } else if (json_is_array(items) && json_array_size(items) == 0) {
                rc = thr_empty(&ctx);

            } else if (!json_is_array(items)) {
                rc = thr_bad_type(&ctx, items, "an array");
            }

            items = NULL;
            ctx.len = 0;
            ctx.path[0] = '\0';
        }

        if (rc == THR_OK) {
            rc = thr_member(&ctx, root, "items", thr_items, &items);
        }
    }

    if (rc == THR_OK) {
        if (thr_dump(md, &req->metadata) != THR_OK
            || thr_dump(items, &req->items) != THR_OK)
        {
            thr_conv_req_free(req);
            rc = THR_NOMEM;

        } else {
            req->nitems = items ? json_array_size(items) : 0;
        }
    }

    json_decref(md);
    json_decref(items);
    json_decref(root);

    return rc;
}


static int
thr_items(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_list(ctx, v, THR_MAX_ITEMS, thr_item, out);
}


/* One input item: its type's checks, then its id and its size. */

static int
thr_item(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int                     rc;
    char                   *text = NULL;
    char                    id[sizeof("lsho_") + THR_ID_CHARS];
    size_t                  mark, n;
    json_t                 *type, *res, *given;
    const char             *name;
    const thr_item_type_t  *t;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    type = json_object_get(v, "type");

    /* EasyInputMessage: the type may be left out */
    name = "message";

    if (type != NULL) {
        mark = thr_path_key(ctx, "type");

        if (!json_is_string(type)) {
            return thr_bad_type(ctx, type, "a string");
        }

        name = json_string_value(type);

        for (t = thr_item_types; t->type; t++) {
            if (strcmp(t->type, name) == 0) {
                break;
            }
        }

        if (t->type == NULL) {
            return thr_fail(ctx, "invalid_value",
                            "Invalid value: '%s'. Supported values are: %s.",
                            name, THR_ITEM_TYPE_LIST);
        }

        thr_path_pop(ctx, mark);

    } else {
        t = &thr_item_types[0];
    }

    /* an id given (an item sent back, say) must be a string; it is
     * replaced by one made here */
    given = thr_opt(v, "id");

    if (given != NULL) {
        mark = thr_path_key(ctx, "id");

        rc = thr_need_string(ctx, given, THR_ITEM_MAX_ID);
        if (rc != THR_OK) {
            return rc;
        }

        thr_path_pop(ctx, mark);
    }

    res = json_object();
    if (res == NULL) {
        return THR_NOMEM;
    }

    /* no randomness is a server fault, answered as 500 like ENOMEM */
    if (thr_id_make(id, t->prefix) != 0
        || thr_set(res, "id", json_string(id)) != THR_OK
        || thr_set(res, "type", json_string(t->type)) != THR_OK)
    {
        json_decref(res);
        return THR_NOMEM;
    }

    if (t == &thr_item_types[0]) {
        rc = thr_item_message(ctx, v, res);

    } else if (t == &thr_item_types[1]) {
        rc = thr_item_function_call(ctx, v, res);

    } else if (t == &thr_item_types[2]) {
        rc = thr_item_function_output(ctx, v, res);

    } else {
        rc = thr_item_other(ctx, v, t, res);

        if (rc == THR_OK) {
            rc = thr_dump(res, &text);
        }

        if (rc == THR_OK) {
            n = strlen(text);
            free(text);

            if (n > THR_ITEM_MAX_BYTES) {
                rc = thr_fail(ctx, "item_too_large",
                              "Invalid '%s': item too large. Expected an "
                              "item of at most %d bytes of JSON, but got "
                              "%zu bytes instead.", ctx->path,
                              THR_ITEM_MAX_BYTES, n);
            }
        }
    }

    if (rc != THR_OK) {
        json_decref(res);
        return rc;
    }

    *out = res;

    return THR_OK;
}


/* {"id","type":"message","status","role","content":[..],"phase"?} */

static int
thr_item_message(thr_ctx_t *ctx, json_t *v, json_t *res)
{
    static const char *const  keys[] = {
        "type", "id", "role", "content", "status", "phase", NULL
    };

    int          rc, assistant;
    size_t       mark;
    json_t      *role, *content, *parts, *part;
    const char  *text_type;

    rc = thr_check_keys(ctx, v, keys);
    if (rc != THR_OK) {
        return rc;
    }

    rc = thr_field_enum(ctx, v, "status", &thr_statuses, "completed", res);
    if (rc != THR_OK) {
        return rc;
    }

    mark = thr_path_key(ctx, "role");
    role = json_object_get(v, "role");

    if (role == NULL) {
        return thr_missing(ctx);
    }

    rc = thr_enum(ctx, role, &thr_roles, &part);
    if (rc != THR_OK) {
        return rc;
    }

    json_decref(part);
    thr_path_pop(ctx, mark);

    if (thr_set(res, "role", json_incref(role)) != THR_OK) {
        return THR_NOMEM;
    }

    assistant = (strcmp(json_string_value(role), "assistant") == 0);

    mark = thr_path_key(ctx, "content");
    content = json_object_get(v, "content");

    if (content == NULL) {
        return thr_missing(ctx);
    }

    if (json_is_string(content)) {
        rc = thr_string_range(ctx, content, 0, THR_ITEM_MAX_TEXT);
        if (rc != THR_OK) {
            return rc;
        }

        text_type = assistant ? "output_text" : "input_text";

        part = json_pack("{s:s, s:O}", "type", text_type, "text", content);

        if (part != NULL && assistant
            && (thr_set(part, "annotations", json_array()) != THR_OK
                || thr_set(part, "logprobs", json_array()) != THR_OK))
        {
            json_decref(part);
            part = NULL;
        }

        parts = json_array();

        if (part == NULL || parts == NULL
            || json_array_append_new(parts, part) != 0)
        {
            json_decref(parts);
            return THR_NOMEM;
        }

    } else if (json_is_array(content)) {

        if (json_array_size(content) == 0) {
            return thr_empty(ctx);
        }

        if (json_array_size(content) > THR_MAX_CONTENT_PARTS) {
            return thr_too_many(ctx, THR_MAX_CONTENT_PARTS,
                                json_array_size(content));
        }

        rc = thr_map(ctx, content, assistant ? thr_msg_part : thr_input_part,
                     &parts);
        if (rc != THR_OK) {
            return rc;
        }

    } else {
        return thr_bad_type(ctx, content, "one of a string or an array");
    }

    thr_path_pop(ctx, mark);

    if (thr_set(res, "content", parts) != THR_OK) {
        return THR_NOMEM;
    }

    return thr_field_enum(ctx, v, "phase", &thr_phases, NULL, res);
}


/* {"id","type":"function_call","status","call_id","name","arguments",..} */

static int
thr_item_function_call(thr_ctx_t *ctx, json_t *v, json_t *res)
{
    static const char *const  keys[] = {
        "type", "id", "call_id", "name", "arguments", "namespace", "caller",
        "status", NULL
    };

    int  rc;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_field_enum(ctx, v, "status", &thr_statuses, "completed",
                            res);
    }

    if (rc == THR_OK) {
        rc = thr_field_string(ctx, v, "call_id", 1, THR_ITEM_MAX_CALL_ID, 1,
                              res);
    }

    if (rc == THR_OK) {
        rc = thr_field_string(ctx, v, "name", 1, THR_ITEM_MAX_NAME, 1, res);
    }

    if (rc == THR_OK) {
        rc = thr_field_string(ctx, v, "arguments", 0, THR_ITEM_MAX_TEXT, 1,
                              res);
    }

    if (rc == THR_OK) {
        rc = thr_field_namespace(ctx, v, res);
    }

    if (rc == THR_OK) {
        rc = thr_field_check(ctx, v, "caller", thr_caller, 0, res);
    }

    return rc;
}


/* {"id","type":"function_call_output","status","call_id","output",..} */

static int
thr_item_function_output(thr_ctx_t *ctx, json_t *v, json_t *res)
{
    static const char *const  keys[] = {
        "type", "id", "call_id", "output", "name", "namespace", "caller",
        "status", NULL
    };

    int      rc;
    size_t   mark;
    json_t  *output, *parts;

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_field_enum(ctx, v, "status", &thr_statuses, "completed",
                            res);
    }

    if (rc == THR_OK) {
        rc = thr_field_string(ctx, v, "call_id", 1, THR_ITEM_MAX_CALL_ID, 1,
                              res);
    }

    if (rc != THR_OK) {
        return rc;
    }

    mark = thr_path_key(ctx, "output");
    output = json_object_get(v, "output");

    if (output == NULL) {
        return thr_missing(ctx);
    }

    if (json_is_string(output)) {
        rc = thr_string_range(ctx, output, 0, THR_ITEM_MAX_TEXT);
        if (rc != THR_OK) {
            return rc;
        }

        parts = json_incref(output);

    } else if (json_is_array(output)) {

        if (json_array_size(output) > THR_MAX_CONTENT_PARTS) {
            return thr_too_many(ctx, THR_MAX_CONTENT_PARTS,
                                json_array_size(output));
        }

        rc = thr_map(ctx, output, thr_input_part, &parts);
        if (rc != THR_OK) {
            return rc;
        }

    } else {
        return thr_bad_type(ctx, output, "one of a string or an array");
    }

    thr_path_pop(ctx, mark);

    if (thr_set(res, "output", parts) != THR_OK) {
        return THR_NOMEM;
    }

    rc = thr_field_string(ctx, v, "name", 1, THR_ITEM_MAX_NAME, 0, res);

    if (rc == THR_OK) {
        rc = thr_field_namespace(ctx, v, res);
    }

    if (rc == THR_OK) {
        rc = thr_field_check(ctx, v, "caller", thr_caller, 0, res);
    }

    return rc;
}


/* Another type: its field names; stored as given, with its new id. */

static int
thr_item_other(thr_ctx_t *ctx, json_t *v, const thr_item_type_t *t,
    json_t *res)
{
    int          rc;
    json_t      *val;
    const char  *key;

    rc = thr_check_keys(ctx, v, t->keys);
    if (rc != THR_OK) {
        return rc;
    }

    json_object_foreach(v, key, val) {
        if (strcmp(key, "id") == 0 || strcmp(key, "type") == 0) {
            continue;
        }

        if (strcmp(key, "status") == 0 && json_is_null(val)) {
            continue;
        }

        if (thr_set(res, key, json_incref(val)) != THR_OK) {
            return THR_NOMEM;
        }
    }

    if (t->status && json_object_get(res, "status") == NULL) {
        if (thr_set(res, "status", json_string("completed")) != THR_OK) {
            return THR_NOMEM;
        }
    }

    if (t->status) {
        return thr_field_enum(ctx, res, "status", &thr_statuses, NULL, res);
    }

    return THR_OK;
}


/* content parts */

static int
thr_msg_part(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_part_dispatch(ctx, v, &thr_output_types, out);
}


static int
thr_input_part(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    return thr_part_dispatch(ctx, v, &thr_input_types, out);
}


static int
thr_part_dispatch(thr_ctx_t *ctx, json_t *v, const thr_enum_t *e,
    json_t **out)
{
    static const char *const  text_keys[] = {
        "type", "text", "prompt_cache_breakpoint", NULL
    };
    static const char *const  output_keys[] = {
        "type", "text", "annotations", "logprobs", NULL
    };
    static const char *const  refusal_keys[] = { "type", "refusal", NULL };
    static const char *const  image_keys[] = {
        "type", "image_url", "file_id", "detail", "prompt_cache_breakpoint",
        NULL
    };
    static const char *const  file_keys[] = {
        "type", "file_id", "filename", "file_data", "file_url", "detail",
        "prompt_cache_breakpoint", NULL
    };
    static const char *const  cache_keys[] = { "mode", NULL };

    int          rc;
    size_t       mark;
    json_t      *type, *res, *cache, *m;
    const char  *name;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    mark = thr_path_key(ctx, "type");
    type = json_object_get(v, "type");

    if (type == NULL) {
        return thr_missing(ctx);
    }

    rc = thr_enum(ctx, type, e, &m);
    if (rc != THR_OK) {
        return rc;
    }

    json_decref(m);
    thr_path_pop(ctx, mark);

    name = json_string_value(type);

    res = json_object();
    if (res == NULL || thr_set(res, "type", json_incref(type)) != THR_OK) {
        json_decref(res);
        return THR_NOMEM;
    }

    if (strcmp(name, "input_text") == 0) {
        rc = thr_check_keys(ctx, v, text_keys);

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "text", 0, THR_ITEM_MAX_TEXT, 1,
                                  res);
        }

    } else if (strcmp(name, "output_text") == 0) {
        rc = thr_check_keys(ctx, v, output_keys);

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "text", 0, THR_ITEM_MAX_TEXT, 1,
                                  res);
        }

        if (rc == THR_OK) {
            m = NULL;
            mark = thr_path_key(ctx, "annotations");
            rc = thr_list(ctx, json_object_get(v, "annotations"),
                          THR_ITEM_MAX_ANNOTATIONS, thr_annotation, &m);

            if (rc == THR_OK) {
                thr_path_pop(ctx, mark);
                rc = thr_set(res, "annotations", m);
            }
        }

        if (rc == THR_OK) {
            m = NULL;
            mark = thr_path_key(ctx, "logprobs");
            rc = thr_list(ctx, json_object_get(v, "logprobs"),
                          THR_ITEM_MAX_LOGPROBS, thr_logprob, &m);

            if (rc == THR_OK) {
                thr_path_pop(ctx, mark);
                rc = thr_set(res, "logprobs", m);
            }
        }

    } else if (strcmp(name, "refusal") == 0) {
        rc = thr_check_keys(ctx, v, refusal_keys);

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "refusal", 0, THR_ITEM_MAX_TEXT, 1,
                                  res);
        }

    } else if (strcmp(name, "input_image") == 0) {
        rc = thr_check_keys(ctx, v, image_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "image_url", thr_image_ref, 0, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_id", thr_file_id, 0, res);
        }

        if (rc == THR_OK
            && thr_opt(v, "image_url") == NULL && thr_opt(v, "file_id") == NULL)
        {
            thr_path_key(ctx, "image_url");
            rc = thr_fail(ctx, "missing_required_parameter",
                          "Missing required parameter: '%s': an input_image "
                          "takes an 'image_url' or a 'file_id'.", ctx->path);
        }

        /* OpenAI returns both, one of them null */
        if (rc == THR_OK && json_object_get(res, "image_url") == NULL) {
            rc = thr_set(res, "image_url", json_null());
        }

        if (rc == THR_OK && json_object_get(res, "file_id") == NULL) {
            rc = thr_set(res, "file_id", json_null());
        }

        if (rc == THR_OK) {
            rc = thr_field_enum(ctx, v, "detail", &thr_image_details, "auto",
                                res);
        }

    } else {
        /* input_file */
        rc = thr_check_keys(ctx, v, file_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_id", thr_file_id, 0, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "filename", 1,
                                  THR_ITEM_MAX_FILENAME, 0, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "file_data", 1, THR_ITEM_MAX_TEXT,
                                  0, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_url", thr_url, 0, res);
        }

        if (rc == THR_OK && thr_opt(v, "file_id") == NULL
            && thr_opt(v, "file_data") == NULL
            && thr_opt(v, "file_url") == NULL)
        {
            thr_path_key(ctx, "file_id");
            rc = thr_fail(ctx, "missing_required_parameter",
                          "Missing required parameter: '%s': an input_file "
                          "takes a 'file_id', a 'file_data' or a "
                          "'file_url'.", ctx->path);
        }

        if (rc == THR_OK) {
            rc = thr_field_enum(ctx, v, "detail", &thr_file_details, NULL,
                                res);
        }
    }

    /* {"mode":"explicit"} or null, on input parts */
    cache = thr_opt(v, "prompt_cache_breakpoint");

    if (rc == THR_OK && cache != NULL) {
        mark = thr_path_key(ctx, "prompt_cache_breakpoint");

        if (!json_is_object(cache)) {
            rc = thr_bad_type(ctx, cache, "an object");

        } else {
            rc = thr_check_keys(ctx, cache, cache_keys);
        }

        if (rc == THR_OK) {
            thr_path_key(ctx, "mode");
            m = json_object_get(cache, "mode");
            rc = (m == NULL) ? thr_missing(ctx)
                             : thr_enum(ctx, m, &thr_cache_modes, &m);
        }

        if (rc == THR_OK) {
            json_decref(m);
            thr_path_pop(ctx, mark);
            rc = thr_set(res, "prompt_cache_breakpoint", json_incref(cache));
        }
    }

    if (rc != THR_OK) {
        json_decref(res);
        return rc;
    }

    *out = res;

    return THR_OK;
}


/* an image_url: http(s) as for threads, or a data URL of an image */

static int
thr_image_ref(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    int  rc;

    if (json_is_string(v) && strncasecmp(json_string_value(v), "data:", 5) == 0)
    {
        rc = thr_string_range(ctx, v, 6, THR_ITEM_MAX_TEXT);

        if (rc == THR_OK) {
            *out = json_incref(v);
        }

        return rc;
    }

    return thr_url(ctx, v, out);
}


static int
thr_annotation(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  file_keys[] = {
        "type", "file_id", "index", "filename", NULL
    };
    static const char *const  url_keys[] = {
        "type", "url", "start_index", "end_index", "title", NULL
    };
    static const char *const  container_keys[] = {
        "type", "container_id", "file_id", "start_index", "end_index",
        "filename", NULL
    };
    static const char *const  path_keys[] = {
        "type", "file_id", "index", NULL
    };

    int          rc;
    size_t       mark;
    json_t      *type, *res, *m;
    const char  *name;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    mark = thr_path_key(ctx, "type");
    type = json_object_get(v, "type");

    if (type == NULL) {
        return thr_missing(ctx);
    }

    rc = thr_enum(ctx, type, &thr_annotation_types, &m);
    if (rc != THR_OK) {
        return rc;
    }

    json_decref(m);
    thr_path_pop(ctx, mark);

    name = json_string_value(type);

    res = json_object();
    if (res == NULL || thr_set(res, "type", json_incref(type)) != THR_OK) {
        json_decref(res);
        return THR_NOMEM;
    }

    if (strcmp(name, "file_citation") == 0) {
        rc = thr_check_keys(ctx, v, file_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_id", thr_file_id, 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "index", 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "filename", 0,
                                  THR_ITEM_MAX_FILENAME, 1, res);
        }

    } else if (strcmp(name, "url_citation") == 0) {
        rc = thr_check_keys(ctx, v, url_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "url", thr_url, 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "start_index", 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "end_index", 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "title", 0, THR_ITEM_MAX_FILENAME,
                                  1, res);
        }

    } else if (strcmp(name, "container_file_citation") == 0) {
        rc = thr_check_keys(ctx, v, container_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "container_id", thr_file_id, 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_id", thr_file_id, 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "start_index", 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "end_index", 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "filename", 0,
                                  THR_ITEM_MAX_FILENAME, 1, res);
        }

    } else {
        rc = thr_check_keys(ctx, v, path_keys);

        if (rc == THR_OK) {
            rc = thr_field_check(ctx, v, "file_id", thr_file_id, 1, res);
        }

        if (rc == THR_OK) {
            rc = thr_field_int(ctx, v, "index", 1, res);
        }
    }

    if (rc != THR_OK) {
        json_decref(res);
        return rc;
    }

    *out = res;

    return THR_OK;
}


/* {"token","logprob","bytes","top_logprobs"} */

static int
thr_logprob(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = {
        "token", "logprob", "bytes", "top_logprobs", NULL
    };

    int      rc;
    size_t   mark;
    json_t  *top;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_logprob_fields(ctx, v);
    }

    if (rc != THR_OK) {
        return rc;
    }

    mark = thr_path_key(ctx, "top_logprobs");
    top = json_object_get(v, "top_logprobs");

    if (top == NULL) {
        return thr_missing(ctx);
    }

    rc = thr_list(ctx, top, THR_ITEM_MAX_TOP_LOGPROBS, thr_top_logprob, out);
    if (rc != THR_OK) {
        return rc;
    }

    json_decref(*out);
    thr_path_pop(ctx, mark);

    *out = json_incref(v);

    return THR_OK;
}


static int
thr_top_logprob(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  keys[] = { "token", "logprob", "bytes", NULL };

    int  rc;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    rc = thr_check_keys(ctx, v, keys);

    if (rc == THR_OK) {
        rc = thr_logprob_fields(ctx, v);
    }

    if (rc == THR_OK) {
        *out = json_incref(v);
    }

    return rc;
}


/* token, a string; logprob, a number; bytes, up to 64 integers 0-255 */

static int
thr_logprob_fields(thr_ctx_t *ctx, json_t *v)
{
    int      rc;
    size_t   i, mark, imark;
    json_t  *el, *lp, *bytes;

    mark = thr_path_key(ctx, "token");
    rc = thr_need_string(ctx, json_object_get(v, "token"), THR_ITEM_MAX_NAME);
    if (rc != THR_OK) {
        return rc;
    }

    thr_path_pop(ctx, mark);

    mark = thr_path_key(ctx, "logprob");
    lp = json_object_get(v, "logprob");

    if (lp == NULL) {
        return thr_missing(ctx);
    }

    if (!json_is_number(lp)) {
        return thr_bad_type(ctx, lp, "a number");
    }

    thr_path_pop(ctx, mark);

    mark = thr_path_key(ctx, "bytes");
    bytes = json_object_get(v, "bytes");

    if (bytes == NULL) {
        return thr_missing(ctx);
    }

    if (!json_is_array(bytes)) {
        return thr_bad_type(ctx, bytes, "an array");
    }

    if (json_array_size(bytes) > THR_ITEM_MAX_BYTES_LIST) {
        return thr_too_many(ctx, THR_ITEM_MAX_BYTES_LIST,
                            json_array_size(bytes));
    }

    json_array_foreach(bytes, i, el) {
        imark = thr_path_index(ctx, i);

        if (!json_is_integer(el)) {
            return thr_bad_type(ctx, el, "an integer");
        }

        if (json_integer_value(el) < 0 || json_integer_value(el) > 255) {
            return thr_fail(ctx, "invalid_value",
                            "Invalid '%s': expected a byte (0 to 255).",
                            ctx->path);
        }

        thr_path_pop(ctx, imark);
    }

    thr_path_pop(ctx, mark);

    return THR_OK;
}


/* {"type":"direct"} or {"type":"program","caller_id":..} */

static int
thr_caller(thr_ctx_t *ctx, json_t *v, json_t **out)
{
    static const char *const  direct_keys[] = { "type", NULL };
    static const char *const  program_keys[] = { "type", "caller_id", NULL };

    int      rc;
    size_t   mark;
    json_t  *type, *res, *m;

    if (!json_is_object(v)) {
        return thr_bad_type(ctx, v, "an object");
    }

    mark = thr_path_key(ctx, "type");
    type = json_object_get(v, "type");

    if (type == NULL) {
        return thr_missing(ctx);
    }

    rc = thr_enum(ctx, type, &thr_caller_types, &m);
    if (rc != THR_OK) {
        return rc;
    }

    json_decref(m);
    thr_path_pop(ctx, mark);

    res = json_object();
    if (res == NULL || thr_set(res, "type", json_incref(type)) != THR_OK) {
        json_decref(res);
        return THR_NOMEM;
    }

    if (strcmp(json_string_value(type), "direct") == 0) {
        rc = thr_check_keys(ctx, v, direct_keys);

    } else {
        rc = thr_check_keys(ctx, v, program_keys);

        if (rc == THR_OK) {
            rc = thr_field_string(ctx, v, "caller_id", 1,
                                  THR_ITEM_MAX_CALL_ID, 1, res);
        }
    }

    if (rc != THR_OK) {
        json_decref(res);
        return rc;
    }

    *out = res;

    return THR_OK;
}


/* fields: each copies obj[key] into res when valid and not null */

static int
thr_field_string(thr_ctx_t *ctx, json_t *obj, const char *key, size_t min,
    size_t max, int need, json_t *res)
{
    int      rc;
    size_t   mark;
    json_t  *v;

    v = thr_opt(obj, key);
    mark = thr_path_key(ctx, key);

    if (v == NULL) {
        if (need) {
            return thr_missing(ctx);
        }

        thr_path_pop(ctx, mark);
        return THR_OK;
    }

    rc = thr_string_range(ctx, v, min, max);
    if (rc != THR_OK) {
        return rc;
    }

    thr_path_pop(ctx, mark);

    return thr_set(res, key, json_incref(v));
}


/* an enum member, or dflt (NULL: left out) when absent or null */

static int
thr_field_enum(thr_ctx_t *ctx, json_t *obj, const char *key,
    const thr_enum_t *e, const char *dflt, json_t *res)
{
    int      rc;
    size_t   mark;
    json_t  *v, *m;

    v = thr_opt(obj, key);

    if (v == NULL) {
        return dflt ? thr_set(res, key, json_string(dflt)) : THR_OK;
    }

    mark = thr_path_key(ctx, key);

    rc = thr_enum(ctx, v, e, &m);
    if (rc != THR_OK) {
        return rc;
    }

    thr_path_pop(ctx, mark);

    return thr_set(res, key, m);
}


static int
thr_field_check(thr_ctx_t *ctx, json_t *obj, const char *key,
    thr_check_pt check, int need, json_t *res)
{
    int      rc;
    size_t   mark;
    json_t  *v, *m;

    v = thr_opt(obj, key);
    mark = thr_path_key(ctx, key);

    if (v == NULL) {
        if (need) {
            return thr_missing(ctx);
        }

        thr_path_pop(ctx, mark);
        return THR_OK;
    }

    m = NULL;

    rc = check(ctx, v, &m);
    if (rc != THR_OK) {
        return rc;
    }

    thr_path_pop(ctx, mark);

    return thr_set(res, key, m);
}


static int
thr_field_int(thr_ctx_t *ctx, json_t *obj, const char *key, int need,
    json_t *res)
{
    size_t   mark;
    json_t  *v;

    v = thr_opt(obj, key);
    mark = thr_path_key(ctx, key);

    if (v == NULL) {
        if (need) {
            return thr_missing(ctx);
        }

        thr_path_pop(ctx, mark);
        return THR_OK;
    }

    if (!json_is_integer(v)) {
        return thr_bad_type(ctx, v, "an integer");
    }

    if (json_integer_value(v) < 0) {
        return thr_fail(ctx, "integer_below_min_value",
                        "Invalid '%s': integer below minimum value. "
                        "Expected a value >= 0, but got %lld instead.",
                        ctx->path, (long long) json_integer_value(v));
    }

    thr_path_pop(ctx, mark);

    return thr_set(res, key, json_incref(v));
}


/* namespace: 1 to 64 of [a-zA-Z0-9_-] */

static int
thr_field_namespace(thr_ctx_t *ctx, json_t *obj, json_t *res)
{
    int          rc;
    size_t       i, n, mark;
    json_t      *v;
    const char  *s;

    v = thr_opt(obj, "namespace");

    if (v == NULL) {
        return THR_OK;
    }

    mark = thr_path_key(ctx, "namespace");

    rc = thr_string_range(ctx, v, 1, THR_ITEM_MAX_NAMESPACE);
    if (rc != THR_OK) {
        return rc;
    }

    s = json_string_value(v);
    n = json_string_length(v);

    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
        {
            return thr_fail(ctx, "invalid_value",
                            "Invalid '%s': string does not match pattern. "
                            "Expected a string that matches the pattern "
                            "'^[a-zA-Z0-9_-]+$'.", ctx->path);
        }
    }

    thr_path_pop(ctx, mark);

    return thr_set(res, "namespace", json_incref(v));
}


/* a string of min to max characters (min 0 or 1) */

static int
thr_string_range(thr_ctx_t *ctx, json_t *v, size_t min, size_t max)
{
    int  rc;

    rc = thr_need_string(ctx, v, max);
    if (rc != THR_OK) {
        return rc;
    }

    if (json_string_length(v) < min) {
        return thr_fail(ctx, "string_below_min_length",
                        "Invalid '%s': string too short. Expected a string "
                        "with minimum length %zu, but got a string with "
                        "length %zu instead.", ctx->path, min,
                        thr_utf8_chars(json_string_value(v),
                                       json_string_length(v)));
    }

    return THR_OK;
}


/* res[key] = v, taking v (even on failure); THR_NOMEM when v is NULL */

static int
thr_set(json_t *res, const char *key, json_t *v)
{
    if (v == NULL) {
        return THR_NOMEM;
    }

    return json_object_set_new(res, key, v) == 0 ? THR_OK : THR_NOMEM;
}


/* obj[key], or NULL when absent or null */

static json_t *
thr_opt(json_t *obj, const char *key)
{
    json_t  *v;

    v = json_object_get(obj, key);

    return (v == NULL || json_is_null(v)) ? NULL : v;
}


static int
thr_empty(thr_ctx_t *ctx)
{
    return thr_fail(ctx, "empty_array",
                    "Invalid '%s': empty array. Expected an array with "
                    "minimum length 1, but got an empty array instead.",
                    ctx->path);
}
