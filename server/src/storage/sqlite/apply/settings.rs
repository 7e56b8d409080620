//! The `settings` table's rule (FORMAT §4): deep-merged, secret keys refused, and the
//! account's own `embeddingConfig` never changed by an archive (one restored into an
//! account without one is marked unconfirmed).

use super::*;

/// The setting that says where an account's texts and keys go to be embedded.
pub(super) const EMBEDDING_SETTING: &str = "embeddingConfig";

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

impl RowApplier {
    pub(super) fn apply_setting(
        &mut self,
        plan: &TablePlan,
        row: AlignedRow,
        counts: &mut TableCounts,
    ) -> DbResult<()> {
        let value_at = |name: &str| plan.names.iter().position(|n| n == name).and_then(|i| row[i].as_ref());
        let (Some(key), Some(value)) = (value_at("key").and_then(Value::as_str), value_at("value")) else {
            counts.rejected += 1;
            return Ok(());
        };
        if is_secret_setting_key(key) {
            counts.rejected += 1;
            return Ok(());
        }
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let updated_at = value_at("updated_at").and_then(Value::as_i64).unwrap_or(0);
        let existing: Option<String> = self
            .connection
            .prepare_cached("SELECT value FROM settings WHERE key = ?1 AND user_id = ?2")?
            .query_row([key, self.user_id.as_str()], |r| r.get(0))
            .optional()?;
        match existing {
            None => {
                self.connection
                    .prepare_cached("INSERT INTO settings (key, value, updated_at, user_id) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(rusqlite::params![key, text, updated_at, self.user_id])?;
                if key == EMBEDDING_SETTING {
                    // Kept as the archive has it, but switched off until the user confirms it.
                    crate::storage::sqlite::embedding_trust::mark_unconfirmed(
                        &self.connection,
                        &self.user_id,
                        crate::util::now(),
                    )?;
                }
                counts.imported += 1;
            }
            // The account's own connection stays exactly as it is: an archive never decides
            // where its keys or texts are sent, not even by filling a field it lacks.
            Some(_) if key == EMBEDDING_SETTING => counts.skipped += 1,
            Some(current) => {
                let (Ok(target), Ok(imported)) =
                    (serde_json::from_str::<Value>(&current), serde_json::from_str::<Value>(&text))
                else {
                    counts.skipped += 1;
                    return Ok(());
                };
                let merged = merge_setting(&target, &imported);
                if merged == target {
                    counts.skipped += 1;
                } else {
                    self.connection
                        .prepare_cached("UPDATE settings SET value = ?1 WHERE key = ?2 AND user_id = ?3")?
                        .execute(rusqlite::params![merged.to_string(), key, self.user_id])?;
                    counts.merged += 1;
                }
            }
        }
        Ok(())
    }

    /// The importer's embedding configuration setting, as JSON text.
    pub fn embedding_setting(&mut self) -> DbResult<Option<String>> {
        Ok(self
            .connection
            .query_row(
                "SELECT value FROM settings WHERE key = ?1 AND user_id = ?2",
                [EMBEDDING_SETTING, &self.user_id],
                |row| row.get(0),
            )
            .optional()?)
    }
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
}
