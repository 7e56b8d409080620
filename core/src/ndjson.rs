//! NDJSON, one JSON object per line: a streaming line reader that enforces the line cap and
//! yields each line with its number, row parsing and a fast validity check, and a writer
//! that keeps its promise of `ndjsonFormatVersion` 1 (no line over 4 MiB).

use std::io::{self, BufRead, Write};

use serde::de::{Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{FormatError, Result};

/// A JSON object: one row.
pub type Row = Map<String, Value>;

/// Reads the lines of one NDJSON entry without ever holding more than one line.
pub struct NdjsonLines<R> {
    reader: R,
    entry: String,
    cap: u64,
    line: Vec<u8>,
    line_number: u64,
}

impl<R: BufRead> NdjsonLines<R> {
    /// `entry` names the source in errors; `cap` is the longest line accepted, in bytes,
    /// not counting its newline.
    pub fn new(reader: R, entry: impl Into<String>, cap: u64) -> Self {
        Self { reader, entry: entry.into(), cap, line: Vec::new(), line_number: 0 }
    }

    /// The next line that is not blank, without its line ending, and its 1-based number.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>> {
        loop {
            self.line.clear();
            let mut saw_bytes = false;
            loop {
                let available = self.reader.fill_buf().map_err(FormatError::from_io)?;
                if available.is_empty() {
                    break;
                }
                saw_bytes = true;
                let (take, found_newline) = match memchr::memchr(b'\n', available) {
                    Some(at) => (at, true),
                    None => (available.len(), false),
                };
                if (self.line.len() + take) as u64 > self.cap {
                    return Err(FormatError::LineTooLong {
                        entry: self.entry.clone(),
                        line: self.line_number + 1,
                        limit: self.cap,
                    });
                }
                self.line.extend_from_slice(&available[..take]);
                self.reader.consume(take + usize::from(found_newline));
                if found_newline {
                    break;
                }
            }
            if !saw_bytes {
                return Ok(None);
            }
            self.line_number += 1;
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.line_number, &self.line)));
        }
    }

    /// The reader the lines come from.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Counts the remaining non-blank lines, checking only the line cap.
    pub fn count(mut self) -> Result<u64> {
        let mut count = 0;
        while self.next_line()?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    /// The name of the entry being read.
    pub fn entry(&self) -> &str {
        &self.entry
    }
}

/// Refuses a line longer than `cap` bytes (without its newline): the writer's half of the
/// line cap, shared by every NDJSON writer.
pub fn ensure_line_fits(entry: &str, line_number: u64, line_len: usize, cap: u64) -> Result<()> {
    if line_len as u64 > cap {
        return Err(FormatError::LineTooLong { entry: entry.to_string(), line: line_number, limit: cap });
    }
    Ok(())
}

pub(crate) fn bad_json(entry: &str, line: u64, detail: impl Into<String>) -> FormatError {
    FormatError::BadJson { entry: entry.to_string(), line, detail: detail.into() }
}

/// Parses one line into a row; anything but a JSON object is `bad_json`.
pub fn parse_row(entry: &str, line_number: u64, line: &[u8]) -> Result<Row> {
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(row)) => Ok(row),
        Ok(_) => Err(bad_json(entry, line_number, "not a JSON object")),
        Err(error) => Err(bad_json(entry, line_number, error.to_string())),
    }
}

/// Parses one line (which must be a JSON object) into the values of `columns`, in that
/// order: `None` for a column the row lacks. Keys that are not columns are checked and
/// dropped; a repeated key keeps its last value. Faster than [`parse_row`] for wide rows,
/// as no map is built. A column's value must be what SQLite holds (FORMAT §4: text, a
/// number, null; a boolean is taken as a number): an array or object is `bad_json`, so a
/// line never grows in memory past a few times its length.
pub fn parse_row_aligned(
    entry: &str,
    line_number: u64,
    line: &[u8],
    columns: &[String],
    unknown: &UnknownColumns,
) -> Result<Vec<Option<Value>>> {
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let values = AlignedRow { columns, unknown }
        .deserialize(&mut deserializer)
        .and_then(|values| deserializer.end().map(|()| values))
        .map_err(|error| bad_json(entry, line_number, error.to_string()))?;
    Ok(values)
}

/// Keys that rows carried and their table has no column for (a newer Lumiverse's column, a
/// damaged archive): their values cannot be kept, and whoever imports must be told. The
/// first [`UnknownColumns::LISTED`] names are kept (each clipped to 64 bytes); shared by
/// the threads that parse one table's rows.
#[derive(Debug, Default)]
pub struct UnknownColumns {
    names: parking_lot::Mutex<(std::collections::BTreeSet<String>, bool)>,
}

impl UnknownColumns {
    /// Names listed at most; past this, [`Self::truncated`] says there were more.
    pub const LISTED: usize = 32;
    /// Ends a list of names that had more than it lists ([`Self::listed`]).
    pub const MORE: &'static str = "…";

    /// Notes a key that is not a column.
    pub fn note(&self, key: &str) {
        let mut guard = self.names.lock();
        let (names, truncated) = &mut *guard;
        if names.contains(key) {
            return;
        }
        if names.len() >= Self::LISTED {
            *truncated = true;
            return;
        }
        let mut end = key.len().min(64);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        names.insert(key[..end].to_string());
    }

    /// The names noted, in order.
    pub fn names(&self) -> Vec<String> {
        self.names.lock().0.iter().cloned().collect()
    }

    /// Whether more names were seen than are listed.
    pub fn truncated(&self) -> bool {
        self.names.lock().1
    }

    /// The names noted, in order, then [`Self::MORE`] when there were more: the list shown
    /// to users.
    pub fn listed(&self) -> Vec<String> {
        let mut names = self.names();
        if self.truncated() {
            names.push(Self::MORE.to_string());
        }
        names
    }
}

struct AlignedRow<'c> {
    columns: &'c [String],
    unknown: &'c UnknownColumns,
}

impl<'de> serde::de::DeserializeSeed<'de> for AlignedRow<'_> {
    type Value = Vec<Option<Value>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AlignedRow<'_> {
    type Value = Vec<Option<Value>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut values = vec![None; self.columns.len()];
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.columns.iter().position(|column| *column == *key) {
                Some(index) => values[index] = Some(map.next_value::<ColumnValue>()?.0),
                None => {
                    self.unknown.note(&key);
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(values)
    }
}

/// One column's value: a scalar only.
struct ColumnValue(Value);

impl<'de> Deserialize<'de> for ColumnValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = ColumnValue;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a column value (text, a number or null), not an array or object")
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::Bool(value)))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::from(value)))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::from(value)))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::String(value.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, value: String) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::String(value)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<ColumnValue, E> {
                Ok(ColumnValue(Value::Null))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// An object key, borrowed from the line unless it had escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(key)))
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Checks that a line is one well-formed JSON object (valid UTF-8 throughout) without
/// building it.
pub fn check_row(entry: &str, line_number: u64, line: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(line).map_err(|_| bad_json(entry, line_number, "not valid UTF-8"))?;
    serde_json::from_str::<AnyObject>(text).map(|_| ()).map_err(|error| bad_json(entry, line_number, error.to_string()))
}

/// Deserializes any JSON object and keeps nothing of it.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_map(AnyObjectVisitor)
    }
}

struct AnyObjectVisitor;

impl<'de> Visitor<'de> for AnyObjectVisitor {
    type Value = AnyObject;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<AnyObject, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(AnyObject)
    }
}

/// Writes rows as NDJSON, refusing any line over the cap (so the archive can honestly say
/// `ndjsonFormatVersion: 1`).
pub struct NdjsonWriter<W> {
    writer: W,
    entry: String,
    cap: u64,
    buffer: Vec<u8>,
    rows: u64,
}

impl<W: Write> NdjsonWriter<W> {
    pub fn new(writer: W, entry: impl Into<String>, cap: u64) -> Self {
        Self { writer, entry: entry.into(), cap, buffer: Vec::new(), rows: 0 }
    }

    /// Writes one row as one line.
    pub fn write_row<T: serde::Serialize + ?Sized>(&mut self, row: &T) -> Result<()> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, row)
            .map_err(|error| bad_json(&self.entry, self.rows + 1, error.to_string()))?;
        ensure_line_fits(&self.entry, self.rows + 1, self.buffer.len(), self.cap)?;
        self.buffer.push(b'\n');
        self.writer.write_all(&self.buffer).map_err(FormatError::Io)?;
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.writer.flush()?;
        Ok(self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], cap: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut reader = NdjsonLines::new(input, "t", cap);
        let mut out = Vec::new();
        while let Some((number, line)) = reader.next_line()? {
            out.push((number, line.to_vec()));
        }
        Ok(out)
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let got = lines(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{\"c\":3}", 100).ok();
        assert_eq!(got, Some(vec![(1, b"{\"a\":1}".to_vec()), (4, b"{\"b\":2}".to_vec()), (5, b"{\"c\":3}".to_vec())]));
    }

    #[test]
    fn a_line_over_the_cap_is_refused_with_its_number() {
        let error = lines(b"{}\n{\"a\":\"0123456789\"}\n", 10).err();
        assert!(matches!(error, Some(FormatError::LineTooLong { line: 2, limit: 10, .. })), "{error:?}");
        assert_eq!(lines(b"0123456789\n", 10).map(|l| l.len()).ok(), Some(1));
    }

    #[test]
    fn unknown_columns_are_listed_once_clipped_and_bounded() {
        let unknown = UnknownColumns::default();
        let long = "é".repeat(40);
        for key in ["b", "a", "b", long.as_str()] {
            unknown.note(key);
        }
        assert_eq!(unknown.names(), ["a", "b", "é".repeat(32).as_str()]);
        for index in 0..100 {
            unknown.note(&format!("column_{index:03}"));
        }
        assert_eq!(unknown.names().len(), UnknownColumns::LISTED);
        assert!(unknown.truncated());
        assert_eq!(unknown.listed().last().map(String::as_str), Some(UnknownColumns::MORE));
    }

    #[test]
    fn aligned_rows_keep_known_columns_in_order() {
        let columns = vec!["id".to_string(), "name".to_string(), "user_id".to_string()];
        let line = br#"{"name":"Mira","extra":{"deep":[1,2]},"id":"c1","name":"Mira Vale"}"#;
        let unknown = UnknownColumns::default();
        let values = parse_row_aligned("t", 1, line, &columns, &unknown).ok();
        assert_eq!(values, Some(vec![Some(Value::from("c1")), Some(Value::from("Mira Vale")), None]));
        assert_eq!(unknown.names(), ["extra"]);
        let nested = br#"{"id":"c1","name":[0,0,0,0,0,0,0,0]}"#;
        assert_eq!(parse_row_aligned("t", 2, nested, &columns, &unknown).err().map(|e| e.code()), Some("bad_json"));
        let scalars = br#"{"id":true,"name":1.5,"user_id":null}"#;
        let values = parse_row_aligned("t", 3, scalars, &columns, &unknown).ok();
        assert_eq!(values, Some(vec![Some(Value::Bool(true)), Some(Value::from(1.5)), Some(Value::Null)]));
        for bad in [&b"[1]"[..], b"{\"id\":", b"{\"id\":1} x", b"{\"a\":{\"b\":}}"] {
            assert_eq!(
                parse_row_aligned("t", 4, bad, &columns, &unknown).err().map(|e| e.code()),
                Some("bad_json"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rows_must_be_objects() {
        assert!(check_row("t", 1, b"{\"a\":[1,{\"b\":null}]}").is_ok());
        for bad in [&b"[1]"[..], b"3", b"{\"a\":", b"{\"a\":1} x", b"{\"a\":\"\xff\"}"] {
            let error = check_row("t", 7, bad).err();
            assert!(matches!(error, Some(FormatError::BadJson { line: 7, .. })), "{bad:?}: {error:?}");
            assert_eq!(parse_row("t", 7, bad).err().map(|e| e.code()), Some("bad_json"));
        }
    }
}
