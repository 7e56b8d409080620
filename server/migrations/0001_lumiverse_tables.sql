-- Lumiverse 1.1 tables, column for column (generated once from ../shared/lumiverse-schema.json;
-- server/tests check the live schema against that file). Every table exists so that rows from a
-- real Lumiverse apply with no column lost and instance-wide tables are present to be protected.

CREATE TABLE IF NOT EXISTS "account" (
    "id" TEXT NOT NULL,
    "accountId" TEXT NOT NULL,
    "providerId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "accessToken" TEXT,
    "refreshToken" TEXT,
    "idToken" TEXT,
    "accessTokenExpiresAt" INTEGER,
    "refreshTokenExpiresAt" INTEGER,
    "scope" TEXT,
    "password" TEXT,
    "createdAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updatedAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("userId") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "audio_files" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "filename" TEXT NOT NULL,
    "original_filename" TEXT NOT NULL DEFAULT '',
    "mime_type" TEXT NOT NULL DEFAULT '',
    "size_bytes" INTEGER NOT NULL DEFAULT 0,
    "duration_ms" INTEGER,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "character_gallery" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "character_id" TEXT NOT NULL,
    "image_id" TEXT NOT NULL,
    "caption" TEXT DEFAULT '',
    "sort_order" INTEGER DEFAULT 0,
    "created_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("image_id") REFERENCES "images"("id") ON DELETE CASCADE,
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE CASCADE,
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "characters" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "avatar_path" TEXT,
    "description" TEXT NOT NULL DEFAULT '',
    "personality" TEXT NOT NULL DEFAULT '',
    "scenario" TEXT NOT NULL DEFAULT '',
    "first_mes" TEXT NOT NULL DEFAULT '',
    "mes_example" TEXT NOT NULL DEFAULT '',
    "creator" TEXT NOT NULL DEFAULT '',
    "creator_notes" TEXT NOT NULL DEFAULT '',
    "system_prompt" TEXT NOT NULL DEFAULT '',
    "post_history_instructions" TEXT NOT NULL DEFAULT '',
    "tags" TEXT NOT NULL DEFAULT '[]',
    "alternate_greetings" TEXT NOT NULL DEFAULT '[]',
    "extensions" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "image_id" TEXT,
    "user_id" TEXT,
    "deleting" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("image_id") REFERENCES "images"("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "chat_chunks" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "start_message_id" TEXT NOT NULL,
    "end_message_id" TEXT NOT NULL,
    "message_ids" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "token_count" INTEGER NOT NULL,
    "vectorized_at" INTEGER,
    "vector_model" TEXT,
    "retrieval_count" INTEGER DEFAULT 0,
    "last_retrieved_at" INTEGER,
    "avg_similarity_score" REAL,
    "has_dialogue" INTEGER DEFAULT 1,
    "has_action" INTEGER DEFAULT 0,
    "message_count" INTEGER NOT NULL,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "salience_score" REAL DEFAULT (NULL),
    "emotional_tags" TEXT DEFAULT (NULL),
    "entity_ids" TEXT DEFAULT (NULL),
    "consolidation_id" TEXT DEFAULT (NULL),
    "message_range_start" INTEGER DEFAULT (NULL),
    "message_range_end" INTEGER DEFAULT (NULL),
    "cortex_warmup_signature" TEXT DEFAULT (NULL),
    "cortex_warmup_completed_at" INTEGER DEFAULT (NULL),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "chat_memory_cache" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "chat_id" TEXT NOT NULL,
    "settings_key" TEXT NOT NULL,
    "source_message_count" INTEGER NOT NULL DEFAULT 0,
    "query_preview" TEXT NOT NULL DEFAULT '',
    "chunks_json" TEXT NOT NULL DEFAULT '[]',
    "formatted" TEXT NOT NULL DEFAULT '',
    "count" INTEGER NOT NULL DEFAULT 0,
    "enabled" INTEGER NOT NULL DEFAULT 1,
    "settings_source" TEXT NOT NULL DEFAULT 'global',
    "chunks_available" INTEGER NOT NULL DEFAULT 0,
    "chunks_pending" INTEGER NOT NULL DEFAULT 0,
    "retrieval_mode" TEXT NOT NULL DEFAULT 'empty',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "chats" (
    "id" TEXT,
    "character_id" TEXT NOT NULL,
    "name" TEXT NOT NULL DEFAULT '',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "connection_profiles" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "api_url" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "preset_id" TEXT,
    "is_default" INTEGER NOT NULL DEFAULT 0,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "has_api_key" INTEGER NOT NULL DEFAULT 0,
    "user_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("preset_id") REFERENCES "presets"("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "cortex_chat_links" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "chat_id" TEXT NOT NULL,
    "link_type" TEXT NOT NULL,
    "vault_id" TEXT,
    "target_chat_id" TEXT,
    "label" TEXT DEFAULT '',
    "enabled" INTEGER DEFAULT 1,
    "priority" INTEGER DEFAULT 0,
    "created_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("target_chat_id") REFERENCES "chats"("id") ON DELETE CASCADE,
    FOREIGN KEY ("vault_id") REFERENCES "cortex_vaults"("id") ON DELETE CASCADE,
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "cortex_vault_chunks" (
    "id" TEXT,
    "vault_id" TEXT NOT NULL,
    "source_chunk_id" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "salience_score" REAL,
    "emotional_tags" TEXT DEFAULT '[]',
    "entity_names" TEXT DEFAULT '[]',
    "source_created_at" INTEGER NOT NULL,
    "copied_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("vault_id") REFERENCES "cortex_vaults"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "cortex_vault_entities" (
    "id" TEXT,
    "vault_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "entity_type" TEXT NOT NULL,
    "aliases" TEXT DEFAULT '[]',
    "description" TEXT DEFAULT '',
    "status" TEXT DEFAULT 'active',
    "facts" TEXT DEFAULT '[]',
    "emotional_valence" TEXT DEFAULT '{}',
    "salience_avg" REAL DEFAULT 0.0,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("vault_id") REFERENCES "cortex_vaults"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "cortex_vault_relations" (
    "id" TEXT,
    "vault_id" TEXT NOT NULL,
    "source_entity_name" TEXT NOT NULL,
    "target_entity_name" TEXT NOT NULL,
    "relation_type" TEXT NOT NULL,
    "relation_label" TEXT,
    "strength" REAL DEFAULT 0.5,
    "sentiment" REAL DEFAULT 0.0,
    "status" TEXT DEFAULT 'active',
    PRIMARY KEY ("id"),
    FOREIGN KEY ("vault_id") REFERENCES "cortex_vaults"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "cortex_vaults" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "source_chat_id" TEXT,
    "name" TEXT NOT NULL,
    "description" TEXT DEFAULT '',
    "entity_count" INTEGER DEFAULT 0,
    "relation_count" INTEGER DEFAULT 0,
    "created_at" INTEGER NOT NULL,
    "chunk_count" INTEGER DEFAULT 0,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("source_chat_id") REFERENCES "chats"("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "databank_chunks" (
    "id" TEXT,
    "document_id" TEXT NOT NULL,
    "databank_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "chunk_index" INTEGER NOT NULL,
    "content" TEXT NOT NULL,
    "token_count" INTEGER NOT NULL DEFAULT 0,
    "vectorized_at" INTEGER,
    "vector_model" TEXT,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("databank_id") REFERENCES "databanks"("id") ON DELETE CASCADE,
    FOREIGN KEY ("document_id") REFERENCES "databank_documents"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "databank_documents" (
    "id" TEXT,
    "databank_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "file_path" TEXT NOT NULL,
    "mime_type" TEXT NOT NULL DEFAULT '',
    "file_size" INTEGER NOT NULL DEFAULT 0,
    "content_hash" TEXT NOT NULL DEFAULT '',
    "total_chunks" INTEGER NOT NULL DEFAULT 0,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "error_message" TEXT,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("databank_id") REFERENCES "databanks"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "databanks" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "scope" TEXT NOT NULL,
    "scope_id" TEXT,
    "enabled" INTEGER NOT NULL DEFAULT 1,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "dream_weaver_messages" (
    "id" TEXT,
    "session_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "seq" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "tool_name" TEXT,
    "status" TEXT,
    "supersedes_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("session_id") REFERENCES "dream_weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "dream_weaver_saved_prompts" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "prompt" TEXT NOT NULL DEFAULT '',
    "negative_prompt" TEXT NOT NULL DEFAULT '',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "dream_weaver_sessions" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "dream_text" TEXT NOT NULL,
    "tone" TEXT,
    "constraints" TEXT,
    "dislikes" TEXT,
    "persona_id" TEXT,
    "connection_id" TEXT,
    "model" TEXT,
    "draft" TEXT,
    "status" TEXT DEFAULT 'draft',
    "character_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE SET NULL,
    FOREIGN KEY ("connection_id") REFERENCES "connection_profiles"("id") ON DELETE SET NULL,
    FOREIGN KEY ("persona_id") REFERENCES "personas"("id") ON DELETE SET NULL,
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "extension_grants" (
    "id" TEXT,
    "extension_id" TEXT NOT NULL,
    "permission" TEXT NOT NULL,
    "granted_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("extension_id") REFERENCES "extensions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "extensions" (
    "id" TEXT,
    "identifier" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "author" TEXT NOT NULL,
    "description" TEXT DEFAULT '',
    "github" TEXT NOT NULL,
    "homepage" TEXT DEFAULT '',
    "permissions" TEXT NOT NULL DEFAULT '[]',
    "enabled" INTEGER NOT NULL DEFAULT 1,
    "installed_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "metadata" TEXT DEFAULT '{}',
    "install_scope" TEXT NOT NULL DEFAULT 'operator',
    "installed_by_user_id" TEXT,
    "branch" TEXT DEFAULT (NULL),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("installed_by_user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "global_addons" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "label" TEXT NOT NULL DEFAULT '',
    "content" TEXT NOT NULL DEFAULT '',
    "sort_order" INTEGER NOT NULL DEFAULT 0,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "image_gen_connections" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "api_url" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "is_default" INTEGER NOT NULL DEFAULT 0,
    "has_api_key" INTEGER NOT NULL DEFAULT 0,
    "default_parameters" TEXT NOT NULL DEFAULT '{}',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "images" (
    "id" TEXT,
    "filename" TEXT NOT NULL,
    "original_filename" TEXT NOT NULL DEFAULT '',
    "mime_type" TEXT NOT NULL DEFAULT '',
    "byte_size" INTEGER NOT NULL DEFAULT 0,
    "width" INTEGER,
    "height" INTEGER,
    "has_thumbnail" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    "owner_extension_identifier" TEXT,
    "owner_character_id" TEXT,
    "owner_chat_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("owner_chat_id") REFERENCES "chats"("id") ON DELETE SET NULL,
    FOREIGN KEY ("owner_character_id") REFERENCES "characters"("id") ON DELETE SET NULL,
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "import_consumed_tickets" (
    "archive_id" TEXT,
    "consumed_at" INTEGER NOT NULL,
    "user_id" TEXT,
    "uses" INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY ("archive_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "loom_items" (
    "id" TEXT,
    "pack_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "content" TEXT NOT NULL DEFAULT '',
    "category" TEXT NOT NULL DEFAULT 'narrative_style',
    "author_name" TEXT NOT NULL DEFAULT '',
    "version" TEXT NOT NULL DEFAULT '1.0.0',
    "sort_order" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("pack_id") REFERENCES "packs"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "loom_tools" (
    "id" TEXT,
    "pack_id" TEXT NOT NULL,
    "tool_name" TEXT NOT NULL,
    "display_name" TEXT NOT NULL DEFAULT '',
    "description" TEXT NOT NULL DEFAULT '',
    "prompt" TEXT NOT NULL DEFAULT '',
    "input_schema" TEXT NOT NULL DEFAULT '{}',
    "result_variable" TEXT NOT NULL DEFAULT '',
    "store_in_deliberation" INTEGER NOT NULL DEFAULT 0,
    "author_name" TEXT NOT NULL DEFAULT '',
    "version" TEXT NOT NULL DEFAULT '1.0.0',
    "sort_order" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("pack_id") REFERENCES "packs"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "lumia_items" (
    "id" TEXT,
    "pack_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "avatar_url" TEXT,
    "author_name" TEXT NOT NULL DEFAULT '',
    "definition" TEXT NOT NULL DEFAULT '',
    "personality" TEXT NOT NULL DEFAULT '',
    "behavior" TEXT NOT NULL DEFAULT '',
    "gender_identity" INTEGER NOT NULL DEFAULT 3,
    "version" TEXT NOT NULL DEFAULT '1.0.0',
    "sort_order" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("pack_id") REFERENCES "packs"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "lumihub_link" (
    "id" TEXT DEFAULT (lower(hex(randomblob(16)))),
    "lumihub_url" TEXT NOT NULL,
    "ws_url" TEXT NOT NULL,
    "instance_name" TEXT NOT NULL DEFAULT 'My Lumiverse',
    "link_token_encrypted" TEXT NOT NULL,
    "link_token_iv" TEXT NOT NULL,
    "link_token_tag" TEXT NOT NULL,
    "instance_id" TEXT NOT NULL,
    "linked_at" TEXT NOT NULL DEFAULT (datetime('now')),
    "last_connected_at" TEXT,
    "share_usage_stats" INTEGER NOT NULL DEFAULT 0,
    "user_id" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "mcp_servers" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "transport_type" TEXT NOT NULL DEFAULT 'streamable_http',
    "url" TEXT NOT NULL DEFAULT '',
    "command" TEXT NOT NULL DEFAULT '',
    "args" TEXT NOT NULL DEFAULT '[]',
    "env" TEXT NOT NULL DEFAULT '{}',
    "has_headers" INTEGER NOT NULL DEFAULT 0,
    "is_enabled" INTEGER NOT NULL DEFAULT 1,
    "auto_connect" INTEGER NOT NULL DEFAULT 1,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "last_connected_at" INTEGER,
    "last_error" TEXT,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "memory_consolidations" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "tier" INTEGER NOT NULL DEFAULT 1,
    "title" TEXT,
    "summary" TEXT NOT NULL,
    "source_chunk_ids" TEXT DEFAULT '[]',
    "source_consolidation_ids" TEXT DEFAULT '[]',
    "entity_ids" TEXT DEFAULT '[]',
    "message_range_start" INTEGER,
    "message_range_end" INTEGER,
    "time_range_start" INTEGER,
    "time_range_end" INTEGER,
    "salience_avg" REAL DEFAULT 0.0,
    "emotional_tags" TEXT DEFAULT '[]',
    "token_count" INTEGER DEFAULT 0,
    "vectorized_at" INTEGER,
    "vector_model" TEXT,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "memory_entities" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "entity_type" TEXT NOT NULL DEFAULT 'character',
    "aliases" TEXT DEFAULT '[]',
    "description" TEXT DEFAULT '',
    "first_seen_chunk_id" TEXT,
    "last_seen_chunk_id" TEXT,
    "first_seen_at" INTEGER,
    "last_seen_at" INTEGER,
    "mention_count" INTEGER DEFAULT 0,
    "salience_avg" REAL DEFAULT 0.0,
    "status" TEXT DEFAULT 'active',
    "status_changed_at" INTEGER,
    "facts" TEXT DEFAULT '[]',
    "emotional_valence" TEXT DEFAULT '{}',
    "metadata" TEXT DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "fact_extraction_status" TEXT DEFAULT 'never',
    "fact_extraction_last_attempt" INTEGER,
    "salience_breakdown" TEXT DEFAULT '{"mentionComponent":0,"arcComponent":0,"graphComponent":0,"frequencyFloor":0,"total":0}',
    "last_mention_timestamp" INTEGER,
    "recent_mention_count" INTEGER DEFAULT 0,
    "confidence" TEXT DEFAULT 'confirmed',
    "salience_peak" REAL DEFAULT 0.0,
    "user_edited_at" INTEGER,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "memory_font_colors" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "entity_id" TEXT,
    "hex_color" TEXT NOT NULL,
    "usage_type" TEXT DEFAULT 'unknown',
    "confidence" REAL DEFAULT 0.0,
    "sample_count" INTEGER DEFAULT 0,
    "sample_excerpt" TEXT,
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("entity_id") REFERENCES "memory_entities"("id") ON DELETE SET NULL,
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "memory_mentions" (
    "id" TEXT,
    "entity_id" TEXT NOT NULL,
    "chunk_id" TEXT NOT NULL,
    "chat_id" TEXT NOT NULL,
    "role" TEXT DEFAULT 'present',
    "excerpt" TEXT,
    "sentiment" REAL DEFAULT 0.0,
    "created_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("chunk_id") REFERENCES "chat_chunks"("id") ON DELETE CASCADE,
    FOREIGN KEY ("entity_id") REFERENCES "memory_entities"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "memory_relations" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "source_entity_id" TEXT NOT NULL,
    "target_entity_id" TEXT NOT NULL,
    "relation_type" TEXT NOT NULL,
    "relation_label" TEXT,
    "strength" REAL DEFAULT 0.5,
    "sentiment" REAL DEFAULT 0.0,
    "evidence_chunk_ids" TEXT DEFAULT '[]',
    "first_established_at" INTEGER,
    "last_reinforced_at" INTEGER,
    "status" TEXT DEFAULT 'active',
    "metadata" TEXT DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    "contradiction_flag" TEXT DEFAULT 'none',
    "contradiction_peer_id" TEXT,
    "sentiment_range" TEXT,
    "superseded_by" TEXT,
    "arc_ids" TEXT DEFAULT '[]',
    "first_seen_arc_id" TEXT,
    "last_seen_arc_id" TEXT,
    "last_evidence_timestamp" INTEGER,
    "decay_rate" REAL DEFAULT 0.05,
    "edge_salience" REAL DEFAULT 0.0,
    "label_aliases" TEXT DEFAULT '[]',
    "canonical_edge_id" TEXT,
    "merged_into" TEXT,
    "user_edited_at" INTEGER,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("target_entity_id") REFERENCES "memory_entities"("id") ON DELETE CASCADE,
    FOREIGN KEY ("source_entity_id") REFERENCES "memory_entities"("id") ON DELETE CASCADE,
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "memory_salience" (
    "id" TEXT,
    "chunk_id" TEXT NOT NULL,
    "chat_id" TEXT NOT NULL,
    "score" REAL NOT NULL DEFAULT 0.0,
    "score_source" TEXT DEFAULT 'heuristic',
    "emotional_tags" TEXT DEFAULT '[]',
    "status_changes" TEXT DEFAULT '[]',
    "narrative_flags" TEXT DEFAULT '[]',
    "has_dialogue" INTEGER DEFAULT 0,
    "has_action" INTEGER DEFAULT 0,
    "has_internal_thought" INTEGER DEFAULT 0,
    "word_count" INTEGER DEFAULT 0,
    "scored_at" INTEGER NOT NULL,
    "scored_by" TEXT,
    "created_at" INTEGER NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("chunk_id") REFERENCES "chat_chunks"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "message_breakdowns" (
    "message_id" TEXT,
    "chat_id" TEXT NOT NULL,
    "data" TEXT NOT NULL,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    PRIMARY KEY ("message_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "messages" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "index_in_chat" INTEGER NOT NULL,
    "is_user" INTEGER NOT NULL DEFAULT 0,
    "name" TEXT NOT NULL DEFAULT '',
    "content" TEXT NOT NULL DEFAULT '',
    "send_date" INTEGER NOT NULL DEFAULT (unixepoch()),
    "swipe_id" INTEGER NOT NULL DEFAULT 0,
    "swipes" TEXT NOT NULL DEFAULT '[]',
    "extra" TEXT NOT NULL DEFAULT '{}',
    "parent_message_id" TEXT,
    "branch_id" TEXT,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "swipe_dates" TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY ("id"),
    FOREIGN KEY ("parent_message_id") REFERENCES "messages"("id") ON DELETE SET NULL,
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "multiplayer_bans" (
    "id" TEXT,
    "room_id" TEXT NOT NULL,
    "identity_kind" TEXT NOT NULL,
    "identity_ref" TEXT NOT NULL,
    "display_name" TEXT NOT NULL DEFAULT '',
    "reason" TEXT NOT NULL DEFAULT '',
    "banned_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("room_id") REFERENCES "multiplayer_rooms"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "multiplayer_participants" (
    "id" TEXT,
    "room_id" TEXT NOT NULL,
    "role" TEXT NOT NULL DEFAULT 'peer',
    "identity_kind" TEXT NOT NULL,
    "identity_ref" TEXT NOT NULL,
    "display_name" TEXT NOT NULL DEFAULT '',
    "persona_snapshot" TEXT NOT NULL DEFAULT '{}',
    "status" TEXT NOT NULL DEFAULT 'active',
    "joined_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "last_seen" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("room_id") REFERENCES "multiplayer_rooms"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "multiplayer_rooms" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "host_user_id" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'open',
    "turn_strategy" TEXT NOT NULL DEFAULT 'round_robin',
    "freeform_deadline" INTEGER,
    "turn_order" TEXT NOT NULL DEFAULT '[]',
    "current_turn_participant_id" TEXT,
    "turn_index" INTEGER NOT NULL DEFAULT 0,
    "round_counter" INTEGER NOT NULL DEFAULT 0,
    "settings" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("host_user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "packs" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "author" TEXT NOT NULL DEFAULT '',
    "cover_url" TEXT,
    "version" TEXT NOT NULL DEFAULT '1.0.0',
    "is_custom" INTEGER NOT NULL DEFAULT 1,
    "source_url" TEXT,
    "extras" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "personas" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "avatar_path" TEXT,
    "is_default" INTEGER NOT NULL DEFAULT 0,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "attached_world_book_id" TEXT,
    "image_id" TEXT,
    "user_id" TEXT,
    "title" TEXT NOT NULL DEFAULT '',
    "folder" TEXT NOT NULL DEFAULT '',
    "subjective_pronoun" TEXT NOT NULL DEFAULT '',
    "objective_pronoun" TEXT NOT NULL DEFAULT '',
    "possessive_pronoun" TEXT NOT NULL DEFAULT '',
    "is_narrator" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("image_id") REFERENCES "images"("id") ON DELETE SET NULL,
    FOREIGN KEY ("attached_world_book_id") REFERENCES "world_books"("id") ON DELETE SET NULL
);

CREATE TABLE IF NOT EXISTS "presets" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "parameters" TEXT NOT NULL DEFAULT '{}',
    "prompt_order" TEXT NOT NULL DEFAULT '[]',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "prompts" TEXT NOT NULL DEFAULT '{}',
    "user_id" TEXT,
    "engine" TEXT NOT NULL DEFAULT 'classic',
    "cache_revision" INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "push_subscriptions" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "endpoint" TEXT NOT NULL,
    "p256dh" TEXT NOT NULL,
    "auth" TEXT NOT NULL,
    "user_agent" TEXT NOT NULL DEFAULT '',
    "label" TEXT NOT NULL DEFAULT '',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "query_vector_cache" (
    "id" TEXT,
    "chat_id" TEXT NOT NULL,
    "query_hash" TEXT NOT NULL,
    "query_text" TEXT NOT NULL,
    "vector_json" TEXT NOT NULL,
    "hit_count" INTEGER DEFAULT 0,
    "created_at" INTEGER NOT NULL,
    "last_used_at" INTEGER NOT NULL,
    "expires_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "regex_scripts" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "find_regex" TEXT NOT NULL,
    "replace_string" TEXT NOT NULL DEFAULT '',
    "actions" TEXT NOT NULL DEFAULT '[]',
    "flags" TEXT NOT NULL DEFAULT 'gi',
    "placement" TEXT NOT NULL DEFAULT '["ai_output"]',
    "scope" TEXT NOT NULL DEFAULT 'global',
    "scope_id" TEXT,
    "target" TEXT NOT NULL DEFAULT '["response"]',
    "min_depth" INTEGER,
    "max_depth" INTEGER,
    "trim_strings" TEXT NOT NULL DEFAULT '[]',
    "run_on_edit" INTEGER NOT NULL DEFAULT 0,
    "substitute_macros" TEXT NOT NULL DEFAULT 'none',
    "disabled" INTEGER NOT NULL DEFAULT 0,
    "sort_order" INTEGER NOT NULL DEFAULT 0,
    "description" TEXT NOT NULL DEFAULT '',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "folder" TEXT NOT NULL DEFAULT '',
    "script_id" TEXT NOT NULL DEFAULT '',
    "pack_id" TEXT,
    "preset_id" TEXT,
    "character_id" TEXT,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "secrets" (
    "key" TEXT NOT NULL,
    "encrypted_value" TEXT NOT NULL,
    "iv" TEXT NOT NULL,
    "tag" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    PRIMARY KEY ("key", "user_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "session" (
    "id" TEXT NOT NULL,
    "expiresAt" INTEGER NOT NULL,
    "token" TEXT NOT NULL,
    "createdAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updatedAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    "ipAddress" TEXT,
    "userAgent" TEXT,
    "userId" TEXT NOT NULL,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("userId") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "settings" (
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    PRIMARY KEY ("key", "user_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "sso_providers" (
    "id" TEXT,
    "provider_kind" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "enabled" INTEGER NOT NULL DEFAULT 0,
    "issuer_url" TEXT NOT NULL DEFAULT '',
    "discovery_url" TEXT NOT NULL DEFAULT '',
    "client_id" TEXT NOT NULL DEFAULT '',
    "encrypted_client_secret" TEXT,
    "client_secret_iv" TEXT,
    "client_secret_tag" TEXT,
    "scopes" TEXT NOT NULL DEFAULT '["openid","profile","email"]',
    "pkce" INTEGER NOT NULL DEFAULT 1,
    "allow_signup" INTEGER NOT NULL DEFAULT 0,
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "stt_connections" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "api_url" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "is_default" INTEGER NOT NULL DEFAULT 0,
    "has_api_key" INTEGER NOT NULL DEFAULT 0,
    "default_parameters" TEXT NOT NULL DEFAULT '{}',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "theme_assets" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "bundle_id" TEXT NOT NULL,
    "slug" TEXT NOT NULL,
    "storage_type" TEXT NOT NULL,
    "image_id" TEXT,
    "file_name" TEXT,
    "original_filename" TEXT NOT NULL DEFAULT '',
    "mime_type" TEXT NOT NULL DEFAULT '',
    "byte_size" INTEGER NOT NULL DEFAULT 0,
    "tags_json" TEXT NOT NULL DEFAULT '[]',
    "metadata_json" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("image_id") REFERENCES "images"("id") ON DELETE CASCADE,
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "tokenizer_configs" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "config" TEXT NOT NULL DEFAULT '{}',
    "is_built_in" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "tokenizer_model_patterns" (
    "id" TEXT,
    "tokenizer_id" TEXT NOT NULL,
    "pattern" TEXT NOT NULL,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "is_built_in" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("tokenizer_id") REFERENCES "tokenizer_configs"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "tts_connections" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "provider" TEXT NOT NULL,
    "api_url" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL DEFAULT '',
    "voice" TEXT NOT NULL DEFAULT '',
    "is_default" INTEGER NOT NULL DEFAULT 0,
    "has_api_key" INTEGER NOT NULL DEFAULT 0,
    "default_parameters" TEXT NOT NULL DEFAULT '{}',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL,
    "updated_at" INTEGER NOT NULL,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "user" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "emailVerified" INTEGER NOT NULL DEFAULT 0,
    "image" TEXT,
    "createdAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updatedAt" INTEGER NOT NULL DEFAULT (unixepoch()),
    "username" TEXT,
    "displayUsername" TEXT,
    "role" TEXT DEFAULT 'user',
    "banned" INTEGER DEFAULT 0,
    "banReason" TEXT,
    "banExpires" INTEGER,
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "verification" (
    "id" TEXT NOT NULL,
    "identifier" TEXT NOT NULL,
    "value" TEXT NOT NULL,
    "expiresAt" INTEGER NOT NULL,
    "createdAt" INTEGER DEFAULT (unixepoch()),
    "updatedAt" INTEGER DEFAULT (unixepoch()),
    PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "weaver_bible" (
    "session_id" TEXT,
    "user_id" TEXT NOT NULL,
    "spine" TEXT NOT NULL DEFAULT '{}',
    "status" TEXT NOT NULL DEFAULT 'pending',
    "gated_at" INTEGER,
    "gate" TEXT NOT NULL DEFAULT '{}',
    "token_usage" TEXT NOT NULL DEFAULT '{}',
    "updated_at" INTEGER,
    PRIMARY KEY ("session_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("session_id") REFERENCES "weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_extraction" (
    "session_id" TEXT,
    "user_id" TEXT NOT NULL,
    "committed_facts" TEXT NOT NULL DEFAULT '[]',
    "gaps" TEXT NOT NULL DEFAULT '[]',
    "edited_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "dynamic_questions" TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY ("session_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("session_id") REFERENCES "weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_fields" (
    "id" TEXT,
    "session_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "field_name" TEXT NOT NULL,
    "content" TEXT NOT NULL DEFAULT '',
    "status" TEXT NOT NULL DEFAULT 'pending',
    "provenance" TEXT NOT NULL DEFAULT '{}',
    "token_usage" TEXT NOT NULL DEFAULT '{}',
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("session_id") REFERENCES "weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_interview_turns" (
    "id" TEXT,
    "session_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "slot" TEXT NOT NULL,
    "axis" TEXT NOT NULL DEFAULT '{}',
    "response_kind" TEXT,
    "response" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("session_id") REFERENCES "weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_people" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "session_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "hook" TEXT NOT NULL DEFAULT '',
    "origin" TEXT NOT NULL DEFAULT 'proposed',
    "tier" TEXT NOT NULL DEFAULT 'unfleshed',
    "interview" TEXT NOT NULL DEFAULT '[]',
    "npc_entry_id" TEXT,
    "promoted_session_id" TEXT,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE,
    FOREIGN KEY ("session_id") REFERENCES "weaver_sessions"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_sessions" (
    "id" TEXT,
    "user_id" TEXT NOT NULL,
    "session_number" INTEGER NOT NULL DEFAULT 0,
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "seed_type" TEXT NOT NULL DEFAULT 'dream',
    "seed_text" TEXT NOT NULL DEFAULT '',
    "seed_provenance" TEXT NOT NULL DEFAULT '{}',
    "stage" TEXT NOT NULL DEFAULT 'dream',
    "status" TEXT NOT NULL DEFAULT 'draft',
    "connection_id" TEXT,
    "model" TEXT,
    "persona_id" TEXT,
    "character_id" TEXT,
    "launch_chat_id" TEXT,
    "interview_started_at" INTEGER,
    "interview_completed_at" INTEGER,
    "build_type" TEXT NOT NULL DEFAULT 'character',
    "narration_mode" TEXT,
    "persona_plan" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("character_id") REFERENCES "characters"("id") ON DELETE SET NULL,
    FOREIGN KEY ("connection_id") REFERENCES "connection_profiles"("id") ON DELETE SET NULL,
    FOREIGN KEY ("persona_id") REFERENCES "personas"("id") ON DELETE SET NULL,
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "weaver_taste" (
    "user_id" TEXT,
    "profile" TEXT NOT NULL DEFAULT '{}',
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY ("user_id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "world_book_entries" (
    "id" TEXT,
    "world_book_id" TEXT NOT NULL,
    "uid" TEXT NOT NULL,
    "key" TEXT NOT NULL DEFAULT '[]',
    "keysecondary" TEXT NOT NULL DEFAULT '[]',
    "content" TEXT NOT NULL DEFAULT '',
    "comment" TEXT NOT NULL DEFAULT '',
    "position" INTEGER NOT NULL DEFAULT 0,
    "depth" INTEGER NOT NULL DEFAULT 4,
    "role" TEXT,
    "order_value" INTEGER NOT NULL DEFAULT 100,
    "selective" INTEGER NOT NULL DEFAULT 0,
    "constant" INTEGER NOT NULL DEFAULT 0,
    "disabled" INTEGER NOT NULL DEFAULT 0,
    "group_name" TEXT NOT NULL DEFAULT '',
    "group_override" INTEGER NOT NULL DEFAULT 0,
    "group_weight" INTEGER NOT NULL DEFAULT 100,
    "probability" INTEGER NOT NULL DEFAULT 100,
    "scan_depth" INTEGER,
    "case_sensitive" INTEGER NOT NULL DEFAULT 0,
    "match_whole_words" INTEGER NOT NULL DEFAULT 0,
    "automation_id" TEXT,
    "extensions" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "use_regex" INTEGER NOT NULL DEFAULT 0,
    "prevent_recursion" INTEGER NOT NULL DEFAULT 0,
    "exclude_recursion" INTEGER NOT NULL DEFAULT 0,
    "delay_until_recursion" INTEGER NOT NULL DEFAULT 0,
    "priority" INTEGER NOT NULL DEFAULT 10,
    "sticky" INTEGER NOT NULL DEFAULT 0,
    "cooldown" INTEGER NOT NULL DEFAULT 0,
    "delay" INTEGER NOT NULL DEFAULT 0,
    "selective_logic" INTEGER NOT NULL DEFAULT 0,
    "use_probability" INTEGER NOT NULL DEFAULT 1,
    "vectorized" INTEGER NOT NULL DEFAULT 0,
    "vector_index_status" TEXT NOT NULL DEFAULT 'not_enabled',
    "vector_indexed_at" INTEGER,
    "vector_index_error" TEXT,
    PRIMARY KEY ("id"),
    FOREIGN KEY ("world_book_id") REFERENCES "world_books"("id") ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS "world_books" (
    "id" TEXT,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "metadata" TEXT NOT NULL DEFAULT '{}',
    "created_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "updated_at" INTEGER NOT NULL DEFAULT (unixepoch()),
    "user_id" TEXT,
    "folder" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("id"),
    FOREIGN KEY ("user_id") REFERENCES "user"("id") ON DELETE CASCADE
);
