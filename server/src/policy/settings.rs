//! The `settings` table's rule (FORMAT §4): a setting the account lacks is added, one it
//! has is deep-merged with the archive's (the account's choices win), secret keys are
//! refused, and the account's own `embeddingConfig` is never changed by an archive (one
//! restored into an account without one is kept switched off until the user confirms it).

use std::collections::HashSet;

use lvbak_core::registry::is_secret_setting_key;
use serde_json::{Map, Value};

/// The setting that says where an account's texts and keys go to be embedded.
pub(crate) const EMBEDDING_SETTING: &str = "embeddingConfig";

/// What an import does with one setting row of the archive.
#[derive(Debug, PartialEq)]
pub(crate) enum SettingAction {
    /// Not written: no key or value, or a secret's key.
    Refuse,
    /// The account lacks it: added as it is; `unconfirmed` when it is the embedding
    /// configuration, which stays switched off until its user saves it.
    Insert { unconfirmed: bool },
    /// The account's version stays as it is.
    Keep,
    /// The account's version becomes this merge.
    Update(Value),
}

/// A setting's value as stored: a JSON string's text, or any other JSON value's text.
pub(crate) fn stored_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The rule for a setting `key` whose archive value is `text`, against the account's own
/// value (`existing`, its stored text) if it has one.
pub(crate) fn decide_setting(key: &str, text: &str, existing: Option<&str>) -> SettingAction {
    if is_secret_setting_key(key) {
        return SettingAction::Refuse;
    }
    let Some(current) = existing else {
        return SettingAction::Insert { unconfirmed: key == EMBEDDING_SETTING };
    };
    // The account's own connection stays exactly as it is: an archive never decides where
    // its keys or texts are sent, not even by filling a field it lacks.
    if key == EMBEDDING_SETTING {
        return SettingAction::Keep;
    }
    let (Ok(target), Ok(imported)) = (serde_json::from_str::<Value>(current), serde_json::from_str::<Value>(text))
    else {
        return SettingAction::Keep;
    };
    let merged = merge_setting(&target, &imported);
    if merged == target {
        SettingAction::Keep
    } else {
        SettingAction::Update(merged)
    }
}

/// Settings deep merge (FORMAT §4): the target's top-level fields win unless null or
/// absent; arrays of objects with string ids on the imported side are unioned by id,
/// target items first. Non-object values: the target wins.
pub fn merge_setting(target: &Value, imported: &Value) -> Value {
    let (Value::Object(target_fields), Value::Object(imported_fields)) = (target, imported) else {
        return target.clone();
    };
    let mut merged: Map<String, Value> = target_fields.clone();
    for (key, incoming) in imported_fields {
        match merged.get(key) {
            None | Some(Value::Null) => {
                merged.insert(key.clone(), incoming.clone());
            }
            Some(Value::Array(existing)) => {
                let incoming_items = match incoming {
                    Value::Array(items)
                        if !items.is_empty() && items.iter().all(|i| i.get("id").is_some_and(Value::is_string)) =>
                    {
                        items
                    }
                    _ => continue,
                };
                let known: HashSet<&str> =
                    existing.iter().filter_map(|i| i.get("id").and_then(Value::as_str)).collect();
                let mut union = existing.clone();
                union.extend(
                    incoming_items
                        .iter()
                        .filter(|i| !i.get("id").and_then(Value::as_str).is_some_and(|id| known.contains(id)))
                        .cloned(),
                );
                merged.insert(key.clone(), Value::Array(union));
            }
            Some(_) => {}
        }
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_keeps_the_targets_choices_and_unions_lists() {
        let target = json!({"mode": "dark", "accent": null, "presets": [{"id": "a", "v": 1}]});
        let imported =
            json!({"mode": "light", "accent": "#fff", "font": 14, "presets": [{"id": "a", "v": 2}, {"id": "b"}]});
        assert_eq!(
            merge_setting(&target, &imported),
            json!({"mode": "dark", "accent": "#fff", "font": 14, "presets": [{"id": "a", "v": 1}, {"id": "b"}]})
        );
        assert_eq!(merge_setting(&json!("en"), &json!("fr")), json!("en"));
    }

    #[test]
    fn a_setting_is_added_merged_kept_or_refused() {
        assert_eq!(decide_setting("theme", r#"{"a":1}"#, None), SettingAction::Insert { unconfirmed: false });
        assert_eq!(decide_setting(EMBEDDING_SETTING, "{}", None), SettingAction::Insert { unconfirmed: true });
        assert_eq!(decide_setting(EMBEDDING_SETTING, r#"{"apiUrl":"x"}"#, Some("{}")), SettingAction::Keep);
        assert_eq!(decide_setting("theme", r#"{"a":2}"#, Some(r#"{"a":1}"#)), SettingAction::Keep);
        assert_eq!(
            decide_setting("theme", r#"{"a":2,"b":3}"#, Some(r#"{"a":1}"#)),
            SettingAction::Update(json!({"a": 1, "b": 3}))
        );
        assert_eq!(decide_setting("theme", "not json", Some(r#"{"a":1}"#)), SettingAction::Keep);
        assert_eq!(decide_setting("connection_c1_api_key", "\"k\"", None), SettingAction::Refuse);
    }
}
