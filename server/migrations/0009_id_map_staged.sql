-- Copies an import made and has not yet added to lvbak_id_map: appended with the copied
-- rows, in their transaction (the map is keyed by the archive's random ids, so writing it
-- as the rows arrive rewrote most of its pages at every commit), and added to the map in
-- its order at the import's end — or, after a crash, when an import of the user next
-- starts. AUTOINCREMENT: an import takes back its own (ids above those there when it
-- began) however the others' come and go. Never shown to anyone.
CREATE TABLE IF NOT EXISTS lvbak_id_map_staged (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    original_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    new_id TEXT NOT NULL
);
