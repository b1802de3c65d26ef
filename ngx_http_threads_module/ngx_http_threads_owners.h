/*
 * A worker's cache of owner digests: the hex SHA-256 of the raw
 * threads_owner value (an API key, usually), kept for the keys seen last,
 * so that a client's requests after its first cost no hash.  Plain C, no
 * nginx types; one table per process, used from the event loop only.
 */

#ifndef NGX_HTTP_THREADS_OWNERS_H_INCLUDED_
#define NGX_HTTP_THREADS_OWNERS_H_INCLUDED_

#include <stddef.h>


#define THR_OWNERS_VALUE_MAX   256    /* longer values are never cached */
#define THR_OWNERS_DIGEST_LEN  64     /* hex SHA-256, no NUL */
#define THR_OWNERS_SETS        128
#define THR_OWNERS_WAYS        2

/*
 * Copies the digest of value (len bytes) into digest, which holds
 * THR_OWNERS_DIGEST_LEN bytes, and returns 1 when it is cached; returns 0
 * otherwise.
 */
int thr_owners_get(const unsigned char *value, size_t len, char *digest);

/*
 * Caches digest (THR_OWNERS_DIGEST_LEN bytes) for value, in place of the
 * entry of its set used least recently.  Values longer than
 * THR_OWNERS_VALUE_MAX, or empty, are not cached.
 */
void thr_owners_put(const unsigned char *value, size_t len,
    const char *digest);

/* Wipes every entry: a new process starts empty, no key kept. */
void thr_owners_forget(void);


#endif /* NGX_HTTP_THREADS_OWNERS_H_INCLUDED_ */
