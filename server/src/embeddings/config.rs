//! A user's embedding configuration: Lumiverse's `embeddingConfig` setting, a JSON object
//! read as Lumiverse reads it (defaults, clamps, the provider's fixed URL) and written back
//! with every key it did not know kept as it was; the name of the API key's secret; the
//! endpoint URL as Lumiverse resolves it; and the fingerprint whose change makes every
//! stored vector useless.

use serde_json::{Map, Value};

/// The setting's key.
pub const SETTING_KEY: &str = "embeddingConfig";

/// The providers Lumiverse knows; anything else reads as `openai-compatible`.
const PROVIDERS: &[(&str, &str)] = &[
    ("openai-compatible", "https://api.openai.com/v1/embeddings"),
    ("openai", "https://api.openai.com/v1/embeddings"),
    ("openrouter", "https://openrouter.ai/api/v1/embeddings"),
    ("electronhub", "https://api.electronhub.top/v1/embeddings"),
    ("bananabread", "http://localhost:8008/v1/embeddings"),
    ("nanogpt", "https://nano-gpt.com/api/v1/embeddings"),
];

pub use lvbak_core::protocol::EmbeddingSettings;

/// A field the user sent that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    pub field: String,
    pub reason: String,
}

fn default_url(provider: &str) -> &'static str {
    PROVIDERS.iter().find(|(name, _)| *name == provider).map_or(PROVIDERS[0].1, |(_, url)| url)
}

/// Whether the provider lets the user choose the URL (the others have a fixed one).
fn custom_url(provider: &str) -> bool {
    matches!(provider, "openai-compatible" | "bananabread")
}

/// Lumiverse's rules for its `embeddingConfig` setting, on the setting as the protocol
/// answers it (`lvbak_core::protocol::EmbeddingSettings`).
pub trait EmbeddingRules: Sized {
    /// Reads a setting value the way Lumiverse normalizes it.
    fn from_value(value: &Value) -> Self;

    /// Reads the setting's stored text (none or unreadable: the defaults).
    fn from_setting(text: Option<&str>) -> Self;

    /// Applies the fields of `update` (a partial setting from the page) onto `stored`, the
    /// setting's object, keeping every key it does not name. Refuses values that cannot
    /// work rather than storing them.
    fn merge(stored: Option<&str>, update: &Map<String, Value>) -> Result<Map<String, Value>, InvalidSetting>;

    /// The URL requests go to, resolved as Lumiverse does: a URL ending in `/embeddings`
    /// or `/embed` as it is, a bare host gets `/v1/embeddings`, another path `/embeddings`.
    fn endpoint(&self) -> String;

    /// What the stored vectors depend on: a change of any of these invalidates them all.
    fn fingerprint(&self) -> (String, String, Option<u32>, String);

    /// The secret holding the key: Lumiverse names it per provider.
    fn secret_key(&self) -> String;

    /// Which kinds of rows this configuration embeds.
    fn kinds(&self) -> Vec<crate::storage::sqlite::embeddings::SourceKind>;
}

impl EmbeddingRules for EmbeddingSettings {
    fn from_value(value: &Value) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
        let flag = |key: &str, default: bool| value.get(key).map_or(default, truthy);
        let number = |key: &str| value.get(key).and_then(Value::as_f64).filter(|n| n.is_finite());
        let provider = text("provider")
            .filter(|name| PROVIDERS.iter().any(|(known, _)| known == name))
            .unwrap_or("openai-compatible")
            .to_string();
        let api_url = match text("api_url") {
            Some(url) if custom_url(&provider) => url.to_string(),
            _ => default_url(&provider).to_string(),
        };
        Self {
            enabled: flag("enabled", false),
            api_url,
            model: text("model").unwrap_or("text-embedding-3-small").to_string(),
            dimensions: number("dimensions").filter(|n| *n >= 1.0).map(|n| n.min(65_536.0) as u32),
            send_dimensions: flag("send_dimensions", false),
            batch_size: number("batch_size").filter(|n| *n > 0.0).map_or(50, |n| n.clamp(1.0, 200.0) as usize),
            request_timeout: number("request_timeout").filter(|n| *n >= 0.0).map_or(120, |n| n.min(300.0) as u64),
            vectorize_world_books: flag("vectorize_world_books", true),
            vectorize_chat_messages: flag("vectorize_chat_messages", false),
            vectorize_chat_documents: flag("vectorize_chat_documents", true),
            restored: false,
            provider,
        }
    }

    fn from_setting(text: Option<&str>) -> Self {
        Self::from_value(&text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null))
    }

    fn merge(stored: Option<&str>, update: &Map<String, Value>) -> Result<Map<String, Value>, InvalidSetting> {
        let mut object = stored
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        for (key, value) in update {
            let field = match key.as_str() {
                "enabled"
                | "send_dimensions"
                | "vectorize_world_books"
                | "vectorize_chat_messages"
                | "vectorize_chat_documents" => {
                    if !value.is_boolean() {
                        return Err(invalid(key, "must be true or false"));
                    }
                    value.clone()
                }
                "provider" => {
                    let name = value.as_str().unwrap_or_default();
                    if !PROVIDERS.iter().any(|(known, _)| *known == name) {
                        let known: Vec<&str> = PROVIDERS.iter().map(|(n, _)| *n).collect();
                        return Err(invalid("provider", &format!("one of {}", known.join(", "))));
                    }
                    value.clone()
                }
                "api_url" => {
                    let url = value.as_str().unwrap_or_default().trim();
                    match reqwest::Url::parse(url) {
                        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                        _ => return Err(invalid("api_url", "must be an http:// or https:// URL")),
                    }
                    Value::from(url)
                }
                "model" => {
                    let model = value.as_str().unwrap_or_default().trim();
                    if model.is_empty() || model.len() > 256 {
                        return Err(invalid("model", "must be a name of 1 to 256 characters"));
                    }
                    Value::from(model)
                }
                "dimensions" => match value {
                    Value::Null => Value::Null,
                    _ => match value.as_u64().filter(|d| (1..=65_536).contains(d)) {
                        Some(d) => Value::from(d),
                        None => return Err(invalid("dimensions", "must be a whole number from 1 to 65536, or empty")),
                    },
                },
                "batch_size" => match value.as_u64().filter(|n| (1..=200).contains(n)) {
                    Some(n) => Value::from(n),
                    None => return Err(invalid("batch_size", "must be a whole number from 1 to 200")),
                },
                "request_timeout" => match value.as_u64().filter(|n| *n <= 300) {
                    Some(n) => Value::from(n),
                    None => return Err(invalid("request_timeout", "must be 0 to 300 seconds")),
                },
                // The key is a secret, never part of the setting; other keys are not the
                // page's to change.
                _ => continue,
            };
            object.insert(key.clone(), field);
        }
        Ok(object)
    }

    fn endpoint(&self) -> String {
        let trimmed = self.api_url.trim_end_matches('/');
        match reqwest::Url::parse(trimmed) {
            Ok(mut url) => {
                let path = url.path().trim_end_matches('/').to_string();
                if path.ends_with("/embeddings") || path.ends_with("/embed") {
                    return trimmed.to_string();
                }
                url.set_path(&if path.is_empty() {
                    "/v1/embeddings".to_string()
                } else {
                    format!("{path}/embeddings")
                });
                url.to_string().trim_end_matches('/').to_string()
            }
            Err(_) => format!("{trimmed}/v1/embeddings"),
        }
    }

    fn fingerprint(&self) -> (String, String, Option<u32>, String) {
        (self.provider.clone(), self.model.clone(), self.dimensions, self.endpoint())
    }

    fn secret_key(&self) -> String {
        format!("embedding_api_key_{}", self.provider)
    }

    fn kinds(&self) -> Vec<crate::storage::sqlite::embeddings::SourceKind> {
        use crate::storage::sqlite::embeddings::SourceKind;
        let mut kinds = Vec::new();
        if self.vectorize_chat_messages {
            kinds.extend([SourceKind::ChatChunk, SourceKind::MemoryConsolidation]);
        }
        if self.vectorize_chat_documents {
            kinds.push(SourceKind::DatabankChunk);
        }
        if self.vectorize_world_books {
            kinds.push(SourceKind::WorldBookEntry);
        }
        kinds
    }
}

/// The older secret name Lumiverse still reads when the per-provider one is missing.
pub const LEGACY_SECRET_KEY: &str = "embedding_api_key";

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        _ => false,
    }
}

fn invalid(field: &str, reason: &str) -> InvalidSetting {
    InvalidSetting { field: field.to_string(), reason: reason.to_string() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_resolve_as_lumiverse_resolves_them() {
        let at = |url: &str| {
            EmbeddingSettings::from_value(&json!({"provider": "openai-compatible", "api_url": url})).endpoint()
        };
        assert_eq!(at("http://127.0.0.1:9000"), "http://127.0.0.1:9000/v1/embeddings");
        assert_eq!(at("http://127.0.0.1:9000/"), "http://127.0.0.1:9000/v1/embeddings");
        assert_eq!(at("https://api.openai.com/v1"), "https://api.openai.com/v1/embeddings");
        assert_eq!(at("http://localhost:11434/api/embed"), "http://localhost:11434/api/embed");
        assert_eq!(at("https://x.example/v1/embeddings/"), "https://x.example/v1/embeddings");
        // A provider with a fixed URL ignores the stored one.
        let openrouter = EmbeddingSettings::from_value(&json!({"provider": "openrouter", "api_url": "http://evil"}));
        assert_eq!(openrouter.endpoint(), "https://openrouter.ai/api/v1/embeddings");
    }

    #[test]
    fn settings_read_with_lumiverse_defaults_and_clamps() {
        let read = EmbeddingSettings::from_value(&json!({"batch_size": 999, "request_timeout": -1, "dimensions": 0}));
        assert_eq!((read.batch_size, read.request_timeout, read.dimensions), (200, 120, None));
        assert_eq!(read.provider, "openai-compatible");
        assert!(!read.enabled && read.vectorize_world_books && !read.vectorize_chat_messages);
        assert_eq!(read.secret_key(), "embedding_api_key_openai-compatible");
    }

    #[test]
    fn a_merge_keeps_unknown_keys_and_refuses_bad_values() {
        let stored = r#"{"retrieval_top_k": 7, "model": "a", "enabled": false}"#;
        let update = json!({"model": "b", "enabled": true, "api_key": "sk-never-stored"});
        let merged = EmbeddingSettings::merge(Some(stored), update.as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(merged), json!({"retrieval_top_k": 7, "model": "b", "enabled": true}));
        for bad in [json!({"api_url": "ftp://x"}), json!({"dimensions": -3}), json!({"provider": "nope"})] {
            assert!(EmbeddingSettings::merge(None, bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
