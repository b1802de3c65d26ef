-- The module's create statement (ngx_http_threads_sql.h), as it sends it:
-- owner, a fresh id, metadata, tool_resources and messages as parameters.
-- pgbench has no strings, so the fresh id is a random 19-digit number
-- (the module's are 31 characters); scripts/bench checks that the
-- statement still matches the module's.
\set id random(1000000000000000000, 9223372036854775807)
WITH t AS ( INSERT INTO public.threads (owner, id, created_at, metadata,
 tool_resources) VALUES (:owner, :id, floor(extract(epoch FROM
 now()))::bigint, :metadata::jsonb, :tool_resources::jsonb) RETURNING id,
 seq, created_at, metadata, tool_resources), m AS ( INSERT INTO
 public.messages (owner, thread_id, id, created_at, role, content,
 attachments, metadata) SELECT :owner, t.id, e->>'id', t.created_at,
 e->>'role', e->'content', e->'attachments', e->'metadata' FROM t,
 jsonb_array_elements(:messages::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY
 n), p AS ( INSERT INTO public.thread_metadata (owner, key, value, seq)
 SELECT :owner, e.key, e.value #>> '{}', t.seq FROM t,
 jsonb_each(:metadata::jsonb) e WHERE jsonb_typeof(e.value) = 'string') SELECT
 json_build_object('id', id, 'object', 'thread', 'created_at', created_at,
 'metadata', metadata, 'tool_resources', tool_resources)::text FROM t;
