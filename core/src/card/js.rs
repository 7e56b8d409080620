//! JSON as JavaScript holds it, for cards that must equal what Lumiverse (Bun) writes:
//! numbers are doubles, an object keeps JavaScript's property order (array-index keys
//! first, ascending, then the other keys in the order they were first set; a repeated key
//! keeps its place and takes the last value, as `JSON.parse` does), and text is written as
//! `JSON.stringify` writes it, compact or with two-space indentation.
//!
//! serde_json's own `Map` cannot stand in: without `preserve_order` (core's wasm build) it
//! sorts keys, and with it (the server's build, which LanceDB turns on) it does not put
//! array-index keys first.

use std::collections::BTreeMap;
use std::fmt;

use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::js_number::write_js_number;

/// A JSON value with JavaScript's semantics.
#[derive(Clone, Debug, PartialEq)]
pub enum JsValue {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<JsValue>),
    Object(JsObject),
}

/// A JavaScript object's own properties, in JavaScript's order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JsObject {
    /// Keys that are array indices (`"0"` … `"4294967294"`), enumerated first, ascending.
    indices: BTreeMap<u32, JsValue>,
    /// Every other key, in the order it was first set.
    named: IndexMap<String, JsValue>,
}

/// The array index a property key stands for: its canonical decimal text below 2³² − 1.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&index| index != u32::MAX)
}

impl JsObject {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property as `object[key] = value` does: a key already there keeps its place.
    pub fn insert(&mut self, key: impl Into<String>, value: JsValue) {
        let key = key.into();
        match array_index(&key) {
            Some(index) => {
                self.indices.insert(index, value);
            }
            None => {
                self.named.insert(key, value);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&JsValue> {
        match array_index(key) {
            Some(index) => self.indices.get(&index),
            None => self.named.get(key),
        }
    }

    /// Deletes a property as `delete object[key]` does; the others keep their order.
    pub fn remove(&mut self, key: &str) -> Option<JsValue> {
        match array_index(key) {
            Some(index) => self.indices.remove(&index),
            None => self.named.shift_remove(key),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.indices.len() + self.named.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The properties in JavaScript's order (`Object.entries`).
    pub fn iter(&self) -> impl Iterator<Item = (String, &JsValue)> + '_ {
        self.indices
            .iter()
            .map(|(index, value)| (index.to_string(), value))
            .chain(self.named.iter().map(|(k, v)| (k.clone(), v)))
    }

    /// The properties in JavaScript's order, taken apart.
    pub fn into_entries(self) -> impl Iterator<Item = (String, JsValue)> {
        self.indices.into_iter().map(|(index, value)| (index.to_string(), value)).chain(self.named)
    }
}

impl FromIterator<(String, JsValue)> for JsObject {
    fn from_iter<I: IntoIterator<Item = (String, JsValue)>>(entries: I) -> Self {
        let mut object = Self::new();
        for (key, value) in entries {
            object.insert(key, value);
        }
        object
    }
}

impl JsValue {
    /// `Boolean(value)`: false for null, false, 0, NaN and "".
    pub fn truthy(&self) -> bool {
        match self {
            Self::Null => false,
            Self::Bool(flag) => *flag,
            Self::Number(number) => *number != 0.0 && !number.is_nan(),
            Self::String(text) => !text.is_empty(),
            Self::Array(_) | Self::Object(_) => true,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&JsObject> {
        match self {
            Self::Object(object) => Some(object),
            _ => None,
        }
    }

    /// `JSON.parse(text)`.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// `JSON.stringify(value)`.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out, None, 0);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `JSON.stringify(value, null, 2)`.
    pub fn to_json_pretty(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out, Some(2), 0);
        String::from_utf8(out).unwrap_or_default()
    }

    fn write(&self, out: &mut Vec<u8>, indent: Option<usize>, depth: usize) {
        let newline = |out: &mut Vec<u8>, depth: usize| {
            if let Some(width) = indent {
                out.push(b'\n');
                out.resize(out.len() + width * depth, b' ');
            }
        };
        match self {
            Self::Null => out.extend_from_slice(b"null"),
            Self::Bool(true) => out.extend_from_slice(b"true"),
            Self::Bool(false) => out.extend_from_slice(b"false"),
            Self::Number(number) => write_js_number(out, *number),
            Self::String(text) => write_js_string(out, text),
            Self::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
            Self::Array(items) => {
                out.push(b'[');
                for (at, item) in items.iter().enumerate() {
                    if at > 0 {
                        out.push(b',');
                    }
                    newline(out, depth + 1);
                    item.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push(b']');
            }
            Self::Object(object) if object.is_empty() => out.extend_from_slice(b"{}"),
            Self::Object(object) => {
                out.push(b'{');
                for (at, (key, value)) in object.iter().enumerate() {
                    if at > 0 {
                        out.push(b',');
                    }
                    newline(out, depth + 1);
                    write_js_string(out, &key);
                    out.push(b':');
                    if indent.is_some() {
                        out.push(b' ');
                    }
                    value.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push(b'}');
            }
        }
    }
}

impl From<&str> for JsValue {
    fn from(text: &str) -> Self {
        Self::String(text.to_string())
    }
}

impl From<String> for JsValue {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl From<bool> for JsValue {
    fn from(flag: bool) -> Self {
        Self::Bool(flag)
    }
}

impl From<JsObject> for JsValue {
    fn from(object: JsObject) -> Self {
        Self::Object(object)
    }
}

/// A string as `JSON.stringify` quotes it: `"` and `\` escaped, the C0 controls as `\b`,
/// `\t`, `\n`, `\f`, `\r` or `\u00xx`; everything else as it is.
fn write_js_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..at]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = at + 1;
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// Whether JavaScript's `String.prototype.trim` removes `c`: its WhiteSpace and
/// LineTerminator, which differ from Rust's `char::is_whitespace` in U+FEFF (trimmed) and
/// U+0085 (kept).
fn is_js_space(c: char) -> bool {
    c == '\u{feff}' || (c.is_whitespace() && c != '\u{85}')
}

/// `text.trim()` as JavaScript trims.
pub fn js_trim(text: &str) -> &str {
    text.trim_matches(is_js_space)
}

impl<'de> Deserialize<'de> for JsValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsValueVisitor)
    }
}

struct JsValueVisitor;

impl<'de> Visitor<'de> for JsValueVisitor {
    type Value = JsValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<JsValue, E> {
        Ok(JsValue::Bool(value))
    }

    // Integers become the double nearest them, as JavaScript reads their digits.
    fn visit_i64<E>(self, value: i64) -> Result<JsValue, E> {
        Ok(JsValue::Number(value as f64))
    }

    fn visit_u64<E>(self, value: u64) -> Result<JsValue, E> {
        Ok(JsValue::Number(value as f64))
    }

    fn visit_f64<E>(self, value: f64) -> Result<JsValue, E> {
        Ok(JsValue::Number(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<JsValue, E> {
        Ok(JsValue::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<JsValue, E> {
        Ok(JsValue::String(value))
    }

    fn visit_unit<E>(self) -> Result<JsValue, E> {
        Ok(JsValue::Null)
    }

    fn visit_none<E>(self) -> Result<JsValue, E> {
        Ok(JsValue::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsValue, A::Error> {
        let mut object = JsObject::new();
        while let Some((key, value)) = map.next_entry::<String, JsValue>()? {
            object.insert(key, value);
        }
        Ok(JsValue::Object(object))
    }
}

/// `Object.entries(value)`: an object's properties, an array's items by index, a string's
/// UTF-16 code units by index (a unit that is half of a pair, which Rust text cannot hold
/// alone, as U+FFFD), nothing for anything else.
pub(crate) fn entries_of(value: &JsValue) -> Vec<(String, JsValue)> {
    match value {
        JsValue::Object(object) => object.iter().map(|(k, v)| (k, v.clone())).collect(),
        JsValue::Array(items) => items.iter().enumerate().map(|(at, item)| (at.to_string(), item.clone())).collect(),
        JsValue::String(text) => text
            .chars()
            .flat_map(|c| {
                let unit = if c.len_utf16() == 1 { c.to_string() } else { "\u{fffd}".to_string() };
                vec![unit; c.len_utf16()]
            })
            .enumerate()
            .map(|(at, unit)| (at.to_string(), JsValue::from(unit)))
            .collect(),
        _ => Vec::new(),
    }
}

/// A property of a parsed JSON value (`value?.key`): only objects have any.
pub(crate) fn property<'a>(value: &'a JsValue, key: &str) -> Option<&'a JsValue> {
    value.as_object().and_then(|object| object.get(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> JsValue {
        JsValue::parse(text).unwrap()
    }

    #[test]
    fn objects_keep_javascript_property_order() {
        // Array-index keys first, ascending; then the rest in insertion order. "01", "-1",
        // "4294967295" and "1.5" are not array indices.
        let value = parse(r#"{"b":1,"2":2,"a":3,"10":4,"01":5,"0":6,"-1":7,"4294967295":8,"4294967294":9,"1.5":10}"#);
        assert_eq!(
            value.to_json(),
            r#"{"0":6,"2":2,"10":4,"4294967294":9,"b":1,"a":3,"01":5,"-1":7,"4294967295":8,"1.5":10}"#
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_the_last_value() {
        assert_eq!(parse(r#"{"a":1,"b":2,"a":3}"#).to_json(), r#"{"a":3,"b":2}"#);
        let mut object = JsObject::new();
        object.insert("x", JsValue::Null);
        object.insert("y", JsValue::Null);
        object.insert("x", true.into());
        assert_eq!(JsValue::from(object).to_json(), r#"{"x":true,"y":null}"#);
    }

    #[test]
    fn remove_keeps_the_order_of_the_rest() {
        let JsValue::Object(mut object) = parse(r#"{"a":1,"b":2,"c":3,"1":4}"#) else { unreachable!() };
        assert_eq!(object.remove("b"), Some(JsValue::Number(2.0)));
        assert_eq!(object.remove("1"), Some(JsValue::Number(4.0)));
        assert_eq!(object.remove("zz"), None);
        assert_eq!(JsValue::from(object).to_json(), r#"{"a":1,"c":3}"#);
    }

    #[test]
    fn numbers_are_doubles_written_as_javascript_writes_them() {
        assert_eq!(
            parse("[1.0,0.6,1e21,-0,100,9007199254740993,1E2,0.1e1]").to_json(),
            "[1,0.6,1e+21,0,100,9007199254740992,100,1]"
        );
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_escapes() {
        let value = JsValue::from("q\"b\\s/\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}\u{2028}é🌧");
        assert_eq!(value.to_json(), "\"q\\\"b\\\\s/\\b\\t\\n\\f\\r\\u0001\\u001f\u{7f}\u{2028}é🌧\"");
    }

    #[test]
    fn pretty_output_is_json_stringify_with_two_spaces() {
        let value = parse(r#"{"a":[1,{"b":[]}],"c":{},"d":"x"}"#);
        assert_eq!(
            value.to_json_pretty(),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {},\n  \"d\": \"x\"\n}"
        );
        assert_eq!(parse("[]").to_json_pretty(), "[]");
        assert_eq!(parse("3").to_json_pretty(), "3");
    }

    #[test]
    fn truthiness_is_javascripts() {
        for (text, truthy) in [
            ("null", false),
            ("false", false),
            ("0", false),
            ("\"\"", false),
            ("true", true),
            ("-1", true),
            ("\"0\"", true),
            ("[]", true),
            ("{}", true),
        ] {
            assert_eq!(parse(text).truthy(), truthy, "{text}");
        }
        assert!(!JsValue::Number(f64::NAN).truthy());
    }

    #[test]
    fn trim_is_javascripts() {
        assert_eq!(js_trim("\u{feff}\u{a0} a b\t\n\u{2028}\u{3000}"), "a b");
        // U+0085 is not JavaScript white space, though Rust's trim removes it.
        assert_eq!(js_trim("\u{85}a\u{85} "), "\u{85}a\u{85}");
    }
}
