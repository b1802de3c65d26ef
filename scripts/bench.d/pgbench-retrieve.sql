-- The module's retrieve statement (ngx_http_threads_sql.h), as it sends it.
-- pgbench cannot pick from a list of strings, so scripts/bench copies the
-- seeded threads under the ids 1000000000000000001..+seeded and this picks
-- one of those at random: the same rows, one statement, one round trip.
\set id 1000000000000000000 + random(1, :seeded)
SELECT json_build_object('id', id, 'object', 'thread',
 'created_at', created_at, 'metadata', metadata,
 'tool_resources', tool_resources)::text
 FROM public.threads WHERE owner = :owner AND id = :id;
