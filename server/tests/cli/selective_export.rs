//! `lvbak export --only`: a seeded account's subset archive checked by `inspect`, imported
//! into a fresh account (exactly the archive's rows, no reference to a missing row), a world
//! book shared by two characters, and picks of another account's items refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use super::{json_of, lvbak, scratch_dir};

fn ok(output: &std::process::Output) {
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

fn database(data: &Path) -> Connection {
    Connection::open(data.join("lvbak.sqlite")).unwrap()
}

fn strings(connection: &Connection, sql: &str, parameter: &str) -> Vec<String> {
    let mut statement = connection.prepare(sql).unwrap();
    let rows = statement.query_map([parameter], |row| row.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn user_id(connection: &Connection, name: &str) -> String {
    strings(connection, r#"SELECT id FROM "user" WHERE username = ?1"#, name).remove(0)
}

/// The archive's entries: rows per `database/` table (as JSON), and the other entry names.
fn read_archive(path: &Path) -> (BTreeMap<String, Vec<Value>>, Vec<String>) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut tables = BTreeMap::new();
    let mut others = Vec::new();
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        match name.strip_prefix("database/").and_then(|n| n.strip_suffix(".ndjson")) {
            Some(table) => {
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                let rows = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
                tables.insert(table.to_string(), rows);
            }
            None => others.push(name),
        }
    }
    (tables, others)
}

fn key_of(table: &str) -> &'static str {
    match table {
        "message_breakdowns" => "message_id",
        "weaver_extraction" | "weaver_bible" => "session_id",
        _ => "id",
    }
}

fn ids(rows: &[Value], table: &str) -> BTreeSet<String> {
    rows.iter().filter_map(|row| row[key_of(table)].as_str().map(str::to_string)).collect()
}

/// Seeds `name` with three characters (two chats, one branched), and attaches the account's
/// world book to the first two characters, with the third's portrait as the first one's
/// expression. Returns the character ids, in order.
fn seeded(data: &str, name: &str) -> Vec<String> {
    ok(&lvbak(&["user", "add", name, "--password", "pw-12345678", "--data-dir", data], None));
    let seed = [
        "seed",
        "--user",
        name,
        "--characters",
        "3",
        "--chats",
        "2",
        "--messages-per-chat",
        "10",
        "--secrets",
        "2",
        "--data-dir",
        data,
    ];
    ok(&lvbak(&seed, None));
    let connection = database(Path::new(data));
    let user = user_id(&connection, name);
    let characters = strings(&connection, "SELECT id FROM characters WHERE user_id = ?1 ORDER BY rowid", &user);
    let book = strings(&connection, "SELECT id FROM world_books WHERE user_id = ?1", &user).remove(0);
    let third_image: String = connection
        .query_row("SELECT image_id FROM characters WHERE id = ?1", [&characters[2]], |row| row.get(0))
        .unwrap();
    let with_book = serde_json::json!({"world_book_ids": [book]}).to_string();
    let with_expression =
        serde_json::json!({"world_book_ids": [book], "expressions": {"mappings": {"joy": third_image}}}).to_string();
    connection
        .execute("UPDATE characters SET extensions = ?1 WHERE id = ?2", [&with_expression, &characters[0]])
        .unwrap();
    connection.execute("UPDATE characters SET extensions = ?1 WHERE id = ?2", [&with_book, &characters[1]]).unwrap();
    characters
}

#[test]
fn export_only_one_character_imports_as_exactly_its_closure() {
    let dir = scratch_dir("only");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let characters = seeded(data_arg, "dana");
    let other_characters = seeded(data_arg, "eve");

    let subset = dir.join("subset.lvbak");
    let pick = format!("character:{}", characters[0]);
    let exported = lvbak(
        &[
            "export",
            "--user",
            "dana",
            "--only",
            &pick,
            "--include-vectors",
            "--json",
            "-o",
            subset.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        None,
    );
    ok(&exported);
    let outcome = json_of(&exported);

    // (a) inspect takes it; its counts are the entries' lines.
    let report = json_of(&lvbak(&["inspect", subset.to_str().unwrap(), "--json", "--verify", "--count-rows"], None));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");
    assert_eq!(report["manifest"]["hasEncryptedSecrets"], false);
    assert_eq!(report["secrets"]["count"], 0);
    let (tables, others) = read_archive(&subset);
    let stated = json_of(&lvbak(&["inspect", subset.to_str().unwrap(), "--json"], None));
    for (table, rows) in &tables {
        assert_eq!(stated["counts"][table].as_u64(), Some(rows.len() as u64), "{table}: the stats trailer");
    }
    assert!(others.iter().all(|name| !name.starts_with("secrets/")), "{others:?}");
    assert_eq!(tables["settings"].len(), 0, "no settings in a selective export");

    // What the pick brought: the character, its chat and the branch, the shared book, and
    // the third character's portrait (its expression) — not the other characters.
    let connection = database(&data);
    let dana = user_id(&connection, "dana");
    assert_eq!(ids(&tables["characters"], "characters"), BTreeSet::from([characters[0].clone()]));
    let own_chats = strings(&connection, "SELECT id FROM chats WHERE user_id = ?1", &dana);
    let chats = ids(&tables["chats"], "chats");
    assert_eq!(chats.len(), 2, "the chat and its branch: {chats:?}");
    assert!(chats.iter().all(|chat| own_chats.contains(chat)));
    let messages: u64 = chats
        .iter()
        .map(|chat| strings(&connection, "SELECT id FROM messages WHERE chat_id = ?1", chat).len() as u64)
        .sum();
    assert_eq!(tables["messages"].len() as u64, messages);
    assert_eq!(tables["world_books"].len(), 1);
    let book = tables["world_books"][0]["id"].as_str().unwrap();
    let entries = strings(&connection, "SELECT id FROM world_book_entries WHERE world_book_id = ?1", book);
    assert_eq!(ids(&tables["world_book_entries"], "world_book_entries"), entries.iter().cloned().collect());
    assert_eq!(tables["images"].len(), 2, "its avatar image and its expression");
    assert_eq!(tables["character_gallery"].len(), 1);
    assert_eq!(tables["cortex_vaults"].len(), 1, "the first chat's vault, through its link");
    assert_eq!(tables["personas"].len(), 0);
    let file_entries: Vec<&String> = others.iter().filter(|name| name.starts_with("files/")).collect();
    assert_eq!(outcome["files"].as_u64(), Some(file_entries.len() as u64), "{outcome}");
    // Files named by the chosen rows only: the character's avatar, the two images (and
    // their thumbnails), no persona avatar, no completion sound.
    assert!(file_entries.iter().all(|name| !name.starts_with("files/notification-sounds/")), "{file_entries:?}");
    let avatars: Vec<&&String> = file_entries.iter().filter(|n| n.starts_with("files/avatars/")).collect();
    assert_eq!(avatars, [&&format!("files/avatars/{}.png", characters[0])]);
    // Vectors of the chosen chats' chunks and the book's entries only.
    let chunk_ids = ids(&tables["chat_chunks"], "chat_chunks");
    let vectors = json_of(&lvbak(&["inspect", subset.to_str().unwrap(), "--json"], None))["vectors"].clone();
    assert_eq!(vectors["embeddings"].as_u64(), Some(chunk_ids.len() as u64), "{vectors}");
    assert_eq!(vectors["embeddings_world_books"].as_u64(), Some(entries.len() as u64), "{vectors}");

    // (d) The archive holds no row of the other account.
    let eve = user_id(&connection, "eve");
    let eve_ids: BTreeSet<String> = ["characters", "chats", "world_books", "images", "personas", "cortex_vaults"]
        .iter()
        .flat_map(|table| strings(&connection, &format!("SELECT id FROM {table} WHERE user_id = ?1"), &eve))
        .collect();
    for (table, rows) in &tables {
        assert!(ids(rows, table).is_disjoint(&eve_ids), "{table} holds another account's row");
    }

    // (b) Imported into a fresh account of a fresh instance: exactly the archive's rows.
    let fresh = dir.join("fresh");
    let fresh_arg = fresh.to_str().unwrap();
    ok(&lvbak(&["user", "add", "fern", "--password", "pw-12345678", "--data-dir", fresh_arg], None));
    let imported =
        lvbak(&["import", "--user", "fern", subset.to_str().unwrap(), "--json", "--data-dir", fresh_arg], None);
    ok(&imported);
    let summary = json_of(&imported);
    assert_eq!(summary["fileSummary"]["imported"].as_u64(), Some(file_entries.len() as u64), "{summary}");
    assert_eq!(summary["scrubbedReferences"], 0, "no reference pointed at a missing row: {summary}");
    let target = database(&fresh);
    for (table, rows) in &tables {
        let count: i64 = target.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap();
        assert_eq!(count as usize, rows.len(), "{table}");
        if !rows.is_empty() {
            let sql = format!("SELECT {} FROM {table} WHERE ?1 = ?1", key_of(table));
            let found: BTreeSet<String> = strings(&target, &sql, "").into_iter().collect();
            assert_eq!(found, ids(rows, table), "{table}");
        }
    }
    let violations: Vec<String> = {
        let mut statement = target.prepare("PRAGMA foreign_key_check").unwrap();
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert!(violations.is_empty(), "foreign key violations: {violations:?}");

    // (c) The other character sharing the book comes along with neither pick nor book.
    assert!(!ids(&tables["characters"], "characters").contains(&characters[1]));

    // Picks the account does not hold: exit 2, `not_in_account` naming them, nothing written.
    let refused = dir.join("refused.lvbak");
    let foreign = format!("character:{}", other_characters[0]);
    let output = lvbak(
        &[
            "export",
            "--user",
            "dana",
            "--only",
            &pick,
            "--only",
            &foreign,
            "-o",
            refused.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("not_in_account: ") && stderr.contains(&foreign) && !stderr.contains(&pick), "{stderr}");
    assert!(!refused.exists() && !dir.join("refused.lvbak.partial").exists());
    let output = lvbak(
        &[
            "export",
            "--user",
            "dana",
            "--only",
            &foreign,
            "--json",
            "-o",
            refused.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    let answer = json_of(&output);
    assert_eq!(answer["code"], "not_in_account");
    assert!(answer["message"].as_str().unwrap().contains(&foreign), "{answer}");
    assert!(!refused.exists());
    // API keys never travel with a selection.
    let with_secrets = lvbak(
        &[
            "export",
            "--user",
            "dana",
            "--only",
            &pick,
            "--include-secrets",
            "-o",
            refused.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        None,
    );
    assert_eq!(with_secrets.status.code(), Some(2), "a usage error");
    assert!(!refused.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_chats_a_character_comes_with_its_book_and_no_chat() {
    let dir = scratch_dir("only-without-chats");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let characters = seeded(data_arg, "dana");
    let subset = dir.join("subset.lvbak");
    let pick = format!("character:{}", characters[1]);
    let args = [
        "export",
        "--user",
        "dana",
        "--only",
        &pick,
        "--without-chats",
        "-o",
        subset.to_str().unwrap(),
        "--data-dir",
        data_arg,
    ];
    ok(&lvbak(&args, None));
    let (tables, _) = read_archive(&subset);
    assert_eq!(ids(&tables["characters"], "characters"), BTreeSet::from([characters[1].clone()]));
    assert_eq!(tables["chats"].len() + tables["messages"].len(), 0);
    assert_eq!(tables["world_books"].len(), 1, "the book it shares with the first character");
    std::fs::remove_dir_all(&dir).unwrap();
}
