//! A selective restore's picks (`lvbak import --only KIND:ID`): core's closure computed over
//! the archive itself ([`ArchiveRows`]), and what it keeps of each table, file and vector
//! table. A row is kept when its key is in the closure; a file when its name holds the id
//! of a kept row (an avatar, an image and its thumbnails, a databank document) — files no
//! row's id names (theme assets, sounds) stay out, as do settings and API keys; a vector
//! when the row it was made from is kept.

use std::collections::HashSet;
use std::io::{Read, Seek};

use lvbak_core::closure::{closure, ArchiveRows, Closure, ClosureError, Selection};
use lvbak_core::registry::TABLES;
use lvbak_core::{Archive, FormatError, Row};
use serde_json::Value;

use crate::policy::rows::AlignedRow;

/// The rows a selection keeps, and every id among them.
pub struct Picked {
    closure: Closure,
    ids: HashSet<String>,
}

impl Picked {
    /// The closure of `selection` over the archive's rows; `NotFound` names the picks the
    /// archive does not hold.
    pub fn of_archive<R: Read + Seek>(
        archive: &Archive<R>,
        selection: &Selection,
    ) -> Result<Self, ClosureError<FormatError>> {
        let closure = closure(&mut ArchiveRows::new(archive), selection)?;
        let ids = TABLES.iter().flat_map(|spec| closure.ids(spec.name)).map(str::to_string).collect();
        Ok(Self { closure, ids })
    }

    /// What the selection keeps of `table`, whose rows are aligned with `columns`.
    pub(crate) fn rows_of<'a>(&'a self, table: &'static str, columns: &[String]) -> KeptRows<'a> {
        let key = Closure::key_column(table).and_then(|key| columns.iter().position(|column| column == key));
        KeptRows { picked: self, table, key }
    }

    /// Whether a file of the archive goes with the selection: its name holds a kept id.
    pub(crate) fn keeps_file(&self, name: &str) -> bool {
        let mut at = 0;
        while let Some(start) = crate::policy::ids::next_uuid(name.as_bytes(), at, false) {
            if self.ids.contains(&name[start..start + 36]) {
                return true;
            }
            at = start + 36;
        }
        false
    }

    /// Whether a vector row goes with the selection: the row it was made from is kept.
    pub(crate) fn keeps_vector(&self, row: &Row) -> bool {
        row.get("source_id").and_then(Value::as_str).is_some_and(|id| self.ids.contains(id))
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
