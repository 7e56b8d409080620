//! Unit tests of [`super::BatchApplier`]: each kind of batch applied to a real session (a
//! real SQLite file and file tree), run on the test's thread as the job's worker runs it,
//! and every refusal with its code.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lvbak_core::batch::{deflate_ndjson, Batch, PlainSecret, MAX_BATCH_PAYLOAD_BYTES};
use lvbak_core::hpke::{seal, HpkeKeyPair, SECRETS_INFO};
use lvbak_core::registry::{is_applied_table, TABLES};
use lvbak_core::secrets::SecretsBinding;
use lvbak_core::{FileBucket, FormatError};

use super::super::testing::{book, ids, manifest, new_job, rows, sound_chunk, SOUND};
use super::{BatchApplier, JobMemory};
use crate::config::HostingLimits;
use crate::import::jobs::Job;
use crate::import::session::{ImportError, ImportSession, ImportSummary};
use crate::memory::MemoryBudget;
use crate::progress::Event;
use crate::storage::UserRecord;
use crate::test_support::{account, test_state, TestState};

const A: &str = "7d2e1f40-0000-4000-8000-0000000000a1";
const B: &str = "7d2e1f40-0000-4000-8000-0000000000b2";
const SECRET_KEY: &str = "openai_api_key";

/// A job of one account over a data directory of its own, and a runtime for what the
/// session awaits (the test's thread stands for the worker's, outside the runtime).
struct Fixture {
    runtime: tokio::runtime::Runtime,
    test: TestState,
    user: UserRecord,
    job: Arc<Job>,
    key: HpkeKeyPair,
    /// The job's inflated bytes, all batches together.
    inflated: Arc<AtomicU64>,
}

fn fixture(label: &str, secrets: Option<SecretsBinding>) -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let test = runtime.block_on(test_state(label, HostingLimits::default()));
    let user = runtime.block_on(account(&test.state, "alice"));
    let job = runtime.block_on(new_job(&test.state, &user, &manifest(&[]), secrets));
    let key = HpkeKeyPair::from_secret([7; 32]).unwrap();
    Fixture { runtime, test, user, job, key, inflated: Arc::default() }
}

/// What an applier is made with besides the job: why vectors would not be restored, and
/// the job's decompressed cap.
struct Setup {
    blocker: Option<String>,
    cap: u64,
}

const OPEN: Setup = Setup { blocker: None, cap: u64::MAX };

/// Runs `run` with an applier of the fixture's job, made as the worker makes it (the
/// columns of every applied table).
fn applying<T>(fx: &Fixture, setup: Setup, run: impl FnOnce(BatchApplier<'_>) -> T) -> T {
    let store = fx.test.state.store();
    let publish = |_: Event| {};
    let handle = fx.runtime.handle().clone();
    let mut session =
        ImportSession::new(&store, &fx.user.id, None, fx.job.cancel.clone(), &publish, handle.clone()).unwrap();
    let mut columns = HashMap::new();
    for spec in TABLES.iter().filter(|spec| is_applied_table(spec.name)) {
        if let Some(names) = session.columns_of(spec.name).unwrap() {
            columns.insert(spec.name.to_string(), names);
        }
    }
    let memory = JobMemory { budget: MemoryBudget::new(64 << 20), runtime: handle };
    let (blocker, inflated) = (setup.blocker, fx.inflated.clone());
    let applier =
        BatchApplier::new(session, &store, &fx.job, &fx.key, blocker, columns, inflated, setup.cap, 1 << 20, memory);
    run(applier)
}

/// The failure code a job that stopped with `error` records (`cancelled` for a cancel).
fn code(error: ImportError) -> String {
    error.into_failure("test").map_or("cancelled".to_string(), |failure| failure.code().to_string())
}

/// Applies `batches` in order until one is refused, ends the job as the worker ends a
/// failed one, and answers the refusal's code (`None`: every batch was taken).
fn refusal(fx: &Fixture, batches: Vec<Batch>) -> Option<String> {
    applying(fx, OPEN, |mut applier| {
        for batch in batches {
            if let Err(error) = applier.apply(batch) {
                applier.abandon();
                return Some(code(error));
            }
        }
        None
    })
}

/// Applies `batches` and completes the job: its summary.
fn complete(fx: &Fixture, batches: Vec<Batch>) -> ImportSummary {
    applying(fx, OPEN, |mut applier| {
        for batch in batches {
            applier.apply(batch).unwrap();
        }
        applier.finish().unwrap()
    })
}

/// Files left in the staging folder.
fn staged(fx: &Fixture) -> usize {
    std::fs::read_dir(fx.test.state.store().staging_dir()).map_or(0, |entries| entries.count())
}

/// Rows land in the account; a bundle's parts are applied in order; rows the client left
/// out as held count as skipped; a table this server does not apply has its lines checked
/// and is listed, and a damaged line in it refuses the batch.
#[test]
fn rows_and_a_bundles_parts_land_and_held_rows_count_as_skipped() {
    let fx = fixture("apply-rows", None);
    let bundle = Batch::Bundle(vec![rows("world_books", 1, &book(A), 0), rows("world_books", 2, &book(B), 3)]);
    let unused = rows("plugin_things", 1, "{\"a\":1}\n", 0);
    let summary = complete(&fx, vec![bundle, unused]);
    assert_eq!(ids(&fx.test.state, "world_books", &fx.user), [A, B]);
    let counts = summary.tables["world_books"];
    assert_eq!((counts.imported, counts.skipped, counts.rejected), (2, 3, 0));
    assert_eq!(summary.skipped_tables, ["plugin_things"]);
    assert!(!summary.tables.contains_key("plugin_things"));

    assert_eq!(refusal(&fx, vec![rows("plugin_things", 1, "[1]\n", 0)]).as_deref(), Some("bad_json"));
    assert_eq!(refusal(&fx, vec![rows("world_books", 1, "{\"id\": \n", 0)]).as_deref(), Some("bad_json"));
    // A cancelled job applies nothing more.
    fx.job.cancel.store(true, Ordering::Relaxed);
    let late = "7d2e1f40-0000-4000-8000-0000000000c3";
    assert_eq!(refusal(&fx, vec![rows("world_books", 1, &book(late), 0)]).as_deref(), Some("cancelled"));
    assert_eq!(ids(&fx.test.state, "world_books", &fx.user), [A, B]);
}

/// `count` world books, one a line, and their ids sorted.
fn books(count: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..count).map(|n| format!("7d2e1f40-0000-4000-8000-{n:012}")).collect();
    (ids.iter().map(|id| book(id)).collect(), ids)
}

/// A deflate stream of `lines` cut into two segments at `cut` (a line split between them).
fn segments(table: &str, lines: &str, cut: usize) -> (Batch, Batch) {
    let deflated = deflate_ndjson(lines.as_bytes()).unwrap();
    let (first, second) = deflated.split_at(cut.min(deflated.len() - 1));
    let table = table.to_string();
    (
        Batch::RowStream { table: table.clone(), offset: 0, last: false, deflated: first.to_vec() },
        Batch::RowStream { table, offset: first.len() as u64, last: true, deflated: second.to_vec() },
    )
}

/// A table may come as the archive's own deflate stream, cut anywhere into segments sent
/// as batches of their own: every row lands. The stream must end before anything else
/// comes, go on where it stopped, and end before the commit.
#[test]
fn a_tables_deflate_stream_lands_across_segments_and_must_end_first() {
    let fx = fixture("apply-stream", None);
    let (lines, expected) = books(200);
    let deflated_len = deflate_ndjson(lines.as_bytes()).unwrap().len();
    let (first, second) = segments("world_books", &lines, deflated_len / 2);
    let summary = complete(&fx, vec![first.clone(), second.clone()]);
    assert_eq!(ids(&fx.test.state, "world_books", &fx.user), expected);
    assert_eq!(summary.tables["world_books"].imported, 200);

    let other = rows("world_books", 1, &book(A), 0);
    assert_eq!(refusal(&fx, vec![first.clone(), other]).as_deref(), Some("bad_batch"), "rows amid a stream");
    let (characters, _) = segments("characters", "{\"id\":\"c\"}\n", 3);
    assert_eq!(refusal(&fx, vec![first.clone(), characters]).as_deref(), Some("bad_batch"), "another table's");
    let Batch::RowStream { table, last, deflated, .. } = second.clone() else { panic!() };
    let elsewhere = Batch::RowStream { table, offset: 1, last, deflated };
    assert_eq!(refusal(&fx, vec![first.clone(), elsewhere]).as_deref(), Some("bad_batch"), "a gap");
    let unfinished = applying(&fx, OPEN, |mut applier| {
        applier.apply(first).unwrap();
        applier.finish().map(|_| ()).unwrap_err()
    });
    assert_eq!(code(unfinished), "bad_batch");
}

/// A file arrives in chunks, staged until its last byte, then lands whole under the
/// user's folder and the staged copy is gone. Chunks out of order, a first chunk not at
/// 0, a file cut short by another or by anything else are refused, and nothing stays staged.
#[test]
fn a_file_lands_whole_from_its_chunks_in_order_and_nothing_stays_staged() {
    let fx = fixture("apply-files", None);
    let size = SOUND.len() as u64;
    let head = sound_chunk(0, size, &SOUND[..5]);
    let tail = sound_chunk(5, size, &SOUND[5..]);
    let summary = complete(&fx, vec![head.clone(), tail]);
    assert_eq!((summary.files.imported, summary.files.bytes), (1, size));
    let store = fx.test.state.store();
    let path = crate::storage::FileStore::new(&store.data_dir, &store.staging_dir())
        .path(FileBucket::NotificationSounds, &fx.user.id, "completion.mp3")
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), SOUND);
    assert_eq!(staged(&fx), 0);

    let another = Batch::FileChunk {
        bucket: FileBucket::NotificationSounds,
        name: "other.mp3".into(),
        offset: 0,
        size,
        bytes: SOUND.to_vec(),
    };
    let cases = [
        ("not at 0", vec![sound_chunk(5, size, &SOUND[5..])], "bad_batch"),
        ("a gap", vec![head.clone(), sound_chunk(7, size, &SOUND[7..])], "bad_batch"),
        ("another file first", vec![head.clone(), another], "bad_batch"),
        ("rows first", vec![head.clone(), rows("world_books", 1, &book(A), 0)], "truncated"),
    ];
    for (what, batches, expected) in cases {
        assert_eq!(refusal(&fx, batches).as_deref(), Some(expected), "{what}");
        assert_eq!(staged(&fx), 0, "{what}");
    }
    let unfinished = applying(&fx, OPEN, |mut applier| {
        applier.apply(head).unwrap();
        assert_eq!(staged(&fx), 1, "the chunk is staged");
        applier.finish().map(|_| ()).unwrap_err()
    });
    assert_eq!(code(unfinished), "truncated");
    assert_eq!(staged(&fx), 0);
}

/// Every inflated byte counts: against the job's decompressed cap across batches, and
/// against [`MAX_BATCH_PAYLOAD_BYTES`] for one batch (a bundle's parts together), which
/// starts again at the next batch.
#[test]
fn inflated_bytes_count_against_the_jobs_cap_and_the_batchs() {
    let fx = fixture("apply-caps", None);
    let line = book(A);
    let setup = Setup { blocker: None, cap: 2 * line.len() as u64 - 1 };
    let second = applying(&fx, setup, |mut applier| {
        applier.apply(rows("world_books", 1, &line, 0)).unwrap();
        assert_eq!(fx.inflated.load(Ordering::Relaxed), line.len() as u64);
        applier.apply(rows("world_books", 1, &line, 0)).map_err(code)
    });
    assert_eq!(second, Err("decompressed_cap".to_string()));

    applying(&fx, OPEN, |mut applier| {
        let mut count = applier.cap_counter();
        count(MAX_BATCH_PAYLOAD_BYTES).unwrap();
        let over = count(1).unwrap_err();
        assert!(matches!(over, FormatError::DecompressedCap { limit: MAX_BATCH_PAYLOAD_BYTES }), "{over:?}");
        applier.apply(rows("world_books", 1, &line, 0)).unwrap();
    });
}

/// `count` secrets sealed to `key` for `job_id`.
fn sealed_secrets(key: &HpkeKeyPair, job_id: &str, count: usize) -> Batch {
    let secrets: Vec<PlainSecret> =
        (0..count).map(|n| PlainSecret { key: format!("{SECRET_KEY}{n}"), value: format!("sk-{n}") }).collect();
    let plaintext = serde_json::to_vec(&secrets).unwrap();
    let (enc, sealed) = seal(&key.public_key(), [9; 32], SECRETS_INFO, job_id.as_bytes(), &plaintext).unwrap();
    Batch::Secrets { enc, sealed }
}

/// Secrets sealed to the job's key and bound to its id are stored under the instance's
/// own key, and the ticket's use recorded; a second batch of them, more than the index
/// names, or a seal bound to another job are refused and store nothing.
#[test]
fn sealed_secrets_are_opened_with_the_jobs_key_once() {
    let binding = || Some(SecretsBinding { archive_id: "a".into(), hash: "h".into(), keys: 1 });
    let fx = fixture("apply-secrets", binding());
    let summary = complete(&fx, vec![sealed_secrets(&fx.key, &fx.job.id, 1)]);
    assert_eq!(summary.secrets.imported, 1);
    let store = fx.test.state.store();
    let stored = fx.runtime.block_on(store.secrets().secrets_of(&fx.user.id)).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].key, format!("{SECRET_KEY}0"));
    assert_eq!(store.identity.open(&fx.user.id, &stored[0]).unwrap().as_str(), "sk-0");
    assert!(fx.job.lock().ticket_use.is_some());

    let fx = fixture("apply-secrets-refused", binding());
    let once = sealed_secrets(&fx.key, &fx.job.id, 1);
    let cases = [
        ("twice", vec![once.clone(), once], "bad_secrets"),
        ("more than the index", vec![sealed_secrets(&fx.key, &fx.job.id, 2)], "bad_secrets"),
        ("bound to another job", vec![sealed_secrets(&fx.key, "another-job", 1)], "bad_secrets"),
    ];
    for (what, batches, expected) in cases {
        assert_eq!(refusal(&fx, batches).as_deref(), Some(expected), "{what}");
    }
    let store = fx.test.state.store();
    let stored = fx.runtime.block_on(store.secrets().secrets_of(&fx.user.id)).unwrap();
    let stored: Vec<String> = stored.into_iter().map(|s| s.key).collect();
    assert_eq!(stored, [format!("{SECRET_KEY}0")], "the first batch of `twice` only");
}

/// The summary says why vectors were not restored: the reason last decided (a vectors
/// check decides again), or that none were sent.
#[test]
fn the_summary_says_why_no_vectors_were_restored() {
    let fx = fixture("apply-vectors", None);
    let reason = |setup: Setup, check: bool| {
        applying(&fx, setup, |mut applier| {
            if check {
                // The corpus manifest names a model this account has not set.
                let decided = applier.check_vectors(&fx.job.archive.embedding_config).unwrap();
                assert!(decided.is_some());
            }
            let summary = applier.finish().unwrap();
            assert!(!summary.vectors.restored);
            summary.vectors.reason
        })
    };
    let blocked = Setup { blocker: Some("the settings differ".into()), cap: u64::MAX };
    assert_eq!(reason(blocked, false).as_deref(), Some("the settings differ"));
    assert_eq!(reason(OPEN, false).as_deref(), Some("the archive's vectors were not sent"));
    let checked = reason(OPEN, true).unwrap();
    assert!(checked != "the archive's vectors were not sent" && !checked.is_empty(), "{checked}");
}
