-- Rows waiting to be embedded, per user: which source (`chat_chunk`, `databank`,
-- `memory_consolidation`, `world_book_entry`) and the row's id. Filled from the rows'
-- own state (`vectorized_at IS NULL`, `vector_index_status = 'pending'`) when a run starts
-- or resumes; a row leaves the queue in the transaction that marks it vectorized, so a
-- run cut short resumes where it stopped.
CREATE TABLE IF NOT EXISTS lvbak_embedding_queue (
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    row_id TEXT NOT NULL,
    PRIMARY KEY (user_id, source, row_id)
) WITHOUT ROWID;
