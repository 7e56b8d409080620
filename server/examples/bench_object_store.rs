//! Benchmark (prints figures, asserts nothing about time): a demo account with many files
//! (`lvbak seed`: an avatar per character, gallery images, vectors) imported over loopback
//! into an instance on its data directory and into one on S3-compatible object storage (a
//! SeaweedFS the benchmark starts, `lvbak_tests::s3_server`), then exported from each:
//! seconds, files/s and the ratio, alternating the two in each run. `--characters N`
//! (default 2,000), `--runs N` (default 3). Run with `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{http, login, run_lvbak_with, scratch, Server};

/// Uploads `archive` and waits for its job; seconds and the job's final status.
fn import(server: &Server, token: &str, archive: &[u8]) -> (f64, String) {
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let mut answer = Vec::new();
    let (status, _) =
        http(&server.address, "POST", "/api/v1/user-data/import", &[("Authorization", &bearer)], archive, &mut answer);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let answer = String::from_utf8(answer).unwrap();
    let job = answer.split("\"jobId\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    loop {
        let mut body = Vec::new();
        let path = format!("/api/v1/user-data/import/{job}/status");
        http(&server.address, "GET", &path, &[("Authorization", &bearer)], b"", &mut body);
        let text = String::from_utf8(body).unwrap();
        if text.contains("\"status\":\"complete\"") || text.contains("\"status\":\"failed\"") {
            assert!(text.contains("\"status\":\"complete\""), "{text}");
            return (started.elapsed().as_secs_f64(), text);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Exports the account with its vectors; seconds and bytes.
fn export(server: &Server, token: &str) -> (f64, u64) {
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let path = "/api/v1/user-data/export?includeVectors=1";
    let (status, bytes) = http(&server.address, "GET", path, &[("Authorization", &bearer)], b"", &mut std::io::sink());
    assert_eq!(status, 200);
    (started.elapsed().as_secs_f64(), bytes)
}

/// A fresh instance (with `env`'s storage) with one account; its folder, server and token.
fn instance(label: &str, env: &[(String, String)]) -> (std::path::PathBuf, Server, String) {
    let dir = scratch(label);
    let data = dir.join("data");
    run_lvbak_with(
        &["user", "add", "target", "--password", "target-password", "--data-dir", data.to_str().unwrap()],
        env,
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let server = Server::start_with(&data, &env);
    let token = login(&server.address, "target", "target-password");
    (dir, server, token)
}

fn files_imported(status: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(status).unwrap();
    value["fileSummary"]["imported"].as_u64().unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let (characters, runs) = (number("--characters", 2_000), number("--runs", 3));
    let source = scratch("object-store-source");
    let data = source.join("data");
    let data_arg = data.to_str().unwrap();
    run_lvbak_with(&["user", "add", "demo", "--password", "x", "--data-dir", data_arg], &[]);
    run_lvbak_with(&["seed", "--user", "demo", "--characters", &characters.to_string(), "--data-dir", data_arg], &[]);
    let archive_path = source.join("demo.lvbak");
    let archive_arg = archive_path.to_str().unwrap();
    run_lvbak_with(&["export", "--user", "demo", "--include-vectors", "-o", archive_arg, "--data-dir", data_arg], &[]);
    let archive = std::fs::read(&archive_path).unwrap();
    println!("archive: {characters} characters, {:.1} MB", archive.len() as f64 / 1e6);

    let mut ratios = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut figures = Vec::new();
        for (name, env) in
            [("data directory", Vec::new()), ("object storage", lvbak_tests::s3_server::test_prefix().env())]
        {
            let (dir, server, token) = instance(&format!("object-store-{run}"), &env);
            let (imported, status) = import(&server, &token, &archive);
            let files = files_imported(&status);
            let (exported, bytes) = export(&server, &token);
            println!(
                "run {run}, {name}: import {imported:.2} s ({:.0} files/s, {files} files), export {exported:.2} s \
                 ({:.1} MB)",
                files as f64 / imported,
                bytes as f64 / 1e6
            );
            figures.push((imported, exported));
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
        }
        ratios.0.push(figures[0].0 / figures[1].0);
        ratios.1.push(figures[0].1 / figures[1].1);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "object storage against the data directory (median of {runs}): import {:.2}x, export {:.2}x the speed",
        median(&mut ratios.0),
        median(&mut ratios.1)
    );
    let _ = std::fs::remove_dir_all(Path::new(&source));
}
