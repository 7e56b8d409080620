//! Which way the closure of a selection follows each relation of the registry. The registry
//! says which columns reference which table and how an import treats them; it does not say
//! whether a row *belongs to* the row it references (it comes along with it: a message with
//! its chat) or merely *needs* it (the row it names must come too: a chat's character), or
//! neither (a reference an import may clear: the chat a vault was made from). This module
//! adds that, for every reference the registry has, plus the ids Lumiverse keeps inside
//! JSON columns that the closure must follow; a test holds the list whole.

use crate::registry::{table_spec, Ownership, TableSpec, TABLES};

/// How the closure follows one reference column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edge {
    /// The row comes with the row it references, and needs it (a message and its chat).
    Part,
    /// The row needs the row it references, which comes too; it does not come with it (a
    /// chat needs its character; the character's other chats stay out).
    Needs,
    /// The row comes with the row it references but does not bring it (an image made for a
    /// character comes with that character; a character that merely shows the image does
    /// not bring the image's owner).
    Owned,
    /// Neither: a reference an import clears when its target is missing.
    Loose,
}

/// Every reference of the registry (table, column) and how the closure follows it. An
/// ownership column ([`Ownership::Parent`]) is always a [`Edge::Part`] and is not listed.
pub(crate) static REFERENCE_EDGES: &[(&str, &str, Edge)] = &[
    ("images", "owner_character_id", Edge::Owned),
    ("images", "owner_chat_id", Edge::Owned),
    ("connection_profiles", "preset_id", Edge::Loose),
    ("personas", "attached_world_book_id", Edge::Needs),
    ("personas", "image_id", Edge::Needs),
    ("characters", "image_id", Edge::Needs),
    ("character_gallery", "character_id", Edge::Part),
    ("character_gallery", "image_id", Edge::Needs),
    ("regex_scripts", "pack_id", Edge::Part),
    ("regex_scripts", "preset_id", Edge::Part),
    ("regex_scripts", "character_id", Edge::Part),
    ("theme_assets", "image_id", Edge::Needs),
    ("databank_documents", "databank_id", Edge::Part),
    ("databank_chunks", "databank_id", Edge::Part),
    ("databank_chunks", "document_id", Edge::Part),
    // A picked character brings its chats (unless "without chats"); that is the pick's rule,
    // not the relation's: a chat that comes along brings its character, not its siblings.
    ("chats", "character_id", Edge::Needs),
    ("messages", "parent_message_id", Edge::Needs),
    ("message_breakdowns", "message_id", Edge::Part),
    ("memory_mentions", "entity_id", Edge::Part),
    ("memory_mentions", "chunk_id", Edge::Part),
    ("memory_relations", "source_entity_id", Edge::Part),
    ("memory_relations", "target_entity_id", Edge::Part),
    ("memory_font_colors", "entity_id", Edge::Part),
    ("memory_salience", "chunk_id", Edge::Part),
    ("cortex_vaults", "source_chat_id", Edge::Loose),
    ("cortex_chat_links", "chat_id", Edge::Part),
    ("cortex_chat_links", "target_chat_id", Edge::Needs),
    ("cortex_chat_links", "vault_id", Edge::Needs),
    ("dream_weaver_sessions", "persona_id", Edge::Loose),
    ("dream_weaver_sessions", "connection_id", Edge::Loose),
    ("dream_weaver_sessions", "character_id", Edge::Loose),
    ("dream_weaver_sessions", "launch_chat_id", Edge::Needs),
    ("weaver_sessions", "persona_id", Edge::Loose),
    ("weaver_sessions", "connection_id", Edge::Loose),
    ("weaver_sessions", "character_id", Edge::Loose),
    ("weaver_sessions", "launch_chat_id", Edge::Needs),
    ("weaver_extraction", "session_id", Edge::Part),
    ("weaver_interview_turns", "session_id", Edge::Part),
    ("weaver_bible", "session_id", Edge::Part),
    ("weaver_fields", "session_id", Edge::Part),
];

/// One step into a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonStep {
    /// The property of that name of an object.
    Key(&'static str),
    /// Every element of an array, or every property value of an object.
    Each,
}

/// Ids of rows of `target` kept at `path` inside the JSON text column `table.column`; the
/// row needs them ([`Edge::Needs`]). A subset of the registry's `JSON_ID_COLUMNS`: those
/// whose keys and targets Lumiverse 1.1's character service names (`getCharacterWorldBookIds`,
/// the expression, alternate-avatar and landing-layer image ids).
#[derive(Clone, Copy, Debug)]
pub(crate) struct JsonReference {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) path: &'static [JsonStep],
    pub(crate) target: &'static str,
}

const fn json(
    table: &'static str,
    column: &'static str,
    path: &'static [JsonStep],
    target: &'static str,
) -> JsonReference {
    JsonReference { table, column, path, target }
}

use JsonStep::{Each, Key};

pub(crate) static JSON_REFERENCES: &[JsonReference] = &[
    json("characters", "extensions", &[Key("world_book_ids"), Each], "world_books"),
    json("characters", "extensions", &[Key("world_book_id")], "world_books"),
    json("characters", "extensions", &[Key("expressions"), Key("mappings"), Each], "images"),
    json("characters", "extensions", &[Key("expression_groups"), Each, Each], "images"),
    json("characters", "extensions", &[Key("alternate_avatars"), Each, Key("image_id")], "images"),
    json("characters", "extensions", &[Key("landing_perspective_layers"), Each, Key("image_id")], "images"),
    json("characters", "extensions", &[Key("avatar_crop_image_id")], "images"),
    json("characters", "extensions", &[Key("original_image_id")], "images"),
];

/// Where a branched chat names the chat it branched from (`chats.metadata.branched_from`,
/// as Lumiverse's branch operation writes it): a picked chat brings the chats branched from
/// it, and theirs in turn.
pub(crate) const BRANCHED_FROM: (&str, &str, &str) = ("chats", "metadata", "branched_from");

/// The edge of `table.column`: [`Edge::Part`] for an ownership column, else the listed one.
pub(crate) fn edge_of(spec: &TableSpec, column: &str) -> Option<Edge> {
    if matches!(spec.ownership, Ownership::Parent { column: owner, .. } if owner == column) {
        return Some(Edge::Part);
    }
    REFERENCE_EDGES.iter().find(|(table, name, _)| *table == spec.name && *name == column).map(|(_, _, edge)| *edge)
}

/// A column of a table that holds another row's id, and how the closure follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    pub(crate) target: &'static str,
    pub(crate) edge: Edge,
}

/// Every ownership and reference column of the registry with its edge (unknown ones as
/// [`Edge::Needs`], the safe side: a row never arrives without what it points at).
pub(crate) fn links() -> Vec<Link> {
    let mut links = Vec::new();
    for spec in TABLES {
        if let Ownership::Parent { parent_table, column } = spec.ownership {
            links.push(Link { table: spec.name, column, target: parent_table, edge: Edge::Part });
        }
        for reference in spec.references {
            let edge = edge_of(spec, reference.column).unwrap_or(Edge::Needs);
            links.push(Link { table: spec.name, column: reference.column, target: reference.table, edge });
        }
    }
    links
}

/// The column that names a row of `table` in the closure: its one primary-key column.
pub(crate) fn key_column(table: &str) -> Option<&'static str> {
    match table_spec(table)?.primary_key {
        [key] => Some(key),
        _ => None,
    }
}

/// Whether an import would refuse or clear a row whose reference in `column` is missing,
/// so the closure must bring its target.
#[cfg(test)]
pub(crate) fn must_bring(spec: &TableSpec, column: &str) -> bool {
    use crate::registry::ReferenceRule;
    spec.references.iter().any(|r| r.column == column && r.rule != ReferenceRule::ScrubWhenMissing)
        || matches!(spec.ownership, Ownership::Parent { column: owner, .. } if owner == column)
}

/// Calls `each` with every non-empty string found at `path` in the JSON `text` (nothing
/// when the text is not JSON).
pub(crate) fn json_ids(text: &str, path: &[JsonStep], each: &mut dyn FnMut(&str)) {
    fn walk(value: &serde_json::Value, path: &[JsonStep], each: &mut dyn FnMut(&str)) {
        match path.split_first() {
            None => {
                if let Some(id) = value.as_str().filter(|id| !id.is_empty()) {
                    each(id);
                }
            }
            Some((JsonStep::Key(key), rest)) => {
                if let Some(inner) = value.as_object().and_then(|object| object.get(*key)) {
                    walk(inner, rest, each);
                }
            }
            Some((JsonStep::Each, rest)) => match value {
                serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, rest, each)),
                serde_json::Value::Object(object) => object.values().for_each(|item| walk(item, rest, each)),
                _ => {}
            },
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        walk(&value, path, each);
    }
}
