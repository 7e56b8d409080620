//! Character cards out of an archive, equal to what Lumiverse 1.1's own character export
//! gives after the archive is imported: the CCSv3 JSON (`spec` `chara_card_v3`).
//!
//! [`CharacterRows::read`] reads what one character's card needs (its row, its attached
//! world books and their entries), streaming each table once; [`CharacterRows::ccv3_json`]
//! builds the card from them. [`card_json`] does both.
//!
//! Rows are read as an import keeps them (`stored`): values under their columns' SQLite
//! affinity, a missing column at its default (as lvbak's import leaves it), a row no import
//! would store left out, the first row of an id winning. Where Lumiverse 1.1's importer
//! rewrites a value the card does not follow it: a world-book entry's `vectorized` stays
//! as the archive has it (Lumiverse clears it when it re-vectorizes; lvbak keeps it).
//!
//! Nothing here does I/O of its own, keeps a clock or draws random numbers, so the Worker
//! (wasm32) and the server build the same bytes.

mod book;
mod ccv3;
mod js;
mod source;
mod stored;

use std::io::{Read, Seek};

pub use source::CharacterRows;

use crate::archive::Archive;
use crate::error::Result;

impl CharacterRows {
    /// The CCSv3 card as Lumiverse's JSON export sends it (`JSON.stringify`, compact).
    pub fn ccv3_json(&self) -> Result<String> {
        Ok(ccv3::ccv3(&self.character, |id| self.book(id))?.to_json())
    }
}

/// The CCSv3 JSON card of the character `character_id` (see [`CharacterRows::read`]).
pub fn card_json<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<String> {
    CharacterRows::read(archive, character_id)?.ccv3_json()
}
