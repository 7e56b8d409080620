//! The table registry of FORMAT §4–§5 as data: which tables travel, who owns each row,
//! the order to apply them in, which references must be scrubbed or checked, which
//! columns are forced or reset, which columns name files, and which LanceDB tables exist.
//! Export, import and inspection all read this one table; none keeps its own list.

use crate::entry_name::{EntryKind, FileBucket};

/// How a row is tied to its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The row names its user in `column` (`user_id`, or `installed_by_user_id`).
    Direct { column: &'static str },
    /// The row belongs to whoever owns the `parent_table` row its `column` names.
    Parent { parent_table: &'static str, column: &'static str },
}

/// What to do with a reference from one registry row to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceRule {
    /// Nullable: after an import, set to NULL when the target is missing or not the
    /// importer's (FORMAT §4's nullable-reference scrub list).
    ScrubWhenMissing,
    /// The row is refused when the target exists and belongs to someone else; a reference
    /// to a row that does not exist is cleared (or, in a column that may not be empty, the
    /// row refused), so that no account's row can later claim it.
    RejectWhenForeign,
    /// The row is keyed by the target's id (`message_breakdowns.message_id`,
    /// `weaver_bible.session_id`...): it is refused unless the target exists and is the
    /// importer's, so nobody can take a key that another user's row will need.
    RequireOwn,
}

/// A column of one registry table that holds the id of a row of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    pub column: &'static str,
    pub table: &'static str,
    pub rule: ReferenceRule,
}

/// A column whose value names a file that travels in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileColumn {
    pub column: &'static str,
    pub bucket: FileBucket,
}

/// A column value written when an importer must re-vectorize the row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetValue {
    Null,
    Integer(i64),
    Text(&'static str),
    /// Lumiverse's desired index state of a world-book entry: `'pending'` when the entry is
    /// vectorized (the user's opt-in, which is kept), enabled and has content, else
    /// `'not_enabled'`. Lumiverse 1.1's importer also clears `vectorized`, which loses the
    /// opt-in; lvbak keeps it so the entry is embedded again.
    WorldBookDesiredStatus,
}

/// Everything the format knows about one table.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub ownership: Ownership,
    pub primary_key: &'static [&'static str],
    /// Only rows with this column equal to this value belong to a user (extensions).
    pub row_filter: Option<(&'static str, &'static str)>,
    pub references: &'static [Reference],
    /// Columns written as 0 on export and forced to 0 on import.
    pub forced_zero: &'static [&'static str],
    /// Columns reset when vectors do not restore (FORMAT §3).
    pub revectorize: &'static [(&'static str, ResetValue)],
    pub files: &'static [FileColumn],
    /// A column numbering the user's rows 1, 2, 3… (unique per user, as Lumiverse's
    /// `dream_weaver_sessions.session_number`): an imported row whose number is missing or
    /// already taken by another of the user's rows gets the next free one.
    pub numbered: Option<&'static str>,
}

impl TableSpec {
    /// The columns an import may write differently from the archive's value (FORMAT §4):
    /// the owner columns ([`OWNER_COLUMNS`], the importer's id wherever a table has them),
    /// `forced_zero` columns, the re-vectorization resets (when vectors do not restore) and
    /// a `numbered` column (when its number is taken). Every other column is stored, and
    /// exported again, exactly as it came.
    pub fn rewritten_columns(&self) -> Vec<&'static str> {
        let mut columns = OWNER_COLUMNS.to_vec();
        columns.extend(self.forced_zero);
        columns.extend(self.revectorize.iter().map(|(column, _)| *column));
        columns.extend(self.numbered);
        columns
    }
}

/// Columns that name a row's user: an import writes the importer's id into them, in every
/// table that has them (children owned through a parent included).
pub const OWNER_COLUMNS: &[&str] = &["user_id", "installed_by_user_id"];

const USER: Ownership = Ownership::Direct { column: "user_id" };
const ID: &[&str] = &["id"];

const fn through(parent_table: &'static str, column: &'static str) -> Ownership {
    Ownership::Parent { parent_table, column }
}

const fn scrub(column: &'static str, table: &'static str) -> Reference {
    Reference { column, table, rule: ReferenceRule::ScrubWhenMissing }
}

const fn checked(column: &'static str, table: &'static str) -> Reference {
    Reference { column, table, rule: ReferenceRule::RejectWhenForeign }
}

const fn keyed_by(column: &'static str, table: &'static str) -> Reference {
    Reference { column, table, rule: ReferenceRule::RequireOwn }
}

const fn table(name: &'static str, ownership: Ownership) -> TableSpec {
    TableSpec {
        name,
        ownership,
        primary_key: ID,
        row_filter: None,
        references: &[],
        forced_zero: &[],
        revectorize: &[],
        files: &[],
        numbered: None,
    }
}

const CHUNK_RESET: &[(&str, ResetValue)] = &[("vectorized_at", ResetValue::Null), ("vector_model", ResetValue::Null)];
const API_KEY_FLAG: &[&str] = &["has_api_key"];

/// Every table that travels, in import order (parents before children).
pub static TABLES: &[TableSpec] = &[
    TableSpec { primary_key: &["key", "user_id"], ..table("settings", USER) },
    table("global_addons", USER),
    table("mcp_servers", USER),
    TableSpec {
        references: &[scrub("owner_character_id", "characters"), scrub("owner_chat_id", "chats")],
        files: &[FileColumn { column: "filename", bucket: FileBucket::Images }],
        ..table("images", USER)
    },
    table("presets", USER),
    TableSpec {
        references: &[scrub("preset_id", "presets")],
        forced_zero: API_KEY_FLAG,
        ..table("connection_profiles", USER)
    },
    TableSpec { forced_zero: API_KEY_FLAG, ..table("image_gen_connections", USER) },
    TableSpec { forced_zero: API_KEY_FLAG, ..table("tts_connections", USER) },
    TableSpec { forced_zero: API_KEY_FLAG, ..table("stt_connections", USER) },
    table("world_books", USER),
    TableSpec {
        revectorize: &[
            ("vector_index_status", ResetValue::WorldBookDesiredStatus),
            ("vector_indexed_at", ResetValue::Null),
        ],
        ..table("world_book_entries", through("world_books", "world_book_id"))
    },
    TableSpec {
        references: &[scrub("attached_world_book_id", "world_books"), scrub("image_id", "images")],
        files: &[FileColumn { column: "avatar_path", bucket: FileBucket::Avatars }],
        ..table("personas", USER)
    },
    TableSpec {
        references: &[scrub("image_id", "images")],
        files: &[FileColumn { column: "avatar_path", bucket: FileBucket::Avatars }],
        ..table("characters", USER)
    },
    TableSpec {
        references: &[checked("character_id", "characters"), checked("image_id", "images")],
        ..table("character_gallery", USER)
    },
    table("packs", USER),
    table("loom_items", through("packs", "pack_id")),
    table("loom_tools", through("packs", "pack_id")),
    table("lumia_items", through("packs", "pack_id")),
    TableSpec {
        references: &[
            checked("pack_id", "packs"),
            checked("preset_id", "presets"),
            checked("character_id", "characters"),
        ],
        ..table("regex_scripts", USER)
    },
    TableSpec {
        references: &[checked("image_id", "images")],
        files: &[FileColumn { column: "file_name", bucket: FileBucket::ThemeAssets }],
        ..table("theme_assets", USER)
    },
    table("databanks", USER),
    TableSpec {
        references: &[checked("databank_id", "databanks")],
        files: &[FileColumn { column: "file_path", bucket: FileBucket::Databank }],
        ..table("databank_documents", USER)
    },
    TableSpec {
        references: &[checked("databank_id", "databanks"), checked("document_id", "databank_documents")],
        revectorize: CHUNK_RESET,
        ..table("databank_chunks", USER)
    },
    TableSpec { references: &[checked("character_id", "characters")], ..table("chats", USER) },
    TableSpec {
        references: &[scrub("parent_message_id", "messages")],
        ..table("messages", through("chats", "chat_id"))
    },
    TableSpec {
        primary_key: &["message_id"],
        references: &[keyed_by("message_id", "messages")],
        ..table("message_breakdowns", through("chats", "chat_id"))
    },
    TableSpec { revectorize: CHUNK_RESET, ..table("chat_chunks", through("chats", "chat_id")) },
    table("chat_memory_cache", through("chats", "chat_id")),
    table("memory_entities", through("chats", "chat_id")),
    TableSpec {
        references: &[checked("entity_id", "memory_entities"), checked("chunk_id", "chat_chunks")],
        ..table("memory_mentions", through("chats", "chat_id"))
    },
    TableSpec {
        references: &[checked("source_entity_id", "memory_entities"), checked("target_entity_id", "memory_entities")],
        ..table("memory_relations", through("chats", "chat_id"))
    },
    TableSpec { revectorize: CHUNK_RESET, ..table("memory_consolidations", through("chats", "chat_id")) },
    TableSpec {
        references: &[scrub("entity_id", "memory_entities")],
        ..table("memory_font_colors", through("chats", "chat_id"))
    },
    TableSpec {
        references: &[checked("chunk_id", "chat_chunks")],
        ..table("memory_salience", through("chats", "chat_id"))
    },
    TableSpec { references: &[scrub("source_chat_id", "chats")], ..table("cortex_vaults", USER) },
    table("cortex_vault_entities", through("cortex_vaults", "vault_id")),
    table("cortex_vault_relations", through("cortex_vaults", "vault_id")),
    table("cortex_vault_chunks", through("cortex_vaults", "vault_id")),
    TableSpec {
        references: &[
            checked("chat_id", "chats"),
            checked("target_chat_id", "chats"),
            checked("vault_id", "cortex_vaults"),
        ],
        ..table("cortex_chat_links", USER)
    },
    TableSpec {
        references: &[
            scrub("persona_id", "personas"),
            scrub("connection_id", "connection_profiles"),
            scrub("character_id", "characters"),
            checked("launch_chat_id", "chats"),
        ],
        numbered: Some("session_number"),
        ..table("dream_weaver_sessions", USER)
    },
    table("dream_weaver_messages", through("dream_weaver_sessions", "session_id")),
    table("dream_weaver_saved_prompts", USER),
    TableSpec {
        references: &[
            scrub("persona_id", "personas"),
            scrub("connection_id", "connection_profiles"),
            scrub("character_id", "characters"),
            checked("launch_chat_id", "chats"),
        ],
        ..table("weaver_sessions", USER)
    },
    TableSpec {
        primary_key: &["session_id"],
        references: &[keyed_by("session_id", "weaver_sessions")],
        ..table("weaver_extraction", USER)
    },
    TableSpec { references: &[checked("session_id", "weaver_sessions")], ..table("weaver_interview_turns", USER) },
    TableSpec {
        primary_key: &["session_id"],
        references: &[keyed_by("session_id", "weaver_sessions")],
        ..table("weaver_bible", USER)
    },
    TableSpec { references: &[checked("session_id", "weaver_sessions")], ..table("weaver_fields", USER) },
    TableSpec { primary_key: &["user_id"], ..table("weaver_taste", USER) },
    TableSpec {
        row_filter: Some(("install_scope", "user")),
        ..table("extensions", Ownership::Direct { column: "installed_by_user_id" })
    },
];

/// The order Lumiverse 1.1 writes `database/` entries in: tables owned directly first,
/// then tables owned through a parent (as its fixtures show).
pub static EXPORT_ORDER: &[&str] = &[
    "settings",
    "global_addons",
    "mcp_servers",
    "images",
    "connection_profiles",
    "image_gen_connections",
    "tts_connections",
    "stt_connections",
    "presets",
    "personas",
    "characters",
    "character_gallery",
    "world_books",
    "packs",
    "loom_items",
    "loom_tools",
    "lumia_items",
    "regex_scripts",
    "theme_assets",
    "databanks",
    "databank_documents",
    "databank_chunks",
    "chats",
    "dream_weaver_sessions",
    "dream_weaver_messages",
    "dream_weaver_saved_prompts",
    "weaver_sessions",
    "weaver_extraction",
    "weaver_interview_turns",
    "weaver_bible",
    "weaver_fields",
    "weaver_taste",
    "extensions",
    "world_book_entries",
    "messages",
    "message_breakdowns",
    "chat_chunks",
    "chat_memory_cache",
    "memory_entities",
    "memory_relations",
    "memory_consolidations",
    "memory_font_colors",
    "memory_salience",
    "memory_mentions",
    "cortex_vaults",
    "cortex_chat_links",
    "cortex_vault_entities",
    "cortex_vault_relations",
    "cortex_vault_chunks",
];

/// JSON text columns where Lumiverse keeps ids of other rows (found from its schema, its
/// source and the fixtures): the active chat, preset or persona in `settings.value`, a
/// chat's persona in `chats.metadata`, a greeting's character in `messages.extra`, world
/// books bound in `characters.extensions`, chunk and entity lists of the memory cortex,
/// drafts of the weavers. When an import gives a row a new id (its id belonged to another
/// user), every string in these columns equal to the old id is rewritten to the new one.
pub static JSON_ID_COLUMNS: &[(&str, &[&str])] = &[
    ("settings", &["value"]),
    ("connection_profiles", &["metadata"]),
    ("image_gen_connections", &["default_parameters", "metadata"]),
    ("tts_connections", &["default_parameters", "metadata"]),
    ("stt_connections", &["default_parameters", "metadata"]),
    ("global_addons", &["metadata"]),
    ("mcp_servers", &["metadata"]),
    ("presets", &["metadata"]),
    ("world_books", &["metadata"]),
    ("world_book_entries", &["extensions"]),
    ("personas", &["metadata"]),
    ("characters", &["extensions"]),
    ("packs", &["extras"]),
    ("regex_scripts", &["metadata"]),
    ("theme_assets", &["metadata_json"]),
    ("databanks", &["metadata"]),
    ("databank_documents", &["metadata"]),
    ("databank_chunks", &["metadata"]),
    ("chats", &["metadata"]),
    ("messages", &["extra"]),
    ("chat_chunks", &["message_ids", "entity_ids"]),
    ("message_breakdowns", &["data"]),
    ("chat_memory_cache", &["chunks_json"]),
    ("memory_entities", &["metadata"]),
    ("memory_relations", &["evidence_chunk_ids", "metadata", "arc_ids"]),
    ("memory_consolidations", &["source_chunk_ids", "source_consolidation_ids", "entity_ids"]),
    ("dream_weaver_sessions", &["draft"]),
    ("dream_weaver_messages", &["payload"]),
    ("weaver_sessions", &["seed_provenance"]),
    ("weaver_bible", &["spine"]),
    ("weaver_fields", &["provenance"]),
    ("extensions", &["metadata"]),
];

/// Text columns that hold ids of other rows as plain text, checked by no foreign key: a
/// whole value that is an id (a chunk's first and last message, the consolidation a chunk
/// went into, an edge's peer, the character or chat a `scope_id` names, whichever its
/// `scope` says), or ids inside a name or free text (settings keys such as
/// `loadout:chat:<id>`, `/api/v1/images/<id>` in a character's text). When an import gives
/// a row a new id, every such id equal to the old one is rewritten to the new one.
/// Found from Lumiverse 1.1's migrations and the services that write each column.
pub static TEXT_ID_COLUMNS: &[(&str, &[&str])] = &[
    ("settings", &["key"]),
    (
        "characters",
        &[
            "description",
            "personality",
            "scenario",
            "first_mes",
            "mes_example",
            "creator_notes",
            "system_prompt",
            "post_history_instructions",
            "alternate_greetings",
        ],
    ),
    ("regex_scripts", &["scope_id"]),
    ("databanks", &["scope_id"]),
    ("chat_chunks", &["start_message_id", "end_message_id", "consolidation_id"]),
    ("memory_entities", &["first_seen_chunk_id", "last_seen_chunk_id"]),
    (
        "memory_relations",
        &[
            "contradiction_peer_id",
            "superseded_by",
            "canonical_edge_id",
            "merged_into",
            "first_seen_arc_id",
            "last_seen_arc_id",
        ],
    ),
    ("cortex_vault_chunks", &["source_chunk_id"]),
    ("dream_weaver_messages", &["supersedes_id"]),
];

/// Columns named like ids that hold no id of a row (Lumiverse 1.1): a SillyTavern Quick
/// Reply label, the browser-made id grouping a theme's assets (its folder name), a swipe's
/// position, the stamp one branch operation puts on the messages it copies, and a regex
/// script's user-chosen macro name.
pub static NOT_ROW_IDS: &[(&str, &str)] = &[
    ("world_book_entries", "automation_id"),
    ("theme_assets", "bundle_id"),
    ("messages", "swipe_id"),
    ("messages", "branch_id"),
    ("regex_scripts", "script_id"),
];

/// The text columns of `table` that may hold ids of other rows unquoted
/// ([`TEXT_ID_COLUMNS`]).
pub fn text_id_columns(table: &str) -> &'static [&'static str] {
    TEXT_ID_COLUMNS.iter().find(|(name, _)| *name == table).map_or(&[], |(_, columns)| columns)
}

/// The JSON columns of `table` that may hold ids of other rows ([`JSON_ID_COLUMNS`]).
pub fn json_id_columns(table: &str) -> &'static [&'static str] {
    JSON_ID_COLUMNS.iter().find(|(name, _)| *name == table).map_or(&[], |(_, columns)| columns)
}

/// The columns of `spec` that may hold ids of other rows as text, each with whether only
/// a whole JSON string counts as an id (`true`: the JSON id columns) or any id standing alone
/// (the text id columns and the file columns): where an import settles its copies' ids, and
/// where a restore as a copy rewrites them.
pub fn id_text_columns(spec: &'static TableSpec) -> impl Iterator<Item = (&'static str, bool)> {
    (json_id_columns(spec.name).iter().map(|column| (*column, true)))
        .chain(text_id_columns(spec.name).iter().map(|column| (*column, false)))
        .chain(spec.files.iter().map(|file| (file.column, false)))
}

/// Tables that never travel, whatever an archive says.
pub static EXCLUDED_TABLES: &[&str] = &[
    "secrets",
    "user",
    "account",
    "session",
    "verification",
    "push_subscriptions",
    "_migrations",
    "tokenizer_configs",
    "tokenizer_model_patterns",
    "lumihub_link",
    "extension_grants",
    "query_vector_cache",
    "embedding_cache",
];

/// The LanceDB tables that travel under `lancedb/`.
pub static VECTOR_TABLES: &[&str] = &["embeddings", "embeddings_world_books"];

/// The spec of a registry table.
pub fn table_spec(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|spec| spec.name == name)
}

/// Whether a table is one that must never be exported or imported.
pub fn is_excluded_table(name: &str) -> bool {
    EXCLUDED_TABLES.contains(&name) || name.contains("_fts")
}

/// Whether a LanceDB table is one that travels.
pub fn is_vector_table(name: &str) -> bool {
    VECTOR_TABLES.contains(&name)
}

/// Whether an import applies the rows of `table`: a registry table, and never one that
/// must not travel (both are checked, so the rule holds whatever the lists come to say).
pub fn is_applied_table(table: &str) -> bool {
    table_spec(table).is_some() && !is_excluded_table(table)
}

/// The name under which an import lists a table of the archive that it reads but does not
/// apply (FORMAT §4–§5: tables the importer does not know are skipped and reported), or
/// `None` for a table it applies: a `database/` table that is not applied
/// ([`is_applied_table`]), or a `lancedb/` table other than those that travel, listed as
/// `lancedb:<table>`. Every importer still checks such an entry's lines, so a damaged
/// archive is refused whole.
pub fn unused_table(kind: &EntryKind) -> Option<String> {
    match kind {
        EntryKind::Table { table } if !is_applied_table(table) => Some(table.clone()),
        EntryKind::VectorTable { table } if !is_vector_table(table) => Some(format!("lancedb:{table}")),
        _ => None,
    }
}

/// Settings keys that hold API keys: dropped on export and on import (FORMAT §4).
pub fn is_secret_setting_key(key: &str) -> bool {
    let between = |prefix: &str, suffix: &str| {
        key.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(suffix)).is_some_and(|middle| !middle.is_empty())
    };
    between("connection_", "_api_key")
        || between("image_gen_connection_", "_api_key")
        || between("tts_connection_", "_api_key")
        || between("stt_connection_", "_api_key")
        || key.starts_with("embedding_api_key_")
        || key == "web_search_api_key"
}

/// The connection table and row id whose `has_api_key` a restored secret turns on, for
/// secrets named `<prefix><id>_api_key` (FORMAT §6).
pub fn connection_of_secret(key: &str) -> Option<(&'static str, &str)> {
    // Longest prefixes first: `image_gen_connection_` also ends in `connection_`.
    const PREFIXES: [(&str, &str); 4] = [
        ("image_gen_connection_", "image_gen_connections"),
        ("tts_connection_", "tts_connections"),
        ("stt_connection_", "stt_connections"),
        ("connection_", "connection_profiles"),
    ];
    PREFIXES.iter().find_map(|(prefix, table)| {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("_api_key"))
            .filter(|id| !id.is_empty())
            .map(|id| (*table, id))
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn export_order_and_import_order_hold_the_same_tables() {
        let import: HashSet<&str> = TABLES.iter().map(|t| t.name).collect();
        let export: HashSet<&str> = EXPORT_ORDER.iter().copied().collect();
        assert_eq!(import, export);
        assert_eq!(TABLES.len(), 49);
    }

    #[test]
    fn parents_come_before_children() {
        for (position, spec) in TABLES.iter().enumerate() {
            if let Ownership::Parent { parent_table, .. } = spec.ownership {
                let parent = TABLES.iter().position(|t| t.name == parent_table);
                assert!(parent.is_some_and(|p| p < position), "{} before {parent_table}", spec.name);
            }
            for reference in spec.references {
                assert!(table_spec(reference.table).is_some(), "{}.{}", spec.name, reference.column);
            }
        }
    }

    /// A reference checked when its row is applied must point at a table applied before
    /// (so a target given a new id is already known); only nullable references, settled
    /// after every table is in, may point forward.
    #[test]
    fn checked_references_point_at_earlier_tables() {
        for (position, spec) in TABLES.iter().enumerate() {
            for reference in spec.references.iter().filter(|r| r.rule != ReferenceRule::ScrubWhenMissing) {
                let target = TABLES.iter().position(|t| t.name == reference.table);
                assert!(target.is_some_and(|t| t < position), "{}.{}", spec.name, reference.column);
            }
        }
        for (table, _) in JSON_ID_COLUMNS {
            assert!(table_spec(table).is_some(), "{table}");
        }
    }

    /// Every column of Lumiverse's schema that is a foreign key, or is named like an id
    /// (`…_id`, `…_ids`), is known: an owner or parent column, a checked or scrubbed
    /// reference, a JSON or text column whose ids an import rewrites, or a column known to
    /// hold no row id. A column Lumiverse adds later fails here until it is classified.
    #[test]
    fn every_id_column_of_the_schema_is_known() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/lumiverse-schema.json")).expect("the schema");
        let tables = schema["tables"].as_object().expect("tables");
        let mut unknown = Vec::new();
        for spec in TABLES {
            let table = &tables[spec.name];
            let foreign: HashSet<&str> =
                table["foreign_keys"].as_array().expect("keys").iter().filter_map(|k| k["column"].as_str()).collect();
            for column in table["columns"].as_array().expect("columns") {
                let name = column["name"].as_str().expect("name");
                let id_like = name.ends_with("_id") || name.ends_with("_ids") || foreign.contains(name);
                if !id_like {
                    continue;
                }
                let known = OWNER_COLUMNS.contains(&name)
                    || spec.primary_key.contains(&name)
                    || matches!(spec.ownership, Ownership::Parent { column, .. } if column == name)
                    || spec.references.iter().any(|r| r.column == name)
                    || json_id_columns(spec.name).contains(&name)
                    || text_id_columns(spec.name).contains(&name)
                    || NOT_ROW_IDS.contains(&(spec.name, name));
                if !known {
                    unknown.push(format!("{}.{name}", spec.name));
                }
            }
        }
        assert!(unknown.is_empty(), "id columns no rule covers: {unknown:?}");
        for (table, columns) in TEXT_ID_COLUMNS.iter().chain(JSON_ID_COLUMNS) {
            let known: HashSet<&str> = tables[*table]["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .filter_map(|c| c["name"].as_str())
                .collect();
            for column in *columns {
                assert!(known.contains(column), "{table}.{column} is not in the schema");
            }
        }
    }

    #[test]
    fn every_table_keyed_by_another_tables_id_requires_its_own_parent() {
        for spec in TABLES {
            let &[key] = spec.primary_key else { continue };
            if key == "id" || key == "user_id" {
                continue;
            }
            let rule = spec.references.iter().find(|r| r.column == key).map(|r| r.rule);
            assert_eq!(rule, Some(ReferenceRule::RequireOwn), "{}.{key}", spec.name);
        }
    }

    #[test]
    fn secret_setting_keys() {
        for key in [
            "connection_abc_api_key",
            "image_gen_connection_1_api_key",
            "tts_connection_x_api_key",
            "stt_connection_x_api_key",
            "embedding_api_key_openai",
            "web_search_api_key",
        ] {
            assert!(is_secret_setting_key(key), "{key}");
        }
        for key in ["connection__api_key_x", "connection__api_key", "theme", "web_search_api_key2", "embeddingConfig"] {
            assert!(!is_secret_setting_key(key), "{key}");
        }
        assert_eq!(connection_of_secret("image_gen_connection_9b_api_key"), Some(("image_gen_connections", "9b")));
        assert_eq!(connection_of_secret("connection_7987_api_key"), Some(("connection_profiles", "7987")));
        assert_eq!(connection_of_secret("web_search_api_key"), None);
        assert!(
            is_excluded_table("messages_fts_data") && is_excluded_table("secrets") && !is_excluded_table("messages")
        );
    }

    /// One rule for every importer (the uploader, the raw path, the batch applier): a row
    /// table outside the registry or one that never travels, or a vector table other than
    /// the two that travel, is read and listed, never applied.
    #[test]
    fn unused_tables_are_those_no_import_applies() {
        let table = |name: &str| EntryKind::Table { table: name.into() };
        let vectors = |name: &str| EntryKind::VectorTable { table: name.into() };
        assert_eq!(unused_table(&table("chats")), None);
        assert_eq!(unused_table(&table("secrets")).as_deref(), Some("secrets"));
        assert_eq!(unused_table(&table("messages_fts_data")).as_deref(), Some("messages_fts_data"));
        assert_eq!(unused_table(&table("some_plugin_table")).as_deref(), Some("some_plugin_table"));
        assert_eq!(unused_table(&vectors("embeddings_world_books")), None);
        assert_eq!(unused_table(&vectors("other")).as_deref(), Some("lancedb:other"));
        assert_eq!(unused_table(&EntryKind::Manifest), None);
        assert!(TABLES.iter().all(|spec| is_applied_table(spec.name)), "no registry table is excluded");
    }
}
