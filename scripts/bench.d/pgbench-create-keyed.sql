-- The module's keyed create statement for a key not seen before
-- (threads_thread_create_keyed_new in ngx_http_threads_ops.c), as it
-- sends it for a POST /threads with an Idempotency-Key: the create's
-- parameters, then the request's digest and the key's lock.  Every
-- transaction uses a fresh random id and lock, as a fresh key does, so
-- each one creates: the cost of a key beside the thread.  scripts/bench checks that the statement still matches the
-- module's.
\set id random(1000000000000000000, 9223372036854775807)
\set lock random(1000000000000000000, 9223372036854775807)
WITH t AS ( INSERT INTO public.threads (owner, id, created_at, metadata,
 tool_resources, key_digest) SELECT :owner, :id, floor(extract(epoch FROM
 now()))::bigint, :metadata::jsonb, :tool_resources::jsonb, decode(:digest,
 'hex') WHERE pg_try_advisory_xact_lock(:lock::bigint) AND NOT EXISTS
 (SELECT 1 FROM public.thread_tombstones y WHERE y.owner = :owner AND y.id =
 :id::text AND y.key_digest IS NOT NULL) ON CONFLICT DO NOTHING RETURNING id, seq, created_at), m AS (
 INSERT INTO public.messages (owner, thread_id, id, created_at, role,
 content, attachments, metadata) SELECT
 :owner, t.id, e->>'id', t.created_at, e->>'role', e->'content',
 e->'attachments', e->'metadata' FROM t,
 jsonb_array_elements(:messages::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY
 n), p AS ( INSERT INTO public.thread_metadata (owner, key, value, seq)
 SELECT :owner, e.key, e.value #>> '{}', t.seq FROM t,
 jsonb_each(:metadata::jsonb) e WHERE jsonb_typeof(e.value) = 'string')
 SELECT json_build_object('id', :id::text, 'object', 'thread', 'created_at',
 t.created_at, 'metadata', :metadata::jsonb, 'tool_resources',
 :tool_resources::jsonb)::text, 'new' FROM t;
