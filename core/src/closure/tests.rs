//! The closure over an in-memory account: what each pick brings, and the registry's
//! relations held whole; and an archive's answers ([`ArchiveRows`]): exactly the rows asked
//! for, though most lines are passed over unparsed.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};

use super::relations::{edge_of, must_bring, Edge, JSON_REFERENCES, REFERENCE_EDGES};
use super::*;
use crate::registry::{json_id_columns, Ownership, TABLES};

/// Rows per table, as JSON objects; only `user_id = "me"` rows (or children of them) are
/// the account's, as a store answers.
#[derive(Default)]
struct Account {
    rows: BTreeMap<&'static str, Vec<Value>>,
    /// How many questions were asked.
    questions: usize,
}

impl Account {
    fn add(&mut self, table: &'static str, row: Value) -> &mut Self {
        self.rows.entry(table).or_default().push(row);
        self
    }

    fn is_mine(&self, spec: &TableSpec, row: &Value) -> bool {
        match spec.ownership {
            Ownership::Direct { column } => row[column] == "me",
            Ownership::Parent { parent_table, column } => {
                let parent = table_spec_of(parent_table);
                self.rows
                    .get(parent_table)
                    .into_iter()
                    .flatten()
                    .any(|p| p["id"] == row[column] && self.is_mine(parent, p))
            }
        }
    }
}

fn table_spec_of(name: &str) -> &'static TableSpec {
    crate::registry::table_spec(name).unwrap_or_else(|| unreachable!("{name}"))
}

impl RowSource for Account {
    type Error = String;

    fn rows_where(
        &mut self,
        table: &'static TableSpec,
        key: RowKey,
        values: &[String],
        columns: &[&'static str],
        each: &mut dyn FnMut(&[Option<String>]),
    ) -> Result<(), String> {
        self.questions += 1;
        for row in self.rows.get(table.name).into_iter().flatten() {
            let value = match key {
                RowKey::Column(column) => row[column].as_str().map(str::to_string),
                RowKey::JsonKey { column, key } => row[column]
                    .as_str()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .and_then(|json| json[key].as_str().map(str::to_string)),
            };
            if value.is_some_and(|v| values.contains(&v)) && self.is_mine(table, row) {
                let out: Vec<Option<String>> = columns.iter().map(|c| row[*c].as_str().map(str::to_string)).collect();
                each(&out);
            }
        }
        Ok(())
    }
}

fn pick(text: &str) -> Pick {
    text.parse().unwrap_or_else(|error| unreachable!("{error}"))
}

fn closure_of(account: &mut Account, picks: &[&str], without_chats: bool) -> Closure {
    let selection = Selection { picks: picks.iter().map(|p| pick(p)).collect(), without_chats };
    closure(account, &selection).unwrap_or_else(|error| unreachable!("{error}"))
}

fn ids(closure: &Closure, table: &str) -> Vec<String> {
    closure.ids(table).map(str::to_string).collect()
}

/// Two characters sharing a world book, each with a chat; the first with an avatar image
/// (owned by the second: images are shared), a gallery, a regex script, an expression.
fn account() -> Account {
    let mut a = Account::default();
    let extensions = |books: &[&str], expression: &str| {
        json!({"world_book_ids": books, "expressions": {"mappings": {"joy": expression}}}).to_string()
    };
    a.add(
        "characters",
        json!({"id": "ca", "user_id": "me", "image_id": "img-a", "extensions": extensions(&["wb", "wb-a"], "img-joy")}),
    )
    .add("characters", json!({"id": "cb", "user_id": "me", "image_id": "img-b", "extensions": extensions(&["wb"], "")}))
    .add("characters", json!({"id": "other", "user_id": "them", "extensions": "{}"}))
    .add("images", json!({"id": "img-a", "user_id": "me", "owner_character_id": "cb"}))
    .add("images", json!({"id": "img-b", "user_id": "me", "owner_character_id": "cb"}))
    .add("images", json!({"id": "img-joy", "user_id": "me"}))
    .add("images", json!({"id": "img-gallery", "user_id": "me"}))
    .add("images", json!({"id": "img-made-for-a", "user_id": "me", "owner_character_id": "ca"}))
    .add("character_gallery", json!({"id": "g1", "user_id": "me", "character_id": "ca", "image_id": "img-gallery"}))
    .add("character_gallery", json!({"id": "g2", "user_id": "me", "character_id": "cb", "image_id": "img-a"}))
    .add("regex_scripts", json!({"id": "rx", "user_id": "me", "character_id": "ca"}))
    .add("world_books", json!({"id": "wb", "user_id": "me"}))
    .add("world_books", json!({"id": "wb-a", "user_id": "me"}))
    .add("world_books", json!({"id": "wb-unused", "user_id": "me"}))
    .add("world_book_entries", json!({"id": "e1", "world_book_id": "wb"}))
    .add("world_book_entries", json!({"id": "e2", "world_book_id": "wb-a"}))
    .add("personas", json!({"id": "p", "user_id": "me", "attached_world_book_id": "wb"}));
    for (chat, character) in [("chat-a", "ca"), ("chat-b", "cb")] {
        a.add("chats", json!({"id": chat, "user_id": "me", "character_id": character, "metadata": "{}"}));
        for n in 0..3 {
            let parent = (n > 0).then(|| format!("{chat}-m{}", n - 1));
            a.add("messages", json!({"id": format!("{chat}-m{n}"), "chat_id": chat, "parent_message_id": parent}));
        }
        a.add("message_breakdowns", json!({"message_id": format!("{chat}-m1"), "chat_id": chat, "user_id": "me"}));
    }
    a
}

#[test]
fn a_character_brings_its_chats_books_images_and_parts_but_not_the_character_sharing_its_book() {
    let mut a = account();
    let c = closure_of(&mut a, &["character:ca"], false);
    assert_eq!(ids(&c, "characters"), ["ca"]);
    assert_eq!(ids(&c, "chats"), ["chat-a"]);
    assert_eq!(ids(&c, "messages"), ["chat-a-m0", "chat-a-m1", "chat-a-m2"]);
    assert_eq!(ids(&c, "message_breakdowns"), ["chat-a-m1"]);
    assert_eq!(ids(&c, "world_books"), ["wb", "wb-a"]);
    assert_eq!(ids(&c, "world_book_entries"), ["e1", "e2"]);
    assert_eq!(ids(&c, "images"), ["img-a", "img-gallery", "img-joy", "img-made-for-a"]);
    assert_eq!(ids(&c, "character_gallery"), ["g1"]);
    assert_eq!(ids(&c, "regex_scripts"), ["rx"]);
    // The shared book names no character; the avatar's owner is not brought by the avatar;
    // a persona attached to the book does not belong to it.
    assert_eq!(c.count("personas"), 0);
    let tables: Vec<&str> = c.tables().map(|(t, _)| t).collect();
    assert!(!tables.contains(&"settings"), "{tables:?}");
}

#[test]
fn without_chats_a_character_comes_alone_with_what_it_needs() {
    let mut a = account();
    let c = closure_of(&mut a, &["character:ca"], true);
    assert_eq!(ids(&c, "characters"), ["ca"]);
    assert_eq!(c.count("chats") + c.count("messages") + c.count("message_breakdowns"), 0);
    assert_eq!(ids(&c, "world_books"), ["wb", "wb-a"]);
}

#[test]
fn a_chat_brings_its_branches_and_its_character_but_not_its_siblings() {
    let mut a = account();
    let branched = |from: &str| json!({"branch": "main", "branched_from": from}).to_string();
    a.add("chats", json!({"id": "branch-1", "user_id": "me", "character_id": "ca", "metadata": branched("chat-a")}))
        .add(
            "chats",
            json!({"id": "branch-2", "user_id": "me", "character_id": "ca", "metadata": branched("branch-1")}),
        )
        .add("chats", json!({"id": "sibling", "user_id": "me", "character_id": "ca", "metadata": "{}"}))
        .add("chats", json!({"id": "foreign-branch", "user_id": "them", "metadata": branched("chat-a")}))
        .add("messages", json!({"id": "b2-m0", "chat_id": "branch-2"}));
    let c = closure_of(&mut a, &["chat:chat-a"], false);
    assert_eq!(ids(&c, "chats"), ["branch-1", "branch-2", "chat-a"]);
    assert!(c.contains("messages", "b2-m0"));
    assert_eq!(ids(&c, "characters"), ["ca"], "the chat needs its character");
    // Picking a branch does not bring the chat it branched from.
    let c = closure_of(&mut a, &["chat:branch-2"], false);
    assert_eq!(ids(&c, "chats"), ["branch-2"]);
}

#[test]
fn cycles_end() {
    let mut a = account();
    // images ↔ characters, and messages that are each other's parent.
    a.add("images", json!({"id": "loop", "user_id": "me", "owner_character_id": "cl"}))
        .add("characters", json!({"id": "cl", "user_id": "me", "image_id": "loop", "extensions": "not json"}))
        .add(
            "chats",
            json!({"id": "cc", "user_id": "me", "character_id": "cl", "metadata": "{\"branched_from\":\"cc\"}"}),
        )
        .add("messages", json!({"id": "x", "chat_id": "cc", "parent_message_id": "y"}))
        .add("messages", json!({"id": "y", "chat_id": "cc", "parent_message_id": "x"}));
    let c = closure_of(&mut a, &["character:cl"], false);
    assert_eq!(ids(&c, "images"), ["loop"]);
    assert_eq!(ids(&c, "chats"), ["cc"]);
    assert_eq!(ids(&c, "messages"), ["x", "y"]);
    assert!(a.questions < 200, "{} questions", a.questions);
}

#[test]
fn cortex_links_bring_their_vault_and_target_chat_with_their_contents() {
    let mut a = account();
    a.add("cortex_vaults", json!({"id": "v", "user_id": "me", "source_chat_id": "chat-b"}))
        .add("cortex_vault_entities", json!({"id": "ve", "vault_id": "v"}))
        .add("cortex_vault_chunks", json!({"id": "vc", "vault_id": "v"}))
        .add("cortex_chat_links", json!({"id": "l", "user_id": "me", "chat_id": "chat-a", "vault_id": "v"}))
        .add("cortex_chat_links", json!({"id": "l2", "user_id": "me", "chat_id": "chat-a", "target_chat_id": "chat-b"}))
        .add("memory_entities", json!({"id": "me1", "chat_id": "chat-a"}))
        .add("memory_font_colors", json!({"id": "fc", "chat_id": "chat-a", "entity_id": "me1"}));
    let c = closure_of(&mut a, &["chat:chat-a"], false);
    assert_eq!(ids(&c, "cortex_chat_links"), ["l", "l2"]);
    assert_eq!(ids(&c, "cortex_vaults"), ["v"]);
    assert_eq!(ids(&c, "cortex_vault_entities"), ["ve"]);
    assert_eq!(ids(&c, "cortex_vault_chunks"), ["vc"]);
    assert_eq!(ids(&c, "memory_font_colors"), ["fc"]);
    // The linked chat comes whole (its messages and breakdown), but it is not a pick: its
    // character comes for it, not that character's other chats.
    assert_eq!(ids(&c, "chats"), ["chat-a", "chat-b"]);
    assert!(c.contains("messages", "chat-b-m2") && c.contains("message_breakdowns", "chat-b-m1"));
    assert_eq!(ids(&c, "characters"), ["ca", "cb"]);
}

#[test]
fn a_persona_brings_its_book_and_a_preset_its_scripts() {
    let mut a = account();
    a.add("presets", json!({"id": "pr", "user_id": "me"}))
        .add("regex_scripts", json!({"id": "rx-p", "user_id": "me", "preset_id": "pr"}))
        .add("connection_profiles", json!({"id": "cp", "user_id": "me", "preset_id": "pr"}));
    let c = closure_of(&mut a, &["persona:p", "preset:pr"], false);
    assert_eq!(ids(&c, "personas"), ["p"]);
    assert_eq!(ids(&c, "world_books"), ["wb"]);
    assert_eq!(ids(&c, "world_book_entries"), ["e1"]);
    assert_eq!(ids(&c, "regex_scripts"), ["rx-p"]);
    assert_eq!(c.count("connection_profiles"), 0, "a profile using the preset is not the preset's");
    assert_eq!(c.count("characters"), 0);
}

#[test]
fn picks_outside_the_account_are_named() {
    let mut a = account();
    let selection = Selection {
        picks: vec![pick("character:other"), pick("chat:chat-a"), pick("world_book:nope")],
        without_chats: false,
    };
    assert_eq!(
        closure(&mut a, &selection),
        Err(ClosureError::NotFound(vec![pick("character:other"), pick("world_book:nope")]))
    );
    assert!("character".parse::<Pick>().is_err());
    assert!("planet:x".parse::<Pick>().is_err());
    assert!("chat:".parse::<Pick>().is_err());
    assert_eq!(pick("world_book:a:b").id, "a:b");
    assert_eq!(pick("world_book:w").to_string(), "world_book:w");
}

/// Every reference of the registry says how the closure follows it, once; none that an
/// import would refuse or clear without its target is left behind; JSON references are
/// in JSON columns the registry knows, and point at tables keyed by `id`.
#[test]
fn every_registry_relation_is_classified() {
    let mut seen = HashSet::new();
    for (table, column, _) in REFERENCE_EDGES {
        assert!(seen.insert((*table, *column)), "{table}.{column} listed twice");
        let spec = table_spec_of(table);
        assert!(spec.references.iter().any(|r| r.column == *column), "{table}.{column} is no reference");
    }
    for spec in TABLES {
        for reference in spec.references {
            let edge = edge_of(spec, reference.column);
            assert!(edge.is_some(), "{}.{} is not classified", spec.name, reference.column);
            if must_bring(spec, reference.column) {
                assert!(
                    matches!(edge, Some(Edge::Part | Edge::Needs)),
                    "{}.{} must bring its target",
                    spec.name,
                    reference.column
                );
            }
            assert!(Closure::key_column(reference.table).is_some(), "{}", reference.table);
        }
        if let Ownership::Parent { column, .. } = spec.ownership {
            assert_eq!(edge_of(spec, column), Some(Edge::Part));
        }
    }
    for reference in JSON_REFERENCES {
        assert!(
            json_id_columns(reference.table).contains(&reference.column),
            "{}.{}",
            reference.table,
            reference.column
        );
        assert_eq!(Closure::key_column(reference.target), Some("id"));
    }
    for kind in ItemKind::ALL {
        assert_eq!(Closure::key_column(kind.table()), Some("id"));
        assert_eq!(pick(&format!("{}:x", kind.word())).kind, kind);
    }
}

#[test]
fn belongings_leave_out_what_the_picks_only_need() {
    let mut a = account();
    let selection = Selection { picks: vec![pick("chat:chat-a")], without_chats: false };
    let own = super::belongings(&mut a, &selection).unwrap_or_else(|error| unreachable!("{error}"));
    assert_eq!(ids(&own, "chats"), ["chat-a"]);
    assert_eq!(ids(&own, "messages"), ["chat-a-m0", "chat-a-m1", "chat-a-m2"]);
    assert_eq!(ids(&own, "message_breakdowns"), ["chat-a-m1"]);
    // The chat needs its character (and it its books and images): the closure has them,
    // the belongings do not.
    let all = closure_of(&mut a, &["chat:chat-a"], false);
    assert_eq!(ids(&all, "characters"), ["ca"]);
    assert!(own.count("characters") == 0 && own.count("world_books") == 0 && own.count("images") == 0);
    // A character's belongings are its chats and its gallery, not its books.
    let selection = Selection { picks: vec![pick("character:ca")], without_chats: false };
    let own = super::belongings(&mut a, &selection).unwrap_or_else(|error| unreachable!("{error}"));
    assert_eq!(ids(&own, "characters"), ["ca"]);
    assert_eq!(ids(&own, "chats"), ["chat-a"]);
    assert_eq!(ids(&own, "character_gallery"), ["g1"]);
    assert_eq!(own.count("world_books"), 0);
}

/// An archive of these tables (name, NDJSON).
fn archive_of(tables: &[(&str, &str)]) -> crate::Archive<std::io::Cursor<Vec<u8>>> {
    use lvbak_tests::corpus::manifest_json;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    let mut entries = vec![RawEntry::deflated("manifest.json", &manifest_json(&[]))];
    entries.extend(
        tables.iter().map(|(table, ndjson)| RawEntry::deflated(&format!("database/{table}.ndjson"), ndjson.as_bytes())),
    );
    crate::Archive::open(std::io::Cursor::new(RawZip::new(entries).build()), crate::Limits::STANDARD)
        .unwrap_or_else(|error| unreachable!("{error}"))
}

/// The ids of the rows `rows` answers.
fn answer<R: std::io::Read + std::io::Seek>(
    rows: &mut ArchiveRows<'_, R>,
    table: &'static str,
    key: RowKey,
    values: &[&str],
) -> Vec<String> {
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let mut found = Vec::new();
    rows.rows_where(table_spec_of(table), key, &values, &["id"], &mut |row| {
        found.push(row[0].clone().unwrap_or_default());
    })
    .unwrap_or_else(|error| unreachable!("{error}"));
    found
}

/// `rows_where` over an archive holding `ndjson` as `database/<table>.ndjson`: the ids of
/// the rows found.
fn archive_answer(table: &'static str, ndjson: &str, key: RowKey, values: &[&str]) -> Vec<String> {
    answer(&mut ArchiveRows::new(&archive_of(&[(table, ndjson)])), table, key, values)
}

#[test]
fn an_archive_answers_the_rows_whose_column_is_a_value_not_those_that_merely_mention_it() {
    let (a, b, c) = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    );
    // c's id spelled with a `\u` escape is still c's; b only mentions a; "x" is no UUID.
    let escaped_c = c.replacen('3', "\\u0033", 1);
    let characters = format!(
        "{{\"id\":\"{a}\",\"image_id\":\"{b}\"}}\n{{\"id\":\"{b}\",\"description\":\"see {a}\",\
         \"extensions\":\"{{\\\"world_book_id\\\":\\\"{a}\\\"}}\"}}\n{{\"id\":\"{escaped_c}\"}}\n{{\"id\":\"x\"}}\n"
    );
    let few = archive_answer("characters", &characters, RowKey::Column("id"), &[a, c]);
    assert_eq!(few, [a, c]);
    // More values than are looked for one by one: the line's UUIDs are looked up.
    let others: Vec<String> = (0..6).map(|n| format!("4444444{n}-4444-4444-8444-444444444444")).collect();
    let mut many: Vec<&str> = others.iter().map(String::as_str).collect();
    many.extend([a, c]);
    assert_eq!(archive_answer("characters", &characters, RowKey::Column("id"), &many), [a, c]);
    // Many values, not all UUIDs: every line is parsed, the answer is the same.
    many.push("x");
    assert_eq!(archive_answer("characters", &characters, RowKey::Column("id"), &many), [a, c, "x"]);
    assert_eq!(archive_answer("characters", &characters, RowKey::Column("image_id"), &[b]), [a]);
    assert!(archive_answer("characters", &characters, RowKey::Column("image_id"), &[a]).is_empty());
}

#[test]
fn an_archive_matches_integers_by_their_decimal_text_and_json_keys_exactly() {
    let entries = "{\"id\":\"e1\",\"position\":42}\n{\"id\":\"e2\",\"position\":420,\"comment\":\"42\"}\n\
                   {\"id\":\"e3\",\"position\":4.2e1}\n";
    assert_eq!(archive_answer("world_book_entries", entries, RowKey::Column("position"), &["42"]), ["e1"]);
    let (from, key) =
        ("55555555-5555-4555-8555-555555555555", RowKey::JsonKey { column: "metadata", key: "branched_from" });
    let chats = format!(
        "{{\"id\":\"b1\",\"metadata\":\"{{\\\"branched_from\\\":\\\"{from}\\\"}}\"}}\n\
         {{\"id\":\"b2\",\"metadata\":{{\"branched_from\":\"{from}\"}}}}\n\
         {{\"id\":\"b3\",\"name\":\"{from}\",\"metadata\":\"{{}}\"}}\n"
    );
    assert_eq!(archive_answer("chats", &chats, key, &[from]), ["b1", "b2"]);
}

#[test]
fn with_the_explorers_index_an_archive_answers_the_same() {
    // Two ids the explorer lists alike (clipped to the same text).
    let long = "c".repeat(70);
    let (c1, c2) = (format!("{long}1"), format!("{long}2"));
    let characters = format!(
        "{{\"id\":\"{c1}\",\"extensions\":\"{{\\\"world_book_ids\\\":[\\\"wb1\\\"]}}\"}}\n\
         {{\"id\":\"{c2}\",\"extensions\":\"{{}}\"}}\n"
    );
    let books = "{\"id\":\"wb1\",\"name\":\"one\"}\n{\"id\":\"wb2\",\"name\":\"two\"}\n";
    let entries = "{\"id\":\"e1\",\"world_book_id\":\"wb1\"}\n{\"id\":\"e2\",\"world_book_id\":\"wb2\"}\n\
                   {\"id\":\"e3\",\"world_book_id\":\"wb1\"}\n{\"id\":\"e4\",\"world_book_id\":\"wb-gone\"}\n";
    let mut archive =
        archive_of(&[("characters", &characters), ("world_books", books), ("world_book_entries", entries)]);
    let explorer = crate::explore::ExploreIndex::build(&mut archive, |_| {}).unwrap_or_else(|e| unreachable!("{e}"));
    let selection = Selection { picks: vec![pick(&format!("character:{c1}"))], without_chats: false };
    let alone = closure(&mut ArchiveRows::new(&archive), &selection).unwrap_or_else(|e| unreachable!("{e}"));
    let mut indexed = ArchiveRows::indexed(&mut archive, &explorer);
    assert_eq!(closure(&mut indexed, &selection).unwrap_or_else(|e| unreachable!("{e}")), alone);
    assert_eq!(ids(&alone, "characters"), [c1.as_str()]);
    assert_eq!(ids(&alone, "world_book_entries"), ["e1", "e3"]);
    assert_eq!(answer(&mut indexed, "characters", RowKey::Column("id"), &[&c2]), [c2.as_str()]);
    // Entries of a book the explorer does not list are read from the table.
    assert_eq!(answer(&mut indexed, "world_book_entries", RowKey::Column("world_book_id"), &["wb-gone"]), ["e4"]);
}
