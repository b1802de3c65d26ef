-- The module's keyed create statement (ngx_http_threads_sql.h), as it
-- sends it for a POST /threads with an Idempotency-Key: the create's
-- parameters, then the key's three ids, the request's digest and the
-- key's lock.  Every transaction uses a fresh random id and lock, as a
-- fresh key does, so each one creates: the cost of a key beside the
-- thread.  scripts/bench checks that the statement still matches the
-- module's.
\set id random(1000000000000000000, 9223372036854775807)
\set lock random(1000000000000000000, 9223372036854775807)
WITH l AS (SELECT pg_try_advisory_xact_lock(:lock::bigint) AS got), k AS
 (SELECT x.id, x.created_at, x.key_digest FROM public.threads x WHERE
 x.owner = :owner AND x.id = ANY (:ids::text[]) AND x.key_digest IS NOT NULL
 UNION ALL SELECT y.id, y.created_at, y.key_digest FROM
 public.thread_tombstones y WHERE y.owner = :owner AND y.id = ANY
 (:ids::text[]) AND y.key_digest IS NOT NULL LIMIT 1), t AS ( INSERT INTO
 public.threads (owner, id, created_at, metadata, tool_resources,
 key_digest) SELECT :owner, :id, floor(extract(epoch FROM now()))::bigint,
 :metadata::jsonb, :tool_resources::jsonb, decode(:digest, 'hex') FROM l
 WHERE l.got AND NOT EXISTS (SELECT 1 FROM k) ON CONFLICT DO NOTHING
 RETURNING seq, created_at), m AS ( INSERT INTO public.messages (owner,
 thread_id, id, created_at, role, content, attachments, metadata) SELECT
 :owner, :id, e->>'id', t.created_at, e->>'role', e->'content',
 e->'attachments', e->'metadata' FROM t,
 jsonb_array_elements(:messages::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY
 n), p AS ( INSERT INTO public.thread_metadata (owner, key, value, seq)
 SELECT :owner, e.key, e.value #>> '{}', t.seq FROM t,
 jsonb_each(:metadata::jsonb) e WHERE jsonb_typeof(e.value) = 'string')
 SELECT CASE WHEN s.state IN ('new', 'replay') THEN json_build_object('id',
 s.id, 'object', 'thread', 'created_at', s.created_at, 'metadata',
 :metadata::jsonb, 'tool_resources', :tool_resources::jsonb)::text END,
 s.state FROM (SELECT CASE WHEN NOT l.got THEN 'busy' WHEN t.created_at IS
 NOT NULL THEN 'new' WHEN k.key_digest = decode(:digest, 'hex') THEN
 'replay' WHEN k.id IS NOT NULL THEN 'reused' ELSE 'busy' END AS state,
 COALESCE(k.id, :id) AS id, COALESCE(t.created_at, k.created_at) AS
 created_at FROM l LEFT JOIN k ON true LEFT JOIN t ON true) s;
