-- ngx_http_threads_module storage, schema version 7.
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

-- newest-first listings of an owner's threads: an index scan, no sort
CREATE INDEX IF NOT EXISTS threads_owner_seq ON threads (owner, seq);

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

-- a thread's messages in creation order
CREATE INDEX IF NOT EXISTS messages_thread_seq
    ON messages (owner, thread_id, seq);

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

CREATE INDEX IF NOT EXISTS conversations_owner_seq
    ON conversations (owner, seq);

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

CREATE INDEX IF NOT EXISTS conversation_items_seq
    ON conversation_items (owner, conversation_id, seq);

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
CREATE INDEX IF NOT EXISTS thread_metadata_seq
    ON thread_metadata (owner, seq);
CREATE INDEX IF NOT EXISTS conversation_metadata_seq
    ON conversation_metadata (owner, seq);
INSERT INTO threads_schema (version) VALUES (7) ON CONFLICT DO NOTHING;


COMMIT;
