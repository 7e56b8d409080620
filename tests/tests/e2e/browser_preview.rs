//! The restore preview in the page (issue 23), in headless Chromium against a real server:
//! an account's backup previewed after a character was deleted and a message edited since
//! (those come back as new, that chat differs, the rest unchanged), the same answer as the
//! command line's `lvbak import --dry-run --json` (`preview_archive`), nothing written; a
//! second account's preview of the same backup (what the first still has as copies, no name
//! beyond the archive's, nothing written to either account); the upload after a preview
//! restoring what was deleted; and a preview with the API keys' ticket, which leaves the
//! keys to the upload.

use std::collections::BTreeSet;
use std::io::Cursor;

use lvbak_core::{inspect, Archive, InspectOptions, Limits};
use lvbak_tests::fixtures;
use serde_json::{json, Value};

use crate::batch_preview::command_line_preview;
use crate::browser::{pick_archive, write};
use crate::export::{entries, ndjson, owned_rows};
use crate::page_restore::{backup_then_changes, preview_in_page, sign_in_as, Since, ITEM_TABLES};
use crate::support::{on_each_backend, Account, Backend, ScratchDir, TestServer};

// Every test here runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    a_restore_preview_in_the_page_says_what_a_restore_would_do_and_writes_nothing,
    a_preview_keeps_the_ticket_question_and_the_api_keys_for_the_upload,
);
use crate::webdriver::Browser;

/// What an account holds that a preview must leave alone: its characters, chats and
/// messages, the bytes its quota counts; and the instance's import jobs and id map.
fn footprint(server: &TestServer, account: &Account) -> Value {
    let count = |table: &str| owned_rows(server, table, &account.user.id).len();
    let instance = |table: &str| server.integer(&format!("SELECT count(*) FROM {table}"), &[]);
    json!({
        "characters": count("characters"),
        "chats": count("chats"),
        "messages": count("messages"),
        "usage": server.rows_where("lvbak_usage", "user_id", &account.user.id),
        "jobs": instance("lvbak_import_jobs"),
        "idMap": instance("lvbak_id_map"),
    })
}

/// The archive's items, as `(kind, id, name)`, read from its tables.
fn archive_items(bytes: &[u8]) -> BTreeSet<(String, String, String)> {
    let entries = entries(bytes);
    let mut items = BTreeSet::new();
    for (kind, table) in ITEM_TABLES {
        let Some(data) = entries.get(&format!("database/{table}.ndjson")) else { continue };
        for row in ndjson(data) {
            let field = |name: &str| row[name].as_str().unwrap_or_default().to_string();
            items.insert((kind.to_string(), field("id"), field("name")));
        }
    }
    items
}

/// How many files the archive holds (every entry outside its tables and metadata).
fn archive_files(bytes: &[u8]) -> u64 {
    let mut archive = Archive::open(Cursor::new(bytes), Limits::STANDARD).unwrap();
    let inspection = inspect(&mut archive, InspectOptions { count_rows: false }).unwrap();
    inspection.files.values().map(|files| files.count).sum()
}

/// A preview's items, as `(kind, id, name)`.
fn preview_items(preview: &Value) -> BTreeSet<(String, String, String)> {
    let field = |item: &Value, name: &str| item[name].as_str().unwrap().to_string();
    preview["items"].as_array().unwrap().iter().map(|i| (field(i, "kind"), field(i, "id"), field(i, "name"))).collect()
}

/// What the page shows: the section, its summary line, the groups and the items' words.
async fn shown(browser: &Browser) -> Value {
    browser
        .script(
            "const section = document.querySelector('[data-testid=\"restore-preview\"]'); \
             const group = (state) => { const g = section.querySelector(`[data-testid=\"preview-items-${state}\"]`); \
               return g ? {tag: g.tagName, open: !!g.open, items: [...g.querySelectorAll('[data-testid=\"preview-item\"]')] \
                 .map(li => ({id: li.dataset.id, kind: li.dataset.kind, text: li.textContent}))} : null; }; \
             return {hidden: section.hidden, summary: document.getElementById('restore-preview-summary').textContent, \
               tables: [...section.querySelectorAll('[data-testid^=\"preview-table-\"]')].map(r => r.dataset.testid), \
               files: (section.querySelector('[data-testid=\"preview-files\"]') || {}).textContent, \
               new: group('new'), differs: group('differs'), remapped: group('remapped'), refused: group('refused'), \
               unchanged: group('unchanged'), picker: document.getElementById('import-file').disabled, \
               upload: document.getElementById('import-start').disabled, status: document.getElementById('import-status').textContent}",
        )
        .await
}

/// The ids of the items the page lists in one state's group.
fn listed(page: &Value, state: &str) -> BTreeSet<String> {
    page[state]["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
}

/// Whether the page scrolls sideways at a phone's width (360 CSS pixels) with the preview
/// shown and everything in it unfolded; the window is given back its size after.
async fn preview_fits_a_phone(browser: &Browser) -> (u64, u64) {
    let metrics = json!({"width": 360, "height": 780, "deviceScaleFactor": 1, "mobile": true});
    browser
        .call("POST", "goog/cdp/execute", json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics}))
        .await;
    browser.script("document.querySelectorAll('#restore-preview details').forEach(d => d.open = true)").await;
    browser.script("document.querySelector('[data-testid=\"preview-items-new\"]').scrollIntoView()").await;
    let widths = browser.script("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    browser.screenshot("phone-restore-preview.png").await;
    browser.script("document.querySelectorAll('#restore-preview details').forEach(d => d.open = false)").await;
    browser
        .call("POST", "goog/cdp/execute", json!({"cmd": "Emulation.clearDeviceMetricsOverride", "params": {}}))
        .await;
    (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap())
}

async fn a_restore_preview_in_the_page_says_what_a_restore_would_do_and_writes_nothing(backend: Backend) {
    // Since the backup: a character with chats deleted (its chats and their messages with
    // it, as Lumiverse deletes) and a message of a chat of another character edited.
    let since = backup_then_changes(backend, "browser-preview").await;
    // The fields left in `since` (the archive's folder) live until the test ends.
    let Since { server, ada, backup, archive, character, chat, message, deleted_chats, .. } = since;
    let mal = server.account("mal", None).await;
    for chat in &deleted_chats {
        assert!(server.rows_where("chats", "id", chat).is_empty(), "{chat} went with its character");
    }
    let content = || server.rows_where("messages", "id", &message)[0]["content"].clone();
    assert_eq!(content(), "edited since");
    let ada_before = footprint(&server, &ada);
    let mal_before = footprint(&server, &mal);

    let downloads = ScratchDir::new("browser-preview-downloads");
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &ada.user.username, &ada.password).await;
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let before_preview = server.state.import_requests();
    let preview = preview_in_page(&browser).await;
    assert!(server.state.import_requests() > before_preview, "the preview went to the server");
    browser.script("document.getElementById('restore-preview').scrollIntoView()").await;
    browser.screenshot("restore-preview.png").await;

    // The deleted character and its chats would come back; the edited chat differs by one
    // message (the account's is kept); everything else is as the backup has it.
    let items = preview["items"].as_array().unwrap();
    assert_eq!(preview_items(&preview), archive_items(&backup), "the preview's items are the archive's");
    for item in items {
        let id = item["id"].as_str().unwrap();
        let expected = if id == character || deleted_chats.contains(id) {
            "new"
        } else if id == chat {
            "differs"
        } else {
            "unchanged"
        };
        assert_eq!(item["state"], expected, "{item}");
    }
    let edited = items.iter().find(|item| item["id"] == chat.as_str()).unwrap();
    let tally = &edited["differs"]["messages"];
    assert_eq!((&tally["edited"], &tally["missing"]), (&json!(1), &json!(0)), "{edited}");
    assert_eq!(tally["account"], tally["archive"], "{edited}");
    assert_eq!(preview["tables"]["characters"]["new"], 1, "{}", preview["tables"]);
    assert_eq!(preview["tables"]["chats"]["new"], deleted_chats.len(), "{}", preview["tables"]);
    assert_eq!(preview["tables"]["messages"]["differs"], 1, "{}", preview["tables"]);
    // The command line's preview of the same archive for the same account says the same.
    assert_eq!(preview, command_line_preview(&server, &ada, &backup), "the page's preview is not the command line's");
    // Nothing was written: the same rows, the same message, no job.
    assert_eq!(footprint(&server, &ada), ada_before, "the preview wrote something");
    assert_eq!(content(), "edited since");

    // The page: a summary line, the tables with rows, the items by state (the unchanged
    // folded), the card back where it was.
    let page = shown(&browser).await;
    assert_eq!(page["hidden"], false, "{page}");
    let files = format!("Files: {} unchanged.", preview["files"]["unchanged"]);
    assert_eq!(preview["files"]["unchanged"], archive_files(&backup), "{}", preview["files"]);
    assert_eq!(page["files"], files.as_str(), "{page}");
    let summary = page["summary"].as_str().unwrap();
    assert!(summary.starts_with("A restore would add ") && summary.ends_with("Nothing was written."), "{summary}");
    let differing: u64 = preview["tables"].as_object().unwrap().values().map(|c| c["differs"].as_u64().unwrap()).sum();
    let differ = match differing {
        1 => "leave 1 that differs as your account has it".to_string(),
        n => format!("leave {n} that differ as your account has them"),
    };
    assert!(summary.contains(&differ), "{summary}");
    let tables: Vec<&str> = page["tables"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(tables.contains(&"preview-table-characters") && tables.contains(&"preview-table-messages"), "{tables:?}");
    let with_rows =
        preview["tables"].as_object().unwrap().values().filter(|c| c.as_object().unwrap().values().any(|n| n != 0));
    assert_eq!(tables.len(), with_rows.count(), "only tables with rows are listed: {tables:?}");
    let mut new = deleted_chats.clone();
    new.insert(character.clone());
    assert_eq!(listed(&page, "new"), new, "{page}");
    assert_eq!(listed(&page, "differs"), BTreeSet::from([chat.clone()]), "{page}");
    let differs = page["differs"]["items"][0]["text"].as_str().unwrap();
    assert!(differs.contains("1 message edited since, 0 missing; your account has "), "{differs}");
    assert_eq!(page["remapped"], Value::Null, "{page}");
    assert_eq!((&page["unchanged"]["tag"], &page["unchanged"]["open"]), (&json!("DETAILS"), &json!(false)), "{page}");
    assert_eq!(page["unchanged"]["items"].as_array().unwrap().len(), items.len() - new.len() - 1);
    assert_eq!((&page["picker"], &page["upload"], &page["status"]), (&json!(false), &json!(false), &json!("idle")));
    let (scroll, inner) = preview_fits_a_phone(&browser).await;
    assert!(inner == 360 && scroll <= inner, "the preview is {scroll} px wide on a {inner} px screen");

    // Another account previews ada's backup: every item ada still has would be a copy under
    // a new id (its id is hers), what she deleted since is no one's and would come in under
    // its own id; the items are the archive's and nothing of ada's account (her edit, her
    // id, her rows) shows; nothing is written to either account.
    sign_in_as(&browser, &server, &mal).await;
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let theirs = preview_in_page(&browser).await;
    assert_eq!(preview_items(&theirs), archive_items(&backup), "mal's preview names only the archive's items");
    for item in theirs["items"].as_array().unwrap() {
        let expected = if new.contains(item["id"].as_str().unwrap()) { "new" } else { "remapped" };
        assert_eq!(item["state"], expected, "{item}");
    }
    // mal has no rows and no files: none can be as the archive has it, or another version.
    let mut matched: Vec<String> = theirs["tables"]
        .as_object()
        .unwrap()
        .iter()
        .chain([(&"files".to_string(), &theirs["files"])])
        .filter(|(_, counts)| counts["unchanged"] != 0 || counts["differs"] != 0)
        .map(|(table, counts)| format!("{table}: {counts}"))
        .collect();
    let said = theirs.to_string();
    assert!(
        !said.contains("edited since") && !said.contains(&ada.user.id),
        "mal's preview shows ada's account: {said}"
    );
    assert_eq!(theirs, command_line_preview(&server, &mal, &backup), "the page's preview is not the command line's");
    assert_eq!(footprint(&server, &mal), mal_before, "mal's preview wrote something");
    assert_eq!(footprint(&server, &ada), ada_before, "mal's preview wrote to ada's account");
    let page = shown(&browser).await;
    assert_eq!(listed(&page, "new"), new, "{page}");
    let copies = page["remapped"]["items"].as_array().unwrap().len();
    assert_eq!(copies, theirs["items"].as_array().unwrap().len() - new.len(), "{page}");
    assert_eq!((&page["differs"], &page["unchanged"]), (&Value::Null, &Value::Null), "{page}");

    // Back as ada: a preview, then Upload & import, which restores what was deleted (and
    // keeps her edited message); the preview is gone once the upload starts.
    sign_in_as(&browser, &server, &ada).await;
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    assert_eq!(preview_in_page(&browser).await, preview, "the same question, the same answer");
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
    assert_eq!(shown(&browser).await["hidden"], true, "the preview is cleared once the upload starts");
    let characters: BTreeSet<String> = owned_rows(&server, "characters", &ada.user.id)
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_string())
        .collect();
    assert!(characters.contains(&character), "the deleted character is back");
    let chats: BTreeSet<String> =
        owned_rows(&server, "chats", &ada.user.id).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert!(deleted_chats.is_subset(&chats), "its chats are back");
    assert_eq!(content(), "edited since", "a restore keeps the account's version of a message");
    let after = footprint(&server, &ada);
    assert_eq!(after["characters"], ada_before["characters"].as_u64().unwrap() + 1);
    assert_eq!(after["jobs"], ada_before["jobs"].as_u64().unwrap() + 1, "the upload is the one job");

    // Ada's job is hers: another account cannot read it.
    let jobs = server.rows_where("lvbak_import_jobs", "user_id", &ada.user.id);
    let job = jobs[0]["id"].as_str().unwrap();
    for path in ["status", "held-rows", "held-files"] {
        let answer = server.get(&mal, &format!("/api/v1/user-data/import/{job}/{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 404, "mal reads ada's job's {path}");
    }
    // Checked last, so that the rest runs whatever it says: rows of mal's preview that
    // matched rows that are not mal's.
    matched.sort();
    assert!(matched.is_empty(), "mal's preview compared the archive with rows of another account: {matched:?}");
}

/// A preview and the API keys' ticket: one asked for before the ticket comes back to the
/// question (Upload still waits for it); one asked for after the ticket sends no key and
/// uses no ticket, and the upload after it still restores every key (the Worker's upload
/// takes the decrypted keys with it, so a preview leaves them out and decrypts them again).
async fn a_preview_keeps_the_ticket_question_and_the_api_keys_for_the_upload(backend: Backend) {
    let server = TestServer::start_on(backend, "browser-preview-ticket").await;
    let account = server.account("ticket-previewer", None).await;
    let files = ScratchDir::new("browser-preview-ticket-files");
    let archive = write(&files.path, "secrets.lvbak", fixtures::SECRETS);
    let ticket = write(&files.path, "secrets.ticket.json", fixtures::SECRETS_TICKET);
    let downloads = ScratchDir::new("browser-preview-ticket-downloads");
    let browser = Browser::start(&downloads.path).await;
    browser.sign_in(&server.url("/"), &account.user.username, &account.password).await;
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;

    let asked = "const $ = (id) => document.getElementById(id); \
        return {question: !$('ticket-box').hidden, ticket: !$('ticket-file').disabled, upload: !$('import-start').disabled}";
    let before = preview_in_page(&browser).await;
    let states: BTreeSet<&str> =
        before["items"].as_array().unwrap().iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(states, BTreeSet::from(["new"]), "an empty account has none of them: {before}");
    assert_eq!(browser.script(asked).await, json!({"question": true, "ticket": true, "upload": false}));

    browser.pick("ticket-file", &ticket).await;
    let state = "return document.getElementById('ticket-state').textContent.startsWith('Ticket accepted') || null";
    browser.wait_script(state).await;
    assert_eq!(preview_in_page(&browser).await, before, "the ticket changes nothing a preview says");
    assert!(server.secrets_of(&account.user.id).is_empty(), "a preview stored a key");
    assert_eq!(browser.script(asked).await, json!({"question": true, "ticket": true, "upload": true}));

    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
    crate::import::assert_fixture_secrets_stored(&server, &account);
    let reused = browser.script("return document.getElementById('ticket-reused').hidden").await;
    assert_eq!(reused, true, "the preview used the ticket");
}
