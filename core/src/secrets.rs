//! Encrypted API keys and the decryption ticket (FORMAT §6): the ticket's parse and
//! verification with its exact codes, the `secretsHash` binding, the `secrets/` entries,
//! and AES-256-GCM over single records (RustCrypto, so it also runs in a browser on a
//! plain-HTTP origin where WebCrypto is unavailable).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{FormatError, Result};

pub const TICKET_KIND: &str = "lumiverse-decryption-ticket";
pub const TICKET_VERSION: i64 = 1;
pub const ALGORITHM: &str = "AES-256-GCM";
pub const ISSUER: &str = "lumiverse";
pub const SECRETS_INDEX_ENTRY: &str = "secrets/index.json";
pub const SECRETS_BLOB_ENTRY: &str = "secrets/encrypted.ndjson";

/// A 32-byte secrets master key, wiped from memory when dropped.
pub type SecretKey = Zeroizing<[u8; 32]>;

/// A decryption ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub kind: String,
    pub version: i64,
    pub archive_id: String,
    pub issuer: String,
    pub issuer_instance: Option<String>,
    pub issued_at: i64,
    pub algorithm: String,
    pub key_b64: String,
    pub secrets_hash: String,
}

fn malformed(detail: impl Into<String>) -> FormatError {
    FormatError::TicketMalformed { detail: detail.into() }
}

impl Ticket {
    /// Makes the ticket for an archive whose secrets were encrypted under `key`.
    pub fn issue(
        archive_id: &str,
        key: &[u8; 32],
        secret_keys: &[String],
        issued_at: i64,
        issuer_instance: Option<String>,
    ) -> Self {
        Self {
            kind: TICKET_KIND.to_string(),
            version: TICKET_VERSION,
            archive_id: archive_id.to_string(),
            issuer: ISSUER.to_string(),
            issuer_instance,
            issued_at,
            algorithm: ALGORITHM.to_string(),
            key_b64: BASE64.encode(key),
            secrets_hash: secrets_hash(archive_id, secret_keys),
        }
    }

    /// Parses a ticket file, in the order of FORMAT §6: not an object → `malformed`; wrong
    /// kind → `wrong_kind`; version ≠ 1 → `unsupported_version`; algorithm, archiveId, key
    /// or hash missing or wrong → `malformed`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|error| malformed(format!("not JSON: {error}")))?;
        let object = value.as_object().ok_or_else(|| malformed("not a JSON object"))?;
        match object.get("kind") {
            Some(Value::String(kind)) if kind == TICKET_KIND => {}
            Some(Value::String(kind)) => return Err(FormatError::TicketWrongKind { kind: kind.clone() }),
            Some(other) => return Err(FormatError::TicketWrongKind { kind: other.to_string() }),
            None => return Err(FormatError::TicketWrongKind { kind: "(none)".into() }),
        }
        match object.get("version") {
            Some(version) if version.as_i64() == Some(TICKET_VERSION) => {}
            Some(found) => {
                return Err(FormatError::UnsupportedVersion {
                    field: "ticket version".into(),
                    found: found.to_string(),
                    supported: TICKET_VERSION.to_string(),
                })
            }
            None => return Err(malformed("no version")),
        }
        let text = |key: &str| object.get(key).and_then(Value::as_str);
        if text("algorithm") != Some(ALGORITHM) {
            return Err(malformed(format!("algorithm must be {ALGORITHM}")));
        }
        let archive_id = text("archiveId").filter(|id| !id.is_empty()).ok_or_else(|| malformed("no archiveId"))?;
        let key_b64 = text("keyB64").ok_or_else(|| malformed("no keyB64"))?;
        decode_key(key_b64)?;
        let secrets_hash = text("secretsHash").ok_or_else(|| malformed("no secretsHash"))?;
        Ok(Self {
            kind: TICKET_KIND.to_string(),
            version: TICKET_VERSION,
            archive_id: archive_id.to_string(),
            issuer: text("issuer").unwrap_or(ISSUER).to_string(),
            issuer_instance: text("issuerInstance").map(str::to_string),
            issued_at: object.get("issuedAt").and_then(Value::as_i64).unwrap_or(0),
            algorithm: ALGORITHM.to_string(),
            key_b64: key_b64.to_string(),
            secrets_hash: secrets_hash.to_string(),
        })
    }

    /// Checks the ticket is for this archive (`archive_mismatch`) and for exactly these
    /// secrets (`binding_mismatch`).
    pub fn verify(&self, archive_id: &str, index: &SecretsIndex) -> Result<()> {
        self.verify_binding(archive_id, &index.binding())
    }

    /// [`Self::verify`] against what an index binds (kept instead of the whole index).
    pub fn verify_binding(&self, archive_id: &str, binding: &SecretsBinding) -> Result<()> {
        if self.archive_id != archive_id {
            return Err(FormatError::ArchiveMismatch {
                ticket: self.archive_id.clone(),
                archive: archive_id.to_string(),
            });
        }
        if binding.archive_id != archive_id {
            return Err(FormatError::BindingMismatch {
                detail: format!("secrets/index.json names archive {}", binding.archive_id),
            });
        }
        if !self.secrets_hash.eq_ignore_ascii_case(&binding.hash) {
            return Err(FormatError::BindingMismatch {
                detail: "secretsHash differs from the archive's key list".into(),
            });
        }
        Ok(())
    }

    /// The secrets master key.
    pub fn key(&self) -> Result<SecretKey> {
        decode_key(&self.key_b64)
    }

    /// The ticket file as Lumiverse writes it (pretty-printed).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

fn decode_key(key_b64: &str) -> Result<SecretKey> {
    let bytes = Zeroizing::new(BASE64.decode(key_b64).map_err(|_| malformed("keyB64 is not base64"))?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != key.len() {
        return Err(malformed(format!("the key is {} bytes, not 32", bytes.len())));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Sorts secret key names the way the JavaScript exporter does (UTF-16 code units).
pub fn sort_secret_keys(keys: &mut [String]) {
    keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
}

/// `hex(sha256(archiveId + "|" + "AES-256-GCM" + "|" + sorted keys joined by "\n"))`.
pub fn secrets_hash(archive_id: &str, keys: &[String]) -> String {
    let mut sorted = keys.to_vec();
    sort_secret_keys(&mut sorted);
    let mut hasher = Sha256::new();
    hasher.update(archive_id.as_bytes());
    hasher.update(b"|");
    hasher.update(ALGORITHM.as_bytes());
    hasher.update(b"|");
    hasher.update(sorted.join("\n").as_bytes());
    hex::encode(hasher.finalize())
}

/// `secrets/index.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretsIndex {
    pub version: i64,
    pub archive_id: String,
    pub keys: Vec<String>,
}

/// What a ticket must match in a secrets index: its archive id and `secretsHash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsBinding {
    pub archive_id: String,
    pub hash: String,
    pub keys: usize,
}

impl SecretsIndex {
    /// The binding a ticket is checked against.
    pub fn binding(&self) -> SecretsBinding {
        SecretsBinding {
            archive_id: self.archive_id.clone(),
            hash: secrets_hash(&self.archive_id, &self.keys),
            keys: self.keys.len(),
        }
    }

    pub fn new(archive_id: &str, mut keys: Vec<String>) -> Self {
        sort_secret_keys(&mut keys);
        Self { version: 1, archive_id: archive_id.to_string(), keys }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let index: SecretsIndex = serde_json::from_slice(bytes)
            .map_err(|error| FormatError::BadSecrets { detail: format!("{SECRETS_INDEX_ENTRY}: {error}") })?;
        if index.version != 1 {
            return Err(FormatError::UnsupportedVersion {
                field: "secrets index version".into(),
                found: index.version.to_string(),
                supported: "1".into(),
            });
        }
        Ok(index)
    }

    /// One compact JSON line, as Lumiverse writes it.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// One line of `secrets/encrypted.ndjson`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedSecret {
    pub key: String,
    pub iv: String,
    pub tag: String,
    pub ciphertext: String,
}

/// Why one secret record could not be decrypted; the record is skipped alone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretSkip {
    #[error("the record is not valid: {0}")]
    Malformed(String),
    #[error("the authentication tag does not match (wrong key or altered data)")]
    TagMismatch,
    #[error("the plaintext is not UTF-8")]
    NotText,
}

impl SecretSkip {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "bad_secret_record",
            Self::TagMismatch => "tag_mismatch",
            Self::NotText => "not_text",
        }
    }
}

impl EncryptedSecret {
    /// Encrypts one secret under `key` with the caller's fresh random `iv`.
    pub fn seal(key: &[u8; 32], iv: [u8; 12], name: &str, plaintext: &str) -> Self {
        let cipher = Aes256Gcm::new(key.into());
        // Encryption with a valid key and nonce only fails past 64 GiB of plaintext.
        let mut sealed =
            cipher.encrypt(&Nonce::from(iv), Payload { msg: plaintext.as_bytes(), aad: b"" }).unwrap_or_default();
        let tag = sealed.split_off(sealed.len().saturating_sub(16));
        Self {
            key: name.to_string(),
            iv: BASE64.encode(iv),
            tag: BASE64.encode(tag),
            ciphertext: BASE64.encode(sealed),
        }
    }

    /// Decrypts the record; failures concern this record only.
    pub fn open(&self, key: &[u8; 32]) -> std::result::Result<Zeroizing<String>, SecretSkip> {
        let decode = |field: &str, value: &str| {
            BASE64.decode(value).map_err(|_| SecretSkip::Malformed(format!("{field} is not base64")))
        };
        let iv = decode("iv", &self.iv)?;
        let tag = decode("tag", &self.tag)?;
        let mut sealed = decode("ciphertext", &self.ciphertext)?;
        let iv: [u8; 12] = iv.try_into().map_err(|_| SecretSkip::Malformed("iv is not 12 bytes".into()))?;
        if tag.len() != 16 {
            return Err(SecretSkip::Malformed("tag is not 16 bytes".into()));
        }
        sealed.extend_from_slice(&tag);
        let cipher = Aes256Gcm::new(key.into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(&Nonce::from(iv), Payload { msg: &sealed, aad: b"" })
                .map_err(|_| SecretSkip::TagMismatch)?,
        );
        match std::str::from_utf8(&plaintext) {
            Ok(text) => Ok(Zeroizing::new(text.to_string())),
            Err(_) => Err(SecretSkip::NotText),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket_code(json: &str) -> &'static str {
        match Ticket::parse(json.as_bytes()) {
            Ok(_) => "ok",
            Err(error) => error.code(),
        }
    }

    #[test]
    fn ticket_parse_codes_in_order() {
        let key = BASE64.encode([7u8; 32]);
        let good = format!(
            r#"{{"kind":"{TICKET_KIND}","version":1,"archiveId":"a","algorithm":"AES-256-GCM","keyB64":"{key}","secretsHash":"00"}}"#
        );
        assert_eq!(ticket_code(&good), "ok");
        assert_eq!(ticket_code("[1]"), "malformed");
        assert_eq!(ticket_code("nope"), "malformed");
        assert_eq!(ticket_code(r#"{"kind":"other","version":9}"#), "wrong_kind");
        assert_eq!(ticket_code(&good.replace("\"version\":1", "\"version\":2")), "unsupported_version");
        assert_eq!(ticket_code(&good.replace("AES-256-GCM", "AES-128-GCM")), "malformed");
        assert_eq!(ticket_code(&good.replace(&key, &BASE64.encode([7u8; 16]))), "malformed");
        assert_eq!(ticket_code(&good.replace("\"archiveId\":\"a\",", "")), "malformed");
    }

    #[test]
    fn verify_binds_archive_and_keys() {
        let keys = vec!["web_search_api_key".to_string(), "connection_x_api_key".to_string()];
        let ticket = Ticket::issue("arch", &[1u8; 32], &keys, 5, None);
        let index = SecretsIndex::new("arch", keys.clone());
        assert!(ticket.verify("arch", &index).is_ok());
        assert_eq!(ticket.verify("other", &index).err().map(|e| e.code()), Some("archive_mismatch"));
        let tampered = SecretsIndex::new("arch", vec!["connection_x_api_key".to_string()]);
        assert_eq!(ticket.verify("arch", &tampered).err().map(|e| e.code()), Some("binding_mismatch"));
    }

    #[test]
    fn sealed_records_open_and_tampering_is_caught() {
        let key = [9u8; 32];
        let record = EncryptedSecret::seal(&key, [3u8; 12], "k", "sk-ünï");
        assert_eq!(record.open(&key).ok().as_deref().map(String::as_str), Some("sk-ünï"));
        assert_eq!(record.open(&[8u8; 32]).err(), Some(SecretSkip::TagMismatch));
        let mut bytes = BASE64.decode(&record.ciphertext).unwrap_or_default();
        bytes[0] ^= 1;
        let flipped = EncryptedSecret { ciphertext: BASE64.encode(bytes), ..record };
        assert_eq!(flipped.open(&key).err(), Some(SecretSkip::TagMismatch));
    }
}
