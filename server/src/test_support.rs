//! What the crate's unit tests share: a real data directory (SQLite and the file tree;
//! LanceDB opens lazily) in a scratch folder removed afterwards, the app's state over it,
//! and accounts in it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lvbak_core::Limits;

use crate::config::HostingLimits;
use crate::state::AppState;
use crate::storage::Store;
use crate::storage::UserRecord;
use crate::util::{new_id, now};

/// The app's state over a data directory of its own, removed when this is dropped.
pub(crate) struct TestState {
    pub(crate) state: AppState,
    scratch: PathBuf,
}

impl Drop for TestState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A fresh data directory and the state of a server over it, with these hosting limits.
/// Call it on a multi-threaded runtime, as the server has: job threads wait on it.
pub(crate) async fn test_state(label: &str, hosting: HostingLimits) -> TestState {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let unique = format!("lvbak-unit-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let scratch = std::env::temp_dir().join(unique);
    let _ = std::fs::remove_dir_all(&scratch);
    let store = Arc::new(Store::open(&scratch.join("data")).await.unwrap());
    TestState { state: AppState::new(store, scratch.join("web"), Limits::STANDARD, hosting).await, scratch }
}

/// A new account named `name`.
pub(crate) async fn account(state: &AppState, name: &str) -> UserRecord {
    state.store().accounts().create_user(&new_id(), name, "no password", now()).await.unwrap()
}
