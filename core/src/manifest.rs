//! `manifest.json` and its trailer `manifest-stats.json` (FORMAT §1, §3): parsing with
//! validation, and creation in the exact shape Lumiverse writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{FormatError, Result};

/// The only producer accepted.
pub const PRODUCER: &str = "lumiverse";
/// The highest `schemaVersion` this build reads (and the one it writes).
pub const SCHEMA_VERSION: i64 = 1;
/// The `ndjsonFormatVersion` this build reads and writes.
pub const NDJSON_FORMAT_VERSION: i64 = 1;
/// Entry name of the manifest.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// Entry name of the stats trailer.
pub const STATS_ENTRY: &str = "manifest-stats.json";
/// Prefix of vector-table keys in the stats counts.
pub const VECTOR_COUNT_PREFIX: &str = "lancedb:";

/// The embedding configuration an archive's vectors were made with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub dimension: Option<u32>,
}

impl EmbeddingConfig {
    /// Reads a user's `embeddingConfig` setting value (which names the dimension
    /// `dimensions`). Anything unreadable gives an empty config.
    pub fn from_setting_value(value: &Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        let dimension = value
            .get("dimensions")
            .or_else(|| value.get("dimension"))
            .and_then(Value::as_u64)
            .and_then(|d| u32::try_from(d).ok())
            .filter(|&d| d > 0);
        Self { provider: text("provider"), model: text("model"), dimension }
    }

    /// Whether vectors made under `self` can be used by a user configured with `target`:
    /// provider, model and dimension all equal, and the dimension known.
    pub fn vectors_restore_into(&self, target: &EmbeddingConfig) -> bool {
        self.dimension.is_some() && self == target
    }
}

/// The parsed `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: i64,
    pub producer: String,
    #[serde(default)]
    pub exported_at: Option<i64>,
    pub archive_id: String,
    #[serde(default)]
    pub producer_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndjson_format_version: Option<i64>,
    #[serde(default)]
    pub include_vectors: bool,
    #[serde(default)]
    pub embedding_config: EmbeddingConfig,
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    #[serde(default)]
    pub missing_files: Vec<String>,
    #[serde(default)]
    pub has_encrypted_secrets: bool,
    #[serde(default)]
    pub secrets_count: u64,
}

fn bad(entry: &str, detail: impl Into<String>) -> FormatError {
    FormatError::BadManifest { entry: entry.to_string(), detail: detail.into() }
}

impl Manifest {
    /// A manifest for an archive this build writes.
    pub fn new(archive_id: impl Into<String>, exported_at: i64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            producer: PRODUCER.to_string(),
            exported_at: Some(exported_at),
            archive_id: archive_id.into(),
            producer_version: Some(concat!("lvbak ", env!("CARGO_PKG_VERSION")).to_string()),
            ndjson_format_version: Some(NDJSON_FORMAT_VERSION),
            include_vectors: false,
            embedding_config: EmbeddingConfig::default(),
            counts: BTreeMap::new(),
            missing_files: Vec::new(),
            has_encrypted_secrets: false,
            secrets_count: 0,
        }
    }

    /// Parses and validates `manifest.json`: producer, schema version range, NDJSON format
    /// version, archive id.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|error| bad(MANIFEST_ENTRY, error.to_string()))?;
        let object = value.as_object().ok_or_else(|| bad(MANIFEST_ENTRY, "not a JSON object"))?;
        // Producer and version are judged before the rest, so a foreign or newer archive
        // gets the precise code even when its other fields differ.
        match object.get("producer") {
            Some(Value::String(producer)) if producer == PRODUCER => {}
            Some(Value::String(producer)) => return Err(FormatError::WrongProducer { producer: producer.clone() }),
            Some(other) => return Err(FormatError::WrongProducer { producer: other.to_string() }),
            None => return Err(bad(MANIFEST_ENTRY, "no producer")),
        }
        match object.get("schemaVersion").map(|v| (v.as_i64(), v)) {
            Some((Some(version), _)) if (1..=SCHEMA_VERSION).contains(&version) => {}
            Some((_, found)) => {
                return Err(FormatError::UnsupportedVersion {
                    field: "schemaVersion".into(),
                    found: found.to_string(),
                    supported: format!("up to {SCHEMA_VERSION}"),
                })
            }
            None => return Err(bad(MANIFEST_ENTRY, "no schemaVersion")),
        }
        if let Some(found) = object.get("ndjsonFormatVersion").filter(|v| !v.is_null()) {
            if found.as_i64() != Some(NDJSON_FORMAT_VERSION) {
                return Err(FormatError::UnsupportedVersion {
                    field: "ndjsonFormatVersion".into(),
                    found: found.to_string(),
                    supported: NDJSON_FORMAT_VERSION.to_string(),
                });
            }
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|error| bad(MANIFEST_ENTRY, error.to_string()))?;
        if !is_archive_id(&manifest.archive_id) {
            return Err(bad(MANIFEST_ENTRY, format!("archiveId {:?} is not an id", manifest.archive_id)));
        }
        Ok(manifest)
    }

    /// The manifest as Lumiverse writes it: pretty-printed, two-space indent, no trailing
    /// newline.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and maps always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Whether every NDJSON line obeys the 4 MiB cap, by the manifest's own word.
    pub fn has_line_cap(&self) -> bool {
        self.ndjson_format_version.is_some()
    }
}

/// An archive id: a UUID in practice; any short run of letters, digits and dashes is
/// accepted so that ids can be used in URLs and file names without escaping.
pub fn is_archive_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The parsed `manifest-stats.json` trailer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStats {
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    #[serde(default)]
    pub missing_files: Vec<String>,
}

impl ManifestStats {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|error| bad(STATS_ENTRY, error.to_string()))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Row counts of database tables (keys without the `lancedb:` prefix).
    pub fn table_counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts
            .iter()
            .filter(|(key, _)| !key.starts_with(VECTOR_COUNT_PREFIX))
            .map(|(key, &count)| (key.as_str(), count))
    }

    /// Row counts of vector tables, by table name.
    pub fn vector_counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().filter_map(|(key, &count)| key.strip_prefix(VECTOR_COUNT_PREFIX).map(|table| (table, count)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(json: &str) -> &'static str {
        match Manifest::parse(json.as_bytes()) {
            Ok(_) => "ok",
            Err(error) => error.code(),
        }
    }

    #[test]
    fn validation_codes() {
        let ok = r#"{"schemaVersion":1,"producer":"lumiverse","exportedAt":1,"archiveId":"a-1"}"#;
        assert_eq!(code(ok), "ok");
        assert_eq!(code(r#"{"schemaVersion":1,"producer":"sillytavern","archiveId":"a"}"#), "wrong_producer");
        assert_eq!(code(r#"{"schemaVersion":2,"producer":"lumiverse","archiveId":"a"}"#), "unsupported_version");
        assert_eq!(code(r#"{"schemaVersion":0,"producer":"lumiverse","archiveId":"a"}"#), "unsupported_version");
        assert_eq!(
            code(r#"{"schemaVersion":1,"producer":"lumiverse","archiveId":"a","ndjsonFormatVersion":2}"#),
            "unsupported_version"
        );
        assert_eq!(code(r#"{"schemaVersion":1,"producer":"lumiverse","archiveId":"../x"}"#), "bad_manifest");
        assert_eq!(code(r#"{"schemaVersion":1,"producer":"lumiverse"}"#), "bad_manifest");
        assert_eq!(code("[]"), "bad_manifest");
        assert_eq!(code("{"), "bad_manifest");
    }

    #[test]
    fn written_manifest_reads_back() {
        let mut manifest = Manifest::new("e7f4b684-0000-4c3d-86f0-e05d90c5fbe4", 1_795_313_867);
        manifest.embedding_config =
            EmbeddingConfig { provider: Some("openai".into()), model: Some("m".into()), dimension: Some(8) };
        let bytes = manifest.to_json();
        assert!(bytes.starts_with(b"{\n  \"schemaVersion\": 1,\n  \"producer\": \"lumiverse\""));
        assert_eq!(Manifest::parse(&bytes).ok(), Some(manifest));
    }

    #[test]
    fn embedding_config_from_setting() {
        let value = serde_json::json!({"provider": "openai", "model": "m", "dimensions": 8, "enabled": true});
        let config = EmbeddingConfig::from_setting_value(&value);
        assert_eq!(config.dimension, Some(8));
        assert!(config.vectors_restore_into(&config));
        let no_dimension = EmbeddingConfig { dimension: None, ..config.clone() };
        assert!(!no_dimension.vectors_restore_into(&no_dimension));
    }
}
