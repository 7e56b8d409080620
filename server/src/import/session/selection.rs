//! A selective restore from the browser (a batch job that declared its picks): the Worker
//! sends only the picks' closure over the archive (`lvbak_core::upload::UploadPlan::only`),
//! and the server, which never sees the archive, checks at the end, before the import
//! completes, that what it added is closed: every row the import added is in the closure
//! of the declared picks over the account as it now is (so no row beyond the selection
//! came), and every pick is there — restored as a copy, under the id derived for this
//! importer from the archive's id (`lvbak_core::closure::copy_id`). Whatever the import's own rules refuse (a message
//! without its chat, a file no row names) was refused as in any import. An open selection
//! fails the import with `open_selection` and takes back everything it added.

use lvbak_core::closure::{copy_id, ClosureError, Pick, Selection};

use super::*;
use crate::export::selection::closure_in_account_importing;

/// Rows outside the closure named in the failure, at most.
const NAMED: usize = 3;

impl ImportSession<'_> {
    /// Declares the picks this import restores (checked when it ends); `copy_of`, the
    /// archive's id, when they come as a copy.
    pub fn declare_selection(&mut self, selection: Selection, copy_of: Option<String>) {
        self.selection = Some((selection, copy_of));
    }

    /// Whether what the import added is its declared picks' closure (see the module
    /// documentation); nothing to check without a selection.
    pub(super) fn check_selection(&mut self) -> Result<(), ImportError> {
        let Some((declared, copy_of)) = self.selection.clone() else { return Ok(()) };
        // Picks are found under their copies' ids: as a copy, the derived one; else the one
        // the import may have copied them under (another account held the id).
        let mut picks = Vec::with_capacity(declared.picks.len());
        for pick in &declared.picks {
            let id = match &copy_of {
                Some(archive_id) => copy_id(&self.user_id, archive_id, &pick.id),
                None => pick.id.clone(),
            };
            picks.push(Pick { kind: pick.kind, id: self.applier.local_id(&id)? });
        }
        self.applier.commit()?;
        let selection = Selection { picks, without_chats: declared.without_chats };
        let closure = match closure_in_account_importing(self.store, &self.user_id, &selection) {
            Ok(closure) => closure,
            Err(ClosureError::NotFound(missing)) => {
                return Err(ImportError::OpenSelection(format!("{} never came", Pick::named(&missing))));
            }
            Err(ClosureError::Source(error)) => return Err(error.into()),
        };
        let mut outside: Vec<String> = Vec::new();
        let mut count = 0u64;
        self.applier.inserted_keys(&mut |table, key| {
            if key.is_some_and(|key| closure.contains(table, key)) {
                return;
            }
            count += 1;
            if outside.len() < NAMED {
                outside.push(format!("{table} {}", key.unwrap_or("(no key)")));
            }
        })?;
        if count > 0 {
            return Err(ImportError::OpenSelection(format!(
                "{count} rows came that the picks do not hold ({}{})",
                outside.join(", "),
                if count as usize > outside.len() { ", …" } else { "" }
            )));
        }
        Ok(())
    }
}
