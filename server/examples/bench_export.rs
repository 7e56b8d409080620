//! Benchmark (prints figures, asserts nothing about time): export of accounts of 100,000
//! and 500,000 characters with ~1 KB descriptions, through the real server over loopback:
//! rows/s, archive bytes, wall time from request to last byte, and the server's peak RSS
//! over that span; and (`tenancy [--others N]`) a demo-sized account exported from an
//! instance holding nothing else and from one where another user holds N characters
//! (1,000,000 by default), median of 3 each. Run with `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use common::{http, login, median_of_3, run_lvbak, scratch, seed_bulk_account, Server};

/// Seconds to export `user`'s account (request to last byte).
fn export_seconds(server: &Server, user: &str, password: &str) -> f64 {
    let token = login(&server.address, user, password);
    let bearer = format!("Bearer {token}");
    let started = Instant::now();
    let (status, _) = http(
        &server.address,
        "GET",
        "/api/v1/user-data/export?includeVectors=1",
        &[("Authorization", &bearer)],
        b"",
        &mut std::io::sink(),
    );
    assert_eq!(status, 200);
    started.elapsed().as_secs_f64()
}

/// Per-user cost against instance size: the same demo account exported beside nothing
/// and beside `others` characters of another user.
fn tenancy_benchmark(others: usize) {
    let median = |label: &str, others: usize| -> f64 {
        median_of_3(|run| {
            let dir = scratch(&format!("export-tenancy-{label}-{run}"));
            let data = dir.join("data");
            let data_arg = data.to_str().unwrap();
            if others > 0 {
                seed_bulk_account(data_arg, others);
            }
            run_lvbak(&["user", "add", "small", "--password", "small-password", "--data-dir", data_arg]);
            run_lvbak(&["seed", "--user", "small", "--data-dir", data_arg]);
            let server = Server::start(&data);
            // The first export warms the page cache; the second is measured.
            export_seconds(&server, "small", "small-password");
            let seconds = export_seconds(&server, "small", "small-password");
            drop(server);
            let _ = std::fs::remove_dir_all(&dir);
            seconds
        })
    };
    let empty = median("empty", 0);
    let crowded = median("crowded", others);
    println!(
        "tenancy: a demo account exported in {empty:.3} s on an empty instance, {crowded:.3} s beside {others} \
         characters of another user ({:.2}x)",
        crowded / empty
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "tenancy") {
        let others = args
            .iter()
            .position(|a| a == "--others")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return tenancy_benchmark(others);
    }
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![100_000, 500_000] } else { sizes };
    for characters in sizes {
        let dir = scratch(&format!("export-{characters}"));
        let data = dir.join("data");
        let data_arg = data.to_str().unwrap();
        let seeding = Instant::now();
        seed_bulk_account(data_arg, characters);
        let seeded = seeding.elapsed().as_secs_f64();
        let server = Server::start(&data);
        let token = login(&server.address, "bench", "bench-password");
        let bearer = format!("Bearer {token}");
        let path = dir.join("export.lvbak");
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
        server.reset_peak_memory();
        let started = Instant::now();
        let (status, bytes) = http(
            &server.address,
            "GET",
            "/api/v1/user-data/export?includeVectors=0",
            &[("Authorization", &bearer)],
            b"",
            &mut file,
        );
        let seconds = started.elapsed().as_secs_f64();
        let peak = server.peak_memory_mib();
        drop(file);
        assert_eq!(status, 200);
        let inspection = lvbak_core::check_archive(File::open(&path).unwrap(), lvbak_core::Limits::STANDARD).unwrap();
        let rows: u64 = inspection.counts.iter().map(|(_, rows)| rows).sum();
        println!(
            "export {characters} characters: {rows} rows in {seconds:.2} s = {:.0} rows/s; {bytes} archive bytes ({:.1} MB); \
             server peak RSS {peak:.1} MiB (seeding took {seeded:.1} s)",
            rows as f64 / seconds,
            bytes as f64 / 1e6
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
