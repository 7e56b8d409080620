//! lvbak-wasm: the browser's archive processor, run in a Web Worker (`web/worker.js`). It
//! opens the user's File through [`blob_reader::BlobReader`] and calls lvbak-core for
//! everything: inspection (the same checks and codes as the server), ticket verification and
//! secret decryption (the ticket never leaves the browser), and the batch upload, with the
//! secrets sealed to the server's HPKE key; the archive explorer; and character cards
//! (`cards`), built from the local file or read back from a card file.
//!
//! Errors thrown to JavaScript are strings holding `{"code", "message"}` JSON.

mod blob_reader;
mod cards;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use js_sys::{Function, Reflect, Uint8Array};
use lvbak_core::batch::PlainSecret;
use lvbak_core::closure::{belongings, closure, ArchiveRows, Closure, ClosureError, CopyPlan, Pick, Selection};
use lvbak_core::explore::{ExploreIndex, List};
use lvbak_core::upload::{
    file_claims, file_claims_as, upload_batches, BatchSink, HeldRows, SealedSecretsPlan, UploadPlan, UploadProgress,
};
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

/// The items picked for a selective restore.
struct Selected {
    selection: Selection,
    closure: Closure,
    /// Restored as a copy: the ids what belongs to the picks gets.
    copy: Option<CopyPlan>,
}

/// One picked archive.
#[wasm_bindgen]
pub struct Processor {
    archive: Archive<BlobReader>,
    inspection: Inspection,
    secrets: Vec<PlainSecret>,
    open_ms: f64,
    /// The archive explorer's index, once built ([`Processor::explore`]).
    explorer: Option<ExploreIndex>,
    /// A selective restore's picks and their closure over this archive
    /// ([`Processor::select_items`]): only those rows, files and vectors are sent; with
    /// the copy's ids when they are restored as a copy.
    selection: Option<Selected>,
    /// The signed-in user's id ([`Processor::set_importer`]): a copy's ids are derived from it.
    importer: Option<String>,
    /// Whether uploads send the decrypted API keys ([`Processor::send_secrets`]).
    send_secrets: bool,
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
        Ok(Processor {
            archive,
            inspection,
            secrets: Vec::new(),
            open_ms: now_ms() - started,
            explorer: None,
            selection: None,
            importer: None,
            send_secrets: true,
        })
    }

    /// The inspection report as JSON: core's [`Inspection`] (`archiveId`, `manifest`,
    /// `counts` and `vectors` (table → rows), `files` (bucket → {count, bytes}), `secrets`
    /// {count, keys}, `bytes`, `entries`, `warnings`), with `openMs` (how long opening and
    /// inspecting took) and `wasmMemoryBytes`.
    pub fn report(&self) -> String {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Report<'a> {
            #[serde(flatten)]
            inspection: &'a Inspection,
            open_ms: f64,
            wasm_memory_bytes: f64,
        }
        let report =
            Report { inspection: &self.inspection, open_ms: self.open_ms, wasm_memory_bytes: wasm_memory_bytes() };
        serde_json::to_string(&report).unwrap_or_default()
    }

    /// The body of `POST /api/v1/user-data/import/batches`: the manifest, the secrets index,
    /// and the archive's files (name, size, CRC-32) for the server to say which it holds.
    #[wasm_bindgen(js_name = openRequest)]
    pub fn open_request(&self) -> String {
        let index =
            self.archive.secrets_index().and_then(|index| serde_json::from_slice::<Value>(&index.to_line()).ok());
        let mut request =
            json!({"manifest": self.archive.manifest(), "secretsIndex": index, "files": file_claims(&self.archive)});
        if let Some(selected) = &self.selection {
            let picks: Vec<String> = selected.selection.picks.iter().map(ToString::to_string).collect();
            let without_chats = selected.selection.without_chats;
            let as_copy = selected.copy.is_some();
            request["selection"] = json!({"picks": picks, "withoutChats": without_chats, "asCopy": as_copy});
            request["files"] = json!(file_claims_as(&self.archive, selected.copy.as_ref()));
        }
        request.to_string()
    }

    /// The signed-in user's id (`GET /api/v1/auth/me`): a restore as a copy derives the
    /// copies' ids from it, as the server does.
    #[wasm_bindgen(js_name = setImporter)]
    pub fn set_importer(&mut self, user_id: &str) {
        self.importer = Some(user_id.to_string());
    }

    /// Picks items to restore alone (a selective restore): `picks` is a JSON array of
    /// `KIND:ID` (an empty one restores everything again). Their closure over this archive
    /// (`lvbak_core::closure`) is what the next upload sends — rows, the files their ids
    /// name, their vectors; never API keys — and the open request declares the picks for
    /// the server to check. `as_copy`: the picks and what belongs to them come back beside
    /// the account's version under ids of their own (set the importer first,
    /// [`Processor::set_importer`]). Answers `{"tables": {TABLE: rows}}`; throws
    /// `bad_pick`, `no_importer`, or `not_in_archive` naming picks the archive does not hold.
    #[wasm_bindgen(js_name = selectItems)]
    pub fn select_items(&mut self, picks: &str, without_chats: bool, as_copy: Option<bool>) -> Result<String, JsValue> {
        let picks: Vec<String> = serde_json::from_str(picks).map_err(|e| thrown("bad_pick", e))?;
        if picks.is_empty() {
            self.selection = None;
            return Ok(json!({"tables": {}}).to_string());
        }
        let selection = Selection::from_words(&picks, without_chats).map_err(|e| thrown("bad_pick", e))?;
        let not_in_archive = |error| match error {
            ClosureError::NotFound(missing) => {
                thrown("not_in_archive", format!("the archive holds nothing of {}", Pick::named(&missing)))
            }
            ClosureError::Source(error) => format_error(&error),
        };
        // Picks are ticked in the explorer: its line indexes place the rows it lists.
        let mut rows = match &self.explorer {
            Some(explorer) => ArchiveRows::indexed(&mut self.archive, explorer),
            None => ArchiveRows::new(&self.archive),
        };
        let closure = closure(&mut rows, &selection).map_err(not_in_archive)?;
        let copy = match (as_copy == Some(true), &self.importer) {
            (false, _) => None,
            (true, None) => {
                return Err(thrown("no_importer", "say who is signed in (setImporter) before restoring as a copy"))
            }
            (true, Some(importer)) => {
                let own = belongings(&mut rows, &selection).map_err(not_in_archive)?;
                let manifest = self.archive.manifest();
                Some(CopyPlan::new(&own, importer, &manifest.archive_id, manifest.exported_at))
            }
        };
        let tables: serde_json::Map<String, Value> =
            closure.tables().map(|(table, rows)| (table.to_string(), json!(rows))).collect();
        self.selection = Some(Selected { selection, closure, copy });
        Ok(json!({"tables": tables}).to_string())
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

    /// Whether the next uploads send the decrypted API keys (a restore preview sends none;
    /// they are kept for the upload after it).
    #[wasm_bindgen(js_name = sendSecrets)]
    pub fn send_secrets(&mut self, send: bool) {
        self.send_secrets = send;
    }

    /// Forgets decrypted secrets (Skip API keys).
    #[wasm_bindgen(js_name = skipSecrets)]
    pub fn skip_secrets(&mut self) {
        self.secrets.clear();
    }

    /// Sends the archive to job `job_id` in batches. `sink` is an object with
    /// `send(number, bytes, sha256Hex)` (throws on failure), `progress(json)` and
    /// `vectorsAccepted()` → bool. Batches below `start_batch` are skipped (a resume);
    /// `held_files` (a JSON array of entry names, the server's `heldFiles`) are not sent,
    /// nor rows whose ids `held_rows` names (the server's `held-rows` answer, as JSON).
    /// The decrypted API keys go along (sealed to `public_key`) unless
    /// [`Processor::send_secrets`] said not to (a restore preview); they stay here for an
    /// upload sent again (a resume). Answers the upload report as JSON.
    pub fn upload(
        &mut self,
        job_id: &str,
        public_key: &str,
        start_batch: f64,
        held_files: &str,
        held_rows: &str,
        sink: JsValue,
    ) -> Result<String, JsValue> {
        let held_files = serde_json::from_str(held_files).map_err(|e| thrown("bad_request", e))?;
        let held_rows = HeldRows::parse(held_rows.as_bytes()).map_err(|e| thrown("bad_request", e))?;
        let secrets = if self.secrets.is_empty() || !self.send_secrets {
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
                secrets: self.secrets.clone(),
            })
        };
        let plan = UploadPlan {
            start_batch: start_batch as u64,
            secrets,
            held_files,
            held_rows: held_rows.tables,
            fresh_tables: held_rows.fresh,
            only: self.selection.as_ref().map(|selected| selected.closure.clone()),
            copy: self.selection.as_ref().and_then(|selected| selected.copy.clone()),
        };
        let mut sink = JsSink::new(sink)?;
        match upload_batches(&self.archive, plan, &mut sink) {
            Ok(report) => Ok(serde_json::to_string(&report).unwrap_or_default()),
            Err(error) => Err(sink.failure.take().unwrap_or_else(|| format_error(&error))),
        }
    }
}

/// The archive explorer: a read-only view of the local file, built in the Worker (nothing
/// of it reaches the server). See `lvbak_core::explore`: every answer is a bounded page.
#[wasm_bindgen]
impl Processor {
    /// Builds the explorer's index (once; later calls answer the same) and answers its
    /// summary as JSON: the first page of `characters`, `personas`, `worldBooks`, `presets`,
    /// `images` and `chats` (each `{list, start, total, items}`), `imagesTotal`, `stats`
    /// (`rows`, `indexBytes`), `buildMs` and `wasmMemoryBytes`. `progress(table)` hears each
    /// table it reads.
    pub fn explore(&mut self, progress: &Function) -> Result<String, JsValue> {
        let started = now_ms();
        if self.explorer.is_none() {
            let index = ExploreIndex::build(&mut self.archive, |table| {
                let _ = progress.call1(&JsValue::NULL, &JsValue::from_str(table));
            })
            .map_err(|e| format_error(&e))?;
            self.explorer = Some(index);
        }
        let (index, _) = self.explored()?;
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer<'a> {
            #[serde(flatten)]
            summary: lvbak_core::explore::Summary<'a>,
            build_ms: f64,
            wasm_memory_bytes: f64,
        }
        let answer =
            Answer { summary: index.summary(), build_ms: now_ms() - started, wasm_memory_bytes: wasm_memory_bytes() };
        serde_json::to_string(&answer).map_err(|e| thrown("internal", e))
    }

    /// The index with the archive it reads, or `not_explored`.
    fn explored(&mut self) -> Result<(&ExploreIndex, &mut Archive<BlobReader>), JsValue> {
        match &self.explorer {
            Some(index) => Ok((index, &mut self.archive)),
            None => Err(thrown("not_explored", "open the archive for browsing first")),
        }
    }

    /// One page of a list (`characters`, `personas`, `worldBooks`, `presets`, `images`,
    /// `chats`; chats of one character when `character_id` is not empty), as JSON
    /// `{list, characterId, start, total, items}`.
    #[wasm_bindgen(js_name = exploreList)]
    pub fn explore_list(&mut self, list: &str, character_id: &str, start: f64, count: f64) -> Result<String, JsValue> {
        let kind = List::parse(list).ok_or_else(|| thrown("bad_request", format!("no list {list:?}")))?;
        let (index, _) = self.explored()?;
        let character = (!character_id.is_empty()).then_some(character_id);
        let page = index.list_page(kind, character, place(start), place(count));
        serde_json::to_string(&page).map_err(|e| thrown("internal", e))
    }

    /// One page of a chat's messages in chat order, as JSON `{chatId, chat, start, total,
    /// messages: [{id, index, isUser, name, swipes, swipeId, swipesFrom, swipesTotal,
    /// sendDate}], readMs, wasmMemoryBytes}`.
    #[wasm_bindgen(js_name = exploreChat)]
    pub fn explore_chat(&mut self, chat_id: &str, start: f64, count: f64) -> Result<String, JsValue> {
        let started = now_ms();
        let (index, archive) = self.explored()?;
        let page = index.chat_page(archive, chat_id, place(start), place(count)).map_err(|e| format_error(&e))?;
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer<'a> {
            chat_id: &'a str,
            #[serde(flatten)]
            page: lvbak_core::explore::ChatPage<'a>,
            read_ms: f64,
            wasm_memory_bytes: f64,
        }
        let answer = Answer { chat_id, page, read_ms: now_ms() - started, wasm_memory_bytes: wasm_memory_bytes() };
        serde_json::to_string(&answer).map_err(|e| thrown("internal", e))
    }

    /// One page of a world book's entries, as JSON `{bookId, book, start, total, entries}`.
    #[wasm_bindgen(js_name = exploreWorldBook)]
    pub fn explore_world_book(&mut self, book_id: &str, start: f64, count: f64) -> Result<String, JsValue> {
        let (index, archive) = self.explored()?;
        let page = index.world_book_page(archive, book_id, place(start), place(count)).map_err(|e| format_error(&e))?;
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer<'a> {
            book_id: &'a str,
            #[serde(flatten)]
            page: lvbak_core::explore::BookPage<'a>,
        }
        serde_json::to_string(&Answer { book_id, page }).map_err(|e| thrown("internal", e))
    }

    /// The bytes of a picture the index names (an avatar, an image, a thumbnail).
    #[wasm_bindgen(js_name = exploreFile)]
    pub fn explore_file(&mut self, name: &str) -> Result<Uint8Array, JsValue> {
        let (index, archive) = self.explored()?;
        match index.file(archive, name).map_err(|e| format_error(&e))? {
            Some(bytes) => Ok(Uint8Array::from(bytes.as_slice())),
            None => Err(thrown("not_found", format!("the archive has no picture {name:?}"))),
        }
    }

    /// Searches names and message text; `hits(json)` hears each batch of hits as they are
    /// found (a JSON array). Answers how many there were (at most core's `SEARCH_HITS`).
    #[wasm_bindgen(js_name = exploreSearch)]
    pub fn explore_search(&mut self, query: &str, limit: u32, hits: &Function) -> Result<u32, JsValue> {
        let (index, archive) = self.explored()?;
        let mut pending = Vec::new();
        let mut last_sent = 0.0;
        let flush = |pending: &mut Vec<lvbak_core::explore::SearchHit>| {
            if !pending.is_empty() {
                let text = serde_json::to_string(pending).unwrap_or_default();
                let _ = hits.call1(&JsValue::NULL, &JsValue::from_str(&text));
                pending.clear();
            }
        };
        let found = index.search(archive, query, limit as usize, |hit| {
            pending.push(hit);
            // Hits go out as they come: the first at once, then at most every 50 ms.
            if pending.len() >= 50 || now_ms() - last_sent > 50.0 {
                flush(&mut pending);
                last_sent = now_ms();
            }
            true
        });
        flush(&mut pending);
        Ok(found.map_err(|e| format_error(&e))? as u32)
    }
}

/// A place or count the page asked for (a JavaScript number): whole and not negative.
fn place(number: f64) -> usize {
    if number.is_finite() && number > 0.0 {
        number.min(usize::MAX as f64) as usize
    } else {
        0
    }
}

/// The size of this module's linear memory: everything the processor holds (the archive's
/// central directory, the explorer's index, read buffers) lives in it, and it never shrinks,
/// so it is also the peak.
fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|memory| memory.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |buffer| f64::from(buffer.byte_length()))
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
        let hash = hex::encode(Sha256::digest(batch));
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
