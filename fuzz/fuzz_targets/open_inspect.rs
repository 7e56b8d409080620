//! Fuzz target: any bytes through archive opening, inspection (with row counting) and full
//! verification, under small caps. It must never panic, hang or allocate past the caps.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use lvbak_core::{inspect, Archive, InspectOptions, Limits};

const LIMITS: Limits = Limits {
    max_archive_bytes: 1 << 20,
    max_decompressed_bytes: 4 << 20,
    max_line_bytes: 64 << 10,
    max_legacy_line_bytes: 256 << 10,
    max_entries: 1000,
    max_metadata_bytes: 64 << 10,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mut archive) = Archive::open(Cursor::new(data), LIMITS) else {
        return;
    };
    let _ = inspect(&mut archive, InspectOptions { count_rows: true });
    let _ = archive.verify_all(|_| {});
});
