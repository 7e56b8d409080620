-- lvbak's own tables and indexes, beside the Lumiverse schema.

-- Sign-in: Argon2id password hashes, and sessions stored as SHA-256 hashes of their tokens.
CREATE TABLE IF NOT EXISTS lvbak_credentials (
    user_id TEXT PRIMARY KEY REFERENCES "user"(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE TABLE IF NOT EXISTS lvbak_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lvbak_sessions_user ON lvbak_sessions(user_id);
CREATE UNIQUE INDEX IF NOT EXISTS lvbak_user_username ON "user"(username);

-- Ticket uses: first use (consumed_at, Lumiverse's column), count, and last use.
ALTER TABLE import_consumed_tickets ADD COLUMN last_used_at INTEGER;

-- Import jobs survive restarts so that unfinished ones can be marked failed.
CREATE TABLE IF NOT EXISTS lvbak_import_jobs (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES "user"(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    archive_id TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    error_code TEXT,
    error_message TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS lvbak_import_jobs_user ON lvbak_import_jobs(user_id);

-- Rows are found by owner on export and by parent on import.
CREATE INDEX IF NOT EXISTS lvbak_settings_user ON settings(user_id);
CREATE INDEX IF NOT EXISTS lvbak_global_addons_user ON global_addons(user_id);
CREATE INDEX IF NOT EXISTS lvbak_mcp_servers_user ON mcp_servers(user_id);
CREATE INDEX IF NOT EXISTS lvbak_images_user ON images(user_id);
CREATE INDEX IF NOT EXISTS lvbak_connection_profiles_user ON connection_profiles(user_id);
CREATE INDEX IF NOT EXISTS lvbak_image_gen_connections_user ON image_gen_connections(user_id);
CREATE INDEX IF NOT EXISTS lvbak_tts_connections_user ON tts_connections(user_id);
CREATE INDEX IF NOT EXISTS lvbak_stt_connections_user ON stt_connections(user_id);
CREATE INDEX IF NOT EXISTS lvbak_presets_user ON presets(user_id);
CREATE INDEX IF NOT EXISTS lvbak_personas_user ON personas(user_id);
CREATE INDEX IF NOT EXISTS lvbak_characters_user ON characters(user_id);
CREATE INDEX IF NOT EXISTS lvbak_character_gallery_user ON character_gallery(user_id);
CREATE INDEX IF NOT EXISTS lvbak_world_books_user ON world_books(user_id);
CREATE INDEX IF NOT EXISTS lvbak_packs_user ON packs(user_id);
CREATE INDEX IF NOT EXISTS lvbak_regex_scripts_user ON regex_scripts(user_id);
CREATE INDEX IF NOT EXISTS lvbak_theme_assets_user ON theme_assets(user_id);
CREATE INDEX IF NOT EXISTS lvbak_databanks_user ON databanks(user_id);
CREATE INDEX IF NOT EXISTS lvbak_databank_documents_user ON databank_documents(user_id);
CREATE INDEX IF NOT EXISTS lvbak_databank_chunks_user ON databank_chunks(user_id);
CREATE INDEX IF NOT EXISTS lvbak_chats_user ON chats(user_id);
CREATE INDEX IF NOT EXISTS lvbak_cortex_vaults_user ON cortex_vaults(user_id);
CREATE INDEX IF NOT EXISTS lvbak_cortex_chat_links_user ON cortex_chat_links(user_id);
CREATE INDEX IF NOT EXISTS lvbak_dream_weaver_sessions_user ON dream_weaver_sessions(user_id);
CREATE INDEX IF NOT EXISTS lvbak_dream_weaver_saved_prompts_user ON dream_weaver_saved_prompts(user_id);
CREATE INDEX IF NOT EXISTS lvbak_weaver_sessions_user ON weaver_sessions(user_id);
CREATE INDEX IF NOT EXISTS lvbak_weaver_extraction_user ON weaver_extraction(user_id);
CREATE INDEX IF NOT EXISTS lvbak_weaver_interview_turns_user ON weaver_interview_turns(user_id);
CREATE INDEX IF NOT EXISTS lvbak_weaver_bible_user ON weaver_bible(user_id);
CREATE INDEX IF NOT EXISTS lvbak_weaver_fields_user ON weaver_fields(user_id);
CREATE INDEX IF NOT EXISTS lvbak_extensions_installer ON extensions(installed_by_user_id);
CREATE INDEX IF NOT EXISTS lvbak_world_book_entries_book ON world_book_entries(world_book_id);
CREATE INDEX IF NOT EXISTS lvbak_messages_chat ON messages(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_message_breakdowns_chat ON message_breakdowns(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_chat_chunks_chat ON chat_chunks(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_chat_memory_cache_chat ON chat_memory_cache(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_entities_chat ON memory_entities(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_relations_chat ON memory_relations(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_consolidations_chat ON memory_consolidations(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_font_colors_chat ON memory_font_colors(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_salience_chat ON memory_salience(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_memory_mentions_chat ON memory_mentions(chat_id);
CREATE INDEX IF NOT EXISTS lvbak_loom_items_pack ON loom_items(pack_id);
CREATE INDEX IF NOT EXISTS lvbak_loom_tools_pack ON loom_tools(pack_id);
CREATE INDEX IF NOT EXISTS lvbak_lumia_items_pack ON lumia_items(pack_id);
CREATE INDEX IF NOT EXISTS lvbak_cortex_vault_entities_vault ON cortex_vault_entities(vault_id);
CREATE INDEX IF NOT EXISTS lvbak_cortex_vault_relations_vault ON cortex_vault_relations(vault_id);
CREATE INDEX IF NOT EXISTS lvbak_cortex_vault_chunks_vault ON cortex_vault_chunks(vault_id);
CREATE INDEX IF NOT EXISTS lvbak_dream_weaver_messages_session ON dream_weaver_messages(session_id);
