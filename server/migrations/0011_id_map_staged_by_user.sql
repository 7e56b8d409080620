-- Staged copies stay staged as part of an account's id map (see
-- `storage::sqlite::apply::id_map`) instead of leaving at every import's end, so the table
-- holds every account's: an import reads its own account's rows through this index, and
-- deleting an account finds its rows by it.
CREATE INDEX IF NOT EXISTS lvbak_id_map_staged_user ON lvbak_id_map_staged (user_id, id);
