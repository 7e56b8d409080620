//! The CCSv3 card of one character, as Lumiverse 1.1's `buildCCSv3Json` writes it: `spec`
//! `chara_card_v3`, `spec_version` `3.0`, the data fields with `""`/`[]` for empty ones,
//! the attached world books as `character_book` (else the `character_book` kept in the
//! extensions), `character_version` lifted out of the extensions, and the extensions
//! without Lumiverse's internal keys.

use super::book::{merged_character_book, parse_json_column, Book};
use super::js::{entries_of, property, JsObject, JsValue};
use super::stored::StoredRow;
use crate::error::Result;

/// Extension keys that are Lumiverse's own and stay out of a card
/// (`INTERNAL_EXTENSION_KEYS`). `character_book` and the landing layers are not among them.
pub(crate) const INTERNAL_EXTENSION_KEYS: [&str; 10] = [
    "expressions",
    "expression_groups",
    "alternate_fields",
    "alternate_avatars",
    "world_book_id",
    "world_book_ids",
    "avatar_crop_image_id",
    "original_image_id",
    "_lumiverse_source_filename",
    "risu_asset_map",
];

/// The text fields of `data`, each `""` when empty.
const TEXT_FIELDS: [&str; 9] = [
    "description",
    "personality",
    "scenario",
    "first_mes",
    "mes_example",
    "creator",
    "creator_notes",
    "system_prompt",
    "post_history_instructions",
];

/// The world books a character is attached to (`getCharacterWorldBookIds`): the non-empty
/// strings of `extensions.world_book_ids` when it is an array (even an empty one), else
/// the legacy `extensions.world_book_id`. Repeats are kept.
pub(crate) fn attached_book_ids(extensions: &JsValue) -> Vec<String> {
    match property(extensions, "world_book_ids") {
        Some(JsValue::Array(ids)) => {
            ids.iter().filter_map(JsValue::as_str).filter(|id| !id.is_empty()).map(str::to_string).collect()
        }
        _ => match property(extensions, "world_book_id") {
            Some(JsValue::String(id)) if !id.is_empty() => vec![id.clone()],
            _ => Vec::new(),
        },
    }
}

/// A character's parsed `extensions` column.
pub(crate) fn character_extensions(character: &StoredRow) -> Result<JsValue> {
    parse_json_column(character, "characters", "extensions")
}

/// The card of `character`; `book` finds an attached book by id (the first an import
/// keeps), `None` for one the archive lacks.
pub(crate) fn ccv3<'b>(character: &StoredRow, book: impl Fn(&str) -> Option<&'b Book>) -> Result<JsValue> {
    let extensions = character_extensions(character)?;
    let mut clean = JsObject::new();
    if extensions.truthy() {
        for (key, value) in entries_of(&extensions) {
            // `clean[key] = value` with key `__proto__` sets the prototype, not a property.
            if !INTERNAL_EXTENSION_KEYS.contains(&key.as_str()) && key != "__proto__" {
                clean.insert(key, value);
            }
        }
    }

    let mut data = JsObject::new();
    data.insert("name", character.get("name").clone());
    for field in TEXT_FIELDS {
        let value = character.get(field);
        data.insert(field, if value.truthy() { value.clone() } else { JsValue::from("") });
    }
    for field in ["tags", "alternate_greetings"] {
        let value = parse_json_column(character, "characters", field)?;
        data.insert(field, if value.truthy() { value } else { JsValue::Array(Vec::new()) });
    }

    let attached = attached_book_ids(&extensions);
    if !attached.is_empty() {
        let books: Vec<Option<&Book>> = attached.iter().map(|id| book(id)).collect();
        if let Some(character_book) = merged_character_book(&books)? {
            data.insert("character_book", character_book);
        }
    }
    if !data.contains_key("character_book") {
        if let Some(kept) = property(&extensions, "character_book").filter(|kept| kept.truthy()) {
            data.insert("character_book", kept.clone());
        }
    }
    if let Some(version) = clean.remove("character_version") {
        data.insert("character_version", version);
    }
    if !clean.is_empty() {
        data.insert("extensions", JsValue::Object(clean));
    }

    let mut card = JsObject::new();
    card.insert("spec", JsValue::from("chara_card_v3"));
    card.insert("spec_version", JsValue::from("3.0"));
    card.insert("data", JsValue::Object(data));
    Ok(JsValue::Object(card))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::card::stored::{stored, CHARACTERS, WORLD_BOOKS, WORLD_BOOK_ENTRIES};

    fn character(fields: Value) -> StoredRow {
        let mut row = json!({"id": "c1", "name": "Elara"});
        row.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        stored(&CHARACTERS, row)
    }

    fn card_of(fields: Value) -> String {
        ccv3(&character(fields), |_| None).unwrap().to_json()
    }

    fn book(id: &str, name: &str, comments: &[&str]) -> Book {
        let entries = comments
            .iter()
            .enumerate()
            .map(|(at, comment)| {
                stored(
                    &WORLD_BOOK_ENTRIES,
                    json!({"id": format!("{id}-{at}"), "world_book_id": id, "uid": "u", "comment": comment}),
                )
            })
            .collect();
        Book { row: stored(&WORLD_BOOKS, json!({"id": id, "name": name, "description": "d"})), entries }
    }

    /// The `character_book` a card carries, as JSON text (or "none").
    fn character_book_of(extensions: Value, books: &[Book]) -> String {
        let row = character(json!({"extensions": extensions.to_string()}));
        let card = ccv3(&row, |id| books.iter().find(|b| b.id() == id)).unwrap();
        let data = card.as_object().unwrap().get("data").unwrap().as_object().unwrap();
        data.get("character_book").map_or_else(|| "none".to_string(), JsValue::to_json)
    }

    #[test]
    fn a_bare_character_gets_every_field_with_its_default() {
        assert_eq!(
            card_of(json!({})),
            concat!(
                r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"Elara","description":"","#,
                r#""personality":"","scenario":"","first_mes":"","mes_example":"","creator":"","creator_notes":"","#,
                r#""system_prompt":"","post_history_instructions":"","tags":[],"alternate_greetings":[]}}"#
            )
        );
    }

    #[test]
    fn fields_are_copied_and_json_columns_parsed() {
        let card = card_of(json!({
            "description": "D", "personality": "P", "scenario": "S", "first_mes": "F", "mes_example": "M",
            "creator": "C", "creator_notes": "N", "system_prompt": "Y", "post_history_instructions": "H",
            "tags": "[\"a\",\"b\"]", "alternate_greetings": "[\"hi\"]", "extensions": "{\"talkativeness\":0.6}",
            "avatar_path": "avatars/x.png", "image_id": "i1", "created_at": 5
        }));
        assert_eq!(
            card,
            concat!(
                r#"{"spec":"chara_card_v3","spec_version":"3.0","data":{"name":"Elara","description":"D","#,
                r#""personality":"P","scenario":"S","first_mes":"F","mes_example":"M","creator":"C","#,
                r#""creator_notes":"N","system_prompt":"Y","post_history_instructions":"H","tags":["a","b"],"#,
                r#""alternate_greetings":["hi"],"extensions":{"talkativeness":0.6}}}"#
            )
        );
    }

    #[test]
    fn falsy_lists_become_empty_lists_and_other_values_stay() {
        for falsy in ["null", "0", "\"\"", "false"] {
            let card = card_of(json!({"tags": falsy, "alternate_greetings": falsy}));
            assert!(card.ends_with(r#""tags":[],"alternate_greetings":[]}}"#), "{falsy}: {card}");
        }
        let card = card_of(json!({"tags": "{\"a\":1}", "alternate_greetings": "\"hello\""}));
        assert!(card.ends_with(r#""tags":{"a":1},"alternate_greetings":"hello"}}"#), "{card}");
    }

    #[test]
    fn a_json_column_that_is_not_json_is_refused() {
        let error = ccv3(&character(json!({"tags": "[oops"})), |_| None).unwrap_err();
        assert_eq!(error.code(), "bad_card_data");
        assert!(error.to_string().contains("characters row \"c1\"") && error.to_string().contains("tags"), "{error}");
    }

    #[test]
    fn internal_extension_keys_stay_out_and_the_rest_keeps_its_order() {
        // Written as text: json! objects sort their keys in some builds and not in others.
        let internal: String = INTERNAL_EXTENSION_KEYS.iter().map(|key| format!(r#""{key}":"x","#)).collect();
        let extensions = format!(
            r#"{{"z":1,{internal}"landing_perspective_layers":[{{"id":"l"}}],"character_book":{{"entries":[]}},"a":null}}"#
        );
        let card = card_of(json!({"extensions": extensions}));
        assert!(
            card.ends_with(concat!(
                r#""character_book":{"entries":[]},"extensions":{"z":1,"landing_perspective_layers":[{"id":"l"}],"#,
                r#""character_book":{"entries":[]},"a":null}}}"#
            )),
            "{card}"
        );
    }

    #[test]
    fn a_proto_key_is_not_copied() {
        // `clean["__proto__"] = value` sets the prototype; JSON.stringify never shows it.
        let card = card_of(json!({"extensions": r#"{"__proto__":{"x":1},"b":2}"#}));
        assert!(card.ends_with(r#""extensions":{"b":2}}}"#), "{card}");
    }

    #[test]
    fn character_version_is_lifted_out_of_the_extensions() {
        let card = card_of(json!({"extensions": r#"{"character_version":"1.2","k":true}"#}));
        assert!(
            card.ends_with(r#""alternate_greetings":[],"character_version":"1.2","extensions":{"k":true}}}"#),
            "{card}"
        );
        // Even null, and the extensions go when nothing is left.
        let card = card_of(json!({"extensions": r#"{"character_version":null,"world_book_ids":[]}"#}));
        assert!(card.ends_with(r#""alternate_greetings":[],"character_version":null}}"#), "{card}");
    }

    #[test]
    fn extensions_that_are_not_an_object() {
        assert!(card_of(json!({"extensions": "[\"a\",\"b\"]"})).ends_with(r#""extensions":{"0":"a","1":"b"}}}"#));
        // `Object.entries` of text: one entry per UTF-16 unit.
        assert!(card_of(json!({"extensions": "\"hé\""})).ends_with(r#""extensions":{"0":"h","1":"é"}}}"#));
        for nothing in ["5", "true", "null", "\"\"", "{}"] {
            assert!(card_of(json!({"extensions": nothing})).ends_with(r#""alternate_greetings":[]}}"#), "{nothing}");
        }
    }

    #[test]
    fn the_attached_book_becomes_the_character_book() {
        let books = [book("b1", "Lore", &["one"])];
        let text = character_book_of(json!({"world_book_ids": ["b1"]}), &books);
        assert!(text.starts_with(r#"{"name":"Lore","description":"d","entries":[{"id":0,"#), "{text}");
        // The legacy single id.
        assert_eq!(character_book_of(json!({"world_book_id": "b1"}), &books), text);
    }

    #[test]
    fn world_book_ids_wins_over_world_book_id() {
        let books = [book("b1", "One", &["x"]), book("b2", "Two", &["y"])];
        let text = character_book_of(json!({"world_book_ids": ["b2"], "world_book_id": "b1"}), &books);
        assert!(text.starts_with(r#"{"name":"Two""#), "{text}");
        // An empty list attaches nothing, even with a legacy id beside it.
        assert_eq!(character_book_of(json!({"world_book_ids": [], "world_book_id": "b1"}), &books), "none");
        // Ids that are not text, or empty, are dropped; a list that is not a list is ignored.
        let text = character_book_of(json!({"world_book_ids": [5, "", null, "b1"]}), &books);
        assert!(text.starts_with(r#"{"name":"One""#), "{text}");
        let text = character_book_of(json!({"world_book_ids": "b2", "world_book_id": "b1"}), &books);
        assert!(text.starts_with(r#"{"name":"One""#), "{text}");
        assert_eq!(character_book_of(json!({"world_book_id": ""}), &books), "none");
    }

    #[test]
    fn several_attached_books_are_merged() {
        let books = [book("b1", "One", &["x"]), book("b2", "Two", &["y", ""])];
        let text = character_book_of(json!({"world_book_ids": ["b1", "missing", "b2"]}), &books);
        assert!(
            text.starts_with(
                r#"{"name":"Merged Lorebook (2 books)","description":"Merged from: One, Two","entries":["#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""comment":"[One] x""#)
                && text.contains(r#""comment":"[Two] y""#)
                && text.contains(r#""comment":"[Two]""#)
        );
    }

    #[test]
    fn the_kept_character_book_stands_in_when_books_give_none() {
        let kept = json!({"name": "kept", "entries": [{"keys": ["k"]}]});
        let books = [book("b1", "Empty", &[])];
        // No attachment, a missing single book, a merge without entries.
        assert_eq!(character_book_of(json!({"character_book": kept}), &books), kept.to_string());
        assert_eq!(
            character_book_of(json!({"character_book": kept, "world_book_ids": ["gone"]}), &books),
            kept.to_string()
        );
        assert_eq!(
            character_book_of(json!({"character_book": kept, "world_book_ids": ["b1", "b1"]}), &books),
            kept.to_string()
        );
        // An attached book wins over the kept one, even an empty one; a falsy kept one is none.
        assert!(character_book_of(json!({"character_book": kept, "world_book_ids": ["b1"]}), &books)
            .starts_with(r#"{"name":"Empty""#));
        assert_eq!(character_book_of(json!({"character_book": 0}), &books), "none");
        assert_eq!(character_book_of(json!({"character_book": "text"}), &books), r#""text""#);
    }
}
