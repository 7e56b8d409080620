//! World books as a card carries them: Lumiverse 1.1's `exportWorldBook(…,
//! "character_book")` (each entry's columns turned into a CCSv3 `character_book` entry, its
//! managed extension keys normalized) and `mergeWorldBooksForExport` (one attached book as
//! it is; several in one book, entries numbered anew and their comments prefixed with
//! `[book name]`).

use std::cmp::Ordering;

use super::js::{entries_of, js_trim, JsObject, JsValue};
use super::stored::StoredRow;
use crate::error::{FormatError, Result};

/// A world book and its entries, in the order an import inserted them.
#[derive(Clone, Debug)]
pub(crate) struct Book {
    pub row: StoredRow,
    pub entries: Vec<StoredRow>,
}

impl Book {
    pub fn id(&self) -> &str {
        self.row.text("id").unwrap_or_default()
    }

    /// The entries as Lumiverse lists them (`ORDER BY order_value` over the
    /// `(world_book_id, vectorized)` index): by `order_value`, then `vectorized`, then
    /// the order they were inserted in.
    pub fn sorted_entries(&self) -> Vec<&StoredRow> {
        let mut entries: Vec<&StoredRow> = self.entries.iter().collect();
        entries.sort_by(|a, b| {
            sqlite_order(a.get("order_value"), b.get("order_value"))
                .then_with(|| sqlite_order(a.get("vectorized"), b.get("vectorized")))
        });
        entries
    }
}

/// SQLite's order of stored values: null, then numbers by value, then text by its bytes.
pub(crate) fn sqlite_order(a: &JsValue, b: &JsValue) -> Ordering {
    let rank = |v: &JsValue| match v {
        JsValue::Null => 0,
        JsValue::Number(_) | JsValue::Bool(_) => 1,
        _ => 2,
    };
    match (a, b) {
        (JsValue::Number(x), JsValue::Number(y)) => x.total_cmp(y),
        (JsValue::String(x), JsValue::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `JSON.parse` of a stored JSON column; what would make Lumiverse's exporter throw is a
/// `bad_card_data` refusal naming the row and column.
pub(crate) fn parse_json_column(row: &StoredRow, table: &str, column: &str) -> Result<JsValue> {
    let text = match row.get(column) {
        JsValue::String(text) => text.as_str(),
        // `JSON.parse(null)` is null.
        JsValue::Null => "null",
        other => return Ok(other.clone()),
    };
    JsValue::parse(text).map_err(|error| FormatError::BadCardData {
        what: format!("{table} row {:?}", row.text("id").unwrap_or_default()),
        detail: format!("column {column} is not JSON ({error})"),
    })
}

/// WI marker ids Lumiverse accepts (its `VALID_WI_MARKERS`).
const WI_MARKERS: [&str; 12] = [
    "chat_history",
    "world_info_before",
    "world_info_after",
    "char_description",
    "char_personality",
    "persona_description",
    "scenario",
    "dialogue_examples",
    "main_prompt",
    "enhance_definitions",
    "jailbreak",
    "nsfw_prompt",
];

/// An entry's `extensions` column as Lumiverse reads it (`splitManagedEntryExtensions`):
/// an object or array as it is, anything else `{}`, and the managed keys of an object —
/// both spellings of `outlet_name`, `wi_marker`, `wi_marker_side` — taken out and
/// normalized.
pub(crate) struct EntryExtensions {
    /// An object or an array.
    pub rest: JsValue,
    pub outlet_name: Option<String>,
    pub wi_marker: Option<String>,
    pub wi_marker_side: Option<&'static str>,
}

pub(crate) fn entry_extensions(entry: &StoredRow) -> Result<EntryExtensions> {
    let (mut rest, array) = match parse_json_column(entry, "world_book_entries", "extensions")? {
        JsValue::Object(object) => (object, None),
        // An array has none of the managed keys.
        JsValue::Array(items) => (JsObject::new(), Some(items)),
        _ => (JsObject::new(), None),
    };
    // `a ?? b`: the second spelling counts only when the first is null or absent.
    let either = |object: &JsObject, first: &str, second: &str| -> Option<JsValue> {
        match object.get(first) {
            None | Some(JsValue::Null) => object.get(second).cloned(),
            Some(value) => Some(value.clone()),
        }
    };
    let trimmed = |value: Option<JsValue>| value.and_then(|v| v.as_str().map(|s| js_trim(s).to_string()));
    let outlet_name = trimmed(either(&rest, "outlet_name", "outletName")).filter(|name| !name.is_empty());
    let wi_marker = trimmed(either(&rest, "wi_marker", "wiMarker"))
        .map(|marker| marker.to_lowercase())
        .filter(|marker| WI_MARKERS.contains(&marker.as_str()));
    let wi_marker_side =
        trimmed(either(&rest, "wi_marker_side", "wiMarkerSide")).and_then(|side| match side.to_lowercase().as_str() {
            "before" => Some("before"),
            "after" => Some("after"),
            _ => None,
        });
    for key in ["outlet_name", "outletName", "wi_marker", "wiMarker", "wi_marker_side", "wiMarkerSide"] {
        rest.remove(key);
    }
    let rest = array.map_or(JsValue::Object(rest), JsValue::Array);
    Ok(EntryExtensions { rest, outlet_name, wi_marker, wi_marker_side })
}

/// A stored value read as a boolean (`!!row.column`).
fn flag(entry: &StoredRow, column: &str) -> JsValue {
    JsValue::Bool(entry.get(column).truthy())
}

/// One entry in CCSv3 `character_book` form (Lumiverse's `entryToCharacterBookSpec`),
/// numbered `index`.
pub(crate) fn character_book_entry(entry: &StoredRow, index: usize) -> Result<JsValue> {
    let managed = entry_extensions(entry)?;
    // `{...extensions}`: an array's items by index.
    let mut extensions: JsObject = entries_of(&managed.rest).into_iter().collect();
    let raw = |column: &str| entry.get(column).clone();
    for column in ["priority", "sticky", "cooldown", "delay", "selective_logic"] {
        extensions.insert(column, raw(column));
    }
    for column in ["use_probability", "use_regex", "prevent_recursion", "exclude_recursion", "delay_until_recursion"] {
        extensions.insert(column, flag(entry, column));
    }
    extensions.insert("group_override", flag(entry, "group_override"));
    extensions.insert("group_weight", raw("group_weight"));
    extensions.insert("probability", raw("probability"));
    extensions.insert("scan_depth", raw("scan_depth"));
    // `row.automation_id || null`
    let automation = raw("automation_id");
    extensions.insert("automation_id", if automation.truthy() { automation } else { JsValue::Null });
    extensions.insert("vectorized", flag(entry, "vectorized"));
    extensions.insert("uid", raw("uid"));
    if let Some(name) = managed.outlet_name {
        extensions.insert("outlet_name", JsValue::from(name));
    }
    if let Some(marker) = managed.wi_marker {
        extensions.insert("wi_marker", JsValue::from(marker));
    }
    if let Some(side) = managed.wi_marker_side {
        extensions.insert("wi_marker_side", JsValue::from(side));
    }

    let mut card = JsObject::new();
    card.insert("id", JsValue::Number(index as f64));
    card.insert("keys", parse_json_column(entry, "world_book_entries", "key")?);
    card.insert("secondary_keys", parse_json_column(entry, "world_book_entries", "keysecondary")?);
    card.insert("content", raw("content"));
    card.insert("comment", raw("comment"));
    card.insert("enabled", JsValue::Bool(!entry.get("disabled").truthy()));
    card.insert("insertion_order", raw("order_value"));
    card.insert("position", raw("position"));
    card.insert("depth", raw("depth"));
    for column in ["selective", "constant", "case_sensitive", "match_whole_words"] {
        card.insert(column, flag(entry, column));
    }
    let role = raw("role");
    if role.truthy() {
        card.insert("role", role);
    }
    let group = raw("group_name");
    if group.truthy() {
        card.insert("group", group);
    }
    card.insert("extensions", JsValue::Object(extensions));
    Ok(JsValue::Object(card))
}

/// One book in `character_book` form: `{name, description, entries}`.
pub(crate) fn character_book(book: &Book) -> Result<JsObject> {
    let entries = book
        .sorted_entries()
        .into_iter()
        .enumerate()
        .map(|(index, entry)| character_book_entry(entry, index))
        .collect::<Result<Vec<_>>>()?;
    let mut out = JsObject::new();
    out.insert("name", book.row.get("name").clone());
    out.insert("description", book.row.get("description").clone());
    out.insert("entries", JsValue::Array(entries));
    Ok(out)
}

/// The `character_book` of a character attached to the books `attached` names (`None`
/// for an id the archive has no book for), or `None` when they give none: one book as it
/// is; several merged, entries numbered anew and each comment prefixed with its book's
/// name; a merge without entries gives none.
pub(crate) fn merged_character_book(attached: &[Option<&Book>]) -> Result<Option<JsValue>> {
    if let [only] = attached {
        return Ok(match only {
            Some(book) => Some(JsValue::Object(character_book(book)?)),
            None => None,
        });
    }
    let mut entries = Vec::new();
    let mut names = Vec::new();
    for book in attached.iter().flatten() {
        let exported = character_book(book)?;
        let name = match book.row.get("name") {
            name if name.truthy() => name.as_str().unwrap_or_default().to_string(),
            _ => "Unknown Book".to_string(),
        };
        for entry in exported.into_entries().filter(|(key, _)| key == "entries").flat_map(|(_, list)| match list {
            JsValue::Array(items) => items,
            _ => Vec::new(),
        }) {
            let JsValue::Object(mut entry) = entry else { continue };
            let comment = entry.get("comment").filter(|c| c.truthy()).and_then(JsValue::as_str).unwrap_or_default();
            let comment = js_trim(&format!("[{name}] {comment}")).to_string();
            entry.insert("id", JsValue::Number(entries.len() as f64));
            entry.insert("comment", JsValue::from(comment));
            entries.push(JsValue::Object(entry));
        }
        names.push(name);
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let mut merged = JsObject::new();
    let name = match names.as_slice() {
        [one] => one.clone(),
        many => format!("Merged Lorebook ({} books)", many.len()),
    };
    merged.insert("name", JsValue::from(name));
    merged.insert("description", JsValue::from(format!("Merged from: {}", names.join(", "))));
    merged.insert("entries", JsValue::Array(entries));
    Ok(Some(JsValue::Object(merged)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::card::stored::{stored, WORLD_BOOKS, WORLD_BOOK_ENTRIES};

    fn entry(fields: Value) -> StoredRow {
        let mut row = json!({"id": "e1", "world_book_id": "b1", "uid": "u1"});
        row.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        stored(&WORLD_BOOK_ENTRIES, row)
    }

    fn book(id: &str, name: &str, entries: Vec<StoredRow>) -> Book {
        Book { row: stored(&WORLD_BOOKS, json!({"id": id, "name": name, "description": "about"})), entries }
    }

    fn card_entry(fields: Value) -> String {
        character_book_entry(&entry(fields), 7).unwrap().to_json()
    }

    #[test]
    fn an_entry_becomes_a_character_book_entry_field_by_field() {
        let text = card_entry(json!({
            "key": "[\"tower\",\"archive\"]", "keysecondary": "[\"map\"]", "content": "C", "comment": "c",
            "order_value": 50, "position": 1, "depth": 2, "selective": 1, "constant": 0, "disabled": 1,
            "case_sensitive": 1, "match_whole_words": 0, "priority": 3, "sticky": 4, "cooldown": 5, "delay": 6,
            "selective_logic": 2, "use_probability": 0, "use_regex": 1, "prevent_recursion": 1,
            "exclude_recursion": 0, "delay_until_recursion": 1, "group_override": 1, "group_weight": 70,
            "probability": 80, "scan_depth": 9, "automation_id": "auto", "vectorized": 1,
            "extensions": "{\"custom\":true}"
        }));
        assert_eq!(
            text,
            concat!(
                r#"{"id":7,"keys":["tower","archive"],"secondary_keys":["map"],"content":"C","comment":"c","#,
                r#""enabled":false,"insertion_order":50,"position":1,"depth":2,"selective":true,"constant":false,"#,
                r#""case_sensitive":true,"match_whole_words":false,"extensions":{"custom":true,"priority":3,"#,
                r#""sticky":4,"cooldown":5,"delay":6,"selective_logic":2,"use_probability":false,"use_regex":true,"#,
                r#""prevent_recursion":true,"exclude_recursion":false,"delay_until_recursion":true,"#,
                r#""group_override":true,"group_weight":70,"probability":80,"scan_depth":9,"automation_id":"auto","#,
                r#""vectorized":true,"uid":"u1"}}"#
            )
        );
    }

    #[test]
    fn an_entry_without_columns_takes_the_schema_defaults() {
        let text = card_entry(json!({}));
        assert_eq!(
            text,
            concat!(
                r#"{"id":7,"keys":[],"secondary_keys":[],"content":"","comment":"","enabled":true,"#,
                r#""insertion_order":100,"position":0,"depth":4,"selective":false,"constant":false,"#,
                r#""case_sensitive":false,"match_whole_words":false,"extensions":{"priority":10,"sticky":0,"#,
                r#""cooldown":0,"delay":0,"selective_logic":0,"use_probability":true,"use_regex":false,"#,
                r#""prevent_recursion":false,"exclude_recursion":false,"delay_until_recursion":false,"#,
                r#""group_override":false,"group_weight":100,"probability":100,"scan_depth":null,"#,
                r#""automation_id":null,"vectorized":false,"uid":"u1"}}"#
            )
        );
    }

    #[test]
    fn role_and_group_appear_only_when_set() {
        let text = card_entry(json!({"role": "assistant", "group_name": "g"}));
        assert!(text.contains(r#""match_whole_words":false,"role":"assistant","group":"g","extensions""#), "{text}");
        let text = card_entry(json!({"role": "", "group_name": ""}));
        assert!(!text.contains("\"role\"") && !text.contains("\"group\""), "{text}");
        // `automation_id || null`: empty text is null.
        assert!(card_entry(json!({"automation_id": ""})).contains(r#""automation_id":null"#));
    }

    #[test]
    fn managed_extension_keys_are_normalized_and_written_last() {
        let text = card_entry(
            json!({"extensions": r#"{"outletName":"  Lore  ","a":1,"wi_marker":" Chat_History ","wiMarkerSide":"AFTER","b":2}"#}),
        );
        assert!(text.contains(r#""extensions":{"a":1,"b":2,"priority":10"#), "{text}");
        assert!(
            text.ends_with(r#""uid":"u1","outlet_name":"Lore","wi_marker":"chat_history","wi_marker_side":"after"}}"#),
            "{text}"
        );
        // `outlet_name ?? outletName`: a first spelling that is not null wins even when it is
        // not text; unknown markers and sides are dropped; blank names are no names.
        let text = card_entry(
            json!({"extensions": r#"{"outlet_name":5,"outletName":"x","wi_marker":"nope","wi_marker_side":"middle"}"#}),
        );
        assert!(text.ends_with(r#""uid":"u1"}}"#), "{text}");
        assert!(!text.contains("outlet") && !text.contains("wi_marker"), "{text}");
        let text = card_entry(json!({"extensions": r#"{"outlet_name":null,"outletName":" y "}"#}));
        assert!(text.ends_with(r#""outlet_name":"y"}}"#), "{text}");
        assert!(card_entry(json!({"extensions": r#"{"outlet_name":"   "}"#})).ends_with(r#""uid":"u1"}}"#));
    }

    #[test]
    fn extensions_that_are_not_an_object() {
        // An array is spread by index; text, numbers and null give `{}`.
        assert!(
            card_entry(json!({"extensions": "[\"x\",\"y\"]"})).contains(r#""extensions":{"0":"x","1":"y","priority""#)
        );
        for extensions in ["\"text\"", "5", "null", "true"] {
            assert!(
                card_entry(json!({"extensions": extensions})).contains(r#""extensions":{"priority""#),
                "{extensions}"
            );
        }
        // A key the row also writes keeps its place and takes the row's value.
        assert!(card_entry(json!({"extensions": r#"{"uid":"old","priority":99,"z":0}"#}))
            .contains(r#""extensions":{"uid":"u1","priority":10,"z":0,"sticky":0"#));
    }

    #[test]
    fn text_in_number_columns_and_numbers_in_text_columns() {
        let text =
            card_entry(json!({"order_value": "12", "depth": "deep", "selective": "0", "content": 5, "disabled": true}));
        assert!(text.contains(r#""content":"5","#), "{text}");
        assert!(
            text.contains(r#""enabled":false,"insertion_order":12,"position":0,"depth":"deep","selective":false"#),
            "{text}"
        );
    }

    #[test]
    fn an_entry_column_that_is_not_json_is_refused() {
        let error = character_book_entry(&entry(json!({"key": "[oops"})), 0).unwrap_err();
        assert_eq!(error.code(), "bad_card_data");
        assert!(error.to_string().contains("world_book_entries row \"e1\""), "{error}");
        assert!(error.to_string().contains("column key"), "{error}");
    }

    #[test]
    fn entries_sort_by_order_value_then_vectorized_then_insertion() {
        let rows = vec![
            entry(json!({"id": "a", "order_value": 5, "vectorized": 1})),
            entry(json!({"id": "b", "order_value": "x"})),
            entry(json!({"id": "c", "order_value": 5, "vectorized": 0})),
            entry(json!({"id": "d", "order_value": 1})),
            entry(json!({"id": "e", "order_value": 5, "vectorized": 0})),
        ];
        let book = book("b1", "Book", rows);
        let order: Vec<&str> = book.sorted_entries().iter().map(|e| e.text("id").unwrap()).collect();
        // Numbers before text (SQLite's order of values).
        assert_eq!(order, ["d", "c", "e", "a", "b"]);
    }

    #[test]
    fn one_book_is_carried_as_it_is() {
        let one = book("b1", "Lore", vec![entry(json!({"id": "x", "comment": "first"}))]);
        let merged = merged_character_book(&[Some(&one)]).unwrap().unwrap();
        let text = merged.to_json();
        assert!(text.starts_with(r#"{"name":"Lore","description":"about","entries":[{"id":0,"#), "{text}");
        assert!(text.contains(r#""comment":"first""#), "{text}");
        // An empty book is still a book.
        let empty = book("b2", "", Vec::new());
        assert_eq!(
            merged_character_book(&[Some(&empty)]).unwrap().unwrap().to_json(),
            r#"{"name":"","description":"about","entries":[]}"#
        );
        assert_eq!(merged_character_book(&[None]).unwrap(), None);
    }

    #[test]
    fn several_books_are_merged_with_prefixed_comments_and_new_ids() {
        let first = book(
            "b1",
            "Alpha",
            vec![entry(json!({"id": "x", "comment": "one  "})), entry(json!({"id": "y", "comment": ""}))],
        );
        let second = book("b2", "", vec![entry(json!({"id": "z", "comment": "three"}))]);
        let empty = book("b3", "Empty", Vec::new());
        let merged = merged_character_book(&[Some(&first), None, Some(&second), Some(&empty)]).unwrap().unwrap();
        let JsValue::Object(merged) = merged else { unreachable!() };
        assert_eq!(merged.get("name"), Some(&JsValue::from("Merged Lorebook (3 books)")));
        assert_eq!(merged.get("description"), Some(&JsValue::from("Merged from: Alpha, Unknown Book, Empty")));
        let Some(JsValue::Array(entries)) = merged.get("entries") else { unreachable!() };
        let fields: Vec<(f64, String)> = entries
            .iter()
            .map(|e| {
                let e = e.as_object().unwrap();
                let Some(JsValue::Number(id)) = e.get("id") else { unreachable!() };
                (*id, e.get("comment").unwrap().as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(
            fields,
            [(0.0, "[Alpha] one".into()), (1.0, "[Alpha]".into()), (2.0, "[Unknown Book] three".into())]
        );
        // `{...entry, id, comment}`: both keep their places.
        assert!(entries[1]
            .to_json()
            .starts_with(r#"{"id":1,"keys":[],"secondary_keys":[],"content":"","comment":"[Alpha]","#));
    }

    #[test]
    fn a_merge_of_one_found_book_takes_its_name_and_a_merge_without_entries_gives_none() {
        let only = book("b1", "Alpha", vec![entry(json!({"id": "x"}))]);
        let merged = merged_character_book(&[None, Some(&only)]).unwrap().unwrap();
        assert!(merged
            .to_json()
            .starts_with(r#"{"name":"Alpha","description":"Merged from: Alpha","entries":[{"id":0,"#));
        let empty = book("b2", "Empty", Vec::new());
        assert_eq!(merged_character_book(&[Some(&empty), Some(&empty)]).unwrap(), None);
        assert_eq!(merged_character_book(&[None, None]).unwrap(), None);
    }

    #[test]
    fn a_repeated_book_is_merged_twice() {
        let one = book("b1", "Alpha", vec![entry(json!({"id": "x", "comment": "c"}))]);
        let merged = merged_character_book(&[Some(&one), Some(&one)]).unwrap().unwrap().to_json();
        assert!(
            merged.starts_with(r#"{"name":"Merged Lorebook (2 books)","description":"Merged from: Alpha, Alpha""#),
            "{merged}"
        );
        assert_eq!(merged.matches("[Alpha] c").count(), 2);
    }
}
