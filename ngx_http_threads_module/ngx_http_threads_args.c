/*
 * Query strings of the list endpoints.
 *
 * Two passes.  The first splits on '&' and percent-decodes every name and
 * value, known or not, into one scratch buffer: the query string as a whole
 * must be well-formed, and the first fault in it is reported.  It keeps the
 * last value given of each known parameter.  The second checks those values
 * in a fixed order (limit, order, after, before, run_id, metadata), so that
 * which error is reported does not depend on the order of the parameters,
 * and copies the strings out.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_threads_args.h"
#include "ngx_http_threads_utf8.h"


#define THR_ARGS_ERROR       "invalid_request_error"

#define THR_META_PREFIX      "metadata["
#define THR_META_PREFIX_LEN  (sizeof(THR_META_PREFIX) - 1)

/* what err->param holds: names and values shown are cut to it */
#define THR_SHOW_LEN         sizeof(((thr_error_t *) 0)->param)


typedef enum {
    THR_DECODE_OK = 0,
    THR_DECODE_ESCAPE,
    THR_DECODE_NUL,
    THR_DECODE_UTF8
} thr_decode_e;


typedef struct {
    thr_error_t  *err;
    int           kind;

    /* the last value given of each parameter: decoded, in the scratch */
    char         *limit;
    char         *order;
    char         *after;
    char         *before;
    char         *run_id;
    char         *meta_name;        /* "metadata[KEY]" */
    char         *meta_value;
    char         *meta_other;       /* the first filter on another key */

    /* set by thr_args_metadata() */
    const char   *meta_key;
    size_t        meta_klen;
} thr_args_ctx_t;


static int thr_args_split(thr_args_ctx_t *ctx, const char *args, size_t len,
    char *pos);
static int thr_args_part(thr_args_ctx_t *ctx, const char *raw, size_t len,
    char **pos);
static thr_decode_e thr_args_decode(const char *src, size_t len, char *dst,
    size_t *n);
static int thr_args_hex(char c);
static const char *thr_args_show(const char *s, size_t len, char *buf);
static int thr_args_malformed(thr_error_t *err, const char *name,
    size_t len, thr_decode_e problem);

static int thr_args_limit(thr_args_ctx_t *ctx, unsigned *limit);
static int thr_args_order(thr_args_ctx_t *ctx, unsigned *desc);
static int thr_args_nonempty(thr_args_ctx_t *ctx, const char *name,
    const char *v);
static int thr_args_metadata(thr_args_ctx_t *ctx);
static int thr_args_dup(const char *s, size_t len, char **out);


int
thr_list_args_parse(const char *args, size_t len, int kind,
    thr_list_args_t *out, thr_error_t *err)
{
    int              rc;
    char            *scratch;
    thr_args_ctx_t   ctx;

    out->limit = THR_LIST_LIMIT_DEFAULT;
    out->desc = 1;
    out->after = NULL;
    out->before = NULL;
    out->run_id = NULL;
    out->meta_key = NULL;
    out->meta_value = NULL;

    if (args == NULL) {
        len = 0;
    }

    memset(&ctx, 0, sizeof(thr_args_ctx_t));
    ctx.err = err;
    ctx.kind = kind;

    scratch = NULL;

    /*
     * A part of n bytes decodes to at most n + 2 bytes with its two NULs;
     * parts are not empty and come between '&'s, so there are at most
     * (len + 1) / 2 of them: 2 * len + 2 bytes hold them all.
     */
    if (len != 0) {
        if (len > (SIZE_MAX - 2) / 2) {
            return THR_NOMEM;
        }

        scratch = malloc(2 * len + 2);
        if (scratch == NULL) {
            return THR_NOMEM;
        }
    }

    rc = thr_args_split(&ctx, args, len, scratch);

    if (rc == THR_OK) {
        rc = thr_args_limit(&ctx, &out->limit);
    }

    if (rc == THR_OK) {
        rc = thr_args_order(&ctx, &out->desc);
    }

    if (rc == THR_OK) {
        rc = thr_args_nonempty(&ctx, "after", ctx.after);
    }

    if (rc == THR_OK) {
        rc = thr_args_nonempty(&ctx, "before", ctx.before);
    }

    if (rc == THR_OK) {
        rc = thr_args_nonempty(&ctx, "run_id", ctx.run_id);
    }

    if (rc == THR_OK) {
        rc = thr_args_metadata(&ctx);
    }

    if (rc == THR_OK) {
        if (thr_args_dup(ctx.after, SIZE_MAX, &out->after) != THR_OK
            || thr_args_dup(ctx.before, SIZE_MAX, &out->before) != THR_OK
            || thr_args_dup(ctx.run_id, SIZE_MAX, &out->run_id) != THR_OK
            || thr_args_dup(ctx.meta_key, ctx.meta_klen, &out->meta_key)
               != THR_OK
            || thr_args_dup(ctx.meta_value, SIZE_MAX, &out->meta_value)
               != THR_OK)
        {
            rc = THR_NOMEM;
        }
    }

    free(scratch);

    if (rc != THR_OK) {
        thr_list_args_free(out);
        out->limit = THR_LIST_LIMIT_DEFAULT;
        out->desc = 1;
    }

    return rc;
}


void
thr_list_args_free(thr_list_args_t *a)
{
    free(a->after);
    free(a->before);
    free(a->run_id);
    free(a->meta_key);
    free(a->meta_value);

    a->after = NULL;
    a->before = NULL;
    a->run_id = NULL;
    a->meta_key = NULL;
    a->meta_value = NULL;
}


/* the first pass */

static int
thr_args_split(thr_args_ctx_t *ctx, const char *args, size_t len, char *pos)
{
    int          rc;
    size_t       i, end;
    const char  *amp;

    /* indexes, not pointers: args may be NULL, and NULL + 0 is undefined */
    for (i = 0; i < len; i = end + 1) {
        amp = memchr(args + i, '&', len - i);
        end = (amp != NULL) ? (size_t) (amp - args) : len;

        /* "a&&b", a trailing '&': nothing there */
        if (end == i) {
            continue;
        }

        rc = thr_args_part(ctx, args + i, end - i, &pos);
        if (rc != THR_OK) {
            return rc;
        }
    }

    return THR_OK;
}


/* name[=value]: decoded into *pos, NUL-terminated each; *pos moves on */

static int
thr_args_part(thr_args_ctx_t *ctx, const char *raw, size_t len, char **pos)
{
    char          *name, *value;
    size_t         nlen, n;
    const char    *eq;
    thr_decode_e   problem;

    eq = memchr(raw, '=', len);
    nlen = (eq != NULL) ? (size_t) (eq - raw) : len;

    name = *pos;

    problem = thr_args_decode(raw, nlen, name, &n);

    /* no decoded name to show: show the name as given */
    if (problem != THR_DECODE_OK) {
        return thr_args_malformed(ctx->err, raw, nlen, problem);
    }

    value = name + n + 1;

    if (eq != NULL) {
        problem = thr_args_decode(eq + 1, len - nlen - 1, value, &n);

        if (problem != THR_DECODE_OK) {
            return thr_args_malformed(ctx->err, name, strlen(name),
                                      problem);
        }

    } else {
        /* "name" alone is "name=" */
        value[0] = '\0';
        n = 0;
    }

    *pos = value + n + 1;

    if (strcmp(name, "limit") == 0) {
        ctx->limit = value;

    } else if (strcmp(name, "order") == 0) {
        ctx->order = value;

    } else if (strcmp(name, "after") == 0) {
        ctx->after = value;

    } else if (strcmp(name, "before") == 0) {
        ctx->before = value;

    } else if (ctx->kind == THR_LIST_MESSAGES
               && strcmp(name, "run_id") == 0)
    {
        ctx->run_id = value;

    } else if (ctx->kind == THR_LIST_THREADS
               && strncmp(name, THR_META_PREFIX, THR_META_PREFIX_LEN) == 0)
    {
        /* the same filter again is a duplicate: the last one wins */
        if (ctx->meta_name == NULL || strcmp(ctx->meta_name, name) == 0) {
            ctx->meta_name = name;
            ctx->meta_value = value;

        } else if (ctx->meta_other == NULL) {
            ctx->meta_other = name;
        }
    }

    /* anything else is ignored: SDKs may send parameters of their own */

    return THR_OK;
}


/*
 * Percent-decodes src[0..len) into dst with a NUL after it; '+' is a
 * space.  The result must be UTF-8 without NUL, as it goes into strings
 * and queries.
 */

static thr_decode_e
thr_args_decode(const char *src, size_t len, char *dst, size_t *n)
{
    int                   hi, lo;
    size_t                i, j, k;
    const unsigned char  *p;

    for (i = 0, j = 0; i < len; j++) {

        if (src[i] == '%') {
            hi = (len - i > 1) ? thr_args_hex(src[i + 1]) : -1;
            lo = (len - i > 2) ? thr_args_hex(src[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                return THR_DECODE_ESCAPE;
            }

            dst[j] = (char) (hi << 4 | lo);
            i += 3;

        } else {
            dst[j] = (src[i] == '+') ? ' ' : src[i];
            i++;
        }
    }

    dst[j] = '\0';
    *n = j;

    p = (const unsigned char *) dst;

    for (i = 0; i < j; i += k) {

        if (p[i] == '\0') {
            return THR_DECODE_NUL;
        }

        k = thr_utf8_seq(p + i, j - i);

        if (k == 0) {
            return THR_DECODE_UTF8;
        }
    }

    return THR_DECODE_OK;
}


static int
thr_args_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/*
 * s[0..len), up to a NUL, into buf of THR_SHOW_LEN bytes; when cut, at a
 * character boundary so as not to end in a broken character.
 */

static const char *
thr_args_show(const char *s, size_t len, char *buf)
{
    size_t  n, i;

    for (n = 0; n < len && n < THR_SHOW_LEN - 1 && s[n] != '\0'; n++) {
        /* void */
    }

    if (n < len && s[n] != '\0') {
        /* s[n] is cut off: drop the character it continues, if any */
        for (i = 0; i < 3 && n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80;
             i++)
        {
            n--;
        }
    }

    memcpy(buf, s, n);
    buf[n] = '\0';

    return buf;
}


static int
thr_args_malformed(thr_error_t *err, const char *name, size_t len,
    thr_decode_e problem)
{
    char         buf[THR_SHOW_LEN];
    const char  *why, *param;

    switch (problem) {

    case THR_DECODE_ESCAPE:
        why = "'%' must be followed by two hexadecimal digits";
        break;

    case THR_DECODE_NUL:
        why = "it must not contain NUL characters";
        break;

    default:
        why = "once percent-decoded, it must be valid UTF-8";
    }

    param = thr_args_show(name, len, buf);

    /* "=%zz" has an empty name: JSON null, and no quotes around nothing */
    if (param[0] == '\0') {
        thr_error_set(err, 400, THR_ARGS_ERROR, "invalid_value", NULL,
                      "The query string is malformed: %s.", why);

    } else {
        thr_error_set(err, 400, THR_ARGS_ERROR, "invalid_value", param,
                      "Invalid '%s': the query string is malformed: %s.",
                      param, why);
    }

    return THR_INVALID;
}


/* the second pass */

/*
 * Digits only: no sign, no spaces.  Past INT64_MAX is no integer, as for
 * OpenAI's parser; up to it, a value past the maximum is echoed as its
 * digits, whatever the width of unsigned.
 */

static int
thr_args_limit(thr_args_ctx_t *ctx, unsigned *limit)
{
    uint64_t     v, d;
    const char  *s, *p;

    s = ctx->limit;

    if (s == NULL) {
        return THR_OK;
    }

    v = 0;

    for (p = s; *p >= '0' && *p <= '9'; p++) {
        d = (uint64_t) (*p - '0');

        if (v > (INT64_MAX - d) / 10) {
            break;
        }

        v = v * 10 + d;
    }

    if (p == s || *p != '\0') {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR, "invalid_type", "limit",
                      "Invalid type for 'limit': expected an integer, but "
                      "got a string instead.");
        return THR_INVALID;
    }

    if (v == 0) {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR,
                      "integer_below_min_value", "limit",
                      "Invalid 'limit': integer below minimum value. "
                      "Expected a value >= 1, but got 0 instead.");
        return THR_INVALID;
    }

    if (v > THR_LIST_LIMIT_MAX) {
        /* "0101" is 101, as an integer would print */
        while (*s == '0') {
            s++;
        }

        thr_error_set(ctx->err, 400, THR_ARGS_ERROR,
                      "integer_above_max_value", "limit",
                      "Invalid 'limit': integer above maximum value. "
                      "Expected a value <= %d, but got %s instead.",
                      THR_LIST_LIMIT_MAX, s);
        return THR_INVALID;
    }

    *limit = (unsigned) v;

    return THR_OK;
}


static int
thr_args_order(thr_args_ctx_t *ctx, unsigned *desc)
{
    char         buf[THR_SHOW_LEN];
    const char  *s;

    s = ctx->order;

    if (s == NULL) {
        return THR_OK;
    }

    if (strcmp(s, "asc") == 0) {
        *desc = 0;
        return THR_OK;
    }

    if (strcmp(s, "desc") == 0) {
        *desc = 1;
        return THR_OK;
    }

    thr_error_set(ctx->err, 400, THR_ARGS_ERROR, "invalid_value", "order",
                  "Invalid value: '%s'. Supported values are: 'asc' and "
                  "'desc'.", thr_args_show(s, strlen(s), buf));

    return THR_INVALID;
}


/* after, before, run_id: their format is for the caller to judge */

static int
thr_args_nonempty(thr_args_ctx_t *ctx, const char *name, const char *v)
{
    if (v == NULL || v[0] != '\0') {
        return THR_OK;
    }

    thr_error_set(ctx->err, 400, THR_ARGS_ERROR, "invalid_value", name,
                  "Invalid '%s': expected an ID, but got an empty string "
                  "instead.", name);

    return THR_INVALID;
}


/*
 * One filter, metadata[KEY]=VALUE: KEY is everything between "metadata["
 * and the last byte, which must be ']'.  Keys may hold brackets, so that
 * any key stored can be filtered on.  Lengths are as in metadata objects.
 */

static int
thr_args_metadata(thr_args_ctx_t *ctx)
{
    char         buf[THR_SHOW_LEN], buf2[THR_SHOW_LEN];
    size_t       len, n;
    const char  *name, *other;

    if (ctx->meta_name == NULL) {
        return THR_OK;
    }

    len = strlen(ctx->meta_name);
    name = thr_args_show(ctx->meta_name, len, buf);

    if (ctx->meta_other != NULL) {
        other = thr_args_show(ctx->meta_other, strlen(ctx->meta_other), buf2);

        thr_error_set(ctx->err, 400, THR_ARGS_ERROR, "invalid_value", other,
                      "Invalid '%s': only one metadata filter is supported, "
                      "and '%s' was given already.", other, name);
        return THR_INVALID;
    }

    if (len <= THR_META_PREFIX_LEN || ctx->meta_name[len - 1] != ']') {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR, "invalid_value", name,
                      "Invalid '%s': expected a metadata filter of the form "
                      "'metadata[KEY]=VALUE'.", name);
        return THR_INVALID;
    }

    ctx->meta_key = ctx->meta_name + THR_META_PREFIX_LEN;
    ctx->meta_klen = len - THR_META_PREFIX_LEN - 1;

    n = thr_utf8_chars(ctx->meta_key, ctx->meta_klen);

    if (n == 0) {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR,
                      "string_below_min_length", name,
                      "Invalid '%s': string too short. Expected a metadata "
                      "key with minimum length 1, but got an empty string "
                      "instead.", name);
        return THR_INVALID;
    }

    if (n > THR_MAX_METADATA_KEY) {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR,
                      "string_above_max_length", name,
                      "Invalid '%s': string too long. Expected a metadata "
                      "key with maximum length %d, but got a key with "
                      "length %zu instead.", name, THR_MAX_METADATA_KEY, n);
        return THR_INVALID;
    }

    n = thr_utf8_chars(ctx->meta_value, strlen(ctx->meta_value));

    if (n > THR_MAX_METADATA_VALUE) {
        thr_error_set(ctx->err, 400, THR_ARGS_ERROR,
                      "string_above_max_length", name,
                      "Invalid '%s': string too long. Expected a string with "
                      "maximum length %d, but got a string with length %zu "
                      "instead.", name, THR_MAX_METADATA_VALUE, n);
        return THR_INVALID;
    }

    return THR_OK;
}


/* A copy of s[0..len), all of s if len is SIZE_MAX; s NULL: *out stays. */

static int
thr_args_dup(const char *s, size_t len, char **out)
{
    if (s == NULL) {
        return THR_OK;
    }

    if (len == SIZE_MAX) {
        len = strlen(s);
    }

    *out = malloc(len + 1);
    if (*out == NULL) {
        return THR_NOMEM;
    }

    memcpy(*out, s, len);
    (*out)[len] = '\0';

    return THR_OK;
}
