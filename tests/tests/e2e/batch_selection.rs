//! A selective restore through the browser's batch path, driven natively with the same
//! lvbak-core code the Worker runs: the client computes the picks' closure over the
//! archive and sends only that; the server, which declares nothing on the client's word,
//! checks at the end that what the import added is the declared picks' closure. A client
//! that sends more than it declared, or declares a pick it never sends, fails with
//! `open_selection` and nothing of its import is kept.

use std::io::Cursor;

use lvbak_core::closure::{belongings, closure, ArchiveRows, CopyPlan, ItemKind, Pick, Selection};
use lvbak_core::upload::{file_claims_as, UploadPlan};
use lvbak_core::{Archive, Limits};
use serde_json::{json, Value};

use crate::batches::{held_of, held_rows_of, send_and_commit};
use crate::export::export;
use crate::support::{on_each_backend, small_seed, status_json, Account, Backend, TestServer};

// Each test runs on SQLite (`name::sqlite`) and on PostgreSQL (`name::postgres`).
on_each_backend!(
    a_deleted_character_comes_back_alone_and_a_lying_client_keeps_nothing,
    a_chat_restored_as_a_copy_sits_beside_todays_and_a_second_run_adds_nothing,
);

/// Restores `archive` through batches declaring `declared` (`KIND:ID` picks), sending the
/// closure of `sent` (everything when `None`); the commit's status and answer code.
async fn selective_restore(
    server: &TestServer,
    account: &Account,
    archive: &[u8],
    declared: &[String],
    sent: Option<&Selection>,
) -> (u16, Value) {
    restore_picked(server, account, archive, declared, sent, false).await
}

/// [`selective_restore`], `as_copy` or not (as the Worker does: the copy's ids derived for
/// the importer, files claimed under their copies' names).
async fn restore_picked(
    server: &TestServer,
    account: &Account,
    archive: &[u8],
    declared: &[String],
    sent: Option<&Selection>,
    as_copy: bool,
) -> (u16, Value) {
    let opened = Archive::open(Cursor::new(archive.to_vec()), Limits::STANDARD).unwrap();
    let copy = sent.filter(|_| as_copy).map(|selection| {
        let own = belongings(&mut ArchiveRows::new(&opened), selection).unwrap();
        let manifest = opened.manifest();
        CopyPlan::new(&own, &account.user.id, &manifest.archive_id, manifest.exported_at)
    });
    let body = json!({
        "manifest": opened.manifest(),
        "files": file_claims_as(&opened, copy.as_ref()),
        "selection": {"picks": declared, "asCopy": as_copy},
    });
    let answer = server.post(account, "/api/v1/user-data/import/batches").json(&body).send().await.unwrap();
    let (code, opened_job) = status_json(answer).await;
    if code != 201 {
        return (code, opened_job);
    }
    let job = opened_job["jobId"].as_str().unwrap().to_string();
    let held_rows = held_rows_of(server, account, &job).await;
    let only = sent.map(|selection| closure(&mut ArchiveRows::new(&opened), selection).unwrap());
    let plan = UploadPlan {
        start_batch: 0,
        secrets: None,
        held_files: held_of(&opened_job),
        held_rows: held_rows.tables,
        fresh_tables: held_rows.fresh,
        only,
        copy,
    };
    send_and_commit(server, account, &job, opened, plan).await.1
}

/// Every row count of the tables a restore may touch, for one account.
fn counts(server: &TestServer, account: &Account) -> Vec<(String, i64)> {
    [
        ("characters", "SELECT count(*) FROM characters WHERE user_id = ?1"),
        ("chats", "SELECT count(*) FROM chats WHERE user_id = ?1"),
        ("messages", "SELECT count(*) FROM messages WHERE chat_id IN (SELECT id FROM chats WHERE user_id = ?1)"),
        ("world_books", "SELECT count(*) FROM world_books WHERE user_id = ?1"),
        ("personas", "SELECT count(*) FROM personas WHERE user_id = ?1"),
        ("presets", "SELECT count(*) FROM presets WHERE user_id = ?1"),
        ("images", "SELECT count(*) FROM images WHERE user_id = ?1"),
    ]
    .iter()
    .map(|(name, sql)| (name.to_string(), server.integer(sql, &[&account.user.id])))
    .collect()
}

async fn a_deleted_character_comes_back_alone_and_a_lying_client_keeps_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-selection").await;
    let ada = server.account("select-ada", Some(small_seed())).await;
    let mal = server.account("select-mal", None).await;
    let backup = export(&server, &ada, true).await;
    let full = counts(&server, &ada);

    // Ada deletes a character with its chats, then takes back just that character.
    let first_chat = "SELECT character_id FROM chats WHERE user_id = ?1 ORDER BY id LIMIT 1";
    let gone = server.texts(first_chat, &[&ada.user.id]).remove(0);
    server.execute("DELETE FROM messages WHERE chat_id IN (SELECT id FROM chats WHERE character_id = ?1)", &[&gone]);
    assert!(server.execute("DELETE FROM chats WHERE character_id = ?1", &[&gone]) > 0);
    assert_eq!(server.execute("DELETE FROM characters WHERE id = ?1", &[&gone]), 1);
    let pick = Selection { picks: vec![Pick { kind: ItemKind::Character, id: gone.clone() }], without_chats: false };
    let declared = vec![format!("character:{gone}")];
    let (code, status) = selective_restore(&server, &ada, &backup, &declared, Some(&pick)).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["status"], "complete", "{status}");
    assert_eq!(counts(&server, &ada), full, "the character, its chats and messages are back, nothing else changed");
    assert_eq!(status["summary"]["characters"]["imported"], 1, "{status}");

    // Mallory declares one character but sends the whole archive: nothing is kept.
    let before = (counts(&server, &mal), counts(&server, &ada));
    let (code, failed) = selective_restore(&server, &mal, &backup, &declared, None).await;
    assert_eq!((code, failed["code"].as_str()), (409, Some("open_selection")), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("the picks do not hold"), "{failed}");
    assert_eq!((counts(&server, &mal), counts(&server, &ada)), before);

    // Declares a pick it never sends (and sends another's closure): nothing is kept.
    let another = "SELECT id FROM characters WHERE user_id = ?1 AND id != ?2 LIMIT 1";
    let other = server.texts(another, &[&ada.user.id, &gone]).remove(0);
    let sent = Selection { picks: vec![Pick { kind: ItemKind::Character, id: other }], without_chats: false };
    let (code, failed) = selective_restore(&server, &mal, &backup, &declared, Some(&sent)).await;
    assert_eq!((code, failed["code"].as_str()), (409, Some("open_selection")), "{failed}");
    assert_eq!((counts(&server, &mal), counts(&server, &ada)), before);

    // Its picks must be KIND:ID.
    let (code, refused) = selective_restore(&server, &mal, &backup, &["planet:x".to_string()], None).await;
    assert_eq!((code, refused["code"].as_str()), (400, Some("bad_pick")), "{refused}");

    // Honest, Mallory gets a copy of the picked character alone (its ids are Ada's).
    let (code, status) = selective_restore(&server, &mal, &backup, &declared, Some(&pick)).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "{status}");
    let theirs = counts(&server, &mal);
    assert_eq!(theirs[0], ("characters".to_string(), 1), "{theirs:?}");
    assert_eq!(counts(&server, &ada), full, "Ada's account is untouched");
}

async fn a_chat_restored_as_a_copy_sits_beside_todays_and_a_second_run_adds_nothing(backend: Backend) {
    let server = TestServer::start_on(backend, "batch-selection-copy").await;
    let ada = server.account("copy-ada", Some(small_seed())).await;
    let backup = export(&server, &ada, true).await;
    let first = server.text_rows(
        "SELECT c.id, c.name, m.id, m.content FROM chats c JOIN messages m ON m.chat_id = c.id
         WHERE c.user_id = ?1 ORDER BY c.id, m.id LIMIT 1",
        &[&ada.user.id],
    );
    let [chat, name, message, text] = <[String; 4]>::try_from(first.into_iter().next().unwrap()).unwrap();
    let edit = server.execute("UPDATE messages SET content = 'edited since the backup' WHERE id = ?1", &[&message]);
    assert_eq!(edit, 1);
    let messages_of = |chat: &str| server.integer("SELECT count(*) FROM messages WHERE chat_id = ?1", &[chat]);
    let messages = messages_of(&chat);
    let chats = || server.integer("SELECT count(*) FROM chats WHERE user_id = ?1", &[&ada.user.id]);

    let pick = Selection { picks: vec![Pick { kind: ItemKind::Chat, id: chat.clone() }], without_chats: false };
    let declared = vec![format!("chat:{chat}")];
    let (code, status) = restore_picked(&server, &ada, &backup, &declared, Some(&pick), true).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "{status}");
    let archive_id =
        Archive::open(Cursor::new(backup.as_slice()), Limits::STANDARD).unwrap().manifest().archive_id.clone();
    let copy = lvbak_core::closure::copy_id(&ada.user.id, &archive_id, &chat);
    let copied =
        server.text_rows("SELECT name, character_id FROM chats WHERE id = ?1 AND user_id = ?2", &[&copy, &ada.user.id]);
    let [copy_name, character] = <[String; 2]>::try_from(copied.into_iter().next().unwrap()).unwrap();
    assert!(copy_name.starts_with(&name) && copy_name.contains("(backup "), "{copy_name}");
    let today = server.texts("SELECT character_id FROM chats WHERE id = ?1", &[&chat]);
    assert_eq!(today, [character], "the copy links to the account's character");
    assert_eq!(messages_of(&copy), messages, "the backup's messages, under the copy");
    let copied_text =
        server.integer("SELECT count(*) FROM messages WHERE chat_id = ?1 AND content = ?2", &[&copy, &text]);
    assert_eq!(copied_text, 1, "the copy holds the backup's text of the edited message");
    let edited = server.texts("SELECT content FROM messages WHERE id = ?1", &[&message]);
    assert_eq!(edited, ["edited since the backup"], "today's chat is as it was");

    // Again: the copy is there (held), no third chat.
    let chats_before = chats();
    let (code, again) = restore_picked(&server, &ada, &backup, &declared, Some(&pick), true).await;
    assert_eq!((code, again["status"].as_str()), (200, Some("complete")), "{again}");
    assert_eq!(chats(), chats_before, "{again}");
}
