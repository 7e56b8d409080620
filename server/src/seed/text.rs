//! The demo account's words and ids: character names, lines of prose, fresh ids, and the
//! rows collected per table before they are inserted.

use serde_json::{Map, Value};

use crate::storage::identity::random_bytes;

pub(super) fn new_id() -> String {
    uuid::Builder::from_random_bytes(random_bytes::<16>()).into_uuid().hyphenated().to_string()
}

pub(super) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(super) const NAMES: [&str; 8] =
    ["Mira Vale", "Rowan Ash", "Captain Ilse", "Tobin Reed", "Seraphine", "Old Gregor", "Nyx", "Wren"];
pub(super) const LINES: [&str; 10] = [
    "The lantern light trembled across the map as she traced the smugglers' route.",
    "\"If the tide holds, we reach the cove before the watch changes,\" he murmured.",
    "Rain drummed on the canvas while the gulls circled the harbour.",
    "Somewhere below, the bells rang twice — a signal, or a warning.",
    "She laughed, quietly, and slid the brass key across the table.",
    "\"You kept it all these years?\" The question hung in the salt air.",
    "The ledger listed three ships that never reached port.",
    "Footsteps on the stairs. Too heavy for the innkeeper.",
    "He pocketed the letter without reading it — he already knew the hand.",
    "By dawn the fog had swallowed the lighthouse whole.",
];

pub(super) fn prose(seed: usize, sentences: usize) -> String {
    (0..sentences).map(|i| LINES[(seed * 7 + i * 3) % LINES.len()]).collect::<Vec<_>>().join(" ")
}

/// Rows collected per table, inserted in registry order at the end.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) tables: Vec<(&'static str, Vec<Map<String, Value>>)>,
}

impl Rows {
    pub(super) fn add(&mut self, table: &'static str, row: Value) {
        match self.tables.iter_mut().find(|(name, _)| *name == table) {
            Some((_, rows)) => rows.push(object(row)),
            None => self.tables.push((table, vec![object(row)])),
        }
    }
}
