//! `lvbak import --dry-run`: a restore preview says what a restore would do with every
//! table, file and item, writes nothing, refuses a hostile archive as an import would, and
//! tells one account's copies from another account's rows.

use super::*;
use rusqlite::Connection;

/// What an account holds, as counts a preview must leave alone.
fn footprint(data: &Path, user: &str) -> (i64, i64, i64, usize) {
    let db = Connection::open(data.join("lvbak.sqlite")).unwrap();
    let id: String = db.query_row("SELECT id FROM user WHERE username = ?1", [user], |row| row.get(0)).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [&id], |row| row.get(0)).unwrap() };
    let files = ["avatars", "images", "databank", "theme-assets", "notification-sounds"]
        .iter()
        .filter_map(|bucket| std::fs::read_dir(data.join(bucket).join(&id)).ok())
        .map(|dir| dir.count())
        .sum();
    (
        count("SELECT count(*) FROM characters WHERE user_id = ?1"),
        count("SELECT count(*) FROM messages WHERE chat_id IN (SELECT id FROM chats WHERE user_id = ?1)"),
        count("SELECT count(*) FROM lvbak_usage WHERE user_id = ?1"),
        files,
    )
}

fn preview(archive: &str, user: &str, data: &str) -> Value {
    let output = lvbak(&["import", archive, "--user", user, "--dry-run", "--json", "--data-dir", data], None);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    json_of(&output)
}

/// Every table's rows (and, `with_files`, the files) in one state, or the first that is not; tables not
/// keyed by `id` (a message's breakdown, settings) in `unkeyed`'s.
fn all_in_but(preview: &Value, state: &str, unkeyed: &str, with_files: bool) -> Result<(), String> {
    let tables = preview["tables"].as_object().unwrap();
    for (table, counts) in tables.iter().chain(with_files.then_some((&"files".to_string(), &preview["files"]))) {
        let keyed = lvbak_core::registry::table_spec(table).is_none_or(|spec| spec.primary_key == ["id"]);
        let state = if keyed { state } else { unkeyed };
        let total: u64 = counts.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        if counts[state].as_u64().unwrap() != total {
            return Err(format!("{table}: {counts}"));
        }
    }
    Ok(())
}

fn all_in(preview: &Value, state: &str) -> Result<(), String> {
    all_in_but(preview, state, state, true)
}

#[test]
fn a_preview_shows_what_a_restore_would_do_and_writes_nothing() {
    let dir = scratch_dir("preview");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    for (user, password) in [("ada", "pw-ada-1234"), ("mal", "pw-mal-1234")] {
        let added = lvbak(&["user", "add", user, "--password", password, "--data-dir", data_arg], None);
        assert_eq!(added.status.code(), Some(0), "{}", String::from_utf8_lossy(&added.stderr));
    }
    assert_eq!(lvbak(&["seed", "--user", "ada", "--data-dir", data_arg], None).status.code(), Some(0));
    let archive = dir.join("ada.lvbak");
    let archive_arg = archive.to_str().unwrap();
    let exported = lvbak(&["export", "--user", "ada", "--data-dir", data_arg, "-o", archive_arg], None);
    assert_eq!(exported.status.code(), Some(0), "{}", String::from_utf8_lossy(&exported.stderr));

    // The account the backup came from has all of it, as it is.
    let own = preview(archive_arg, "ada", data_arg);
    all_in(&own, "unchanged").unwrap();
    assert_eq!(own["files"]["unchanged"], 17, "{}", own["files"]);
    let items = own["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|item| item["kind"].as_str().unwrap()).collect();
    for kind in ["character", "chat", "persona", "world_book", "preset"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert!(items.iter().all(|item| item["state"] == "unchanged" && item["name"] != ""), "{items:?}");

    // Another account: every id is ada's, so every row would be copied (rows keyed by what
    // they belong to go in new, under the copies); nothing is written.
    let before = footprint(&data, "mal");
    let theirs = preview(archive_arg, "mal", data_arg);
    all_in_but(&theirs, "remapped", "new", false).unwrap();
    // Files named by a copied row's id follow it; the theme's and the sound's are new.
    let files = &theirs["files"];
    assert_eq!((&files["remapped"], &files["new"], &files["refused"]), (&15.into(), &2.into(), &0.into()), "{files}");
    assert!(theirs["items"].as_array().unwrap().iter().all(|item| item["state"] == "remapped"));
    assert_eq!(footprint(&data, "mal"), before, "a preview wrote something");
    assert_eq!(before, (0, 0, 0, 0));
    // Once mal has restored it, its copies are found and compared: all unchanged.
    let restored = lvbak(&["import", archive_arg, "--user", "mal", "--skip-secrets", "--data-dir", data_arg], None);
    assert_eq!(restored.status.code(), Some(0), "{}", String::from_utf8_lossy(&restored.stderr));
    all_in(&preview(archive_arg, "mal", data_arg), "unchanged").unwrap();
    // A character deleted since the backup (and its chats with it) and a message of another
    // chat edited since: those would come back, and that chat differs (the account's
    // message is kept).
    let db = Connection::open(data.join("lvbak.sqlite")).unwrap();
    let ada: String = db.query_row("SELECT id FROM user WHERE username = 'ada'", [], |row| row.get(0)).unwrap();
    let chat: String = db
        .query_row(
            "SELECT chat_id FROM messages WHERE chat_id IN (SELECT id FROM chats WHERE user_id = ?1) ORDER BY id LIMIT 1",
            [&ada],
            |row| row.get(0),
        )
        .unwrap();
    let character: String = db
        .query_row(
            "SELECT id FROM characters WHERE user_id = ?2 AND id NOT IN (SELECT character_id FROM chats WHERE id = ?1) \
             ORDER BY id LIMIT 1",
            [&chat, &ada],
            |row| row.get(0),
        )
        .unwrap();
    let mut expected: Vec<(String, String)> = db
        .prepare("SELECT id FROM chats WHERE character_id = ?1")
        .unwrap()
        .query_map([&character], |row| row.get::<_, String>(0))
        .unwrap()
        .map(|id| (id.unwrap(), "new".to_string()))
        .collect();
    // As Lumiverse deletes: what belongs to the character goes with it.
    db.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    db.execute("DELETE FROM characters WHERE id = ?1", [&character]).unwrap();
    db.execute(
        "UPDATE messages SET content = 'edited since' WHERE id = (SELECT id FROM messages WHERE chat_id = ?1 LIMIT 1)",
        [&chat],
    )
    .unwrap();
    // ... and the persona renamed since.
    let persona: String = db.query_row("SELECT id FROM personas WHERE user_id = ?1", [&ada], |row| row.get(0)).unwrap();
    db.execute("UPDATE personas SET name = 'Renamed since' WHERE id = ?1", [&persona]).unwrap();
    drop(db);
    let since = preview(archive_arg, "ada", data_arg);
    assert_eq!(since["tables"]["characters"]["new"], 1, "{}", since["tables"]["characters"]);
    assert_eq!(since["tables"]["messages"]["differs"], 1, "{}", since["tables"]["messages"]);
    let mut changed: Vec<(String, String)> = since["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["state"] != "unchanged")
        .map(|item| (item["id"].as_str().unwrap().to_string(), item["state"].as_str().unwrap().to_string()))
        .collect();
    expected.push((character, "new".into()));
    expected.push((chat.clone(), "differs".into()));
    expected.push((persona.clone(), "differs".into()));
    expected.sort();
    changed.sort();
    assert_eq!(changed, expected);
    // What differs: the persona's name; one of the chat's messages, edited since.
    let item = |id: &str| since["items"].as_array().unwrap().iter().find(|item| item["id"] == id).unwrap().clone();
    assert_eq!(item(&persona)["differs"], serde_json::json!({"columns": ["name"]}));
    let messages = &item(&chat)["differs"]["messages"];
    assert_eq!((&messages["edited"], &messages["missing"]), (&1.into(), &0.into()), "{messages}");
    assert!(messages["archive"].as_u64().unwrap() >= 1, "{messages}");
    // The account still has every message (one edited): the same count and last time.
    assert_eq!(messages["account"], messages["archive"], "{messages}");
    assert!(messages["accountLastAt"].is_i64() && messages["accountLastAt"] == messages["archiveLastAt"], "{messages}");

    // A preview changes nothing: the same question gets the same answer.
    assert_eq!(preview(archive_arg, "ada", data_arg), since);

    // The table output says the same in words.
    let table = lvbak(&["import", archive_arg, "--user", "ada", "--dry-run", "--data-dir", data_arg], None);
    let printed = String::from_utf8_lossy(&table.stdout);
    assert!(printed.contains("differs (name)") && printed.contains("nothing was written (dry run)"), "{printed}");
    assert!(printed.contains("1 edited since, 0 not in the account"), "{printed}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every corpus archive is refused by a preview with the code an import refuses it with
/// (and the valid ones pass both), and the refused previews wrote nothing.
#[test]
fn a_preview_refuses_a_hostile_archive_as_an_import_would() {
    let dir = scratch_dir("preview-corpus");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    assert_eq!(
        lvbak(&["user", "add", "eve", "--password", "pw-eve-1234", "--data-dir", data_arg], None).status.code(),
        Some(0)
    );
    let limits = corpus_limits();
    let code_of = |output: &Output| {
        // The refusal is the last line (an import prints its progress before it).
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let last = stderr.lines().last().unwrap_or_default().to_string();
        (output.status.code(), last.split(':').next().unwrap_or_default().to_string())
    };
    let mut failures = Vec::new();
    for case in corpus::cases() {
        let path = dir.join(format!("{}.lvbak", case.name));
        std::fs::write(&path, &case.bytes).unwrap();
        let path = path.to_str().unwrap();
        let dry =
            lvbak(&["import", path, "--user", "eve", "--dry-run", "--json", "--data-dir", data_arg], Some(&limits));
        let real = lvbak(&["import", path, "--user", "eve", "--skip-secrets", "--data-dir", data_arg], Some(&limits));
        let (dry_status, dry_code) = code_of(&dry);
        let (real_status, real_code) = code_of(&real);
        let wanted = case.expected.map(str::to_string);
        let refused_alike = dry_status == Some(2) && real_status == Some(2) && Some(&dry_code) == wanted.as_ref();
        let passed_alike = wanted.is_none() && dry_status == Some(0) && real_status == Some(0);
        if !(refused_alike && real_code == dry_code || passed_alike) {
            failures.push(format!(
                "{}: wanted {wanted:?}; dry run {dry_status:?} {dry_code:?}, import {real_status:?} {real_code:?}",
                case.name
            ));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}
