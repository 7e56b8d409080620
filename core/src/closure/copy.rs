//! Restore as a copy: the picked items and what belongs to them ([`super::belongings`])
//! come back beside the account's version under ids of the importer's own, derived from
//! (importer, archive id, original id) — so a second run derives the same ids and finds
//! the copy there, and no id map is needed. Every reference among the copied rows, ids in
//! their JSON and text columns and in file names follow; the items' names get the backup's
//! date; what they only need (a chat's character, world books) keeps its id and links to
//! the account's row. The command line (on the server) and the Worker (in the uploader)
//! apply the same [`CopyPlan`].

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Closure;
use crate::calendar::UtcTime;
use crate::protocol::ItemKind;
use crate::registry::{id_text_columns, TableSpec, TABLES};

/// Archive id → the copy's id, and what the copied items' names get.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPlan {
    ids: HashMap<String, String>,
    suffix: String,
}

/// The id of `user_id`'s copy of `original` from archive `archive_id`: a UUID (version 8)
/// from the first 16 bytes of SHA-256 over the three, each prefixed with its length.
pub fn copy_id(user_id: &str, archive_id: &str, original: &str) -> String {
    let mut digest = Sha256::new();
    for part in ["lvbak copy", user_id, archive_id, original] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part.as_bytes());
    }
    let bytes: [u8; 16] = digest.finalize()[..16].try_into().unwrap_or_default();
    let mut text = uuid::Uuid::encode_buffer();
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().encode_lower(&mut text).to_owned()
}

impl CopyPlan {
    /// The copy of `belongings` (rows of an archive with id `archive_id`, exported at
    /// `exported_at`, Unix seconds) into `user_id`'s account.
    pub fn new(belongings: &Closure, user_id: &str, archive_id: &str, exported_at: Option<i64>) -> Self {
        let ids = TABLES
            .iter()
            .flat_map(|spec| belongings.ids(spec.name))
            .map(|id| (id.to_string(), copy_id(user_id, archive_id, id)))
            .collect();
        let suffix = match exported_at {
            Some(at) => {
                let day = UtcTime::from_unix(at);
                format!(" (backup {:04}-{:02}-{:02})", day.year, day.month, day.day)
            }
            None => " (from a backup)".to_string(),
        };
        Self { ids, suffix }
    }

    /// The copy's id of `id`, if it is copied.
    pub fn id_of(&self, id: &str) -> Option<&str> {
        self.ids.get(id).map(String::as_str)
    }

    /// `text` with every copied id in it replaced (`quoted_only`: ids that are whole JSON
    /// strings); `None` when none is.
    fn text(&self, text: &str, quoted_only: bool) -> Option<String> {
        let copied = |id: &str| Ok::<_, std::convert::Infallible>(self.ids.get(id).cloned());
        let Ok(rewritten) = crate::ids::rewrite_uuids(text, quoted_only, copied);
        rewritten
    }

    /// A row of `spec` as the copy writes it, given as its (column, value) pairs: copied
    /// ids replaced, in id columns and inside the table's JSON, text and file columns; a
    /// copied item's name marked with the backup's date.
    pub fn rewrite<'v>(&self, spec: &'static TableSpec, values: impl Iterator<Item = (&'v str, &'v mut Value)>) {
        let mut renamed = false;
        let mut name = None;
        for (column, value) in values {
            if column == "name" {
                name = Some(value);
                continue;
            }
            rewrite_value(self, spec, column, value, &mut renamed);
        }
        if let Some(value) = name {
            let mut ignored = false;
            rewrite_value(self, spec, "name", value, &mut ignored);
            if let (true, Value::String(name)) = (renamed, value) {
                name.push_str(&self.suffix);
            }
        }
    }

    /// A JSON row of `spec` (an archive line's object) as the copy writes it.
    pub fn rewrite_object(&self, spec: &'static TableSpec, row: &mut serde_json::Map<String, Value>) {
        self.rewrite(spec, row.iter_mut().map(|(column, value)| (column.as_str(), value)));
    }

    /// A file's name as the copy writes it (copied ids replaced).
    pub fn file_name(&self, name: &str) -> String {
        self.text(name, false).unwrap_or_else(|| name.to_string())
    }

    /// A vector row as the copy writes it: its source's copy.
    pub fn rewrite_vector(&self, row: &mut serde_json::Map<String, Value>) {
        if let Some(Value::String(source)) = row.get_mut("source_id") {
            if let Some(new_id) = self.ids.get(source.as_str()) {
                *source = new_id.clone();
            }
        }
    }
}

/// One value of a row the copy rewrites; `renamed` turns on when it is an item's own id.
fn rewrite_value(plan: &CopyPlan, spec: &'static TableSpec, column: &str, value: &mut Value, renamed: &mut bool) {
    let Value::String(current) = value else { return };
    if let Some(new_id) = plan.ids.get(current.as_str()) {
        *renamed |= column == "id" && ItemKind::of_table(spec.name).is_some();
        *current = new_id.clone();
        return;
    }
    let quoting = id_text_columns(spec).find(|(name, _)| *name == column);
    if let Some(rewritten) = quoting.and_then(|(_, quoted_only)| plan.text(current, quoted_only)) {
        *current = rewritten;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::table_spec;

    #[test]
    fn copied_ids_and_names_change_and_needed_ids_stay() {
        let (chat, character) = ("33333333-3333-4333-8333-333333333333", "11111111-1111-4111-8111-111111111111");
        let mut belongings = Closure::default();
        belongings.rows.entry("chats").or_default().insert(chat.to_string());
        let plan = CopyPlan::new(&belongings, "user", "archive", Some(86_400 * 365));
        let copy = copy_id("user", "archive", chat);
        assert_eq!(plan.id_of(chat), Some(copy.as_str()));
        assert_ne!(copy_id("other", "archive", chat), copy, "each importer has copies of its own");
        let mut row: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
            "id": chat, "character_id": character, "name": "Harbour night",
            "metadata": format!("{{\"branched_from\":\"{chat}\"}}"),
        }))
        .unwrap();
        plan.rewrite_object(table_spec("chats").unwrap(), &mut row);
        assert_eq!(row["id"], copy.as_str());
        assert_eq!(row["character_id"], character, "what it only needs keeps its id");
        assert_eq!(row["name"], "Harbour night (backup 1971-01-01)");
        assert_eq!(plan.file_name(&format!("{chat}.png")), format!("{copy}.png"));
    }
}
