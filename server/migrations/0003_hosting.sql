-- What a shared instance needs to keep its users apart and bounded.

-- Ticket uses per archive and user: one user's use says nothing to another.
CREATE TABLE IF NOT EXISTS lvbak_ticket_uses (
    archive_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    consumed_at INTEGER NOT NULL,
    uses INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (archive_id, user_id)
);

-- Disk quotas of their own (NULL: no limit; no row: the instance's quota) and disk use.
CREATE TABLE IF NOT EXISTS lvbak_quotas (
    user_id TEXT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
    quota_bytes INTEGER
);
CREATE TABLE IF NOT EXISTS lvbak_usage (
    user_id TEXT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
    bytes INTEGER NOT NULL
);
