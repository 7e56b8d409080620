//! Benchmark (prints figures, asserts nothing about time): import through the real server
//! over loopback, from upload to a complete job, into a fresh account, of the 100,000- and
//! 500,000-character archives of the export benchmark (rows/s, wall time, peak RSS), and of
//! a 1 GiB archive holding one incompressible `files/databank/` entry, stored and deflated
//! (MB/s, peak RSS), beside `cp` of the same archive; beside the real Lumiverse 1.1 importer
//! on the same archives when `../shared/peer-lumiverse` is set up (`lumiverse`), and beside
//! another user's million characters (`tenancy`), and on each storage backend (`backends`:
//! SQLite, PostgreSQL, PostgreSQL with S3). Run with `scripts/bench`; name cases (`rows`,
//! `lumiverse`, `tenancy`, `backends`, `remap`, `preview`, `stored`, `deflated`) to run only
//! those. `preview` times `lvbak import --dry-run` (issue 23's restore preview), and the same
//! preview the page's way (rows sent in batches to a preview job over loopback).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    http, login, run_lvbak, run_lvbak_with, scratch, seed_bulk_account, seed_bulk_account_with_messages, Server,
};

fn upload_and_wait(server: &Server, token: &str, archive: &Path) -> (f64, f64, String) {
    let bearer = format!("Bearer {token}");
    let bytes = std::fs::read(archive).unwrap();
    server.reset_peak_memory();
    let started = Instant::now();
    let mut answer = Vec::new();
    let (status, _) =
        http(&server.address, "POST", "/api/v1/user-data/import", &[("Authorization", &bearer)], &bytes, &mut answer);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let uploaded = started.elapsed().as_secs_f64();
    let job =
        String::from_utf8(answer).unwrap().split("\"jobId\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    loop {
        let mut status_body = Vec::new();
        http(
            &server.address,
            "GET",
            &format!("/api/v1/user-data/import/{job}/status"),
            &[("Authorization", &bearer)],
            b"",
            &mut status_body,
        );
        let text = String::from_utf8(status_body).unwrap();
        if text.contains("\"status\":\"complete\"") || text.contains("\"status\":\"failed\"") {
            assert!(text.contains("\"status\":\"complete\""), "{text}");
            return (started.elapsed().as_secs_f64(), uploaded, text);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn fresh_target(label: &str) -> (std::path::PathBuf, Server, String) {
    let dir = scratch(label);
    let data = dir.join("data");
    run_lvbak(&["user", "add", "target", "--password", "target-password", "--data-dir", data.to_str().unwrap()]);
    let server = Server::start(&data);
    let token = login(&server.address, "target", "target-password");
    (dir, server, token)
}

/// The benchmark account of `characters` characters, exported: its scratch folder and
/// the archive.
fn bench_archive(label: &str, characters: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let source = scratch(label);
    let data = source.join("data");
    let data_arg = data.to_str().unwrap();
    seed_bulk_account(data_arg, characters);
    let archive = source.join("bench.lvbak");
    run_lvbak(&["export", "--user", "bench", "-o", archive.to_str().unwrap(), "--data-dir", data_arg]);
    (source, archive)
}

fn rows_benchmark(characters: usize, runs: usize) {
    let (source, archive) = bench_archive(&format!("import-source-{characters}"), characters);
    for _ in 0..runs {
        let (dir, server, token) = fresh_target(&format!("import-{characters}"));
        // Start from a synced disk, not beside the seeding's (or the last run's) writeback.
        assert!(std::process::Command::new("sync").status().unwrap().success());
        let written_before = server.written_mb();
        let (seconds, uploaded, status) = upload_and_wait(&server, &token, &archive);
        let peak = server.peak_memory_mib();
        let written = server.written_mb() - written_before;
        let archive_mb = std::fs::metadata(&archive).unwrap().len() as f64 / 1e6;
        let imported = summary_rows(&serde_json::from_str(&status).unwrap());
        println!(
            "import {characters} characters: {imported} rows in {seconds:.2} s (upload {uploaded:.2} s) = {:.0} rows/s; server peak RSS {peak:.1} MiB; \
             written {written:.0} MB (archive {archive_mb:.1} MB)",
            imported as f64 / seconds
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&source);
}

/// The benchmark archive imported over loopback and exported with `lvbak export`, by an
/// instance on each backend one after the other in one run: SQLite and the data directory,
/// PostgreSQL (the tests' private cluster) with files in the data directory, and PostgreSQL
/// with files and vectors in the tests' S3 server (SeaweedFS); rows/s of each and the
/// ratio to SQLite's (issue 22's goal: PostgreSQL at least half of SQLite's).
fn backends_benchmark(characters: usize) {
    let (source, archive) = bench_archive(&format!("backends-source-{characters}"), characters);
    let database = lvbak_tests::postgres_server::test_database();
    let with_s3 = lvbak_tests::postgres_server::test_database();
    let s3 = lvbak_tests::s3_server::test_prefix();
    let mut s3_env = s3.env();
    s3_env.push(("LVBAK_DATABASE_URL".into(), with_s3.url.clone()));
    let backends: Vec<(&str, Vec<(String, String)>)> = vec![
        ("SQLite + data directory", Vec::new()),
        ("PostgreSQL + data directory", vec![("LVBAK_DATABASE_URL".into(), database.url.clone())]),
        ("PostgreSQL + S3", s3_env),
    ];
    let mut first: Option<(f64, f64)> = None;
    for (name, env) in backends {
        let dir = scratch("backends-target");
        let data = dir.join("data");
        let data_arg = data.to_str().unwrap();
        run_lvbak_with(&["user", "add", "target", "--password", "target-password", "--data-dir", data_arg], &env);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::start_with(&data, &pairs);
        let token = login(&server.address, "target", "target-password");
        let (seconds, _, status) = upload_and_wait(&server, &token, &archive);
        let rows = summary_rows(&serde_json::from_str(&status).unwrap());
        drop(server);
        let out = dir.join("out.lvbak");
        let started = Instant::now();
        run_lvbak_with(&["export", "--user", "target", "-o", out.to_str().unwrap(), "--data-dir", data_arg], &env);
        let exported = started.elapsed().as_secs_f64();
        let (import_rate, export_rate) = (rows as f64 / seconds, rows as f64 / exported);
        let (import_base, export_base) = *first.get_or_insert((import_rate, export_rate));
        println!(
            "backends, {characters} characters, {name}: import {rows} rows in {seconds:.2} s = {import_rate:.0} rows/s              ({:.2}x SQLite's); export {exported:.2} s = {export_rate:.0} rows/s ({:.2}x SQLite's)",
            import_rate / import_base,
            export_rate / export_base
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&source);
}

/// Rows imported, by a job status's per-table summary (Lumiverse's and lvbak's alike).
fn summary_rows(status: &serde_json::Value) -> u64 {
    let tables = status["summary"].as_object().expect("a summary");
    tables.values().map(|table| table["imported"].as_u64().unwrap_or(0)).sum()
}

/// The real Lumiverse 1.1 importer (`../shared/peer-lumiverse`, set up by its `setup.sh`):
/// `LVBAK_PEER`, else `$TMPDIR/peer/peer-import`, if it is there.
fn lumiverse_peer() -> Option<std::path::PathBuf> {
    let peer = std::env::var_os("LVBAK_PEER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("peer").join("peer-import"));
    peer.exists().then_some(peer)
}

/// Lumiverse 1.1's importer and lvbak's on the same archive, one after the other in one
/// run, `runs` times each: wall time from upload to a complete job (Lumiverse's as its
/// driver measures it, through Lumiverse's own HTTP routes), rows/s and the ratio.
fn lumiverse_benchmark(characters: usize, runs: usize) {
    let Some(peer) = lumiverse_peer() else {
        println!(
            "lumiverse {characters} characters: skipped (no Lumiverse 1.1 importer; set it up with \
             ../shared/peer-lumiverse/setup.sh, or point LVBAK_PEER at its peer-import)"
        );
        return;
    };
    let (source, archive) = bench_archive(&format!("lumiverse-source-{characters}"), characters);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..runs {
        let (dir, server, token) = fresh_target(&format!("lumiverse-lvbak-{characters}"));
        assert!(std::process::Command::new("sync").status().unwrap().success());
        let (seconds, _, status) = upload_and_wait(&server, &token, &archive);
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        rows = summary_rows(&status);
        ours.push(seconds);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);

        let out = source.join("lumiverse.json");
        assert!(std::process::Command::new("sync").status().unwrap().success());
        let status = std::process::Command::new(&peer)
            .arg(&archive)
            .args(["--no-hash", "--timeout-s", "3600", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "Lumiverse's import of the archive did not complete");
        let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let their_rows = summary_rows(&result["first"]);
        assert_eq!(their_rows, rows, "Lumiverse and lvbak imported different numbers of rows");
        theirs.push(result["first"]["wallMs"].as_f64().unwrap() / 1000.0);
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let (ours, theirs) = (median(&mut ours), median(&mut theirs));
    println!(
        "lumiverse {characters} characters, {rows} rows (median of {runs}): Lumiverse 1.1 {theirs:.2} s = {:.0} rows/s, \
         lvbak {ours:.2} s = {:.0} rows/s: {:.1}x Lumiverse",
        rows as f64 / theirs,
        rows as f64 / ours,
        theirs / ours
    );
    let _ = std::fs::remove_dir_all(&source);
}

/// The same archive imported by two accounts of one instance: the first gets the archive's
/// ids, the second has every row copied under new ids (with its references rewritten).
fn remap_benchmark(characters: usize) {
    let (source, archive) = bench_archive(&format!("remap-source-{characters}"), characters);
    let (dir, server, first) = fresh_target(&format!("remap-{characters}"));
    let target_data = dir.join("data");
    run_lvbak(&["user", "add", "second", "--password", "second-password", "--data-dir", target_data.to_str().unwrap()]);
    let second = login(&server.address, "second", "second-password");
    let count = |status: &str, field: &str| -> u64 {
        status
            .split(&format!("\"{field}\":"))
            .skip(1)
            .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u64>().ok()))
            .sum()
    };
    let (plain, _, status) = upload_and_wait(&server, &first, &archive);
    let rows = count(&status, "imported");
    let (copied, _, status) = upload_and_wait(&server, &second, &archive);
    let remapped = count(&status, "remapped");
    println!(
        "remap {characters} characters: first account {rows} rows in {plain:.2} s = {:.0} rows/s; second account \
         (all {remapped} ids another user's, copied) {copied:.2} s = {:.0} rows/s ({:.2}x the time); peak RSS {:.1} MiB",
        rows as f64 / plain,
        count(&status, "imported") as f64 / copied,
        copied / plain,
        server.peak_memory_mib()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&source);
}

/// A restore preview (`lvbak import --dry-run`) of the benchmark archive: against the
/// account holding it (every row read and compared), against another account (every id
/// someone else's), and of one picked character (`--only`: its closure over the archive,
/// then its preview). Issue 23's targets: a preview of 100,000 rows under 5 s; one
/// character's closure in a 100,000-character archive under 2 s (in the Worker; this is
/// the CLI's).
fn preview_benchmark(characters: usize) {
    let (source, archive) = bench_archive(&format!("preview-source-{characters}"), characters);
    let data = source.join("data");
    let (data_arg, archive_arg) = (data.to_str().unwrap(), archive.to_str().unwrap());
    run_lvbak(&["user", "add", "other", "--password", "other-password", "--data-dir", data_arg]);
    let character: String = rusqlite::Connection::open(data.join("lvbak.sqlite"))
        .unwrap()
        .query_row("SELECT id FROM characters ORDER BY rowid LIMIT 1", [], |row| row.get(0))
        .unwrap();
    let pick = format!("character:{character}");
    let timed = |args: &[&str]| {
        let started = Instant::now();
        run_lvbak(args);
        started.elapsed().as_secs_f64()
    };
    fn preview<'a>(archive: &'a str, user: &'a str, data: &'a str) -> Vec<&'a str> {
        vec!["import", archive, "--user", user, "--dry-run", "--json", "--data-dir", data]
    }
    let own = timed(&preview(archive_arg, "bench", data_arg));
    let other = timed(&preview(archive_arg, "other", data_arg));
    let mut picked = preview(archive_arg, "other", data_arg);
    picked.extend(["--only", &pick]);
    let one = timed(&picked);
    println!(
        "preview {characters} characters: against the account holding them {own:.2} s, against another account \
         {other:.2} s (target: under 5 s); one character picked (closure over the archive, then its preview) {one:.2} s \
         (target: under 2 s)"
    );
    // The page's way: the rows sent as batches to a preview job of the served instance.
    let server = Server::start(&data);
    let bytes = std::fs::read(&archive).unwrap();
    let own_http = http_preview(&server.address, &login(&server.address, "bench", "bench-password"), &bytes);
    let other_http = http_preview(&server.address, &login(&server.address, "other", "other-password"), &bytes);
    println!(
        "preview {characters} characters over HTTP (the page's batch path, rows sent): against the account holding \
         them {own_http:.2} s, against another account {other_http:.2} s"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&source);
}

/// A restore preview the page's way, timed from opening the job to the commit's answer:
/// lvbak-core's uploader sends the archive's rows to a preview job over loopback.
fn http_preview(address: &str, token: &str, archive: &[u8]) -> f64 {
    use lvbak_core::upload::{file_claims, upload_batches, BatchSink, HeldRows, UploadPlan, UploadProgress};
    struct Sink<'a> {
        address: &'a str,
        bearer: String,
        job: String,
    }
    impl BatchSink for Sink<'_> {
        fn send(&mut self, number: u64, batch: &[u8]) -> lvbak_core::Result<()> {
            use sha2::Digest as _;
            let hash = hex::encode(sha2::Sha256::digest(batch));
            let path = format!("/api/v1/user-data/import/{}/batches/{number}", self.job);
            let headers = [("Authorization", self.bearer.as_str()), ("X-Batch-Sha256", hash.as_str())];
            let reply = common::request(self.address, "PUT", &path, &headers, batch);
            assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
            Ok(())
        }
        fn progress(&mut self, _: &UploadProgress) {}
        fn vectors_accepted(&mut self) -> lvbak_core::Result<bool> {
            Ok(false)
        }
    }
    let started = Instant::now();
    let opened = lvbak_core::Archive::open(std::io::Cursor::new(archive), lvbak_core::Limits::STANDARD).unwrap();
    let bearer = format!("Bearer {token}");
    let json = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let body = serde_json::json!({"manifest": opened.manifest(), "files": file_claims(&opened), "preview": true});
    let reply =
        common::request(address, "POST", "/api/v1/user-data/import/batches", &json, body.to_string().as_bytes());
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    let opened_job = reply.json();
    let job = opened_job["jobId"].as_str().unwrap().to_string();
    let held_files =
        opened_job["heldFiles"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
    let held = common::request(address, "GET", &format!("/api/v1/user-data/import/{job}/held-rows"), &json, b"");
    let held = HeldRows::parse(&held.body).unwrap();
    let plan = UploadPlan { held_files, held_rows: held.tables, fresh_tables: held.fresh, ..UploadPlan::default() };
    let mut sink = Sink { address, bearer: bearer.clone(), job: job.clone() };
    let report = upload_batches(&opened, plan, &mut sink).unwrap();
    let commit = serde_json::json!({"batches": report.batches}).to_string();
    let reply =
        common::request(address, "POST", &format!("/api/v1/user-data/import/{job}/commit"), &json, commit.as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    started.elapsed().as_secs_f64()
}

/// Imports measured per case in the tenancy benchmark.
const TENANCY_IMPORTS: usize = 7;

/// Per-user cost against instance size: a small (demo-sized) account imported into an
/// instance holding nothing else, and into one where another user holds `others`
/// characters (`--others N`, default 1,000,000) and `messages` messages (`--others-messages
/// N`, default none).
fn tenancy_benchmark(others: usize, messages: usize) {
    let source = scratch("tenancy-source");
    let data = source.join("data");
    let data_arg = data.to_str().unwrap();
    run_lvbak(&["user", "add", "small", "--password", "small-password", "--data-dir", data_arg]);
    run_lvbak(&["seed", "--user", "small", "--data-dir", data_arg]);
    let archive = source.join("small.lvbak");
    run_lvbak(&[
        "export",
        "--user",
        "small",
        "--include-vectors",
        "-o",
        archive.to_str().unwrap(),
        "--data-dir",
        data_arg,
    ]);
    // One instance per case (the other user's characters seeded before the server starts,
    // as on an instance that already holds them), the demo archive imported into seven
    // fresh accounts in turn: the median, and the spread, of those seven.
    let imports = |label: &str, others: usize| -> Vec<f64> {
        let dir = scratch(&format!("tenancy-{label}"));
        let data = dir.join("data");
        let data_arg = data.to_str().unwrap();
        if others > 0 {
            seed_bulk_account_with_messages(data_arg, others, messages);
        }
        let users: Vec<String> = (1..=TENANCY_IMPORTS).map(|n| format!("target{n}")).collect();
        for user in &users {
            run_lvbak(&["user", "add", user, "--password", "target-password", "--data-dir", data_arg]);
        }
        let server = Server::start(&data);
        let mut times: Vec<f64> = users
            .iter()
            .map(|user| {
                let token = login(&server.address, user, "target-password");
                // Each import starts from a synced disk.
                assert!(std::process::Command::new("sync").status().unwrap().success());
                upload_and_wait(&server, &token, &archive).0
            })
            .collect();
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        times.sort_by(f64::total_cmp);
        times
    };
    let empty = imports("empty", 0);
    let crowded = imports("crowded", others);
    let median = |times: &[f64]| times[times.len() / 2];
    println!(
        "tenancy: a demo account imported in {:.3} s on an empty instance ({:.3}-{:.3}), {:.3} s beside {others} \
         characters and {messages} messages of another user ({:.3}-{:.3}) = {:.2}x (medians of {TENANCY_IMPORTS})",
        median(&empty),
        empty[0],
        empty[empty.len() - 1],
        median(&crowded),
        crowded[0],
        crowded[crowded.len() - 1],
        median(&crowded) / median(&empty)
    );
    let _ = std::fs::remove_dir_all(&source);
}

/// A 1 GiB archive with one incompressible databank document, its entry stored or deflated.
fn big_file_archive(path: &Path, deflated: bool) -> u64 {
    const SIZE: usize = 1 << 30;
    let document = "9b7e1c52-1111-4c2b-8a55-0d3e6f7a8b9c";
    let manifest = lvbak_core::Manifest::new("5a0c2f18-2222-4a9e-9d1b-6e2f3a4b5c6d", 1_795_313_867);
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, File::create(path).unwrap()));
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(3));
    zip.start_file("manifest.json", deflate).unwrap();
    zip.write_all(&manifest.to_json()).unwrap();
    zip.start_file("database/databanks.ndjson", deflate).unwrap();
    zip.write_all(b"{\"id\":\"db-bench\",\"user_id\":\"u\",\"name\":\"Bench\",\"scope\":\"global\",\"created_at\":1,\"updated_at\":1}\n").unwrap();
    zip.start_file("database/databank_documents.ndjson", deflate).unwrap();
    let row = format!(
        "{{\"id\":\"{document}\",\"databank_id\":\"db-bench\",\"user_id\":\"u\",\"name\":\"big\",\"slug\":\"big\",\"file_path\":\"big.bin\",\"created_at\":1,\"updated_at\":1}}\n"
    );
    zip.write_all(row.as_bytes()).unwrap();
    let method = if deflated { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(deflated.then_some(3))
        .large_file(true);
    zip.start_file(format!("files/databank/{document}__big.bin"), options).unwrap();
    // xorshift64*: incompressible, and fast to make.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..SIZE / block.len() {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        zip.write_all(&block).unwrap();
    }
    zip.finish().unwrap().flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn file_benchmark(deflated: bool) {
    let label = if deflated { "deflated" } else { "stored" };
    let (dir, server, token) = fresh_target(&format!("import-file-{label}"));
    let archive = dir.join("big.lvbak");
    let size = big_file_archive(&archive, deflated);
    // cp of the same archive, from the page cache with no writeback pending, as the
    // yardstick; each measured phase starts from a synced disk.
    let sync = || assert!(std::process::Command::new("sync").status().unwrap().success());
    let copy = dir.join("copy.bin");
    let _ = std::fs::read(&archive).map(|b| b.len());
    sync();
    let started = Instant::now();
    let status = std::process::Command::new("cp").arg(&archive).arg(&copy).status().unwrap();
    assert!(status.success());
    let cp_seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&copy).unwrap();
    sync();
    let (seconds, uploaded, _) = upload_and_wait(&server, &token, &archive);
    let peak = server.peak_memory_mib();
    let applying = seconds - uploaded;
    let mb = (1u64 << 30) as f64 / 1e6;
    // The same archive through `lvbak import`, read where it lies.
    let direct = dir.join("direct");
    let direct_arg = direct.to_str().unwrap();
    run_lvbak(&["user", "add", "direct", "--password", "direct-password", "--data-dir", direct_arg]);
    sync();
    let started = Instant::now();
    run_lvbak(&["import", "--user", "direct", archive.to_str().unwrap(), "--data-dir", direct_arg]);
    let direct_seconds = started.elapsed().as_secs_f64();
    println!(
        "import 1 GiB {label} file with lvbak import (archive read in place, the file written once): {direct_seconds:.2} s = {:.0} MB/s",
        mb / direct_seconds
    );
    println!(
        "import 1 GiB {label} file ({:.2} GB archive): {seconds:.2} s end to end = {:.0} MB/s (upload {uploaded:.2} s, apply {applying:.2} s = {:.0} MB/s); \
         cp of the archive {cp_seconds:.2} s = {:.0} MB/s; server peak RSS {peak:.1} MiB",
        size as f64 / 1e9,
        mb / seconds,
        mb / applying,
        size as f64 / 1e6 / cp_seconds,
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let named = args.iter().filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err()).count();
    let want = |name: &str| named == 0 || args.iter().any(|a| a == name);
    let runs =
        args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(1);
    if want("rows") {
        rows_benchmark(100_000, runs);
        rows_benchmark(500_000, runs);
    }
    if want("lumiverse") {
        lumiverse_benchmark(100_000, runs);
        lumiverse_benchmark(500_000, runs);
    }
    if want("tenancy") {
        let others = args
            .iter()
            .position(|a| a == "--others")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        let messages = args
            .iter()
            .position(|a| a == "--others-messages")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        tenancy_benchmark(others, messages);
    }
    if want("backends") {
        backends_benchmark(100_000);
    }
    if want("remap") {
        remap_benchmark(100_000);
        remap_benchmark(500_000);
    }
    if want("preview") {
        preview_benchmark(100_000);
    }
    if want("stored") {
        file_benchmark(false);
    }
    if want("deflated") {
        file_benchmark(true);
    }
}
