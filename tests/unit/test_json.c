/*
 * Unit tests for ngx_http_threads_json.c: every rule at its limit and one
 * past it, the normalized outputs, the error envelope, and allocation
 * failure at every allocation of a few rich requests.
 */

#define _GNU_SOURCE              /* vasprintf */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "unit.h"
#include "ngx_http_threads_json.h"
#include "ngx_http_threads_id.h"


enum {
    CREATE,
    MODIFY,
    MSG_CREATE,
    MSG_MODIFY
};


typedef struct {
    int               rc;
    thr_thread_req_t  req;
    char             *out;          /* message, or a message's metadata */
    thr_error_t       err;
} result_t;


static long  alloc_countdown = -1;  /* the allocation that fails, or -1 */
static long  alloc_calls;
static int   alloc_failed;


/* {"k0":"v","k1":"v",...} with n pairs */

static char *
pairs(size_t n)
{
    char    *s, *t;
    size_t   i;

    s = fmt("{");

    for (i = 0; i < n; i++) {
        t = fmt("%s%s\"k%zu\":\"v\"", s, i ? "," : "", i);
        free(s);
        s = t;
    }

    t = fmt("%s}", s);
    free(s);

    return t;
}


static void
run(int kind, const char *body, size_t len, result_t *r)
{
    memset(r, 0, sizeof(result_t));

    switch (kind) {

    case CREATE:
        r->rc = thr_json_thread_create(body, len, &r->req, &r->err);
        break;

    case MODIFY:
        r->rc = thr_json_thread_modify(body, len, &r->req, &r->err);
        break;

    case MSG_CREATE:
        r->rc = thr_json_message_create(body, len, &r->out, &r->err);
        break;

    default:
        r->rc = thr_json_message_modify(body, len, &r->out, &r->err);
    }
}


static void
result_free(result_t *r)
{
    thr_thread_req_free(&r->req);
    free(r->out);
}


static int
outputs_null(result_t *r)
{
    return r->req.metadata == NULL && r->req.tool_resources == NULL
           && r->req.messages == NULL && r->req.nmessages == 0
           && r->out == NULL;
}


/* A request that must fail with 400; message NULL: not compared. */

static void
bad_len(int line, int kind, const char *body, size_t len, const char *code,
    const char *param, const char *message)
{
    char      *text;
    json_t    *j;
    result_t   r;

    run(kind, body, len, &r);

    if (r.rc != THR_INVALID) {
        failed++;
        printf("FAIL line %d: rc %d, want THR_INVALID\n", line, r.rc);
        result_free(&r);
        return;
    }

    check(outputs_null(&r), line, "outputs are NULL");
    check(r.err.status == 400, line, "status 400");
    check_str(line, "type", r.err.type, "invalid_request_error");
    check_str(line, "code", r.err.code, code);
    check_str(line, "param", r.err.param, param ? param : "");

    if (message != NULL) {
        check_str(line, "message", r.err.message, message);
    }

    /* the envelope always renders and parses back */
    text = thr_error_json(&r.err);
    j = text ? json_loads(text, 0, NULL) : NULL;
    check(j != NULL && json_object_size(json_object_get(j, "error")) == 4,
          line, "error envelope");
    json_decref(j);
    free(text);

    result_free(&r);
}

#define BAD(kind, body, code, param, message)                                 \
    bad_len(__LINE__, kind, body, strlen(body), code, param, message)


/* Replaces each "id" (a valid msg_ id) by "msg_X" so outputs compare. */

static char *
unid(int line, const char *text)
{
    char    *s;
    size_t   i, n;
    json_t  *j, *el, *id;

    j = json_loads(text, 0, NULL);
    if (j == NULL) {
        check(0, line, "output parses");
        return NULL;
    }

    for (i = 0; i < (json_is_array(j) ? json_array_size(j) : 1); i++) {
        el = json_is_array(j) ? json_array_get(j, i) : j;
        id = json_object_get(el, "id");

        check(id != NULL && thr_id_is_valid(json_string_value(id),
                                            json_string_length(id), "msg_"),
              line, "message id");

        json_object_set_new(el, "id", json_string("msg_X"));
    }

    /* not json_dumps(): its text would come from jansson's allocator */
    n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    s = malloc(n + 1);

    if (s == NULL || json_dumpb(j, s, n, JSON_COMPACT) != n) {
        abort();
    }

    s[n] = '\0';
    json_decref(j);

    return s;
}


static void
good_thread(int line, int kind, const char *body, const char *metadata,
    const char *tool_resources, const char *messages, size_t n)
{
    char      *got;
    result_t   r;

    run(kind, body, body ? strlen(body) : 0, &r);

    if (r.rc != THR_OK) {
        failed++;
        printf("FAIL line %d: rc %d: %s (%s)\n", line, r.rc, r.err.message,
               r.err.param);
        result_free(&r);
        return;
    }

    check_str(line, "metadata", r.req.metadata, metadata);
    check_str(line, "tool_resources", r.req.tool_resources, tool_resources);

    got = r.req.messages ? unid(line, r.req.messages) : NULL;
    check_str(line, "messages", got, messages);
    check(r.req.nmessages == n, line, "nmessages");

    free(got);
    result_free(&r);
}

#define GOOD(body, metadata, tool_resources)                                  \
    good_thread(__LINE__, CREATE, body, metadata, tool_resources, "[]", 0)
#define GOOD_MOD(body, metadata, tool_resources)                              \
    good_thread(__LINE__, MODIFY, body, metadata, tool_resources, NULL, 0)
#define GOOD_MSGS(body, messages, n)                                          \
    good_thread(__LINE__, CREATE, body, "{}", "{}", messages, n)


static void
good_out(int line, int kind, const char *body, const char *want)
{
    char      *got;
    result_t   r;

    run(kind, body, strlen(body), &r);

    if (r.rc != THR_OK) {
        failed++;
        printf("FAIL line %d: rc %d: %s (%s)\n", line, r.rc, r.err.message,
               r.err.param);
        result_free(&r);
        return;
    }

    got = (kind == MSG_CREATE) ? unid(line, r.out) : NULL;
    check_str(line, "output", got ? got : r.out, want);

    free(got);
    result_free(&r);
}

#define GOOD_MSG(body, want)  good_out(__LINE__, MSG_CREATE, body, want)
#define GOOD_MSG_MOD(body, want)  good_out(__LINE__, MSG_MODIFY, body, want)


/* A message object, with the fixed id the outputs are compared with. */
#define MSG(role, content, attachments, metadata)                             \
    "{\"id\":\"msg_X\",\"role\":\"" role "\",\"content\":" content            \
    ",\"attachments\":" attachments ",\"metadata\":" metadata "}"

#define TEXT(s)                                                               \
    "{\"type\":\"text\",\"text\":{\"value\":\"" s "\",\"annotations\":[]}}"


#define PARSE_MESSAGE                                                         \
    "We could not parse the JSON body of your request. (HINT: This likely "   \
    "means you aren't using your HTTP library correctly. The API expects a "  \
    "JSON payload, but what was sent was not valid JSON.)"


static void
test_parse(void)
{
    result_t  r;

    good_thread(__LINE__, CREATE, NULL, "{}", "{}", "[]", 0);
    GOOD("", "{}", "{}");
    GOOD(" \t\r\n ", "{}", "{}");
    GOOD("{}", "{}", "{}");
    GOOD(" {} \n", "{}", "{}");

    run(CREATE, "{\"a\"", 0, &r);
    CHECK(r.rc == THR_OK);
    result_free(&r);

    BAD(CREATE, "{", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{\"a\":}", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{} x", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{}{}", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{'a':1}", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\xff\"}}", NULL, NULL, PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\xc0\xaf\"}}", NULL, NULL,
        PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\xed\xa0\x80\"}}", NULL, NULL,
        PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\\u0000\"}}", NULL, NULL,
        PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"\\u0000\":\"a\"}}", NULL, NULL,
        PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\\ud800\"}}", NULL, NULL,
        PARSE_MESSAGE);
    BAD(CREATE, "{\"metadata\":{\"a\":\"\\udc00x\"}}", NULL, NULL,
        PARSE_MESSAGE);
    bad_len(__LINE__, CREATE, "{}\0", 3, NULL, NULL, PARSE_MESSAGE);
    BAD(MODIFY, "[", NULL, NULL, PARSE_MESSAGE);
    BAD(MSG_CREATE, "nul", NULL, NULL, PARSE_MESSAGE);
    BAD(MSG_MODIFY, "{\"metadata\":", NULL, NULL, PARSE_MESSAGE);

    /* a pair of escapes is one character, not a lone surrogate */
    GOOD("{\"metadata\":{\"a\":\"\\ud83d\\ude00\"}}",
         "{\"a\":\"\xf0\x9f\x98\x80\"}", "{}");

    BAD(CREATE, "[]", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got an array "
        "instead.");
    BAD(CREATE, "\"x\"", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got a string "
        "instead.");
    BAD(MODIFY, "1", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got an integer "
        "instead.");
    BAD(MSG_CREATE, "1.5", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got a number "
        "instead.");
    BAD(MSG_MODIFY, "true", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got a boolean "
        "instead.");
    BAD(CREATE, " null ", "invalid_type", NULL,
        "Invalid type for body: expected an object, but got null instead.");
}


static void
test_unknown(void)
{
    BAD(CREATE, "{\"foo\":1}", "unknown_parameter", "foo",
        "Unknown parameter: 'foo'.");
    BAD(CREATE, "{\"tool_resources\":{\"foo\":1}}", "unknown_parameter",
        "tool_resources.foo", "Unknown parameter: 'tool_resources.foo'.");
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":{\"foo\":[]}}}",
        "unknown_parameter", "tool_resources.code_interpreter.foo",
        "Unknown parameter: 'tool_resources.code_interpreter.foo'.");
    BAD(CREATE, "{\"tool_resources\":{\"file_search\":{\"file_ids\":[]}}}",
        "unknown_parameter", "tool_resources.file_search.file_ids", NULL);
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\","
        "\"foo\":1}]}", "unknown_parameter", "messages[0].foo",
        "Unknown parameter: 'messages[0].foo'.");
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":"
        "{\"url\":\"https://x\",\"foo\":1}}]}]}", "unknown_parameter",
        "messages[0].content[1].image_url.foo",
        "Unknown parameter: 'messages[0].content[1].image_url.foo'.");
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
        "\"content\":\"a\",\"attachments\":[{\"file_id\":\"f\",\"tools\":"
        "[{\"type\":\"file_search\",\"foo\":1}]}]}]}", "unknown_parameter",
        "messages[2].attachments[0].tools[0].foo",
        "Unknown parameter: 'messages[2].attachments[0].tools[0].foo'.");
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\","
        "\"attachments\":[{\"file_id\":\"f\",\"foo\":1}]}]}",
        "unknown_parameter", "messages[0].attachments[0].foo", NULL);
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"image_file\",\"image_file\":{\"file_id\":\"f\",\"url\":\"u\"}}]}]}",
        "unknown_parameter", "messages[0].content[0].image_file.url", NULL);

    /* a part holds only the member its type names */
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a\",\"image_url\":{\"url\":\"http://x\"}}]}]}",
        "unknown_parameter", "messages[0].content[0].image_url", NULL);

    BAD(MODIFY, "{\"messages\":[]}", "unknown_parameter", "messages",
        "Unknown parameter: 'messages'.");
    BAD(MODIFY, "{\"tool_resources\":{\"foo\":null}}", "unknown_parameter",
        "tool_resources.foo", NULL);
    BAD(MSG_CREATE, "{\"role\":\"user\",\"content\":\"a\",\"foo\":1}",
        "unknown_parameter", "foo", "Unknown parameter: 'foo'.");
    BAD(MSG_CREATE, "{\"role\":\"user\",\"content\":\"a\",\"thread_id\":\"t\"}",
        "unknown_parameter", "thread_id", NULL);
    BAD(MSG_MODIFY, "{\"role\":\"user\"}", "unknown_parameter", "role", NULL);

    /* the empty key is unknown too; its param is JSON null */
    BAD(CREATE, "{\"\":1}", "unknown_parameter", NULL,
        "Unknown parameter: ''.");
}


static void
test_order(void)
{
    /* unknown keys first, then the known members in schema order */
    BAD(CREATE, "{\"metadata\":1,\"foo\":1}", "unknown_parameter", "foo",
        NULL);
    BAD(CREATE, "{\"tool_resources\":{\"x\":1},\"metadata\":5}",
        "invalid_type", "metadata", NULL);
    BAD(CREATE, "{\"metadata\":5,\"tool_resources\":{\"x\":1}}",
        "invalid_type", "metadata", NULL);
    BAD(CREATE, "{\"messages\":[{\"content\":1,\"role\":\"x\"}]}",
        "invalid_value", "messages[0].role", NULL);
    BAD(CREATE, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"user\"},{\"content\":\"a\"}]}",
        "missing_required_parameter", "messages[1].content", NULL);
    BAD(CREATE, "{\"metadata\":{\"a\":1,\"b\":2}}", "invalid_type",
        "metadata.a", NULL);
    BAD(CREATE, "{\"metadata\":{\"b\":2,\"a\":1}}", "invalid_type",
        "metadata.b", NULL);
}


static void
test_metadata(void)
{
    char  *s, *k, *v, *big;

    GOOD("{\"metadata\":null}", "{}", "{}");
    GOOD("{\"metadata\":{}}", "{}", "{}");
    GOOD("{\"metadata\":{\"b\":\"1\",\"a\":\"\"}}",
         "{\"b\":\"1\",\"a\":\"\"}", "{}");
    GOOD("{\"metadata\":{\"a\":\"\\u00e9\\\"\"}}",
         "{\"a\":\"\xc3\xa9\\\"\"}", "{}");

    BAD(CREATE, "{\"metadata\":[]}", "invalid_type", "metadata",
        "Invalid type for 'metadata': expected an object, but got an array "
        "instead.");
    BAD(CREATE, "{\"metadata\":\"a\"}", "invalid_type", "metadata", NULL);

    /* 16 pairs, 17 */
    s = pairs(16);
    big = fmt("{\"metadata\":%s}", s);
    GOOD(big, s, "{}");
    free(big);
    free(s);

    s = pairs(17);
    big = fmt("{\"metadata\":%s}", s);
    BAD(CREATE, big, "object_above_max_properties", "metadata",
        "Invalid 'metadata': too many properties. Expected an object with "
        "at most 16 properties, but got an object with 17 properties "
        "instead.");
    free(big);
    big = fmt("{\"role\":\"user\",\"content\":\"a\",\"metadata\":%s}", s);
    BAD(MSG_CREATE, big, "object_above_max_properties", "metadata", NULL);
    free(big);
    big = fmt("{\"messages\":[{\"role\":\"user\",\"content\":\"a\","
              "\"metadata\":%s}]}", s);
    BAD(CREATE, big, "object_above_max_properties", "messages[0].metadata",
        "Invalid 'messages[0].metadata': too many properties. Expected an "
        "object with at most 16 properties, but got an object with 17 "
        "properties instead.");
    free(big);
    big = fmt("{\"metadata\":%s}", s);
    BAD(MSG_MODIFY, big, "object_above_max_properties", "metadata", NULL);
    free(big);
    free(s);

    /* keys: 64 characters, 65; 3-byte characters count once */
    k = rep("k", 64);
    big = fmt("{\"metadata\":{\"%s\":\"v\"}}", k);
    s = fmt("{\"%s\":\"v\"}", k);
    GOOD(big, s, "{}");
    free(s);
    free(big);
    free(k);

    k = rep("\xe2\x82\xac", 64);
    big = fmt("{\"metadata\":{\"%s\":\"v\"}}", k);
    s = fmt("{\"%s\":\"v\"}", k);
    GOOD(big, s, "{}");
    free(s);
    free(big);
    free(k);

    k = rep("k", 65);
    big = fmt("{\"metadata\":{\"a\":\"v\",\"%s\":\"v\"}}", k);
    BAD(CREATE, big, "string_above_max_length", "metadata",
        "Invalid 'metadata': string too long. Expected a string with "
        "maximum length 64, but got a string with length 65 instead.");
    free(big);
    free(k);

    k = rep("\xe2\x82\xac", 65);
    big = fmt("{\"metadata\":{\"%s\":\"v\"}}", k);
    BAD(MODIFY, big, "string_above_max_length", "metadata", NULL);
    free(big);
    free(k);

    BAD(CREATE, "{\"metadata\":{\"\":\"v\"}}", "string_below_min_length",
        "metadata",
        "Invalid 'metadata': string too short. Expected a string with "
        "minimum length 1, but got an empty string instead.");

    /* values: 512 characters, 513; 2-byte and 4-byte characters */
    v = rep("v", 512);
    big = fmt("{\"metadata\":{\"k\":\"%s\"}}", v);
    s = fmt("{\"k\":\"%s\"}", v);
    GOOD(big, s, "{}");
    free(s);
    free(big);
    free(v);

    v = rep("\xc3\xa9", 512);
    big = fmt("{\"metadata\":{\"k\":\"%s\"}}", v);
    s = fmt("{\"k\":\"%s\"}", v);
    GOOD(big, s, "{}");
    free(s);
    free(big);
    free(v);

    v = rep("\\u00e9", 512);
    big = fmt("{\"metadata\":{\"k\":\"%s\"}}", v);
    free(v);
    v = rep("\xc3\xa9", 512);
    s = fmt("{\"k\":\"%s\"}", v);
    GOOD_MOD(big, s, NULL);
    free(s);
    free(big);
    free(v);

    v = rep("\xf0\x9f\x98\x80", 512);
    big = fmt("{\"metadata\":{\"k\":\"%s\"}}", v);
    s = fmt("{\"k\":\"%s\"}", v);
    GOOD_MSG_MOD(big, s);
    free(s);
    free(big);
    free(v);

    v = rep("v", 513);
    big = fmt("{\"metadata\":{\"k\":\"%s\"}}", v);
    BAD(CREATE, big, "string_above_max_length", "metadata.k",
        "Invalid 'metadata.k': string too long. Expected a string with "
        "maximum length 512, but got a string with length 513 instead.");
    free(big);
    free(v);

    v = rep("\xc3\xa9", 513);
    big = fmt("{\"messages\":[{\"role\":\"user\",\"content\":\"a\","
              "\"metadata\":{\"k\":\"%s\"}}]}", v);
    BAD(CREATE, big, "string_above_max_length", "messages[0].metadata.k",
        NULL);
    free(big);
    free(v);

    BAD(CREATE, "{\"metadata\":{\"k\":1}}", "invalid_type", "metadata.k",
        "Invalid type for 'metadata.k': expected a string, but got an "
        "integer instead.");
    BAD(CREATE, "{\"metadata\":{\"k\":null}}", "invalid_type", "metadata.k",
        "Invalid type for 'metadata.k': expected a string, but got null "
        "instead.");
    BAD(MSG_MODIFY, "{\"metadata\":{\"k\":{}}}", "invalid_type",
        "metadata.k", NULL);
}


static void
test_tool_resources(void)
{
    char  *ids, *big, *want;

    GOOD("{\"tool_resources\":null}", "{}", "{}");
    GOOD("{\"tool_resources\":{}}", "{}", "{}");
    GOOD("{\"tool_resources\":{\"code_interpreter\":null,"
         "\"file_search\":null}}", "{}", "{}");
    GOOD("{\"tool_resources\":{\"code_interpreter\":{}}}", "{}",
         "{\"code_interpreter\":{}}");
    GOOD("{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":null}}}",
         "{}", "{\"code_interpreter\":{}}");
    GOOD("{\"tool_resources\":{\"file_search\":{\"vector_store_ids\":"
         "[\"vs_1\"]},\"code_interpreter\":{\"file_ids\":[]}}}", "{}",
         "{\"code_interpreter\":{\"file_ids\":[]},"
         "\"file_search\":{\"vector_store_ids\":[\"vs_1\"]}}");
    GOOD("{\"tool_resources\":{\"file_search\":{\"vector_stores\":null}}}",
         "{}", "{\"file_search\":{}}");

    BAD(CREATE, "{\"tool_resources\":[]}", "invalid_type", "tool_resources",
        "Invalid type for 'tool_resources': expected an object, but got an "
        "array instead.");
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":true}}",
        "invalid_type", "tool_resources.code_interpreter", NULL);
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
        "\"f\"}}}", "invalid_type", "tool_resources.code_interpreter.file_ids",
        "Invalid type for 'tool_resources.code_interpreter.file_ids': "
        "expected an array, but got a string instead.");
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
        "[\"a\",\"b\",\"c\",4]}}}", "invalid_type",
        "tool_resources.code_interpreter.file_ids[3]",
        "Invalid type for 'tool_resources.code_interpreter.file_ids[3]': "
        "expected a string, but got an integer instead.");
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
        "[null]}}}", "invalid_type",
        "tool_resources.code_interpreter.file_ids[0]", NULL);

    /* 20 file ids, 21 */
    ids = rep("\"file\",", 20);
    ids[strlen(ids) - 1] = '\0';
    big = fmt("{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
              "[%s]}}}", ids);
    want = fmt("{\"code_interpreter\":{\"file_ids\":[%s]}}", ids);
    GOOD(big, "{}", want);
    free(want);
    free(big);
    free(ids);

    ids = rep("\"file\",", 21);
    ids[strlen(ids) - 1] = '\0';
    big = fmt("{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
              "[%s]}}}", ids);
    BAD(CREATE, big, "array_above_max_length",
        "tool_resources.code_interpreter.file_ids",
        "Invalid 'tool_resources.code_interpreter.file_ids': array too "
        "long. Expected an array with maximum length 20, but got an array "
        "with length 21 instead.");
    BAD(MODIFY, big, "array_above_max_length",
        "tool_resources.code_interpreter.file_ids", NULL);
    free(big);
    free(ids);

    /* 1 vector store id, 2 */
    GOOD_MOD("{\"tool_resources\":{\"file_search\":{\"vector_store_ids\":"
             "[\"vs\"]}}}", NULL,
             "{\"file_search\":{\"vector_store_ids\":[\"vs\"]}}");
    BAD(CREATE, "{\"tool_resources\":{\"file_search\":{\"vector_store_ids\":"
        "[\"a\",\"b\"]}}}", "array_above_max_length",
        "tool_resources.file_search.vector_store_ids",
        "Invalid 'tool_resources.file_search.vector_store_ids': array too "
        "long. Expected an array with maximum length 1, but got an array "
        "with length 2 instead.");
    BAD(CREATE, "{\"tool_resources\":{\"file_search\":{\"vector_store_ids\":"
        "[{}]}}}", "invalid_type",
        "tool_resources.file_search.vector_store_ids[0]", NULL);

    BAD(CREATE, "{\"tool_resources\":{\"file_search\":{\"vector_stores\":"
        "[{\"file_ids\":[\"f\"]}]}}}", "unsupported_parameter",
        "tool_resources.file_search.vector_stores",
        "Unsupported parameter: 'tool_resources.file_search.vector_stores'. "
        "This server cannot create vector stores: create the vector store "
        "separately and pass its id in "
        "'tool_resources.file_search.vector_store_ids'.");
    BAD(MODIFY, "{\"tool_resources\":{\"file_search\":{\"vector_stores\":"
        "[]}}}", "unsupported_parameter",
        "tool_resources.file_search.vector_stores", NULL);
    BAD(CREATE, "{\"tool_resources\":{\"code_interpreter\":{"
        "\"vector_stores\":[]}}}", "unknown_parameter",
        "tool_resources.code_interpreter.vector_stores", NULL);
}


static void
test_messages(void)
{
    char  *msgs, *big, *want;

    GOOD_MSGS("{\"messages\":null}", "[]", 0);
    GOOD_MSGS("{\"messages\":[]}", "[]", 0);
    GOOD_MSGS("{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"},"
              "{\"role\":\"assistant\",\"content\":\"\"}]}",
              "[" MSG("user", "[" TEXT("Hello") "]", "[]", "{}") ","
              MSG("assistant", "[" TEXT("") "]", "[]", "{}") "]", 2);

    BAD(CREATE, "{\"messages\":{}}", "invalid_type", "messages",
        "Invalid type for 'messages': expected an array, but got an object "
        "instead.");
    BAD(CREATE, "{\"messages\":[\"hi\"]}", "invalid_type", "messages[0]",
        "Invalid type for 'messages[0]': expected an object, but got a "
        "string instead.");
    BAD(CREATE, "{\"messages\":[null]}", "invalid_type", "messages[0]",
        NULL);

    /* 32 messages, 33 */
    msgs = rep("{\"role\":\"user\",\"content\":\"a\"},", 32);
    msgs[strlen(msgs) - 1] = '\0';
    big = fmt("{\"messages\":[%s]}", msgs);
    want = rep(MSG("user", "[" TEXT("a") "]", "[]", "{}") ",", 32);
    want[strlen(want) - 1] = '\0';
    free(msgs);
    msgs = fmt("[%s]", want);
    GOOD_MSGS(big, msgs, 32);
    free(want);
    free(msgs);
    free(big);

    msgs = rep("{\"role\":\"user\",\"content\":\"a\"},", 33);
    msgs[strlen(msgs) - 1] = '\0';
    big = fmt("{\"messages\":[%s]}", msgs);
    BAD(CREATE, big, "array_above_max_length", "messages",
        "Invalid 'messages': array too long. Expected an array with maximum "
        "length 32, but got an array with length 33 instead.");
    free(msgs);
    free(big);
}


/* The same rules through thread create (messages[0].) and message create. */

static void
bad_msg(int line, const char *msg, const char *code, const char *param,
    const char *message)
{
    char  *body, *p, *m;

    bad_len(line, MSG_CREATE, msg, strlen(msg), code, param, message);

    body = fmt("{\"messages\":[%s]}", msg);
    p = fmt("messages[0]%s%s", param[0] == '[' ? "" : ".", param);
    m = NULL;

    /* the path in the message gains the same prefix as the param */
    if (message != NULL) {
        m = strstr(message, param);
        m = m ? fmt("%.*smessages[0].%s", (int) (m - message), message, m)
              : fmt("%s", message);
    }

    bad_len(line, CREATE, body, strlen(body), code, p, m);

    free(body);
    free(p);
    free(m);
}

#define BAD_MSG(msg, code, param, message)                                    \
    bad_msg(__LINE__, msg, code, param, message)


static void
test_message(void)
{
    char  *s, *big, *want;

    GOOD_MSG("{\"role\":\"user\",\"content\":\"Hello\"}",
             MSG("user", "[" TEXT("Hello") "]", "[]", "{}"));
    GOOD_MSG("{\"metadata\":{\"a\":\"b\"},\"attachments\":null,"
             "\"content\":\"x\",\"role\":\"assistant\"}",
             MSG("assistant", "[" TEXT("x") "]", "[]", "{\"a\":\"b\"}"));
    GOOD_MSG("{\"role\":\"user\",\"content\":\"x\",\"metadata\":null}",
             MSG("user", "[" TEXT("x") "]", "[]", "{}"));

    /* role */
    BAD_MSG("{\"content\":\"a\"}", "missing_required_parameter", "role",
            "Missing required parameter: 'role'.");
    BAD_MSG("{\"role\":null,\"content\":\"a\"}", "invalid_type", "role",
            "Invalid type for 'role': expected a string, but got null "
            "instead.");
    BAD_MSG("{\"role\":1,\"content\":\"a\"}", "invalid_type", "role", NULL);
    BAD_MSG("{\"role\":\"system\",\"content\":\"a\"}", "invalid_value",
            "role", "Invalid value: 'system'. Supported values are: 'user' "
            "and 'assistant'.");
    BAD_MSG("{\"role\":\"User\",\"content\":\"a\"}", "invalid_value", "role",
            NULL);

    /* content */
    BAD_MSG("{\"role\":\"user\"}", "missing_required_parameter", "content",
            "Missing required parameter: 'content'.");
    BAD_MSG("{\"role\":\"user\",\"content\":null}", "invalid_type",
            "content", "Invalid type for 'content': expected one of a string "
            "or an array, but got null instead.");
    BAD_MSG("{\"role\":\"user\",\"content\":{}}", "invalid_type", "content",
            NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[]}", "empty_array", "content",
            "Invalid 'content': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.");

    /* 256000 characters, 256001, as a string and as a text part */
    s = rep("a", 256000);
    big = fmt("{\"role\":\"user\",\"content\":\"%s\"}", s);
    want = fmt(MSG("user", "[" TEXT("%s") "]", "[]", "{}"), s);
    GOOD_MSG(big, want);
    free(want);
    free(big);
    free(s);

    s = rep("\xf0\x9f\x98\x80", 256000);
    big = fmt("{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"%s\"}]}", s);
    want = fmt(MSG("user", "[" TEXT("%s") "]", "[]", "{}"), s);
    GOOD_MSG(big, want);
    free(want);
    free(big);
    free(s);

    s = rep("a", 256001);
    big = fmt("{\"role\":\"user\",\"content\":\"%s\"}", s);
    BAD_MSG(big, "string_above_max_length", "content",
            "Invalid 'content': string too long. Expected a string with "
            "maximum length 256000, but got a string with length 256001 "
            "instead.");
    free(big);
    free(s);

    s = rep("\xc3\xa9", 256001);
    big = fmt("{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"a\"},{\"type\":\"text\",\"text\":\"%s\"}]}", s);
    BAD_MSG(big, "string_above_max_length", "content[1].text",
            "Invalid 'content[1].text': string too long. Expected a string "
            "with maximum length 256000, but got a string with length "
            "256001 instead.");
    free(big);
    free(s);

    /* parts */
    GOOD_MSG("{\"role\":\"user\",\"content\":[{\"text\":\"hi\",\"type\":"
             "\"text\"},{\"type\":\"image_file\",\"image_file\":{\"file_id\":"
             "\"file_1\"}},{\"type\":\"image_url\",\"image_url\":{\"detail\":"
             "\"low\",\"url\":\"HTTPS://example.com/a.png\"}},{\"type\":"
             "\"image_file\",\"image_file\":{\"file_id\":\"f\",\"detail\":"
             "\"high\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":"
             "\"http://x\",\"detail\":\"auto\"}}]}",
             MSG("user", "[" TEXT("hi") ","
                 "{\"type\":\"image_file\",\"image_file\":{\"file_id\":"
                 "\"file_1\",\"detail\":\"auto\"}},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                 "\"HTTPS://example.com/a.png\",\"detail\":\"low\"}},"
                 "{\"type\":\"image_file\",\"image_file\":{\"file_id\":"
                 "\"f\",\"detail\":\"high\"}},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                 "\"http://x\",\"detail\":\"auto\"}}]", "[]", "{}"));

    BAD_MSG("{\"role\":\"user\",\"content\":[1]}", "invalid_type",
            "content[0]", "Invalid type for 'content[0]': expected an "
            "object, but got an integer instead.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}",
            "missing_required_parameter", "content[0].type",
            "Missing required parameter: 'content[0].type'.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":null}]}",
            "invalid_type", "content[0].type", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}",
            "invalid_value", "content[0].type",
            "Invalid value: 'video'. Supported values are: 'text', "
            "'image_file', and 'image_url'.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}",
            "missing_required_parameter", "content[0].text",
            "Missing required parameter: 'content[0].text'.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
            "{\"value\":\"a\"}}]}", "invalid_type", "content[0].text", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\"}]}",
            "missing_required_parameter", "content[0].image_file", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\","
            "\"image_file\":\"f\"}]}", "invalid_type",
            "content[0].image_file", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\","
            "\"image_file\":{}}]}", "missing_required_parameter",
            "content[0].image_file.file_id",
            "Missing required parameter: 'content[0].image_file.file_id'.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\","
            "\"image_file\":{\"file_id\":null}}]}", "invalid_type",
            "content[0].image_file.file_id", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\","
            "\"image_file\":{\"file_id\":\"f\",\"detail\":\"max\"}}]}",
            "invalid_value", "content[0].image_file.detail",
            "Invalid value: 'max'. Supported values are: 'auto', 'low', and "
            "'high'.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_file\","
            "\"image_file\":{\"file_id\":\"f\",\"detail\":null}}]}",
            "invalid_type", "content[0].image_file.detail", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}",
            "missing_required_parameter", "content[0].image_url", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"detail\":\"low\"}}]}",
            "missing_required_parameter", "content[0].image_url.url", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"ftp://x\"}}]}", "invalid_value",
            "content[0].image_url.url",
            "Invalid 'content[0].image_url.url': Expected a valid URL, but "
            "got a value with an invalid format.");
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"http://\"}}]}", "invalid_value",
            "content[0].image_url.url", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"https://\"}}]}", "invalid_value",
            "content[0].image_url.url", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":\"example.com\"}}]}", "invalid_value",
            "content[0].image_url.url", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
            "\"image_url\":{\"url\":1}}]}", "invalid_type",
            "content[0].image_url.url", NULL);
    GOOD_MSG("{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
             "\"image_url\":{\"url\":\"https:/\\/a\"}}]}",
             MSG("user", "[{\"type\":\"image_url\",\"image_url\":{\"url\":"
                 "\"https://a\",\"detail\":\"auto\"}}]", "[]", "{}"));

    /* attachments */
    GOOD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":[]}",
             MSG("user", "[" TEXT("a") "]", "[]", "{}"));
    GOOD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
             "{\"tools\":[{\"type\":\"file_search\"},{\"type\":"
             "\"code_interpreter\"}],\"file_id\":\"f1\"},{\"file_id\":\"f2\"},"
             "{\"file_id\":\"f3\",\"tools\":null},{\"file_id\":\"f4\","
             "\"tools\":[]}]}",
             MSG("user", "[" TEXT("a") "]",
                 "[{\"file_id\":\"f1\",\"tools\":[{\"type\":\"file_search\"},"
                 "{\"type\":\"code_interpreter\"}]},"
                 "{\"file_id\":\"f2\",\"tools\":[]},"
                 "{\"file_id\":\"f3\",\"tools\":[]},"
                 "{\"file_id\":\"f4\",\"tools\":[]}]", "{}"));

    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":{}}",
            "invalid_type", "attachments",
            "Invalid type for 'attachments': expected an array, but got an "
            "object instead.");
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":[null]}",
            "invalid_type", "attachments[0]", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":[{}]}",
            "missing_required_parameter", "attachments[0].file_id",
            "Missing required parameter: 'attachments[0].file_id'.");
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":7}]}", "invalid_type", "attachments[0].file_id",
            NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":\"f\",\"tools\":{}}]}", "invalid_type",
            "attachments[0].tools", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":\"f\",\"tools\":[\"file_search\"]}]}",
            "invalid_type", "attachments[0].tools[0]", NULL);
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":\"f\",\"tools\":[{}]}]}",
            "missing_required_parameter", "attachments[0].tools[0].type",
            "Missing required parameter: 'attachments[0].tools[0].type'.");
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":\"f\",\"tools\":[{\"type\":\"function\"}]}]}",
            "invalid_value", "attachments[0].tools[0].type",
            "Invalid value: 'function'. Supported values are: "
            "'code_interpreter' and 'file_search'.");
    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"attachments\":["
            "{\"file_id\":\"f\",\"tools\":[{\"type\":false}]}]}",
            "invalid_type", "attachments[0].tools[0].type", NULL);

    BAD_MSG("{\"role\":\"user\",\"content\":\"a\",\"metadata\":[]}",
            "invalid_type", "metadata", NULL);
}


static void
test_modify(void)
{
    result_t  r;

    GOOD_MOD("{}", NULL, NULL);
    GOOD_MOD("", NULL, NULL);
    GOOD_MOD("{\"metadata\":null}", "{}", NULL);
    GOOD_MOD("{\"tool_resources\":null}", NULL, "{}");
    GOOD_MOD("{\"metadata\":{\"a\":\"b\"},\"tool_resources\":{}}",
             "{\"a\":\"b\"}", "{}");
    GOOD_MOD("{\"tool_resources\":{\"code_interpreter\":{\"file_ids\":"
             "[\"f\"]},\"file_search\":null}}", NULL,
             "{\"code_interpreter\":{\"file_ids\":[\"f\"]}}");

    GOOD_MSG_MOD("{\"metadata\":{\"x\":\"y\"}}", "{\"x\":\"y\"}");
    GOOD_MSG_MOD("{\"metadata\":null}", "{}");

    run(MSG_MODIFY, "{}", 2, &r);
    CHECK(r.rc == THR_OK && r.out == NULL);
    result_free(&r);

    run(MSG_MODIFY, NULL, 0, &r);
    CHECK(r.rc == THR_OK && r.out == NULL);
    result_free(&r);

    run(MSG_CREATE, "", 0, &r);
    CHECK(r.rc == THR_INVALID && r.out == NULL);
    check_str(__LINE__, "empty message", r.err.param, "role");
    result_free(&r);

    BAD(MODIFY, "{\"metadata\":1}", "invalid_type", "metadata", NULL);
    BAD(MODIFY, "{\"tool_resources\":1}", "invalid_type", "tool_resources",
        NULL);
}


static void
test_error(void)
{
    char         *s, *t;
    size_t        len;
    json_t       *j;
    thr_error_t   err;

    thr_error_set(&err, 404, "invalid_request_error", NULL, NULL,
                  "No thread found with id '%s'.", "thread_x");
    s = thr_error_json(&err);
    check_str(__LINE__, "envelope", s,
              "{\"error\":{\"message\":\"No thread found with id "
              "'thread_x'.\",\"type\":\"invalid_request_error\","
              "\"param\":null,\"code\":null}}");
    CHECK(err.status == 404);
    free(s);

    thr_error_set(&err, 400, "invalid_request_error", "invalid_value",
                  "thread_id", "Invalid 'thread_id': '%s'.", "a\"b\\");
    s = thr_error_json(&err);
    check_str(__LINE__, "envelope", s,
              "{\"error\":{\"message\":\"Invalid 'thread_id': "
              "'a\\\"b\\\\'.\",\"type\":\"invalid_request_error\","
              "\"param\":\"thread_id\",\"code\":\"invalid_value\"}}");
    free(s);

    /* "" is null as well */
    thr_error_set(&err, 500, "server_error", NULL, "", "x");
    s = thr_error_json(&err);
    check_str(__LINE__, "envelope", s,
              "{\"error\":{\"message\":\"x\",\"type\":\"server_error\","
              "\"param\":null,\"code\":null}}");
    free(s);

    /* bytes that are not UTF-8 come out as U+FFFD */
    thr_error_set(&err, 404, "invalid_request_error", NULL,
                  "a\xff" "b\xc3", "id '%s' \xc0\xaf \xed\xa0\x80 ok "
                  "\xf4\x90\x80\x80 \xe2\x82 \xc3\xa9\xf0\x9f\x98\x80",
                  "x\x80y");
    s = thr_error_json(&err);
    check_str(__LINE__, "replacement", s,
              "{\"error\":{\"message\":\"id 'x\xef\xbf\xbdy' "
              "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
              " ok \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
              "\xef\xbf\xbd\xef\xbf\xbd \xc3\xa9\xf0\x9f\x98\x80\","
              "\"type\":\"invalid_request_error\",\"param\":"
              "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\",\"code\":null}}");
    free(s);

    /* over-long text is cut at a character boundary */
    t = rep("\xc3\xa9", 2000);
    thr_error_set(&err, 404, "invalid_request_error", NULL, t, "%s", t);
    CHECK(strlen(err.message) == 1022);
    CHECK(strlen(err.param) == 510);
    s = thr_error_json(&err);
    j = s ? json_loads(s, 0, NULL) : NULL;
    CHECK(j != NULL);
    json_decref(j);
    free(s);
    free(t);

    t = rep("\xe2\x82\xac", 400);
    thr_error_set(&err, 404, "invalid_request_error", NULL, t, "x%s", t);
    CHECK(strlen(err.message) == 1021);
    CHECK(strlen(err.param) == 510);
    free(t);

    t = rep("\xf0\x9f\x98\x80", 300);
    thr_error_set(&err, 404, "invalid_request_error", NULL, t + 1,
                  "xyz%s", t);
    CHECK(strlen(err.message) == 1023);
    len = strlen(err.param);
    CHECK(len == 511);
    free(t);

    /* bytes that are not UTF-8 are cut anywhere, and rendered as U+FFFD */
    t = rep("\x80", 2000);
    thr_error_set(&err, 404, "invalid_request_error", NULL, t, "%s", t);
    CHECK(strlen(err.message) == 1023);
    CHECK(strlen(err.param) == 511);
    s = thr_error_json(&err);
    CHECK(s != NULL && strlen(s) > 3 * 1023);
    free(s);
    free(t);

    /* exactly full: nothing is cut */
    t = rep("a", 1023);
    thr_error_set(&err, 404, "invalid_request_error", NULL, t + 512, "%s", t);
    CHECK(strlen(err.message) == 1023);
    CHECK(strlen(err.param) == 511);
    free(t);

    /* a long unknown key: the param is cut, the message still parses */
    t = rep("\xc3\xa9", 600);
    s = fmt("{\"%s\":1}", t);
    free(t);
    t = rep("\xc3\xa9", 255);
    BAD(CREATE, s, "unknown_parameter", t, NULL);
    free(s);
    free(t);
}


/*
 * Every allocation of a request fails in turn: THR_NOMEM, nothing leaks.
 *
 * Within json_loadb() only the first allocation is made to fail: jansson
 * 2.14 ignores a failed allocation while it lexes a token and then reads
 * past its buffer (akheron/jansson#362), which is jansson's to fix.
 */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);


/* every malloc(3) of the code under test, jansson's through its allocator */

void *
__wrap_malloc(size_t n)
{
    alloc_calls++;

    if (alloc_countdown >= 0 && alloc_countdown-- == 0) {
        alloc_failed = 1;
        return NULL;
    }

    return __real_malloc(n);
}


static void
nomem(int line, int kind, const char *body, int want)
{
    long      n, parse;
    char     *text;
    json_t   *j;
    result_t  r;

    /* the allocations json_loadb() makes come first */
    alloc_calls = 0;
    j = json_loadb(body, strlen(body), JSON_DECODE_ANY, NULL);
    parse = body[0] ? alloc_calls : 0;
    alloc_calls = 0;
    json_decref(j);

    for (n = 0; ; n = (n == 0 && parse > 1) ? parse : n + 1) {
        alloc_countdown = n;
        alloc_failed = 0;

        run(kind, body, strlen(body), &r);

        if (!alloc_failed) {
            check(r.rc == want, line, "rc without failure");
            result_free(&r);
            break;
        }

        if (r.rc != THR_NOMEM || !outputs_null(&r)) {
            failed++;
            printf("FAIL line %d: allocation %ld failed: rc %d\n", line, n,
                   r.rc);
        }

        result_free(&r);
    }

    check(n > 0, line, "allocations were made");

    thr_error_set(&r.err, 400, "invalid_request_error", NULL, "p", "m");

    for (n = 0; ; n++) {
        alloc_countdown = n;
        alloc_failed = 0;

        text = thr_error_json(&r.err);

        if (!alloc_failed) {
            check(text != NULL, line, "error json");
            free(text);
            break;
        }

        check(text == NULL, line, "error json NULL when out of memory");
    }

    alloc_countdown = -1;
}


static void
test_nomem(void)
{
    nomem(__LINE__, CREATE,
          "{\"metadata\":{\"a\":\"b\",\"c\":\"d\"},\"tool_resources\":"
          "{\"code_interpreter\":{\"file_ids\":[\"f1\",\"f2\"]},"
          "\"file_search\":{\"vector_store_ids\":[\"vs\"]}},\"messages\":["
          "{\"role\":\"user\",\"content\":\"hi\",\"metadata\":{\"k\":\"v\"}},"
          "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":"
          "\"t\"},{\"type\":\"image_file\",\"image_file\":{\"file_id\":"
          "\"f\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":"
          "\"http://u\",\"detail\":\"low\"}}],\"attachments\":[{\"file_id\":"
          "\"f\",\"tools\":[{\"type\":\"file_search\"}]},{\"file_id\":"
          "\"g\"}]}]}", THR_OK);
    nomem(__LINE__, CREATE, "", THR_OK);
    nomem(__LINE__, CREATE, "{\"tool_resources\":{\"file_search\":{}}}",
          THR_OK);
    nomem(__LINE__, MODIFY,
          "{\"metadata\":null,\"tool_resources\":{\"code_interpreter\":null}}",
          THR_OK);
    nomem(__LINE__, MSG_CREATE,
          "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
          "\"image_url\":{\"url\":\"https://u\"}}],\"attachments\":null}",
          THR_OK);
    nomem(__LINE__, MSG_MODIFY, "{\"metadata\":{\"a\":\"b\"}}", THR_OK);

    /* more than 8 elements: the arrays built grow */
    nomem(__LINE__, MSG_CREATE,
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
          "\"1\"},{\"type\":\"text\",\"text\":\"2\"},{\"type\":\"text\","
          "\"text\":\"3\"},{\"type\":\"text\",\"text\":\"4\"},{\"type\":"
          "\"text\",\"text\":\"5\"},{\"type\":\"text\",\"text\":\"6\"},"
          "{\"type\":\"text\",\"text\":\"7\"},{\"type\":\"text\",\"text\":"
          "\"8\"},{\"type\":\"text\",\"text\":\"9\"}]}", THR_OK);
    nomem(__LINE__, CREATE,
          "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
          "\"a\"},{\"type\":\"text\"}]}]}", THR_INVALID);
    nomem(__LINE__, CREATE, "{\"metadata\":{\"a\":\"b\"", THR_INVALID);
    nomem(__LINE__, CREATE, "[1,2,3]", THR_INVALID);
}


int
main(void)
{
    thr_json_init();

    test_parse();
    test_unknown();
    test_order();
    test_metadata();
    test_tool_resources();
    test_messages();
    test_message();
    test_modify();
    test_error();
    test_nomem();

    printf("%d passed, %d failed\n", passed, failed);

    return failed != 0;
}
