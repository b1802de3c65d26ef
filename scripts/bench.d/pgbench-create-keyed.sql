-- The module's keyed create statement (ngx_http_threads_sql.h), as it
-- sends it for a POST /threads with an Idempotency-Key: the create's
-- parameters, then the key, the request's digest and the seconds the key
-- is kept.  Every transaction uses a fresh random key (a 19-digit number,
-- as the id), so each one creates: the cost of storing the key beside the
-- thread.  scripts/bench checks that the statement still matches the
-- module's.
\set id random(1000000000000000000, 9223372036854775807)
\set key random(1000000000000000000, 9223372036854775807)
WITH l AS (SELECT pg_try_advisory_xact_lock(hashtext(:owner),
hashtext(:key)) AS got), k AS (SELECT digest, body FROM
public.idempotency_keys WHERE owner = :owner AND key = :key AND expires_at
> now()), i AS (INSERT INTO public.idempotency_keys (owner, key, digest,
body, created_at, expires_at) SELECT :owner, :key, :digest,
json_build_object('id', :id::text, 'object', 'thread', 'created_at',
floor(extract(epoch FROM now()))::bigint, 'metadata', :metadata::jsonb,
'tool_resources', :tool_resources::jsonb)::text, now(), now() +
:ttl::bigint * interval '1 second' FROM l WHERE l.got AND NOT EXISTS
(SELECT 1 FROM k) ON CONFLICT (owner, key) DO UPDATE SET digest =
excluded.digest, body = excluded.body, created_at = excluded.created_at,
expires_at = excluded.expires_at WHERE public.idempotency_keys.expires_at
<= now() RETURNING body), t AS ( INSERT INTO public.threads (owner, id,
created_at, metadata, tool_resources) SELECT :owner, :id,
floor(extract(epoch FROM now()))::bigint, :metadata::jsonb,
:tool_resources::jsonb FROM i RETURNING created_at), m AS ( INSERT INTO
public.messages (owner, thread_id, id, created_at, role, content,
attachments, metadata) SELECT :owner, :id, e->>'id', t.created_at,
e->>'role', e->'content', e->'attachments', e->'metadata' FROM t,
jsonb_array_elements(:messages::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY
n), o AS MATERIALIZED (SELECT key FROM public.idempotency_keys WHERE owner
= :owner AND expires_at < now() AND key <> :key AND hashtext(:key) & 7 = 0
AND EXISTS (SELECT 1 FROM i) ORDER BY expires_at LIMIT 32 FOR UPDATE SKIP
LOCKED), p AS (DELETE FROM public.idempotency_keys WHERE owner = :owner AND
key = ANY (ARRAY(SELECT key FROM o)) AND expires_at < now()) SELECT CASE
WHEN NOT l.got THEN NULL WHEN k.digest = :digest THEN k.body WHEN k.digest
IS NULL THEN (SELECT body FROM i) END, CASE WHEN NOT l.got THEN 'busy' WHEN
k.digest = :digest THEN 'replay' WHEN k.digest IS NOT NULL THEN 'reused'
WHEN EXISTS (SELECT 1 FROM i) THEN 'new' ELSE 'busy' END FROM l LEFT JOIN k
ON true;
