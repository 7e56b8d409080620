//! Taking back exactly what one wants, in the page (issue 23), in headless Chromium against a
//! real server, with two accounts, one of them hostile: a character deleted since the
//! backup ticked in the explorer, previewed (just it and its chats are new, nothing else is
//! listed) and restored alone, every other row of the account as it was; a chat whose
//! message was edited since restored as a copy beside today's, once however often it is
//! restored; one character exported from the account's own list, the archive holding just
//! it, its chats and their messages; and a second account that lists none of the first's
//! items and, picking one character of the first's backup, gets a copy of just that.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvbak_core::closure::{belongings, closure, ArchiveRows, Closure, ItemKind, Pick, Selection};
use lvbak_core::registry::TABLES;
use lvbak_core::{Archive, Limits, UtcTime};
use lvbak_server::seed::SeedOptions;
use serde_json::{json, Value};

use crate::browser::{open_explorer, pick_archive, write};
use crate::export::{entries, ndjson};
use crate::page_restore::{backup_then_changes, preview_in_page, sign_in_as, snapshot, Since, Snapshot, ITEM_TABLES};
use crate::support::{ok_bytes, on_each_backend, Backend, ScratchDir, TestServer};

// Each test runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    a_character_ticked_in_the_explorer_is_previewed_and_restored_alone,
    a_chat_restored_as_a_copy_sits_beside_todays_once,
    one_character_exported_from_the_list_and_another_account_takes_only_its_copy,
);
use crate::webdriver::Browser;

/// Rows per table of a snapshot (tables without rows left out).
fn counts(snapshot: &Snapshot) -> BTreeMap<&'static str, usize> {
    snapshot.iter().filter(|(_, rows)| !rows.is_empty()).map(|(table, rows)| (*table, rows.len())).collect()
}

/// The rows `after` has that `before` has not, per table; fails naming any row of `before`
/// that `after` no longer has as it was.
fn added_rows(before: &Snapshot, after: &Snapshot) -> Vec<(&'static str, Value)> {
    let mut added = Vec::new();
    let mut lost = Vec::new();
    for (table, rows) in after {
        let mut old: BTreeMap<&str, usize> = BTreeMap::new();
        for row in &before[table] {
            *old.entry(row.as_str()).or_default() += 1;
        }
        for row in rows {
            match old.get_mut(row.as_str()) {
                Some(n) if *n > 0 => *n -= 1,
                _ => added.push((*table, serde_json::from_str(row).unwrap())),
            }
        }
        lost.extend(old.into_iter().filter(|(_, n)| *n > 0).map(|(row, _)| format!("{table}: {row}")));
    }
    assert!(lost.is_empty(), "rows changed or went: {lost:#?}");
    added
}

/// The closure of `picks` over an archive, as lvbak-core computes it (what the Worker must
/// send).
fn closure_of(bytes: &[u8], picks: Vec<Pick>, without_chats: bool) -> Closure {
    let archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
    closure(&mut ArchiveRows::new(&archive), &Selection { picks, without_chats }).unwrap()
}

fn tables_of(closure: &Closure) -> Value {
    Value::Object(closure.tables().map(|(table, rows)| (table.to_string(), json!(rows))).collect())
}

/// The `(kind, id)` of every item a closure holds.
fn items_of(closure: &Closure) -> BTreeSet<(String, String)> {
    ITEM_TABLES
        .iter()
        .flat_map(|(kind, table)| closure.ids(table).map(|id| (kind.to_string(), id.to_string())))
        .collect()
}

/// An archive table's rows.
fn archive_rows(bytes: &[u8], table: &str) -> Vec<Value> {
    entries(bytes).get(&format!("database/{table}.ndjson")).map(|data| ndjson(data)).unwrap_or_default()
}

/// A message's text as the account has it.
fn content(server: &TestServer, message: &str) -> Value {
    server.rows_where("messages", "id", message)[0]["content"].clone()
}

/// Picks the archive, waits for its report, and opens the explorer.
async fn explore(browser: &Browser, archive: &Path) {
    pick_archive(browser, archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    open_explorer(browser).await;
}

/// Waits until the import card says what the picks send; `{tables, words}`. A refusal of
/// the picks fails the test with the page's words.
async fn selection_sent(browser: &Browser) -> Value {
    let answer = browser
        .wait_script(
            "const s = document.getElementById('import-selection'); \
             if (!s.hidden && s.dataset.tables) return {tables: JSON.parse(s.dataset.tables), words: s.textContent, \
               upload: !document.getElementById('import-start').disabled, \
               restore: !document.getElementById('restore-selected').disabled}; \
             return s.textContent.startsWith('The picked items cannot') ? {refused: s.textContent} : null",
        )
        .await;
    assert!(answer["refused"].is_null(), "{}", answer["refused"]);
    answer
}

/// Clicks the explorer's "Restore selected" and waits for the import to end; fails unless
/// it completed.
async fn restore_selected(browser: &Browser) {
    browser.wait_script("return !document.getElementById('restore-selected').disabled || null").await;
    browser.click("restore-selected").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
}

/// Whether the page scrolls sideways on a phone's screen (360 CSS pixels); the window gets
/// its size back after. `(scroll width, window width)`.
async fn width_on_a_phone(browser: &Browser, show: &str, shot: &str) -> (u64, u64) {
    let metrics = json!({"width": 360, "height": 780, "deviceScaleFactor": 1, "mobile": true});
    browser
        .call("POST", "goog/cdp/execute", json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics}))
        .await;
    browser.script(&format!("document.getElementById('{show}').scrollIntoView()")).await;
    let widths = browser.script("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    browser.screenshot(shot).await;
    browser
        .call("POST", "goog/cdp/execute", json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}}))
        .await;
    (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap())
}

async fn a_character_ticked_in_the_explorer_is_previewed_and_restored_alone(backend: Backend) {
    let since = backup_then_changes(backend, "browser-selective").await;
    let Since { server, ada, backup, archive, at_backup, character, deleted_chats, message, .. } = &since;
    let before = snapshot(server, ada);
    let picked = closure_of(backup, vec![Pick { kind: ItemKind::Character, id: character.clone() }], false);
    let deleted_messages: BTreeSet<String> = archive_rows(backup, "messages")
        .iter()
        .filter(|row| deleted_chats.contains(row["chat_id"].as_str().unwrap()))
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!deleted_messages.is_empty());

    let downloads = ScratchDir::new("browser-selective-downloads");
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &ada.user.username, &ada.password).await;
    explore(&browser, archive).await;
    let nothing = browser.text("picks-count").await;
    assert!(nothing.starts_with("Nothing picked: a restore brings back the whole archive."), "{nothing}");
    assert_eq!(browser.script("return document.getElementById('restore-selected').disabled").await, true);

    // One box ticked: the Worker works out what it needs, the card says what goes (the same
    // rows lvbak-core's closure names), and the explorer counts the pick.
    browser.click(&format!("pick-character-{character}")).await;
    let sent = selection_sent(&browser).await;
    assert_eq!(sent["tables"], tables_of(&picked), "the Worker's closure is lvbak-core's");
    let words = sent["words"].as_str().unwrap();
    let chats = match deleted_chats.len() {
        1 => "1 chat".to_string(),
        n => format!("{n} chats"),
    };
    let expected = format!("Restores only 1 character, {chats}, {} messages", deleted_messages.len());
    assert!(words.starts_with(&expected), "{words}");
    assert!(words.contains("no API keys"), "{words}");
    assert_eq!((&sent["upload"], &sent["restore"]), (&json!(true), &json!(true)), "{sent}");
    assert_eq!(browser.text("picks-count").await, "1 item picked: 1 character.");
    assert_eq!(browser.text("import-start").await, "Upload & import selected");
    let (scroll, inner) = width_on_a_phone(&browser, "picks-bar", "phone-picks-bar.png").await;
    assert!(inner == 360 && scroll <= inner, "the picks bar is {scroll} px wide on a {inner} px screen");

    // The preview is of the picked set alone: that character and its chats are new, every
    // other item it lists is one the character needs and the account has unchanged.
    let preview = preview_in_page(&browser).await;
    let listed: BTreeSet<(String, String)> = preview["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["kind"].as_str().unwrap().to_string(), item["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(listed, items_of(&picked), "the preview lists the picked set's items: {preview}");
    let mut new: BTreeSet<String> = deleted_chats.clone();
    new.insert(character.clone());
    for item in preview["items"].as_array().unwrap() {
        let expected = if new.contains(item["id"].as_str().unwrap()) { "new" } else { "unchanged" };
        assert_eq!(item["state"], expected, "{item}");
    }
    let tables = &preview["tables"];
    assert_eq!(tables["characters"]["new"], 1, "{tables}");
    assert_eq!(tables["chats"]["new"], deleted_chats.len(), "{tables}");
    assert_eq!(tables["messages"]["new"], deleted_messages.len(), "{tables}");
    for (table, states) in tables.as_object().unwrap() {
        for state in ["differs", "remapped", "refused"] {
            assert_eq!(states[state], 0, "{table}: {states}");
        }
        let rows: u64 = states.as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
        assert_eq!(rows as usize, picked.count(table), "{table}: only the closure's rows are previewed");
    }
    assert_eq!(snapshot(server, ada), before, "the preview wrote something");

    // Restore selected: the character, its chats and their messages are back, and nothing
    // else changed (every row the account had is as it was; each row added is the closure's;
    // every table holds what it held at the backup).
    restore_selected(&browser).await;
    let after = snapshot(server, ada);
    let added = added_rows(&before, &after);
    for (table, row) in &added {
        // (Rows of tables keyed by more than one column are counted below.)
        if let Some(key) = Closure::key_column(table).and_then(|column| row[column].as_str()) {
            assert!(picked.contains(table, key), "{table}: {row} is not the picked character's");
        }
    }
    let ids = |table: &str| -> BTreeSet<String> {
        added.iter().filter(|(t, _)| *t == table).map(|(_, row)| row["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("characters"), BTreeSet::from([character.clone()]));
    assert_eq!(ids("chats"), *deleted_chats);
    assert_eq!(ids("messages"), deleted_messages);
    assert_eq!(counts(&after), counts(at_backup), "every table holds what it held at the backup");
    assert_eq!(content(server, message), "edited since", "the edited message is kept as the account has it");
    let summary = browser.summary_row("characters").await;
    assert_eq!(summary, [1, 0, 0, 0], "one character imported");

    // Picking the archive again starts over: nothing picked, the whole archive again.
    explore(&browser, archive).await;
    let nothing = browser.text("picks-count").await;
    assert!(nothing.starts_with("Nothing picked: a restore brings back the whole archive."), "{nothing}");
    let cleared = "const box = document.querySelector(`[data-testid=\"pick-character-${arguments[0]}\"]`); \
        return {checked: box.checked, told: document.getElementById('import-selection').hidden, \
          start: document.getElementById('import-start').textContent}";
    let cleared = browser.call("POST", "execute/sync", json!({"script": cleared, "args": [character]})).await;
    assert_eq!(cleared, json!({"checked": false, "told": true, "start": "Upload & import"}));
}

async fn a_chat_restored_as_a_copy_sits_beside_todays_once(backend: Backend) {
    let since = backup_then_changes(backend, "browser-copy").await;
    let Since { server, ada, backup, archive, chat, message, original, .. } = &since;
    let before = snapshot(server, ada);
    let today = |server: &TestServer| {
        let chat_row = server.text_rows("SELECT name, character_id FROM chats WHERE id = ?1", &[chat]);
        let in_chat = "SELECT content FROM messages WHERE chat_id = ?1 ORDER BY index_in_chat, content";
        (chat_row, server.texts(in_chat, &[chat]))
    };
    let todays = today(server);
    let manifest = Archive::open(Cursor::new(backup.as_slice()), Limits::STANDARD).unwrap().manifest().clone();
    let day = UtcTime::from_unix(manifest.exported_at.unwrap());
    let archived_chat = archive_rows(backup, "chats").into_iter().find(|row| row["id"] == chat.as_str()).unwrap();
    let dated = |name: &str| format!("{name} (backup {:04}-{:02}-{:02})", day.year, day.month, day.day);
    let copy_name = dated(archived_chat["name"].as_str().unwrap());
    // What a copy copies: the chat, the chats branched from it, their messages and parts
    // (lvbak-core's belongings); what they only need (the character) is the account's.
    let picked = Selection { picks: vec![Pick { kind: ItemKind::Chat, id: chat.clone() }], without_chats: false };
    let opened = Archive::open(Cursor::new(backup.as_slice()), Limits::STANDARD).unwrap();
    let own = belongings(&mut ArchiveRows::new(&opened), &picked).unwrap();
    let own_rows: BTreeMap<&str, usize> =
        TABLES.iter().map(|spec| (spec.name, own.count(spec.name))).filter(|(_, rows)| *rows > 0).collect();
    let copy_names: BTreeSet<String> = archive_rows(backup, "chats")
        .iter()
        .filter(|row| own.contains("chats", row["id"].as_str().unwrap()))
        .map(|row| dated(row["name"].as_str().unwrap()))
        .collect();
    assert!(copy_names.contains(&copy_name), "{copy_names:?}");
    let mut archived: Vec<(i64, String)> = archive_rows(backup, "messages")
        .into_iter()
        .filter(|row| row["chat_id"] == chat.as_str())
        .map(|row| (row["index_in_chat"].as_i64().unwrap(), row["content"].as_str().unwrap().to_string()))
        .collect();
    archived.sort();
    let archived: Vec<String> = archived.into_iter().map(|(_, text)| text).collect();
    assert!(archived.contains(original), "the backup has the message as it was");

    let downloads = ScratchDir::new("browser-copy-downloads");
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &ada.user.username, &ada.password).await;
    explore(&browser, archive).await;
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    browser.click(&format!("pick-chat-{chat}")).await;
    browser.click("picks-as-copy").await;
    let sent = selection_sent(&browser).await;
    let words = sent["words"].as_str().unwrap();
    assert!(words.contains("as a copy beside your account's version"), "{words}");
    // Previewed, the copies are new (under their own ids, with the backup's date in their
    // names) and what they need is the account's, unchanged; nothing is written.
    let preview = preview_in_page(&browser).await;
    let states = |kind: &str, state: &str| -> BTreeSet<String> {
        let items = preview["items"].as_array().unwrap().iter();
        items
            .filter(|i| i["kind"] == kind && i["state"] == state)
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(states("chat", "new"), copy_names, "{preview}");
    let kinds: BTreeSet<&str> =
        preview["items"].as_array().unwrap().iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["new", "unchanged"]), "{preview}");
    assert_eq!(preview["tables"]["messages"]["new"], own.count("messages"), "{}", preview["tables"]);
    assert_eq!(snapshot(server, ada), before, "the preview wrote something");
    restore_selected(&browser).await;

    // A new chat beside today's (and a copy of each chat branched from it): the backup's name
    // with its date, the backup's messages (the edited one as it was), linked to the
    // account's character; today's chat as it was, nothing else added.
    let copies = |server: &TestServer| {
        server.texts("SELECT id FROM chats WHERE user_id = ?1 AND name = ?2", &[&ada.user.id, &copy_name])
    };
    let copy = copies(server);
    assert_eq!(copy.len(), 1, "one copy named {copy_name:?}");
    let copy = &copy[0];
    assert_ne!(copy, chat);
    let in_chat = "SELECT content FROM messages WHERE chat_id = ?1 ORDER BY index_in_chat, content";
    assert_eq!(server.texts(in_chat, &[copy]), archived, "the copy holds the backup's messages");
    let character_of = |chat: &str| server.texts("SELECT character_id FROM chats WHERE id = ?1", &[chat]);
    assert_eq!(character_of(copy), character_of(chat), "linked to the same character");
    assert_eq!(today(server), todays, "today's chat is unchanged");
    assert_eq!(content(server, message), "edited since");
    let after = snapshot(server, ada);
    let added = added_rows(&before, &after);
    let names: BTreeSet<String> =
        added.iter().filter(|(t, _)| *t == "chats").map(|(_, row)| row["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, copy_names, "the chats added are the dated copies");
    let mut added_per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for (table, _) in &added {
        *added_per_table.entry(table).or_default() += 1;
    }
    assert_eq!(added_per_table, own_rows, "a copy of the chat's belongings was added, and nothing else");
    assert!(!own_rows.contains_key("characters"), "the chat's character is the account's");

    // Again: the same copy is there already, no third chat.
    restore_selected(&browser).await;
    assert_eq!(copies(server).len(), 1);
    assert_eq!(snapshot(server, ada), after, "a second copy restore changed the account");
}

/// Waits for the one `.lvbak` the browser downloads into `dir`; its bytes.
async fn downloaded(dir: &Path) -> Vec<u8> {
    for _ in 0..300 {
        let done: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "lvbak"))
            .collect();
        if let Some(path) = done.into_iter().next() {
            return std::fs::read(path).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing was downloaded");
}

/// Shows the export card's list of `kind` (its first page) and waits for it; `{total, ids,
/// text}`.
async fn export_list(browser: &Browser, kind: &str) -> Value {
    let script = "const s = document.getElementById('export-kind'); \
        if (s.value !== arguments[0]) { s.value = arguments[0]; s.dispatchEvent(new Event('change')); }";
    browser.call("POST", "execute/sync", json!({"script": script, "args": [kind]})).await;
    export_page(browser, kind, 0).await
}

/// Waits until the export card shows the page of `kind` from `start`; `{total, ids, text}`.
async fn export_page(browser: &Browser, kind: &str, start: usize) -> Value {
    let listed = format!(
        "const list = document.getElementById('export-items'); \
         if (list.dataset.kind !== '{kind}' || list.dataset.start !== '{start}' || list.getAttribute('aria-busy')) return null; \
         return {{total: Number(list.dataset.total), text: list.textContent, \
           ids: [...list.querySelectorAll('input[data-testid^=\"export-pick-{kind}-\"]')] \
             .map(box => box.dataset.testid.slice('export-pick-{kind}-'.length))}}"
    );
    browser.wait_script(&listed).await
}

/// Whether the box with this test id is there and ticked.
async fn ticked(browser: &Browser, testid: &str) -> bool {
    let script = "const box = document.querySelector(`[data-testid=\"${arguments[0]}\"]`); return !!box && box.checked";
    browser.call("POST", "execute/sync", json!({"script": script, "args": [testid]})).await == true
}

fn strings(value: &Value) -> BTreeSet<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn ids_in(bytes: &[u8], table: &str) -> BTreeSet<String> {
    archive_rows(bytes, table).iter().map(|row| row["id"].as_str().unwrap().to_string()).collect()
}

async fn one_character_exported_from_the_list_and_another_account_takes_only_its_copy(backend: Backend) {
    assert!(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/lvbak-wasm_bg.wasm").exists(),
        "build the page first: trunk build --release"
    );
    let server = TestServer::start_on(backend, "browser-export-these").await;
    // More characters than a page of the export card's list (50) or of the explorer's (100).
    let seed = SeedOptions { bulk_characters: 120, ..SeedOptions::default() };
    let ada = server.account("ada", Some(seed)).await;
    let mal = server.account("mallory", None).await;
    let files = ScratchDir::new("browser-export-these-files");
    let backup = ok_bytes(server.get(&ada, "/api/v1/user-data/export?includeVectors=1").send().await.unwrap()).await;
    let archive = write(&files.path, "ada.lvbak", &backup);
    let characters: BTreeSet<String> =
        server.texts("SELECT id FROM characters WHERE user_id = ?1", &[&ada.user.id]).into_iter().collect();
    let with_chats = "SELECT id FROM characters WHERE user_id = ?1 AND id IN (SELECT character_id FROM chats) \
        ORDER BY name";
    let picked = server.texts(with_chats, &[&ada.user.id]).remove(0);
    let name = server.texts("SELECT name FROM characters WHERE id = ?1", &[&picked]).remove(0);
    let its_chats: BTreeSet<String> =
        server.texts("SELECT id FROM chats WHERE character_id = ?1", &[&picked]).into_iter().collect();
    let in_chat = "SELECT id FROM messages WHERE chat_id = ?1";
    let their_messages: BTreeSet<String> = its_chats.iter().flat_map(|chat| server.texts(in_chat, &[chat])).collect();
    assert!(!their_messages.is_empty());

    // Ada's own list, 50 a page; one character ticked, Export selected: the archive holds
    // it, its chats and their messages, and no API keys.
    let downloads = ScratchDir::new("browser-export-these-downloads");
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &ada.user.username, &ada.password).await;
    browser.click("export-some-open").await;
    let first = export_list(&browser, "character").await;
    assert_eq!(first["total"], characters.len(), "{first}");
    assert_eq!(first["ids"].as_array().unwrap().len(), 50, "{first}");
    assert!(strings(&first["ids"]).contains(&picked), "{first}");
    browser.click(&format!("export-pick-character-{picked}")).await;
    assert_eq!(browser.text("export-picked").await, "1 item picked: 1 character.");
    // Every page, then back to the first: all of Ada's characters listed once, the pick kept.
    let mut listed = strings(&first["ids"]);
    for start in (50..characters.len()).step_by(50) {
        browser.click("export-items-next").await;
        let page = export_page(&browser, "character", start).await;
        let ids = strings(&page["ids"]);
        assert!(listed.is_disjoint(&ids), "{page}");
        listed.extend(ids);
    }
    assert_eq!(listed, characters);
    browser.click("export-items-first").await;
    export_page(&browser, "character", 0).await;
    assert!(ticked(&browser, &format!("export-pick-character-{picked}")).await, "the pick was kept through the pages");
    // And while another kind is listed.
    let chats = export_list(&browser, "chat").await;
    assert!(chats["total"].as_u64().unwrap() > 0, "{chats}");
    export_list(&browser, "character").await;
    assert!(ticked(&browser, &format!("export-pick-character-{picked}")).await);
    assert_eq!(browser.text("export-picked").await, "1 item picked: 1 character.");
    let (scroll, inner) = width_on_a_phone(&browser, "export-some", "phone-export-these.png").await;
    assert!(inner == 360 && scroll <= inner, "the export list is {scroll} px wide on a {inner} px screen");
    browser.click("export-selected").await;
    let bytes = downloaded(&downloads.path).await;
    let opened = Archive::open(Cursor::new(bytes.as_slice()), Limits::STANDARD).unwrap();
    assert!(!opened.manifest().has_encrypted_secrets);
    assert_eq!(ids_in(&bytes, "characters"), BTreeSet::from([picked.clone()]));
    assert_eq!(ids_in(&bytes, "chats"), its_chats);
    assert_eq!(ids_in(&bytes, "messages"), their_messages);
    browser.wait_text("export-progress", |t| t == "Export complete.").await;

    // Mallory lists none of Ada's items.
    let ada_before = snapshot(&server, &ada);
    sign_in_as(&browser, &server, &mal).await;
    browser.click("export-some-open").await;
    for (kind, _) in ITEM_TABLES {
        let theirs = export_list(&browser, kind).await;
        assert_eq!(theirs["total"], 0, "{kind}: {theirs}");
        assert_eq!(theirs["ids"], json!([]), "{kind}: {theirs}");
        assert_eq!(theirs["text"], "None in your account.", "{kind}: {theirs}");
    }

    // She picks Ada's backup and ticks that character: she gets a copy of it and what it
    // needs (its closure over the backup, under ids of her own), nothing else; Ada's account
    // is as it was.
    let closure = closure_of(&backup, vec![Pick { kind: ItemKind::Character, id: picked.clone() }], false);
    explore(&browser, &archive).await;
    browser.click(&format!("pick-character-{picked}")).await;
    // The pick is kept through the explorer's pages (100 characters a page).
    let page = |start: usize| {
        format!("return document.getElementById('explore-characters').dataset.start === '{start}' || null")
    };
    browser.click("explore-characters-next").await;
    browser.wait_script(&page(100)).await;
    assert!(!ticked(&browser, &format!("pick-character-{picked}")).await, "the first page is still shown");
    browser.click("explore-characters-first").await;
    browser.wait_script(&page(0)).await;
    assert!(ticked(&browser, &format!("pick-character-{picked}")).await, "the pick was kept through the pages");
    assert_eq!(browser.text("picks-count").await, "1 item picked: 1 character.");
    let sent = selection_sent(&browser).await;
    assert_eq!(sent["tables"], tables_of(&closure));
    restore_selected(&browser).await;
    let theirs = snapshot(&server, &mal);
    let expected: BTreeMap<&'static str, usize> =
        TABLES.iter().map(|spec| (spec.name, closure.count(spec.name))).filter(|(_, n)| *n > 0).collect();
    assert_eq!(counts(&theirs), expected, "Mallory's account holds the character's closure and nothing else");
    assert_eq!(snapshot(&server, &ada), ada_before, "Ada's account changed");
    let listed = export_list(&browser, "character").await;
    let ids = strings(&listed["ids"]);
    assert_eq!(ids.len(), 1, "{listed}");
    assert!(ids.is_disjoint(&characters), "Mallory's copy has an id of Ada's: {listed}");
    assert!(listed["text"].as_str().unwrap().contains(&name), "{listed}");
}
