//! The `settings` table's statements; the rule itself (deep merge, secret keys refused,
//! the account's own `embeddingConfig` never changed) is `policy::settings`.

use super::*;
use crate::policy::settings::{decide_setting, stored_text, SettingAction, EMBEDDING_SETTING};

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
        let text = stored_text(value);
        let updated_at = value_at("updated_at").and_then(Value::as_i64).unwrap_or(0);
        let existing: Option<String> = self
            .connection
            .prepare_cached("SELECT value FROM settings WHERE key = ?1 AND user_id = ?2")?
            .query_row([key, self.user_id.as_str()], |r| r.get(0))
            .optional()?;
        match decide_setting(key, &text, existing.as_deref()) {
            SettingAction::Refuse => counts.rejected += 1,
            SettingAction::Insert { unconfirmed } => {
                self.connection
                    .prepare_cached("INSERT INTO settings (key, value, updated_at, user_id) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(rusqlite::params![key, text, updated_at, self.user_id])?;
                if unconfirmed {
                    // Kept as the archive has it, but switched off until the user confirms it.
                    crate::storage::sqlite::embedding_trust::mark_unconfirmed(
                        &self.connection,
                        &self.user_id,
                        crate::util::now(),
                    )?;
                }
                counts.imported += 1;
            }
            SettingAction::Keep => counts.skipped += 1,
            SettingAction::Update(merged) => {
                self.connection
                    .prepare_cached("UPDATE settings SET value = ?1 WHERE key = ?2 AND user_id = ?3")?
                    .execute(rusqlite::params![merged.to_string(), key, self.user_id])?;
                counts.merged += 1;
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
