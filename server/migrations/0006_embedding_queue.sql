-- Rows waiting to be embedded, per user: which source (`chat_chunk`, `databank`,
-- `memory_consolidation`, `world_book_entry`) and the row's id. Filled from the rows'
-- own state (`vectorized_at IS NULL`, `vector_index_status = 'pending'`) when a run starts
-- or resumes; a row leaves the queue in the transaction that marks it vectorized, so a
-- run cut short resumes where it stopped. `written` is set before a row's vector goes to
-- LanceDB: only such a row (a run killed between writing and marking) may already have a
-- vector, which the next attempt replaces; every other row is added without a lookup.
CREATE TABLE IF NOT EXISTS lvbak_embedding_queue (
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    row_id TEXT NOT NULL,
    written INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, source, row_id)
) WITHOUT ROWID;
