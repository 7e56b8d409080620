//! Everything kept in the data directory, one module per backend: `sqlite` (accounts, rows,
//! secrets; the only user of rusqlite), `vectors` (LanceDB; its only user), `files` (the
//! file tree) and `identity` (the key that seals stored secrets).

pub mod files;
pub mod identity;
pub mod sqlite;
pub mod vectors;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use files::{FileStore, WriteOutcome};
pub use identity::IdentityKey;
pub use sqlite::Database;
pub use vectors::{VectorRow, VectorStore};

/// The opened data directory.
pub struct Store {
    pub data_dir: PathBuf,
    pub db: Database,
    pub identity: IdentityKey,
    pub files: FileStore,
    pub vectors: VectorStore,
}

impl Store {
    /// Opens the data directory, creating and migrating whatever is missing.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        let db = Database::open(&data_dir.join("lvbak.sqlite")).context("cannot open the database")?;
        let identity =
            IdentityKey::load_or_create(&data_dir.join("identity.key")).context("cannot read the identity key")?;
        let files = FileStore::new(&data_dir, &data_dir.join("staging"));
        let vectors = VectorStore::open(&data_dir.join("lancedb")).await.context("cannot open LanceDB")?;
        Ok(Self { data_dir, db, identity, files, vectors })
    }

    /// Where uploads wait while they are checked.
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }
}
