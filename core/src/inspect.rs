//! Inspection: what an archive holds, from the central directory and the small metadata
//! entries only (manifest, stats trailer, secrets index). Row counts come from
//! `manifest-stats.json`; counting NDJSON lines is opt-in, for archives without the trailer
//! or to cross-check it.
//!
//! An [`Inspection`] serializes as the inspection report: the Worker hands it to the page
//! and `lvbak inspect --json` prints it, each with its own few keys beside it.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTotals {
    pub count: u64,
    pub bytes: u64,
}

/// The secrets an archive carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsSummary {
    pub count: u64,
    pub keys: Vec<String>,
}

/// Byte totals, from the central directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteTotals {
    /// All entries as stored.
    pub compressed: u64,
    /// All entries inflated, as their headers claim (each is held to its claim).
    pub decompressed: u64,
    /// The archive file.
    pub archive: u64,
}

/// What an archive holds. As JSON (the inspection report), `counts` and `vectors` are
/// objects (table → rows) in this order, `files` is bucket → `{count, bytes}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub archive_id: String,
    pub manifest: Manifest,
    /// Rows per database table, registry tables in import order first, then any others.
    #[serde(with = "table_rows")]
    pub counts: Vec<(String, u64)>,
    pub count_source: CountSource,
    pub files: BTreeMap<String, FileTotals>,
    /// Rows per vector table.
    #[serde(with = "table_rows")]
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

/// `[(table, rows)]` as a JSON object, `{"table": rows, …}`, in the list's order both ways.
mod table_rows {
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(rows: &[(String, u64)], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(rows.iter().map(|(table, count)| (table, count)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, u64)>, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = Vec<(String, u64)>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of table names to row counts")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut rows = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    rows.push(entry);
                }
                Ok(rows)
            }
        }
        deserializer.deserialize_map(Rows)
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
            EntryKind::Manifest
            | EntryKind::ManifestStats
            | EntryKind::SecretsIndex
            | EntryKind::SecretsBlob
            | EntryKind::CardFile { .. } => {}
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The inspection report's wire shape, spelled out: the page and `lvbak inspect --json`
    /// read it, so a change here is a change both see. Counts keep their order both ways.
    #[test]
    fn an_inspection_serializes_as_the_report() {
        let mut files = BTreeMap::new();
        files.insert("avatars".to_string(), FileTotals { count: 1, bytes: 9 });
        let inspection = Inspection {
            archive_id: "a1".into(),
            manifest: Manifest::new("a1", 1_700_000_000),
            counts: vec![("settings".into(), 6), ("characters".into(), 2)],
            count_source: CountSource::Stats,
            files,
            vectors: vec![("embeddings".into(), 3)],
            secrets: SecretsSummary { count: 1, keys: vec!["k".into()] },
            bytes: ByteTotals { compressed: 10, decompressed: 20, archive: 30 },
            entries: 4,
            warnings: vec!["w".into()],
        };
        let text = serde_json::to_string(&inspection).unwrap();
        let manifest = serde_json::to_string(&inspection.manifest).unwrap();
        assert_eq!(
            text,
            format!(
                concat!(
                    r#"{{"archiveId":"a1","manifest":{},"counts":{{"settings":6,"characters":2}},"#,
                    r#""countSource":"stats","files":{{"avatars":{{"count":1,"bytes":9}}}},"#,
                    r#""vectors":{{"embeddings":3}},"secrets":{{"count":1,"keys":["k"]}},"#,
                    r#""bytes":{{"compressed":10,"decompressed":20,"archive":30}},"entries":4,"warnings":["w"]}}"#
                ),
                manifest
            )
        );
        let back: Inspection = serde_json::from_str(&text).unwrap();
        assert_eq!(back, inspection);
    }
}
