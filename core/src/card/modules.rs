//! What Lumiverse 1.1's CHARX export reads out of a character besides its card, as plain
//! rules: the expression config and groups, alternate avatars and landing layers (with
//! `normalizeLandingPerspectiveLayers`), archive names (`sanitizeArchiveName`,
//! `path.extname`), NSFW labels, the world books in Lumiverse's own format
//! (`exportWorldBook(…, "lumiverse")`) and the bound regex scripts as it bundles them.

use super::book::{entry_extensions, parse_json_column, Book};
use super::js::{entries_of, property};
use super::js::{js_trim, JsObject, JsValue};
use super::stored::StoredRow;
use crate::error::{FormatError, Result};

/// A name inside the archive (`sanitizeArchiveName`): every UTF-16 unit outside
/// `[a-zA-Z0-9_\-. ]` becomes `_` (a character outside the BMP two of them), spaces trimmed,
/// `unnamed` when nothing is left.
pub(crate) fn archive_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .flat_map(|c| {
            let kept = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ');
            let units = c.len_utf16();
            std::iter::repeat_n(if kept { c } else { '_' }, if kept { 1 } else { units })
        })
        .collect();
    match js_trim(&replaced) {
        "" => "unnamed".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// An id written into an entry name as it is, unless it could leave its folder or is not
/// plain text: then as [`archive_name`] writes names (Lumiverse writes it as it is).
pub(crate) fn id_in_name(id: &str) -> String {
    if id.chars().any(|c| matches!(c, '/' | '\\') || c.is_control()) {
        archive_name(id)
    } else {
        id.to_string()
    }
}

/// `String(value)` for what a parsed JSON value can be (`undefined` for none).
pub(crate) fn js_string(value: Option<&JsValue>) -> String {
    match value {
        None => "undefined".into(),
        Some(JsValue::Null) => "null".into(),
        Some(JsValue::Bool(flag)) => flag.to_string(),
        Some(JsValue::Number(number)) => crate::js_number::js_number(*number),
        Some(JsValue::String(text)) => text.clone(),
        Some(JsValue::Array(items)) => items
            .iter()
            .map(|item| match item {
                JsValue::Null => String::new(),
                other => js_string(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(JsValue::Object(_)) => "[object Object]".into(),
    }
}

/// `path.extname(filename) || ".png"`: the last `.` and what follows it in the last path
/// segment, unless that dot begins the segment.
pub(crate) fn extension(filename: &str) -> String {
    let base = filename.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    match base.rfind('.') {
        Some(at) if at > 0 => base[at..].to_string(),
        _ => ".png".to_string(),
    }
}

/// Words whose presence in an expression label marks it NSFW (`NSFW_CONTENT_KEYWORDS`).
const NSFW_KEYWORDS: [&str; 38] = [
    "cumshot",
    "creampie",
    "position",
    "missionary",
    "cowgirl",
    "doggystyle",
    "fellatio",
    "blowjob",
    "footjob",
    "paizuri",
    "handjob",
    "titjob",
    "boobjob",
    "masturbation",
    "fingering",
    "congress",
    "straddle",
    "nelson",
    "spooning",
    "mating press",
    "riding",
    "penetrat",
    "thrust",
    "nude",
    "naked",
    "topless",
    "bottomless",
    "undress",
    "showing armpit",
    "showing nude",
    "breast caress",
    "nsfw",
    "lewd",
    "sex",
    "orgasm",
    "anal",
    "vaginal",
    "oral",
];

pub(crate) fn is_nsfw_label(label: &str) -> bool {
    let lower = label.to_lowercase();
    NSFW_KEYWORDS.iter().any(|keyword| lower.contains(keyword))
}

/// `Object.entries(value)`, which throws for null and undefined.
pub(crate) fn object_entries(value: Option<&JsValue>, what: &str) -> Result<Vec<(String, JsValue)>> {
    match value {
        None | Some(JsValue::Null) => Err(FormatError::BadCardData {
            what: what.to_string(),
            detail: "a list Lumiverse reads is null, and its export fails on it".into(),
        }),
        Some(value) => Ok(entries_of(value)),
    }
}

/// The expression config (`getExpressionConfig`): `{enabled, defaultExpression,
/// mappings}` from `extensions.expressions`, defaults when it is missing.
pub(crate) struct ExpressionConfig {
    pub enabled: bool,
    pub default_expression: JsValue,
    pub mappings: Vec<(String, JsValue)>,
}

pub(crate) fn expression_config(extensions: &JsValue) -> ExpressionConfig {
    let raw = property(extensions, "expressions").filter(|raw| raw.truthy());
    let Some(raw) = raw else {
        return ExpressionConfig { enabled: false, default_expression: JsValue::from(""), mappings: Vec::new() };
    };
    // `raw.x ?? default`.
    let field = |key: &str| property(raw, key).filter(|v| **v != JsValue::Null);
    ExpressionConfig {
        enabled: field("enabled").is_some_and(JsValue::truthy),
        default_expression: field("defaultExpression").cloned().unwrap_or_else(|| JsValue::from("")),
        mappings: field("mappings").map(entries_of).unwrap_or_default(),
    }
}

/// The expression groups (`getExpressionGroups`): `extensions.expression_groups` when it is
/// an object (or array) with at least one key.
pub(crate) fn expression_groups(extensions: &JsValue) -> Vec<(String, JsValue)> {
    match property(extensions, "expression_groups") {
        Some(groups @ (JsValue::Object(_) | JsValue::Array(_))) => entries_of(groups),
        _ => Vec::new(),
    }
}

/// `extensions.alternate_fields`, when it is an object one of whose values is a non-empty
/// array: carried whole.
pub(crate) fn alternate_fields(extensions: &JsValue) -> Option<JsValue> {
    let fields = property(extensions, "alternate_fields")?;
    if !matches!(fields, JsValue::Object(_) | JsValue::Array(_)) {
        return None;
    }
    let any = entries_of(fields).iter().any(|(_, list)| matches!(list, JsValue::Array(items) if !items.is_empty()));
    any.then(|| fields.clone())
}

/// One alternate avatar: its id (as written; `None` when it has none), label and image.
#[derive(Debug)]
pub(crate) struct AlternateAvatar {
    pub id: Option<JsValue>,
    pub label: JsValue,
    pub image_id: JsValue,
}

/// `extensions.alternate_avatars` entries that have an image and a label.
pub(crate) fn alternate_avatars(extensions: &JsValue, what: &str) -> Result<Vec<AlternateAvatar>> {
    let Some(JsValue::Array(items)) = property(extensions, "alternate_avatars") else { return Ok(Vec::new()) };
    let mut avatars = Vec::new();
    for item in items {
        if *item == JsValue::Null {
            return Err(FormatError::BadCardData {
                what: what.to_string(),
                detail: "an alternate avatar is null, and Lumiverse's export fails on it".into(),
            });
        }
        let (Some(image_id), Some(label)) = (property(item, "image_id"), property(item, "label")) else { continue };
        if image_id.truthy() && label.truthy() {
            avatars.push(AlternateAvatar {
                id: property(item, "id").cloned(),
                label: label.clone(),
                image_id: image_id.clone(),
            });
        }
    }
    Ok(avatars)
}

/// One landing layer, normalized.
#[derive(Debug, PartialEq)]
pub(crate) struct LandingLayer {
    pub id: String,
    pub image_id: String,
    pub label: Option<String>,
    pub intensity: f64,
}

/// `Math.round`: halves toward +∞.
fn js_round(value: f64) -> f64 {
    let floor = value.floor();
    if value - floor >= 0.5 {
        floor + 1.0
    } else {
        floor
    }
}

fn clamp_intensity(value: Option<&JsValue>) -> f64 {
    let number = match value {
        Some(JsValue::Number(n)) if n.is_finite() => *n,
        _ => 0.6,
    };
    (js_round(number * 100.0) / 100.0).clamp(0.0, 1.5)
}

/// The first `units` UTF-16 units of `text` (`slice(0, units)`); a pair the cut would split
/// is left out, as Rust text cannot hold half of one.
fn utf16_prefix(text: &str, units: usize) -> String {
    let mut taken = 0;
    text.chars()
        .take_while(|c| {
            taken += c.len_utf16();
            taken <= units
        })
        .collect()
}

/// The landing layers (`normalizeLandingPerspectiveLayers`): from an array, objects with
/// a text `image_id`, first of each image, at most five, id trimmed (a layer without one
/// gets `layer-<n>` by its place, where Lumiverse draws a random UUID), label trimmed to 80
/// units, intensity rounded and clamped; from the legacy object, its `background`,
/// `framing` and `subject`.
pub(crate) fn landing_layers(extensions: &JsValue) -> Vec<LandingLayer> {
    let value = property(extensions, "landing_perspective_layers");
    if let Some(JsValue::Array(items)) = value {
        let mut layers: Vec<LandingLayer> = Vec::new();
        for item in items {
            let Some(JsValue::String(image_id)) = property(item, "image_id") else { continue };
            if image_id.is_empty() || layers.iter().any(|layer| &layer.image_id == image_id) {
                continue;
            }
            let id = match property(item, "id") {
                Some(JsValue::String(id)) if !js_trim(id).is_empty() => js_trim(id).to_string(),
                _ => format!("layer-{}", layers.len()),
            };
            let label = match property(item, "label") {
                Some(JsValue::String(label)) if !js_trim(label).is_empty() => Some(utf16_prefix(js_trim(label), 80)),
                _ => None,
            };
            layers.push(LandingLayer {
                id,
                image_id: image_id.clone(),
                label,
                intensity: clamp_intensity(property(item, "intensity")),
            });
            if layers.len() >= 5 {
                break;
            }
        }
        return layers;
    }
    let legacy = value.filter(|v| matches!(v, JsValue::Object(_)));
    [("background", "Background", 0.15), ("framing", "Framing", 1.0), ("subject", "Subject", 0.6)]
        .into_iter()
        .filter_map(|(key, label, intensity)| {
            let Some(JsValue::String(image_id)) = legacy.and_then(|l| property(l, key)) else { return None };
            (!image_id.is_empty()).then(|| LandingLayer {
                id: key.to_string(),
                image_id: image_id.clone(),
                label: Some(label.to_string()),
                intensity,
            })
        })
        .collect()
}

/// Columns of an entry that Lumiverse's own world-book format leaves out.
const ENTRY_COLUMNS_LEFT_OUT: [&str; 7] = [
    "id",
    "world_book_id",
    "vector_index_status",
    "vector_indexed_at",
    "vector_index_error",
    "created_at",
    "updated_at",
];

/// Entry columns read as booleans (`rowToEntry`).
const ENTRY_FLAGS: [&str; 12] = [
    "selective",
    "constant",
    "disabled",
    "group_override",
    "case_sensitive",
    "match_whole_words",
    "use_regex",
    "prevent_recursion",
    "exclude_recursion",
    "delay_until_recursion",
    "use_probability",
    "vectorized",
];

/// One entry as `rowToEntry` reads it, without the columns the format leaves out.
fn lumiverse_entry(entry: &StoredRow) -> Result<JsValue> {
    let managed = entry_extensions(entry)?;
    let mut out = JsObject::new();
    for (column, value) in entry.columns() {
        if ENTRY_COLUMNS_LEFT_OUT.contains(&column) {
            continue;
        }
        let value = match column {
            "key" | "keysecondary" => parse_json_column(entry, "world_book_entries", column)?,
            "extensions" => managed.rest.clone(),
            // `row.x || null`
            "role" | "automation_id" => Some(value.clone()).filter(JsValue::truthy).unwrap_or(JsValue::Null),
            flag if ENTRY_FLAGS.contains(&flag) => JsValue::Bool(value.truthy()),
            _ => value.clone(),
        };
        out.insert(column, value);
    }
    let text = |value: Option<String>| value.map_or(JsValue::Null, JsValue::from);
    out.insert("outlet_name", text(managed.outlet_name));
    out.insert("wi_marker", text(managed.wi_marker));
    out.insert("wi_marker_side", text(managed.wi_marker_side.map(str::to_string)));
    Ok(JsValue::Object(out))
}

/// A world book in Lumiverse's own format (`exportLumiverse`), stamped `exported_at`.
pub(crate) fn lumiverse_world_book(book: &Book, exported_at: i64) -> Result<JsValue> {
    let mut out = JsObject::new();
    out.insert("version", JsValue::Number(1.0));
    out.insert("type", JsValue::from("lumiverse_world_book"));
    out.insert("name", book.row.get("name").clone());
    out.insert("description", book.row.get("description").clone());
    out.insert("metadata", parse_json_column(&book.row, "world_books", "metadata")?);
    let entries = book.sorted_entries().into_iter().map(lumiverse_entry).collect::<Result<Vec<_>>>()?;
    out.insert("entries", JsValue::Array(entries));
    out.insert("exported_at", JsValue::Number(exported_at as f64));
    Ok(JsValue::Object(out))
}

/// A regex script bound to the character, as the CHARX bundles it (unbound: `scope_id`
/// null, `metadata.source` `charx_bundle`).
pub(crate) fn bundled_script(script: &StoredRow) -> Result<JsValue> {
    let json = |column: &str| parse_json_column(script, "regex_scripts", column);
    // `target`: its JSON as an array (a single value wrapped), else `[target || "response"]`.
    let target = match script.text("target").map(JsValue::parse) {
        Some(Ok(JsValue::Array(items))) => JsValue::Array(items),
        Some(Ok(single)) => JsValue::Array(vec![single]),
        _ => {
            let raw = script.get("target");
            JsValue::Array(vec![if raw.truthy() { raw.clone() } else { JsValue::from("response") }])
        }
    };
    let metadata = json("metadata")?;
    let mut bundled_metadata: JsObject =
        if metadata.truthy() { entries_of(&metadata).into_iter().collect() } else { JsObject::new() };
    bundled_metadata.insert("source", JsValue::from("charx_bundle"));
    let mut out = JsObject::new();
    for column in ["name", "find_regex", "replace_string", "flags"] {
        out.insert(column, script.get(column).clone());
    }
    out.insert("placement", json("placement")?);
    out.insert("scope", script.get("scope").clone());
    out.insert("scope_id", JsValue::Null);
    out.insert("target", target);
    out.insert("min_depth", script.get("min_depth").clone());
    out.insert("max_depth", script.get("max_depth").clone());
    out.insert("trim_strings", json("trim_strings")?);
    out.insert("run_on_edit", JsValue::Bool(script.get("run_on_edit").truthy()));
    out.insert("substitute_macros", script.get("substitute_macros").clone());
    out.insert("disabled", JsValue::Bool(script.get("disabled").truthy()));
    out.insert("sort_order", script.get("sort_order").clone());
    out.insert("description", script.get("description").clone());
    out.insert("metadata", JsValue::Object(bundled_metadata));
    Ok(JsValue::Object(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::card::stored::{stored, REGEX_SCRIPTS, WORLD_BOOKS, WORLD_BOOK_ENTRIES};

    fn parse(text: &str) -> JsValue {
        JsValue::parse(text).unwrap()
    }

    #[test]
    fn archive_names_replace_each_utf16_unit_outside_the_safe_set() {
        assert_eq!(archive_name("rain 🌧/x"), "rain ___x");
        assert_eq!(archive_name("Group A"), "Group A");
        assert_eq!(archive_name("  é.png "), "_.png");
        assert_eq!(archive_name("   "), "unnamed");
        assert_eq!(archive_name(""), "unnamed");
        assert_eq!(id_in_name("g-1"), "g-1");
        assert_eq!(id_in_name("../../etc/x"), ".._.._etc_x");
        assert_eq!(id_in_name("a\\b"), "a_b");
    }

    #[test]
    fn extensions_are_node_extnames_with_png_for_none() {
        for (filename, ext) in [
            ("a.png", ".png"),
            ("a.b.JPG", ".JPG"),
            ("noext", ".png"),
            (".hidden", ".png"),
            ("a.", "."),
            ("dir.d/x", ".png"),
        ] {
            assert_eq!(extension(filename), ext, "{filename}");
        }
    }

    #[test]
    fn nsfw_labels_contain_a_keyword_in_any_case() {
        assert!(is_nsfw_label("Nude sad") && is_nsfw_label("LEWD look") && is_nsfw_label("moral"));
        assert!(!is_nsfw_label("joy") && !is_nsfw_label(""));
    }

    #[test]
    fn expression_config_and_groups_with_their_defaults() {
        let config = expression_config(&parse(
            r#"{"expressions":{"enabled":1,"defaultExpression":null,"mappings":{"joy":"i1","b":"i2"}}}"#,
        ));
        assert!(config.enabled);
        assert_eq!(config.default_expression, JsValue::from(""));
        assert_eq!(config.mappings, [("joy".to_string(), JsValue::from("i1")), ("b".to_string(), JsValue::from("i2"))]);
        for none in [r#"{}"#, r#"{"expressions":null}"#, r#"{"expressions":{"mappings":5}}"#, "[]"] {
            let config = expression_config(&parse(none));
            assert!(!config.enabled && config.mappings.is_empty(), "{none}");
        }
        assert_eq!(expression_groups(&parse(r#"{"expression_groups":{"A":{"x":"i"}}}"#)).len(), 1);
        assert!(expression_groups(&parse(r#"{"expression_groups":"text"}"#)).is_empty());
        // A group that is null makes Lumiverse's export throw.
        assert_eq!(object_entries(Some(&JsValue::Null), "c").unwrap_err().code(), "bad_card_data");
        assert_eq!(object_entries(Some(&JsValue::Number(1.0)), "c").unwrap(), []);
    }

    #[test]
    fn alternate_fields_go_whole_when_a_list_has_items() {
        let extensions = parse(r#"{"alternate_fields":{"a":[],"b":[{"id":"x"}]}}"#);
        assert_eq!(alternate_fields(&extensions).unwrap().to_json(), r#"{"a":[],"b":[{"id":"x"}]}"#);
        assert_eq!(alternate_fields(&parse(r#"{"alternate_fields":{"a":[],"b":"x"}}"#)), None);
        assert_eq!(alternate_fields(&parse(r#"{"alternate_fields":true}"#)), None);
    }

    #[test]
    fn alternate_avatars_need_an_image_and_a_label() {
        let extensions = parse(
            r#"{"alternate_avatars":[{"id":"a","label":"A","image_id":"i"},{"label":"B","image_id":"j"},{"id":"c","label":"","image_id":"k"},{"id":"d","label":"D"}]}"#,
        );
        let avatars = alternate_avatars(&extensions, "c").unwrap();
        assert_eq!(avatars.iter().map(|a| js_string(a.id.as_ref())).collect::<Vec<_>>(), ["a", "undefined"]);
        let error = alternate_avatars(&parse(r#"{"alternate_avatars":[null]}"#), "c").unwrap_err();
        assert_eq!(error.code(), "bad_card_data");
    }

    #[test]
    fn landing_layers_are_normalized_as_lumiverse_normalizes_them() {
        let long = "é".repeat(90);
        let text = format!(
            r#"{{"landing_perspective_layers":[{{"id":" a ","image_id":"i1","label":" L ","intensity":0.125}},{{"image_id":"i1"}},
            {{"image_id":"i2","intensity":-3}},{{"id":"c","image_id":"i3","label":"{long}","intensity":"0.9"}},5,{{"image_id":7}},
            {{"id":"d","image_id":"i4","intensity":9}},{{"id":"e","image_id":"i5"}},{{"id":"f","image_id":"i6"}}]}}"#
        );
        let layers = landing_layers(&parse(&text));
        let summary: Vec<(&str, &str, Option<usize>, f64)> = layers
            .iter()
            .map(|l| (l.id.as_str(), l.image_id.as_str(), l.label.as_ref().map(|s| s.chars().count()), l.intensity))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", "i1", Some(1), 0.13),
                ("layer-1", "i2", None, 0.0),
                ("c", "i3", Some(80), 0.6),
                ("d", "i4", None, 1.5),
                ("e", "i5", None, 0.6)
            ]
        );
        let legacy =
            landing_layers(&parse(r#"{"landing_perspective_layers":{"subject":"s","background":"b","framing":""}}"#));
        let summary: Vec<(&str, &str, f64)> =
            legacy.iter().map(|l| (l.id.as_str(), l.label.as_deref().unwrap(), l.intensity)).collect();
        assert_eq!(summary, [("background", "Background", 0.15), ("subject", "Subject", 0.6)]);
        assert!(landing_layers(&parse("{}")).is_empty());
    }

    #[test]
    fn a_lumiverse_world_book_keeps_the_entry_columns_in_schema_order() {
        let entry = stored(
            &WORLD_BOOK_ENTRIES,
            json!({"id": "e", "world_book_id": "b", "uid": "u", "role": "", "disabled": 1, "extensions": r#"{"wiMarker":"scenario","x":1}"#}),
        );
        let book = Book {
            row: stored(&WORLD_BOOKS, json!({"id": "b", "name": "B", "metadata": "{\"m\":1}"})),
            entries: vec![entry],
        };
        let text = lumiverse_world_book(&book, 42).unwrap().to_json();
        assert_eq!(
            text,
            concat!(
                r#"{"version":1,"type":"lumiverse_world_book","name":"B","description":"","metadata":{"m":1},"entries":[{"#,
                r#""uid":"u","key":[],"keysecondary":[],"content":"","comment":"","position":0,"depth":4,"role":null,"#,
                r#""order_value":100,"selective":false,"constant":false,"disabled":true,"group_name":"","#,
                r#""group_override":false,"group_weight":100,"probability":100,"scan_depth":null,"case_sensitive":false,"#,
                r#""match_whole_words":false,"automation_id":null,"extensions":{"x":1},"use_regex":false,"#,
                r#""prevent_recursion":false,"exclude_recursion":false,"delay_until_recursion":false,"priority":10,"#,
                r#""sticky":0,"cooldown":0,"delay":0,"selective_logic":0,"use_probability":true,"vectorized":false,"#,
                r#""outlet_name":null,"wi_marker":"scenario","wi_marker_side":null}],"exported_at":42}"#
            )
        );
    }

    #[test]
    fn a_bundled_script_is_unbound_and_marked() {
        let script = |fields: serde_json::Value| {
            let mut row = json!({"id": "r", "name": "N", "find_regex": "/a/", "scope": "character", "scope_id": "c"});
            row.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
            bundled_script(&stored(&REGEX_SCRIPTS, row)).unwrap().to_json()
        };
        assert_eq!(
            script(json!({})),
            concat!(
                r#"{"name":"N","find_regex":"/a/","replace_string":"","flags":"gi","placement":["ai_output"],"#,
                r#""scope":"character","scope_id":null,"target":["response"],"min_depth":null,"max_depth":null,"#,
                r#""trim_strings":[],"run_on_edit":false,"substitute_macros":"none","disabled":false,"sort_order":0,"#,
                r#""description":"","metadata":{"source":"charx_bundle"}}"#
            )
        );
        // `target`: a single value wrapped, text that is not JSON kept whole.
        assert!(script(json!({"target": "\"prompt\""})).contains(r#""target":["prompt"]"#));
        assert!(script(json!({"target": "prompt"})).contains(r#""target":["prompt"]"#));
        assert!(script(json!({"target": ""})).contains(r#""target":["response"]"#));
        // The metadata's own keys first, `source` replaced in its place.
        assert!(script(json!({"metadata": r#"{"source":"x","k":1}"#}))
            .ends_with(r#""metadata":{"source":"charx_bundle","k":1}}"#));
        assert!(script(json!({"metadata": "null"})).ends_with(r#""metadata":{"source":"charx_bundle"}}"#));
        let error = bundled_script(&stored(
            &REGEX_SCRIPTS,
            json!({"id": "r", "name": "N", "find_regex": "x", "placement": "["}),
        ))
        .unwrap_err();
        assert_eq!(error.code(), "bad_card_data");
    }
}
