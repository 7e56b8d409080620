//! An archive as a [`RowSource`]: every row of a `database/<table>.ndjson` entry is the
//! archive account's, so a question is answered by reading that entry through once (one
//! line at a time: nothing but the answers is held). A line is parsed only when it could
//! hold one of the values asked for — it contains one as written, or an escape that could
//! spell one ([`Prefilter`]) — and then checked exactly; lines passed over unparsed are
//! not checked here (an upload reads and checks every line). With the explorer's index of
//! the archive ([`ArchiveRows::indexed`], the Worker's), characters by id and world-book
//! entries by book are read only at the lines it lists, through its line indexes. What a
//! selective restore computes its closure over, in the CLI and in the Worker.

use std::collections::HashSet;
use std::io::{Read, Seek};

use memchr::memmem::Finder;
use serde_json::Value;

use super::{RowKey, RowSource};
use crate::archive::Archive;
use crate::entry_name::EntryKind;
use crate::explore::ExploreIndex;
use crate::ids::{is_uuid, next_uuid};
use crate::ndjson::parse_row;
use crate::registry::TableSpec;
use crate::FormatError;

/// The rows of an opened archive.
pub struct ArchiveRows<'a, R> {
    archive: Held<'a, R>,
}

/// The archive, alone or with the explorer's index of it.
enum Held<'a, R> {
    Alone(&'a Archive<R>),
    Indexed(&'a mut Archive<R>, &'a ExploreIndex),
}

impl<'a, R> ArchiveRows<'a, R> {
    pub fn new(archive: &'a Archive<R>) -> Self {
        Self { archive: Held::Alone(archive) }
    }

    /// With `explorer`, the explorer's index of this very archive: the rows it can place
    /// ([`ExploreIndex::lines_holding`]) are read at their lines, without inflating the
    /// table before them; the answers are the same.
    pub fn indexed(archive: &'a mut Archive<R>, explorer: &'a ExploreIndex) -> Self {
        Self { archive: Held::Indexed(archive, explorer) }
    }

    fn archive(&self) -> &Archive<R> {
        match &self.archive {
            Held::Alone(archive) => archive,
            Held::Indexed(archive, _) => archive,
        }
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

/// Up to this many values are each looked for in every line; more are looked up among the
/// line's UUIDs (when every one is a UUID), so a long list costs one pass, not one per value.
const FINDERS_MAX: usize = 4;

/// Which lines could hold one of the wanted values, told without parsing them. A line whose
/// column (or a JSON key of it) is a value holds that value's text as written — an integer
/// its decimal digits, a string its characters between quotes — unless the JSON spells some
/// of them as escapes: `\uXXXX` (or `\/` for a slash) can spell any, and `\"`, `\\` and the
/// control characters' escapes the characters that must be escaped. So a line is a
/// candidate when it contains a value, or `\u` (or `\/`); values holding characters that
/// must be escaped turn the filter off.
enum Prefilter {
    /// A finder per value, and the escapes that could spell one.
    Values { values: Vec<Finder<'static>>, escapes: Vec<Finder<'static>> },
    /// Every value is a UUID: the line's UUIDs (standing alone, as a whole value is in its
    /// quotes) are looked up; and the `\u` escape.
    Uuids { escapes: Vec<Finder<'static>> },
    /// Every line is parsed.
    Off,
}

impl Prefilter {
    fn new(wanted: &HashSet<&str>) -> Self {
        let escaped_only = |value: &&str| value.bytes().any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20);
        if wanted.iter().any(escaped_only) {
            return Self::Off;
        }
        let unicode = Finder::new(b"\\u").into_owned();
        if wanted.len() <= FINDERS_MAX {
            let mut escapes = vec![unicode];
            if wanted.iter().any(|value| value.contains('/')) {
                escapes.push(Finder::new(b"\\/").into_owned());
            }
            let values = wanted.iter().map(|value| Finder::new(value.as_bytes()).into_owned()).collect();
            Self::Values { values, escapes }
        } else if wanted.iter().all(|value| is_uuid(value.as_bytes())) {
            Self::Uuids { escapes: vec![unicode] }
        } else {
            Self::Off
        }
    }

    /// Whether `line` could hold one of `wanted`: false only when it cannot.
    fn may_hold(&self, line: &[u8], wanted: &HashSet<&str>) -> bool {
        match self {
            Self::Values { values, escapes } => values.iter().chain(escapes).any(|finder| finder.find(line).is_some()),
            Self::Uuids { escapes } => {
                let mut at = 0;
                while let Some(start) = next_uuid(line, at, false) {
                    let uuid = line.get(start..start + 36).and_then(|uuid| std::str::from_utf8(uuid).ok());
                    if uuid.is_some_and(|uuid| wanted.contains(uuid)) {
                        return true;
                    }
                    at = start + 36;
                }
                escapes.iter().any(|finder| finder.find(line).is_some())
            }
            Self::Off => true,
        }
    }
}

/// What one question looks for, and hands each row found.
struct Question<'q> {
    key: RowKey,
    wanted: HashSet<&'q str>,
    columns: &'q [&'static str],
    out: Vec<Option<String>>,
}

impl Question<'_> {
    /// Parses `line` and hands `each` its columns when its key is one of the values.
    fn answer(
        &mut self,
        name: &str,
        number: u64,
        line: &[u8],
        each: &mut dyn FnMut(&[Option<String>]),
    ) -> Result<(), FormatError> {
        let row = parse_row(name, number, line)?;
        let found = match self.key {
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
        if found.is_some_and(|found| self.wanted.contains(found.as_str())) {
            self.out.clear();
            self.out.extend(self.columns.iter().map(|column| as_text(row.get(*column))));
            each(&self.out);
        }
        Ok(())
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
            .archive()
            .entries()
            .iter()
            .position(|entry| matches!(&entry.kind, EntryKind::Table { table: name } if name == table.name));
        let Some(index) = entry else { return Ok(()) };
        let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
        let mut question = Question { key, wanted, columns, out: Vec::with_capacity(columns.len()) };
        if let (Held::Indexed(archive, explorer), RowKey::Column(column)) = (&mut self.archive, key) {
            let listed = explorer.lines_holding(table.name, column, values);
            if let Some((lines, numbers)) = listed.filter(|(lines, _)| lines.entry() == index) {
                return lines.read_lines(archive, &numbers, |name, number, line| {
                    question.answer(name, number, line, each).map(|()| true)
                });
            }
        }
        let prefilter = Prefilter::new(&question.wanted);
        let archive = self.archive();
        let mut lines = archive.ndjson_lines(index)?;
        let name = archive.entries()[index].name.clone();
        while let Some((number, line)) = lines.next_line()? {
            if prefilter.may_hold(line, &question.wanted) {
                question.answer(&name, number, line, each)?;
            }
        }
        Ok(())
    }
}
