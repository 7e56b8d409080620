-- Brings two tables to the shape Lumiverse 1.1's own migrations give them (read from a
-- database Lumiverse made; `tests/data/lumiverse-schema.json`). Runs with foreign keys off
-- (see migrations.rs), so dropping the old tables deletes nothing that refers to them.

-- chats.character_id is nullable (a chat may outlive its character, or have none).
CREATE TABLE "lvbak_chats_1_1" (
    "id" TEXT,
    "character_id" TEXT,
    "name" TEXT NOT NULL DEFAULT '',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE CASCADE
);
INSERT INTO "lvbak_chats_1_1" SELECT "id", "character_id", "name", "metadata", "created_at", "updated_at", "user_id"
    FROM "chats";
DROP TABLE "chats";
ALTER TABLE "lvbak_chats_1_1" RENAME TO "chats";
CREATE INDEX IF NOT EXISTS lvbak_chats_user ON chats(user_id);

-- dream_weaver_sessions: session_number after user_id (1, 2, 3… per user in creation
-- order, as Lumiverse's migration 068 numbers them), dream_text defaulting to '', status
-- NOT NULL, and workspace_kind, character_id, launch_chat_id at the end, in that order.
CREATE TABLE "lvbak_dream_weaver_sessions_1_1" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "session_number" INTEGER NOT NULL,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "dream_text" TEXT NOT NULL DEFAULT '',
    "tone" TEXT,
    "constraints" TEXT,
    "dislikes" TEXT,
    "persona_id" TEXT,
    "connection_id" TEXT,
    "model" TEXT,
    "draft" TEXT,
    "status" TEXT NOT NULL DEFAULT 'draft',
    "workspace_kind" TEXT NOT NULL DEFAULT 'character',
    "character_id" TEXT,
    "launch_chat_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("persona_id") REFERENCES "personas"("id") ON DELETE SET NULL,
    FOREIGN KEY ("connection_id") REFERENCES "connection_profiles"("id") ON DELETE SET NULL,
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE SET NULL
);
INSERT INTO "lvbak_dream_weaver_sessions_1_1" (
    "id", "user_id", "session_number", "created_at", "updated_at", "dream_text", "tone", "constraints",
    "dislikes", "persona_id", "connection_id", "model", "draft", "status", "workspace_kind", "character_id",
    "launch_chat_id"
)
SELECT
    "id",
    "user_id",
    ROW_NUMBER() OVER (PARTITION BY "user_id" ORDER BY COALESCE("created_at", unixepoch()) ASC, "id" ASC),
    COALESCE("created_at", unixepoch()),
    COALESCE("updated_at", unixepoch()),
    COALESCE("dream_text", ''),
    "tone",
    "constraints",
    "dislikes",
    "persona_id",
    "connection_id",
    "model",
    "draft",
    COALESCE("status", 'draft'),
    CASE WHEN json_valid("draft") AND json_extract("draft", '$.kind') = 'scenario' THEN 'scenario' ELSE 'character' END,
    "character_id",
    NULL
FROM "dream_weaver_sessions";
DROP TABLE "dream_weaver_sessions";
ALTER TABLE "lvbak_dream_weaver_sessions_1_1" RENAME TO "dream_weaver_sessions";
CREATE INDEX IF NOT EXISTS lvbak_dream_weaver_sessions_user ON dream_weaver_sessions(user_id);
-- As in Lumiverse: a user's session numbers are unique (imports renumber a taken one).
CREATE UNIQUE INDEX IF NOT EXISTS lvbak_dream_weaver_sessions_number ON dream_weaver_sessions(user_id, session_number);
