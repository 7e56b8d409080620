//! `lvbak import --only`: a selective restore takes exactly the closure of the picked
//! items, computed over the archive — the same rows a selective export of those items from
//! the account writes — its dry run predicts it, a pick the archive lacks is refused before
//! anything is written, and another account restoring the same pick gets copies while the
//! first account's rows stay as they are; `--as-copy` puts the backup's version beside
//! today's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::Connection;

use super::*;

fn ok(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every registry table's row keys of `user`, per table (tables it has no rows of left out).
fn rows_of(data: &Path, user: &str) -> BTreeMap<String, BTreeSet<String>> {
    let db = Connection::open(data.join("lvbak.sqlite")).unwrap();
    let id: String = db.query_row(r#"SELECT id FROM "user" WHERE username = ?1"#, [user], |row| row.get(0)).unwrap();
    let mut rows = BTreeMap::new();
    for spec in lvbak_core::registry::TABLES {
        let Some(key) = lvbak_core::closure::Closure::key_column(spec.name) else { continue };
        let owned = match spec.ownership {
            lvbak_core::registry::Ownership::Direct { column } => format!("\"{column}\" = ?1"),
            lvbak_core::registry::Ownership::Parent { parent_table, column } => {
                format!("\"{column}\" IN (SELECT id FROM \"{parent_table}\" WHERE user_id = ?1)")
            }
        };
        let sql = format!("SELECT CAST(\"{key}\" AS TEXT) FROM \"{}\" WHERE {owned}", spec.name);
        let keys: BTreeSet<String> =
            db.prepare(&sql).unwrap().query_map([&id], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        if !keys.is_empty() {
            rows.insert(spec.name.to_string(), keys);
        }
    }
    rows
}

fn add_user(data: &str, name: &str) {
    ok(&lvbak(&["user", "add", name, "--password", &format!("pw-{name}-1234"), "--data-dir", data], None));
}

#[test]
fn a_selective_restore_takes_exactly_the_picked_closure() {
    let dir = scratch_dir("selective-restore");
    let (source, target) = (dir.join("source"), dir.join("target"));
    let (source_arg, target_arg) = (source.to_str().unwrap(), target.to_str().unwrap());
    add_user(source_arg, "ada");
    ok(&lvbak(&["seed", "--user", "ada", "--data-dir", source_arg], None));
    let full = dir.join("full.lvbak");
    ok(&lvbak(&["export", "--user", "ada", "--data-dir", source_arg, "-o", full.to_str().unwrap()], None));
    let db = Connection::open(source.join("lvbak.sqlite")).unwrap();
    let character: String =
        db.query_row("SELECT character_id FROM chats ORDER BY id LIMIT 1", [], |row| row.get(0)).unwrap();
    drop(db);
    let pick = format!("character:{character}");
    // The same pick exported from the account: the rows a selective restore must bring.
    let part = dir.join("part.lvbak");
    ok(&lvbak(
        &["export", "--user", "ada", "--data-dir", source_arg, "--only", &pick, "-o", part.to_str().unwrap()],
        None,
    ));

    // Into two instances: ids a restore keeps are global, so one instance would copy.
    let elsewhere = dir.join("elsewhere");
    let elsewhere_arg = elsewhere.to_str().unwrap();
    add_user(elsewhere_arg, "whole");
    for name in ["picked", "mal"] {
        add_user(target_arg, name);
    }
    ok(&lvbak(&["import", part.to_str().unwrap(), "--user", "whole", "--data-dir", elsewhere_arg], None));
    let full_arg = full.to_str().unwrap();
    let planned = json_of(&lvbak(
        &["import", full_arg, "--user", "picked", "--only", &pick, "--dry-run", "--json", "--data-dir", target_arg],
        None,
    ));
    assert_eq!(rows_of(&target, "picked"), BTreeMap::new(), "a dry run wrote rows");
    let restored = json_of(&lvbak(
        &[
            "import",
            full_arg,
            "--user",
            "picked",
            "--only",
            &pick,
            "--json",
            "--skip-secrets",
            "--data-dir",
            target_arg,
        ],
        None,
    ));
    assert_eq!(restored["status"], "complete", "{restored}");
    let expected = rows_of(&elsewhere, "whole");
    assert!(expected.contains_key("characters") && expected.contains_key("messages"), "{expected:?}");
    assert_eq!(rows_of(&target, "picked"), expected);
    // Nothing refused, and the dry run said so beforehand, table by table.
    for (table, counts) in restored["summary"].as_object().unwrap() {
        assert_eq!(counts["rejected"], 0, "{table}: {counts}");
        let new = &planned["tables"][table]["new"];
        assert_eq!(&counts["imported"], new, "{table}: dry run {} against {counts}", planned["tables"][table]);
    }
    assert!(planned["items"].as_array().unwrap().iter().all(|item| item["state"] == "new"), "{planned}");
    assert!(planned["items"].as_array().unwrap().iter().any(|item| item["id"] == character.as_str()));
    let foreign_keys = Connection::open(target.join("lvbak.sqlite"))
        .unwrap()
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .count();
    assert_eq!(foreign_keys, 0, "a row names a missing row");

    // Another account restoring the same pick gets copies; the first account is untouched.
    let before = rows_of(&target, "picked");
    let copied = json_of(&lvbak(
        &["import", full_arg, "--user", "mal", "--only", &pick, "--json", "--skip-secrets", "--data-dir", target_arg],
        None,
    ));
    assert_eq!(copied["summary"]["characters"]["remapped"], 1, "{copied}");
    assert_eq!(rows_of(&target, "picked"), before);
    let mal = rows_of(&target, "mal");
    assert_eq!(
        mal.iter().map(|(table, keys)| (table.clone(), keys.len())).collect::<BTreeMap<_, _>>(),
        expected.iter().map(|(table, keys)| (table.clone(), keys.len())).collect::<BTreeMap<_, _>>()
    );

    // A pick the archive does not hold: exit 2, `not_in_archive` naming it, nothing written.
    let missing = "character:00000000-0000-4000-8000-000000000000";
    add_user(target_arg, "nobody");
    let refused =
        lvbak(&["import", full_arg, "--user", "nobody", "--only", missing, "--json", "--data-dir", target_arg], None);
    assert_eq!(refused.status.code(), Some(2));
    let answer = json_of(&refused);
    assert_eq!(answer["code"], "not_in_archive", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains(missing), "{answer}");
    assert_eq!(rows_of(&target, "nobody"), BTreeMap::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--as-copy`: the picked chat comes back beside the account's version, under ids of its
/// own and named with the backup's date; its character links to the account's; running it
/// again makes no third copy, and a later full restore is not redirected to the copy.
#[test]
fn a_chat_restored_as_a_copy_sits_beside_todays_version() {
    let dir = scratch_dir("restore-copy");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    add_user(data_arg, "ada");
    ok(&lvbak(&["seed", "--user", "ada", "--data-dir", data_arg], None));
    let backup = dir.join("backup.lvbak");
    let backup_arg = backup.to_str().unwrap();
    ok(&lvbak(&["export", "--user", "ada", "--data-dir", data_arg, "-o", backup_arg], None));
    let db = Connection::open(data.join("lvbak.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |row| row.get(0)).unwrap() };
    // Not the first chat: its branch belongs to it and would be copied along.
    let (chat, name): (String, String) = db
        .query_row("SELECT id, name FROM chats WHERE name = 'Harbour night 2'", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let messages: i64 =
        db.query_row("SELECT count(*) FROM messages WHERE chat_id = ?1", [&chat], |row| row.get(0)).unwrap();
    db.execute(
        "UPDATE messages SET content = 'edited since' WHERE id = (SELECT id FROM messages WHERE chat_id = ?1 LIMIT 1)",
        [&chat],
    )
    .unwrap();
    let before = (count("SELECT count(*) FROM chats"), count("SELECT count(*) FROM characters"));
    let pick = format!("chat:{chat}");
    let copy = ["import", backup_arg, "--user", "ada", "--only", &pick, "--as-copy", "--json", "--data-dir", data_arg];

    let mut dry = copy.to_vec();
    dry.push("--dry-run");
    let planned = json_of(&lvbak(&dry, None));
    let item = planned["items"].as_array().unwrap().iter().find(|item| item["kind"] == "chat").unwrap().clone();
    assert_eq!(item["state"], "new", "{planned}");
    assert!(item["name"].as_str().unwrap().starts_with(&format!("{name} (backup ")), "{item}");
    assert_ne!(item["id"], chat.as_str());

    let restored = json_of(&lvbak(&copy, None));
    assert_eq!(restored["status"], "complete", "{restored}");
    let copy_id = item["id"].as_str().unwrap();
    assert_eq!(count("SELECT count(*) FROM chats"), before.0 + 1, "{planned} {restored}");
    assert_eq!(
        count("SELECT count(*) FROM characters"),
        before.1,
        "the chat's character links to the account's: {planned} {restored}"
    );
    let copied: (String, String) = db
        .query_row("SELECT name, character_id FROM chats WHERE id = ?1", [copy_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let original_character: String =
        db.query_row("SELECT character_id FROM chats WHERE id = ?1", [&chat], |row| row.get(0)).unwrap();
    assert_eq!(copied, (item["name"].as_str().unwrap().to_string(), original_character));
    let in_copy: i64 =
        db.query_row("SELECT count(*) FROM messages WHERE chat_id = ?1", [copy_id], |row| row.get(0)).unwrap();
    assert_eq!(in_copy, messages, "the copy holds the backup's messages");
    let edited: i64 = db
        .query_row("SELECT count(*) FROM messages WHERE chat_id = ?1 AND content = 'edited since'", [copy_id], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(edited, 0, "the copy is the backup's version");
    let kept: i64 = db
        .query_row("SELECT count(*) FROM messages WHERE chat_id = ?1 AND content = 'edited since'", [&chat], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(kept, 1, "today's version is as it was");
    assert_eq!(count("SELECT count(*) FROM lvbak_id_map"), 0, "a copy writes no id map entry");

    // Again: the copy is found, no third one.
    let again = json_of(&lvbak(&copy, None));
    assert_eq!(again["summary"]["chats"]["imported"], 0, "{again}");
    assert_eq!(count("SELECT count(*) FROM chats"), before.0 + 1);
    // A full restore of the same backup afterwards: nothing new, nothing redirected.
    let full = json_of(&lvbak(
        &["import", backup_arg, "--user", "ada", "--json", "--skip-secrets", "--data-dir", data_arg],
        None,
    ));
    assert_eq!(full["summary"]["chats"]["imported"], 0, "{full}");
    assert_eq!(count("SELECT count(*) FROM chats"), before.0 + 1);
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}
