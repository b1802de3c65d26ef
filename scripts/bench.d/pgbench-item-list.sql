-- The module's item list statement (newest first, no cursor), as it sends
-- it, for a page of :limit of a conversation's items.  pgbench cannot bind
-- a NULL, so the unused cursors are NULL literals here; scripts/bench
-- copies the conversations it made under numeric ids
-- 2000000000000000001..+seeded, with their items, and this picks one.
\set cid 2000000000000000000 + random(1, :convs)
WITH lo AS (SELECT seq FROM public.conversation_items WHERE owner = :owner
 AND conversation_id = :cid AND id = NULL UNION ALL SELECT seq FROM
 public.conversation_item_tombstones WHERE owner = :owner AND
 conversation_id = :cid AND id = NULL LIMIT 1), hi AS (SELECT seq FROM
 public.conversation_items WHERE owner = :owner AND conversation_id = :cid
 AND id = NULL UNION ALL SELECT seq FROM public.conversation_item_tombstones
 WHERE owner = :owner AND conversation_id = :cid AND id = NULL LIMIT 1), r
 AS (SELECT x.id, x.seq, x.item AS j FROM public.conversation_items x WHERE
 x.owner = :owner AND x.conversation_id = :cid AND x.seq > 0 AND x.seq > COALESCE((SELECT
 seq FROM lo), 0) AND x.seq < COALESCE((SELECT seq FROM hi),
 9223372036854775807) ORDER BY x.seq DESC LIMIT :limit::int + 1), s AS
 (SELECT id, seq, j, row_number() OVER w AS n, sum(octet_length(j::text))
 OVER w AS bytes FROM r WINDOW w AS (ORDER BY seq DESC)), p AS (SELECT id,
 seq, j FROM s WHERE n <= :limit::int AND (n = 1 OR bytes <=
 :budget::bigint)) SELECT CASE WHEN c.miss IS NULL THEN
 json_build_object('object', 'list', 'data', COALESCE((SELECT json_agg(j
 ORDER BY seq DESC) FROM p), '[]'::json), 'first_id', (SELECT id FROM p
 ORDER BY seq DESC LIMIT 1), 'last_id', (SELECT id FROM p ORDER BY seq ASC
 LIMIT 1), 'has_more', (SELECT count(*) FROM r) > (SELECT count(*) FROM p)
 )::text END, c.miss FROM public.conversations t, (SELECT CASE WHEN
 NULL::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lo) THEN 'lo' WHEN
 NULL::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hi) THEN 'hi' END AS
 miss) c WHERE t.owner = :owner AND t.id = :cid;
