//! S3-compatible object storage (`--object-store s3://bucket/prefix`, issue 22): the one
//! client of an instance ([`ObjectStorage`]) and what is kept there — accounts' files
//! ([`files::ObjectFileStore`], the `FileStorage` of such an instance). The only user of
//! the `object_store` crate.
//!
//! Where the bucket is and how to sign in come from the standard variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint); nothing in an archive or a request
//! reaches them. Requests are path-style (SeaweedFS, MinIO and AWS all answer those).
//!
//! The storage traits block (imports and exports run on threads of their own) and the
//! client is async: every request runs on a small runtime this module owns (two threads,
//! for the instance), and the calling thread waits for it — from any thread, a runtime's
//! included, without tokio's "runtime within a runtime" panic.

mod background;
pub mod files;
pub(crate) mod lance;
mod marks;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

/// Threads of the runtime every object storage request runs on.
const IO_THREADS: usize = 2;

/// A failed request is sent again this many times, within this long of the first try
/// (the client's defaults, 10 times within 3 minutes, would hold an import that long
/// before it fails with `storage_unavailable`).
const RETRIES: usize = 4;
const RETRY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the store may take to answer its first listing when an instance opens it.
const CONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Where an instance keeps what it keeps in object storage: `s3://bucket/prefix`, and
/// options that win over the environment's (the tests name their own server this way).
#[derive(Clone, Debug)]
pub struct ObjectStoreUrl {
    bucket: String,
    /// The prefix's segments (none: the bucket's root).
    prefix: Vec<String>,
    overrides: BTreeMap<String, String>,
}

impl std::str::FromStr for ObjectStoreUrl {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(text).with_context(|| format!("{text}: not a URL (s3://bucket/prefix)"))?;
        if url.scheme() != "s3" {
            bail!("{text}: only s3:// object stores are supported (s3://bucket/prefix)");
        }
        let bucket = url.host_str().filter(|bucket| !bucket.is_empty());
        let Some(bucket) = bucket else { bail!("{text}: names no bucket (s3://bucket/prefix)") };
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            bail!("{text}: an object store URL is s3://bucket/prefix; credentials come from AWS_* variables");
        }
        let prefix: Vec<String> = url
            .path_segments()
            .into_iter()
            .flatten()
            .filter(|segment| !segment.is_empty())
            .map(|segment| percent_decoded(segment).to_string())
            .collect();
        if prefix.iter().any(|segment| segment == "." || segment == "..") {
            bail!("{text}: a prefix of plain names only");
        }
        Ok(Self { bucket: bucket.to_string(), prefix, overrides: BTreeMap::new() })
    }
}

impl std::fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        for segment in &self.prefix {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

impl ObjectStoreUrl {
    /// The same place with `key` (an `object_store` S3 option such as `aws_endpoint`) set
    /// to `value`, whatever the environment says.
    fn with_option(mut self, key: &str, value: &str) -> Self {
        self.overrides.insert(key.to_string(), value.to_string());
        self
    }

    /// The same place with what `variables` (named as in the environment: `AWS_ENDPOINT_URL`,
    /// ...) say, whatever the environment says; other names are left out.
    pub fn with_variables<'a>(self, variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        variables
            .into_iter()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .fold(self, |url, (name, value)| url.with_option(&name.to_ascii_lowercase(), value))
    }

    /// The options `object_store`'s S3 builder takes, the environment's first.
    fn options(&self) -> anyhow::Result<Vec<(AmazonS3ConfigKey, String)>> {
        let mut options = Vec::new();
        for (key, value) in std::env::vars() {
            let lower = key.to_ascii_lowercase();
            if lower.starts_with("aws_") {
                if let Ok(key) = lower.parse::<AmazonS3ConfigKey>() {
                    options.push((key, value));
                }
            }
        }
        for (key, value) in &self.overrides {
            let key = key.parse::<AmazonS3ConfigKey>().with_context(|| format!("{key}: not an S3 option"))?;
            options.push((key, value.clone()));
        }
        Ok(options)
    }
}

/// The object store did not do what was asked (unreachable, an error answer): what an
/// import that meets it fails with (`storage_unavailable`), inside an `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("object store: {0}")]
pub struct Unavailable(pub String);

impl Unavailable {
    /// Whether `error` is one (at its source).
    pub fn is(error: &std::io::Error) -> bool {
        error.get_ref().is_some_and(|inner| inner.is::<Self>())
    }
}

/// `%xx` in a URL's path segment decoded (a prefix may hold any name).
fn percent_decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

/// Makes ring rustls's crypto provider for the process (the S3 client's TLS; see
/// Cargo.toml). Called before the first client is built; a second call changes nothing.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Stores `payload` at `key` unless an object is there (a create-only PUT, `If-None-Match:
/// *`): whether it was stored; the object there is kept.
pub(crate) async fn put_new(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    payload: PutPayload,
) -> object_store::Result<bool> {
    let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    match store.put_opts(key, payload, options).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// A client of `url`'s bucket: path-style requests, the environment's settings and then
/// `url`'s own.
fn client_of(url: &ObjectStoreUrl) -> anyhow::Result<object_store::aws::AmazonS3> {
    let retries = object_store::RetryConfig {
        max_retries: RETRIES,
        retry_timeout: RETRY_WITHIN,
        ..object_store::RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&url.bucket)
        .with_virtual_hosted_style_request(false)
        .with_retry(retries)
        .with_client_options(ClientOptions::new().with_timeout(std::time::Duration::from_secs(60)));
    for (key, value) in url.options()? {
        builder = builder.with_config(key, value);
    }
    builder.build().with_context(|| format!("object store {url}"))
}

/// A runtime that is shut down without waiting when dropped, so that dropping it inside
/// another runtime (a test's, the server's) is allowed.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The instance's client of its bucket, under its prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    url: ObjectStoreUrl,
    runtime: Arc<IoRuntime>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStorage({})", self.url)
    }
}

impl ObjectStorage {
    /// The client of `url`, checked: a bucket that cannot be listed is an error naming it.
    pub fn connect(url: &ObjectStoreUrl) -> anyhow::Result<Self> {
        install_tls_provider();
        let store = client_of(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("lvbak-object-io")
            .enable_all()
            .build()
            .context("cannot start the object store's threads")?;
        let storage = Self {
            store: Arc::new(store),
            prefix: url.prefix.clone(),
            url: url.clone(),
            runtime: Arc::new(IoRuntime(Some(runtime))),
        };
        storage.check(CONNECT_WITHIN).with_context(|| format!("object store {url} is unreachable"))?;
        Ok(storage)
    }

    /// Another client of the same bucket (for a caller that runs its requests on a runtime
    /// of its own: LanceDB).
    pub(crate) fn new_client(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(client_of(&self.url)?))
    }

    /// Whether the bucket answers within `within`: one listing of the prefix (start-up's
    /// and `health`'s check; the client's own retries would take minutes).
    pub fn check(&self, within: std::time::Duration) -> anyhow::Result<()> {
        let store = self.store.clone();
        let prefix = self.path_of(std::iter::empty::<&str>());
        let listed =
            self.run(async move { tokio::time::timeout(within, store.list_with_delimiter(Some(&prefix))).await });
        match listed {
            Ok(listed) => listed.map(|_| ()).map_err(anyhow::Error::from),
            Err(_) => bail!("no answer within {within:?}"),
        }
    }

    /// The client, for the runtime's own tasks.
    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The key of `segments` under the prefix; each segment one part whatever it holds.
    pub(crate) fn path_of<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> ObjectPath {
        let prefix = self.prefix.iter().map(|segment| PathPart::from(segment.clone()));
        prefix.chain(segments.into_iter().map(|segment| PathPart::from(segment.to_string()))).collect()
    }

    /// Runs `work` on the storage's runtime and waits for it, from any thread.
    pub(crate) fn run<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        Self::wait_for(self.spawn(work))
    }

    /// Makes the object store this instance's, or says whose it is: the first instance to
    /// open it writes its id there (create-only); another instance — another database of
    /// accounts — is refused, since its accounts' files and vectors would mix with the
    /// first's. (Nodes of one instance share its database, hence its id.)
    pub fn claim(&self, instance_id: &str) -> anyhow::Result<()> {
        let (store, key, id) = (self.store.clone(), self.path_of(["lvbak-instance"]), instance_id.to_string());
        let claimed = self.run(async move {
            if put_new(&*store, &key, PutPayload::from(id.into_bytes())).await? {
                return Ok(None);
            }
            let owner = store.get(&key).await?.bytes().await?;
            Ok::<_, object_store::Error>(Some(String::from_utf8_lossy(&owner).into_owned()))
        });
        match claimed.with_context(|| format!("object store {}", self.url))? {
            Some(owner) if owner != instance_id => bail!(
                "object store {} holds another instance's accounts (instance {owner}, this database's is \
                 {instance_id}): nodes that share an object store must share their database",
                self.url
            ),
            _ => Ok(()),
        }
    }

    /// Starts `work` on the storage's runtime without waiting for it; its handle.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let runtime = self.runtime.0.as_ref();
        let Some(runtime) = runtime else { unreachable!("the runtime lives as long as the storage") };
        runtime.spawn(work)
    }

    /// Waits, from any thread, for a task [`Self::spawn`] started.
    pub(crate) fn wait_for<T>(task: tokio::task::JoinHandle<T>) -> T {
        match futures::executor::block_on(task) {
            Ok(value) => value,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Removes the key `path` (absent already is fine).
    pub(crate) fn delete(&self, path: ObjectPath) -> object_store::Result<()> {
        let store = self.store.clone();
        self.run(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_object_store_url_names_a_bucket_and_a_prefix() {
        let url: ObjectStoreUrl = "s3://lvbak/instances/one".parse().unwrap();
        assert_eq!((url.bucket.as_str(), url.prefix.clone()), ("lvbak", vec!["instances".into(), "one".into()]));
        assert_eq!(url.to_string(), "s3://lvbak/instances/one");
        let root: ObjectStoreUrl = "s3://lvbak".parse().unwrap();
        assert!(root.prefix.is_empty());
        for bad in ["http://lvbak/x", "s3:///x", "s3://key:secret@lvbak/x", "s3://lvbak/x?region=y", "not a url"] {
            assert!(bad.parse::<ObjectStoreUrl>().is_err(), "{bad}");
        }
    }
}
