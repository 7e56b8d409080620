//! [`ClusterVectorWrites`]: the vector tables in object storage written by one node at a
//! time. Every node writes LanceDB's tables (one per archive table and dimension, every
//! account's rows in it) in the instance's object store; each node already writes them one
//! write at a time (`VectorStore`'s lock), and this takes the instance's lock for each
//! write too — PostgreSQL's transaction advisory lock, freed when the write's transaction
//! ends or its node dies — so two nodes never commit to a table at once. Reads are not
//! held: each opens the table at its newest version.

use std::collections::HashSet;

use super::PostgresStores;
use crate::storage::backend::vector_storage::{VectorError, VectorRow, VectorRows, VectorStorage};

/// The advisory lock of vector writes (any number fixed for lvbak).
const VECTOR_WRITES_LOCK: i64 = 0x6c76_6261_6b00_0002;

/// A [`VectorStorage`] whose writes take the instance's lock.
pub(crate) struct ClusterVectorWrites {
    inner: Box<dyn VectorStorage>,
    stores: PostgresStores,
}

impl ClusterVectorWrites {
    pub(crate) fn new(inner: Box<dyn VectorStorage>, stores: PostgresStores) -> Self {
        Self { inner, stores }
    }

    /// Runs `write` holding the instance's lock of vector writes.
    async fn held<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, VectorError>>,
    ) -> Result<T, VectorError> {
        let unavailable = |error: &dyn std::fmt::Display| VectorError::Backend(format!("postgres: {error}"));
        let mut client = self.stores.client().await.map_err(|error| unavailable(&error))?;
        let transaction = client.transaction().await.map_err(|error| unavailable(&error))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&VECTOR_WRITES_LOCK])
            .await
            .map_err(|error| unavailable(&error))?;
        let result = write.await;
        transaction.commit().await.map_err(|error| unavailable(&error))?;
        result
    }
}

#[async_trait::async_trait]
impl VectorStorage for ClusterVectorWrites {
    async fn rows_of(&self, name: &str, user_id: &str) -> Result<VectorRows, VectorError> {
        self.inner.rows_of(name, user_id).await
    }

    async fn rows_of_dimension(&self, name: &str, dimension: i32, user_id: &str) -> Result<VectorRows, VectorError> {
        self.inner.rows_of_dimension(name, dimension, user_id).await
    }

    async fn existing_ids(&self, name: &str, dimension: i32, ids: &[String]) -> Result<HashSet<String>, VectorError> {
        self.inner.existing_ids(name, dimension, ids).await
    }

    async fn add(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError> {
        self.held(self.inner.add(name, rows, dimension)).await
    }

    async fn delete_ids(&self, name: &str, dimension: i32, user_id: &str, ids: &[String]) -> Result<u64, VectorError> {
        self.held(self.inner.delete_ids(name, dimension, user_id, ids)).await
    }

    async fn replace(&self, name: &str, rows: &[VectorRow], dimension: i32) -> Result<(), VectorError> {
        self.held(self.inner.replace(name, rows, dimension)).await
    }

    async fn delete_user(&self, user_id: &str) -> Result<u64, VectorError> {
        self.held(self.inner.delete_user(user_id)).await
    }

    async fn usage_of(&self, user_id: &str) -> Result<u64, VectorError> {
        self.inner.usage_of(user_id).await
    }

    async fn count_of(&self, name: &str, user_id: &str) -> Result<u64, VectorError> {
        self.inner.count_of(name, user_id).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::Store;
    use crate::test_support::postgres_cluster::test_database;
    use crate::test_support::test_object_store;

    fn rows(user: &str, batch: usize, size: usize, dimension: usize) -> Vec<VectorRow> {
        (0..size)
            .map(|n| VectorRow {
                id: format!("{user}-{batch}-{n}"),
                user_id: user.to_string(),
                source_type: "chat".into(),
                source_id: format!("chat-{user}"),
                owner_id: format!("chat-{user}"),
                chunk_index: n as f64,
                content: format!("text {batch} {n}"),
                vector: vec![n as f32; dimension],
                metadata_json: "{}".into(),
                updated_at: 1.0,
            })
            .collect()
    }

    /// Two nodes over one database and one object store: each adds another account's
    /// vectors into the same table at once, and both race to replace and delete a third
    /// account's. Nothing is lost, nothing fails, and each node reads what the other wrote.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_write_one_table_at_once_and_lose_nothing() {
        let database = test_database().await;
        let url: crate::storage::DatabaseUrl = database.url.parse().unwrap();
        let objects = test_object_store().await;
        let scratch = std::env::temp_dir().join(format!("lvbak-vector-nodes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let first = Store::open_with(&scratch.join("a"), Some(&objects), Some(&url)).await.unwrap();
        let key = scratch.join("a/identity.key");
        let second =
            Store::open_with_identity(&scratch.join("b"), Some(&objects), Some(&url), Some(&key)).await.unwrap();
        let (first, second) = (Arc::new(first), Arc::new(second));
        let writer = |store: Arc<Store>, user: &'static str| {
            tokio::spawn(async move {
                for batch in 0..6 {
                    store.vectors.add("embeddings", &rows(user, batch, 40, 8), 8).await.unwrap();
                    // Both race for the shared account's rows.
                    store.vectors.replace("embeddings", &rows("shared", 0, 30, 8), 8).await.unwrap();
                    let gone: Vec<String> = (0..5).map(|n| format!("shared-1-{n}")).collect();
                    store.vectors.delete_ids("embeddings", 8, "shared", &gone).await.unwrap();
                    store.vectors.add("embeddings", &rows("shared", 100 + batch, 1, 8), 8).await.unwrap();
                }
            })
        };
        let (a, b) = (writer(first.clone(), "alice"), writer(second.clone(), "bob"));
        a.await.unwrap();
        b.await.unwrap();
        for store in [&first, &second] {
            assert_eq!(store.vectors.count_of("embeddings", "alice").await.unwrap(), 240);
            assert_eq!(store.vectors.count_of("embeddings", "bob").await.unwrap(), 240);
            // The replaced 30, and the six adds of each node.
            assert_eq!(store.vectors.count_of("embeddings", "shared").await.unwrap(), 30 + 6 + 6);
        }
        drop((first, second));
        let _ = std::fs::remove_dir_all(&scratch);
    }
}
