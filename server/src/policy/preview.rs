//! What a restore would do with each archive row, decided without writing anything (the
//! restore preview, `lvbak import --dry-run`). A row goes through the same checks as in an
//! import (`rows::check_row`), then merge by id decides: a free id is `New`, the
//! importer's own row is `Unchanged` or `Differs` by its content hash
//! (`lvbak_core::row_hash`), another account's id is `Remapped` — or, when an earlier
//! import already made the importer's copy of it, compared with that copy. Rows the checks
//! refuse are `Refused`.
//!
//! Nothing is inserted, so the [`PreviewLedger`] stands in for the rows the restore would
//! have added by then: a later row of the archive naming one of them (a message of a new
//! chat) is checked as the import would check it.

use std::collections::{HashMap, HashSet};

use lvbak_core::protocol::RestoreState;

use super::ownership::{merge, Merge, Owner};

/// The rows a restore would have added by now, as the preview goes through the archive.
#[derive(Debug, Default)]
pub(crate) struct PreviewLedger {
    /// `(table, id)` of rows the restore would insert, and the stand-ins of its copies.
    added: HashSet<(&'static str, Box<str>)>,
    /// `(table, archive id)` → the stand-in id of the copy the restore would make.
    copies: HashMap<(&'static str, Box<str>), String>,
    /// Archive id → the stand-in of its first copy, whatever its table (ids in text and
    /// file names are looked up so, once per id found).
    any_table: HashMap<Box<str>, String>,
}

impl PreviewLedger {
    /// Whether the restore would have added row `id` of `table` by now.
    pub(crate) fn added(&self, table: &'static str, id: &str) -> bool {
        self.added.contains(&(table, id.into()))
    }

    pub(crate) fn add(&mut self, table: &'static str, id: &str) {
        self.added.insert((table, id.into()));
    }

    /// Notes that row `original` of `table` would be copied under a new id; answers the id
    /// standing in for it (not an id's shape: no stored text can name it).
    pub(crate) fn copy(&mut self, table: &'static str, original: &str) -> String {
        let stand_in = format!("copy-of:{table}:{original}");
        self.added.insert((table, stand_in.as_str().into()));
        self.copies.insert((table, original.into()), stand_in.clone());
        self.any_table.entry(original.into()).or_insert_with(|| stand_in.clone());
        stand_in
    }

    /// The stand-in id of the copy of `original` (of `table`, or of any table), if the
    /// restore would make one.
    pub(crate) fn copy_of(&self, table: Option<&'static str>, original: &str) -> Option<String> {
        match table {
            Some(table) => self.copies.get(&(table, original.into())).cloned(),
            None => self.any_table.get(original).cloned(),
        }
    }

    pub(crate) fn any_copies(&self) -> bool {
        !self.copies.is_empty()
    }

    /// The entries the ledger holds (what bounds a preview's memory).
    pub(crate) fn len(&self) -> usize {
        self.added.len() + self.copies.len() + self.any_table.len()
    }
}

/// What a restore would do with one row, and for a row that differs, the columns whose
/// values differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowVerdict {
    pub(crate) state: RestoreState,
    pub(crate) changed: Vec<String>,
}

/// What the account holds where an archive row would go, as merge by id finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing (the id is free), or a row the restore would have added itself.
    Nothing,
    /// The importer's row, the same as the archive's or not.
    Own { same: bool },
    /// Another account's row; `copy` is the importer's copy of it from an earlier import,
    /// the same as the archive's row or not.
    Someone { copy: Option<bool> },
}

/// The state of a row the checks accepted, by what merge by id finds.
pub(crate) fn state_of(found: Found) -> RestoreState {
    let owner = match found {
        Found::Nothing => None,
        Found::Own { .. } => Some(Owner::Importer),
        Found::Someone { .. } => Some(Owner::Someone),
    };
    match (merge(owner), found) {
        (Merge::Insert, _) => RestoreState::New,
        (Merge::Skip, Found::Own { same: true }) | (Merge::Copy, Found::Someone { copy: Some(true) }) => {
            RestoreState::Unchanged
        }
        (Merge::Copy, Found::Someone { copy: None }) => RestoreState::Remapped,
        _ => RestoreState::Differs,
    }
}

/// A chat's state from its own row's and its messages' states: a chat the account has
/// differs when any of its messages is not there as the archive has it.
pub(crate) fn chat_state(chat: RestoreState, messages: impl IntoIterator<Item = RestoreState>) -> RestoreState {
    match chat {
        RestoreState::Unchanged | RestoreState::Differs => {
            if messages.into_iter().any(|state| state != RestoreState::Unchanged) {
                RestoreState::Differs
            } else {
                chat
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestoreState::*;

    #[test]
    fn merge_by_id_decides_the_state() {
        assert_eq!(state_of(Found::Nothing), New);
        assert_eq!(state_of(Found::Own { same: true }), Unchanged);
        assert_eq!(state_of(Found::Own { same: false }), Differs);
        assert_eq!(state_of(Found::Someone { copy: None }), Remapped);
        assert_eq!(state_of(Found::Someone { copy: Some(true) }), Unchanged);
        assert_eq!(state_of(Found::Someone { copy: Some(false) }), Differs);
    }

    #[test]
    fn a_chat_differs_when_a_message_does() {
        assert_eq!(chat_state(Unchanged, [Unchanged, Unchanged]), Unchanged);
        assert_eq!(chat_state(Unchanged, [Unchanged, New]), Differs);
        assert_eq!(chat_state(Unchanged, [Differs]), Differs);
        assert_eq!(chat_state(Differs, []), Differs);
        assert_eq!(chat_state(New, [New]), New);
        assert_eq!(chat_state(Remapped, [Remapped]), Remapped);
    }

    #[test]
    fn the_ledger_stands_in_for_rows_and_copies() {
        let mut ledger = PreviewLedger::default();
        assert!(!ledger.any_copies() && !ledger.added("chats", "c1"));
        ledger.add("chats", "c1");
        assert!(ledger.added("chats", "c1") && !ledger.added("messages", "c1"));
        let stand_in = ledger.copy("characters", "x");
        assert!(ledger.added("characters", &stand_in) && ledger.any_copies());
        assert_eq!(ledger.copy_of(Some("characters"), "x"), Some(stand_in.clone()));
        assert_eq!(ledger.copy_of(None, "x"), Some(stand_in));
        assert_eq!(ledger.copy_of(Some("chats"), "x"), None);
    }
}
