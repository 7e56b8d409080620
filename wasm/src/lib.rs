//! lvbak-wasm: the browser's archive processor, run in a Web Worker (`web/worker.js`). It
//! opens the user's File through [`blob_reader::BlobReader`] and calls lvbak-core for
//! everything: inspection (the same checks and codes as the server), ticket verification and
//! secret decryption (the ticket never leaves the browser), and the batch upload, with the
//! secrets sealed to the server's HPKE key.
//!
//! Errors thrown to JavaScript are strings holding `{"code", "message"}` JSON.

mod blob_reader;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use js_sys::{Function, Reflect, Uint8Array};
use lvbak_core::batch::PlainSecret;
use lvbak_core::upload::{upload_batches, BatchSink, SealedSecretsPlan, UploadPlan, UploadProgress};
use lvbak_core::{inspect, Archive, FormatError, InspectOptions, Inspection, Limits, Ticket};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use blob_reader::BlobReader;

/// The version of the format core compiled into this module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A JavaScript `Error` with the refusal's stable `code` as a property (and as its name).
fn thrown(code: &str, message: impl std::fmt::Display) -> JsValue {
    let error = js_sys::Error::new(&message.to_string());
    error.set_name(code);
    let _ = Reflect::set(&error, &JsValue::from_str("code"), &JsValue::from_str(code));
    error.into()
}

fn format_error(error: &FormatError) -> JsValue {
    thrown(error.code(), error)
}

/// One picked archive.
#[wasm_bindgen]
pub struct Processor {
    archive: Archive<BlobReader>,
    inspection: Inspection,
    secrets: Vec<PlainSecret>,
    open_ms: f64,
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen]
impl Processor {
    /// Opens and inspects `file`: magic bytes, central directory, every entry name, caps,
    /// manifest, stats and secrets index. Throws `{code, message}` for a refused archive.
    #[wasm_bindgen(constructor)]
    pub fn new(file: web_sys::File) -> Result<Processor, JsValue> {
        let started = now_ms();
        let reader = BlobReader::new(file).map_err(|e| thrown("io", e))?;
        let mut archive = Archive::open(reader, Limits::STANDARD).map_err(|e| format_error(&e))?;
        let inspection = inspect(&mut archive, InspectOptions::default()).map_err(|e| format_error(&e))?;
        Ok(Processor { archive, inspection, secrets: Vec::new(), open_ms: now_ms() - started })
    }

    /// The inspection as JSON: `archiveId`, `manifest`, `counts` and `vectors` (table →
    /// rows), `files` (bucket → {count, bytes}), `secrets` {count, keys}, `bytes`, `warnings`,
    /// `entries`, and `openMs` (how long opening and inspecting took).
    pub fn report(&self) -> String {
        let i = &self.inspection;
        let pairs = |list: &[(String, u64)]| -> Value {
            Value::Object(list.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
        };
        json!({
            "archiveId": i.archive_id,
            "manifest": i.manifest,
            "counts": pairs(&i.counts),
            "countSource": i.count_source,
            "vectors": pairs(&i.vectors),
            "files": i.files,
            "secrets": i.secrets,
            "bytes": i.bytes,
            "entries": i.entries,
            "warnings": i.warnings,
            "openMs": self.open_ms,
        })
        .to_string()
    }

    /// The body of `POST /api/v1/user-data/import/batches`: the manifest and secrets index.
    #[wasm_bindgen(js_name = openRequest)]
    pub fn open_request(&self) -> String {
        let index =
            self.archive.secrets_index().and_then(|index| serde_json::from_slice::<Value>(&index.to_line()).ok());
        json!({"manifest": self.archive.manifest(), "secretsIndex": index}).to_string()
    }

    /// Verifies `ticket` (the `.ticket.json` text) against this archive and decrypts its
    /// secrets here. Answers `{decrypted, failed: [{key, code}]}`; a ticket that does not
    /// fit throws its code (`malformed`, `wrong_kind`, `archive_mismatch`, ...).
    #[wasm_bindgen(js_name = applyTicket)]
    pub fn apply_ticket(&mut self, ticket: &str) -> Result<String, JsValue> {
        let ticket = Ticket::parse(ticket.as_bytes()).map_err(|e| format_error(&e))?;
        let outcomes = self.archive.decrypt_secrets(&ticket).map_err(|e| format_error(&e))?;
        self.secrets.clear();
        let mut failed = Vec::new();
        for outcome in outcomes {
            match outcome.result {
                Ok(value) => self.secrets.push(PlainSecret { key: outcome.key, value: value.to_string() }),
                Err(skip) => failed.push(json!({"key": outcome.key, "code": skip.code()})),
            }
        }
        Ok(json!({"decrypted": self.secrets.len(), "failed": failed}).to_string())
    }

    /// Forgets decrypted secrets (Skip API keys).
    #[wasm_bindgen(js_name = skipSecrets)]
    pub fn skip_secrets(&mut self) {
        self.secrets.clear();
    }

    /// Sends the archive to job `job_id` in batches. `sink` is an object with
    /// `send(number, bytes, sha256Hex)` (throws on failure), `progress(json)` and
    /// `vectorsAccepted()` → bool. Batches below `start_batch` are skipped (a resume).
    /// Answers the upload report as JSON.
    pub fn upload(
        &mut self,
        job_id: &str,
        public_key: &str,
        start_batch: f64,
        sink: JsValue,
    ) -> Result<String, JsValue> {
        let secrets = if self.secrets.is_empty() {
            None
        } else {
            let recipient: [u8; 32] = BASE64
                .decode(public_key)
                .ok()
                .and_then(|key| key.try_into().ok())
                .ok_or_else(|| thrown("bad_key", "the server's public key is not 32 bytes of base64"))?;
            Some(SealedSecretsPlan {
                recipient,
                ephemeral: random_32()?,
                job_id: job_id.to_string(),
                secrets: std::mem::take(&mut self.secrets),
            })
        };
        let plan = UploadPlan { start_batch: start_batch as u64, secrets };
        let mut sink = JsSink::new(sink)?;
        match upload_batches(&mut self.archive, plan, &mut sink) {
            Ok(report) => Ok(serde_json::to_string(&report).unwrap_or_default()),
            Err(error) => Err(sink.failure.take().unwrap_or_else(|| format_error(&error))),
        }
    }
}

fn random_32() -> Result<[u8; 32], JsValue> {
    let mut bytes = [0u8; 32];
    let scope: web_sys::WorkerGlobalScope = js_sys::global().dyn_into()?;
    scope.crypto()?.get_random_values_with_u8_array(&mut bytes)?;
    Ok(bytes)
}

/// The JavaScript sink of an upload.
struct JsSink {
    target: JsValue,
    send: Function,
    progress: Function,
    vectors_accepted: Function,
    /// What JavaScript threw, handed back as is.
    failure: Option<JsValue>,
    last_progress: f64,
}

impl JsSink {
    fn new(target: JsValue) -> Result<Self, JsValue> {
        let method = |name: &str| -> Result<Function, JsValue> {
            Reflect::get(&target, &JsValue::from_str(name))?
                .dyn_into::<Function>()
                .map_err(|_| thrown("bad_sink", format!("the sink has no {name}()")))
        };
        Ok(Self {
            send: method("send")?,
            progress: method("progress")?,
            vectors_accepted: method("vectorsAccepted")?,
            target,
            failure: None,
            last_progress: 0.0,
        })
    }

    fn lost(&mut self, thrown_value: JsValue) -> FormatError {
        let text = thrown_value.as_string().unwrap_or_else(|| format!("{thrown_value:?}"));
        self.failure = Some(thrown_value);
        FormatError::Io(std::io::Error::other(text))
    }
}

impl BatchSink for JsSink {
    fn send(&mut self, number: u64, batch: &[u8]) -> Result<(), FormatError> {
        let hash: String = Sha256::digest(batch).iter().map(|b| format!("{b:02x}")).collect();
        let bytes = Uint8Array::from(batch);
        self.send
            .call3(&self.target, &JsValue::from_f64(number as f64), &bytes, &JsValue::from_str(&hash))
            .map(drop)
            .map_err(|e| self.lost(e))
    }

    fn progress(&mut self, progress: &UploadProgress) {
        // At most every 100 ms, and always at phase ends.
        let now = now_ms();
        if now - self.last_progress < 100.0 && progress.phase != "sent" {
            return;
        }
        self.last_progress = now;
        let text = serde_json::to_string(progress).unwrap_or_default();
        let _ = self.progress.call1(&self.target, &JsValue::from_str(&text));
    }

    fn vectors_accepted(&mut self) -> Result<bool, FormatError> {
        match self.vectors_accepted.call0(&self.target) {
            Ok(answer) => Ok(answer.as_bool().unwrap_or(false)),
            Err(e) => Err(self.lost(e)),
        }
    }
}
