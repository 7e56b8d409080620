//! Rows as an import stores them, for the tables a card reads: each value under its
//! column's SQLite affinity (text columns hold numbers as SQLite writes them, integer
//! columns hold numeric text as numbers), a column the row lacks at its schema default (as
//! lvbak's import leaves it: FORMAT §4), and a row an import would not keep — no key, or
//! null where the schema forbids it — not there at all. Values come out as Bun's SQLite
//! driver hands them to Lumiverse: null, a number (a double) or text.

use serde_json::Value;

use super::js::JsValue;

/// A column's SQLite type affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affinity {
    Text,
    Integer,
}

/// What a column holds when a row lacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Default {
    Null,
    Text(&'static str),
    Integer(i64),
    /// `unixepoch()`, the time of the import: no card shows it, so it reads as null.
    Now,
}

/// One column of a Lumiverse 1.1 table (`tests/data/lumiverse-schema.json`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Column {
    pub name: &'static str,
    pub affinity: Affinity,
    /// NOT NULL (or the primary key, which lvbak's import never leaves empty).
    pub not_null: bool,
    pub default: Default,
}

/// A table's columns, in schema order (`SELECT *` order); the owner column, which an
/// import overwrites, is left out.
#[derive(Debug, PartialEq)]
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
}

const fn column(name: &'static str, affinity: Affinity, not_null: bool, default: Default) -> Column {
    Column { name, affinity, not_null, default }
}

const fn key(name: &'static str) -> Column {
    column(name, Affinity::Text, true, Default::Null)
}

const fn text(name: &'static str, default: &'static str) -> Column {
    column(name, Affinity::Text, true, Default::Text(default))
}

const fn integer(name: &'static str, default: i64) -> Column {
    column(name, Affinity::Integer, true, Default::Integer(default))
}

const fn required(name: &'static str) -> Column {
    column(name, Affinity::Text, true, Default::Null)
}

const fn nullable(name: &'static str, affinity: Affinity) -> Column {
    column(name, affinity, false, Default::Null)
}

const fn stamp(name: &'static str) -> Column {
    column(name, Affinity::Integer, true, Default::Now)
}

use Affinity::{Integer as INT, Text as TEXT};

pub(crate) static CHARACTERS: Table = Table {
    name: "characters",
    columns: &[
        key("id"),
        required("name"),
        nullable("avatar_path", TEXT),
        text("description", ""),
        text("personality", ""),
        text("scenario", ""),
        text("first_mes", ""),
        text("mes_example", ""),
        text("creator", ""),
        text("creator_notes", ""),
        text("system_prompt", ""),
        text("post_history_instructions", ""),
        text("tags", "[]"),
        text("alternate_greetings", "[]"),
        text("extensions", "{}"),
        stamp("created_at"),
        stamp("updated_at"),
        nullable("image_id", TEXT),
        integer("deleting", 0),
    ],
};

pub(crate) static WORLD_BOOKS: Table = Table {
    name: "world_books",
    columns: &[
        key("id"),
        required("name"),
        text("description", ""),
        text("metadata", "{}"),
        stamp("created_at"),
        stamp("updated_at"),
        text("folder", ""),
    ],
};

pub(crate) static WORLD_BOOK_ENTRIES: Table = Table {
    name: "world_book_entries",
    columns: &[
        key("id"),
        required("world_book_id"),
        required("uid"),
        text("key", "[]"),
        text("keysecondary", "[]"),
        text("content", ""),
        text("comment", ""),
        integer("position", 0),
        integer("depth", 4),
        nullable("role", TEXT),
        integer("order_value", 100),
        integer("selective", 0),
        integer("constant", 0),
        integer("disabled", 0),
        text("group_name", ""),
        integer("group_override", 0),
        integer("group_weight", 100),
        integer("probability", 100),
        nullable("scan_depth", INT),
        integer("case_sensitive", 0),
        integer("match_whole_words", 0),
        nullable("automation_id", TEXT),
        text("extensions", "{}"),
        stamp("created_at"),
        stamp("updated_at"),
        integer("use_regex", 0),
        integer("prevent_recursion", 0),
        integer("exclude_recursion", 0),
        integer("delay_until_recursion", 0),
        integer("priority", 10),
        integer("sticky", 0),
        integer("cooldown", 0),
        integer("delay", 0),
        integer("selective_logic", 0),
        integer("use_probability", 1),
        integer("vectorized", 0),
        text("vector_index_status", "not_enabled"),
        nullable("vector_indexed_at", INT),
        nullable("vector_index_error", TEXT),
    ],
};

pub(crate) static IMAGES: Table = Table {
    name: "images",
    columns: &[
        key("id"),
        required("filename"),
        text("original_filename", ""),
        text("mime_type", ""),
        integer("byte_size", 0),
        nullable("width", INT),
        nullable("height", INT),
        integer("has_thumbnail", 0),
        stamp("created_at"),
        nullable("owner_extension_identifier", TEXT),
        nullable("owner_character_id", TEXT),
        nullable("owner_chat_id", TEXT),
    ],
};

pub(crate) static CHARACTER_GALLERY: Table = Table {
    name: "character_gallery",
    columns: &[
        key("id"),
        required("character_id"),
        required("image_id"),
        column("caption", TEXT, false, Default::Text("")),
        column("sort_order", INT, false, Default::Integer(0)),
        column("created_at", INT, true, Default::Null),
    ],
};

pub(crate) static REGEX_SCRIPTS: Table = Table {
    name: "regex_scripts",
    columns: &[
        key("id"),
        required("name"),
        required("find_regex"),
        text("replace_string", ""),
        text("actions", "[]"),
        text("flags", "gi"),
        text("placement", "[\"ai_output\"]"),
        text("scope", "global"),
        nullable("scope_id", TEXT),
        text("target", "[\"response\"]"),
        nullable("min_depth", INT),
        nullable("max_depth", INT),
        text("trim_strings", "[]"),
        integer("run_on_edit", 0),
        text("substitute_macros", "none"),
        integer("disabled", 0),
        integer("sort_order", 0),
        text("description", ""),
        text("metadata", "{}"),
        stamp("created_at"),
        stamp("updated_at"),
        text("folder", ""),
        text("script_id", ""),
        nullable("pack_id", TEXT),
        nullable("preset_id", TEXT),
        nullable("character_id", TEXT),
    ],
};

impl Table {
    /// The column names, for [`crate::ndjson::parse_row_aligned`].
    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.to_string()).collect()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One row as the table stores it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredRow {
    table: &'static Table,
    values: Vec<JsValue>,
}

static NULL: JsValue = JsValue::Null;

impl StoredRow {
    /// The row an import stores from `values` (aligned with [`Table::column_names`]), or
    /// why it stores none: the name of the column that may not be null.
    pub fn new(table: &'static Table, values: Vec<Option<Value>>) -> Result<Self, &'static str> {
        let mut stored = Vec::with_capacity(table.columns.len());
        for (column, value) in table.columns.iter().zip(values.into_iter().chain(std::iter::repeat(None))) {
            let value = match value {
                Some(value) => under_affinity(column.affinity, &value),
                None => match column.default {
                    Default::Null if column.not_null => return Err(column.name),
                    // Only a default that is not null can stand for a missing value.
                    Default::Null | Default::Now => {
                        stored.push(JsValue::Null);
                        continue;
                    }
                    Default::Text(text) => JsValue::from(text),
                    Default::Integer(number) => JsValue::Number(number as f64),
                },
            };
            if column.not_null && value == JsValue::Null {
                return Err(column.name);
            }
            stored.push(value);
        }
        Ok(Self { table, values: stored })
    }

    /// A column's value (null for a column the table does not have).
    pub fn get(&self, column: &str) -> &JsValue {
        self.table.position(column).and_then(|at| self.values.get(at)).unwrap_or(&NULL)
    }

    /// A column's text, if it holds text.
    pub fn text(&self, column: &str) -> Option<&str> {
        self.get(column).as_str()
    }

    /// The columns and values, in schema order (a `SELECT *` row).
    pub fn columns(&self) -> impl Iterator<Item = (&'static str, &JsValue)> + '_ {
        self.table.columns.iter().map(|c| c.name).zip(&self.values)
    }
}

/// A row of `table` from a JSON object, as an import stores it (tests).
#[cfg(test)]
pub(crate) fn stored(table: &'static Table, row: Value) -> StoredRow {
    let row = row.as_object().cloned().unwrap_or_default();
    let values = table.columns.iter().map(|c| row.get(c.name).cloned()).collect();
    match StoredRow::new(table, values) {
        Ok(row) => row,
        Err(column) => unreachable!("the test row lacks {column}"),
    }
}

/// A JSON scalar as SQLite stores it in a column of this affinity (FORMAT §4: a row's
/// values are scalars; a boolean is bound as 1 or 0, an integer as an integer, any other
/// number as a real).
pub(crate) fn under_affinity(affinity: Affinity, value: &Value) -> JsValue {
    match (affinity, value) {
        (_, Value::Null) => JsValue::Null,
        (Affinity::Text, Value::String(text)) => JsValue::from(text.as_str()),
        (Affinity::Text, Value::Bool(flag)) => JsValue::from(if *flag { "1" } else { "0" }),
        (Affinity::Text, Value::Number(number)) => match number.as_i64() {
            Some(integer) => JsValue::from(integer.to_string()),
            None => JsValue::from(real_text(number.as_f64().unwrap_or(0.0))),
        },
        (Affinity::Integer, Value::Bool(flag)) => JsValue::Number(if *flag { 1.0 } else { 0.0 }),
        (Affinity::Integer, Value::Number(number)) => JsValue::Number(number.as_f64().unwrap_or(0.0)),
        (Affinity::Integer, Value::String(text)) => match numeric_text(text) {
            Some(number) => JsValue::Number(number),
            None => JsValue::from(text.as_str()),
        },
        // A row's values are scalars (`parse_row_aligned` refuses the rest); JSON text is
        // what an importer would have to store for them.
        (_, other) => JsValue::from(other.to_string()),
    }
}

/// A real as SQLite writes it into a text column (`%!.15g`: 15 significant digits, at
/// least one digit after the point, exponent form below 1e-4 and from 1e15).
pub(crate) fn real_text(value: f64) -> String {
    if value == 0.0 {
        return "0.0".into();
    }
    let scientific = format!("{value:.14e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else { return scientific };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let keep_one = |digits: &str| -> String {
        if !digits.contains('.') {
            return format!("{digits}.0");
        }
        let trimmed = digits.trim_end_matches('0');
        if trimmed.ends_with('.') {
            format!("{trimmed}0")
        } else {
            trimmed.to_string()
        }
    };
    if !(-4..15).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", keep_one(mantissa), exponent.unsigned_abs())
    } else {
        let decimals = usize::try_from(14 - exponent).unwrap_or(0);
        keep_one(&format!("{value:.decimals$}"))
    }
}

/// The number SQLite reads from text stored in an integer column: a decimal integer or
/// real literal, spaces around it allowed; anything else stays text.
pub(crate) fn numeric_text(text: &str) -> Option<f64> {
    let literal = text.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'));
    let unsigned = literal.strip_prefix(['+', '-']).unwrap_or(literal);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && digits(whole)
        && digits(fraction)
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
    if !well_formed {
        return None;
    }
    literal.parse::<f64>().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Answers of SQLite 3.40 (Python's `sqlite3`): reals written into a TEXT column.
    #[test]
    fn reals_in_text_columns_read_as_sqlite_writes_them() {
        let cases = [
            (0.1, "0.1"),
            (1e20, "1.0e+20"),
            (5.0, "5.0"),
            (123456789012345678.0, "1.23456789012346e+17"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e15, "1.0e+15"),
            (1e14, "100000000000000.0"),
            (123456.789, "123456.789"),
            (1.0 / 3.0, "0.333333333333333"),
            (9223372036854775808.0, "9.22337203685478e+18"),
            (-0.0, "0.0"),
            (1e-7, "1.0e-07"),
        ];
        for (value, text) in cases {
            assert_eq!(real_text(value), text, "{value}");
        }
    }

    /// Answers of SQLite 3.40: text written into an INTEGER column.
    #[test]
    fn numeric_text_in_integer_columns_becomes_a_number() {
        let numbers =
            [(" 12 ", 12.0), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), ("+7", 7.0), ("-0", 0.0), ("  3.0  ", 3.0)];
        for (text, number) in numbers {
            assert_eq!(numeric_text(text), Some(number), "{text:?}");
        }
        for text in ["0x10", "1.5e", "12abc", "1_000", "", " ", "Infinity", ".", "e5", "1e+", "--1"] {
            assert_eq!(numeric_text(text), None, "{text:?}");
        }
        assert_eq!(numeric_text("00012"), Some(12.0));
    }

    #[test]
    fn values_take_their_columns_affinity() {
        let text = |v: Value| under_affinity(Affinity::Text, &v);
        let integer = |v: Value| under_affinity(Affinity::Integer, &v);
        assert_eq!(text(json!("a")), JsValue::from("a"));
        assert_eq!(text(json!(5)), JsValue::from("5"));
        assert_eq!(text(json!(-5)), JsValue::from("-5"));
        assert_eq!(text(json!(0.5)), JsValue::from("0.5"));
        assert_eq!(text(json!(true)), JsValue::from("1"));
        assert_eq!(text(json!(null)), JsValue::Null);
        assert_eq!(integer(json!("12")), JsValue::Number(12.0));
        assert_eq!(integer(json!("twelve")), JsValue::from("twelve"));
        assert_eq!(integer(json!(false)), JsValue::Number(0.0));
        assert_eq!(integer(json!(2.5)), JsValue::Number(2.5));
    }

    #[test]
    fn a_missing_column_takes_its_default_and_a_null_one_refuses_the_row() {
        let columns = WORLD_BOOK_ENTRIES.column_names();
        let aligned = |row: Value| {
            let row = row.as_object().unwrap().clone();
            columns.iter().map(|c| row.get(c).cloned()).collect::<Vec<_>>()
        };
        let row =
            StoredRow::new(&WORLD_BOOK_ENTRIES, aligned(json!({"id": "e", "world_book_id": "b", "uid": "u"}))).unwrap();
        assert_eq!(row.get("priority"), &JsValue::Number(10.0));
        assert_eq!(row.get("key"), &JsValue::from("[]"));
        assert_eq!(row.get("scan_depth"), &JsValue::Null);
        assert_eq!(row.get("created_at"), &JsValue::Null);
        assert_eq!(row.get("no_such_column"), &JsValue::Null);
        let refused = |row: Value| StoredRow::new(&WORLD_BOOK_ENTRIES, aligned(row)).unwrap_err();
        assert_eq!(refused(json!({"id": "e", "world_book_id": "b"})), "uid");
        assert_eq!(refused(json!({"world_book_id": "b", "uid": "u"})), "id");
        assert_eq!(refused(json!({"id": "e", "world_book_id": "b", "uid": "u", "priority": null})), "priority");
        assert_eq!(refused(json!({"id": "e", "world_book_id": "b", "uid": "u", "created_at": null})), "created_at");
        let kept = StoredRow::new(
            &WORLD_BOOK_ENTRIES,
            aligned(json!({"id": "e", "world_book_id": "b", "uid": "u", "role": null})),
        );
        assert_eq!(kept.unwrap().get("role"), &JsValue::Null);
    }

    /// The columns above are Lumiverse 1.1's, with their defaults and NOT NULLs.
    #[test]
    fn tables_match_the_lumiverse_schema() {
        let schema: Value = serde_json::from_str(include_str!("../../../tests/data/lumiverse-schema.json")).unwrap();
        for table in [&CHARACTERS, &WORLD_BOOKS, &WORLD_BOOK_ENTRIES, &IMAGES, &CHARACTER_GALLERY, &REGEX_SCRIPTS] {
            let columns: Vec<&Value> = schema["tables"][table.name]["columns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"] != "user_id")
                .collect();
            assert_eq!(columns.len(), table.columns.len(), "{}", table.name);
            for (ours, theirs) in table.columns.iter().zip(columns) {
                assert_eq!(ours.name, theirs["name"], "{}", table.name);
                let affinity = if theirs["type"] == "TEXT" { Affinity::Text } else { Affinity::Integer };
                assert_eq!(ours.affinity, affinity, "{}.{}", table.name, ours.name);
                let key = theirs["pk"] == 1;
                assert_eq!(ours.not_null, key || theirs["notnull"] == true, "{}.{}", table.name, ours.name);
                let default = match theirs["default"].as_str() {
                    None => Default::Null,
                    Some("unixepoch()") => Default::Now,
                    Some(quoted) if quoted.starts_with('\'') => Default::Text(""),
                    Some(number) => Default::Integer(number.parse().unwrap()),
                };
                match (ours.default, default) {
                    (Default::Text(ours_text), Default::Text(_)) => {
                        assert_eq!(format!("'{ours_text}'"), theirs["default"].as_str().unwrap());
                    }
                    (ours_default, theirs_default) => {
                        assert_eq!(ours_default, theirs_default, "{}.{}", table.name, ours.name)
                    }
                }
            }
        }
    }
}
