//! An archive as a [`RowSource`]: every row of a `database/<table>.ndjson` entry is the
//! archive account's, so a question is answered by reading that entry through once (one
//! line at a time: nothing but the answers is held). What a selective restore computes its
//! closure over, in the CLI today and in the Worker later.

use std::collections::HashSet;
use std::io::{Read, Seek};

use serde_json::Value;

use super::{RowKey, RowSource};
use crate::archive::Archive;
use crate::entry_name::EntryKind;
use crate::ndjson::parse_row;
use crate::registry::TableSpec;
use crate::FormatError;

/// The rows of an opened archive.
pub struct ArchiveRows<'a, R> {
    archive: &'a Archive<R>,
}

impl<'a, R> ArchiveRows<'a, R> {
    pub fn new(archive: &'a Archive<R>) -> Self {
        Self { archive }
    }
}

/// A value as [`RowSource::rows_where`] hands it out: text as it is, an integer as its
/// decimal text.
fn as_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

impl<R: Read + Seek> RowSource for ArchiveRows<'_, R> {
    type Error = FormatError;

    fn rows_where(
        &mut self,
        table: &'static TableSpec,
        key: RowKey,
        values: &[String],
        columns: &[&'static str],
        each: &mut dyn FnMut(&[Option<String>]),
    ) -> Result<(), FormatError> {
        let entry = self
            .archive
            .entries()
            .iter()
            .position(|entry| matches!(&entry.kind, EntryKind::Table { table: name } if name == table.name));
        let Some(index) = entry else { return Ok(()) };
        let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
        let mut lines = self.archive.ndjson_lines(index)?;
        let name = self.archive.entries()[index].name.clone();
        let mut out = Vec::with_capacity(columns.len());
        while let Some((number, line)) = lines.next_line()? {
            let row = parse_row(&name, number, line)?;
            let found = match key {
                RowKey::Column(column) => as_text(row.get(column)),
                RowKey::JsonKey { column, key } => match row.get(column) {
                    Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(object)) => as_text(object.get(key)),
                        _ => None,
                    },
                    Some(Value::Object(object)) => as_text(object.get(key)),
                    _ => None,
                },
            };
            if found.is_some_and(|found| wanted.contains(found.as_str())) {
                out.clear();
                out.extend(columns.iter().map(|column| as_text(row.get(*column))));
                each(&out);
            }
        }
        Ok(())
    }
}
