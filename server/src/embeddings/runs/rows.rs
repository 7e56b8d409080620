//! What a row is embedded from, as Lumiverse builds it, and its vector row in the shape
//! Lumiverse writes (so vectors restore both ways).

use serde::Serialize;

use super::*;

/// The text a row is embedded from, as Lumiverse builds it.
pub fn embedded_text(row: &SourceRow) -> String {
    let content = row.text.replace("\r\n", "\n");
    let content = content.trim();
    match row.kind {
        SourceKind::WorldBookEntry => world_book_search_text(row, content),
        _ => content.to_string(),
    }
}

/// A world-book entry's search text: its title and keys, then its content.
pub(super) fn world_book_search_text(row: &SourceRow, content: &str) -> String {
    let keys = |text: &Option<String>| -> Vec<String> {
        let list: Vec<String> = text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        list.into_iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty() && seen.insert(k.to_lowercase()))
            .collect()
    };
    let mut sections = Vec::new();
    if let Some(comment) = row.label.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        sections.push(format!("Entry title: {comment}"));
    }
    let (primary, secondary) = (keys(&row.keys), keys(&row.secondary_keys));
    if !primary.is_empty() {
        sections.push(format!("Primary keys: {}", primary.join(", ")));
    }
    if !secondary.is_empty() {
        sections.push(format!("Secondary keys: {}", secondary.join(", ")));
    }
    sections.push(format!("Content:\n{content}"));
    let text = sections.join("\n\n");
    // Lumiverse collapses runs of blank lines.
    let mut collapsed = String::with_capacity(text.len());
    let mut newlines = 0;
    for c in text.chars() {
        newlines = if c == '\n' { newlines + 1 } else { 0 };
        if newlines <= 2 {
            collapsed.push(c);
        }
    }
    collapsed.trim().to_string()
}

/// A chat chunk's vector metadata, as Lumiverse writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatChunkMetadata {
    auto_split: bool,
    split_index: u32,
    split_count: u32,
    /// UTF-16 units, as JavaScript counts a string's length.
    source_char_count: usize,
    source_token_count: i64,
    /// Lumiverse re-embeds a chunk whose text no longer has this hash (SHA-1, hex).
    source_content_hash: String,
}

/// A memory consolidation's vector metadata: its title, `null` when it has none.
#[derive(Serialize)]
struct ConsolidationMetadata<'a> {
    title: Option<&'a str>,
}

/// A world-book entry's vector metadata, as Lumiverse writes it (its own snake_case keys;
/// the keys as the row holds them when they are JSON, else `[]`).
#[derive(Serialize)]
struct WorldBookEntryMetadata<'a> {
    comment: Option<&'a str>,
    key: Value,
    keysecondary: Value,
    world_book_id: &'a str,
    search_text: String,
    vector_version: u32,
    chunk_index: u32,
    chunk_count: u32,
}

/// The LanceDB row of one embedded source row, in the shape Lumiverse writes.
pub(super) fn vector_row(user_id: &str, row: &SourceRow, vector: Vec<f32>, now: i64) -> VectorRow {
    let content = row.text.replace("\r\n", "\n").trim().to_string();
    let metadata = match row.kind {
        SourceKind::ChatChunk => serde_json::to_string(&ChatChunkMetadata {
            auto_split: false,
            split_index: 0,
            split_count: 1,
            source_char_count: content.encode_utf16().count(),
            source_token_count: row.token_count.unwrap_or_else(|| content.chars().count().div_ceil(4) as i64),
            source_content_hash: sha1_smol::Sha1::from(content.as_bytes()).digest().to_string(),
        }),
        SourceKind::MemoryConsolidation => {
            serde_json::to_string(&ConsolidationMetadata { title: row.label.as_deref() })
        }
        // The chunk's own metadata object, written back as it was read (in its key order:
        // serde_json's `preserve_order`, which LanceDB turns on).
        SourceKind::DatabankChunk => serde_json::to_string(
            &row.label.as_deref().and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok()).unwrap_or_default(),
        ),
        SourceKind::WorldBookEntry => {
            let list = |text: &Option<String>| -> Value {
                text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Array(Vec::new()))
            };
            serde_json::to_string(&WorldBookEntryMetadata {
                comment: row.label.as_deref(),
                key: list(&row.keys),
                keysecondary: list(&row.secondary_keys),
                world_book_id: &row.owner_id,
                search_text: embedded_text(row),
                vector_version: 4,
                chunk_index: 0,
                chunk_count: 1,
            })
        }
    };
    let source_type = row.kind.source_type();
    VectorRow {
        id: format!("{user_id}:{source_type}:{}:0", row.id),
        user_id: user_id.to_string(),
        source_type: source_type.to_string(),
        source_id: row.id.clone(),
        owner_id: row.owner_id.clone(),
        chunk_index: 0.0,
        content,
        vector,
        // These serialize strings, numbers and parsed JSON only, which cannot fail.
        metadata_json: metadata.unwrap_or_else(|_| "{}".to_string()),
        updated_at: now as f64,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_world_book_entry_is_embedded_with_its_title_and_keys() {
        let row = SourceRow {
            kind: SourceKind::WorldBookEntry,
            id: "e1".into(),
            owner_id: "b1".into(),
            text: "  The tower.\r\n\r\n\r\n\r\nIt is tall. ".into(),
            token_count: None,
            label: Some("tower".into()),
            keys: Some(r#"["Tower", "tower", " archive "]"#.into()),
            secondary_keys: Some("[]".into()),
            written: false,
        };
        assert_eq!(
            embedded_text(&row),
            "Entry title: tower\n\nPrimary keys: Tower, archive\n\nContent:\nThe tower.\n\nIt is tall."
        );
        let vector = vector_row("u", &row, vec![1.0], 5);
        assert_eq!(vector.id, "u:world_book_entry:e1:0");
        assert_eq!(vector.content, "The tower.\n\n\n\nIt is tall.");
    }

    #[test]
    fn a_chat_chunk_carries_lumiverses_metadata() {
        let row = SourceRow {
            kind: SourceKind::ChatChunk,
            id: "c1".into(),
            owner_id: "chat".into(),
            text: " abc\r\n".into(),
            token_count: Some(7),
            label: None,
            keys: None,
            secondary_keys: None,
            written: false,
        };
        let vector = vector_row("u", &row, vec![1.0], 5);
        let metadata: Value = serde_json::from_str(&vector.metadata_json).unwrap();
        // sha1("abc"), as Node's createHash("sha1") writes it.
        assert_eq!(metadata["sourceContentHash"], "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!((metadata["sourceCharCount"].as_u64(), metadata["sourceTokenCount"].as_u64()), (Some(3), Some(7)));
        assert_eq!(
            (vector.id.as_str(), vector.owner_id.as_str(), vector.content.as_str()),
            ("u:chat_chunk:c1:0", "chat", "abc")
        );
    }

    fn source(kind: SourceKind, text: &str, label: Option<&str>, keys: Option<&str>) -> SourceRow {
        SourceRow {
            kind,
            id: "r1".into(),
            owner_id: "o1".into(),
            text: text.into(),
            token_count: None,
            label: label.map(str::to_string),
            keys: keys.map(str::to_string),
            secondary_keys: None,
            written: false,
        }
    }

    /// The metadata is stored with the vector and exported, and Lumiverse reads it back:
    /// its bytes (key order, `null` against absent, number text) are pinned here.
    #[test]
    fn vector_metadata_keeps_lumiverses_bytes() {
        let metadata = |row: &SourceRow| vector_row("u", row, vec![1.0], 5).metadata_json;
        let mut chunk = source(SourceKind::ChatChunk, " abc\r\n", None, None);
        chunk.token_count = Some(7);
        assert_eq!(
            metadata(&chunk),
            r#"{"autoSplit":false,"splitIndex":0,"splitCount":1,"sourceCharCount":3,"sourceTokenCount":7,"sourceContentHash":"a9993e364706816aba3e25717850c26c9cd0d89d"}"#
        );
        // Without a token count, a quarter of the characters; UTF-16 units for the length.
        let chunk = source(SourceKind::ChatChunk, "h\u{e9}llo \u{1f600}", None, None);
        assert_eq!(
            metadata(&chunk),
            r#"{"autoSplit":false,"splitIndex":0,"splitCount":1,"sourceCharCount":8,"sourceTokenCount":2,"sourceContentHash":"628b3695e32b5f3b3789dcd4fe8100e5dba231da"}"#
        );
        let memory = source(SourceKind::MemoryConsolidation, "s", Some("The first n\u{ee}ght"), None);
        assert_eq!(metadata(&memory), "{\"title\":\"The first n\u{ee}ght\"}");
        assert_eq!(metadata(&source(SourceKind::MemoryConsolidation, "s", None, None)), r#"{"title":null}"#);
        // A databank chunk's own metadata object, as it was; anything else is `{}`.
        let stored = r#"{"z":1,"a":[2.5,"x",1e3],"m":null,"n":{"b":true,"a":-0}}"#;
        let databank = source(SourceKind::DatabankChunk, "d", Some(stored), None);
        assert_eq!(metadata(&databank), r#"{"z":1,"a":[2.5,"x",1000.0],"m":null,"n":{"b":true,"a":-0.0}}"#);
        for label in [None, Some("[1]"), Some("not json")] {
            assert_eq!(metadata(&source(SourceKind::DatabankChunk, "d", label, None)), "{}", "{label:?}");
        }
        let mut entry =
            source(SourceKind::WorldBookEntry, "The tower.", Some("tower"), Some(r#"["Tower", " archive "]"#));
        entry.secondary_keys = Some("[\"bell\"]".into());
        assert_eq!(
            metadata(&entry),
            concat!(
                r#"{"comment":"tower","key":["Tower"," archive "],"keysecondary":["bell"],"world_book_id":"o1","#,
                r#""search_text":"Entry title: tower\n\nPrimary keys: Tower, archive\n\nSecondary keys: bell\n\nContent:\nThe tower.","#,
                r#""vector_version":4,"chunk_index":0,"chunk_count":1}"#
            )
        );
        // Keys are kept as the row has them when they are JSON, `[]` when not.
        let mut bare = source(SourceKind::WorldBookEntry, "Fog.", None, Some(r#"[{"a": 1}]"#));
        bare.secondary_keys = Some("not json".into());
        assert_eq!(
            metadata(&bare),
            concat!(
                r#"{"comment":null,"key":[{"a":1}],"keysecondary":[],"world_book_id":"o1","search_text":"Content:\nFog.","#,
                r#""vector_version":4,"chunk_index":0,"chunk_count":1}"#
            )
        );
    }
}
