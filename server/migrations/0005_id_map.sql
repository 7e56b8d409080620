-- Rows an import gave new ids because their ids belonged to another user: per user, the
-- archive's id and the id the row has here, so importing the same archive again skips
-- them and references to them find the copy. Never shown to anyone.
CREATE TABLE IF NOT EXISTS lvbak_id_map (
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    original_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    new_id TEXT NOT NULL,
    PRIMARY KEY (user_id, original_id, table_name)
) WITHOUT ROWID;
