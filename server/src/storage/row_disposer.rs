//! Freeing an import's applied rows off its critical path: a batch's rows are thousands of
//! small allocations, and freeing them took 5% of SQLite's applier's time and a tenth of
//! the PostgreSQL import thread's. Each import's applier has one [`RowDisposer`]: a thread
//! of its own that drops what it is handed. At most two lots wait; past that the applier
//! frees them itself.

use crate::policy::rows::AlignedRow;

/// Lots of rows handed over and not yet freed, at most.
const WAITING: usize = 2;

pub(crate) struct RowDisposer {
    sender: Option<std::sync::mpsc::SyncSender<Vec<AlignedRow>>>,
}

impl RowDisposer {
    /// A disposer whose thread is called `name`; without a thread (none could be started)
    /// rows are freed where they are handed over.
    pub(crate) fn new(name: &str) -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<AlignedRow>>(WAITING);
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || receiver.into_iter().for_each(drop));
        Self { sender: spawned.ok().map(|_| sender) }
    }

    /// Frees `rows`, on the disposer's thread when it has room.
    pub(crate) fn dispose(&self, rows: Vec<AlignedRow>) {
        if let Some(sender) = &self.sender {
            // A full queue hands the rows back, to be freed here.
            let _ = sender.try_send(rows);
        }
    }
}
