-- Copies staged as one row per batch (its pairs of one table packed in a blob, see
-- `storage::sqlite::apply::staged_pairs`) instead of one row per copy: 500,000 copied
-- characters staged 500,000 rows of four texts, written, then deleted again. What an
-- interrupted import left staged the old way joins the id map first.
INSERT OR IGNORE INTO lvbak_id_map (user_id, original_id, table_name, new_id)
    SELECT user_id, original_id, table_name, new_id FROM lvbak_id_map_staged
    WHERE user_id IN (SELECT id FROM "user") ORDER BY user_id, original_id, table_name;
DROP TABLE lvbak_id_map_staged;
-- AUTOINCREMENT: an import takes back its own (ids above those there when it began)
-- however the others' come and go. Never shown to anyone.
CREATE TABLE lvbak_id_map_staged (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    table_name TEXT NOT NULL,
    pairs BLOB NOT NULL
);
