//! Character cards in the Worker, from the local file (nothing is uploaded): one card
//! (`Processor::characterCard`), several in one ZIP (`Processor::cardsZip`), and a card file
//! the user gives the page read back (`readCard`). Everything is lvbak-core's.

use js_sys::{Array, Object, Reflect, Uint8Array};
use lvbak_core::card::{bundle_name, character_list, read_card, CardBundle, CharacterRows};
use lvbak_core::explore::ExploreIndex;
use lvbak_core::{Archive, FormatError};
use wasm_bindgen::prelude::*;

use crate::blob_reader::BlobReader;
use crate::{format_error, thrown, Processor};

/// The most characters one ZIP of cards is asked for.
const ZIP_CARDS: usize = 1000;

/// The card formats, by the extension their files get.
fn check_format(format: &str) -> Result<&str, JsValue> {
    match format {
        "json" | "png" | "charx" => Ok(format),
        other => Err(thrown("bad_request", format!("no card format {other:?}"))),
    }
}

/// Now, in unix seconds (a CHARX is stamped with the time of its export).
fn now_s() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// The whole id of a character the explorer named by its `id` (clipped to 64 characters
/// and an ellipsis when longer): the id itself, or the one character whose id it begins.
fn whole_id(archive: &mut Archive<BlobReader>, id: &str) -> Result<String, FormatError> {
    let Some(prefix) = id.strip_suffix('…') else { return Ok(id.to_string()) };
    let mut matches = character_list(archive)?.into_iter().filter(|(whole, _)| whole.starts_with(prefix));
    match (matches.next(), matches.next()) {
        (Some((whole, _)), None) => Ok(whole),
        _ => Err(FormatError::CharacterNotFound { id: id.to_string() }),
    }
}

/// One card: the character's whole id, its name and the card's bytes. With the explorer's
/// index, the character's rows are read at the lines it names (see
/// `CharacterRows::read_indexed`).
fn build(
    archive: &mut Archive<BlobReader>,
    explorer: Option<&ExploreIndex>,
    id: &str,
    format: &str,
    at: i64,
) -> Result<(String, String, Vec<u8>), FormatError> {
    let id = whole_id(archive, id)?;
    let rows = match explorer {
        Some(explorer) => CharacterRows::read_indexed(archive, &id, explorer)?,
        None => CharacterRows::read(archive, &id)?,
    };
    let bytes = match format {
        "json" => rows.ccv3_json()?.into_bytes(),
        "png" => rows.png(archive)?,
        _ => rows.charx(archive, at)?,
    };
    Ok((id, rows.name().to_string(), bytes))
}

fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}

#[wasm_bindgen]
impl Processor {
    /// The card of one character (`format`: `json`, `png` or `charx`), as Lumiverse 1.1
    /// exports it: `{bytes, fileName, name, wasmMemoryBytes}`, the file named
    /// `<name>-<first 8 of id>.<ext>`.
    /// Throws `{code}`: `character_not_found`, `unsupported_image` (a PNG or CHARX; the
    /// JSON card still works), `bad_card_data`, …
    #[wasm_bindgen(js_name = characterCard)]
    pub fn character_card(&mut self, id: &str, format: &str) -> Result<Object, JsValue> {
        let format = check_format(format)?;
        let (id, name, bytes) =
            build(&mut self.archive, self.explorer.as_ref(), id, format, now_s()).map_err(|e| format_error(&e))?;
        let answer = Object::new();
        set(&answer, "bytes", &Uint8Array::from(bytes.as_slice()));
        set(&answer, "fileName", &JsValue::from_str(&bundle_name(&name, &id, format)));
        set(&answer, "name", &JsValue::from_str(&name));
        set(&answer, "wasmMemoryBytes", &JsValue::from(crate::wasm_memory_bytes()));
        Ok(answer)
    }

    /// The cards of several characters (`ids`: a JSON array of ids) in one ZIP:
    /// `{bytes, cards, skipped: [{id, name, code, message}]}`. A character whose card
    /// cannot be made is left out and listed; `progress(done, total)` hears each card.
    #[wasm_bindgen(js_name = cardsZip)]
    pub fn cards_zip(&mut self, ids: &str, format: &str, progress: &js_sys::Function) -> Result<Object, JsValue> {
        let format = check_format(format)?;
        let ids: Vec<String> = serde_json::from_str(ids).map_err(|e| thrown("bad_request", e))?;
        if ids.len() > ZIP_CARDS {
            return Err(thrown("bad_request", format!("at most {ZIP_CARDS} cards go in one ZIP")));
        }
        let at = now_s();
        let mut bundle = CardBundle::new(at);
        let skipped = Array::new();
        let mut cards = 0;
        for (done, id) in ids.iter().enumerate() {
            match build(&mut self.archive, self.explorer.as_ref(), id, format, at) {
                Ok((whole, name, bytes)) => {
                    bundle.add(&name, &whole, format, &bytes).map_err(|e| format_error(&e))?;
                    cards += 1;
                }
                // The archive itself failing (damaged, unreadable) ends the ZIP.
                Err(error) if !is_card_refusal(&error) => return Err(format_error(&error)),
                Err(error) => {
                    let item = Object::new();
                    set(&item, "id", &JsValue::from_str(id));
                    set(&item, "code", &JsValue::from_str(error.code()));
                    set(&item, "message", &JsValue::from_str(&error.to_string()));
                    skipped.push(&item);
                }
            }
            let _ = progress.call2(&JsValue::NULL, &JsValue::from(done as u32 + 1), &JsValue::from(ids.len() as u32));
        }
        let bytes = bundle.finish().map_err(|e| format_error(&e))?;
        let answer = Object::new();
        set(&answer, "bytes", &Uint8Array::from(bytes.as_slice()));
        set(&answer, "cards", &JsValue::from(cards));
        set(&answer, "skipped", &skipped);
        Ok(answer)
    }
}

/// Whether an error is about one character's card (it is left out of a ZIP), not the
/// archive.
fn is_card_refusal(error: &FormatError) -> bool {
    matches!(
        error,
        FormatError::CharacterNotFound { .. }
            | FormatError::BadCardData { .. }
            | FormatError::UnsupportedImage { .. }
            | FormatError::TooLarge { .. }
    )
}

/// Reads a card file back (JSON, PNG or CHARX) and answers lvbak-core's `CardView` as
/// JSON (`source`, `spec`, `specVersion`, `name`, `fields: [{field, text}]`, `tags`,
/// `alternateGreetings`, `book: {name, entriesTotal, entries: [{keys, comment, content,
/// enabled}]}`, `assets`). Throws `{code}`: `not_a_card`, `bad_card`, `bad_png_chunk`,
/// `too_large`, or a CHARX's ZIP refusal.
#[wasm_bindgen(js_name = readCard)]
pub fn read_card_file(file: web_sys::File) -> Result<String, JsValue> {
    let reader = BlobReader::new(file).map_err(|e| thrown("io", e))?;
    let view = read_card(reader).map_err(|e| format_error(&e))?;
    serde_json::to_string(&view).map_err(|e| thrown("internal", e))
}
