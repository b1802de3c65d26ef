-- The module's conversation create statement (ngx_http_threads_sql.h), as
-- it sends it, with two items: owner, a fresh id, metadata and the items
-- (normalized, each with its id) as parameters.  pgbench has no strings,
-- so the fresh id is a random 19-digit number; scripts/bench checks that
-- the statement still matches the module's.
\set id random(1000000000000000000, 9223372036854775807)
WITH c AS ( INSERT INTO public.conversations (owner, id, created_at,
 metadata) VALUES (:owner, :id, floor(extract(epoch FROM now()))::bigint,
 :metadata::jsonb) RETURNING id, seq, created_at, metadata), i AS ( INSERT
 INTO public.conversation_items (owner, conversation_id, id, created_at,
 item) SELECT :owner, :id, e->>'id', c.created_at, e FROM c,
 jsonb_array_elements(:items::jsonb) WITH ORDINALITY AS x(e, n) ORDER BY n),
 p AS ( INSERT INTO public.conversation_metadata (owner, key, value, seq)
 SELECT :owner, e.key, e.value #>> '{}', c.seq FROM c,
 jsonb_each(c.metadata) e WHERE jsonb_typeof(e.value) = 'string') SELECT
 json_build_object('id', id, 'object', 'conversation', 'created_at',
 created_at, 'metadata', metadata)::text FROM c;
