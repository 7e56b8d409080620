//! What a job's status says, bounded whatever the archive holds: the manifest with only
//! the registry's counts, a few missing files and short strings (the summary's lists the
//! session already keeps short). The same report is answered while the job is open and
//! recorded when it ends (`lvbak_core::protocol::JobReport`).

use lvbak_core::manifest::VECTOR_COUNT_PREFIX;
use lvbak_core::protocol::{EmbeddingConfigReport, ManifestReport};
use lvbak_core::registry::{is_vector_table, table_spec};
use lvbak_core::Manifest;

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
pub fn bounded_manifest(manifest: &Manifest) -> ManifestReport {
    let known = |name: &str| match name.strip_prefix(VECTOR_COUNT_PREFIX) {
        Some(vector_table) => is_vector_table(vector_table),
        None => table_spec(name).is_some(),
    };
    let clip = |text: &Option<String>| text.as_deref().map(|text| clipped(text, TEXT));
    ManifestReport {
        schema_version: manifest.schema_version,
        producer: clipped(&manifest.producer, TEXT),
        exported_at: manifest.exported_at,
        archive_id: clipped(&manifest.archive_id, TEXT),
        producer_version: clip(&manifest.producer_version),
        ndjson_format_version: manifest.ndjson_format_version,
        include_vectors: manifest.include_vectors,
        embedding_config: EmbeddingConfigReport {
            provider: clip(&manifest.embedding_config.provider),
            model: clip(&manifest.embedding_config.model),
            dimension: manifest.embedding_config.dimension,
        },
        counts: manifest.counts.iter().filter(|(name, _)| known(name)).map(|(n, c)| (n.clone(), *c)).collect(),
        missing_files: manifest.missing_files.iter().take(LISTED).map(|name| clipped(name, TEXT)).collect(),
        missing_files_count: manifest.missing_files.len(),
        has_encrypted_secrets: manifest.has_encrypted_secrets,
        secrets_count: manifest.secrets_count,
    }
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
        let text = serde_json::to_string(&report).unwrap_or_default();
        assert!(text.len() < 20_000, "{}", text.len());
        let counts: Vec<(&str, u64)> = report.counts.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(counts, [("characters", 3), ("lancedb:embeddings", 4)]);
        assert_eq!(report.missing_files_count, 50_000);
    }
}
