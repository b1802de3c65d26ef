/*
 * The SQL of every statement, each written out whole.  Included by
 * ngx_http_threads_ops.c alone, which names them in its statement table.
 *
 * Every statement filters by owner ($1) and names ids as parameters, so
 * that a planner distributing by owner routes each to one shard.  Each
 * returns no row when the thread is not there (another owner's included),
 * else one row whose first column is the response body, built here as
 * JSON text so that the worker neither parses nor re-serializes it.
 *
 * Listings are keyset pages over seq, the creation order: rows strictly
 * between the cursors lo and hi (seq of a live row or of a tombstone, so
 * that a deleted cursor still pages), scanned in one direction (r),
 * cut at the page's limit or at its byte budget, whichever comes
 * first but never below one item (p), and returned in the listing's
 * order.  Each direction is its own statement, so that every page is an
 * index range scan.  The row is (body, missing): body NULL and missing
 * 'lo' or 'hi' when a cursor names nothing.
 */

#ifndef NGX_HTTP_THREADS_SQL_H_INCLUDED_
#define NGX_HTTP_THREADS_SQL_H_INCLUDED_


/*
 * A new thread's messages ($5) and metadata pairs ($3), after its row in
 * t: the CTEs m and p of the thread creates, plain and keyed.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_ROWS \
    "m AS (" \
    " INSERT INTO public.messages (owner, thread_id, id, created_at, role," \
    "  content, attachments, metadata)" \
    " SELECT $1, t.id, e->>'id', t.created_at, e->>'role', e->'content'," \
    "  e->'attachments', e->'metadata'" \
    " FROM t, jsonb_array_elements($5::jsonb) WITH ORDINALITY AS x(e, n)" \
    " ORDER BY n), " \
    "p AS (" \
    " INSERT INTO public.thread_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', t.seq" \
    " FROM t, jsonb_each($3::jsonb) e" \
    " WHERE jsonb_typeof(e.value) = 'string') "

/*
 * $1 owner, $2 id, $3 metadata, $4 tool_resources, $5 messages (an array
 * of message objects): the thread, its messages and its metadata pairs
 * (thread_metadata, for filtered listings) in one statement, one
 * transaction.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_CREATE \
    "WITH t AS (" \
    " INSERT INTO public.threads (owner, id, created_at, metadata, tool_resources)" \
    " VALUES ($1, $2, floor(extract(epoch FROM now()))::bigint," \
    "  $3::jsonb, $4::jsonb)" \
    " RETURNING id, seq, created_at, metadata, tool_resources), " \
    NGX_HTTP_THREADS_SQL_THREAD_ROWS \
    "SELECT json_build_object('id', id, 'object', 'thread'," \
    " 'created_at', created_at, 'metadata', metadata," \
    " 'tool_resources', tool_resources)::text " \
    "FROM t"

/* $1 owner, $2 id */
#define NGX_HTTP_THREADS_SQL_THREAD_RETRIEVE \
    "SELECT json_build_object('id', id, 'object', 'thread'," \
    " 'created_at', created_at, 'metadata', metadata," \
    " 'tool_resources', tool_resources)::text " \
    "FROM public.threads WHERE owner = $1 AND id = $2"

/*
 * $1 owner, $2 id, $3 metadata, $4 tool_resources: NULL leaves as is.  New
 * metadata replaces the thread's pairs: those it no longer has go (found
 * by the thread's seq, thread_metadata_seq: a pair that thousands of the
 * owner's threads share costs no more than a rare one), those it has are
 * there after (ON CONFLICT DO NOTHING keeps the ones it kept).  The seq
 * is a subquery's, so that even a generic plan probes by it.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_MODIFY \
    "WITH u AS (UPDATE public.threads SET" \
    " metadata = COALESCE($3::jsonb, metadata)," \
    " tool_resources = COALESCE($4::jsonb, tool_resources)" \
    " WHERE owner = $1 AND id = $2" \
    " RETURNING id, seq, created_at, metadata, tool_resources), " \
    "d AS (DELETE FROM public.thread_metadata k" \
    " WHERE $3::jsonb IS NOT NULL AND k.owner = $1" \
    "  AND k.seq = (SELECT seq FROM u)" \
    "  AND NOT $3::jsonb @> jsonb_build_object(k.key, k.value)), " \
    "p AS (INSERT INTO public.thread_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', u.seq" \
    " FROM u, jsonb_each($3::jsonb) e" \
    " WHERE jsonb_typeof(e.value) = 'string'" \
    " ON CONFLICT DO NOTHING) " \
    "SELECT json_build_object('id', id, 'object', 'thread'," \
    " 'created_at', created_at, 'metadata', metadata," \
    " 'tool_resources', tool_resources)::text " \
    "FROM u"

/*
 * $1 owner, $2 id; messages go with it (ON DELETE CASCADE), its metadata
 * pairs too (by its seq, as in THREAD_MODIFY); the tombstone keeps listings that use it
 * as a cursor paging.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_DELETE \
    "WITH d AS (DELETE FROM public.threads WHERE owner = $1 AND id = $2" \
    " RETURNING id, seq, created_at, key_digest), " \
    "s AS (INSERT INTO public.thread_tombstones (owner, id, seq, created_at," \
    "  key_digest)" \
    " SELECT $1, $2, seq, created_at, key_digest FROM d" \
    " ON CONFLICT DO NOTHING), " \
    "p AS (DELETE FROM public.thread_metadata k" \
    " WHERE k.owner = $1 AND k.seq = (SELECT seq FROM d)) " \
    "SELECT json_build_object('id', id, 'object', 'thread.deleted'," \
    " 'deleted', true)::text " \
    "FROM d"

/*
 * $1 owner, $2 limit, $3 lo id, $4 hi id, $5 byte budget.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_LIST_DF \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.threads x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* thread list, oldest first, after a cursor */
#define NGX_HTTP_THREADS_SQL_THREAD_LIST_AF \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.threads x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* thread list, newest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_THREAD_LIST_DB \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.threads x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* thread list, oldest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_THREAD_LIST_AB \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.threads x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/*
 * The same listings filtered by one metadata pair: $1 owner, $2 limit,
 * $3 lo id, $4 hi id, $5 byte budget, $6 the key, $7 its value.  The
 * page's rows come from the thread_metadata index (owner, key, value, seq),
 * a range scan that stops at the page's limit, each joined to its thread
 * by (owner, seq): a lateral subquery with a LIMIT, so that the planner
 * can neither flatten it into a merge join over the owner's whole range
 * nor sort.  The thread's metadata is checked again, so that a pair left
 * over (see scripts/schema.sql, version 6) is never listed.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_FILTER_DF \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.thread_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata, t.tool_resources" \
    "   FROM public.threads t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_THREAD_FILTER_AF \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.thread_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata, t.tool_resources" \
    "   FROM public.threads t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_THREAD_FILTER_DB \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.thread_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata, t.tool_resources" \
    "   FROM public.threads t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_THREAD_FILTER_AB \
    "WITH lo AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.threads WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.thread_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread', " \
    "   'created_at', x.created_at, 'metadata', x.metadata, " \
    "   'tool_resources', x.tool_resources) AS j " \
    "  FROM public.thread_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata, t.tool_resources" \
    "   FROM public.threads t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"



/*
 * $1 owner, $2 thread, $3 message object, $4 message id; the thread row is
 * locked against a concurrent delete.
 */
#define NGX_HTTP_THREADS_SQL_MESSAGE_CREATE \
    "WITH t AS (SELECT id FROM public.threads WHERE owner = $1 AND id = $2" \
    " FOR KEY SHARE), " \
    "m AS (INSERT INTO public.messages (owner, thread_id, id, created_at, role," \
    "  content, attachments, metadata)" \
    " SELECT $1, $2, $4, floor(extract(epoch FROM now()))::bigint," \
    "  $3::jsonb->>'role', $3::jsonb->'content'," \
    "  $3::jsonb->'attachments', $3::jsonb->'metadata' FROM t" \
    " RETURNING *) " \
    "SELECT json_build_object('id', id, 'object', 'thread.message'," \
    " 'created_at', created_at, 'thread_id', thread_id," \
    " 'status', 'completed', 'incomplete_details', NULL," \
    " 'completed_at', created_at, 'incomplete_at', NULL," \
    " 'role', role, 'content', content," \
    " 'assistant_id', assistant_id, 'run_id', run_id," \
    " 'attachments', attachments, 'metadata', metadata)::text " \
    "FROM m"

/* $1 owner, $2 thread, $3 message: a NULL body is a missing message */
#define NGX_HTTP_THREADS_SQL_MESSAGE_RETRIEVE \
    "SELECT (SELECT json_build_object('id', m.id, 'object', 'thread.message'," \
    "  'created_at', m.created_at, 'thread_id', m.thread_id," \
    "  'status', 'completed', 'incomplete_details', NULL," \
    "  'completed_at', m.created_at, 'incomplete_at', NULL," \
    "  'role', m.role, 'content', m.content," \
    "  'assistant_id', m.assistant_id, 'run_id', m.run_id," \
    "  'attachments', m.attachments, 'metadata', m.metadata)::text" \
    " FROM public.messages m" \
    " WHERE m.owner = $1 AND m.thread_id = $2 AND m.id = $3) " \
    "FROM public.threads WHERE owner = $1 AND id = $2"

/* $1 owner, $2 thread, $3 message, $4 metadata or NULL */
#define NGX_HTTP_THREADS_SQL_MESSAGE_MODIFY \
    "WITH u AS (UPDATE public.messages SET metadata = COALESCE($4::jsonb, metadata)" \
    " WHERE owner = $1 AND thread_id = $2 AND id = $3 RETURNING *) " \
    "SELECT (SELECT json_build_object('id', u.id, 'object', 'thread.message'," \
    "  'created_at', u.created_at, 'thread_id', u.thread_id," \
    "  'status', 'completed', 'incomplete_details', NULL," \
    "  'completed_at', u.created_at, 'incomplete_at', NULL," \
    "  'role', u.role, 'content', u.content," \
    "  'assistant_id', u.assistant_id, 'run_id', u.run_id," \
    "  'attachments', u.attachments, 'metadata', u.metadata)::text" \
    " FROM u) " \
    "FROM public.threads WHERE owner = $1 AND id = $2"

/* $1 owner, $2 thread, $3 message */
#define NGX_HTTP_THREADS_SQL_MESSAGE_DELETE \
    "WITH d AS (DELETE FROM public.messages" \
    " WHERE owner = $1 AND thread_id = $2 AND id = $3" \
    " RETURNING id, seq, created_at, key_digest), " \
    "s AS (INSERT INTO public.message_tombstones (owner, thread_id, id, seq," \
    "  created_at, key_digest)" \
    " SELECT $1, $2, $3, seq, created_at, key_digest FROM d" \
    " ON CONFLICT DO NOTHING) " \
    "SELECT (SELECT json_build_object('id', id," \
    "  'object', 'thread.message.deleted', 'deleted', true)::text FROM d) " \
    "FROM public.threads WHERE owner = $1 AND id = $2"

/*
 * $1 owner, $2 thread, $3 limit, $4 lo id, $5 hi id, $6 run_id, $7 byte
 * budget.
 */
#define NGX_HTTP_THREADS_SQL_MESSAGE_LIST_DF \
    "WITH lo AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread.message', " \
    "   'created_at', x.created_at, 'thread_id', x.thread_id, " \
    "   'status', 'completed', 'incomplete_details', NULL, " \
    "   'completed_at', x.created_at, 'incomplete_at', NULL, " \
    "   'role', x.role, 'content', x.content, " \
    "   'assistant_id', x.assistant_id, 'run_id', x.run_id, " \
    "   'attachments', x.attachments, 'metadata', x.metadata) AS j " \
    "  FROM public.messages x WHERE x.owner = $1 AND x.thread_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "   AND ($6::text IS NULL OR x.run_id = $6) " \
    "  ORDER BY x.seq DESC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $7::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.threads t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* message list, oldest first, after a cursor */
#define NGX_HTTP_THREADS_SQL_MESSAGE_LIST_AF \
    "WITH lo AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread.message', " \
    "   'created_at', x.created_at, 'thread_id', x.thread_id, " \
    "   'status', 'completed', 'incomplete_details', NULL, " \
    "   'completed_at', x.created_at, 'incomplete_at', NULL, " \
    "   'role', x.role, 'content', x.content, " \
    "   'assistant_id', x.assistant_id, 'run_id', x.run_id, " \
    "   'attachments', x.attachments, 'metadata', x.metadata) AS j " \
    "  FROM public.messages x WHERE x.owner = $1 AND x.thread_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "   AND ($6::text IS NULL OR x.run_id = $6) " \
    "  ORDER BY x.seq ASC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $7::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.threads t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* message list, newest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_MESSAGE_LIST_DB \
    "WITH lo AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread.message', " \
    "   'created_at', x.created_at, 'thread_id', x.thread_id, " \
    "   'status', 'completed', 'incomplete_details', NULL, " \
    "   'completed_at', x.created_at, 'incomplete_at', NULL, " \
    "   'role', x.role, 'content', x.content, " \
    "   'assistant_id', x.assistant_id, 'run_id', x.run_id, " \
    "   'attachments', x.attachments, 'metadata', x.metadata) AS j " \
    "  FROM public.messages x WHERE x.owner = $1 AND x.thread_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "   AND ($6::text IS NULL OR x.run_id = $6) " \
    "  ORDER BY x.seq ASC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $7::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.threads t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* message list, oldest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_MESSAGE_LIST_AB \
    "WITH lo AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.messages " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.message_tombstones " \
    "  WHERE owner = $1 AND thread_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'thread.message', " \
    "   'created_at', x.created_at, 'thread_id', x.thread_id, " \
    "   'status', 'completed', 'incomplete_details', NULL, " \
    "   'completed_at', x.created_at, 'incomplete_at', NULL, " \
    "   'role', x.role, 'content', x.content, " \
    "   'assistant_id', x.assistant_id, 'run_id', x.run_id, " \
    "   'attachments', x.attachments, 'metadata', x.metadata) AS j " \
    "  FROM public.messages x WHERE x.owner = $1 AND x.thread_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "   AND ($6::text IS NULL OR x.run_id = $6) " \
    "  ORDER BY x.seq DESC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $7::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.threads t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"


/*
 * Creates with an Idempotency-Key.  A keyed create of one object (thread,
 * message, conversation) writes nothing beside it: its id is derived from
 * the owner, the route and the key (the handler hashes them), and the
 * digest of its method, path and body is a column of its row (key_digest,
 * NULL for unkeyed rows).  The derived id ends in "AA", generation 0; a
 * key used again after it expired (its object's created_at more than ttl
 * seconds old: PostgreSQL's clock, the same for every nginx) makes the
 * next generation, the same id with its last two characters n's, in the
 * ids' alphabet.  A key makes 100 generations at most, then is "reused"
 * for good: the walk's cost stays bounded (200 look-ups at worst).
 * A key's generations are contiguous: the walk w below reads them from 0
 * among the rows and their tombstones (a deleted object's key still
 * replays), one look-up each, until the first missing or live one.  The
 * row is (body, state):
 *
 *   new     the object was created: body is the answer
 *   replay  the key's live object has this digest: body is its answer,
 *           built again from the same parameters, byte for byte
 *   reused  the key's live object has another digest (body NULL)
 *   busy    another statement holds the key right now, or committed it
 *           after this one's snapshot was taken (body NULL): retry later
 *   missing (messages) the thread is not there (body NULL)
 *
 * A transaction-scoped advisory lock on the key's hash, taken without
 * waiting, tells a request in flight; the primary key and ON CONFLICT DO
 * NOTHING make a second object of one generation impossible whatever the
 * timing.
 */

/* A key's last generation (100 in all; threads_key_walk's too). */
#define NGX_HTTP_THREADS_SQL_KEY_LAST  "99"

/* The ids' alphabet (ngx_http_threads_id.c), for the generations. */
#define NGX_HTTP_THREADS_SQL_KEY_ALPHABET \
    "'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'"

/* The id of generation n (SQL integers) of the key whose id is id. */
#define NGX_HTTP_THREADS_SQL_KEY_GEN(id, n) \
    "left(" id "::text, -2)" \
    " || substr(" NGX_HTTP_THREADS_SQL_KEY_ALPHABET ", (" n ") / 62 + 1, 1)" \
    " || substr(" NGX_HTTP_THREADS_SQL_KEY_ALPHABET ", (" n ") % 62 + 1, 1)"

/* A key's object of the given id, among the rows and the tombstones (x,
 * which scope may name). */
#define NGX_HTTP_THREADS_SQL_KEY_PROBE(table, tomb, scope, id) \
    "SELECT x.id, x.created_at, x.key_digest FROM public." table " x" \
    " WHERE x.owner = $1" scope " AND x.id = " id \
    "  AND x.key_digest IS NOT NULL" \
    " UNION ALL SELECT x.id, x.created_at, x.key_digest" \
    " FROM public." tomb " x" \
    " WHERE x.owner = $1" scope " AND x.id = " id \
    "  AND x.key_digest IS NOT NULL LIMIT 1"

/*
 * That generation has expired: created_at has whole seconds, so a key is
 * kept more than ttl seconds and at most one more.
 */
#define NGX_HTTP_THREADS_SQL_KEY_EXPIRED(at, ttl) \
    at " < floor(extract(epoch FROM now()))::bigint - " ttl "::bigint"

/*
 * The lock l; the walk w over the generations of the key whose id is id;
 * k, the last generation found (none: no row) and whether it expired; g,
 * the id to create (NULL: none, the key is live or used up).  The caller's
 * statement begins WITH RECURSIVE.
 */
#define NGX_HTTP_THREADS_SQL_KEY_WALK(table, tomb, scope, id, lock, ttl) \
    "l AS (SELECT pg_try_advisory_xact_lock(" lock "::bigint) AS got), " \
    "w (n, id, created_at, key_digest) AS (" \
    " SELECT 0, r.id, r.created_at, r.key_digest FROM (" \
    NGX_HTTP_THREADS_SQL_KEY_PROBE(table, tomb, scope, id "::text") ") r" \
    " UNION ALL SELECT w.n + 1, r.id, r.created_at, r.key_digest" \
    " FROM w, LATERAL (" \
    NGX_HTTP_THREADS_SQL_KEY_PROBE(table, tomb, scope, \
        "(" NGX_HTTP_THREADS_SQL_KEY_GEN(id, "w.n + 1") ")") ") r" \
    " WHERE w.n < " NGX_HTTP_THREADS_SQL_KEY_LAST \
    "  AND " NGX_HTTP_THREADS_SQL_KEY_EXPIRED("w.created_at", ttl) "), " \
    "k AS (SELECT w.n, w.id, w.created_at, w.key_digest," \
    " " NGX_HTTP_THREADS_SQL_KEY_EXPIRED("w.created_at", ttl) " AS expired" \
    " FROM w ORDER BY w.n DESC LIMIT 1), " \
    "g AS (SELECT CASE WHEN k.n IS NULL THEN " id "::text" \
    "  WHEN k.expired AND k.n < " NGX_HTTP_THREADS_SQL_KEY_LAST " THEN " \
    NGX_HTTP_THREADS_SQL_KEY_GEN(id, "k.n + 1") " END AS id" \
    " FROM (SELECT 1) o LEFT JOIN k ON true), "

/*
 * The state, as above, from l, k and the created row (ins, created_at
 * not NULL when it was made); its id and created_at, the new row's or
 * the key's live one's.
 */
#define NGX_HTTP_THREADS_SQL_KEY_STATE(ins, digest, missing) \
    " (SELECT CASE WHEN NOT l.got THEN 'busy'" \
    "  WHEN " ins ".created_at IS NOT NULL THEN 'new'" \
    "  WHEN k.n IS NOT NULL AND NOT k.expired" \
    "   AND k.key_digest = decode(" digest ", 'hex') THEN 'replay'" \
    "  WHEN k.n IS NOT NULL AND NOT k.expired THEN 'reused'" \
    "  WHEN k.n IS NOT NULL AND g.id IS NULL THEN 'reused'" \
    missing \
    "  ELSE 'busy' END AS state," \
    " COALESCE(" ins ".id, k.id) AS id," \
    " COALESCE(" ins ".created_at, k.created_at) AS created_at" \
    " FROM l LEFT JOIN k ON true LEFT JOIN g ON true" \
    " LEFT JOIN " ins " ON true) s"

/*
 * $1 owner, $2 the key's id (generation 0), $3 metadata, $4
 * tool_resources, $5 messages, $6 digest (hex), $7 the key's lock, $8
 * seconds the key is kept.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_CREATE_KEYED \
    "WITH RECURSIVE " \
    NGX_HTTP_THREADS_SQL_KEY_WALK("threads", "thread_tombstones", "", \
                                  "$2", "$7", "$8") \
    "t AS (" \
    " INSERT INTO public.threads (owner, id, created_at, metadata," \
    "  tool_resources, key_digest)" \
    " SELECT $1, g.id, floor(extract(epoch FROM now()))::bigint," \
    "  $3::jsonb, $4::jsonb, decode($6, 'hex')" \
    " FROM l, g WHERE l.got AND g.id IS NOT NULL" \
    " ON CONFLICT DO NOTHING RETURNING id, seq, created_at), " \
    NGX_HTTP_THREADS_SQL_THREAD_ROWS \
    "SELECT CASE WHEN s.state IN ('new', 'replay') THEN" \
    " json_build_object('id', s.id, 'object', 'thread'," \
    " 'created_at', s.created_at, 'metadata', $3::jsonb," \
    " 'tool_resources', $4::jsonb)::text END, s.state " \
    "FROM" NGX_HTTP_THREADS_SQL_KEY_STATE("t", "$6", "")

/*
 * The keyed create of a key not seen before, the common case, costs
 * little more than a plain create: the thread of generation 0 goes in
 * only if this statement holds the key's lock and no tombstone has its
 * id (the primary key's ON CONFLICT finds a live thread of it without a
 * look-up of its own), and the row is (body, 'new'), or there is no row.
 * No row: the key was seen, or is held, or committed after this
 * snapshot, and the module sends THREAD_CREATE_KEYED, which tells
 * replay, reused, busy and an expired key apart: a second round trip for
 * retries only.  Its parameters are the full statement's first seven.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_CREATE_KEYED_NEW \
    "WITH t AS (" \
    " INSERT INTO public.threads (owner, id, created_at, metadata," \
    "  tool_resources, key_digest)" \
    " SELECT $1, $2, floor(extract(epoch FROM now()))::bigint," \
    "  $3::jsonb, $4::jsonb, decode($6, 'hex')" \
    " WHERE pg_try_advisory_xact_lock($7::bigint)" \
    "  AND NOT EXISTS (SELECT 1 FROM public.thread_tombstones y" \
    "   WHERE y.owner = $1 AND y.id = $2::text" \
    "    AND y.key_digest IS NOT NULL)" \
    " ON CONFLICT DO NOTHING RETURNING id, seq, created_at), " \
    NGX_HTTP_THREADS_SQL_THREAD_ROWS \
    "SELECT json_build_object('id', $2::text, 'object', 'thread'," \
    " 'created_at', t.created_at, 'metadata', $3::jsonb," \
    " 'tool_resources', $4::jsonb)::text, 'new' FROM t"

/*
 * $1 owner, $2 thread, $3 message object, $4 the key's message id
 * (generation 0), $5 digest, $6 the key's lock, $7 seconds it is kept.
 */
#define NGX_HTTP_THREADS_SQL_MESSAGE_CREATE_KEYED \
    "WITH RECURSIVE " \
    NGX_HTTP_THREADS_SQL_KEY_WALK("messages", "message_tombstones", \
                                  " AND x.thread_id = $2", "$4", "$6", "$7") \
    "t AS (SELECT id FROM public.threads WHERE owner = $1 AND id = $2" \
    " FOR KEY SHARE), " \
    "m AS (INSERT INTO public.messages (owner, thread_id, id, created_at, role," \
    "  content, attachments, metadata, key_digest)" \
    " SELECT $1, $2, g.id, floor(extract(epoch FROM now()))::bigint," \
    "  $3::jsonb->>'role', $3::jsonb->'content'," \
    "  $3::jsonb->'attachments', $3::jsonb->'metadata', decode($5, 'hex')" \
    " FROM l, t, g WHERE l.got AND g.id IS NOT NULL" \
    " ON CONFLICT DO NOTHING RETURNING id, created_at) " \
    "SELECT CASE WHEN s.state IN ('new', 'replay') THEN" \
    " json_build_object('id', s.id, 'object', 'thread.message'," \
    " 'created_at', s.created_at, 'thread_id', $2::text," \
    " 'status', 'completed', 'incomplete_details', NULL," \
    " 'completed_at', s.created_at, 'incomplete_at', NULL," \
    " 'role', $3::jsonb->>'role', 'content', $3::jsonb->'content'," \
    " 'assistant_id', NULL::text, 'run_id', NULL::text," \
    " 'attachments', $3::jsonb->'attachments'," \
    " 'metadata', $3::jsonb->'metadata')::text END, s.state " \
    "FROM" NGX_HTTP_THREADS_SQL_KEY_STATE("m", "$5", \
        "  WHEN NOT EXISTS (SELECT 1 FROM t) THEN 'missing'")

/*
 * $1 owner, $2 the key's id (generation 0), $3 metadata, $4 items, $5
 * digest, $6 the key's lock, $7 seconds it is kept.
 */
#define NGX_HTTP_THREADS_SQL_CONV_CREATE_KEYED \
    "WITH RECURSIVE " \
    NGX_HTTP_THREADS_SQL_KEY_WALK("conversations", \
                                  "conversation_tombstones", "", \
                                  "$2", "$6", "$7") \
    "c AS (" \
    " INSERT INTO public.conversations (owner, id, created_at, metadata," \
    "  key_digest)" \
    " SELECT $1, g.id, floor(extract(epoch FROM now()))::bigint, $3::jsonb," \
    "  decode($5, 'hex')" \
    " FROM l, g WHERE l.got AND g.id IS NOT NULL" \
    " ON CONFLICT DO NOTHING RETURNING id, seq, created_at), " \
    "i AS (" \
    " INSERT INTO public.conversation_items (owner, conversation_id, id," \
    "  created_at, item)" \
    " SELECT $1, c.id, e->>'id', c.created_at, e" \
    " FROM c, jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x(e, n)" \
    " ORDER BY n), " \
    "p AS (" \
    " INSERT INTO public.conversation_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', c.seq" \
    " FROM c, jsonb_each($3::jsonb) e" \
    " WHERE jsonb_typeof(e.value) = 'string') " \
    "SELECT CASE WHEN s.state IN ('new', 'replay') THEN" \
    " json_build_object('id', s.id, 'object', 'conversation'," \
    " 'created_at', s.created_at, 'metadata', $3::jsonb)::text END," \
    " s.state " \
    "FROM" NGX_HTTP_THREADS_SQL_KEY_STATE("c", "$5", "")

/*
 * Items added with a key are several objects whose ids are in the answer:
 * the answer is kept whole in idempotency_keys, written in the same
 * statement.  One keyed add in 8 (by the key's hash) prunes up to 32
 * expired keys of the same owner through the (owner, expires_at) index:
 * o is materialized so that it is read once, and SKIP LOCKED never waits.
 *
 * $1 owner, $2 conversation, $3 items, $4 key, $5 digest, $6 seconds the
 * key is kept.
 */
#define NGX_HTTP_THREADS_SQL_ITEMS_CREATE_KEYED \
    "WITH l AS (SELECT pg_try_advisory_xact_lock(hashtext($1)," \
    " hashtext($4)) AS got), " \
    "k AS (SELECT digest, body FROM public.idempotency_keys" \
    " WHERE owner = $1 AND key = $4 AND expires_at > now()), " \
    "c AS (SELECT id FROM public.conversations" \
    " WHERE owner = $1 AND id = $2 FOR KEY SHARE), " \
    "i AS (INSERT INTO public.conversation_items (owner, conversation_id, id," \
    "  created_at, item)" \
    " SELECT $1, $2, e->>'id', floor(extract(epoch FROM now()))::bigint, e" \
    " FROM l, c, jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, n)" \
    " WHERE l.got AND NOT EXISTS (SELECT 1 FROM k)" \
    " ORDER BY n RETURNING seq, id, item), " \
    "a AS (SELECT json_build_object('object', 'list'," \
    " 'data', COALESCE((SELECT json_agg(item ORDER BY seq) FROM i)," \
    "  '[]'::json)," \
    " 'first_id', (SELECT id FROM i ORDER BY seq ASC LIMIT 1)," \
    " 'last_id', (SELECT id FROM i ORDER BY seq DESC LIMIT 1)," \
    " 'has_more', false)::text AS body), " \
    "s AS (INSERT INTO public.idempotency_keys (owner, key, digest, body," \
    "  created_at, expires_at)" \
    " SELECT $1, $4, $5, a.body, now(), now() + $6::bigint * interval '1 second'" \
    " FROM a WHERE EXISTS (SELECT 1 FROM i)" \
    " ON CONFLICT (owner, key) DO UPDATE SET digest = excluded.digest," \
    "  body = excluded.body, created_at = excluded.created_at," \
    "  expires_at = excluded.expires_at" \
    "  WHERE public.idempotency_keys.expires_at <= now()" \
    " RETURNING body), " \
    "o AS MATERIALIZED (SELECT key FROM public.idempotency_keys" \
    " WHERE owner = $1 AND expires_at < now() AND key <> $4" \
    "  AND hashtext($4) & 7 = 0 AND EXISTS (SELECT 1 FROM s)" \
    " ORDER BY expires_at LIMIT 32 FOR UPDATE SKIP LOCKED), " \
    "p AS (DELETE FROM public.idempotency_keys" \
    " WHERE owner = $1 AND key = ANY (ARRAY(SELECT key FROM o))" \
    "  AND expires_at < now()) " \
    "SELECT CASE WHEN NOT l.got THEN NULL" \
    "  WHEN k.digest = $5 THEN k.body" \
    "  WHEN k.digest IS NULL THEN (SELECT body FROM s) END," \
    " CASE WHEN NOT l.got THEN 'busy'" \
    "  WHEN k.digest = $5 THEN 'replay'" \
    "  WHEN k.digest IS NOT NULL THEN 'reused'" \
    "  WHEN EXISTS (SELECT 1 FROM s) THEN 'new'" \
    "  WHEN NOT EXISTS (SELECT 1 FROM c) THEN 'missing'" \
    "  ELSE 'busy' END " \
    "FROM l LEFT JOIN k ON true"


/*
 * Conversations (OpenAI's Conversations API).  An item is stored whole, as
 * the API returns it, in conversation_items.item; its id is also a column.
 */

/*
 * $1 owner, $2 id, $3 metadata, $4 items (an array of item objects, each
 * with its id): the conversation, its items and its metadata pairs
 * (conversation_metadata) in one statement.
 */
#define NGX_HTTP_THREADS_SQL_CONV_CREATE \
    "WITH c AS (" \
    " INSERT INTO public.conversations (owner, id, created_at, metadata)" \
    " VALUES ($1, $2, floor(extract(epoch FROM now()))::bigint, $3::jsonb)" \
    " RETURNING id, seq, created_at, metadata), " \
    "i AS (" \
    " INSERT INTO public.conversation_items (owner, conversation_id, id," \
    "  created_at, item)" \
    " SELECT $1, $2, e->>'id', c.created_at, e" \
    " FROM c, jsonb_array_elements($4::jsonb) WITH ORDINALITY AS x(e, n)" \
    " ORDER BY n), " \
    "p AS (" \
    " INSERT INTO public.conversation_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', c.seq" \
    " FROM c, jsonb_each(c.metadata) e" \
    " WHERE jsonb_typeof(e.value) = 'string') " \
    "SELECT json_build_object('id', id, 'object', 'conversation'," \
    " 'created_at', created_at, 'metadata', metadata)::text " \
    "FROM c"

/* $1 owner, $2 id */
#define NGX_HTTP_THREADS_SQL_CONV_RETRIEVE \
    "SELECT json_build_object('id', id, 'object', 'conversation'," \
    " 'created_at', created_at, 'metadata', metadata)::text " \
    "FROM public.conversations WHERE owner = $1 AND id = $2"

/* $1 owner, $2 id, $3 metadata: its pairs replaced, as a thread's are */
#define NGX_HTTP_THREADS_SQL_CONV_MODIFY \
    "WITH u AS (UPDATE public.conversations SET metadata = $3::jsonb" \
    " WHERE owner = $1 AND id = $2" \
    " RETURNING id, seq, created_at, metadata), " \
    "d AS (DELETE FROM public.conversation_metadata k" \
    " WHERE k.owner = $1 AND k.seq = (SELECT seq FROM u)" \
    "  AND NOT $3::jsonb @> jsonb_build_object(k.key, k.value)), " \
    "p AS (INSERT INTO public.conversation_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', u.seq" \
    " FROM u, jsonb_each($3::jsonb) e" \
    " WHERE jsonb_typeof(e.value) = 'string'" \
    " ON CONFLICT DO NOTHING) " \
    "SELECT json_build_object('id', id, 'object', 'conversation'," \
    " 'created_at', created_at, 'metadata', metadata)::text " \
    "FROM u"

/*
 * $1 owner, $2 id; items go with it (ON DELETE CASCADE), its metadata
 * pairs too; the tombstone keeps listings that use it as a cursor paging.
 */
#define NGX_HTTP_THREADS_SQL_CONV_DELETE \
    "WITH d AS (DELETE FROM public.conversations WHERE owner = $1 AND id = $2" \
    " RETURNING id, seq, created_at, key_digest), " \
    "s AS (INSERT INTO public.conversation_tombstones (owner, id, seq," \
    "  created_at, key_digest)" \
    " SELECT $1, $2, seq, created_at, key_digest FROM d" \
    " ON CONFLICT DO NOTHING), " \
    "p AS (DELETE FROM public.conversation_metadata k" \
    " WHERE k.owner = $1 AND k.seq = (SELECT seq FROM d)) " \
    "SELECT json_build_object('id', id, 'object', 'conversation.deleted'," \
    " 'deleted', true)::text " \
    "FROM d"

/*
 * $1 owner, $2 limit, $3 lo id, $4 hi id, $5 byte budget; newest first,
 * after a cursor.
 */
#define NGX_HTTP_THREADS_SQL_CONV_LIST_DF \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversations x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* conversation list, oldest first, after a cursor */
#define NGX_HTTP_THREADS_SQL_CONV_LIST_AF \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversations x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* conversation list, newest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_CONV_LIST_DB \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversations x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/* conversation list, oldest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_CONV_LIST_AB \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversations x WHERE x.owner = $1 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

/*
 * The same listings filtered by one metadata pair: $1 owner, $2 limit,
 * $3 lo id, $4 hi id, $5 byte budget, $6 the key, $7 its value.  The
 * page's rows come from the conversation_metadata index (owner, key, value, seq),
 * a range scan that stops at the page's limit, each joined to its conversation
 * by (owner, seq): a lateral subquery with a LIMIT, so that the planner
 * can neither flatten it into a merge join over the owner's whole range
 * nor sort.  The conversation's metadata is checked again, so that a pair left
 * over (see scripts/schema.sql, version 6) is never listed.
 */
#define NGX_HTTP_THREADS_SQL_CONV_FILTER_DF \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversation_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata" \
    "   FROM public.conversations t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_CONV_FILTER_AF \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversation_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata" \
    "   FROM public.conversations t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_CONV_FILTER_DB \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversation_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata" \
    "   FROM public.conversations t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq ASC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"

#define NGX_HTTP_THREADS_SQL_CONV_FILTER_AB \
    "WITH lo AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $3 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $3 " \
    "  LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversations WHERE owner = $1 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_tombstones " \
    "  WHERE owner = $1 AND id = $4 " \
    "  LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, " \
    "   json_build_object('id', x.id, 'object', 'conversation', " \
    "   'created_at', x.created_at, 'metadata', x.metadata) AS j " \
    "  FROM public.conversation_metadata k CROSS JOIN LATERAL (" \
    "   SELECT t.id, t.seq, t.created_at, t.metadata" \
    "   FROM public.conversations t WHERE t.owner = $1 AND t.seq = k.seq " \
    "   AND t.seq > 0 " \
    "    AND t.metadata @> jsonb_build_object($6::text, $7::text) " \
    "   LIMIT 1) x " \
    "  WHERE k.owner = $1 AND k.key = $6::text AND k.value = $7::text " \
    "   AND k.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND k.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY k.seq DESC LIMIT $2::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $2::int AND (n = 1 OR bytes <= $5::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM (SELECT CASE " \
    "  WHEN $3::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c"


/*
 * $1 owner, $2 conversation, $3 items (as for create): the new items as a
 * list; the conversation row is locked against a concurrent delete.
 */
#define NGX_HTTP_THREADS_SQL_ITEMS_CREATE \
    "WITH c AS (SELECT id FROM public.conversations" \
    " WHERE owner = $1 AND id = $2 FOR KEY SHARE), " \
    "i AS (INSERT INTO public.conversation_items (owner, conversation_id, id," \
    "  created_at, item)" \
    " SELECT $1, $2, e->>'id', floor(extract(epoch FROM now()))::bigint, e" \
    " FROM c, jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, n)" \
    " ORDER BY n RETURNING seq, id, item) " \
    "SELECT json_build_object('object', 'list'," \
    " 'data', COALESCE((SELECT json_agg(item ORDER BY seq) FROM i), '[]'::json)," \
    " 'first_id', (SELECT id FROM i ORDER BY seq ASC LIMIT 1)," \
    " 'last_id', (SELECT id FROM i ORDER BY seq DESC LIMIT 1)," \
    " 'has_more', false)::text " \
    "FROM c"

/* $1 owner, $2 conversation, $3 item: a NULL body is a missing item */
#define NGX_HTTP_THREADS_SQL_ITEM_RETRIEVE \
    "SELECT (SELECT i.item::text FROM public.conversation_items i" \
    " WHERE i.owner = $1 AND i.conversation_id = $2 AND i.id = $3) " \
    "FROM public.conversations WHERE owner = $1 AND id = $2"

/*
 * $1 owner, $2 conversation, $3 item: answers the conversation, as OpenAI
 * does (a NULL body is a missing item).
 */
#define NGX_HTTP_THREADS_SQL_ITEM_DELETE \
    "WITH d AS (DELETE FROM public.conversation_items" \
    " WHERE owner = $1 AND conversation_id = $2 AND id = $3" \
    " RETURNING id, seq), " \
    "s AS (INSERT INTO public.conversation_item_tombstones" \
    " (owner, conversation_id, id, seq)" \
    " SELECT $1, $2, $3, seq FROM d ON CONFLICT DO NOTHING) " \
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM d) THEN" \
    " json_build_object('id', id, 'object', 'conversation'," \
    " 'created_at', created_at, 'metadata', metadata)::text END " \
    "FROM public.conversations WHERE owner = $1 AND id = $2"

/*
 * $1 owner, $2 conversation, $3 limit, $4 lo id, $5 hi id, $6 byte budget;
 * newest first, after a cursor.
 */
#define NGX_HTTP_THREADS_SQL_ITEM_LIST_DF \
    "WITH lo AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, x.item AS j " \
    "  FROM public.conversation_items x " \
    "  WHERE x.owner = $1 AND x.conversation_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $6::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.conversations t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* item list, oldest first, after a cursor */
#define NGX_HTTP_THREADS_SQL_ITEM_LIST_AF \
    "WITH lo AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, x.item AS j " \
    "  FROM public.conversation_items x " \
    "  WHERE x.owner = $1 AND x.conversation_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $6::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.conversations t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* item list, newest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_ITEM_LIST_DB \
    "WITH lo AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, x.item AS j " \
    "  FROM public.conversation_items x " \
    "  WHERE x.owner = $1 AND x.conversation_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq ASC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq ASC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $6::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.conversations t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/* item list, oldest first, before a cursor */
#define NGX_HTTP_THREADS_SQL_ITEM_LIST_AB \
    "WITH lo AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $4 LIMIT 1), " \
    " hi AS (SELECT seq FROM public.conversation_items " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 " \
    "  UNION ALL SELECT seq FROM public.conversation_item_tombstones " \
    "  WHERE owner = $1 AND conversation_id = $2 AND id = $5 LIMIT 1), " \
    " r AS (SELECT x.id, x.seq, x.item AS j " \
    "  FROM public.conversation_items x " \
    "  WHERE x.owner = $1 AND x.conversation_id = $2 " \
    "   AND x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) " \
    "   AND x.seq < COALESCE((SELECT seq FROM hi), 9223372036854775807) " \
    "  ORDER BY x.seq DESC LIMIT $3::int + 1), " \
    " s AS (SELECT id, seq, j, row_number() OVER w AS n, " \
    "   sum(octet_length(j::text)) OVER w AS bytes " \
    "  FROM r WINDOW w AS (ORDER BY seq DESC)), " \
    " p AS (SELECT id, seq, j FROM s " \
    "  WHERE n <= $3::int AND (n = 1 OR bytes <= $6::bigint)) " \
    "SELECT CASE WHEN c.miss IS NULL THEN " \
    "  json_build_object('object', 'list', " \
    "   'data', COALESCE((SELECT json_agg(j ORDER BY seq ASC) FROM p), " \
    "                    '[]'::json), " \
    "   'first_id', (SELECT id FROM p ORDER BY seq ASC LIMIT 1), " \
    "   'last_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), " \
    "   'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p) " \
    "  )::text " \
    "  END, c.miss " \
    "FROM public.conversations t, (SELECT CASE " \
    "  WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' " \
    "  WHEN $5::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' " \
    "  END AS miss) c " \
    "WHERE t.owner = $1 AND t.id = $2"

/*
 * $1 owner, $2 thread, $3 the new conversation's id: a conversation whose
 * items are the thread's messages, in order, with their ids and times;
 * the thread stays.  A text part becomes input_text (output_text for the
 * assistant), an image_file an input_image of its file_id, an image_url
 * an input_image of its url.  One statement: all or nothing.  No row when
 * the thread is not there.
 */
#define NGX_HTTP_THREADS_SQL_THREAD_CONVERT \
    "WITH t AS (SELECT id, metadata FROM public.threads" \
    " WHERE owner = $1 AND id = $2 FOR KEY SHARE), " \
    "c AS (INSERT INTO public.conversations (owner, id, created_at, metadata)" \
    " SELECT $1, $3, floor(extract(epoch FROM now()))::bigint, t.metadata" \
    " FROM t RETURNING id, seq, created_at, metadata), " \
    "p AS (INSERT INTO public.conversation_metadata (owner, key, value, seq)" \
    " SELECT $1, e.key, e.value #>> '{}', c.seq" \
    " FROM c, jsonb_each(c.metadata) e" \
    " WHERE jsonb_typeof(e.value) = 'string'), " \
    "i AS (INSERT INTO public.conversation_items (owner, conversation_id, id," \
    "  created_at, item)" \
    " SELECT $1, $3, m.id, m.created_at," \
    "  jsonb_build_object('id', m.id, 'type', 'message'," \
    "   'status', 'completed', 'role', m.role, 'content'," \
    "   (SELECT COALESCE(jsonb_agg(CASE p->>'type'" \
    "     WHEN 'text' THEN CASE WHEN m.role = 'assistant' THEN" \
    "      jsonb_build_object('type', 'output_text'," \
    "       'text', p->'text'->'value', 'annotations', '[]'::jsonb," \
    "       'logprobs', '[]'::jsonb)" \
    "      ELSE jsonb_build_object('type', 'input_text'," \
    "       'text', p->'text'->'value') END" \
    "     WHEN 'image_file' THEN jsonb_build_object('type', 'input_image'," \
    "      'image_url', NULL, 'file_id', p->'image_file'->'file_id'," \
    "      'detail', COALESCE(p->'image_file'->'detail', '\"auto\"'))" \
    "     ELSE jsonb_build_object('type', 'input_image'," \
    "      'image_url', p->'image_url'->'url', 'file_id', NULL," \
    "      'detail', COALESCE(p->'image_url'->'detail', '\"auto\"'))" \
    "     END ORDER BY k), '[]'::jsonb)" \
    "    FROM jsonb_array_elements(m.content) WITH ORDINALITY AS q(p, k)))" \
    " FROM c, public.messages m" \
    " WHERE m.owner = $1 AND m.thread_id = $2 AND m.seq > 0" \
    " ORDER BY m.seq) " \
    "SELECT json_build_object('id', id, 'object', 'conversation'," \
    " 'created_at', created_at, 'metadata', metadata)::text " \
    "FROM c"


/*
 * With threads_pg_citus on, each write calls the function of its name
 * that scripts/citus.sql creates: the same answer from plain statements
 * that Citus routes to one worker each, where the data-modifying CTEs
 * above would be split across all of them (a two-phase commit).
 */
#define NGX_HTTP_THREADS_SQL_CITUS_THREAD_CREATE \
    "SELECT public.threads_thread_create($1, $2, $3, $4, $5)"
#define NGX_HTTP_THREADS_SQL_CITUS_THREAD_MODIFY \
    "SELECT * FROM public.threads_thread_modify($1, $2, $3, $4)"
#define NGX_HTTP_THREADS_SQL_CITUS_THREAD_DELETE \
    "SELECT * FROM public.threads_thread_delete($1, $2)"
#define NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_CREATE \
    "SELECT * FROM public.threads_message_create($1, $2, $3, $4)"
#define NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_MODIFY \
    "SELECT * FROM public.threads_message_modify($1, $2, $3, $4)"
#define NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_DELETE \
    "SELECT * FROM public.threads_message_delete($1, $2, $3)"
#define NGX_HTTP_THREADS_SQL_CITUS_THREAD_CREATE_KEYED \
    "SELECT * FROM public.threads_thread_create_by_key($1, $2, $3, $4, $5," \
    " $6, $7, $8)"
#define NGX_HTTP_THREADS_SQL_CITUS_MESSAGE_CREATE_KEYED \
    "SELECT * FROM public.threads_message_create_by_key($1, $2, $3, $4, $5," \
    " $6, $7)"
#define NGX_HTTP_THREADS_SQL_CITUS_CONV_CREATE \
    "SELECT public.threads_conv_create($1, $2, $3, $4)"
#define NGX_HTTP_THREADS_SQL_CITUS_CONV_MODIFY \
    "SELECT * FROM public.threads_conv_modify($1, $2, $3)"
#define NGX_HTTP_THREADS_SQL_CITUS_CONV_DELETE \
    "SELECT * FROM public.threads_conv_delete($1, $2)"
#define NGX_HTTP_THREADS_SQL_CITUS_ITEMS_CREATE \
    "SELECT * FROM public.threads_items_create($1, $2, $3)"
#define NGX_HTTP_THREADS_SQL_CITUS_ITEM_DELETE \
    "SELECT * FROM public.threads_item_delete($1, $2, $3)"
#define NGX_HTTP_THREADS_SQL_CITUS_THREAD_CONVERT \
    "SELECT * FROM public.threads_thread_convert($1, $2, $3)"
#define NGX_HTTP_THREADS_SQL_CITUS_CONV_CREATE_KEYED \
    "SELECT * FROM public.threads_conv_create_by_key($1, $2, $3, $4, $5," \
    " $6, $7)"
#define NGX_HTTP_THREADS_SQL_CITUS_ITEMS_CREATE_KEYED \
    "SELECT * FROM public.threads_items_create_keyed($1, $2, $3, $4, $5," \
    " $6)"

#endif /* NGX_HTTP_THREADS_SQL_H_INCLUDED_ */
