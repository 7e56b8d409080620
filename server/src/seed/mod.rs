//! Demo data: fills an account with realistic rows across the registry tables, the files
//! those rows name (real PNGs, WebP thumbnails, a databank document, a theme stylesheet, a
//! WAV completion sound), vectors for chunks and world-book entries, and stored secrets.

pub(crate) mod media;
mod text;

use text::{new_id, object, prose, Rows, NAMES};

use lvbak_core::FileBucket;
use serde_json::{json, Map, Value};

use crate::storage::identity::random_bytes;
use crate::storage::{Store, VectorRow};
use crate::storage::{StoredSecret, UserRecord};

/// How much to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedOptions {
    pub characters: usize,
    pub chats: usize,
    pub messages_per_chat: usize,
    pub images: usize,
    pub vectors: usize,
    pub secrets: usize,
    /// Secrets sealed under a key this instance does not have (as after identity-key drift).
    pub unreadable_secrets: usize,
    /// The embedding dimension put in the `embeddingConfig` setting.
    pub dimension: u32,
    /// Extra characters shaped like Lumiverse's export benchmark: `description` is 900 × "x"
    /// and " #i", every other text column empty.
    pub bulk_characters: usize,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            characters: 4,
            chats: 3,
            messages_per_chat: 40,
            images: 3,
            vectors: 60,
            secrets: 2,
            unreadable_secrets: 0,
            dimension: 64,
            bulk_characters: 0,
        }
    }
}

/// What was made, for messages and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub rows: u64,
    pub files: u64,
    pub vectors: u64,
    pub secrets: Vec<(String, String)>,
}

/// Fills `user`'s account.
pub async fn seed(store: &Store, user: &UserRecord, options: SeedOptions, now: i64) -> anyhow::Result<SeedReport> {
    let uid = user.id.as_str();
    let mut rows = Rows::default();
    let mut report = SeedReport::default();
    let mut write_file = |bucket: FileBucket, name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        store.files.write_new(bucket, uid, name, &mut &bytes[..])?;
        report.files += 1;
        Ok(())
    };

    // Settings, including the embedding configuration and a legacy API-key setting that
    // must never travel.
    let preset_id = new_id();
    let connection_ids: Vec<String> = (0..options.secrets.max(2)).map(|_| new_id()).collect();
    let embedding = json!({"enabled": true, "provider": "openai", "model": "text-embedding-3-small",
        "dimensions": options.dimension, "vectorize_world_books": true, "retrieval_top_k": 4});
    let legacy_key_setting = format!("connection_{}_api_key", connection_ids[0]);
    for (key, value) in [
        ("theme", json!({"mode": "dark", "accent": "#7c5cff", "fontScale": 1.05})),
        ("language", json!("en")),
        ("embeddingConfig", embedding),
        ("chatBehavior", json!({"streaming": true, "autoScroll": true, "swipeAnimations": false})),
        ("imageGeneration", json!({"presets": [{"id": "p-portrait", "name": "Portrait", "steps": 28}]})),
        ("notificationSound", json!({"enabled": true, "custom": true, "file": "completion.wav"})),
        (legacy_key_setting.as_str(), json!("sk-legacy-plaintext-must-not-travel")),
    ] {
        rows.add("settings", json!({"key": key, "value": value.to_string(), "updated_at": now, "user_id": uid}));
    }

    rows.add("presets", json!({"id": preset_id, "name": "Balanced Storyteller", "provider": "openai",
        "parameters": json!({"temperature": 0.85, "top_p": 0.95, "max_tokens": 800}).to_string(),
        "prompt_order": "[]", "metadata": "{}", "prompts": json!({"main": {"content": "You are a vivid narrator.", "role": "system"}}).to_string(),
        "created_at": now, "updated_at": now, "user_id": uid, "engine": "classic", "cache_revision": 0}));
    for (index, id) in connection_ids.iter().enumerate() {
        rows.add(
            "connection_profiles",
            json!({"id": id, "name": format!("Connection {}", index + 1), "provider": "openai",
            "api_url": "https://api.openai.example/v1", "model": "gpt-4o-mini", "preset_id": preset_id,
            "is_default": i64::from(index == 0), "metadata": "{}", "created_at": now, "updated_at": now,
            "has_api_key": 1, "user_id": uid}),
        );
    }
    let image_gen_id = new_id();
    rows.add("image_gen_connections", json!({"id": image_gen_id, "user_id": uid, "name": "Diffusion", "provider": "comfyui",
        "api_url": "http://127.0.0.1:8188", "model": "sdxl", "is_default": 1, "has_api_key": 0, "default_parameters": "{}",
        "metadata": "{}", "created_at": now, "updated_at": now}));

    // World book with entries.
    let book_id = new_id();
    rows.add(
        "world_books",
        json!({"id": book_id, "name": "The Salt Coast", "description": "Harbour towns and their secrets.",
        "metadata": "{}", "created_at": now, "updated_at": now, "user_id": uid, "folder": "Lore"}),
    );
    let mut entry_ids = Vec::new();
    for (index, key) in ["lighthouse", "smugglers", "harbour bells", "brass key", "fog"].iter().enumerate() {
        let id = new_id();
        rows.add(
            "world_book_entries",
            json!({"id": id, "world_book_id": book_id, "uid": index, "key": json!([key]).to_string(),
            "keysecondary": "[]", "content": prose(index, 2), "comment": format!("{key} lore"), "created_at": now,
            "updated_at": now, "vectorized": 1, "vector_index_status": "indexed", "vector_indexed_at": now}),
        );
        entry_ids.push((id, prose(index, 2)));
    }

    // Images (with both thumbnails); the first few are character avatars' portraits.
    let mut image_ids = Vec::new();
    for index in 0..options.images {
        let id = new_id();
        let bytes = media::png(48 + 8 * index as u32, 48, index as u32);
        write_file(FileBucket::Images, &format!("{id}.png"), &bytes)?;
        write_file(FileBucket::Images, &format!("{id}_thumb_sm_v2.webp"), &media::webp_1x1(120, 90, index as u8 * 40))?;
        write_file(
            FileBucket::Images,
            &format!("{id}_thumb_lg_v2.webp"),
            &media::webp_1x1(160, 120, index as u8 * 40),
        )?;
        rows.add("images", json!({"id": id, "filename": format!("{id}.png"), "original_filename": format!("portrait-{index}.png"),
            "mime_type": "image/png", "byte_size": bytes.len(), "width": 48 + 8 * index, "height": 48, "has_thumbnail": 1,
            "created_at": now, "user_id": uid}));
        image_ids.push(id);
    }

    // Personas and characters (with avatar files).
    let persona_id = new_id();
    let persona_avatar = format!("{persona_id}.png");
    write_file(FileBucket::Avatars, &persona_avatar, &media::png(32, 32, 99))?;
    rows.add(
        "personas",
        json!({"id": persona_id, "name": "Rowan", "description": "A cartographer with debts.",
        "avatar_path": persona_avatar, "is_default": 1, "metadata": "{}", "created_at": now, "updated_at": now,
        "attached_world_book_id": book_id, "image_id": image_ids.first(), "user_id": uid, "title": "Cartographer",
        "subjective_pronoun": "they", "objective_pronoun": "them", "possessive_pronoun": "their"}),
    );
    let mut character_ids = Vec::new();
    // Every chat needs a character.
    let characters = if options.chats > 0 { options.characters.max(1) } else { options.characters };
    for index in 0..characters {
        let id = new_id();
        let avatar = format!("{id}.png");
        write_file(FileBucket::Avatars, &avatar, &media::png(32, 32, index as u32 + 10))?;
        rows.add("characters", json!({"id": id, "name": NAMES[index % NAMES.len()], "avatar_path": avatar,
            "description": prose(index, 4), "personality": "Wry, loyal, allergic to authority.", "scenario": prose(index + 1, 2),
            "first_mes": prose(index + 2, 1), "mes_example": "", "creator": "demo", "creator_notes": "",
            "system_prompt": "", "post_history_instructions": "", "tags": json!(["harbour", "mystery"]).to_string(),
            "alternate_greetings": json!([prose(index + 3, 1)]).to_string(), "extensions": "{}",
            "created_at": now, "updated_at": now, "image_id": image_ids.get(index), "user_id": uid}));
        if let Some(image_id) = image_ids.get(index) {
            rows.add(
                "character_gallery",
                json!({"id": new_id(), "user_id": uid, "character_id": id, "image_id": image_id,
                "caption": "Portrait", "sort_order": 0, "created_at": now}),
            );
        }
        character_ids.push(id);
    }

    // Chats with swipes and a branch; chunks, memory cortex and vectors.
    let mut chunk_vectors = Vec::new();
    let mut first_chat = None;
    for chat_index in 0..options.chats {
        let chat_id = new_id();
        first_chat.get_or_insert(chat_id.clone());
        let character = character_ids.get(chat_index % character_ids.len().max(1)).cloned();
        rows.add(
            "chats",
            json!({"id": chat_id, "character_id": character, "name": format!("Harbour night {}", chat_index + 1),
            "metadata": json!({"branch": "main"}).to_string(), "created_at": now, "updated_at": now, "user_id": uid}),
        );
        let mut message_ids = Vec::new();
        for index in 0..options.messages_per_chat {
            let id = new_id();
            let content = prose(chat_index * 31 + index, 1 + index % 3);
            let swipes = if index % 5 == 1 {
                vec![content.clone(), prose(index + 5, 1), prose(index + 6, 1)]
            } else {
                vec![content.clone()]
            };
            rows.add(
                "messages",
                json!({"id": id, "chat_id": chat_id, "index_in_chat": index, "is_user": index % 2,
                "name": if index % 2 == 1 { "Rowan" } else { NAMES[chat_index % NAMES.len()] }, "content": content,
                "send_date": now + index as i64, "swipe_id": 0, "swipes": json!(swipes).to_string(),
                "extra": json!({"model": "gpt-4o-mini"}).to_string(), "parent_message_id": message_ids.last(),
                "branch_id": Value::Null, "created_at": now + index as i64,
                "swipe_dates": json!(vec![now; swipes.len()]).to_string()}),
            );
            message_ids.push(id);
        }
        // A branch off the third message.
        if message_ids.len() > 3 {
            rows.add("messages", json!({"id": new_id(), "chat_id": chat_id, "index_in_chat": 3, "is_user": 0, "name": "Narrator",
                "content": "In another telling, the ship never left port.", "send_date": now, "swipe_id": 0,
                "swipes": "[]", "extra": "{}", "parent_message_id": message_ids[2], "branch_id": "branch-b", "created_at": now,
                "swipe_dates": "[]"}));
        }
        // The first chat is branched at its third message, as Lumiverse branches: a new chat
        // whose metadata names the parent and the message, holding copies of the messages
        // up to there (with the branch's id) and then its own.
        if chat_index == 0 && message_ids.len() > 3 {
            let branch = new_id();
            let branch_id = new_id();
            rows.add("chats", json!({"id": branch, "character_id": character,
                "name": format!("Harbour night {} — Branch at #2", chat_index + 1),
                "metadata": json!({"branch": "main", "branched_from": chat_id, "branch_at_message": message_ids[2]}).to_string(),
                "created_at": now, "updated_at": now, "user_id": uid}));
            let mut previous: Option<String> = None;
            for index in 0..4usize {
                let id = new_id();
                let content = if index < 3 {
                    prose(chat_index * 31 + index, 1 + index % 3)
                } else {
                    "In this telling, the lanterns stayed lit.".to_string()
                };
                rows.add("messages", json!({"id": id, "chat_id": branch, "index_in_chat": index, "is_user": index % 2,
                    "name": if index % 2 == 1 { "Rowan" } else { NAMES[chat_index % NAMES.len()] }, "content": content,
                    "send_date": now + index as i64, "swipe_id": 0, "swipes": json!([content]).to_string(), "extra": "{}",
                    "parent_message_id": previous, "branch_id": branch_id, "created_at": now,
                    "swipe_dates": json!([now]).to_string()}));
                previous = Some(id);
            }
        }
        for (chunk_index, window) in message_ids.chunks(8).enumerate() {
            let chunk_id = new_id();
            let content = prose(chunk_index + chat_index, 3);
            rows.add("chat_chunks", json!({"id": chunk_id, "chat_id": chat_id, "start_message_id": window[0],
                "end_message_id": window[window.len() - 1], "message_ids": json!(window).to_string(), "content": content,
                "token_count": 120, "vectorized_at": now, "vector_model": "text-embedding-3-small", "message_count": window.len(),
                "created_at": now, "updated_at": now, "salience_score": 0.5}));
            rows.add(
                "memory_salience",
                json!({"id": new_id(), "chunk_id": chunk_id, "chat_id": chat_id, "score": 0.6,
                "scored_at": now, "created_at": now}),
            );
            chunk_vectors.push((chunk_id, chat_id.clone(), content));
        }
        let entity_a = new_id();
        let entity_b = new_id();
        for (id, name) in [(&entity_a, "Mira"), (&entity_b, "The Lighthouse")] {
            rows.add("memory_entities", json!({"id": id, "chat_id": chat_id, "name": name, "entity_type": "character",
                "aliases": "[]", "description": format!("{name}, as remembered."), "mention_count": 3, "created_at": now,
                "updated_at": now}));
        }
        rows.add("memory_relations", json!({"id": new_id(), "chat_id": chat_id, "source_entity_id": entity_a,
            "target_entity_id": entity_b, "relation_type": "keeps", "strength": 0.8, "created_at": now, "updated_at": now}));
        if let Some((chunk_id, _, _)) = chunk_vectors.last() {
            rows.add(
                "memory_mentions",
                json!({"id": new_id(), "entity_id": entity_a, "chunk_id": chunk_id, "chat_id": chat_id,
                "role": "subject", "excerpt": "Mira traced the route.", "created_at": now}),
            );
        }
        rows.add("memory_consolidations", json!({"id": new_id(), "chat_id": chat_id, "tier": 1, "title": "The first night",
            "summary": prose(chat_index, 2), "vectorized_at": now, "vector_model": "text-embedding-3-small", "created_at": now,
            "updated_at": now}));
        rows.add(
            "memory_font_colors",
            json!({"id": new_id(), "chat_id": chat_id, "entity_id": entity_a, "hex_color": "#c9a0ff",
            "created_at": now, "updated_at": now}),
        );
        rows.add(
            "message_breakdowns",
            json!({"message_id": message_ids.first(), "chat_id": chat_id,
            "data": json!({"tokens": {"prompt": 1834}}).to_string(), "created_at": now, "user_id": uid}),
        );
    }
    let vault_id = new_id();
    rows.add(
        "cortex_vaults",
        json!({"id": vault_id, "user_id": uid, "source_chat_id": first_chat, "name": "Salt Coast memories",
        "description": "", "entity_count": 1, "relation_count": 1, "created_at": now, "chunk_count": 1}),
    );
    rows.add(
        "cortex_vault_entities",
        json!({"id": new_id(), "vault_id": vault_id, "name": "Mira", "entity_type": "character"}),
    );
    rows.add(
        "cortex_vault_relations",
        json!({"id": new_id(), "vault_id": vault_id, "source_entity_name": "Mira",
        "target_entity_name": "The Lighthouse", "relation_type": "keeps"}),
    );
    rows.add(
        "cortex_vault_chunks",
        json!({"id": new_id(), "vault_id": vault_id, "source_chunk_id": new_id(),
        "content": prose(3, 2), "source_created_at": now, "copied_at": now}),
    );
    if let Some(chat) = &first_chat {
        rows.add(
            "cortex_chat_links",
            json!({"id": new_id(), "user_id": uid, "chat_id": chat, "link_type": "vault",
            "vault_id": vault_id, "created_at": now}),
        );
    }

    // Databank with a document file, a theme asset, a completion sound.
    let databank_id = new_id();
    let document_id = new_id();
    let document = format!("# Harbour notes\n\n{}\n", prose(1, 6));
    store.files.write_new(FileBucket::Databank, uid, "notes/harbour.md", &mut document.as_bytes())?;
    rows.add(
        "databanks",
        json!({"id": databank_id, "user_id": uid, "name": "Research", "scope": "global", "enabled": 1,
        "metadata": "{}", "created_at": now, "updated_at": now}),
    );
    rows.add("databank_documents", json!({"id": document_id, "databank_id": databank_id, "user_id": uid, "name": "Harbour notes",
        "slug": "harbour-notes", "file_path": "notes/harbour.md", "mime_type": "text/markdown", "file_size": document.len(),
        "status": "ready", "metadata": "{}", "created_at": now, "updated_at": now}));
    rows.add("databank_chunks", json!({"id": new_id(), "document_id": document_id, "databank_id": databank_id, "user_id": uid,
        "chunk_index": 0, "content": document, "token_count": 90, "vectorized_at": now, "vector_model": "text-embedding-3-small",
        "metadata": "{}", "created_at": now}));
    let css = "body { --accent: #7c5cff; background: #14121a; }\n";
    store.files.write_new(FileBucket::ThemeAssets, uid, "midnight/theme.css", &mut css.as_bytes())?;
    rows.add(
        "theme_assets",
        json!({"id": new_id(), "user_id": uid, "bundle_id": "midnight", "slug": "theme-css",
        "storage_type": "file", "file_name": "theme.css", "original_filename": "theme.css", "mime_type": "text/css",
        "byte_size": css.len(), "created_at": now, "updated_at": now}),
    );
    store.files.write_new(
        FileBucket::NotificationSounds,
        uid,
        "completion.wav",
        &mut media::wav_tone(880.0, 180).as_slice(),
    )?;
    report.files += 3;

    // The rest of the registry, a row or two each.
    rows.add(
        "global_addons",
        json!({"id": new_id(), "user_id": uid, "label": "Style guide", "content": "Prefer short scenes.",
        "sort_order": 0, "created_at": now, "updated_at": now}),
    );
    rows.add(
        "regex_scripts",
        json!({"id": new_id(), "user_id": uid, "name": "Trim asterisks", "find_regex": "\\*+",
        "replace_string": "", "created_at": now, "updated_at": now}),
    );
    let pack_id = new_id();
    rows.add(
        "packs",
        json!({"id": pack_id, "user_id": uid, "name": "Harbour pack", "author": "demo", "is_custom": 1,
        "created_at": now, "updated_at": now}),
    );
    rows.add(
        "lumia_items",
        json!({"id": new_id(), "pack_id": pack_id, "name": "Harbourmaster", "definition": prose(2, 1),
        "created_at": now, "updated_at": now}),
    );
    rows.add(
        "loom_items",
        json!({"id": new_id(), "pack_id": pack_id, "name": "Fog", "content": prose(4, 1), "category": "weather",
        "created_at": now, "updated_at": now}),
    );
    let session_id = new_id();
    rows.add("dream_weaver_sessions", json!({"id": session_id, "user_id": uid, "session_number": 1, "created_at": now, "updated_at": now,
        "status": "draft", "workspace_kind": "character", "dream_text": "A lighthouse keeper who collects lost letters.", "persona_id": persona_id, "connection_id": connection_ids[0],
        "character_id": character_ids.first()}));
    rows.add(
        "dream_weaver_messages",
        json!({"id": new_id(), "session_id": session_id, "user_id": uid, "created_at": now,
        "seq": 0, "kind": "prompt", "payload": "{}"}),
    );
    rows.add(
        "dream_weaver_saved_prompts",
        json!({"id": new_id(), "user_id": uid, "name": "Keeper", "prompt": "lighthouse keeper",
        "created_at": now, "updated_at": now}),
    );
    rows.add(
        "extensions",
        json!({"id": new_id(), "identifier": format!("tide-tables-{}", &uid[..8.min(uid.len())]),
        "name": "Tide tables", "version": "1.2.0", "author": "demo", "github": "https://example.invalid/tide-tables",
        "install_scope": "user", "installed_by_user_id": uid,
        "installed_at": now, "updated_at": now}),
    );

    for (table, table_rows) in &rows.tables {
        report.rows += store.db.insert_json_rows(table, table_rows)?;
    }
    let filler = "x".repeat(900);
    for start in (0..options.bulk_characters).step_by(10_000) {
        let batch: Vec<Map<String, Value>> = (start..(start + 10_000).min(options.bulk_characters))
            .map(|i| {
                object(json!({"id": new_id(), "name": format!("Character {i}"), "description": format!("{filler} #{i}"),
                    "personality": "", "scenario": "", "first_mes": "", "mes_example": "", "creator": "", "creator_notes": "",
                    "system_prompt": "", "post_history_instructions": "", "tags": "", "alternate_greetings": "",
                    "extensions": "", "created_at": now, "updated_at": now, "user_id": uid}))
            })
            .collect();
        report.rows += store.db.insert_json_rows("characters", &batch)?;
    }

    // Vectors for chunks and world-book entries.
    let dimension = options.dimension as usize;
    let vector_of =
        |seed: usize| -> Vec<f32> { (0..dimension).map(|i| ((seed * 31 + i * 7) % 97) as f32 / 97.0 - 0.5).collect() };
    let chunk_rows: Vec<VectorRow> = chunk_vectors
        .iter()
        .take(options.vectors)
        .enumerate()
        .map(|(index, (chunk_id, chat_id, content))| VectorRow {
            id: format!("{uid}:chat_chunk:{chunk_id}:0"),
            user_id: uid.to_string(),
            source_type: "chat_chunk".into(),
            source_id: chunk_id.clone(),
            owner_id: chat_id.clone(),
            chunk_index: 0.0,
            content: content.clone(),
            vector: vector_of(index),
            metadata_json: "{}".into(),
            updated_at: now as f64,
        })
        .collect();
    let entry_rows: Vec<VectorRow> = entry_ids
        .iter()
        .enumerate()
        .map(|(index, (entry_id, content))| VectorRow {
            id: format!("{uid}:world_book_entry:{entry_id}:0"),
            user_id: uid.to_string(),
            source_type: "world_book_entry".into(),
            source_id: entry_id.clone(),
            owner_id: book_id.clone(),
            chunk_index: 0.0,
            content: content.clone(),
            vector: vector_of(1000 + index),
            metadata_json: "{}".into(),
            updated_at: now as f64,
        })
        .collect();
    if options.vectors > 0 {
        store.vectors.add("embeddings", &chunk_rows, options.dimension as i32).await?;
        store.vectors.add("embeddings_world_books", &entry_rows, options.dimension as i32).await?;
        report.vectors = (chunk_rows.len() + entry_rows.len()) as u64;
    }

    // Secrets: connection API keys and a web-search key, sealed under the identity key.
    let mut names: Vec<String> = connection_ids.iter().map(|id| format!("connection_{id}_api_key")).collect();
    names.insert(1.min(names.len()), "web_search_api_key".to_string());
    for name in names.into_iter().take(options.secrets) {
        let value = format!("sk-demo-{}", hex::encode(random_bytes::<12>()));
        store.secrets().put_secret(uid, &store.identity.seal(uid, &name, &value), now, None).await?;
        report.secrets.push((name, value));
    }
    for index in 0..options.unreadable_secrets {
        let foreign = random_bytes::<32>();
        let sealed = lvbak_core::EncryptedSecret::seal(&foreign, random_bytes::<12>(), "legacy", "lost");
        let stored = StoredSecret {
            key: format!("legacy_api_key_{index}"),
            encrypted_value: sealed.ciphertext,
            iv: sealed.iv,
            tag: sealed.tag,
        };
        store.secrets().put_secret(uid, &stored, now, None).await?;
    }
    Ok(report)
}
