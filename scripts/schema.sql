-- ngx_http_threads_module storage, schema version 9.
-- Applying this file twice is harmless.
--
-- Ready for a distributed PostgreSQL (Citus, multi-tenant pattern): every
-- table carries owner, every primary key leads with it, every statement
-- filters by it.  seq is the creation order: created_at has whole seconds
-- and ids are random, so neither can order objects made in one second.

SET client_min_messages = warning;

BEGIN;

-- the module names every object public.X: so do we, whatever the role's
-- search_path says
SET LOCAL search_path = public;
-- on Citus, DDL on functions after writes to distributed tables in one
-- transaction wants one connection per node (a plain placeholder setting
-- elsewhere)
SET LOCAL citus.multi_shard_modify_mode = 'sequential';

SELECT pg_advisory_xact_lock(7242315);

CREATE TABLE IF NOT EXISTS threads_schema (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS threads (
    owner           text    NOT NULL,
    id              text    NOT NULL,
    seq             bigint  GENERATED ALWAYS AS IDENTITY,
    created_at      bigint  NOT NULL,
    metadata        jsonb   NOT NULL DEFAULT '{}',
    tool_resources  jsonb   NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner, id)
);

-- (its creation-order index: version 8)

CREATE TABLE IF NOT EXISTS messages (
    owner         text    NOT NULL,
    thread_id     text    NOT NULL,
    id            text    NOT NULL,
    seq           bigint  GENERATED ALWAYS AS IDENTITY,
    created_at    bigint  NOT NULL,
    role          text    NOT NULL,
    content       jsonb   NOT NULL,
    attachments   jsonb   NOT NULL DEFAULT '[]',
    metadata      jsonb   NOT NULL DEFAULT '{}',
    assistant_id  text,
    run_id        text,
    PRIMARY KEY (owner, thread_id, id),
    FOREIGN KEY (owner, thread_id) REFERENCES threads (owner, id)
        ON DELETE CASCADE
);

-- (its creation-order index: version 8)

-- Version 2: listings.

-- A deleted object's place in the creation order, so that a listing whose
-- cursor was deleted meanwhile still pages on from where it was.  Prune
-- old rows at will (DELETE ... WHERE deleted_at < now() - '7 days'): a
-- cursor older than that then answers 404.
CREATE TABLE IF NOT EXISTS thread_tombstones (
    owner       text         NOT NULL,
    id          text         NOT NULL,
    seq         bigint       NOT NULL,
    deleted_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, id)
);

CREATE TABLE IF NOT EXISTS message_tombstones (
    owner       text         NOT NULL,
    thread_id   text         NOT NULL,
    id          text         NOT NULL,
    seq         bigint       NOT NULL,
    deleted_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, thread_id, id),
    FOREIGN KEY (owner, thread_id) REFERENCES threads (owner, id)
        ON DELETE CASCADE
);

-- (Versions 2 to 5 had a GIN index on threads (metadata) for filtered
-- listings, threads_metadata; version 6 replaces it with thread_metadata.)

-- Version 3: idempotency keys.

-- The answer to items added with an Idempotency-Key (since version 5;
-- before, to every keyed create), replayed when the
-- same owner sends the same key again (digest: SHA-256 of the method,
-- the path and the body).  Keyed creates prune a few expired rows of
-- their owner through idempotency_keys_expiry; rows of owners who stopped
-- creating stay until pruned at will (DELETE ... WHERE expires_at < now()).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    owner       text         NOT NULL,
    key         text         NOT NULL,
    digest      text         NOT NULL,
    body        text         NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    expires_at  timestamptz  NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_expiry
    ON idempotency_keys (owner, expires_at);

INSERT INTO threads_schema (version) VALUES (1), (2), (3)
    ON CONFLICT DO NOTHING;

-- Version 4: conversations (OpenAI's Conversations API), beside threads
-- and keyed the same way.  A conversation's items go with it (ON DELETE
-- CASCADE); each item is stored whole, as the API returns it.

CREATE TABLE IF NOT EXISTS conversations (
    owner       text    NOT NULL,
    id          text    NOT NULL,
    seq         bigint  GENERATED ALWAYS AS IDENTITY,
    created_at  bigint  NOT NULL,
    metadata    jsonb   NOT NULL DEFAULT '{}',
    PRIMARY KEY (owner, id)
);

-- (its creation-order index: version 8)

CREATE TABLE IF NOT EXISTS conversation_items (
    owner            text    NOT NULL,
    conversation_id  text    NOT NULL,
    id               text    NOT NULL,
    seq              bigint  GENERATED ALWAYS AS IDENTITY,
    created_at       bigint  NOT NULL,
    item             jsonb   NOT NULL,
    PRIMARY KEY (owner, conversation_id, id),
    FOREIGN KEY (owner, conversation_id) REFERENCES conversations (owner, id)
        ON DELETE CASCADE
);

-- (its creation-order index: version 8)

CREATE TABLE IF NOT EXISTS conversation_tombstones (
    owner       text         NOT NULL,
    id          text         NOT NULL,
    seq         bigint       NOT NULL,
    deleted_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, id)
);

CREATE TABLE IF NOT EXISTS conversation_item_tombstones (
    owner            text         NOT NULL,
    conversation_id  text         NOT NULL,
    id               text         NOT NULL,
    seq              bigint       NOT NULL,
    deleted_at       timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, conversation_id, id),
    FOREIGN KEY (owner, conversation_id) REFERENCES conversations (owner, id)
        ON DELETE CASCADE
);

INSERT INTO threads_schema (version) VALUES (4) ON CONFLICT DO NOTHING;

-- Version 5: a keyed create of one object keeps its key on the object.

-- The object's id is derived from the owner and the Idempotency-Key, and
-- key_digest (SHA-256 of the method, the path and the body; NULL when
-- the create had no key) tells a replay from a key reused for another
-- request.  Tombstones keep it with created_at, so that the key of a
-- deleted object still replays.  Adding a nullable column is instant.
ALTER TABLE threads ADD COLUMN IF NOT EXISTS key_digest bytea;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS key_digest bytea;
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS key_digest bytea;
ALTER TABLE thread_tombstones
    ADD COLUMN IF NOT EXISTS created_at bigint,
    ADD COLUMN IF NOT EXISTS key_digest bytea;
ALTER TABLE message_tombstones
    ADD COLUMN IF NOT EXISTS created_at bigint,
    ADD COLUMN IF NOT EXISTS key_digest bytea;
ALTER TABLE conversation_tombstones
    ADD COLUMN IF NOT EXISTS created_at bigint,
    ADD COLUMN IF NOT EXISTS key_digest bytea;

INSERT INTO threads_schema (version) VALUES (5) ON CONFLICT DO NOTHING;

-- Version 6: metadata pairs, for filtered listings.

-- One row per metadata pair of a thread (of a conversation), led by the
-- owner: a listing filtered by one pair reads its page from this index,
-- then joins each row to its object by (owner, seq), so that it costs
-- what its page costs, not what the owner holds.  The statements that
-- write an object's metadata write its pairs in the same statement (no
-- trigger: one cost less per write).  The listing checks each object's
-- metadata again, so a pair left over (a race between two updates of one
-- object, or an object deleted meanwhile) is never listed; prune such
-- rows at will:
--   DELETE FROM thread_metadata m WHERE NOT EXISTS (SELECT 1 FROM threads
--     t WHERE t.owner = m.owner AND t.seq = m.seq
--     AND t.metadata @> jsonb_build_object(m.key, m.value));
-- (the same for conversation_metadata).  Metadata values are strings (the
-- API says so and the module checks it); only string values are pairs.
CREATE TABLE IF NOT EXISTS thread_metadata (
    owner  text    NOT NULL,
    key    text    NOT NULL,
    value  text    NOT NULL,
    seq    bigint  NOT NULL,
    PRIMARY KEY (owner, key, value, seq)
);

CREATE TABLE IF NOT EXISTS conversation_metadata (
    owner  text    NOT NULL,
    key    text    NOT NULL,
    value  text    NOT NULL,
    seq    bigint  NOT NULL,
    PRIMARY KEY (owner, key, value, seq)
);

-- The pairs of the objects there before version 6, once.  A module of
-- version 5 still writing meanwhile writes no pairs: upgrade with it
-- stopped, or run these two INSERTs again once version 6 modules serve
-- (harmless: ON CONFLICT DO NOTHING).
INSERT INTO thread_metadata (owner, key, value, seq)
SELECT t.owner, e.key, e.value #>> '{}', t.seq
FROM threads t, jsonb_each(t.metadata) e
WHERE jsonb_typeof(e.value) = 'string'
  AND NOT EXISTS (SELECT 1 FROM threads_schema WHERE version >= 6)
ON CONFLICT DO NOTHING;

INSERT INTO conversation_metadata (owner, key, value, seq)
SELECT c.owner, e.key, e.value #>> '{}', c.seq
FROM conversations c, jsonb_each(c.metadata) e
WHERE jsonb_typeof(e.value) = 'string'
  AND NOT EXISTS (SELECT 1 FROM threads_schema WHERE version >= 6)
ON CONFLICT DO NOTHING;

-- The GIN indexes served the filter before; nothing reads them now, and
-- every create paid for them.
DROP INDEX IF EXISTS threads_metadata;
DROP INDEX IF EXISTS conversations_metadata;

INSERT INTO threads_schema (version) VALUES (6) ON CONFLICT DO NOTHING;

-- Version 7: an object's pairs by its seq.  Modifying or deleting an
-- object finds its pairs here, in the rows of that one object: through the
-- primary key, a pair that thousands of the owner's objects share had to
-- be read past.  Version 6 modules work on it unchanged.  On a big table
-- build them first without blocking writes, then apply this file (IF NOT
-- EXISTS then skips them):
--   CREATE INDEX CONCURRENTLY thread_metadata_seq
--     ON thread_metadata (owner, seq);
--   CREATE INDEX CONCURRENTLY conversation_metadata_seq
--     ON conversation_metadata (owner, seq);
-- (one that failed is left INVALID, and IF NOT EXISTS would keep it: drop
-- it and build it again until pg_index.indisvalid says true).
CREATE INDEX IF NOT EXISTS thread_metadata_seq
    ON thread_metadata (owner, seq);
CREATE INDEX IF NOT EXISTS conversation_metadata_seq
    ON conversation_metadata (owner, seq);
-- Version 7 also: the writes, one function each, for Citus
-- (threads_pg_citus on makes the module call them; otherwise nothing
-- does).  The module's own statements are data-modifying CTEs: Citus
-- splits those, pulls each part's result through the coordinator and
-- sends it to every worker, so that each write was a two-phase commit
-- across all of them.  Here each write is a few plain statements, every
-- one filtered by owner: each is a router query to the owner's shard
-- group, all on one worker, so that the transaction commits there in one
-- phase.  The functions run on the coordinator (they are not distributed
-- functions, which would run on the worker and draw seq from its range):
-- seq comes from the coordinator's identity sequences, so that creation
-- order stays exact when shards move.  Each returns what the module's
-- statement of the same name returns, byte for byte.  A statement that
-- writes may call only immutable functions on a row's columns (Citus), so
-- pairs are compared with ->> and jsonb_typeof, not jsonb_build_object.

-- an object's metadata pairs, as the statements write them
CREATE OR REPLACE FUNCTION public.threads_thread_pairs(p_owner text,
    p_metadata jsonb, p_seq bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    k text[];
    v text[];
    tuples text;
BEGIN
    SELECT array_agg(x.key), array_agg(x.value #>> '{}') INTO k, v
    FROM jsonb_each(COALESCE(p_metadata, '{}')) x
    WHERE jsonb_typeof(x.value) = 'string';
    IF k IS NULL THEN
        RETURN;
    END IF;
    -- Every pair in one INSERT ... VALUES: one router statement, one round
    -- trip to the owner's worker (INSERT ... SELECT would go through the
    -- coordinator as a multi-shard write, a two-phase commit).  The text
    -- holds only placeholders and subscripts ($2[1], ...; at most 16
    -- pairs): the values are parameters.
    SELECT string_agg(format('($1, $2[%s], $3[%s], $4)', i, i), ', ')
    INTO tuples FROM generate_series(1, cardinality(k)) i;
    EXECUTE 'INSERT INTO public.thread_metadata (owner, key, value, seq) VALUES '
        || tuples || ' ON CONFLICT DO NOTHING' USING p_owner, k, v, p_seq;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_pairs(p_owner text,
    p_metadata jsonb, p_seq bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    k text[];
    v text[];
    tuples text;
BEGIN
    SELECT array_agg(x.key), array_agg(x.value #>> '{}') INTO k, v
    FROM jsonb_each(COALESCE(p_metadata, '{}')) x
    WHERE jsonb_typeof(x.value) = 'string';
    IF k IS NULL THEN
        RETURN;
    END IF;
    -- Every pair in one INSERT ... VALUES: one router statement, one round
    -- trip to the owner's worker (INSERT ... SELECT would go through the
    -- coordinator as a multi-shard write, a two-phase commit).  The text
    -- holds only placeholders and subscripts ($2[1], ...; at most 16
    -- pairs): the values are parameters.
    SELECT string_agg(format('($1, $2[%s], $3[%s], $4)', i, i), ', ')
    INTO tuples FROM generate_series(1, cardinality(k)) i;
    EXECUTE 'INSERT INTO public.conversation_metadata (owner, key, value, seq) VALUES '
        || tuples || ' ON CONFLICT DO NOTHING' USING p_owner, k, v, p_seq;
END
$$;

-- A thread's first messages, an item list's items: all in one INSERT ...
-- VALUES, in order (one router statement, one round trip to the worker;
-- the coordinator draws seq row after row; INSERT ... SELECT would go
-- through the coordinator as a multi-shard write, a two-phase commit).
-- The text holds only placeholders and subscripts ($3->0, ...; the
-- module's limits bound their number): the values are parameters.
CREATE OR REPLACE FUNCTION public.threads_messages_add(p_owner text,
    p_thread text, p_messages jsonb, p_at bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tuples text;
BEGIN
    IF COALESCE(jsonb_array_length(p_messages), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT string_agg(format('($1, $2, $3->%1$s->>''id'', $4,'
        ' $3->%1$s->>''role'', $3->%1$s->''content'','
        ' $3->%1$s->''attachments'', $3->%1$s->''metadata'')', i), ', '
        ORDER BY i)
    INTO tuples FROM generate_series(0, jsonb_array_length(p_messages) - 1) i;
    EXECUTE 'INSERT INTO public.messages (owner, thread_id, id, created_at,'
        ' role, content, attachments, metadata) VALUES ' || tuples
        USING p_owner, p_thread, p_messages, p_at;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_items_add(p_owner text,
    p_conv text, p_items jsonb, p_at bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tuples text;
BEGIN
    IF COALESCE(jsonb_array_length(p_items), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT string_agg(format('($1, $2, $3->%1$s->>''id'', $4, $3->%1$s)', i),
        ', ' ORDER BY i)
    INTO tuples FROM generate_series(0, jsonb_array_length(p_items) - 1) i;
    EXECUTE 'INSERT INTO public.conversation_items (owner, conversation_id,'
        ' id, created_at, item) VALUES ' || tuples
        USING p_owner, p_conv, p_items, p_at;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_json(m public.messages)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', m.id, 'object', 'thread.message',
        'created_at', m.created_at, 'thread_id', m.thread_id,
        'status', 'completed', 'incomplete_details', NULL,
        'completed_at', m.created_at, 'incomplete_at', NULL,
        'role', m.role, 'content', m.content,
        'assistant_id', m.assistant_id, 'run_id', m.run_id,
        'attachments', m.attachments, 'metadata', m.metadata)::text
$$;

CREATE OR REPLACE FUNCTION public.threads_thread_create(p_owner text,
    p_id text, p_metadata jsonb, p_tool jsonb, p_messages jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_at  bigint;
BEGIN
    INSERT INTO public.threads (owner, id, created_at, metadata,
                                tool_resources)
    VALUES (p_owner, p_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata, p_tool)
    RETURNING seq, created_at INTO v_seq, v_at;
    PERFORM public.threads_messages_add(p_owner, p_id, p_messages, v_at);
    PERFORM public.threads_thread_pairs(p_owner, p_metadata, v_seq);
    RETURN json_build_object('id', p_id, 'object', 'thread',
        'created_at', v_at, 'metadata', p_metadata,
        'tool_resources', p_tool)::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_thread_modify(p_owner text,
    p_id text, p_metadata jsonb, p_tool jsonb)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE public.threads SET metadata = COALESCE(p_metadata, metadata),
        tool_resources = COALESCE(p_tool, tool_resources)
    WHERE owner = p_owner AND id = p_id
    RETURNING id, seq, created_at, metadata, tool_resources INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_metadata IS NOT NULL THEN
        DELETE FROM public.thread_metadata k
        WHERE k.owner = p_owner AND k.seq = r.seq
          AND (p_metadata ->> k.key IS DISTINCT FROM k.value
               OR jsonb_typeof(p_metadata -> k.key) <> 'string');
        PERFORM public.threads_thread_pairs(p_owner, p_metadata, r.seq);
    END IF;
    RETURN NEXT json_build_object('id', r.id, 'object', 'thread',
        'created_at', r.created_at, 'metadata', r.metadata,
        'tool_resources', r.tool_resources)::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_thread_delete(p_owner text,
    p_id text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    DELETE FROM public.threads WHERE owner = p_owner AND id = p_id
    RETURNING id, seq, created_at, key_digest INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO public.thread_tombstones (owner, id, seq, created_at,
                                          key_digest)
    VALUES (p_owner, p_id, r.seq, r.created_at, r.key_digest)
    ON CONFLICT DO NOTHING;
    DELETE FROM public.thread_metadata k
    WHERE k.owner = p_owner AND k.seq = r.seq;
    RETURN NEXT json_build_object('id', r.id, 'object', 'thread.deleted',
        'deleted', true)::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_create(p_owner text,
    p_thread text, p_message jsonb, p_mid text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    m public.messages;
BEGIN
    PERFORM 1 FROM public.threads WHERE owner = p_owner AND id = p_thread
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO public.messages (owner, thread_id, id, created_at, role,
                                 content, attachments, metadata)
    VALUES (p_owner, p_thread, p_mid,
            floor(extract(epoch FROM now()))::bigint, p_message->>'role',
            p_message->'content', p_message->'attachments',
            p_message->'metadata')
    RETURNING * INTO m;
    RETURN NEXT public.threads_message_json(m);
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_modify(p_owner text,
    p_thread text, p_mid text, p_metadata jsonb)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    m public.messages;
BEGIN
    PERFORM 1 FROM public.threads WHERE owner = p_owner AND id = p_thread;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE public.messages SET metadata = COALESCE(p_metadata, metadata)
    WHERE owner = p_owner AND thread_id = p_thread AND id = p_mid
    RETURNING * INTO m;
    RETURN NEXT CASE WHEN FOUND THEN public.threads_message_json(m) END;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_delete(p_owner text,
    p_thread text, p_mid text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM 1 FROM public.threads WHERE owner = p_owner AND id = p_thread;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM public.messages
    WHERE owner = p_owner AND thread_id = p_thread AND id = p_mid
    RETURNING id, seq, created_at, key_digest INTO r;
    IF NOT FOUND THEN
        RETURN NEXT NULL;
        RETURN;
    END IF;
    INSERT INTO public.message_tombstones (owner, thread_id, id, seq,
                                           created_at, key_digest)
    VALUES (p_owner, p_thread, p_mid, r.seq, r.created_at, r.key_digest)
    ON CONFLICT DO NOTHING;
    RETURN NEXT json_build_object('id', r.id,
        'object', 'thread.message.deleted', 'deleted', true)::text;
END
$$;

-- A keyed create's answer: (body, state), as the module's keyed statements
-- say (new, replay, reused, busy, missing).
CREATE OR REPLACE FUNCTION public.threads_thread_create_keyed(p_owner text,
    p_id text, p_metadata jsonb, p_tool jsonb, p_messages jsonb,
    p_ids text[], p_digest text, p_lock bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k     record;
    v_seq bigint;
    v_at  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    SELECT x.id, x.created_at, x.key_digest INTO k FROM public.threads x
    WHERE x.owner = p_owner AND x.id = ANY (p_ids)
      AND x.key_digest IS NOT NULL LIMIT 1;
    IF NOT FOUND THEN
        SELECT y.id, y.created_at, y.key_digest INTO k
        FROM public.thread_tombstones y
        WHERE y.owner = p_owner AND y.id = ANY (p_ids)
          AND y.key_digest IS NOT NULL LIMIT 1;
    END IF;
    IF FOUND THEN
        IF k.key_digest = decode(p_digest, 'hex') THEN
            RETURN QUERY SELECT json_build_object('id', k.id,
                'object', 'thread', 'created_at', k.created_at,
                'metadata', p_metadata, 'tool_resources', p_tool)::text,
                'replay'::text;
        ELSE
            RETURN QUERY SELECT NULL::text, 'reused'::text;
        END IF;
        RETURN;
    END IF;
    INSERT INTO public.threads (owner, id, created_at, metadata,
                                tool_resources, key_digest)
    VALUES (p_owner, p_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata, p_tool, decode(p_digest, 'hex'))
    ON CONFLICT DO NOTHING
    RETURNING seq, created_at INTO v_seq, v_at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    PERFORM public.threads_messages_add(p_owner, p_id, p_messages, v_at);
    PERFORM public.threads_thread_pairs(p_owner, p_metadata, v_seq);
    RETURN QUERY SELECT json_build_object('id', p_id, 'object', 'thread',
        'created_at', v_at, 'metadata', p_metadata,
        'tool_resources', p_tool)::text, 'new'::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_create_keyed(p_owner text,
    p_thread text, p_message jsonb, p_mid text, p_ids text[],
    p_digest text, p_lock bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k    record;
    v_at bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    SELECT x.id, x.created_at, x.key_digest INTO k FROM public.messages x
    WHERE x.owner = p_owner AND x.thread_id = p_thread
      AND x.id = ANY (p_ids) AND x.key_digest IS NOT NULL LIMIT 1;
    IF NOT FOUND THEN
        SELECT y.id, y.created_at, y.key_digest INTO k
        FROM public.message_tombstones y
        WHERE y.owner = p_owner AND y.thread_id = p_thread
          AND y.id = ANY (p_ids) AND y.key_digest IS NOT NULL LIMIT 1;
    END IF;
    IF FOUND THEN
        IF k.key_digest = decode(p_digest, 'hex') THEN
            v_at := k.created_at;
            p_mid := k.id;
            state := 'replay';
        ELSE
            RETURN QUERY SELECT NULL::text, 'reused'::text;
            RETURN;
        END IF;
    ELSE
        PERFORM 1 FROM public.threads WHERE owner = p_owner AND id = p_thread
        FOR KEY SHARE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT NULL::text, 'missing'::text;
            RETURN;
        END IF;
        INSERT INTO public.messages (owner, thread_id, id, created_at, role,
                                     content, attachments, metadata,
                                     key_digest)
        VALUES (p_owner, p_thread, p_mid,
                floor(extract(epoch FROM now()))::bigint,
                p_message->>'role', p_message->'content',
                p_message->'attachments', p_message->'metadata',
                decode(p_digest, 'hex'))
        ON CONFLICT DO NOTHING
        RETURNING created_at INTO v_at;
        IF NOT FOUND THEN
            RETURN QUERY SELECT NULL::text, 'busy'::text;
            RETURN;
        END IF;
        state := 'new';
    END IF;
    body := json_build_object('id', p_mid, 'object', 'thread.message',
        'created_at', v_at, 'thread_id', p_thread,
        'status', 'completed', 'incomplete_details', NULL,
        'completed_at', v_at, 'incomplete_at', NULL,
        'role', p_message->>'role', 'content', p_message->'content',
        'assistant_id', NULL::text, 'run_id', NULL::text,
        'attachments', p_message->'attachments',
        'metadata', p_message->'metadata')::text;
    RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_create(p_owner text,
    p_id text, p_metadata jsonb, p_items jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_at  bigint;
BEGIN
    INSERT INTO public.conversations (owner, id, created_at, metadata)
    VALUES (p_owner, p_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata)
    RETURNING seq, created_at INTO v_seq, v_at;
    PERFORM public.threads_items_add(p_owner, p_id, p_items, v_at);
    PERFORM public.threads_conv_pairs(p_owner, p_metadata, v_seq);
    RETURN json_build_object('id', p_id, 'object', 'conversation',
        'created_at', v_at, 'metadata', p_metadata)::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_create_keyed(p_owner text,
    p_id text, p_metadata jsonb, p_items jsonb, p_ids text[],
    p_digest text, p_lock bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k     record;
    v_seq bigint;
    v_at  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    SELECT x.id, x.created_at, x.key_digest INTO k
    FROM public.conversations x
    WHERE x.owner = p_owner AND x.id = ANY (p_ids)
      AND x.key_digest IS NOT NULL LIMIT 1;
    IF NOT FOUND THEN
        SELECT y.id, y.created_at, y.key_digest INTO k
        FROM public.conversation_tombstones y
        WHERE y.owner = p_owner AND y.id = ANY (p_ids)
          AND y.key_digest IS NOT NULL LIMIT 1;
    END IF;
    IF FOUND THEN
        IF k.key_digest = decode(p_digest, 'hex') THEN
            RETURN QUERY SELECT json_build_object('id', k.id,
                'object', 'conversation', 'created_at', k.created_at,
                'metadata', p_metadata)::text, 'replay'::text;
        ELSE
            RETURN QUERY SELECT NULL::text, 'reused'::text;
        END IF;
        RETURN;
    END IF;
    INSERT INTO public.conversations (owner, id, created_at, metadata,
                                      key_digest)
    VALUES (p_owner, p_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata, decode(p_digest, 'hex'))
    ON CONFLICT DO NOTHING
    RETURNING seq, created_at INTO v_seq, v_at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    PERFORM public.threads_items_add(p_owner, p_id, p_items, v_at);
    PERFORM public.threads_conv_pairs(p_owner, p_metadata, v_seq);
    RETURN QUERY SELECT json_build_object('id', p_id,
        'object', 'conversation', 'created_at', v_at,
        'metadata', p_metadata)::text, 'new'::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_modify(p_owner text,
    p_id text, p_metadata jsonb)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE public.conversations SET metadata = p_metadata
    WHERE owner = p_owner AND id = p_id
    RETURNING id, seq, created_at, metadata INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM public.conversation_metadata k
    WHERE k.owner = p_owner AND k.seq = r.seq
      AND (p_metadata ->> k.key IS DISTINCT FROM k.value
           OR jsonb_typeof(p_metadata -> k.key) <> 'string');
    PERFORM public.threads_conv_pairs(p_owner, p_metadata, r.seq);
    RETURN NEXT json_build_object('id', r.id, 'object', 'conversation',
        'created_at', r.created_at, 'metadata', r.metadata)::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_delete(p_owner text,
    p_id text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    DELETE FROM public.conversations WHERE owner = p_owner AND id = p_id
    RETURNING id, seq, created_at, key_digest INTO r;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO public.conversation_tombstones (owner, id, seq, created_at,
                                                key_digest)
    VALUES (p_owner, p_id, r.seq, r.created_at, r.key_digest)
    ON CONFLICT DO NOTHING;
    DELETE FROM public.conversation_metadata k
    WHERE k.owner = p_owner AND k.seq = r.seq;
    RETURN NEXT json_build_object('id', r.id,
        'object', 'conversation.deleted', 'deleted', true)::text;
END
$$;

-- the list of a conversation's items named in p_ids, in creation order
CREATE OR REPLACE FUNCTION public.threads_items_list_of(p_owner text,
    p_conv text, p_ids text[])
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT json_build_object('object', 'list',
        'data', COALESCE(json_agg(i.item ORDER BY i.seq), '[]'::json),
        'first_id', (array_agg(i.id ORDER BY i.seq ASC))[1],
        'last_id', (array_agg(i.id ORDER BY i.seq DESC))[1],
        'has_more', false)::text
    FROM public.conversation_items i
    WHERE i.owner = p_owner AND i.conversation_id = p_conv
      AND i.id = ANY (p_ids)
$$;

CREATE OR REPLACE FUNCTION public.threads_items_create(p_owner text,
    p_conv text, p_items jsonb)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM public.conversations WHERE owner = p_owner AND id = p_conv
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM public.threads_items_add(p_owner, p_conv, p_items,
        floor(extract(epoch FROM now()))::bigint);
    RETURN NEXT public.threads_items_list_of(p_owner, p_conv,
        ARRAY(SELECT e->>'id' FROM jsonb_array_elements(p_items) e));
END
$$;

CREATE OR REPLACE FUNCTION public.threads_items_create_keyed(p_owner text,
    p_conv text, p_items jsonb, p_key text, p_digest text, p_ttl bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k      record;
    v_body text;
    v_old  text[];
    -- a constant to Citus: ON CONFLICT's WHERE takes no stable function
    v_now  timestamptz := now();
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext(p_owner), hashtext(p_key)) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    SELECT x.digest, x.body INTO k FROM public.idempotency_keys x
    WHERE x.owner = p_owner AND x.key = p_key AND x.expires_at > v_now;
    IF FOUND THEN
        IF k.digest = p_digest THEN
            RETURN QUERY SELECT k.body, 'replay'::text;
        ELSE
            RETURN QUERY SELECT NULL::text, 'reused'::text;
        END IF;
        RETURN;
    END IF;
    PERFORM 1 FROM public.conversations WHERE owner = p_owner AND id = p_conv
    FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'missing'::text;
        RETURN;
    END IF;
    PERFORM public.threads_items_add(p_owner, p_conv, p_items,
        floor(extract(epoch FROM v_now))::bigint);
    v_body := public.threads_items_list_of(p_owner, p_conv,
        ARRAY(SELECT e->>'id' FROM jsonb_array_elements(p_items) e));
    INSERT INTO public.idempotency_keys AS x (owner, key, digest, body,
                                              created_at, expires_at)
    VALUES (p_owner, p_key, p_digest, v_body, v_now,
            v_now + p_ttl * interval '1 second')
    ON CONFLICT (owner, key) DO UPDATE SET digest = excluded.digest,
        body = excluded.body, created_at = excluded.created_at,
        expires_at = excluded.expires_at
    WHERE x.expires_at <= v_now;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    -- one keyed add in 8 prunes up to 32 expired keys of its owner
    IF hashtext(p_key) & 7 = 0 THEN
        SELECT array_agg(o.key) INTO v_old FROM (
            SELECT x.key FROM public.idempotency_keys x
            WHERE x.owner = p_owner AND x.expires_at < v_now
              AND x.key <> p_key
            ORDER BY x.expires_at LIMIT 32 FOR UPDATE SKIP LOCKED) o;
        IF v_old IS NOT NULL THEN
            DELETE FROM public.idempotency_keys
            WHERE owner = p_owner AND key = ANY (v_old)
              AND expires_at < v_now;
        END IF;
    END IF;
    RETURN QUERY SELECT v_body, 'new'::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_item_delete(p_owner text,
    p_conv text, p_item text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    c     record;
    v_seq bigint;
BEGIN
    SELECT id, created_at, metadata INTO c FROM public.conversations
    WHERE owner = p_owner AND id = p_conv;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM public.conversation_items
    WHERE owner = p_owner AND conversation_id = p_conv AND id = p_item
    RETURNING seq INTO v_seq;
    IF NOT FOUND THEN
        RETURN NEXT NULL;
        RETURN;
    END IF;
    INSERT INTO public.conversation_item_tombstones (owner, conversation_id,
                                                     id, seq)
    VALUES (p_owner, p_conv, p_item, v_seq)
    ON CONFLICT DO NOTHING;
    RETURN NEXT json_build_object('id', c.id, 'object', 'conversation',
        'created_at', c.created_at, 'metadata', c.metadata)::text;
END
$$;

-- a thread's messages as a conversation's items (see
-- NGX_HTTP_THREADS_SQL_THREAD_CONVERT for the mapping)
CREATE OR REPLACE FUNCTION public.threads_thread_convert(p_owner text,
    p_thread text, p_cid text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    t     record;
    r     record;
    v_seq bigint;
    v_at  bigint;
BEGIN
    SELECT id, metadata INTO t FROM public.threads
    WHERE owner = p_owner AND id = p_thread FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO public.conversations (owner, id, created_at, metadata)
    VALUES (p_owner, p_cid, floor(extract(epoch FROM now()))::bigint,
            t.metadata)
    RETURNING seq, created_at INTO v_seq, v_at;
    PERFORM public.threads_conv_pairs(p_owner, t.metadata, v_seq);
    FOR r IN SELECT m.id, m.created_at,
        jsonb_build_object('id', m.id, 'type', 'message',
            'status', 'completed', 'role', m.role, 'content',
            (SELECT COALESCE(jsonb_agg(CASE p->>'type'
                WHEN 'text' THEN CASE WHEN m.role = 'assistant' THEN
                    jsonb_build_object('type', 'output_text',
                        'text', p->'text'->'value',
                        'annotations', '[]'::jsonb, 'logprobs', '[]'::jsonb)
                    ELSE jsonb_build_object('type', 'input_text',
                        'text', p->'text'->'value') END
                WHEN 'image_file' THEN jsonb_build_object(
                    'type', 'input_image', 'image_url', NULL,
                    'file_id', p->'image_file'->'file_id',
                    'detail', COALESCE(p->'image_file'->'detail', '"auto"'))
                ELSE jsonb_build_object('type', 'input_image',
                    'image_url', p->'image_url'->'url', 'file_id', NULL,
                    'detail', COALESCE(p->'image_url'->'detail', '"auto"'))
                END ORDER BY k), '[]'::jsonb)
             FROM jsonb_array_elements(m.content) WITH ORDINALITY AS q(p, k)))
        AS item
    FROM public.messages m
    WHERE m.owner = p_owner AND m.thread_id = p_thread
      AND m.seq > 0                     -- messages_by_seq: no sort
    ORDER BY m.seq LOOP
        -- a row at a time (a thread holds any number of messages)
        INSERT INTO public.conversation_items (owner, conversation_id, id,
                                               created_at, item)
        VALUES (p_owner, p_cid, r.id, r.created_at, r.item);
    END LOOP;
    RETURN NEXT json_build_object('id', p_cid, 'object', 'conversation',
        'created_at', v_at, 'metadata', t.metadata)::text;
END
$$;

INSERT INTO threads_schema (version) VALUES (7) ON CONFLICT DO NOTHING;

-- Version 8: the creation-order indexes are partial, WHERE seq > 0 (every
-- row: seq is an identity from 1).  Every statement that reads in creation
-- order says seq > 0 beside its keyset condition; a look-up by id does
-- not, so it can only take the primary key.  With the plain indexes, a
-- generic plan priced an owner's rows from the average owner: where most
-- owners have one thread, (owner, seq) and the primary key cost the same,
-- the planner took (owner, seq), and a retrieve of an owner with 5,000
-- threads read all 5,000 (1.45 ms instead of 0.06).  Not IS NOT NULL:
-- PostgreSQL 17 drops that condition from queries on a NOT NULL column.
-- Version 7 modules work on it (their convert then sorts a thread's
-- messages).  On a big table build them first without blocking writes,
-- then drop the old ones the same way, then apply this file (IF NOT EXISTS
-- then skips them):
--   CREATE INDEX CONCURRENTLY threads_by_seq ON threads (owner, seq)
--     WHERE seq > 0;
--   CREATE INDEX CONCURRENTLY messages_by_seq
--     ON messages (owner, thread_id, seq) WHERE seq > 0;
--   CREATE INDEX CONCURRENTLY conversations_by_seq
--     ON conversations (owner, seq) WHERE seq > 0;
--   CREATE INDEX CONCURRENTLY conversation_items_by_seq
--     ON conversation_items (owner, conversation_id, seq) WHERE seq > 0;
--   DROP INDEX CONCURRENTLY IF EXISTS threads_owner_seq;   (and the three
--     others dropped below)
-- One that failed is left INVALID: this file then stops before dropping
-- anything; drop it and build it again until pg_index.indisvalid says true.
CREATE INDEX IF NOT EXISTS threads_by_seq ON threads (owner, seq)
    WHERE seq > 0;
CREATE INDEX IF NOT EXISTS messages_by_seq
    ON messages (owner, thread_id, seq) WHERE seq > 0;
CREATE INDEX IF NOT EXISTS conversations_by_seq
    ON conversations (owner, seq) WHERE seq > 0;
CREATE INDEX IF NOT EXISTS conversation_items_by_seq
    ON conversation_items (owner, conversation_id, seq)
    WHERE seq > 0;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname IN ('threads_by_seq', 'messages_by_seq',
                   'conversations_by_seq', 'conversation_items_by_seq')
                 AND c.relnamespace = 'public'::regnamespace
                 AND NOT i.indisvalid) THEN
        RAISE EXCEPTION 'an index *_by_seq is INVALID (a failed CREATE INDEX'
            ' CONCURRENTLY): drop it and build it again, then apply this file';
    END IF;
END
$$;
DROP INDEX IF EXISTS threads_owner_seq;
DROP INDEX IF EXISTS messages_thread_seq;
DROP INDEX IF EXISTS conversations_owner_seq;
DROP INDEX IF EXISTS conversation_items_seq;

INSERT INTO threads_schema (version) VALUES (8) ON CONFLICT DO NOTHING;

-- Version 9: a keyed create's id no longer changes with the period of the
-- key's life.  The key's object has one id, ending "AA" (generation 0); a
-- key used again after it expired makes the next generation (the module's
-- statements say how: NGX_HTTP_THREADS_SQL_KEY_GEN).  Only the Citus
-- functions are new: *_create_by_key take the key's id, digest, lock and
-- ttl where version 7's *_create_keyed took three ids.  Those stay, for
-- modules that still call them while the others are upgraded (a later
-- version drops them).  Keys used by a module before the generations are
-- not found by one after them: a retry sent across the module's upgrade
-- may create a second object.  A keyed tombstone (key_digest not NULL)
-- holds its key's generation: prune it and the key may make a second
-- object.
-- The id of generation n of the key whose id (generation 0) is p_id.
CREATE OR REPLACE FUNCTION public.threads_key_gen(p_id text, p_n integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(p_id, -2)
        || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
                  p_n / 62 + 1, 1)
        || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
                  p_n % 62 + 1, 1)
$$;

-- A key's generations among the rows and tombstones of p_kind ('thread',
-- 'message' of the thread p_parent, 'conversation'), from 0 to the first
-- missing or live one, 100 at most: the live one (live, and its id,
-- created_at and digest), or the id to create (next_id; NULL when the key
-- is live or used up).  The statements' texts are constants.
CREATE OR REPLACE FUNCTION public.threads_key_walk(p_kind text,
    p_owner text, p_parent text, p_id text, p_ttl bigint, OUT id text,
    OUT created_at bigint, OUT key_digest bytea, OUT live boolean,
    OUT next_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_n   integer := 0;
    v_id  text := p_id;
    v_now bigint := floor(extract(epoch FROM now()))::bigint;
    v_sql text;
BEGIN
    v_sql := CASE p_kind
        WHEN 'thread' THEN
            'SELECT x.id, x.created_at, x.key_digest FROM public.threads x'
            ' WHERE x.owner = $1 AND x.id = $2 AND x.key_digest IS NOT NULL'
            ' UNION ALL SELECT x.id, x.created_at, x.key_digest'
            ' FROM public.thread_tombstones x WHERE x.owner = $1'
            ' AND x.id = $2 AND x.key_digest IS NOT NULL LIMIT 1'
        WHEN 'message' THEN
            'SELECT x.id, x.created_at, x.key_digest FROM public.messages x'
            ' WHERE x.owner = $1 AND x.thread_id = $3 AND x.id = $2'
            ' AND x.key_digest IS NOT NULL'
            ' UNION ALL SELECT x.id, x.created_at, x.key_digest'
            ' FROM public.message_tombstones x WHERE x.owner = $1'
            ' AND x.thread_id = $3 AND x.id = $2'
            ' AND x.key_digest IS NOT NULL LIMIT 1'
        WHEN 'conversation' THEN
            'SELECT x.id, x.created_at, x.key_digest'
            ' FROM public.conversations x'
            ' WHERE x.owner = $1 AND x.id = $2 AND x.key_digest IS NOT NULL'
            ' UNION ALL SELECT x.id, x.created_at, x.key_digest'
            ' FROM public.conversation_tombstones x WHERE x.owner = $1'
            ' AND x.id = $2 AND x.key_digest IS NOT NULL LIMIT 1'
        END;
    IF v_sql IS NULL THEN
        RAISE EXCEPTION 'threads_key_walk: no kind %', p_kind;
    END IF;
    live := false;
    LOOP
        EXECUTE v_sql INTO id, created_at, key_digest
            USING p_owner, v_id, p_parent;
        IF id IS NULL THEN
            next_id := v_id;
            RETURN;
        END IF;
        IF created_at >= v_now - p_ttl THEN
            live := true;
            RETURN;
        END IF;
        IF v_n >= 99 THEN  -- NGX_HTTP_THREADS_SQL_KEY_LAST
            RETURN;
        END IF;
        v_n := v_n + 1;
        v_id := public.threads_key_gen(p_id, v_n);
    END LOOP;
END
$$;

-- A keyed create's answer: (body, state), as the module's keyed statements
-- say (new, replay, reused, busy, missing).
CREATE OR REPLACE FUNCTION public.threads_thread_create_by_key(p_owner text,
    p_id text, p_metadata jsonb, p_tool jsonb, p_messages jsonb,
    p_digest text, p_lock bigint, p_ttl bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k     record;
    v_seq bigint;
    v_at  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    k := public.threads_key_walk('thread', p_owner, NULL, p_id, p_ttl);
    IF k.live AND k.key_digest = decode(p_digest, 'hex') THEN
        RETURN QUERY SELECT json_build_object('id', k.id,
            'object', 'thread', 'created_at', k.created_at,
            'metadata', p_metadata, 'tool_resources', p_tool)::text,
            'replay'::text;
        RETURN;
    END IF;
    IF k.next_id IS NULL THEN
        RETURN QUERY SELECT NULL::text, 'reused'::text;
        RETURN;
    END IF;
    INSERT INTO public.threads (owner, id, created_at, metadata,
                                tool_resources, key_digest)
    VALUES (p_owner, k.next_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata, p_tool, decode(p_digest, 'hex'))
    ON CONFLICT DO NOTHING
    RETURNING seq, created_at INTO v_seq, v_at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    PERFORM public.threads_messages_add(p_owner, k.next_id, p_messages,
                                        v_at);
    PERFORM public.threads_thread_pairs(p_owner, p_metadata, v_seq);
    RETURN QUERY SELECT json_build_object('id', k.next_id,
        'object', 'thread', 'created_at', v_at, 'metadata', p_metadata,
        'tool_resources', p_tool)::text, 'new'::text;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_message_create_by_key(p_owner text,
    p_thread text, p_message jsonb, p_mid text, p_digest text,
    p_lock bigint, p_ttl bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k    record;
    v_at bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    k := public.threads_key_walk('message', p_owner, p_thread, p_mid,
                                 p_ttl);
    IF k.live AND k.key_digest = decode(p_digest, 'hex') THEN
        v_at := k.created_at;
        p_mid := k.id;
        state := 'replay';
    ELSIF k.next_id IS NULL THEN
        RETURN QUERY SELECT NULL::text, 'reused'::text;
        RETURN;
    ELSE
        PERFORM 1 FROM public.threads WHERE owner = p_owner AND id = p_thread
        FOR KEY SHARE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT NULL::text, 'missing'::text;
            RETURN;
        END IF;
        p_mid := k.next_id;
        INSERT INTO public.messages (owner, thread_id, id, created_at, role,
                                     content, attachments, metadata,
                                     key_digest)
        VALUES (p_owner, p_thread, p_mid,
                floor(extract(epoch FROM now()))::bigint,
                p_message->>'role', p_message->'content',
                p_message->'attachments', p_message->'metadata',
                decode(p_digest, 'hex'))
        ON CONFLICT DO NOTHING
        RETURNING created_at INTO v_at;
        IF NOT FOUND THEN
            RETURN QUERY SELECT NULL::text, 'busy'::text;
            RETURN;
        END IF;
        state := 'new';
    END IF;
    body := json_build_object('id', p_mid, 'object', 'thread.message',
        'created_at', v_at, 'thread_id', p_thread,
        'status', 'completed', 'incomplete_details', NULL,
        'completed_at', v_at, 'incomplete_at', NULL,
        'role', p_message->>'role', 'content', p_message->'content',
        'assistant_id', NULL::text, 'run_id', NULL::text,
        'attachments', p_message->'attachments',
        'metadata', p_message->'metadata')::text;
    RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION public.threads_conv_create_by_key(p_owner text,
    p_id text, p_metadata jsonb, p_items jsonb, p_digest text,
    p_lock bigint, p_ttl bigint)
RETURNS TABLE (body text, state text) LANGUAGE plpgsql AS $$
DECLARE
    k     record;
    v_seq bigint;
    v_at  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    k := public.threads_key_walk('conversation', p_owner, NULL, p_id,
                                 p_ttl);
    IF k.live AND k.key_digest = decode(p_digest, 'hex') THEN
        RETURN QUERY SELECT json_build_object('id', k.id,
            'object', 'conversation', 'created_at', k.created_at,
            'metadata', p_metadata)::text, 'replay'::text;
        RETURN;
    END IF;
    IF k.next_id IS NULL THEN
        RETURN QUERY SELECT NULL::text, 'reused'::text;
        RETURN;
    END IF;
    INSERT INTO public.conversations (owner, id, created_at, metadata,
                                      key_digest)
    VALUES (p_owner, k.next_id, floor(extract(epoch FROM now()))::bigint,
            p_metadata, decode(p_digest, 'hex'))
    ON CONFLICT DO NOTHING
    RETURNING seq, created_at INTO v_seq, v_at;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::text, 'busy'::text;
        RETURN;
    END IF;
    PERFORM public.threads_items_add(p_owner, k.next_id, p_items, v_at);
    PERFORM public.threads_conv_pairs(p_owner, p_metadata, v_seq);
    RETURN QUERY SELECT json_build_object('id', k.next_id,
        'object', 'conversation', 'created_at', v_at,
        'metadata', p_metadata)::text, 'new'::text;
END
$$;

INSERT INTO threads_schema (version) VALUES (9) ON CONFLICT DO NOTHING;


COMMIT;
