//! lvbak-core: the `.lvbak` account-archive format, shared by the browser (wasm32) and the
//! server. It takes bytes through a caller's `Read + Seek` / `Write` and returns decisions;
//! it never opens files, sockets or clocks itself.
//!
//! Start at [`Archive::open`], then [`inspect()`], [`Archive::verify_all`],
//! [`Archive::for_each_row`] or [`Archive::decrypt_secrets`]. Every failure is a
//! [`FormatError`] with a stable [`FormatError::code`].

pub mod archive;
pub mod batch;
pub mod calendar;
pub mod card;
pub mod closure;
pub mod container;
pub mod entry_name;
pub mod error;
pub mod explore;
pub mod hpke;
pub mod ids;
pub mod import_plan;
pub mod inspect;
pub mod js_number;
pub mod limits;
pub mod line_index;
pub mod manifest;
pub mod ndjson;
pub mod protocol;
pub mod registry;
pub mod row_hash;
pub mod row_stream;
pub mod secrets;
pub mod upload;
pub mod vector;
pub mod writer;

pub use archive::{Archive, SecretOutcome, VerifyProgress};
pub use calendar::UtcTime;
pub use container::{Compression, Entry, EntryReader, ZipContainer};
pub use entry_name::{classify_entry_name, table_entry_name, vector_entry_name, EntryKind, FileBucket};
pub use error::{FormatError, Result};
pub use inspect::{inspect, CountSource, FileTotals, InspectOptions, Inspection, SecretsSummary};
pub use js_number::{js_number, write_js_number};
pub use limits::Limits;
pub use manifest::{EmbeddingConfig, Manifest, ManifestStats};
pub use ndjson::{check_row, parse_row, parse_row_aligned, NdjsonLines, NdjsonWriter, Row, UnknownColumns};
pub use secrets::{EncryptedSecret, SecretKey, SecretSkip, SecretsIndex, Ticket};
pub use vector::{decode_vector, encode_vector};
pub use writer::{ArchiveWriter, EntrySize};

use std::io::{Read, Seek};

/// Opens, inspects and fully verifies an archive: the whole check an untrusted archive
/// gets before anything of it is used.
pub fn check_archive<R: Read + Seek>(reader: R, limits: Limits) -> Result<Inspection> {
    let mut archive = Archive::open(reader, limits)?;
    let inspection = inspect(&mut archive, InspectOptions::default())?;
    archive.verify_all(|_| {})?;
    Ok(inspection)
}
