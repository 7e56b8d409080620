//! What a card read back says, bounded so that showing it costs the same whatever the card
//! holds: its name, its text fields (each clipped to [`FIELD_TEXT`] characters), tags, how
//! many alternate greetings, and its `character_book` (the first [`ENTRIES_SHOWN`] entries,
//! each clipped to [`ENTRY_TEXT`] characters, with the total). The CLI prints it and the
//! page shows it (serialized in camelCase).

use serde::Serialize;
use serde_json::Value;

use crate::error::{FormatError, Result};
use crate::explore::{clip, ENTRY_KEYS, NAME_TEXT};

/// Where a card was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CardSource {
    #[serde(rename = "json")]
    Json,
    /// A PNG's `ccv3` (CCSv3) chunk.
    #[serde(rename = "png-ccv3")]
    Ccv3Chunk,
    /// A PNG's `chara` (CCSv2 or V1) chunk.
    #[serde(rename = "png-chara")]
    CharaChunk,
    #[serde(rename = "charx")]
    Charx,
}

impl CardSource {
    /// Where the card was, in words.
    pub fn what(self) -> &'static str {
        match self {
            Self::Json => "the JSON file",
            Self::Ccv3Chunk => "the PNG's ccv3 chunk",
            Self::CharaChunk => "the PNG's chara chunk",
            Self::Charx => "the CHARX's card.json",
        }
    }
}

/// Characters of a text field shown.
pub const FIELD_TEXT: usize = 40_000;

/// Book entries shown; the rest are counted.
pub const ENTRIES_SHOWN: usize = 200;

/// Characters of a book entry's content shown.
pub const ENTRY_TEXT: usize = 4_000;

/// Tags shown.
const TAGS_SHOWN: usize = 64;

/// The text fields of a card shown, in this order (CCSv3 `data` names).
const TEXT_FIELDS: [&str; 11] = [
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
    "nickname",
];

/// A card read back (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    /// Where the card was found.
    pub source: CardSource,
    /// `chara_card_v3`, `chara_card_v2`, or `v1` for a card without `spec`.
    pub spec: String,
    pub spec_version: Option<String>,
    pub name: String,
    /// The text fields the card has (non-empty text only), in a fixed order.
    pub fields: Vec<CardField>,
    pub tags: Vec<String>,
    pub alternate_greetings: usize,
    pub book: Option<BookView>,
    /// A CHARX's files under `assets/` (pictures).
    pub assets: Option<usize>,
}

/// One text field of a card: its CCSv3 name (`description`, `first_mes`, …) and text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CardField {
    pub field: String,
    pub text: String,
}

/// A card's `character_book`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookView {
    pub name: String,
    pub entries_total: usize,
    pub entries: Vec<EntryView>,
}

/// One book entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    /// The first [`ENTRY_KEYS`] keys, each clipped to [`NAME_TEXT`].
    pub keys: Vec<String>,
    pub comment: String,
    pub content: String,
    pub enabled: bool,
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// The view of a card's JSON `value` found at `source`.
pub(crate) fn card_view(source: CardSource, value: &Value, assets: Option<usize>) -> Result<CardView> {
    let bad = |detail: &str| FormatError::BadCard { what: source.what().into(), detail: detail.into() };
    let card = value.as_object().ok_or_else(|| bad("it is not a JSON object"))?;
    let (spec, spec_version, data) = match card.get("spec") {
        Some(Value::String(spec)) => {
            let data = card.get("data").and_then(Value::as_object).ok_or_else(|| bad("it has no data object"))?;
            let version = text(card.get("spec_version")).map(str::to_string);
            (clip(spec, NAME_TEXT), version.map(|v| clip(&v, NAME_TEXT)), data)
        }
        Some(_) => return Err(bad("its spec is not text")),
        // A V1 card: the fields at the top.
        None if card.get("name").is_some_and(Value::is_string) => ("v1".to_string(), None, card),
        None => return Err(FormatError::NotACard { detail: "the JSON has neither a spec nor a name".into() }),
    };
    let name = text(data.get("name")).ok_or_else(|| bad("its name is missing or not text"))?;
    let fields = TEXT_FIELDS
        .iter()
        .filter_map(|&field| {
            text(data.get(field))
                .filter(|t| !t.is_empty())
                .map(|t| CardField { field: field.to_string(), text: clip(t, FIELD_TEXT) })
        })
        .collect();
    let strings = |value: Option<&Value>, shown: usize| -> Vec<String> {
        let items = value.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        items.iter().filter_map(Value::as_str).take(shown).map(|t| clip(t, NAME_TEXT)).collect()
    };
    let alternate_greetings = data.get("alternate_greetings").and_then(Value::as_array).map_or(0, Vec::len);
    let book = match data.get("character_book") {
        None | Some(Value::Null) => None,
        Some(Value::Object(book)) => {
            let entries = book.get("entries").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let shown = entries
                .iter()
                .take(ENTRIES_SHOWN)
                .map(|entry| EntryView {
                    keys: strings(entry.get("keys"), ENTRY_KEYS),
                    comment: clip(text(entry.get("comment")).unwrap_or_default(), NAME_TEXT),
                    content: clip(text(entry.get("content")).unwrap_or_default(), ENTRY_TEXT),
                    enabled: entry.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                })
                .collect();
            let name = clip(text(book.get("name")).unwrap_or_default(), NAME_TEXT);
            Some(BookView { name, entries_total: entries.len(), entries: shown })
        }
        Some(_) => return Err(bad("its character_book is not an object")),
    };
    Ok(CardView {
        source,
        spec,
        spec_version,
        name: clip(name, NAME_TEXT),
        fields,
        tags: strings(data.get("tags"), TAGS_SHOWN),
        alternate_greetings,
        book,
        assets,
    })
}
