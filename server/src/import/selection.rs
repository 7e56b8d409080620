//! A selective restore's picks (`lvbak import --only KIND:ID`): core's closure computed over
//! the archive itself ([`ArchiveRows`]), and what it keeps of each table, file and vector
//! table. A row is kept when its key is in the closure; a file when its name holds the id
//! of a kept row (an avatar, an image and its thumbnails, a databank document) — files no
//! row's id names (theme assets, sounds) stay out, as do settings and API keys; a vector
//! when the row it was made from is kept.
//!
//! Restored as a copy (`--as-copy`), what belongs to the picked items (`closure::belongings`:
//! the picks, a character's chats, a chat's messages and branches, their parts) gets ids of
//! the importer's own, derived from (importer, archive id, original id): every reference
//! among them, ids in their JSON and text and file names follow, the items' names get the
//! backup's date, and what they only need (a chat's character, world books) links to the
//! account's rows. A second run derives the same ids and finds the copy there (merge by id
//! skips it), and no id map entry is written, so a later full restore is not redirected to
//! the copy. Should someone hold a derived id, the usual remap copies the row once more.

use std::collections::HashMap;
use std::io::{Read, Seek};

use lvbak_core::closure::{belongings, closure, ArchiveRows, Closure, ClosureError, ItemKind, Selection};
use lvbak_core::registry::{id_text_columns, TableSpec, TABLES};
use lvbak_core::{Archive, FormatError, Row, UtcTime};
use serde_json::Value;

use crate::policy::rows::AlignedRow;

/// The rows a selection keeps.
pub struct Picked {
    closure: Closure,
    copying: Option<Copying>,
}

/// A restore as a copy: archive id → the copy's id, and what the copied items' names get.
struct Copying {
    ids: HashMap<String, String>,
    suffix: String,
}

impl Copying {
    /// `text` with every copied id in it replaced (`quoted_only`: ids that are whole JSON
    /// strings); `None` when none is.
    fn text(&self, text: &str, quoted_only: bool) -> Option<String> {
        let copied = |id: &str| Ok::<_, std::convert::Infallible>(self.ids.get(id).cloned());
        let Ok(rewritten) = crate::policy::ids::rewrite_uuids(text, quoted_only, copied);
        rewritten
    }
}

/// The id of the importer's copy of `original` from archive `archive_id`: a UUID (version 8)
/// from the first 16 bytes of SHA-256 over the three.
fn copy_id(user_id: &str, archive_id: &str, original: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for part in ["lvbak copy", user_id, archive_id, original] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    let bytes: [u8; 16] = digest.finalize()[..16].try_into().unwrap_or_default();
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text).to_owned()
}

impl Picked {
    /// The closure of `selection` over the archive's rows; `NotFound` names the picks the
    /// archive does not hold.
    pub fn of_archive<R: Read + Seek>(
        archive: &Archive<R>,
        selection: &Selection,
    ) -> Result<Self, ClosureError<FormatError>> {
        let closure = closure(&mut ArchiveRows::new(archive), selection)?;
        Ok(Self { closure, copying: None })
    }

    /// The same picks restored as a copy into `user_id`'s account (see the module
    /// documentation).
    pub fn restored_as_copy<R: Read + Seek>(
        mut self,
        archive: &Archive<R>,
        selection: &Selection,
        user_id: &str,
    ) -> Result<Self, ClosureError<FormatError>> {
        let own = belongings(&mut ArchiveRows::new(archive), selection)?;
        let manifest = archive.manifest();
        let ids = TABLES
            .iter()
            .flat_map(|spec| own.ids(spec.name))
            .map(|id| (id.to_string(), copy_id(user_id, &manifest.archive_id, id)))
            .collect();
        let suffix = match manifest.exported_at {
            Some(at) => {
                let day = UtcTime::from_unix(at);
                format!(" (backup {:04}-{:02}-{:02})", day.year, day.month, day.day)
            }
            None => " (from a backup)".to_string(),
        };
        self.copying = Some(Copying { ids, suffix });
        Ok(self)
    }

    /// A kept row as a restore as a copy writes it: copied ids replaced, a copied item's
    /// name marked. Rows of a plain selection are left as they are.
    pub(crate) fn copy_row(&self, spec: &'static TableSpec, columns: &[String], row: &mut AlignedRow) {
        let Some(copying) = &self.copying else { return };
        let mut renamed = false;
        for (index, value) in row.iter_mut().enumerate() {
            let Some(Value::String(current)) = value else { continue };
            let column = columns[index].as_str();
            if let Some(new_id) = copying.ids.get(current.as_str()) {
                renamed |= column == "id" && ItemKind::of_table(spec.name).is_some();
                *current = new_id.clone();
                continue;
            }
            let quoting = id_text_columns(spec).find(|(name, _)| *name == column);
            if let Some(rewritten) = quoting.and_then(|(_, quoted_only)| copying.text(current, quoted_only)) {
                *current = rewritten;
            }
        }
        if renamed {
            if let Some(Some(Value::String(name))) = columns.iter().position(|c| c == "name").map(|i| &mut row[i]) {
                name.push_str(&copying.suffix);
            }
        }
    }

    /// A kept file's name as a restore as a copy writes it (copied ids replaced).
    pub(crate) fn copy_file_name(&self, name: &str) -> String {
        self.copying.as_ref().and_then(|copying| copying.text(name, false)).unwrap_or_else(|| name.to_string())
    }

    /// A kept vector row as a restore as a copy writes it: its source's copy.
    pub(crate) fn copy_vector(&self, row: &mut Row) {
        let Some(copying) = &self.copying else { return };
        if let Some(Value::String(source)) = row.get_mut("source_id") {
            if let Some(new_id) = copying.ids.get(source.as_str()) {
                *source = new_id.clone();
            }
        }
    }

    /// What the selection keeps of `table`, whose rows are aligned with `columns`.
    pub(crate) fn rows_of<'a>(&'a self, table: &'static str, columns: &[String]) -> KeptRows<'a> {
        let key = Closure::key_column(table).and_then(|key| columns.iter().position(|column| column == key));
        KeptRows { picked: self, table, key }
    }

    /// Whether a file of the archive goes with the selection: its name holds a kept id.
    pub(crate) fn keeps_file(&self, name: &str) -> bool {
        self.closure.names_file(name)
    }

    /// Whether a vector row goes with the selection: the row it was made from is kept.
    pub(crate) fn keeps_vector(&self, row: &Row) -> bool {
        row.get("source_id").and_then(Value::as_str).is_some_and(|id| self.closure.contains_anywhere(id))
    }
}

/// What a selection keeps of one table.
pub(crate) struct KeptRows<'a> {
    picked: &'a Picked,
    table: &'static str,
    /// The key column's place among the row's values (`None`: the table has none, and
    /// nothing of it is kept).
    key: Option<usize>,
}

impl KeptRows<'_> {
    pub(crate) fn keeps(&self, row: &AlignedRow) -> bool {
        let Some(index) = self.key else { return false };
        match &row[index] {
            Some(Value::String(key)) => self.picked.closure.contains(self.table, key),
            Some(Value::Number(number)) => self.picked.closure.contains(self.table, &number.to_string()),
            _ => false,
        }
    }
}
