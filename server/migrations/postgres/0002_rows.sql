-- PostgreSQL: lvbak's tables beside Lumiverse's rows (which `row_tables` builds from
-- SQLite's schema at every start): the id map of copies, re-vectorization's queue, the
-- imports that are adding rows and the vectors each recorded.

-- Rows an import gave new ids because their ids belonged to another user (as SQLite's
-- `lvbak_id_map`, migration 0005).
CREATE TABLE lvbak_id_map (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    original_id TEXT COLLATE "C" NOT NULL,
    table_name TEXT COLLATE "C" NOT NULL,
    new_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, original_id, table_name)
);

-- Rows waiting to be embedded, per user (as SQLite's `lvbak_embedding_queue`, 0006).
CREATE TABLE lvbak_embedding_queue (
    user_id TEXT COLLATE "C" NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    source TEXT COLLATE "C" NOT NULL,
    row_id TEXT COLLATE "C" NOT NULL,
    written BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, source, row_id)
);

-- Every import that writes rows gets a number (the `lvbak_import` of the rows it adds):
-- what it takes back or settles is found by it.
CREATE SEQUENCE lvbak_import_seq;
CREATE TABLE lvbak_imports (
    id BIGINT PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL,
    started_at BIGINT NOT NULL
);

-- The vectors an import added (table, dimension, id), so a rollback takes them back.
CREATE TABLE lvbak_import_vectors (
    import_id BIGINT NOT NULL,
    seq BIGSERIAL NOT NULL,
    tbl TEXT COLLATE "C" NOT NULL,
    dim BIGINT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (import_id, seq)
);
