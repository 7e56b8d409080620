//! What the batch import's unit tests share: a manifest, a job registered as the handlers
//! register one, rows and file chunks as batches, and the rows an account holds.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use lvbak_core::batch::{deflate_ndjson, Batch};
use lvbak_core::secrets::SecretsBinding;
use lvbak_core::{FileBucket, Manifest};

use crate::import::jobs::{ArchiveFacts, Job};
use crate::state::AppState;
use crate::storage::UserRecord;
use crate::util::new_id;

/// A Lumiverse manifest with these fields replaced (see `lvbak_tests::corpus`).
pub(super) fn manifest(replace: &[(&str, &str)]) -> Manifest {
    Manifest::parse(&lvbak_tests::corpus::manifest_json(replace)).unwrap()
}

/// An open job of `user` for an archive with `manifest` (and `secrets`), in the instance's
/// jobs as `open` registers one, without its worker or its batch upload.
pub(super) async fn new_job(
    state: &AppState,
    user: &UserRecord,
    manifest: &Manifest,
    secrets: Option<SecretsBinding>,
) -> Arc<Job> {
    let reservation = state.jobs().reserve(&user.id).unwrap();
    let facts = ArchiveFacts::new(manifest, secrets);
    let opening = crate::import::jobs::Opening::Batch("{}".into());
    state.jobs().create(&state.store(), state.progress(), reservation, new_id(), facts, None, opening).await.unwrap()
}

/// A `world_books` line.
pub(super) fn book(id: &str) -> String {
    format!("{{\"id\":\"{id}\",\"name\":\"Lore {id}\",\"created_at\":1,\"updated_at\":1}}\n")
}

/// A rows batch of these lines, `held` more left out.
pub(super) fn rows(table: &str, first_line: u64, lines: &str, held: u64) -> Batch {
    let count = lines.lines().count() as u64;
    let deflated = deflate_ndjson(lines.as_bytes()).unwrap();
    Batch::Rows { table: table.into(), first_line, lines: count, held, deflated }
}

/// A sound that sniffs as audio: `files/notification-sounds/completion.mp3` needs no row
/// to name it, so it lands in any account.
pub(super) const SOUND: &[u8] = b"ID3\x04\0\0\0\0\0\0 a chime";

/// Bytes `offset..` of the notification sound, a file of `size` bytes.
pub(super) fn sound_chunk(offset: u64, size: u64, bytes: &[u8]) -> Batch {
    let name = "completion.mp3".into();
    Batch::FileChunk { bucket: FileBucket::NotificationSounds, name, offset, size, bytes: bytes.to_vec() }
}

/// The ids of the rows of a table owned directly by `user`, sorted.
pub(super) fn ids(state: &AppState, table: &str, user: &UserRecord) -> Vec<String> {
    let rows = state.store().db.rows_where(table, "user_id", &user.id).unwrap();
    let mut ids: Vec<String> = rows.iter().filter_map(|row| row["id"].as_str().map(str::to_string)).collect();
    ids.sort();
    ids
}
