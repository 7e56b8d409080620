//! An opened `.lvbak`: the validated container plus its manifest, stats trailer and secrets
//! index. From here a caller inspects ([`crate::inspect`]), streams rows, verifies every
//! entry, or decrypts secrets with a ticket.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Seek};

use zeroize::Zeroizing;

use crate::container::{Entry, EntryReader, ZipContainer};
use crate::entry_name::{table_entry_name, vector_entry_name, EntryKind};
use crate::error::{FormatError, Result};
use crate::limits::Limits;
use crate::manifest::{Manifest, ManifestStats, MANIFEST_ENTRY, STATS_ENTRY};
use crate::ndjson::{check_row, parse_row, parse_row_aligned, NdjsonLines, Row, UnknownColumns};
use crate::registry::unused_table;
use crate::secrets::{EncryptedSecret, SecretSkip, SecretsIndex, Ticket, SECRETS_BLOB_ENTRY, SECRETS_INDEX_ENTRY};
use crate::vector::row_vector;

/// Size of the read buffer put in front of each entry when reading lines.
const LINE_BUFFER_BYTES: usize = 256 * 1024;

/// A `.lvbak` whose container and metadata entries passed validation.
pub struct Archive<R> {
    zip: ZipContainer<R>,
    limits: Limits,
    manifest: Manifest,
    stats: Option<ManifestStats>,
    secrets_index: Option<SecretsIndex>,
}

/// The outcome of decrypting one secret.
pub struct SecretOutcome {
    pub key: String,
    pub result: std::result::Result<Zeroizing<String>, SecretSkip>,
}

/// Progress of a full verification pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyProgress {
    pub entries_done: u64,
    pub entries_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl<R: Read + Seek> Archive<R> {
    /// Opens and validates the container, then reads and validates `manifest.json`,
    /// `manifest-stats.json` and `secrets/index.json`. Nothing else is read.
    pub fn open(reader: R, limits: Limits) -> Result<Self> {
        let zip = ZipContainer::open(reader, &limits)?;
        let manifest_index = zip.index_of(MANIFEST_ENTRY).ok_or(FormatError::NoManifest)?;
        let manifest = Manifest::parse(&zip.read_entry(manifest_index, limits.max_metadata_bytes)?)?;
        let stats = match zip.index_of(STATS_ENTRY) {
            Some(index) => Some(ManifestStats::parse(&zip.read_entry(index, limits.max_metadata_bytes)?)?),
            None => None,
        };
        let secrets_index = match zip.index_of(SECRETS_INDEX_ENTRY) {
            Some(index) => Some(SecretsIndex::parse(&zip.read_entry(index, limits.max_metadata_bytes)?)?),
            None => None,
        };
        Ok(Self { zip, limits, manifest, stats, secrets_index })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn stats(&self) -> Option<&ManifestStats> {
        self.stats.as_ref()
    }

    pub fn secrets_index(&self) -> Option<&SecretsIndex> {
        self.secrets_index.as_ref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        self.zip.entries()
    }

    /// The size of the archive file.
    pub fn archive_bytes(&self) -> u64 {
        self.zip.archive_bytes()
    }

    /// The index of the entry with this exact name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.zip.index_of(name)
    }

    /// The entry of a database table, if the archive has one.
    pub fn table_entry(&self, table: &str) -> Option<usize> {
        self.zip.index_of(&table_entry_name(table))
    }

    /// The entry of a vector table, if the archive has one.
    pub fn vector_table_entry(&self, table: &str) -> Option<usize> {
        self.zip.index_of(&vector_entry_name(table))
    }

    /// The tables of this archive an import reads but does not apply, with their entries,
    /// in central-directory order ([`crate::registry::unused_table`] names them).
    pub fn unused_tables(&self) -> Vec<(usize, String)> {
        let entries = self.entries().iter().enumerate();
        entries.filter_map(|(index, entry)| unused_table(&entry.kind).map(|name| (index, name))).collect()
    }

    /// Entry indices in the order their bytes appear in the file.
    pub fn indices_in_file_order(&self) -> Vec<usize> {
        self.zip.indices_in_file_order()
    }

    /// The longest NDJSON line this archive may contain.
    pub fn line_cap(&self) -> u64 {
        self.limits.line_cap(self.manifest.has_line_cap())
    }

    /// The checked, inflated bytes of one entry. Readers of several entries may be open at
    /// once; each reads at its own place.
    pub fn open_entry(&self, index: usize) -> Result<EntryReader<'_, R>> {
        self.zip.open_entry(index)
    }

    /// The lines of one NDJSON entry, under this archive's line cap.
    pub fn ndjson_lines(&self, index: usize) -> Result<NdjsonLines<BufReader<EntryReader<'_, R>>>> {
        let cap = self.line_cap();
        let reader = self.zip.open_entry(index)?;
        let name = reader.entry().name.clone();
        Ok(NdjsonLines::new(BufReader::with_capacity(LINE_BUFFER_BYTES, reader), name, cap))
    }

    /// The container, for readers of entries of their own (`crate::line_index`).
    pub(crate) fn container(&mut self) -> &mut ZipContainer<R> {
        &mut self.zip
    }

    /// Reads one NDJSON entry to its end, checking every line (line cap, one JSON object)
    /// without keeping any: for entries that are verified but not used.
    pub fn check_lines(&self, index: usize) -> Result<()> {
        let mut lines = self.ndjson_lines(index)?;
        let name = lines.entry().to_string();
        while let Some((number, line)) = lines.next_line()? {
            check_row(&name, number, line)?;
        }
        Ok(())
    }

    /// Calls `each` with every row of one NDJSON entry, in order.
    pub fn for_each_row(&self, index: usize, mut each: impl FnMut(u64, Row) -> Result<()>) -> Result<u64> {
        let mut lines = self.ndjson_lines(index)?;
        let entry = lines.entry().to_string();
        let mut rows = 0;
        while let Some((number, line)) = lines.next_line()? {
            each(number, parse_row(&entry, number, line)?)?;
            rows += 1;
        }
        Ok(rows)
    }

    /// Whether the first row of a `lancedb/` entry carries a vector
    /// ([`crate::vector::row_vector`]); `None` for an entry without rows.
    pub fn first_row_has_vector(&self, index: usize) -> Result<Option<bool>> {
        let mut lines = self.ndjson_lines(index)?;
        let entry = lines.entry().to_string();
        match lines.next_line()? {
            Some((number, line)) => Ok(Some(row_vector(&parse_row(&entry, number, line)?).is_some())),
            None => Ok(None),
        }
    }

    /// Reads every entry to its end: local headers, sizes, CRCs and data descriptors of all
    /// entries, the line cap and JSON validity of every NDJSON line. Entries are read in
    /// file order, so a browser or a disk reads the file once, front to back.
    pub fn verify_all(&mut self, progress: impl FnMut(VerifyProgress)) -> Result<()> {
        self.verify_all_against(&BTreeMap::new(), progress).map(|_| ())
    }

    /// [`Self::verify_all`], with the rows of every table named in `columns` also parsed as
    /// an import parses them (aligned with those columns): the answer lists, per table,
    /// the keys its rows carry that are not among its columns — values an import into
    /// that schema could not keep.
    pub fn verify_all_against(
        &mut self,
        columns: &BTreeMap<String, Vec<String>>,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let order = self.zip.indices_in_file_order();
        let mut state = VerifyProgress {
            entries_total: order.len() as u64,
            bytes_total: self.zip.entries().iter().map(|e| e.compressed_size).sum(),
            ..VerifyProgress::default()
        };
        let mut unknown_columns = BTreeMap::new();
        for index in order {
            let entry = &self.zip.entries()[index];
            let known = match &entry.kind {
                EntryKind::Table { table } => columns.get(table).map(|known| (table.clone(), known)),
                _ => None,
            };
            let is_ndjson =
                matches!(entry.kind, EntryKind::Table { .. } | EntryKind::VectorTable { .. } | EntryKind::SecretsBlob);
            let compressed = entry.compressed_size;
            if let Some((table, known)) = known {
                let unknown = UnknownColumns::default();
                let mut lines = self.ndjson_lines(index)?;
                let name = lines.entry().to_string();
                while let Some((number, line)) = lines.next_line()? {
                    parse_row_aligned(&name, number, line, known, &unknown)?;
                }
                let names = unknown.listed();
                if !names.is_empty() {
                    unknown_columns.insert(table, names);
                }
            } else if is_ndjson {
                self.check_lines(index)?;
            } else {
                let mut reader = self.zip.open_entry(index)?;
                io::copy(&mut reader, &mut io::sink()).map_err(FormatError::from_io)?;
            }
            state.entries_done += 1;
            state.bytes_done += compressed;
            progress(state);
        }
        Ok(unknown_columns)
    }

    /// Verifies `ticket` against this archive and decrypts every secret it lists. A record
    /// that fails alone is reported and skipped; a ticket that does not fit fails whole.
    pub fn decrypt_secrets(&mut self, ticket: &Ticket) -> Result<Vec<SecretOutcome>> {
        if ticket.archive_id != self.manifest.archive_id {
            return Err(FormatError::ArchiveMismatch {
                ticket: ticket.archive_id.clone(),
                archive: self.manifest.archive_id.clone(),
            });
        }
        let index = self.secrets_index.clone().ok_or_else(|| FormatError::BindingMismatch {
            detail: "the archive carries no encrypted secrets".into(),
        })?;
        ticket.verify(&self.manifest.archive_id, &index)?;
        let key = ticket.key()?;
        let mut records: Vec<Option<EncryptedSecret>> = vec![None; index.keys.len()];
        if let Some(blob) = self.zip.index_of(SECRETS_BLOB_ENTRY) {
            self.for_each_row(blob, |number, row| {
                let record: EncryptedSecret = serde_json::from_value(row.into()).map_err(|error| {
                    FormatError::BadJson { entry: SECRETS_BLOB_ENTRY.into(), line: number, detail: error.to_string() }
                })?;
                // Only keys bound by the ticket count; the first record of a key wins.
                if let Some(slot) = index.keys.iter().position(|k| *k == record.key) {
                    records[slot].get_or_insert(record);
                }
                Ok(())
            })?;
        }
        Ok(index
            .keys
            .iter()
            .zip(records)
            .map(|(key_name, record)| SecretOutcome {
                key: key_name.clone(),
                result: match record {
                    Some(record) => record.open(&key),
                    None => Err(SecretSkip::Malformed("no record in secrets/encrypted.ndjson".into())),
                },
            })
            .collect())
    }

    /// Gives the caller's reader back.
    pub fn into_inner(self) -> R {
        self.zip.into_inner()
    }
}
