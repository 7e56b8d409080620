//! SQLite's reading of a JSON text's top-level string, without building the value: what
//! `json_extract(text, '$.key')` gives when it is text (the snapshot's selections by a
//! key inside a JSON column, `snapshot.rs`, match as SQLite's statements do).

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The text SQLite's `CASE WHEN json_valid(text) THEN json_extract(text, '$.key') END`
/// gives, if it is text: the string under the top-level object's first `key` (SQLite reads
/// a repeated key's first value, where a `serde_json::Value` keeps the last), escapes read.
pub(super) fn json_text_under<'t>(text: &'t str, key: &str) -> Option<Cow<'t, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let found = DeserializeSeed::deserialize(FirstUnder { key }, &mut deserializer).ok()?;
    deserializer.end().ok()?;
    found
}

/// Reads a JSON object, keeping the string under its first `key` (anything that is no
/// object, or whose first `key` holds no string, fails the reading: nothing matches).
struct FirstUnder<'k> {
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for FirstUnder<'_> {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FirstUnder<'_> {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key_seed(JsonText)? {
            if found.is_none() && key == self.key {
                found = Some(map.next_value_seed(JsonText)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A JSON string, borrowed where it has no escapes (any other value fails the reading).
struct JsonText;

impl<'de> DeserializeSeed<'de> for JsonText {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for JsonText {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON string")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::json_text_under;

    /// As SQLite's `json_extract`: the first of a repeated key, escapes read, and nothing
    /// for text that is no JSON object or whose value is no string.
    #[test]
    fn reads_the_first_string_under_a_key() {
        assert_eq!(json_text_under(r#"{"a": "x", "a": "y"}"#, "a").as_deref(), Some("x"));
        assert_eq!(json_text_under(r#"{"b": 1, "a": "\u00e9\n"}"#, "a").as_deref(), Some("é\n"));
        assert_eq!(json_text_under(r#"{"a": 1}"#, "a"), None);
        assert_eq!(json_text_under(r#"{"b": "x"}"#, "a"), None);
        assert_eq!(json_text_under(r#"["a", "x"]"#, "a"), None);
        assert_eq!(json_text_under(r#"{"a": "x"} trailing"#, "a"), None);
    }
}
