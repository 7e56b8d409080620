//! Values between SQLite's storage classes and PostgreSQL's typed columns (the mapping of
//! `row_tables`): a value whose class fits its column's type is kept there; any other —
//! text in a BIGINT or DOUBLE PRECISION column, a fraction in a BIGINT one, text with a NUL
//! character — is kept in the row's `lvbak_odd` JSONB object under its column's name, as
//! `{"i": integer}`, `{"r": real}` or `{"t": base64 of the text's bytes}`, with the typed
//! column NULL. Reading puts each back where it came from, so a row reads back as SQLite
//! would have stored it.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::storage::sqlite::schema::{Affinity, StoredValue};

/// A value for a typed column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Typed {
    Integer(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

/// One column's values of a run of rows, as the typed array a statement binds (`unnest`):
/// what the import's inserts and `lvbak migrate`'s copy both send.
pub(crate) enum TypedColumn {
    Integer(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl TypedColumn {
    /// An empty column of `affinity`, with room for `rows` values.
    pub(crate) fn new(affinity: Affinity, rows: usize) -> Self {
        match affinity {
            Affinity::Integer => Self::Integer(Vec::with_capacity(rows)),
            Affinity::Real => Self::Real(Vec::with_capacity(rows)),
            Affinity::Text => Self::Text(Vec::with_capacity(rows)),
        }
    }

    pub(crate) fn push(&mut self, value: Typed) {
        match (self, value) {
            (Self::Integer(values), Typed::Integer(value)) => values.push(value),
            (Self::Real(values), Typed::Real(value)) => values.push(value),
            (Self::Text(values), Typed::Text(value)) => values.push(value),
            // `place` answers in the column's own type.
            (Self::Integer(values), _) => values.push(None),
            (Self::Real(values), _) => values.push(None),
            (Self::Text(values), _) => values.push(None),
        }
    }

    /// The array's SQL type, for the statement's cast.
    pub(crate) fn sql_type(&self) -> &'static str {
        match self {
            Self::Integer(_) => "bigint[]",
            Self::Real(_) => "float8[]",
            Self::Text(_) => "text[]",
        }
    }

    pub(crate) fn as_param(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Self::Integer(values) => values,
            Self::Real(values) => values,
            Self::Text(values) => values,
        }
    }

    /// The value at `row` as the key's text (`RETURNING key::text` answers so).
    pub(crate) fn key_text(&self, row: usize) -> Option<String> {
        match self {
            Self::Integer(values) => values[row].map(|value| value.to_string()),
            Self::Real(values) => values[row].map(|value| value.to_string()),
            Self::Text(values) => values[row].clone(),
        }
    }
}

/// Where a stored value goes in a column of `affinity`: its typed value, and the odd entry
/// if the typed column cannot hold it.
pub(crate) fn place(affinity: Affinity, value: StoredValue) -> (Typed, Option<Value>) {
    let null = match affinity {
        Affinity::Integer => Typed::Integer(None),
        Affinity::Real => Typed::Real(None),
        Affinity::Text => Typed::Text(None),
    };
    match (affinity, value) {
        (_, StoredValue::Null) => (null, None),
        (Affinity::Integer, StoredValue::Integer(integer)) => (Typed::Integer(Some(integer)), None),
        (Affinity::Real, StoredValue::Real(real)) => (Typed::Real(Some(real)), None),
        (Affinity::Text, StoredValue::Text(text)) if !text.contains('\0') => (Typed::Text(Some(text)), None),
        (_, other) => (null, Some(odd_entry(&other))),
    }
}

/// A value of an archive's row that needs no asking where it goes, borrowed from the row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fitting<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
}

/// Where `value` goes in a column of `affinity` when its class fits the column, without
/// copying it: what [`place`] makes of `StoredValues::stored`'s answer for a null, text
/// without a NUL character in a TEXT column, an integer in a BIGINT one, a number in a
/// DOUBLE PRECISION one; `None` for any other value (ask `stored`).
pub(crate) fn fitting(affinity: Affinity, value: &Value) -> Option<Fitting<'_>> {
    match (affinity, value) {
        (_, Value::Null) => Some(Fitting::Null),
        (Affinity::Text, Value::String(text)) if memchr::memchr(0, text.as_bytes()).is_none() => {
            Some(Fitting::Text(text))
        }
        (Affinity::Integer, Value::Number(number)) => number.as_i64().map(Fitting::Integer),
        (Affinity::Real, Value::Number(number)) => Some(Fitting::Real(
            number.as_i64().map_or_else(|| number.as_f64().unwrap_or(0.0), |integer| integer as f64),
        )),
        _ => None,
    }
}

/// A value as `lvbak_odd` keeps it.
pub(crate) fn odd_entry(value: &StoredValue) -> Value {
    match value {
        StoredValue::Null => Value::Null,
        StoredValue::Integer(integer) => json!({ "i": integer }),
        StoredValue::Real(real) => json!({ "r": real }),
        StoredValue::Text(text) => json!({ "t": base64::engine::general_purpose::STANDARD.encode(text) }),
    }
}

/// The odd values of one row, by column, as the object's text (`None`: the row has none).
pub(crate) fn odd_object(entries: Map<String, Value>) -> Option<String> {
    (!entries.is_empty()).then(|| Value::Object(entries).to_string())
}

/// A row's `lvbak_odd` read back: column → the value SQLite would have stored.
pub(crate) fn read_odd(object: &str) -> HashMap<String, StoredValue> {
    let Ok(Value::Object(entries)) = serde_json::from_str::<Value>(object) else { return HashMap::new() };
    entries
        .into_iter()
        .filter_map(|(column, entry)| {
            let value = if let Some(integer) = entry.get("i").and_then(Value::as_i64) {
                StoredValue::Integer(integer)
            } else if let Some(real) = entry.get("r").and_then(Value::as_f64) {
                StoredValue::Real(real)
            } else {
                let text = entry.get("t").and_then(Value::as_str)?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
                StoredValue::Text(String::from_utf8(bytes).ok()?)
            };
            Some((column, value))
        })
        .collect()
}

/// Column `index` of a PostgreSQL row of a registry table (a column of `affinity` named
/// `name`) as SQLite would have stored it: the typed value, or the row's odd one.
pub(crate) fn read_stored(
    row: &tokio_postgres::Row,
    index: usize,
    affinity: Affinity,
    name: &str,
    odd: &HashMap<String, StoredValue>,
) -> StoredValue {
    let typed = match affinity {
        Affinity::Integer => row.get::<_, Option<i64>>(index).map(StoredValue::Integer),
        Affinity::Real => row.get::<_, Option<f64>>(index).map(StoredValue::Real),
        Affinity::Text => row.get::<_, Option<String>>(index).map(StoredValue::Text),
    };
    typed.or_else(|| odd.get(name).cloned()).unwrap_or(StoredValue::Null)
}

/// A stored value as every backend hands it out.
pub(crate) fn row_value(value: &StoredValue) -> lvbak_core::row_hash::RowValue<'_> {
    use lvbak_core::row_hash::RowValue;
    match value {
        StoredValue::Null => RowValue::Null,
        StoredValue::Integer(integer) => RowValue::Integer(*integer),
        StoredValue::Real(real) => RowValue::Real(*real),
        StoredValue::Text(text) => RowValue::Text(text),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What fits stays typed; anything else goes to the odd object and reads back as it was.
    #[test]
    fn odd_values_read_back_as_they_were() {
        assert_eq!(place(Affinity::Integer, StoredValue::Integer(7)), (Typed::Integer(Some(7)), None));
        assert_eq!(place(Affinity::Text, StoredValue::Text("a".into())), (Typed::Text(Some("a".into())), None));
        assert_eq!(place(Affinity::Real, StoredValue::Null), (Typed::Real(None), None));
        let mut odd = Map::new();
        for (column, affinity, value) in [
            ("a", Affinity::Integer, StoredValue::Real(1.5)),
            ("b", Affinity::Integer, StoredValue::Text("abc".into())),
            ("c", Affinity::Real, StoredValue::Text("x\u{0}y".into())),
            ("d", Affinity::Text, StoredValue::Text("nul\u{0}".into())),
            ("e", Affinity::Text, StoredValue::Integer(-3)),
            ("f", Affinity::Real, StoredValue::Real(0.1 + 0.2)),
        ] {
            let (typed, entry) = place(affinity, value.clone());
            if column == "f" {
                assert_eq!((typed, entry), (Typed::Real(Some(0.1 + 0.2)), None));
                continue;
            }
            assert!(matches!(typed, Typed::Integer(None) | Typed::Real(None) | Typed::Text(None)), "{column}");
            odd.insert(column.into(), entry.unwrap());
            let back = read_odd(&odd_object(odd.clone()).unwrap());
            assert_eq!(back.get(column), Some(&value), "{column}");
        }
        assert_eq!(odd_object(Map::new()), None);
    }

    /// What `fitting` answers is what `stored` and `place` make of the same value; what
    /// it leaves to them is a value they store elsewhere or change.
    #[test]
    fn fitting_values_go_where_stored_values_go() {
        let stored_values = crate::storage::sqlite::schema::StoredValues::new().unwrap();
        let values = [
            Value::Null,
            json!("text"),
            json!(""),
            json!("nul\u{0}"),
            json!("12"),
            json!(" 12 "),
            json!("1.5"),
            json!(7),
            json!(-9_007_199_254_740_993_i64),
            json!(u64::MAX),
            json!(1.5),
            json!(2.0),
            json!(1e300),
            json!(true),
            json!([1, "a"]),
            json!({"a": 1}),
        ];
        let mut fitted = 0;
        for affinity in [Affinity::Integer, Affinity::Real, Affinity::Text] {
            for value in &values {
                let (typed, odd) = place(affinity, stored_values.stored(affinity, value).unwrap());
                let Some(fit) = fitting(affinity, value) else {
                    let unchanged = match (&typed, value) {
                        (Typed::Text(Some(text)), Value::String(original)) => text == original,
                        _ => false,
                    };
                    assert!(odd.is_some() || !unchanged, "{affinity:?} {value}: {typed:?}");
                    continue;
                };
                fitted += 1;
                let expected = match fit {
                    Fitting::Null => typed_null(affinity),
                    Fitting::Integer(integer) => Typed::Integer(Some(integer)),
                    Fitting::Real(real) => Typed::Real(Some(real)),
                    Fitting::Text(text) => Typed::Text(Some(text.to_string())),
                };
                assert_eq!((typed, odd), (expected, None), "{affinity:?} {value}");
            }
        }
        // Nulls, two integers, six numbers as reals, five texts.
        assert_eq!(fitted, 3 + 2 + 6 + 5);
    }

    fn typed_null(affinity: Affinity) -> Typed {
        match affinity {
            Affinity::Integer => Typed::Integer(None),
            Affinity::Real => Typed::Real(None),
            Affinity::Text => Typed::Text(None),
        }
    }
}
