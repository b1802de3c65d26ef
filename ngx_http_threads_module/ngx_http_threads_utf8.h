/*
 * UTF-8 for the validation code: one decoder shared by the request bodies
 * (ngx_http_threads_json.c) and the query strings (ngx_http_threads_args.c).
 *
 * Plain C, free of nginx types and of any state.
 */

#ifndef NGX_HTTP_THREADS_UTF8_H_INCLUDED_
#define NGX_HTTP_THREADS_UTF8_H_INCLUDED_

#include <stddef.h>


/*
 * The length (1 to 4) of the well-formed UTF-8 character at p, of the
 * left > 0 bytes there, or 0.  As strict as jansson's own check: no
 * overlong forms, no surrogates, nothing past U+10FFFF, no character cut
 * short by the end.
 */
size_t thr_utf8_seq(const unsigned char *p, size_t left);

/* Code points in valid UTF-8: the bytes that are not continuations. */
size_t thr_utf8_chars(const char *s, size_t len);

/*
 * The length of s[0..len) without a character cut short at its end: where
 * to cut a string so as not to end in a broken character.
 */
size_t thr_utf8_trim(const char *s, size_t len);


#endif /* NGX_HTTP_THREADS_UTF8_H_INCLUDED_ */
