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

use std::io::{Read, Seek};

use lvbak_core::closure::{belongings, closure, ArchiveRows, Closure, ClosureError, CopyPlan, Selection};
use lvbak_core::registry::TableSpec;
use lvbak_core::{Archive, FormatError, Row};
use serde_json::Value;

use crate::policy::rows::AlignedRow;

/// The rows a selection keeps.
pub struct Picked {
    closure: Closure,
    copying: Option<CopyPlan>,
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
    /// documentation and `lvbak_core::closure::CopyPlan`).
    pub fn restored_as_copy<R: Read + Seek>(
        mut self,
        archive: &Archive<R>,
        selection: &Selection,
        user_id: &str,
    ) -> Result<Self, ClosureError<FormatError>> {
        let own = belongings(&mut ArchiveRows::new(archive), selection)?;
        let manifest = archive.manifest();
        self.copying = Some(CopyPlan::new(&own, user_id, &manifest.archive_id, manifest.exported_at));
        Ok(self)
    }

    /// A kept row as a restore as a copy writes it: copied ids replaced, a copied item's
    /// name marked. Rows of a plain selection are left as they are.
    pub(crate) fn copy_row(&self, spec: &'static TableSpec, columns: &[String], row: &mut AlignedRow) {
        let Some(copying) = &self.copying else { return };
        let values =
            columns.iter().zip(row.iter_mut()).filter_map(|(column, value)| Some((column.as_str(), value.as_mut()?)));
        copying.rewrite(spec, values);
    }

    /// A kept file's name as a restore as a copy writes it (copied ids replaced).
    pub(crate) fn copy_file_name(&self, name: &str) -> String {
        self.copying.as_ref().map_or_else(|| name.to_string(), |copying| copying.file_name(name))
    }

    /// A kept vector row as a restore as a copy writes it: its source's copy.
    pub(crate) fn copy_vector(&self, row: &mut Row) {
        if let Some(copying) = &self.copying {
            copying.rewrite_vector(row);
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
