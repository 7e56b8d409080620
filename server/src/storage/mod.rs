//! Everything kept in the data directory, one module per backend: `sqlite` (accounts, rows,
//! secrets; the only user of rusqlite), `vectors` (LanceDB; its only user), `files` (the
//! file tree) and `identity` (the key that seals stored secrets).
//!
//! The data directory is private: opening it sets the process's umask to 077 (so every
//! file and folder written afterwards is the owner's alone) and the directory itself to
//! 0700, which also covers what an earlier version wrote more openly.

pub(crate) mod file_storage;
pub mod files;
pub mod identity;
pub(crate) mod import_rows;
pub(crate) mod row_snapshot;
pub mod sqlite;
pub mod vector_storage;
pub mod vectors;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use file_storage::{FileStorage, WriteOutcome};
pub use files::FileStore;
pub use identity::IdentityKey;
pub use sqlite::Database;
pub use vector_storage::{VectorRow, VectorStorage};
pub use vectors::VectorStore;

/// The version of the rule accounts' disk use is counted by (see `recount_usage_once`).
const USAGE_FORMULA_KEY: &str = "usage_formula";
const USAGE_FORMULA: &str = "2";

/// The opened data directory.
pub struct Store {
    pub data_dir: PathBuf,
    pub db: Database,
    pub identity: IdentityKey,
    pub files: Box<dyn FileStorage>,
    pub vectors: Box<dyn VectorStorage>,
}

impl Store {
    /// Opens the data directory, creating and migrating whatever is missing.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", data_dir.display()))?;
        let db = Database::open(&data_dir.join("lvbak.sqlite")).context("cannot open the database")?;
        let identity =
            IdentityKey::load_or_create(&data_dir.join("identity.key")).context("cannot read the identity key")?;
        let files = FileStore::new(&data_dir, &data_dir.join("staging"));
        move_shared_files(&data_dir, &db, &files).context("cannot move shared files into per-user folders")?;
        let vectors = VectorStore::open(&data_dir.join("lancedb")).await.context("cannot open LanceDB")?;
        let store = Self { data_dir, db, identity, files: Box::new(files), vectors: Box::new(vectors) };
        store.recount_usage_once().await.context("cannot count what the accounts keep")?;
        Ok(store)
    }

    /// Counts again what every account keeps — files, rows, secrets, vectors — when the
    /// recorded use was counted by an older formula (rows were charged at under half the
    /// pages they take, secrets not at all, and rows imported before quotas not at all).
    /// An account the new count puts over its quota keeps everything; its next import is
    /// refused until it is under (`lvbak user quota` shows it).
    async fn recount_usage_once(&self) -> anyhow::Result<()> {
        if self.db.meta(USAGE_FORMULA_KEY)?.as_deref() == Some(USAGE_FORMULA) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let rows = self.db.rows_usage_by_user()?;
        let users = self.db.user_ids()?;
        for user in &users {
            let bytes =
                self.files.usage_of(user)? + rows.get(user).copied().unwrap_or(0) + self.vectors.usage_of(user).await?;
            self.db.set_usage(user, bytes)?;
        }
        self.db.set_meta(USAGE_FORMULA_KEY, USAGE_FORMULA)?;
        tracing::info!("counted what {} accounts keep in {:?}", users.len(), started.elapsed());
        Ok(())
    }

    /// The rows of `user_id`'s account as one import writes them, held to `quota` (the
    /// instance's; an account's own quota wins).
    pub(crate) fn import_rows(
        &self,
        user_id: &str,
        quota: Option<u64>,
    ) -> sqlite::DbResult<Box<dyn import_rows::ImportRows>> {
        Ok(Box::new(self.db.row_applier(user_id, quota)?))
    }

    /// A consistent reading of the accounts' rows (an export, a `held-rows` answer).
    pub(crate) fn row_snapshot(&self) -> sqlite::DbResult<Box<dyn row_snapshot::RowSnapshot>> {
        Ok(Box::new(self.db.table_scan()?))
    }

    /// Where uploads wait while they are checked.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }
}

/// Moves files an earlier layout kept directly in the shared `images/` and `avatars/`
/// folders into the folder of the one user whose rows name them. A file several users'
/// rows name, or none, stays where it is, out of every export.
fn move_shared_files(data_dir: &Path, db: &Database, files: &FileStore) -> anyhow::Result<()> {
    for (folder, bucket) in
        [("images", lvbak_core::FileBucket::Images), ("avatars", lvbak_core::FileBucket::Avatars)]
    {
        let Ok(entries) = std::fs::read_dir(data_dir.join(folder)) else { continue };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let owners = db.owners_of_shared_file(folder, &name)?;
            let [owner] = owners.as_slice() else {
                tracing::warn!(
                    "{folder}/{name}: named by {} accounts' rows; left out of every export",
                    owners.len()
                );
                continue;
            };
            let destination = files.path(bucket, owner, &name)?;
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(entry.path(), &destination)?;
        }
    }
    Ok(())
}
