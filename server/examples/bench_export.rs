//! Benchmark (prints figures, asserts nothing about time): export of accounts of 100,000
//! and 500,000 characters with ~1 KB descriptions, through the real server over loopback:
//! rows/s, archive bytes, wall time from request to last byte, and the server's peak RSS
//! over that span. Run with `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use common::{http, login, scratch, seed_bulk_account, Server};

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
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
