-- What the hostile-users work added: what keeps an archive from deciding where an
-- account's keys and texts are sent, and a fairer count of what accounts keep.
--
-- An `embeddingConfig` setting an import brought into an account that had none: the
-- setting is kept as the archive had it (exports stay value-identical), but lvbak treats it
-- as switched off until the user confirms it in this account (the page's "restored from a
-- backup: check and enable"); no run starts against it.
CREATE TABLE IF NOT EXISTS lvbak_embedding_unconfirmed (
    user_id TEXT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
    restored_at INTEGER NOT NULL
);

-- The one endpoint each stored embeddings API key may be sent to: the URL it was saved
-- with in this account. NULL: restored from a backup, sent nowhere until the user confirms
-- a setting. Keys stored before this table existed are bound when a process starts to the
-- endpoint their account's setting names then.
CREATE TABLE IF NOT EXISTS lvbak_key_endpoints (
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    endpoint TEXT,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;

-- Facts about the data directory as a whole: `usage_formula` is the version of the rule
-- every account's recorded disk use (`lvbak_usage`) was computed by; a process that finds
-- an older one recounts every account (files, rows, secrets, vectors) once.
CREATE TABLE IF NOT EXISTS lvbak_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
