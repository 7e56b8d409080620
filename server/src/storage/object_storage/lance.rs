//! LanceDB's tables in the instance's object storage: `s3://bucket/prefix/lancedb/`, opened
//! through a provider of our own for the `s3` scheme, so that LanceDB's engine reaches the
//! bucket with the instance's client settings (endpoint, credentials, path-style requests)
//! and without its AWS SDK (LanceDB's `aws` feature would build aws-lc and opendal). Lance
//! commits a table version by a create-only PUT (`If-None-Match: *`), which the store
//! refuses when another writer got there first; `VectorStore` still lets one write at a time
//! per instance.

use std::sync::Arc;

use lance_io::object_store::{ObjectStore as LanceStore, ObjectStoreParams, ObjectStoreProvider, ObjectStoreRegistry};

use super::ObjectStorage;

/// Concurrent requests one table read or write may have in flight (Lance's default for
/// cloud stores is 64; a shared instance keeps it small).
const IO_PARALLELISM: usize = 8;
/// Bytes Lance reads per request (its default for cloud stores).
const BLOCK_SIZE: usize = 64 << 10;
/// Retries of a failed read (Lance's default).
const DOWNLOAD_RETRIES: usize = 3;

/// Where the tables are, for `lancedb::connect`.
pub(crate) fn tables_uri(storage: &ObjectStorage) -> String {
    format!("{}/lancedb", storage.url.clone())
}

/// A registry of object stores that answers `s3://` from `storage`'s bucket.
pub(crate) fn registry(storage: &ObjectStorage) -> Arc<ObjectStoreRegistry> {
    let registry = ObjectStoreRegistry::default();
    registry.insert("s3", Arc::new(BucketProvider { storage: storage.clone() }));
    Arc::new(registry)
}

/// Hands Lance a client of the instance's bucket.
#[derive(Debug)]
struct BucketProvider {
    storage: ObjectStorage,
}

#[async_trait::async_trait]
impl ObjectStoreProvider for BucketProvider {
    async fn new_store(&self, base_path: url::Url, params: &ObjectStoreParams) -> lance::Result<LanceStore> {
        if base_path.host_str() != Some(self.storage.url.bucket.as_str()) {
            return Err(lance::Error::invalid_input(format!(
                "{base_path}: not the instance's bucket ({})",
                self.storage.url
            )));
        }
        // A client of its own: Lance runs it on the caller's runtime, not on the storage's.
        let client = self.storage.new_client().map_err(|error| lance::Error::invalid_input(error.to_string()))?;
        Ok(LanceStore::new(
            client,
            base_path,
            Some(params.block_size.unwrap_or(BLOCK_SIZE)),
            params.object_store_wrapper.clone(),
            false,
            true,
            IO_PARALLELISM,
            DOWNLOAD_RETRIES,
            params.storage_options(),
        ))
    }
}
