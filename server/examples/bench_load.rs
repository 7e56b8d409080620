//! Load benchmark (prints figures, asserts counts but nothing about time): eight users of
//! one real `lvbak serve` at once, each importing an archive of 100,000 characters of its
//! own and then exporting its account, while a ninth user signs in over and over. Prints
//! wall time, per-user times, the server's peak RSS and sign-in latency (p50, p99, max).
//! Goals (issue 8): peak RSS < 300 MiB, sign-in p99 < 1 s. Run with `scripts/bench`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{request, run_lvbak, scratch, status_field, Server};
use serde_json::json;

const USERS: usize = 8;
const CHARACTERS: usize = 100_000;

fn login(address: &str, name: &str) -> String {
    let body = json!({"username": name, "password": format!("pw-{name}")}).to_string();
    let reply =
        request(address, "POST", "/api/v1/auth/login", &[("Content-Type", "application/json")], body.as_bytes());
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["token"].as_str().unwrap().to_string()
}

fn main() {
    let dir = scratch("load");
    let source = dir.join("source");
    let source_arg = source.to_str().unwrap();
    let started = Instant::now();
    let mut archives = Vec::new();
    for n in 0..USERS {
        let name = format!("source-{n}");
        run_lvbak(&["user", "add", &name, "--password", "x", "--data-dir", source_arg]);
        let bulk = CHARACTERS.to_string();
        let none = ["--characters", "0", "--chats", "0", "--images", "0", "--vectors", "0", "--secrets", "0"];
        let mut args = vec!["seed", "--user", name.as_str(), "--bulk-characters", &bulk, "--data-dir", source_arg];
        args.extend(none);
        run_lvbak(&args);
        let out = dir.join(format!("{name}.lvbak"));
        run_lvbak(&["export", "--user", &name, "-o", out.to_str().unwrap(), "--data-dir", source_arg]);
        archives.push(std::fs::read(&out).unwrap());
    }
    println!(
        "prepared {USERS} archives of {CHARACTERS} characters ({:.1} MB each) in {:.0} s",
        archives[0].len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    for n in 0..=USERS {
        run_lvbak(&[
            "user",
            "add",
            &format!("user-{n}"),
            "--password",
            &format!("pw-user-{n}"),
            "--data-dir",
            data_arg,
        ]);
    }
    // Sign-in limits are per address, and every client here is 127.0.0.1.
    let server = Server::start_with(&data, &[("LVBAK_HOSTING", "login_burst=100000")]);
    let address = server.address.clone();
    server.reset_peak_memory();
    let baseline = server.memory_mib();

    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pid, running) = (server.child.id(), running.clone());
        std::thread::spawn(move || {
            let mut peaks = [0.0f64; 4];
            while running.load(Ordering::Relaxed) {
                for (peak, field) in peaks.iter_mut().zip(["RssAnon", "RssFile", "RssShmem", "Threads"]) {
                    *peak = peak.max(status_field(pid, field).unwrap_or(0.0));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peaks
        })
    };
    let prober = {
        let (address, running) = (address.clone(), running.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while running.load(Ordering::Relaxed) {
                let at = Instant::now();
                login(&address, &format!("user-{USERS}"));
                latencies.push(at.elapsed().as_secs_f64());
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = archives
        .into_iter()
        .enumerate()
        .map(|(n, archive)| {
            let address = address.clone();
            std::thread::spawn(move || {
                let token = login(&address, &format!("user-{n}"));
                let bearer = format!("Bearer {token}");
                let headers = [("Authorization", bearer.as_str())];
                let at = Instant::now();
                let reply = request(&address, "POST", "/api/v1/user-data/import", &headers, &archive);
                assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
                let job = reply.json()["jobId"].as_str().unwrap().to_string();
                let status = loop {
                    let status =
                        request(&address, "GET", &format!("/api/v1/user-data/import/{job}/status"), &headers, b"")
                            .json();
                    if matches!(status["status"].as_str(), Some("complete" | "failed" | "cancelled")) {
                        break status;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                assert_eq!(status["status"], "complete", "{status}");
                assert_eq!(status["summary"]["characters"]["imported"], CHARACTERS as u64, "{}", status["summary"]);
                let imported = at.elapsed().as_secs_f64();
                let at = Instant::now();
                let export = request(&address, "GET", "/api/v1/user-data/export", &headers, b"");
                assert_eq!(export.status, 200);
                assert!(export.body.len() > 1_000_000);
                (imported, at.elapsed().as_secs_f64())
            })
        })
        .collect();
    let times: Vec<(f64, f64)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let wall = started.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let mut latencies = prober.join().unwrap();
    let peaks = sampler.join().unwrap();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize] * 1000.0;
    println!("{USERS} users, each importing {CHARACTERS} characters and exporting, at once: {wall:.1} s wall");
    for (n, (import, export)) in times.iter().enumerate() {
        println!("  user-{n}: import {import:.1} s, export {export:.1} s");
    }
    println!("server peak RSS {:.0} MiB ({:.0} MiB at start; goal < 300 MiB)", server.peak_memory_mib(), baseline);
    println!(
        "  peaks by kind: anonymous {:.0} MiB, file-backed {:.0} MiB, shared {:.0} MiB; threads {}",
        peaks[0] / 1024.0,
        peaks[1] / 1024.0,
        peaks[2] / 1024.0,
        peaks[3]
    );
    println!(
        "sign-in during the run: {} sign-ins, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goal p99 < 1 s)",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
