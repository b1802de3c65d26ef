/*
 * Object ids: a prefix ("thread_", "msg_") and 24 characters of
 * [A-Za-z0-9] drawn from getrandom(2); request ids.  Plain C, no nginx
 * types.
 */

#ifndef NGX_HTTP_THREADS_ID_H_INCLUDED_
#define NGX_HTTP_THREADS_ID_H_INCLUDED_

#include <stddef.h>


#define THR_ID_CHARS          24
#define THR_REQUEST_ID_CHARS  32

/*
 * Fills dst with n bytes from the kernel's CSPRNG, drawn through a small
 * per-thread buffer.  Returns 0, or -1 if the kernel gave none (errno set).
 */
int thr_random(unsigned char *dst, size_t n);

/* Wipes the calling thread's buffer: a new process must draw its own. */
void thr_random_forget(void);

/*
 * Writes 32 lowercase hex characters (16 random bytes, no NUL) into dst:
 * an x-request-id, in the format of nginx's $request_id.  Returns 0 or -1.
 */
int thr_request_id(char *dst);

/*
 * Writes prefix, 24 random characters and a NUL into dst, which holds at
 * least strlen(prefix) + 25 bytes.  Returns 0, or -1 if the kernel gave no
 * randomness (errno set).
 */
int thr_id_make(char *dst, const char *prefix);

/*
 * Writes the 24 characters of an id (no prefix, no NUL) into dst from
 * hash, 24 bytes or more of a cryptographic hash: the id of a keyed
 * create, the same for the same key.
 */
void thr_id_from_hash(char *dst, const unsigned char *hash);

/* 1 if s (not NUL-terminated) is prefix followed by exactly 24 [A-Za-z0-9]. */
int thr_id_is_valid(const char *s, size_t len, const char *prefix);


#endif /* NGX_HTTP_THREADS_ID_H_INCLUDED_ */
