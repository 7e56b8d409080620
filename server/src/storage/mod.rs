//! Everything kept in the data directory, one module per backend: `sqlite` (accounts, rows,
//! secrets; the only user of rusqlite), `vectors` (LanceDB; its only user), `files` (the
//! file tree) and `identity` (the key that seals stored secrets); and `postgres` (the
//! account-side traits over PostgreSQL; the only user of tokio-postgres besides the
//! tests' cluster and `DbError`'s variant), which no option opens yet. The server reaches
//! accounts, the job log, secrets, settings and the embeddings queue through the async
//! traits of `backend`, which [`Store`] hands out as trait objects; imports, exports, files
//! and vectors through its blocking and async seams (`ImportRows`, `RowSnapshot`,
//! `FileStorage`, `VectorStorage`).
//!
//! The data directory is private: opening it sets the process's umask to 077 (so every
//! file and folder written afterwards is the owner's alone) and the directory itself to
//! 0700, which also covers what an earlier version wrote more openly.

pub mod backend;
pub mod files;
pub mod identity;
pub(crate) mod lookup_cache;
pub mod object_storage;
pub(crate) mod postgres;
pub(crate) mod row_disposer;
pub mod sqlite;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

pub(crate) use backend::{AccountStore, EmbeddingQueue, ImportRows, JobLog, RowSnapshot, SecretStore, SettingStore};
pub use backend::{FileStorage, VectorRow, VectorStorage, WriteOutcome};
pub use backend::{JobRecord, SessionUser, SourceKind, SourceRow, StoredSecret, TicketUse, UnboundKey, UserRecord};
pub use files::FileStore;
pub use identity::IdentityKey;
pub use object_storage::ObjectStoreUrl;
use object_storage::{files::ObjectFileStore, ObjectStorage};
pub use postgres::DatabaseUrl;
use postgres::{ClusterVectorWrites, PostgresStores};
pub use sqlite::Database;
use sqlite::SqliteStores;
pub use vectors::VectorStore;

/// The version of the rule accounts' disk use is counted by (see `recount_usage_once`).
const USAGE_FORMULA_KEY: &str = "usage_formula";
const USAGE_FORMULA: &str = "2";
/// The instance's id in `lvbak_meta` (see `instance_id`).
const INSTANCE_ID_KEY: &str = "instance_id";

/// The account-side traits as one backend answers them.
type AccountSide =
    (Arc<dyn AccountStore>, Arc<dyn JobLog>, Arc<dyn SecretStore>, Arc<dyn SettingStore>, Arc<dyn EmbeddingQueue>);

/// The account-side traits of one backend, as [`Store::with_account_backend`] takes them.
#[cfg(test)]
pub(crate) struct AccountBackend {
    pub(crate) accounts: Arc<dyn AccountStore>,
    pub(crate) jobs: Arc<dyn JobLog>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    pub(crate) settings: Arc<dyn SettingStore>,
}

/// The opened data directory.
pub struct Store {
    pub data_dir: PathBuf,
    /// The SQLite database itself, for what is not behind a trait yet: the import engine's
    /// row writer and snapshots, maintenance at open, seeding and tests' inspections.
    pub db: Arc<Database>,
    accounts: Arc<dyn AccountStore>,
    jobs: Arc<dyn JobLog>,
    secrets: Arc<dyn SecretStore>,
    settings: Arc<dyn SettingStore>,
    embedding_queue: Arc<dyn EmbeddingQueue>,
    pub identity: IdentityKey,
    pub files: Box<dyn FileStorage>,
    pub vectors: Box<dyn VectorStorage>,
    /// The object storage files live in, if they do not live in the data directory.
    object_storage: Option<ObjectStorage>,
    /// PostgreSQL, when accounts and rows live there (`--database-url`).
    postgres: Option<PostgresStores>,
}

impl Store {
    /// Opens the data directory, creating and migrating whatever is missing; files live
    /// there.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(data_dir, None, None).await
    }

    /// Opens the data directory, creating and migrating whatever is missing; files live in
    /// `object_store` and accounts and rows in `database` if they are given (one that does
    /// not answer is an error naming it).
    pub async fn open_with(
        data_dir: &Path,
        object_store: Option<&ObjectStoreUrl>,
        database: Option<&DatabaseUrl>,
    ) -> anyhow::Result<Self> {
        Self::open_with_identity(data_dir, object_store, database, None).await
    }

    /// The same, with the identity key read from `identity_file` (which must exist) instead
    /// of the data directory's `identity.key`: every node of an instance is given the same.
    /// With PostgreSQL, a digest of the key (never the key) is recorded by the first node,
    /// and a node with another key is refused: the API keys one node stored would not open
    /// on it.
    pub async fn open_with_identity(
        data_dir: &Path,
        object_store: Option<&ObjectStoreUrl>,
        database: Option<&DatabaseUrl>,
        identity_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", data_dir.display()))?;
        let db = Arc::new(Database::open(&data_dir.join("lvbak.sqlite")).context("cannot open the database")?);
        let sqlite = Arc::new(SqliteStores::new(db.clone()));
        let postgres = match database {
            Some(url) => Some(
                PostgresStores::connect(url.config.clone())
                    .await
                    .with_context(|| format!("cannot use the PostgreSQL database {url}"))?,
            ),
            None => None,
        };
        let identity =
            match identity_file {
                Some(path) => IdentityKey::load(path)
                    .with_context(|| format!("cannot read the identity key {}", path.display()))?,
                None => IdentityKey::load_or_create(&data_dir.join("identity.key"))
                    .context("cannot read the identity key")?,
            };
        if let Some(postgres) = &postgres {
            let check = identity.check_value();
            let recorded = postgres.set_meta("identity_check", &check, true).await?;
            anyhow::ensure!(
                recorded == check,
                "this node's identity key is not the instance's: give every node the same key file \
                 (--identity-key-file / LVBAK_IDENTITY_KEY_FILE, e.g. the first node's {})",
                "identity.key"
            );
        }
        let (files, object_storage): (Box<dyn FileStorage>, _) = match object_store {
            Some(url) => {
                let url = url.clone();
                let instance = instance_id(&db, postgres.as_ref()).await?;
                let storage = tokio::task::spawn_blocking(move || {
                    let storage = ObjectStorage::connect(&url)?;
                    storage.claim(&instance)?;
                    Ok::<_, anyhow::Error>(storage)
                })
                .await??;
                (Box::new(ObjectFileStore::new(storage.clone())), Some(storage))
            }
            None => {
                let files = FileStore::new(&data_dir, &data_dir.join("staging"));
                if postgres.is_none() {
                    move_shared_files(&data_dir, &db, &files)
                        .context("cannot move shared files into per-user folders")?;
                }
                (Box::new(files), None)
            }
        };
        let vectors = match &object_storage {
            Some(storage) => VectorStore::open_in(storage),
            None => VectorStore::open(&data_dir.join("lancedb")).await.context("cannot open LanceDB")?,
        };
        let (accounts, jobs, secrets, settings, embedding_queue): AccountSide = match &postgres {
            Some(postgres) => {
                let postgres = Arc::new(postgres.clone());
                (postgres.clone(), postgres.clone(), postgres.clone(), postgres.clone(), postgres)
            }
            None => (sqlite.clone(), sqlite.clone(), sqlite.clone(), sqlite.clone(), sqlite),
        };
        let store = Self {
            data_dir,
            db,
            accounts,
            jobs,
            secrets,
            settings,
            embedding_queue,
            identity,
            files,
            vectors: match (&postgres, &object_storage) {
                // Nodes sharing the object store write its tables one at a time.
                (Some(postgres), Some(_)) => Box::new(ClusterVectorWrites::new(Box::new(vectors), postgres.clone())),
                _ => Box::new(vectors),
            },
            object_storage,
            postgres,
        };
        store.recount_usage_once().await.context("cannot count what the accounts keep")?;
        Ok(store)
    }

    /// Counts again what every account keeps — files, rows, secrets, vectors — when the
    /// recorded use was counted by an older formula (rows were charged at under half the
    /// pages they take, secrets not at all, and rows imported before quotas not at all).
    /// An account the new count puts over its quota keeps everything; its next import is
    /// refused until it is under (`lvbak user quota` shows it).
    async fn recount_usage_once(&self) -> anyhow::Result<()> {
        let counted = match &self.postgres {
            Some(postgres) => postgres.meta(USAGE_FORMULA_KEY).await?,
            None => self.db.meta(USAGE_FORMULA_KEY)?,
        };
        if counted.as_deref() == Some(USAGE_FORMULA) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let rows = match &self.postgres {
            Some(postgres) => postgres.rows_usage_by_user().await?,
            None => self.db.rows_usage_by_user()?,
        };
        let users = self.accounts().user_ids().await?;
        for user in &users {
            let bytes =
                self.files.usage_of(user)? + rows.get(user).copied().unwrap_or(0) + self.vectors.usage_of(user).await?;
            self.accounts().set_usage(user, bytes).await?;
        }
        match &self.postgres {
            Some(postgres) => {
                postgres.set_meta(USAGE_FORMULA_KEY, USAGE_FORMULA, false).await?;
            }
            None => self.db.set_meta(USAGE_FORMULA_KEY, USAGE_FORMULA)?,
        }
        tracing::info!("counted what {} accounts keep in {:?}", users.len(), started.elapsed());
        Ok(())
    }

    /// The same store with the account-side traits (accounts, the job log, secrets,
    /// settings) answered by `accounts` instead of SQLite; rows, files, vectors and the
    /// embeddings queue stay where they were. For the trait tests on PostgreSQL until rows
    /// move there too (issue 22): no option of the server builds such a store yet.
    #[cfg(test)]
    pub(crate) fn with_account_backend(self, accounts: AccountBackend) -> Self {
        Self {
            accounts: accounts.accounts,
            jobs: accounts.jobs,
            secrets: accounts.secrets,
            settings: accounts.settings,
            ..self
        }
    }

    /// Accounts, their quotas and disk use, and sessions.
    pub(crate) fn accounts(&self) -> &dyn AccountStore {
        &*self.accounts
    }

    /// The record of import jobs.
    pub(crate) fn jobs(&self) -> &dyn JobLog {
        &*self.jobs
    }

    /// Stored API keys, their endpoint bindings, and ticket uses.
    pub(crate) fn secrets(&self) -> &dyn SecretStore {
        &*self.secrets
    }

    /// Accounts' settings and whether their embeddings setting was confirmed.
    pub(crate) fn settings(&self) -> &dyn SettingStore {
        &*self.settings
    }

    /// Re-vectorization's queue and marks.
    pub(crate) fn embedding_queue(&self) -> &dyn EmbeddingQueue {
        &*self.embedding_queue
    }

    /// Settles the references of every row of `user_id`'s, as an import's end would, after
    /// an import that never reached its end (the rows it added are not known any more), on
    /// a thread of its own; logs what it did.
    pub(crate) async fn settle_after_interrupted_import(self: &Arc<Self>, user_id: &str) {
        let (store, user) = (self.clone(), user_id.to_string());
        let settled = tokio::task::spawn_blocking(move || {
            store.import_rows(&user, None).and_then(|mut rows| rows.settle_all_rows())
        })
        .await;
        match settled {
            Ok(Ok(changed)) => tracing::info!("settled {changed} references of {user_id} after an interrupted import"),
            Ok(Err(error)) => tracing::error!("cannot settle the references of {user_id}: {error}"),
            Err(error) => tracing::error!("cannot settle the references of {user_id}: {error}"),
        }
    }

    /// The rows of `user_id`'s account as one import writes them, held to `quota` (the
    /// instance's; an account's own quota wins).
    /// Called from the import's own thread.
    pub(crate) fn import_rows(&self, user_id: &str, quota: Option<u64>) -> sqlite::DbResult<Box<dyn ImportRows>> {
        match &self.postgres {
            Some(postgres) => Ok(Box::new(postgres.row_applier(user_id, quota)?)),
            None => Ok(Box::new(self.db.row_applier(user_id, quota)?)),
        }
    }

    /// A consistent reading of the accounts' rows (an export, a `held-rows` answer); called
    /// from a thread of the caller's own.
    pub(crate) fn row_snapshot(&self) -> sqlite::DbResult<Box<dyn RowSnapshot>> {
        self.snapshot(false)
    }

    /// [`Store::row_snapshot`], also seeing the rows of imports still open (PostgreSQL
    /// hides those from every other reading; SQLite has no such rows to hide): what an
    /// import checks its own rows against before it ends.
    pub(crate) fn row_snapshot_seeing_open_imports(&self) -> sqlite::DbResult<Box<dyn RowSnapshot>> {
        self.snapshot(true)
    }

    fn snapshot(&self, sees_open_imports: bool) -> sqlite::DbResult<Box<dyn RowSnapshot>> {
        match &self.postgres {
            Some(postgres) => Ok(Box::new(postgres.snapshot(sees_open_imports)?)),
            None => Ok(Box::new(self.db.table_scan()?)),
        }
    }

    /// Inserts rows given as JSON objects (keys are columns) into `table` as they are, in
    /// one transaction, any conflict failing them all: demo data and tests' setup (imports go
    /// through the import engine's rules instead).
    pub async fn insert_rows(
        &self,
        table: &str,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> anyhow::Result<u64> {
        match &self.postgres {
            Some(postgres) => Ok(postgres.insert_rows(table, rows).await?),
            None => Ok(self.db.insert_json_rows(table, rows)?),
        }
    }

    /// PostgreSQL, when accounts and rows live there.
    pub(crate) fn postgres(&self) -> Option<&PostgresStores> {
        self.postgres.as_ref()
    }

    /// Which part of the storage does not answer now, if one does not (`GET /health`): the
    /// database is asked `SELECT 1` and the object storage for one listing, each at most
    /// `within`.
    pub async fn failing_part(&self, within: std::time::Duration) -> Option<&'static str> {
        if let Some(postgres) = &self.postgres {
            if !matches!(tokio::time::timeout(within, postgres.ping()).await, Ok(Ok(()))) {
                return Some("database");
            }
        }
        let storage = self.object_storage.clone()?;
        match tokio::task::spawn_blocking(move || storage.check(within)).await {
            Ok(Ok(())) => None,
            _ => Some("object_store"),
        }
    }

    /// Where uploads wait while they are checked.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }
}

/// The instance's id, made on first use: what its object store is claimed with. Nodes that
/// share a database share it, so nodes may share an object store only if they share a
/// database.
async fn instance_id(db: &Database, postgres: Option<&PostgresStores>) -> anyhow::Result<String> {
    if let Some(postgres) = postgres {
        return Ok(postgres.set_meta(INSTANCE_ID_KEY, &crate::util::new_id(), true).await?);
    }
    if let Some(id) = db.meta(INSTANCE_ID_KEY)? {
        return Ok(id);
    }
    let id = crate::util::new_id();
    db.set_meta(INSTANCE_ID_KEY, &id)?;
    Ok(id)
}

/// Moves files an earlier layout kept directly in the shared `images/` and `avatars/`
/// folders into the folder of the one user whose rows name them. A file several users'
/// rows name, or none, stays where it is, out of every export.
fn move_shared_files(data_dir: &Path, db: &Database, files: &FileStore) -> anyhow::Result<()> {
    for (folder, bucket) in [("images", lvbak_core::FileBucket::Images), ("avatars", lvbak_core::FileBucket::Avatars)] {
        let Ok(entries) = std::fs::read_dir(data_dir.join(folder)) else { continue };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_file()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            let owners = db.owners_of_shared_file(folder, &name)?;
            let [owner] = owners.as_slice() else {
                tracing::warn!("{folder}/{name}: named by {} accounts' rows; left out of every export", owners.len());
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
