-- Distributes the ngx_http_threads_module tables on Citus, by owner.
-- Apply after scripts/schema.sql, on the coordinator, as a superuser
-- (psql -v ON_ERROR_STOP=1 -f scripts/citus.sql).  Applying it twice is
-- harmless: a table already in pg_dist_partition is left as it is.
--
-- Every table is distributed by owner and colocated with threads, so an
-- owner's threads, messages, tombstones, keys, conversations and metadata
-- pairs are on one shard group; threads_schema, which every connection
-- reads, is a reference table (a copy on every node).  The writes go
-- through the functions of scripts/schema.sql (version 7, 9) with
-- threads_pg_citus on.  Tried with Citus 13.2.2 on PostgreSQL 15.20
-- (see README).

SET client_min_messages = warning;
SET search_path = public;

CREATE EXTENSION IF NOT EXISTS citus;

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                   WHERE logicalrelid = 'public.threads_schema'::regclass) THEN
        PERFORM create_reference_table('public.threads_schema');
    END IF;
    -- parents before the tables whose foreign keys point at them
    FOREACH t IN ARRAY ARRAY['threads', 'messages', 'thread_tombstones',
                             'message_tombstones', 'idempotency_keys',
                             'conversations', 'conversation_items',
                             'conversation_tombstones',
                             'conversation_item_tombstones',
                             'thread_metadata',
                             'conversation_metadata'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                       WHERE logicalrelid = ('public.' || t)::regclass) THEN
            IF t = 'threads' THEN
                PERFORM create_distributed_table('public.threads', 'owner');
            ELSE
                PERFORM create_distributed_table('public.' || t, 'owner',
                                                 colocate_with => 'public.threads');
            END IF;
        END IF;
    END LOOP;
END
$$;

