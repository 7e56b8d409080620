//! The caps of FORMAT §7 as one value, so tests and callers can tighten them.

/// Every size and count cap an archive is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The archive file itself.
    pub max_archive_bytes: u64,
    /// All entries together, counted as inflated bytes actually produced.
    pub max_decompressed_bytes: u64,
    /// One NDJSON line when the manifest has `ndjsonFormatVersion`.
    pub max_line_bytes: u64,
    /// One NDJSON line in older archives without `ndjsonFormatVersion`.
    pub max_legacy_line_bytes: u64,
    /// Entries in the central directory.
    pub max_entries: u64,
    /// manifest.json, manifest-stats.json and secrets/index.json, each, decompressed.
    pub max_metadata_bytes: u64,
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

impl Limits {
    /// The caps Lumiverse documents.
    pub const STANDARD: Limits = Limits {
        max_archive_bytes: 5 * GIB,
        max_decompressed_bytes: 20 * GIB,
        max_line_bytes: 4 * MIB,
        max_legacy_line_bytes: 64 * MIB,
        max_entries: 500_000,
        max_metadata_bytes: 16 * MIB,
    };

    /// The line cap that applies to an archive, by whether its manifest declares
    /// `ndjsonFormatVersion`.
    pub fn line_cap(&self, has_ndjson_format_version: bool) -> u64 {
        if has_ndjson_format_version {
            self.max_line_bytes
        } else {
            self.max_legacy_line_bytes
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::STANDARD
    }
}
