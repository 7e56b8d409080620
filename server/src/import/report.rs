//! What a job's status says, bounded whatever the archive holds: the manifest with only
//! the registry's counts, a few missing files and short strings, and the summary (whose
//! lists [`super::session::ImportSummary`] already keeps short). The same JSON is
//! answered while the job is open and recorded when it ends.

use lvbak_core::manifest::VECTOR_COUNT_PREFIX;
use lvbak_core::registry::{is_vector_table, table_spec};
use lvbak_core::Manifest;
use serde_json::{json, Value};

use super::session::ImportSummary;

/// Entries of a list kept in a report, at most.
pub const LISTED: usize = 100;
/// Characters of a free-text field kept in a report, at most.
const TEXT: usize = 256;

/// `text` cut to `limit` characters.
pub fn clipped(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

/// The manifest as a status answer shows it: counts of known tables only, the first
/// missing files, strings cut short.
pub fn bounded_manifest(manifest: &Manifest) -> Value {
    let known = |name: &str| match name.strip_prefix(VECTOR_COUNT_PREFIX) {
        Some(vector_table) => is_vector_table(vector_table),
        None => table_spec(name).is_some(),
    };
    let counts: serde_json::Map<String, Value> = manifest
        .counts
        .iter()
        .filter(|(name, _)| known(name))
        .map(|(name, count)| (name.clone(), json!(count)))
        .collect();
    let clip = |text: &Option<String>| text.as_deref().map(|text| clipped(text, TEXT));
    json!({
        "schemaVersion": manifest.schema_version,
        "producer": manifest.producer,
        "exportedAt": manifest.exported_at,
        "archiveId": manifest.archive_id,
        "producerVersion": clip(&manifest.producer_version),
        "ndjsonFormatVersion": manifest.ndjson_format_version,
        "includeVectors": manifest.include_vectors,
        "embeddingConfig": {
            "provider": clip(&manifest.embedding_config.provider),
            "model": clip(&manifest.embedding_config.model),
            "dimension": manifest.embedding_config.dimension,
        },
        "counts": counts,
        "missingFiles": manifest.missing_files.iter().take(LISTED).map(|name| clipped(name, TEXT)).collect::<Vec<_>>(),
        "missingFilesCount": manifest.missing_files.len(),
        "hasEncryptedSecrets": manifest.has_encrypted_secrets,
        "secretsCount": manifest.secrets_count,
    })
}

/// The summary fields of a status answer (`null` while the job runs).
pub fn summary_report(summary: Option<&ImportSummary>) -> Value {
    json!({
        "summary": summary.map(|s| {
            let mut tables = json!(s.tables);
            // Lumiverse reports restored secrets beside the tables.
            if s.secrets.applied {
                tables["secrets"] = json!({"imported": s.secrets.imported, "skipped": s.secrets.skipped, "merged": 0, "rejected": s.secrets.rejected});
            }
            tables
        }),
        "fileSummary": summary.map(|s| json!(s.files)),
        "vectorSummary": summary.map(|s| json!(s.vectors)),
        "secretSummary": summary.map(|s| json!(s.secrets)),
        "skippedTables": summary.map(|s| json!(s.skipped_tables)),
        "droppedColumns": summary.map(|s| json!(s.dropped_columns)),
        "notices": summary.map(|s| json!(s.notices())),
        "scrubbedReferences": summary.map(|s| s.scrubbed_references),
        "revectorized": summary.map(|s| s.revectorized),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_manifest_reports_small() {
        let mut manifest = Manifest::new("3f1c2a4e-0000-4000-8000-000000000001", 1);
        manifest.producer_version = Some("v".repeat(1_000_000));
        for n in 0..50_000 {
            manifest.counts.insert(format!("junk_table_{n}"), n);
            manifest.missing_files.push(format!("files/images/{n}.png"));
        }
        manifest.counts.insert("characters".into(), 3);
        manifest.counts.insert("lancedb:embeddings".into(), 4);
        let report = bounded_manifest(&manifest);
        assert!(report.to_string().len() < 20_000, "{}", report.to_string().len());
        assert_eq!(report["counts"], json!({"characters": 3, "lancedb:embeddings": 4}));
        assert_eq!(report["missingFilesCount"], 50_000);
    }
}
