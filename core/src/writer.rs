//! Writing a `.lvbak` into any `Write` (a file, or a pipe feeding an HTTP response): the
//! `zip` crate's streaming writer (data descriptors, ZIP64 where needed) in the layout
//! Lumiverse uses — manifest first, NDJSON deflated at level 3, files stored, stats trailer.
//! Every name written goes through the same sanitizer the reader uses.

use std::io::{self, Read, Write};

use serde::Serialize;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::calendar::UtcTime;
use crate::entry_name::classify_entry_name;
use crate::error::{FormatError, Result};
use crate::manifest::{Manifest, ManifestStats, MANIFEST_ENTRY, STATS_ENTRY};
use crate::ndjson::ensure_line_fits;
use crate::secrets::{EncryptedSecret, SecretsIndex, SECRETS_BLOB_ENTRY, SECRETS_INDEX_ENTRY};

/// Deflate level Lumiverse uses for NDJSON and JSON entries.
const DEFLATE_LEVEL: i64 = 3;

/// Whether an entry may grow past 4 GiB (and so needs ZIP64 fields from its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntrySize {
    Small,
    MayExceed4GiB,
}

/// Writes one archive, entry by entry.
pub struct ArchiveWriter<W: Write> {
    zip: ZipWriter<StreamWriter<W>>,
    modified: DateTime,
    line_cap: u64,
    current: Option<String>,
    rows_in_current: u64,
    line: Vec<u8>,
}

fn zip_error(error: zip::result::ZipError) -> FormatError {
    FormatError::Io(io::Error::other(error))
}

/// A unix time as a ZIP (MS-DOS) timestamp, UTC; times a ZIP cannot hold give 1980-01-01.
pub fn zip_datetime(unix_seconds: i64) -> DateTime {
    let time = UtcTime::from_unix(unix_seconds);
    u16::try_from(time.year)
        .ok()
        .and_then(|year| {
            DateTime::from_date_and_time(year, time.month, time.day, time.hour, time.minute, time.second).ok()
        })
        .unwrap_or_default()
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive whose entries carry `exported_at` as their modification time;
    /// NDJSON lines are held to `line_cap` bytes.
    pub fn new(writer: W, exported_at: i64, line_cap: u64) -> Self {
        Self {
            zip: ZipWriter::new_stream(writer),
            modified: zip_datetime(exported_at),
            line_cap,
            current: None,
            rows_in_current: 0,
            line: Vec::new(),
        }
    }

    fn start(&mut self, name: &str, method: CompressionMethod, size: EntrySize) -> Result<()> {
        classify_entry_name(name.as_bytes())?;
        let mut options = SimpleFileOptions::default()
            .compression_method(method)
            .last_modified_time(self.modified)
            .unix_permissions(0o644)
            .large_file(size == EntrySize::MayExceed4GiB);
        if method == CompressionMethod::Deflated {
            options = options.compression_level(Some(DEFLATE_LEVEL));
        }
        self.zip.start_file(name, options).map_err(zip_error)?;
        self.current = Some(name.to_string());
        self.rows_in_current = 0;
        Ok(())
    }

    /// Writes `manifest.json` (deflated, pretty-printed).
    pub fn write_manifest(&mut self, manifest: &Manifest) -> Result<()> {
        self.start(MANIFEST_ENTRY, CompressionMethod::Deflated, EntrySize::Small)?;
        self.write_bytes(&manifest.to_json())
    }

    /// Starts a deflated NDJSON entry; follow with [`Self::write_row`].
    pub fn start_ndjson(&mut self, name: &str, size: EntrySize) -> Result<()> {
        self.start(name, CompressionMethod::Deflated, size)
    }

    /// Writes one row as one line of the current NDJSON entry.
    pub fn write_row<T: Serialize + ?Sized>(&mut self, row: &T) -> Result<()> {
        let entry = self.current.clone().unwrap_or_default();
        self.line.clear();
        serde_json::to_writer(&mut self.line, row).map_err(|error| FormatError::BadJson {
            entry: entry.clone(),
            line: self.rows_in_current + 1,
            detail: error.to_string(),
        })?;
        ensure_line_fits(&entry, self.rows_in_current + 1, self.line.len(), self.line_cap)?;
        self.line.push(b'\n');
        self.zip.write_all(&self.line).map_err(FormatError::Io)?;
        self.rows_in_current += 1;
        Ok(())
    }

    /// Writes complete NDJSON lines encoded by the caller, who has held each to
    /// [`Self::line_cap`] with [`ensure_line_fits`]; `rows` is how many lines they are.
    pub fn write_lines(&mut self, lines: &[u8], rows: u64) -> Result<()> {
        self.zip.write_all(lines).map_err(FormatError::Io)?;
        self.rows_in_current += rows;
        Ok(())
    }

    /// The longest NDJSON line this writer accepts.
    pub fn line_cap(&self) -> u64 {
        self.line_cap
    }

    /// Rows written to the current NDJSON entry.
    pub fn rows_in_current(&self) -> u64 {
        self.rows_in_current
    }

    /// Writes a stored file entry from `data`, returning the bytes copied.
    pub fn write_file(&mut self, name: &str, data: &mut dyn Read, size: EntrySize) -> Result<u64> {
        self.start(name, CompressionMethod::Stored, size)?;
        io::copy(data, &mut self.zip).map_err(FormatError::Io)
    }

    /// Writes `secrets/index.json` and `secrets/encrypted.ndjson`.
    pub fn write_secrets(&mut self, index: &SecretsIndex, records: &[EncryptedSecret]) -> Result<()> {
        self.start(SECRETS_INDEX_ENTRY, CompressionMethod::Deflated, EntrySize::Small)?;
        self.write_bytes(&index.to_line())?;
        self.start_ndjson(SECRETS_BLOB_ENTRY, EntrySize::Small)?;
        for record in records {
            self.write_row(record)?;
        }
        Ok(())
    }

    /// Writes the `manifest-stats.json` trailer.
    pub fn write_stats(&mut self, stats: &ManifestStats) -> Result<()> {
        self.start(STATS_ENTRY, CompressionMethod::Deflated, EntrySize::Small)?;
        self.write_bytes(&stats.to_json())
    }

    /// Writes raw bytes to the current entry.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.zip.write_all(bytes).map_err(FormatError::Io)
    }

    /// Finishes the archive (central directory and end records) and returns the writer.
    pub fn finish(self) -> Result<W> {
        let mut inner = self.zip.finish().map_err(zip_error)?.into_inner();
        inner.flush().map_err(FormatError::Io)?;
        Ok(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_dates() {
        let date = zip_datetime(1_795_313_960);
        let fields = (date.year(), date.month(), date.day(), date.hour(), date.minute(), date.second());
        assert_eq!(fields, (2026, 11, 22, 2, 19, 20));
        assert_eq!(zip_datetime(0), DateTime::default());
    }
}
