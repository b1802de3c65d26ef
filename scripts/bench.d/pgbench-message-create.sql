-- The module's message create statement (ngx_http_threads_sql.h), as it
-- sends it: owner, thread, the message object and its id as parameters.
-- Threads and message ids are numbers here (pgbench has no strings; see
-- pgbench-retrieve.sql); scripts/bench checks the statement still matches.
\set tid 1000000000000000000 + random(1, :seeded)
\set mid random(1000000000000000000, 9223372036854775807)
WITH t AS (SELECT id FROM public.threads WHERE owner = :owner AND id = :tid FOR KEY
 SHARE), m AS (INSERT INTO public.messages (owner, thread_id, id, created_at, role,
 content, attachments, metadata) SELECT :owner, :tid, :mid,
 floor(extract(epoch FROM now()))::bigint, :message::jsonb->>'role',
 :message::jsonb->'content', :message::jsonb->'attachments',
 :message::jsonb->'metadata' FROM t RETURNING *) SELECT
 json_build_object('id', id, 'object', 'thread.message', 'created_at',
 created_at, 'thread_id', thread_id, 'status', 'completed',
 'incomplete_details', NULL, 'completed_at', created_at, 'incomplete_at',
 NULL, 'role', role, 'content', content, 'assistant_id', assistant_id,
 'run_id', run_id, 'attachments', attachments, 'metadata', metadata)::text
 FROM m;
