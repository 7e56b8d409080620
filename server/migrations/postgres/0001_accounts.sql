-- PostgreSQL: the tables of the account-side storage traits (accounts, sessions, quotas and
-- use, the job log, secrets and their endpoint bindings, ticket uses, settings, sign-in
-- buckets, prepared exports). Rows of Lumiverse's other tables are a later migration.
--
-- Types: SQLite's INTEGER columns are BIGINT (SQLite stores 64-bit integers), TEXT stays
-- TEXT. `unixepoch()` defaults become the epoch seconds of `now()`. Lumiverse's tables keep
-- their names and columns (`/work/shared/lumiverse-schema.json`); where SQLite has a
-- PRIMARY KEY over a nullable column (`secrets`, `settings`: `user_id`), PostgreSQL would
-- make the column NOT NULL, so it is a UNIQUE constraint instead, which, like SQLite's key,
-- treats NULLs as distinct.

CREATE TABLE "user" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "emailVerified" BIGINT NOT NULL DEFAULT 0,
    "image" TEXT,
    "createdAt" BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint),
    "updatedAt" BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint),
    "username" TEXT,
    "displayUsername" TEXT,
    "role" TEXT DEFAULT 'user',
    "banned" BIGINT DEFAULT 0,
    "banReason" TEXT,
    "banExpires" BIGINT,
    PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX lvbak_user_username ON "user" ("username");

CREATE TABLE "secrets" (
    "key" TEXT NOT NULL,
    "encrypted_value" TEXT NOT NULL,
    "iv" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "updated_at" BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint),
    "user_id" TEXT REFERENCES "user" ("id") ON DELETE CASCADE,
    CONSTRAINT secrets_key_user UNIQUE ("key", "user_id")
);

CREATE TABLE "settings" (
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "updated_at" BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint),
    "user_id" TEXT REFERENCES "user" ("id") ON DELETE CASCADE,
    CONSTRAINT settings_key_user UNIQUE ("key", "user_id")
);
CREATE INDEX lvbak_settings_user ON settings (user_id);

-- Sign-in: Argon2id password hashes, and sessions stored as SHA-256 hashes of their tokens.
CREATE TABLE lvbak_credentials (
    user_id TEXT PRIMARY KEY REFERENCES "user" (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    updated_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::bigint)
);
CREATE TABLE lvbak_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX lvbak_sessions_user ON lvbak_sessions (user_id);
CREATE INDEX lvbak_sessions_expiry ON lvbak_sessions (expires_at);

-- Import jobs survive restarts so that unfinished ones can be marked failed.
CREATE TABLE lvbak_import_jobs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    archive_id TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    error_code TEXT,
    error_message TEXT,
    summary TEXT
);
CREATE INDEX lvbak_import_jobs_user ON lvbak_import_jobs (user_id);

-- Ticket uses per archive and user: one user's use says nothing to another.
CREATE TABLE lvbak_ticket_uses (
    archive_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    consumed_at BIGINT NOT NULL,
    uses BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    PRIMARY KEY (archive_id, user_id)
);

-- Disk quotas of their own (NULL: no limit; no row: the instance's quota) and disk use.
CREATE TABLE lvbak_quotas (
    user_id TEXT PRIMARY KEY REFERENCES "user" (id) ON DELETE CASCADE,
    quota_bytes BIGINT
);
CREATE TABLE lvbak_usage (
    user_id TEXT PRIMARY KEY REFERENCES "user" (id) ON DELETE CASCADE,
    bytes BIGINT NOT NULL
);

-- An `embeddingConfig` setting restored from a backup and not confirmed by its user, and
-- the one endpoint each embeddings API key may be sent to (NULL: none yet).
CREATE TABLE lvbak_embedding_unconfirmed (
    user_id TEXT PRIMARY KEY REFERENCES "user" (id) ON DELETE CASCADE,
    restored_at BIGINT NOT NULL
);
CREATE TABLE lvbak_key_endpoints (
    user_id TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    endpoint TEXT,
    PRIMARY KEY (user_id, key)
);

-- Facts about the instance as a whole (`usage_formula`, as in SQLite's `lvbak_meta`).
CREATE TABLE lvbak_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- What SQLite's instance keeps in one process's memory and every node must share here.
-- Sign-in token buckets: `scope` is `address` or `failure`; a bucket untouched long enough
-- to be full again is the same as none and is swept.
CREATE TABLE lvbak_sign_in_buckets (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    taken BOOLEAN NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX lvbak_sign_in_buckets_updated ON lvbak_sign_in_buckets (updated_at);

-- Exports prepared and not yet fetched: the plan as JSON text (its API keys already sealed
-- for the archive), handed out once to its user; `made` orders a user's plans.
CREATE TABLE lvbak_prepared_exports (
    archive_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    made BIGSERIAL NOT NULL,
    made_at TIMESTAMPTZ NOT NULL,
    plan TEXT NOT NULL
);
CREATE INDEX lvbak_prepared_exports_user ON lvbak_prepared_exports (user_id, made);
