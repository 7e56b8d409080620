//! Inspection: what an archive holds, from the central directory and the small metadata
//! entries only (manifest, stats trailer, secrets index). Row counts come from
//! `manifest-stats.json`; counting NDJSON lines is opt-in, for archives without the trailer
//! or to cross-check it.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::Serialize;

use crate::archive::Archive;
use crate::entry_name::{EntryKind, FileBucket};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::registry::{self, is_applied_table, is_excluded_table, is_vector_table, table_spec};

/// What to do beyond reading the metadata entries.
#[derive(Clone, Copy, Debug, Default)]
pub struct InspectOptions {
    /// Count the lines of every table and vector entry (streams those entries).
    pub count_rows: bool,
}

/// Where the row counts of an inspection come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CountSource {
    /// `manifest-stats.json`.
    Stats,
    /// Lines counted in the entries themselves.
    Lines,
    /// Neither: the trailer is missing and lines were not counted.
    Unknown,
}

/// Files of one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileTotals {
    pub count: u64,
    pub bytes: u64,
}

/// The secrets an archive carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecretsSummary {
    pub count: u64,
    pub keys: Vec<String>,
}

/// Byte totals, from the central directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByteTotals {
    /// The archive file.
    pub archive: u64,
    /// All entries as stored.
    pub compressed: u64,
    /// All entries inflated, as their headers claim (each is held to its claim).
    pub decompressed: u64,
}

/// What an archive holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub archive_id: String,
    pub manifest: Manifest,
    /// Rows per database table, registry tables in import order first, then any others.
    pub counts: Vec<(String, u64)>,
    pub count_source: CountSource,
    pub files: BTreeMap<String, FileTotals>,
    /// Rows per vector table.
    pub vectors: Vec<(String, u64)>,
    pub secrets: SecretsSummary,
    pub bytes: ByteTotals,
    pub entries: u64,
    pub warnings: Vec<String>,
}

impl Inspection {
    /// Rows of one table, if known.
    pub fn rows_of(&self, table: &str) -> Option<u64> {
        self.counts.iter().find(|(name, _)| name == table).map(|&(_, rows)| rows)
    }

    /// Rows of one vector table, if known.
    pub fn vectors_of(&self, table: &str) -> Option<u64> {
        self.vectors.iter().find(|(name, _)| name == table).map(|&(_, rows)| rows)
    }
}

/// Puts registry tables first, in import order, then anything else by name.
fn registry_order(counts: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut ordered: Vec<(String, u64)> = registry::TABLES
        .iter()
        .filter_map(|spec| counts.get(spec.name).map(|&rows| (spec.name.to_string(), rows)))
        .collect();
    ordered.extend(counts.into_iter().filter(|(name, _)| table_spec(name).is_none()));
    ordered
}

fn list_some(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = names.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Inspects an opened archive.
pub fn inspect<R: Read + Seek>(archive: &mut Archive<R>, options: InspectOptions) -> Result<Inspection> {
    let manifest = archive.manifest().clone();
    let mut warnings = Vec::new();
    let mut files: BTreeMap<String, FileTotals> = BTreeMap::new();
    let mut bytes = ByteTotals { archive: archive.archive_bytes(), ..ByteTotals::default() };
    let mut table_entries = Vec::new();
    let mut vector_entries = Vec::new();
    for (index, entry) in archive.entries().iter().enumerate() {
        bytes.compressed += entry.compressed_size;
        bytes.decompressed += entry.uncompressed_size;
        match &entry.kind {
            EntryKind::File { bucket, .. } => {
                let totals = files.entry(bucket.archive_folder().to_string()).or_default();
                totals.count += 1;
                totals.bytes += entry.uncompressed_size;
            }
            EntryKind::Table { table } => {
                if is_excluded_table(table) {
                    warnings.push(format!(
                        "{}: table {table} never travels between servers; it will be skipped",
                        entry.name
                    ));
                } else if !is_applied_table(table) {
                    warnings.push(format!("{}: unknown table {table}; it will be skipped", entry.name));
                }
                table_entries.push((index, table.clone()));
            }
            EntryKind::VectorTable { table } => {
                if !is_vector_table(table) {
                    warnings.push(format!("{}: unknown vector table {table}; it will be skipped", entry.name));
                }
                vector_entries.push((index, table.clone()));
            }
            EntryKind::Manifest | EntryKind::ManifestStats | EntryKind::SecretsIndex | EntryKind::SecretsBlob => {}
        }
    }
    // Keep every bucket visible, even empty ones, so reports line up.
    for bucket in FileBucket::ALL {
        files.entry(bucket.archive_folder().to_string()).or_default();
    }

    let stats = archive.stats().cloned();
    let (counts, vectors, count_source) = if options.count_rows {
        let mut counts = BTreeMap::new();
        for (index, table) in &table_entries {
            counts.insert(table.clone(), archive.ndjson_lines(*index)?.count()?);
        }
        let mut vectors = BTreeMap::new();
        for (index, table) in &vector_entries {
            vectors.insert(table.clone(), archive.ndjson_lines(*index)?.count()?);
        }
        if let Some(stats) = &stats {
            let claimed: BTreeMap<&str, u64> = stats.table_counts().collect();
            for (table, &rows) in &counts {
                match claimed.get(table.as_str()) {
                    Some(&said) if said != rows => warnings
                        .push(format!("manifest-stats.json says {said} rows for {table}, the archive holds {rows}")),
                    _ => {}
                }
            }
            let claimed_vectors: BTreeMap<&str, u64> = stats.vector_counts().collect();
            for (table, &rows) in &vectors {
                match claimed_vectors.get(table.as_str()) {
                    Some(&said) if said != rows => warnings
                        .push(format!("manifest-stats.json says {said} vectors for {table}, the archive holds {rows}")),
                    _ => {}
                }
            }
        }
        (counts, vectors, CountSource::Lines)
    } else if let Some(stats) = &stats {
        let counts = stats.table_counts().map(|(table, rows)| (table.to_string(), rows)).collect();
        let vectors = stats.vector_counts().map(|(table, rows)| (table.to_string(), rows)).collect();
        (counts, vectors, CountSource::Stats)
    } else {
        warnings.push("manifest-stats.json is missing, so row counts are unknown (count them to see them)".to_string());
        (BTreeMap::new(), BTreeMap::new(), CountSource::Unknown)
    };

    let mut missing: Vec<String> = manifest.missing_files.clone();
    if let Some(stats) = &stats {
        missing.extend(stats.missing_files.iter().filter(|name| !manifest.missing_files.contains(name)).cloned());
    }
    if !missing.is_empty() {
        warnings.push(format!(
            "{} file(s) were missing on the source server when this archive was made: {}",
            missing.len(),
            list_some(&missing)
        ));
    }

    let secrets = match archive.secrets_index() {
        Some(index) => SecretsSummary { count: index.keys.len() as u64, keys: index.keys.clone() },
        None => SecretsSummary::default(),
    };
    if manifest.has_encrypted_secrets && archive.secrets_index().is_none() {
        warnings.push("the manifest announces encrypted secrets but the archive has no secrets/index.json".to_string());
    } else if !manifest.has_encrypted_secrets && archive.secrets_index().is_some() {
        warnings.push("the archive carries encrypted secrets its manifest does not announce".to_string());
    } else if manifest.has_encrypted_secrets && manifest.secrets_count != secrets.count {
        warnings.push(format!(
            "the manifest counts {} secrets, secrets/index.json lists {}",
            manifest.secrets_count, secrets.count
        ));
    }

    if !vector_entries.is_empty() && manifest.embedding_config.dimension.is_none() {
        warnings.push(
            "the manifest records no embedding dimension, so vectors cannot restore; chunks will be re-vectorized"
                .to_string(),
        );
    }
    if !vector_entries.is_empty() && !manifest.include_vectors {
        warnings.push("the archive carries vectors its manifest does not announce".to_string());
    }

    Ok(Inspection {
        archive_id: manifest.archive_id.clone(),
        manifest,
        counts: registry_order(counts),
        count_source,
        files,
        vectors: vectors.into_iter().collect(),
        secrets,
        bytes,
        entries: archive.entries().len() as u64,
        warnings,
    })
}
