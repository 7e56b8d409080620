//! Unit tests of the uploader: every step and transition of [`super::Upload`], driven as
//! the Worker drives it, with a scripted server.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Cursor};

use lvbak_tests::corpus::manifest_json;
use lvbak_tests::zipcraft::{RawEntry, RawZip};

use super::cut::FIRST_BATCH_BYTES;
use super::*;
use crate::batch::{inflate_ndjson, TARGET_BATCH_BYTES};
use crate::hpke::HpkeKeyPair;
use crate::ndjson::NdjsonLines;
use crate::row_stream::RowStream;
use crate::vector::encode_vector;
use crate::Limits;

type Opened = Archive<Cursor<Vec<u8>>>;

/// An archive of `entries` after its manifest.
fn open(entries: Vec<RawEntry>) -> Opened {
    let mut all = vec![RawEntry::deflated("manifest.json", &manifest_json(&[]))];
    all.extend(entries);
    Archive::open(Cursor::new(RawZip::new(all).build()), Limits::STANDARD).unwrap()
}

/// NDJSON of rows `{"id": "<prefix><n>", "text": …}`, each line `width` bytes long
/// without its newline; the text hardly deflates, so a large table is several batches
/// however far ahead the reader reads.
fn rows(prefix: &str, count: usize, width: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::new();
    for n in 0..count {
        let start = format!("{{\"id\":\"{prefix}{n}\",\"text\":\"");
        out.extend_from_slice(start.as_bytes());
        for _ in 0..width.saturating_sub(start.len() + 2) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.push(b"0123456789abcdef"[(state % 16) as usize]);
        }
        out.extend_from_slice(b"\"}\n");
    }
    out
}

/// One `lancedb/` row, with a vector or with `"vector_b64": null`.
fn vector_row(id: &str, with_vector: bool) -> String {
    let vector = if with_vector { format!("\"{}\"", encode_vector(&[0.5, 1.0])) } else { "null".into() };
    format!("{{\"id\":\"{id}\",\"source_type\":\"chat_chunk\",\"source_id\":\"c\",\"vector_b64\":{vector}}}\n")
}

/// What the owner of an upload saw at each step.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Read,
    Sent(u64),
    Asked,
    Done,
}

/// What [`drive`] saw, the batches sent (number, bytes) and the report.
type Run = (Vec<Seen>, Vec<(u64, Vec<u8>)>, UploadReport);

/// A whole upload driven as the Worker drives it: every batch taken, `accept` answered to
/// the vectors question. What it saw, the batches sent, and the report.
fn drive(archive: &Opened, plan: UploadPlan, accept: bool) -> Run {
    let mut upload = Upload::new(archive, plan);
    let (mut seen, mut sent) = (Vec::new(), Vec::new());
    loop {
        match upload.step().unwrap() {
            Step::Read => seen.push(Seen::Read),
            Step::Send { number, batch } => {
                seen.push(Seen::Sent(number));
                sent.push((number, batch.to_vec()));
                upload.sent();
            }
            Step::AskVectors => {
                seen.push(Seen::Asked);
                upload.vectors_answer(accept);
            }
            Step::Done(report) => {
                seen.push(Seen::Done);
                return (seen, sent, report.clone());
            }
        }
    }
}

/// The batches of an upload, bundles taken apart.
fn parts(sent: &[(u64, Vec<u8>)]) -> Vec<Batch> {
    sent.iter().flat_map(|(_, body)| Batch::decode(body).unwrap().into_parts()).collect()
}

/// The rows of a row stream's segments, read as the server reads them.
fn stream_lines(segments: &[&Batch]) -> u64 {
    let mut stream = RowStream::new("characters");
    let mut count = 0;
    for segment in segments {
        let Batch::RowStream { offset, last, deflated, .. } = segment else { panic!("{segment:?}") };
        let reader = stream.segment(*offset, deflated, *last, 1 << 22, |_| Ok(())).unwrap();
        let mut lines = NdjsonLines::new(BufReader::new(reader), "database/characters.ndjson", 1 << 22);
        while lines.next_line().unwrap().is_some() {
            count += 1;
        }
    }
    assert!(stream.ended(), "the last segment ends the stream");
    count
}

/// Small tables and a small file are each read in a step, wait, and go as one bundle when
/// the upload ends; then it is done, with one batch to commit.
#[test]
fn small_entries_are_read_a_step_each_then_sent_as_one_bundle() {
    let archive = open(vec![
        RawEntry::deflated("database/world_books.ndjson", &rows("wb", 3, 60)),
        RawEntry::deflated("database/presets.ndjson", &rows("p", 1, 60)),
        RawEntry::stored("files/theme-assets/b/a.css", b"body{}"),
    ]);
    let (seen, sent, report) = drive(&archive, UploadPlan::default(), false);
    assert_eq!(seen, [Seen::Read, Seen::Read, Seen::Read, Seen::Sent(0), Seen::Done]);
    let Batch::Bundle(inner) = Batch::decode(&sent[0].1).unwrap() else { panic!("a bundle") };
    // Presets come before world books in import order; files after the tables.
    let kinds: Vec<(&str, u64)> = inner
        .iter()
        .map(|part| match part {
            Batch::RowStream { table, .. } => (table.as_str(), 0),
            Batch::FileChunk { name, size, .. } => (name.as_str(), *size),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [("presets", 0), ("world_books", 0), ("b/a.css", 6)]);
    assert_eq!((report.batches, report.rows, report.files), (1, 4, 1));
    assert_eq!(report.wire_bytes, sent[0].1.len() as u64);
    assert_eq!(report.vectors_skipped.as_deref(), Some("the archive carries no vectors"));
}

/// A batch handed out stays the one to send until the server took it: after a dropped
/// connection the owner asks again and gets the same number and bytes, and nothing moves
/// on (no progress counted, nothing read) until `sent`.
#[test]
fn a_batch_is_handed_out_again_until_the_server_took_it() {
    let archive = open(vec![RawEntry::deflated("database/characters.ndjson", &rows("c", 3_000, 1_000))]);
    let mut upload = Upload::new(&archive, UploadPlan::default());
    assert_eq!(upload.step().unwrap(), Step::Read);
    let first = match upload.step().unwrap() {
        Step::Send { number, batch } => (number, batch.to_vec()),
        other => panic!("{other:?}"),
    };
    assert_eq!(first.0, 0);
    for _ in 0..3 {
        assert_eq!(upload.step().unwrap(), Step::Send { number: 0, batch: &first.1 }, "the same batch again");
        assert_eq!((upload.progress().batches_sent, upload.progress().wire_bytes), (0, 0));
    }
    let rows_read = upload.progress().rows;
    upload.sent();
    assert_eq!(upload.progress().batches_sent, 1);
    assert_eq!(upload.progress().wire_bytes, first.1.len() as u64);
    assert_eq!(upload.progress().rows, rows_read, "sending reads nothing");
    // On to the next batch, then (the last segment) to the end.
    assert_eq!(upload.step().unwrap(), Step::Read);
    assert!(matches!(upload.step().unwrap(), Step::Send { number: 1, .. }));
    upload.sent();
    assert!(matches!(upload.step().unwrap(), Step::Done(report) if report.batches == 2));
    // `sent` with nothing waiting changes nothing.
    upload.sent();
    assert!(matches!(upload.step().unwrap(), Step::Done(report) if report.batches == 2));
}

/// An archive of several batches: a table read as rows (one id held), a fresh one as a
/// stream, files of several chunks.
fn several_batches() -> (Opened, UploadPlan) {
    let archive = open(vec![
        RawEntry::deflated("database/characters.ndjson", &rows("c", 4_000, 1_000)),
        RawEntry::deflated("database/messages.ndjson", &rows("m", 3_000, 700)),
        RawEntry::stored("files/theme-assets/b/big.bin", &vec![7u8; 9 * 1024 * 1024 + 3]),
        RawEntry::stored("files/theme-assets/b/small.css", b"p{}"),
    ]);
    let held = HashMap::from([("messages".to_string(), HashSet::from([held_id_hash("m7")]))]);
    let plan = UploadPlan { held_rows: held, ..UploadPlan::default() };
    (archive, plan)
}

fn same_plan(plan: &UploadPlan, start_batch: u64) -> UploadPlan {
    UploadPlan {
        start_batch,
        secrets: None,
        held_files: plan.held_files.clone(),
        held_rows: plan.held_rows.clone(),
        fresh_tables: plan.fresh_tables.clone(),
        only: plan.only.clone(),
        copy: plan.copy.clone(),
    }
}

/// Resuming from the server's next batch produces every batch again and sends those from
/// there on, byte for byte the ones the first upload would have sent.
#[test]
fn a_resumed_upload_sends_the_same_batches_from_the_servers_next_one() {
    let (archive, plan) = several_batches();
    let (_, whole, report) = drive(&archive, same_plan(&plan, 0), false);
    assert!(whole.len() >= 5, "{} batches", whole.len());
    assert_eq!(
        whole.iter().map(|(number, _)| *number).collect::<Vec<_>>(),
        (0..whole.len() as u64).collect::<Vec<_>>()
    );
    for next in [1, 2, whole.len() as u64 - 1, whole.len() as u64] {
        let (seen, sent, resumed) = drive(&archive, same_plan(&plan, next), false);
        assert_eq!(sent, whole[next as usize..].to_vec(), "from batch {next}");
        assert_eq!(seen.iter().filter(|s| matches!(s, Seen::Sent(_))).count(), whole.len() - next as usize);
        let wire: u64 = sent.iter().map(|(_, body)| body.len() as u64).sum();
        assert_eq!((resumed.batches, resumed.wire_bytes), (report.batches, wire));
        assert_eq!((resumed.rows, resumed.rows_held, resumed.files), (report.rows, report.rows_held, report.files));
    }
}

/// A connection that drops for good stops the upload after the server took some batches;
/// a new upload from the server's next batch sends the rest, and the server has, in all,
/// exactly the batches of an upload that never stopped.
#[test]
fn an_upload_stopped_by_a_dropped_connection_resumes_where_the_server_stopped() {
    let (archive, plan) = several_batches();
    let (_, whole, _) = drive(&archive, same_plan(&plan, 0), false);
    let mut taken = Vec::new();
    let mut upload = Upload::new(&archive, same_plan(&plan, 0));
    loop {
        match upload.step().unwrap() {
            Step::Send { number, batch } if number < 3 => {
                taken.push((number, batch.to_vec()));
                upload.sent();
            }
            // Batch 3 never reaches the server: the owner gives up on this upload.
            Step::Send { .. } => break,
            Step::Read => {}
            other => panic!("{other:?}"),
        }
    }
    drop(upload);
    let next_batch = taken.len() as u64;
    let (_, rest, _) = drive(&archive, same_plan(&plan, next_batch), false);
    taken.extend(rest);
    assert_eq!(taken, whole);
}

/// A table's first batch closes after a megabyte of lines, the next ones after eight;
/// rows whose ids the server holds are left out of their batch and counted in it, and the
/// batches are cut by the archive's bytes whether rows are held or not.
#[test]
fn rows_are_cut_by_the_archives_bytes_and_held_ones_left_out() {
    let width = 1_000;
    let archive = open(vec![RawEntry::deflated("database/messages.ndjson", &rows("m", 12_000, width))]);
    let held: HashSet<u64> = (0..12_000).filter(|n| n % 3 == 0).map(|n| held_id_hash(&format!("m{n}"))).collect();
    let plan = UploadPlan { held_rows: HashMap::from([("messages".into(), held)]), ..UploadPlan::default() };
    let (_, sent, report) = drive(&archive, plan, false);
    let mut next_line = 1;
    let mut stretches = Vec::new();
    for part in parts(&sent) {
        let Batch::Rows { table, first_line, lines, held, deflated } = part else { panic!("{part:?}") };
        assert_eq!((table.as_str(), first_line), ("messages", next_line));
        // Line n is the row `m{n-1}`; those whose n-1 is a multiple of 3 are held, and
        // exactly the others are sent.
        let text = inflate_ndjson(&deflated).unwrap();
        let ids: Vec<String> = text
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice::<serde_json::Value>(line).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        let stretch = (first_line - 1)..(first_line - 1 + lines + held);
        let expected: Vec<String> = stretch.clone().filter(|n| n % 3 != 0).map(|n| format!("m{n}")).collect();
        assert_eq!(ids, expected, "batch from line {first_line}");
        assert_eq!(held, stretch.filter(|n| n % 3 == 0).count() as u64);
        stretches.push(lines + held);
        next_line += lines + held;
    }
    assert_eq!(next_line, 12_001);
    // A line is `width` bytes and its newline.
    let first = (FIRST_BATCH_BYTES as u64).div_ceil(width as u64 + 1);
    let then = (TARGET_BATCH_BYTES as u64).div_ceil(width as u64 + 1);
    assert_eq!(stretches[..2], [first, then]);
    assert_eq!(stretches.iter().sum::<u64>(), 12_000);
    assert_eq!((report.rows, report.rows_held, report.held_row_bytes), (8_000, 4_000, 4_000 * (width as u64 + 1)));
}

/// A fresh table goes as the archive's own deflate stream, whatever ids are held now, cut
/// into segments of which only the last ends it; a stored entry has no stream to send and
/// goes as rows.
#[test]
fn a_fresh_table_goes_as_its_deflate_stream_and_a_stored_one_as_rows() {
    let archive = open(vec![
        RawEntry::deflated("database/characters.ndjson", &rows("c", 5_000, 1_000)),
        RawEntry::stored("database/world_books.ndjson", &rows("wb", 2, 60)),
    ]);
    let plan = UploadPlan {
        held_rows: HashMap::from([("characters".into(), HashSet::from([held_id_hash("c1")]))]),
        fresh_tables: Some(HashSet::from(["characters".to_string(), "world_books".to_string()])),
        ..UploadPlan::default()
    };
    let (_, sent, report) = drive(&archive, plan, false);
    let batches = parts(&sent);
    let segments: Vec<&Batch> = batches.iter().filter(|b| matches!(b, Batch::RowStream { .. })).collect();
    assert!(segments.len() >= 2, "{} segments", segments.len());
    assert_eq!(stream_lines(&segments), 5_000, "no row held back from a fresh table");
    assert!(batches.iter().any(|b| matches!(b, Batch::Rows { table, lines: 2, .. } if table == "world_books")));
    assert_eq!((report.rows, report.rows_held), (5_002, 0));
}

/// Vectors wait for the server's word, asked once every batch before was sent; until it
/// answers, the question stands. Yes: they are sent. No: they are read and checked, not
/// sent, and the report says why.
#[test]
fn vectors_wait_for_the_servers_answer() {
    let entries = || {
        vec![
            RawEntry::deflated("database/world_books.ndjson", &rows("wb", 2, 60)),
            RawEntry::deflated("lancedb/embeddings.ndjson", vector_row("v1", true).as_bytes()),
        ]
    };
    let archive = open(entries());
    let mut upload = Upload::new(&archive, UploadPlan::default());
    assert_eq!(upload.step().unwrap(), Step::Read);
    // The world books wait in a bundle: they go before the question.
    assert!(matches!(upload.step().unwrap(), Step::Send { number: 0, .. }));
    upload.sent();
    assert_eq!(upload.progress().phase, "vectors");
    for _ in 0..2 {
        assert_eq!(upload.step().unwrap(), Step::AskVectors);
    }
    upload.vectors_answer(true);
    assert_eq!(upload.step().unwrap(), Step::Read);
    let Step::Send { number: 1, batch } = upload.step().unwrap() else { panic!("the vectors batch") };
    let Batch::Vectors { table, lines: 1, deflated, .. } = Batch::decode(batch).unwrap() else { panic!("vectors") };
    assert_eq!(
        (table.as_str(), inflate_ndjson(&deflated).unwrap()),
        ("embeddings", vector_row("v1", true).into_bytes())
    );
    upload.sent();
    assert!(matches!(upload.step().unwrap(), Step::Done(report) if report.vectors_skipped.is_none()));

    let (seen, sent, report) = drive(&archive, UploadPlan::default(), false);
    assert_eq!(seen, [Seen::Read, Seen::Sent(0), Seen::Asked, Seen::Read, Seen::Done]);
    assert!(parts(&sent).iter().all(|b| !matches!(b, Batch::Vectors { .. })));
    assert_eq!(report.vectors_skipped.as_deref(), Some("this account's embedding settings do not match the archive's"));
    // Not sent, but checked: a damaged vector line refuses the upload all the same.
    let mut damaged = entries();
    damaged.push(RawEntry::deflated("lancedb/embeddings_world_books.ndjson", b"{\"id\": \n"));
    let archive = open(damaged);
    let mut upload = Upload::new(&archive, UploadPlan::default());
    let error = loop {
        match upload.step() {
            Ok(Step::Send { .. }) => upload.sent(),
            Ok(Step::AskVectors) => upload.vectors_answer(false),
            Ok(Step::Read) => {}
            Ok(Step::Done(_)) => panic!("a damaged line went through"),
            Err(error) => break error,
        }
    };
    assert_eq!(error.code(), "bad_json");
}

/// No question when there is nothing to ask about: no vectors, or vectors whose rows carry
/// none (Lumiverse 1.1's `"vector_b64": null`).
#[test]
fn empty_vectors_are_not_asked_about() {
    let archive = open(vec![RawEntry::deflated("lancedb/embeddings.ndjson", vector_row("v1", false).as_bytes())]);
    let (seen, sent, report) = drive(&archive, UploadPlan::default(), true);
    // Its first row read, then the entry checked whole.
    assert_eq!(seen, [Seen::Read, Seen::Read, Seen::Done]);
    assert!(sent.is_empty());
    assert_eq!(report.vectors_skipped.as_deref(), Some(NULL_VECTORS));
    let archive = open(vec![RawEntry::deflated("database/world_books.ndjson", &rows("wb", 1, 60))]);
    let (seen, _, report) = drive(&archive, UploadPlan::default(), true);
    assert!(!seen.contains(&Seen::Asked));
    assert_eq!(report.vectors_skipped.as_deref(), Some("the archive carries no vectors"));
    // An answer nobody asked for changes nothing.
    let mut upload = Upload::new(&archive, UploadPlan::default());
    upload.vectors_answer(true);
    assert_eq!(upload.step().unwrap(), Step::Read);
}

/// Files go in chunks of four megabytes, read a step each (a file that fills its last
/// chunk ends with a read that finds nothing more; an empty file is one empty chunk);
/// files the server holds are counted and never read — a damaged one goes unnoticed.
#[test]
fn files_go_in_chunks_and_held_ones_are_never_read() {
    let mut damaged = RawEntry::stored("files/avatars/held.png", b"held bytes");
    damaged.claimed_crc = Some(7);
    let archive = open(vec![
        damaged,
        RawEntry::stored("files/theme-assets/b/exact.bin", &vec![1u8; FILE_CHUNK_BYTES]),
        RawEntry::stored("files/theme-assets/b/empty.css", b""),
        RawEntry::stored("files/theme-assets/b/long.bin", &vec![2u8; 2 * FILE_CHUNK_BYTES + 5]),
    ]);
    let plan =
        UploadPlan { held_files: HashSet::from(["files/avatars/held.png".to_string()]), ..UploadPlan::default() };
    let (seen, sent, report) = drive(&archive, plan, false);
    let chunks: Vec<(String, u64, usize)> = parts(&sent)
        .into_iter()
        .map(|part| match part {
            Batch::FileChunk { name, offset, bytes, .. } => (name, offset, bytes.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    let mb4 = FILE_CHUNK_BYTES as u64;
    assert_eq!(
        chunks,
        [
            ("b/exact.bin".into(), 0, FILE_CHUNK_BYTES),
            ("b/empty.css".into(), 0, 0),
            ("b/long.bin".into(), 0, FILE_CHUNK_BYTES),
            ("b/long.bin".into(), mb4, FILE_CHUNK_BYTES),
            ("b/long.bin".into(), 2 * mb4, 5),
        ]
    );
    // exact: a chunk and the read that ends it; empty: one; long: three.
    assert_eq!(seen.iter().filter(|s| **s == Seen::Read).count(), 6);
    assert_eq!((report.files, report.files_held, report.held_bytes), (3, 1, 10));
}

/// Secrets go last and alone, sealed to the job's key and bound to its id, after the small
/// batches waiting before them.
#[test]
fn secrets_go_last_alone_sealed_to_the_job() {
    let archive = open(vec![RawEntry::deflated("database/world_books.ndjson", &rows("wb", 1, 60))]);
    let key = HpkeKeyPair::from_secret([5; 32]).unwrap();
    let secrets = vec![PlainSecret { key: "connection_1_api_key".into(), value: "sk-1".into() }];
    let plan = UploadPlan {
        secrets: Some(SealedSecretsPlan {
            recipient: key.public_key(),
            ephemeral: [9; 32],
            job_id: "job-1".into(),
            secrets: secrets.clone(),
        }),
        ..UploadPlan::default()
    };
    let (seen, sent, report) = drive(&archive, plan, false);
    assert_eq!(seen, [Seen::Read, Seen::Sent(0), Seen::Sent(1), Seen::Done]);
    assert!(matches!(Batch::decode(&sent[0].1).unwrap(), Batch::Rows { .. } | Batch::RowStream { .. }));
    let Batch::Secrets { enc, sealed } = Batch::decode(&sent[1].1).unwrap() else { panic!("secrets last") };
    let opened = key.open(&enc, SECRETS_INFO, b"job-1", &sealed).unwrap();
    assert_eq!(serde_json::from_slice::<Vec<PlainSecret>>(&opened).unwrap(), secrets);
    assert_eq!(report.batches, 2);
    // No secrets (or none decrypted): no batch for them.
    let empty = UploadPlan {
        secrets: Some(SealedSecretsPlan {
            recipient: key.public_key(),
            ephemeral: [9; 32],
            job_id: "j".into(),
            secrets: vec![],
        }),
        ..UploadPlan::default()
    };
    assert_eq!(drive(&archive, empty, false).2.batches, 1);
}

/// Tables this version does not apply — a row table outside the registry, a vector table
/// other than the two that travel — are read whole, listed, and not sent; a damaged one
/// refuses the upload, as the server's raw path refuses the archive.
#[test]
fn unused_tables_are_checked_listed_and_not_sent() {
    let archive = open(vec![
        RawEntry::deflated("database/plugin_things.ndjson", b"{\"a\":1}\n"),
        RawEntry::deflated("lancedb/other_vectors.ndjson", b"{\"id\":\"x\"}\n"),
    ]);
    let (seen, sent, report) = drive(&archive, UploadPlan::default(), false);
    assert_eq!(seen, [Seen::Read, Seen::Read, Seen::Done]);
    assert!(sent.is_empty());
    assert_eq!(report.skipped_tables, ["plugin_things", "lancedb:other_vectors"]);
    for damaged in ["database/plugin_things.ndjson", "lancedb/other_vectors.ndjson"] {
        let archive = open(vec![RawEntry::deflated(damaged, b"[1]\n")]);
        let error = Upload::new(&archive, UploadPlan::default()).step().map(|_| ()).unwrap_err();
        assert_eq!(error.code(), "bad_json", "{damaged}");
    }
}

/// Progress follows the steps: the phases in order, each file counted once, every archive
/// byte counted by the end.
#[test]
fn progress_follows_the_phases() {
    let archive = open(vec![
        RawEntry::deflated("database/world_books.ndjson", &rows("wb", 2, 60)),
        RawEntry::deflated("lancedb/embeddings.ndjson", vector_row("v1", true).as_bytes()),
        RawEntry::stored("files/avatars/a.png", b"png"),
        RawEntry::stored("files/avatars/b.png", b"png"),
    ]);
    let key = HpkeKeyPair::from_secret([5; 32]).unwrap();
    let secrets = vec![PlainSecret { key: "k".into(), value: "v".into() }];
    let plan = UploadPlan {
        held_files: HashSet::from(["files/avatars/a.png".to_string()]),
        secrets: Some(SealedSecretsPlan {
            recipient: key.public_key(),
            ephemeral: [1; 32],
            job_id: "j".into(),
            secrets,
        }),
        ..UploadPlan::default()
    };
    let mut upload = Upload::new(&archive, plan);
    let mut phases: Vec<String> = vec![upload.progress().phase];
    let total = upload.progress().bytes_total;
    loop {
        let step = upload.step().unwrap();
        let done = matches!(step, Step::Done(_));
        match step {
            Step::Send { .. } => upload.sent(),
            Step::AskVectors => upload.vectors_answer(true),
            _ => {}
        }
        let progress = upload.progress();
        if phases.last() != Some(&progress.phase) {
            phases.push(progress.phase.clone());
        }
        assert!(progress.bytes_done <= total && progress.files_done <= progress.files_total);
        if done {
            assert_eq!((progress.bytes_done, progress.files_done, progress.files_total), (total, 2, 2));
            assert_eq!(progress.batches_sent, 3);
            break;
        }
    }
    assert_eq!(phases, ["tables", "vectors", "files", "secrets", "sent"]);
}

/// A selective restore sends the closure's rows only (every line still read and checked),
/// the files its ids name, and no secrets; rows outside it are not counted as held.
#[test]
fn a_selection_sends_only_its_closure_and_the_files_it_names() {
    let (c1, c2) = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222");
    let (ch1, ch2) = ("33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444");
    let characters = format!("{{\"id\":\"{c1}\",\"name\":\"Mira\"}}\n{{\"id\":\"{c2}\",\"name\":\"Oto\"}}\n");
    let chats = format!(
        "{{\"id\":\"{ch1}\",\"character_id\":\"{c1}\",\"name\":\"a\"}}\n{{\"id\":\"{ch2}\",\"character_id\":\"{c2}\",\"name\":\"b\"}}\n"
    );
    let messages: String = (0..6)
        .map(|n| {
            format!("{{\"id\":\"m{n}\",\"chat_id\":\"{}\",\"content\":\"x\"}}\n", if n % 2 == 0 { ch1 } else { ch2 })
        })
        .collect();
    let archive = open(vec![
        RawEntry::deflated("database/characters.ndjson", characters.as_bytes()),
        RawEntry::deflated("database/chats.ndjson", chats.as_bytes()),
        RawEntry::deflated("database/messages.ndjson", messages.as_bytes()),
        RawEntry::stored(&format!("files/avatars/{c1}.png"), b"one"),
        RawEntry::stored(&format!("files/avatars/{c2}.png"), b"two"),
        RawEntry::stored("files/theme-assets/b/a.css", b"body{}"),
    ]);
    let pick = crate::closure::Pick { kind: crate::closure::ItemKind::Character, id: c1.into() };
    let selection = crate::closure::Selection { picks: vec![pick], without_chats: false };
    let closure = crate::closure::closure(&mut crate::closure::ArchiveRows::new(&archive), &selection).unwrap();
    // The server holds m0: held, counted; m1 is ch2's: neither sent nor counted.
    let held = HashMap::from([("messages".to_string(), HashSet::from([held_id_hash("m0"), held_id_hash("m1")]))]);
    let secrets = SealedSecretsPlan {
        recipient: [7; 32],
        ephemeral: [9; 32],
        job_id: "job".into(),
        secrets: vec![PlainSecret { key: "k".into(), value: "v".into() }],
    };
    let plan = UploadPlan { only: Some(closure), held_rows: held, secrets: Some(secrets), ..UploadPlan::default() };
    let (_, sent, report) = drive(&archive, plan, true);
    let mut rows: HashMap<String, Vec<String>> = HashMap::new();
    let mut held_counted = 0;
    let mut files = Vec::new();
    for part in parts(&sent) {
        match part {
            Batch::Rows { table, deflated, held, .. } => {
                held_counted += held;
                let lines = inflate_ndjson(&deflated).unwrap();
                for line in lines.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                    let row: serde_json::Value = serde_json::from_slice(line).unwrap();
                    rows.entry(table.clone()).or_default().push(row["id"].as_str().unwrap().to_string());
                }
            }
            Batch::FileChunk { name, .. } => files.push(name),
            Batch::RowStream { table, .. } => panic!("a selection's {table} went as a stream"),
            other => panic!("{other:?} sent"),
        }
    }
    assert_eq!(rows["characters"], vec![c1.to_string()]);
    assert_eq!(rows["chats"], vec![ch1.to_string()]);
    assert_eq!(rows["messages"], vec!["m2".to_string(), "m4".to_string()]);
    assert_eq!(held_counted, 1, "only the selection's held row is counted");
    assert_eq!(files, vec![format!("{c1}.png")]);
    assert_eq!((report.rows, report.rows_held, report.files), (4, 1, 1));
}

/// Restored as a copy, what belongs to the picks goes under the copy's ids (references and
/// names following), and what they only need keeps its own.
#[test]
fn a_copy_sends_the_belongings_under_their_copies_ids() {
    let (c1, ch1) = ("11111111-1111-4111-8111-111111111111", "33333333-3333-4333-8333-333333333333");
    let archive = open(vec![
        RawEntry::deflated("database/characters.ndjson", format!("{{\"id\":\"{c1}\",\"name\":\"Mira\"}}\n").as_bytes()),
        RawEntry::deflated(
            "database/chats.ndjson",
            format!("{{\"id\":\"{ch1}\",\"character_id\":\"{c1}\",\"name\":\"Harbour\"}}\n").as_bytes(),
        ),
        RawEntry::deflated(
            "database/messages.ndjson",
            format!("{{\"id\":\"m0\",\"chat_id\":\"{ch1}\",\"content\":\"x\"}}\n").as_bytes(),
        ),
        RawEntry::stored(&format!("files/avatars/{c1}.png"), b"one"),
    ]);
    let pick = crate::closure::Pick { kind: crate::closure::ItemKind::Chat, id: ch1.into() };
    let selection = crate::closure::Selection { picks: vec![pick], without_chats: false };
    let closure = crate::closure::closure(&mut crate::closure::ArchiveRows::new(&archive), &selection).unwrap();
    let own = crate::closure::belongings(&mut crate::closure::ArchiveRows::new(&archive), &selection).unwrap();
    let copy = crate::closure::CopyPlan::new(&own, "me", "arch", None);
    let (chat_copy, message_copy) =
        (crate::closure::copy_id("me", "arch", ch1), crate::closure::copy_id("me", "arch", "m0"));
    // The server holds the copy's message already (an earlier run): it is left out.
    let held = HashMap::from([("messages".to_string(), HashSet::from([held_id_hash(&message_copy)]))]);
    let plan = UploadPlan { only: Some(closure), copy: Some(copy), held_rows: held, ..UploadPlan::default() };
    let (_, sent, report) = drive(&archive, plan, true);
    let mut rows: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    let mut files = Vec::new();
    for part in parts(&sent) {
        match part {
            Batch::Rows { table, deflated, .. } => {
                let lines = inflate_ndjson(&deflated).unwrap();
                for line in lines.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                    rows.entry(table.clone()).or_default().push(serde_json::from_slice(line).unwrap());
                }
            }
            Batch::FileChunk { name, .. } => files.push(name),
            other => panic!("{other:?} sent"),
        }
    }
    assert_eq!(rows["characters"][0]["id"], c1, "the chat's character is only needed");
    assert_eq!(rows["chats"][0]["id"], chat_copy.as_str());
    assert_eq!(rows["chats"][0]["character_id"], c1);
    assert_eq!(rows["chats"][0]["name"], "Harbour (from a backup)");
    assert!(!rows.contains_key("messages"), "the copy's message is held");
    assert_eq!(report.rows_held, 1);
    assert_eq!(files, vec![format!("{c1}.png")]);
}
