//! The demo account's chats: messages with swipes, a branch message and a branched chat,
//! chunks, the memory cortex (salience, entities, relations, mentions, consolidations, font
//! colours), token breakdowns, and a cortex vault made from the first chat.

use serde::Serialize;

use super::row::SeedRow;
use super::text::{prose, NAMES};
use super::{Demo, SeedOptions};
use crate::util::new_id;

/// A chat's `metadata`; a branched chat names the chat and the message it branched at.
#[derive(Serialize)]
struct ChatMetadata<'a> {
    branch: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    branched_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    branch_at_message: Option<&'a str>,
}

/// A message's `extra`.
#[derive(Serialize)]
struct MessageExtra {
    model: &'static str,
}

/// A message breakdown's `data`.
#[derive(Serialize)]
struct Breakdown {
    tokens: PromptTokens,
}

#[derive(Serialize)]
struct PromptTokens {
    prompt: u32,
}

/// A chat chunk, as its vector is made from.
pub(super) struct ChunkText {
    pub(super) id: String,
    pub(super) chat_id: String,
    pub(super) content: String,
}

/// Adds the chats (each with a character of `character_ids`, in turn) and the cortex vault;
/// the chunks, for their vectors.
pub(super) fn add(demo: &mut Demo<'_>, options: &SeedOptions, character_ids: &[String]) -> Vec<ChunkText> {
    let (uid, now) = (demo.uid, demo.now);
    let mut chunks = Vec::new();
    let mut first_chat = None;
    for chat_index in 0..options.chats {
        let chat_id = new_id();
        first_chat.get_or_insert(chat_id.clone());
        let character = character_ids.get(chat_index % character_ids.len().max(1));
        let name = NAMES[chat_index % NAMES.len()];
        let chat = SeedRow::new()
            .text("id", &chat_id)
            .text_or_null("character_id", character)
            .text("name", format!("Harbour night {}", chat_index + 1))
            .json_text("metadata", &ChatMetadata { branch: "main", branched_from: None, branch_at_message: None })
            .int("created_at", now)
            .int("updated_at", now)
            .text("user_id", uid);
        demo.add("chats", chat);
        let mut message_ids: Vec<String> = Vec::new();
        for index in 0..options.messages_per_chat {
            let id = new_id();
            let content = prose(chat_index * 31 + index, 1 + index % 3);
            let swipes = if index % 5 == 1 {
                vec![content.clone(), prose(index + 5, 1), prose(index + 6, 1)]
            } else {
                vec![content.clone()]
            };
            let message = SeedRow::new()
                .text("id", &id)
                .text("chat_id", &chat_id)
                .int("index_in_chat", index as i64)
                .int("is_user", (index % 2) as i64)
                .text("name", if index % 2 == 1 { "Rowan" } else { name })
                .text("content", content)
                .int("send_date", now + index as i64)
                .int("swipe_id", 0)
                .json_text("swipes", &swipes)
                .json_text("extra", &MessageExtra { model: "gpt-4o-mini" })
                .text_or_null("parent_message_id", message_ids.last())
                .null("branch_id")
                .int("created_at", now + index as i64)
                .json_text("swipe_dates", &vec![now; swipes.len()]);
            demo.add("messages", message);
            message_ids.push(id);
        }
        // A branch off the third message.
        if message_ids.len() > 3 {
            let branch_message = SeedRow::new()
                .text("id", new_id())
                .text("chat_id", &chat_id)
                .int("index_in_chat", 3)
                .int("is_user", 0)
                .text("name", "Narrator")
                .text("content", "In another telling, the ship never left port.")
                .int("send_date", now)
                .int("swipe_id", 0)
                .text("swipes", "[]")
                .text("extra", "{}")
                .text("parent_message_id", &message_ids[2])
                .text("branch_id", "branch-b")
                .int("created_at", now)
                .text("swipe_dates", "[]");
            demo.add("messages", branch_message);
        }
        // The first chat is branched at its third message, as Lumiverse branches: a new chat
        // whose metadata names the parent and the message, holding copies of the messages
        // up to there (with the branch's id) and then its own.
        if chat_index == 0 && message_ids.len() > 3 {
            let branch = new_id();
            let branch_id = new_id();
            let metadata = ChatMetadata {
                branch: "main",
                branched_from: Some(&chat_id),
                branch_at_message: Some(&message_ids[2]),
            };
            let branch_chat = SeedRow::new()
                .text("id", &branch)
                .text_or_null("character_id", character)
                .text("name", format!("Harbour night {} — Branch at #2", chat_index + 1))
                .json_text("metadata", &metadata)
                .int("created_at", now)
                .int("updated_at", now)
                .text("user_id", uid);
            demo.add("chats", branch_chat);
            let mut previous: Option<String> = None;
            for index in 0..4usize {
                let id = new_id();
                let content = if index < 3 {
                    prose(chat_index * 31 + index, 1 + index % 3)
                } else {
                    "In this telling, the lanterns stayed lit.".to_string()
                };
                let message = SeedRow::new()
                    .text("id", &id)
                    .text("chat_id", &branch)
                    .int("index_in_chat", index as i64)
                    .int("is_user", (index % 2) as i64)
                    .text("name", if index % 2 == 1 { "Rowan" } else { name })
                    .text("content", &content)
                    .int("send_date", now + index as i64)
                    .int("swipe_id", 0)
                    .json_text("swipes", &[&content])
                    .text("extra", "{}")
                    .text_or_null("parent_message_id", previous)
                    .text("branch_id", &branch_id)
                    .int("created_at", now)
                    .json_text("swipe_dates", &[now]);
                demo.add("messages", message);
                previous = Some(id);
            }
        }
        for (chunk_index, window) in message_ids.chunks(8).enumerate() {
            let chunk_id = new_id();
            let content = prose(chunk_index + chat_index, 3);
            let chunk = SeedRow::new()
                .text("id", &chunk_id)
                .text("chat_id", &chat_id)
                .text("start_message_id", &window[0])
                .text("end_message_id", &window[window.len() - 1])
                .json_text("message_ids", window)
                .text("content", &content)
                .int("token_count", 120)
                .int("vectorized_at", now)
                .text("vector_model", "text-embedding-3-small")
                .int("message_count", window.len() as i64)
                .int("created_at", now)
                .int("updated_at", now)
                .real("salience_score", 0.5);
            demo.add("chat_chunks", chunk);
            let salience = SeedRow::new()
                .text("id", new_id())
                .text("chunk_id", &chunk_id)
                .text("chat_id", &chat_id)
                .real("score", 0.6)
                .int("scored_at", now)
                .int("created_at", now);
            demo.add("memory_salience", salience);
            chunks.push(ChunkText { id: chunk_id, chat_id: chat_id.clone(), content });
        }
        add_memory(demo, &chat_id, chunks.last().map(|chunk| chunk.id.as_str()), chat_index);
        let breakdown = SeedRow::new()
            .text_or_null("message_id", message_ids.first())
            .text("chat_id", &chat_id)
            .json_text("data", &Breakdown { tokens: PromptTokens { prompt: 1834 } })
            .int("created_at", now)
            .text("user_id", uid);
        demo.add("message_breakdowns", breakdown);
    }
    add_vault(demo, first_chat.as_deref());
    chunks
}

/// A chat's memory cortex: two entities, a relation between them, a mention of the first
/// in the latest chunk (if there is one), a consolidation and a font colour.
fn add_memory(demo: &mut Demo<'_>, chat_id: &str, last_chunk: Option<&str>, chat_index: usize) {
    let now = demo.now;
    let entity_a = new_id();
    let entity_b = new_id();
    for (id, name) in [(&entity_a, "Mira"), (&entity_b, "The Lighthouse")] {
        let entity = SeedRow::new()
            .text("id", id)
            .text("chat_id", chat_id)
            .text("name", name)
            .text("entity_type", "character")
            .text("aliases", "[]")
            .text("description", format!("{name}, as remembered."))
            .int("mention_count", 3)
            .int("created_at", now)
            .int("updated_at", now);
        demo.add("memory_entities", entity);
    }
    let relation = SeedRow::new()
        .text("id", new_id())
        .text("chat_id", chat_id)
        .text("source_entity_id", &entity_a)
        .text("target_entity_id", &entity_b)
        .text("relation_type", "keeps")
        .real("strength", 0.8)
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("memory_relations", relation);
    if let Some(chunk_id) = last_chunk {
        let mention = SeedRow::new()
            .text("id", new_id())
            .text("entity_id", &entity_a)
            .text("chunk_id", chunk_id)
            .text("chat_id", chat_id)
            .text("role", "subject")
            .text("excerpt", "Mira traced the route.")
            .int("created_at", now);
        demo.add("memory_mentions", mention);
    }
    let consolidation = SeedRow::new()
        .text("id", new_id())
        .text("chat_id", chat_id)
        .int("tier", 1)
        .text("title", "The first night")
        .text("summary", prose(chat_index, 2))
        .int("vectorized_at", now)
        .text("vector_model", "text-embedding-3-small")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("memory_consolidations", consolidation);
    let font_color = SeedRow::new()
        .text("id", new_id())
        .text("chat_id", chat_id)
        .text("entity_id", &entity_a)
        .text("hex_color", "#c9a0ff")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("memory_font_colors", font_color);
}

/// A cortex vault of the first chat's memories, linked to that chat.
fn add_vault(demo: &mut Demo<'_>, first_chat: Option<&str>) {
    let (uid, now) = (demo.uid, demo.now);
    let vault_id = new_id();
    let vault = SeedRow::new()
        .text("id", &vault_id)
        .text("user_id", uid)
        .text_or_null("source_chat_id", first_chat)
        .text("name", "Salt Coast memories")
        .text("description", "")
        .int("entity_count", 1)
        .int("relation_count", 1)
        .int("created_at", now)
        .int("chunk_count", 1);
    demo.add("cortex_vaults", vault);
    let entity = SeedRow::new()
        .text("id", new_id())
        .text("vault_id", &vault_id)
        .text("name", "Mira")
        .text("entity_type", "character");
    demo.add("cortex_vault_entities", entity);
    let relation = SeedRow::new()
        .text("id", new_id())
        .text("vault_id", &vault_id)
        .text("source_entity_name", "Mira")
        .text("target_entity_name", "The Lighthouse")
        .text("relation_type", "keeps");
    demo.add("cortex_vault_relations", relation);
    let chunk = SeedRow::new()
        .text("id", new_id())
        .text("vault_id", &vault_id)
        .text("source_chunk_id", new_id())
        .text("content", prose(3, 2))
        .int("source_created_at", now)
        .int("copied_at", now);
    demo.add("cortex_vault_chunks", chunk);
    if let Some(chat_id) = first_chat {
        let link = SeedRow::new()
            .text("id", new_id())
            .text("user_id", uid)
            .text("chat_id", chat_id)
            .text("link_type", "vault")
            .text("vault_id", &vault_id)
            .int("created_at", now);
        demo.add("cortex_chat_links", link);
    }
}
