//! The rest of the registry in the demo account, a row or two each: a databank with a
//! document file, a theme asset with its stylesheet, a completion sound, a global add-on, a
//! regex script, a pack with its items, a Dream Weaver session and an extension.

use lvbak_core::FileBucket;

use super::row::SeedRow;
use super::text::prose;
use super::{media, Demo};
use crate::util::new_id;

/// The rows a Dream Weaver session names.
pub(super) struct SessionRefs<'a> {
    pub(super) persona_id: &'a str,
    pub(super) connection_id: &'a str,
    pub(super) character_id: Option<&'a str>,
}

pub(super) fn add(demo: &mut Demo<'_>, session: &SessionRefs<'_>) -> anyhow::Result<()> {
    add_files(demo)?;
    let (uid, now) = (demo.uid, demo.now);
    let addon = SeedRow::new()
        .text("id", new_id())
        .text("user_id", uid)
        .text("label", "Style guide")
        .text("content", "Prefer short scenes.")
        .int("sort_order", 0)
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("global_addons", addon);
    let script = SeedRow::new()
        .text("id", new_id())
        .text("user_id", uid)
        .text("name", "Trim asterisks")
        .text("find_regex", "\\*+")
        .text("replace_string", "")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("regex_scripts", script);
    let pack_id = new_id();
    let pack = SeedRow::new()
        .text("id", &pack_id)
        .text("user_id", uid)
        .text("name", "Harbour pack")
        .text("author", "demo")
        .int("is_custom", 1)
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("packs", pack);
    let lumia = SeedRow::new()
        .text("id", new_id())
        .text("pack_id", &pack_id)
        .text("name", "Harbourmaster")
        .text("definition", prose(2, 1))
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("lumia_items", lumia);
    let loom = SeedRow::new()
        .text("id", new_id())
        .text("pack_id", &pack_id)
        .text("name", "Fog")
        .text("content", prose(4, 1))
        .text("category", "weather")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("loom_items", loom);

    let session_id = new_id();
    let dream = SeedRow::new()
        .text("id", &session_id)
        .text("user_id", uid)
        .int("session_number", 1)
        .int("created_at", now)
        .int("updated_at", now)
        .text("status", "draft")
        .text("workspace_kind", "character")
        .text("dream_text", "A lighthouse keeper who collects lost letters.")
        .text("persona_id", session.persona_id)
        .text("connection_id", session.connection_id)
        .text_or_null("character_id", session.character_id);
    demo.add("dream_weaver_sessions", dream);
    let message = SeedRow::new()
        .text("id", new_id())
        .text("session_id", &session_id)
        .text("user_id", uid)
        .int("created_at", now)
        .int("seq", 0)
        .text("kind", "prompt")
        .text("payload", "{}");
    demo.add("dream_weaver_messages", message);
    let prompt = SeedRow::new()
        .text("id", new_id())
        .text("user_id", uid)
        .text("name", "Keeper")
        .text("prompt", "lighthouse keeper")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("dream_weaver_saved_prompts", prompt);

    let extension = SeedRow::new()
        .text("id", new_id())
        .text("identifier", format!("tide-tables-{}", &uid[..8.min(uid.len())]))
        .text("name", "Tide tables")
        .text("version", "1.2.0")
        .text("author", "demo")
        .text("github", "https://example.invalid/tide-tables")
        .text("install_scope", "user")
        .text("installed_by_user_id", uid)
        .int("installed_at", now)
        .int("updated_at", now);
    demo.add("extensions", extension);
    Ok(())
}

/// The databank with its document, the theme asset with its stylesheet, and the
/// completion sound that the `notificationSound` setting names.
fn add_files(demo: &mut Demo<'_>) -> anyhow::Result<()> {
    let (uid, now) = (demo.uid, demo.now);
    let databank_id = new_id();
    let document_id = new_id();
    let document = format!("# Harbour notes\n\n{}\n", prose(1, 6));
    demo.write_file(FileBucket::Databank, "notes/harbour.md", document.as_bytes())?;
    let databank = SeedRow::new()
        .text("id", &databank_id)
        .text("user_id", uid)
        .text("name", "Research")
        .text("scope", "global")
        .int("enabled", 1)
        .text("metadata", "{}")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("databanks", databank);
    let document_row = SeedRow::new()
        .text("id", &document_id)
        .text("databank_id", &databank_id)
        .text("user_id", uid)
        .text("name", "Harbour notes")
        .text("slug", "harbour-notes")
        .text("file_path", "notes/harbour.md")
        .text("mime_type", "text/markdown")
        .int("file_size", document.len() as i64)
        .text("status", "ready")
        .text("metadata", "{}")
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("databank_documents", document_row);
    let chunk = SeedRow::new()
        .text("id", new_id())
        .text("document_id", &document_id)
        .text("databank_id", &databank_id)
        .text("user_id", uid)
        .int("chunk_index", 0)
        .text("content", document)
        .int("token_count", 90)
        .int("vectorized_at", now)
        .text("vector_model", "text-embedding-3-small")
        .text("metadata", "{}")
        .int("created_at", now);
    demo.add("databank_chunks", chunk);

    let css = "body { --accent: #7c5cff; background: #14121a; }\n";
    demo.write_file(FileBucket::ThemeAssets, "midnight/theme.css", css.as_bytes())?;
    let asset = SeedRow::new()
        .text("id", new_id())
        .text("user_id", uid)
        .text("bundle_id", "midnight")
        .text("slug", "theme-css")
        .text("storage_type", "file")
        .text("file_name", "theme.css")
        .text("original_filename", "theme.css")
        .text("mime_type", "text/css")
        .int("byte_size", css.len() as i64)
        .int("created_at", now)
        .int("updated_at", now);
    demo.add("theme_assets", asset);
    demo.write_file(FileBucket::NotificationSounds, "completion.wav", &media::wav_tone(880.0, 180))
}
