-- The module's message list statement (newest first, no cursor, no
-- run_id, a byte budget of :budget), as it sends it, for a page of :limit.
-- pgbench cannot bind a NULL, so the three unused parameters are NULL
-- literals here; the module binds them as NULL parameters (same plan: an
-- index range scan).
\set tid 1000000000000000000 + random(1, :seeded)
WITH lo AS (SELECT seq FROM public.messages WHERE owner = :owner AND thread_id =
 :tid AND id = NULL UNION ALL SELECT seq FROM public.message_tombstones WHERE owner
 = :owner AND thread_id = :tid AND id = NULL LIMIT 1), hi AS (SELECT seq
 FROM public.messages WHERE owner = :owner AND thread_id = :tid AND id = NULL UNION
 ALL SELECT seq FROM public.message_tombstones WHERE owner = :owner AND thread_id =
 :tid AND id = NULL LIMIT 1), r AS (SELECT x.id, x.seq,
 json_build_object('id', x.id, 'object', 'thread.message', 'created_at',
 x.created_at, 'thread_id', x.thread_id, 'status', 'completed',
 'incomplete_details', NULL, 'completed_at', x.created_at, 'incomplete_at',
 NULL, 'role', x.role, 'content', x.content, 'assistant_id', x.assistant_id,
 'run_id', x.run_id, 'attachments', x.attachments, 'metadata', x.metadata)
 AS j FROM public.messages x WHERE x.owner = :owner AND x.thread_id = :tid AND
 x.seq > 0 AND x.seq > COALESCE((SELECT seq FROM lo), 0) AND x.seq < COALESCE((SELECT seq
 FROM hi), 9223372036854775807) AND (NULL::text IS NULL OR x.run_id = NULL)
 ORDER BY x.seq DESC LIMIT :limit::int + 1), s AS (SELECT id, seq, j,
 row_number() OVER w AS n, sum(octet_length(j::text)) OVER w AS bytes FROM r
 WINDOW w AS (ORDER BY seq DESC)), p AS (SELECT id, seq, j FROM s WHERE n <=
 :limit::int AND (n = 1 OR bytes <= :budget::bigint)) SELECT CASE WHEN
 c.miss IS NULL THEN json_build_object('object', 'list', 'data',
 COALESCE((SELECT json_agg(j ORDER BY seq DESC) FROM p), '[]'::json),
 'first_id', (SELECT id FROM p ORDER BY seq DESC LIMIT 1), 'last_id',
 (SELECT id FROM p ORDER BY seq ASC LIMIT 1), 'has_more', (SELECT count(*)
 FROM r) > (SELECT count(*) FROM p) )::text END, c.miss FROM public.threads t,
 (SELECT CASE WHEN NULL::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo)
 THEN 'lo' WHEN NULL::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi)
 THEN 'hi' END AS miss) c WHERE t.owner = :owner AND t.id = :tid;
