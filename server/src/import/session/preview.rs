//! A session that previews instead of applying (a batch job opened with `preview`): rows
//! go through the import's checks and merge by id in `import::preview::Previewer`, answered
//! by the backend's reads only; files are previewed from the client's claims (name, size,
//! CRC-32) against the account's own copies; nothing is written, charged or recorded.

use lvbak_core::protocol::RestorePreview;

use super::*;
use crate::import::preview::{Account, Previewer};

impl<'a> ImportSession<'a> {
    /// A session that only reads `user_id`'s account (no quota: nothing is charged).
    pub fn for_preview(
        store: &'a Store,
        user_id: &str,
        cancel: Arc<AtomicBool>,
        progress: &'a (dyn Fn(Event) + Sync),
        runtime: Handle,
    ) -> Result<Self, ImportError> {
        let applier = store.import_rows(user_id, None)?;
        // A preview writes no file, so none is ever taken back since this mark.
        let mark = std::time::SystemTime::now();
        Ok(Self::with_applier(store, user_id, applier, cancel, progress, runtime, mark))
    }

    /// Previews a step of rows of `table`, aligned with `columns`; tables outside the
    /// registry are skipped whole, as an import skips them.
    pub(crate) fn preview_rows(
        &mut self,
        previewer: &mut Previewer,
        table: &str,
        columns: &[String],
        rows: Vec<AlignedRow>,
    ) -> Result<(), ImportError> {
        self.check_cancelled()?;
        let Some(spec) = table_spec(table) else {
            self.skip_table(table);
            return Ok(());
        };
        previewer.rows(&mut *self.applier, spec, columns, rows)
    }

    /// The preview, once every row came: the chats' states, then the archive's files as
    /// `claims` describe them (each entry once), reading at most `budget` bytes of the
    /// account's own files to compare.
    pub(crate) fn finish_preview(
        mut self,
        mut previewer: Previewer,
        claims: &[FileClaim],
        mut budget: u64,
    ) -> Result<RestorePreview, ImportError> {
        previewer.end_rows(self.store, &self.user_id, &mut *self.applier)?;
        let account = Account { store: self.store, user_id: &self.user_id, cancel: &self.cancel };
        let mut claimed = std::collections::HashSet::new();
        for claim in claims {
            let entry = claim.entry_name();
            if !claimed.insert(entry.clone()) {
                continue;
            }
            let Ok(EntryKind::File { bucket, name }) = classify_entry_name(entry.as_bytes()) else { continue };
            previewer.file(account, &mut *self.applier, (bucket, &name, claim.crc32), &mut budget)?;
        }
        Ok(previewer.into_preview())
    }
}
