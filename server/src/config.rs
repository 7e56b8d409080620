//! Where the server keeps its data and where it listens: flags, then environment, then
//! defaults that work with no configuration (`./data`, `127.0.0.1:8080`, `./dist`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::storage::{DatabaseUrl, ObjectStoreUrl, Store};

pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_WEB_DIR: &str = "dist";

/// The data directory, object storage if files live there and PostgreSQL if accounts and
/// rows live there, shared by every subcommand.
#[derive(Clone, Debug, Args)]
pub struct DataDirArg {
    /// Where accounts, files and vectors live (created if missing).
    #[arg(long = "data-dir", env = "LVBAK_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// S3-compatible object storage for accounts' files, `s3://bucket/prefix`; endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP=true for plain HTTP. Without it, files live in the data
    /// directory.
    #[arg(long = "object-store", env = "LVBAK_OBJECT_STORE")]
    pub object_store: Option<ObjectStoreUrl>,
    /// PostgreSQL for accounts and their rows, `postgres://user:password@host:port/database`.
    /// Without it, they live in the data directory's SQLite database.
    #[arg(long = "database-url", env = "LVBAK_DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,
    /// The instance's identity key (which stored API keys are sealed under), the same file
    /// on every node of an instance; without it, the data directory's `identity.key`
    /// (made on first start).
    #[arg(long = "identity-key-file", env = "LVBAK_IDENTITY_KEY_FILE")]
    pub identity_key_file: Option<PathBuf>,
}

impl DataDirArg {
    /// Opens what these name (see `Store::open_with_identity`).
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        Store::open_with_identity(
            &self.data_dir,
            self.object_store.as_ref(),
            self.database_url.as_ref(),
            self.identity_key_file.as_deref(),
        )
        .await
    }
}

/// How `lvbak serve` runs.
#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Address to listen on.
    #[arg(long, env = "LVBAK_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The built web page (Trunk's output).
    #[arg(long = "web-dir", env = "LVBAK_WEB_DIR", default_value = DEFAULT_WEB_DIR)]
    pub web_dir: PathBuf,
    /// Bytes each account may keep on disk (files and imported rows), e.g. `10G`; `none`
    /// for no quota. A per-account quota set with `lvbak user quota` wins.
    #[arg(long, env = "LVBAK_QUOTA", default_value = DEFAULT_QUOTA, value_parser = parse_quota_setting)]
    pub quota: QuotaSetting,
    /// Mark the session cookie `Secure` on every answer (always done for requests that
    /// arrive with `X-Forwarded-Proto: https`). Set this when a TLS proxy is in front.
    #[arg(long = "secure-cookies", env = "LVBAK_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Where the instance's other nodes reach this one (`http://10.0.0.5:3000`), with
    /// `--database-url`: a request for an import another node runs is forwarded there.
    /// By default the address it listens on, unless that is every interface's.
    #[arg(long = "node-url", env = "LVBAK_NODE_URL", value_parser = parse_node_url)]
    pub node_url: Option<String>,
}

/// A node's address for the others: an `http` or `https` URL with a host and no path.
fn parse_node_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("give the node's address as http://HOST:PORT".into());
    }
    if url.path() != "/" || url.query().is_some() {
        return Err("give the node's address without a path".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The quota of an account with none of its own.
pub const DEFAULT_QUOTA: &str = "25G";

/// Parses a byte size: a number with an optional `K`, `M`, `G` or `T` (powers of 1024).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 512M or 10G"))?;
    let shift = match unit.trim().trim_end_matches(['b', 'B', 'i']).to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{text:?} is not a size such as 512M or 10G")),
    };
    number.checked_mul(1u64 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// A quota as a flag gives it (`None`: no quota).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaSetting(pub Option<u64>);

fn parse_quota_setting(text: &str) -> Result<QuotaSetting, String> {
    parse_quota(text).map(QuotaSetting)
}

/// A quota: a byte size, or `none`/`0` for no quota.
pub fn parse_quota(text: &str) -> Result<Option<u64>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "unlimited" | "0" => Ok(None),
        _ => parse_bytes(text).map(Some),
    }
}

/// The longest one request to an embeddings provider may take unless `embedding_timeout`
/// says otherwise, and the shortest any may be given (an account's `request_timeout` is
/// held between the two; Lumiverse's 0, "no limit", means the longest).
pub const DEFAULT_EMBEDDING_TIMEOUT: Duration = Duration::from_secs(120);
pub const SHORTEST_EMBEDDING_TIMEOUT: Duration = Duration::from_secs(5);

/// What one instance allows each user and itself, so that one hostile account cannot
/// exhaust memory, threads, disk or time. Defaults suit a small shared server;
/// `LVBAK_HOSTING` changes them (`key=value,...`, seconds for times, bytes for sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostingLimits {
    /// Bytes an account may keep on disk, unless it has a quota of its own.
    pub quota: Option<u64>,
    /// Exports running at once: per user, and in the instance.
    pub exports_per_user: usize,
    pub exports: usize,
    /// An export whose reader takes nothing for this long is stopped.
    pub export_stall: Duration,
    /// Prepared exports (archive ids waiting to be fetched) per user.
    pub prepared_exports_per_user: usize,
    /// Imports that may be open (queued, waiting for a ticket or running) in the instance.
    pub open_imports: usize,
    /// Imports applied at once (worker slots; a batch import takes one per batch).
    pub import_workers: usize,
    /// A batch import that receives no first batch within this, no batch for `import_idle`,
    /// or lives longer than `import_lifetime`, fails and frees its user.
    pub import_open: Duration,
    pub import_idle: Duration,
    pub import_lifetime: Duration,
    /// A raw upload that stays waiting for a ticket decision this long fails.
    pub ticket_wait: Duration,
    /// Bytes of batch request bodies held in memory at once, in the instance.
    pub batch_memory: u64,
    /// Sign-in attempts: a burst, then one per `login_interval`, per client address and
    /// per user name.
    pub login_burst: u32,
    pub login_interval: Duration,
    /// Password hashes computed at once (each takes 19 MiB and a core).
    pub password_hashes: usize,
    /// Trust `X-Forwarded-For` for the client address (only behind a proxy that sets it).
    pub trust_forwarded: bool,
    pub secure_cookies: bool,
    /// Requests to embeddings providers in flight at once, in the instance (one per
    /// account), and the longest one may take (an account's setting may ask for less).
    pub embedding_requests: usize,
    pub embedding_timeout: Duration,
    /// Whether an account's embeddings URL may point inside the server's own network
    /// (loopback, private, link-local: a local Ollama). Off on a shared instance, so no
    /// account can make the server call its neighbours.
    pub embedding_private_hosts: bool,
    /// Bytes of an account's own files read, when a batch import opens, to tell which of
    /// the archive's files it holds already; past this, the rest are sent again.
    pub held_check_bytes: u64,
    /// Restore previews an account may ask for: a burst, then one per `preview_interval`
    /// (each reads the account's rows and the files it compares).
    pub preview_burst: u32,
    pub preview_interval: Duration,
    /// Restore previews open at once in the instance (one per user), and the rows one may
    /// hold in memory (the ids of rows the restore would add, and its items; about 100
    /// bytes each): past them, `preview_too_large`.
    pub open_previews: usize,
    pub preview_rows: usize,
    /// With PostgreSQL: a node of the instance that says nothing for this long (hung, its
    /// locks held) is fenced by another, and its work goes on there.
    pub node_silent: Duration,
}

impl Default for HostingLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            quota: parse_bytes(DEFAULT_QUOTA).ok(),
            exports_per_user: 2,
            exports: 2 * cores,
            export_stall: Duration::from_secs(60),
            prepared_exports_per_user: 4,
            open_imports: 64,
            import_workers: cores,
            import_open: Duration::from_secs(120),
            import_idle: Duration::from_secs(600),
            import_lifetime: Duration::from_secs(6 * 3600),
            ticket_wait: Duration::from_secs(3600),
            batch_memory: 64 << 20,
            login_burst: 10,
            login_interval: Duration::from_secs(6),
            password_hashes: cores,
            trust_forwarded: false,
            secure_cookies: false,
            embedding_requests: 4,
            embedding_timeout: DEFAULT_EMBEDDING_TIMEOUT,
            embedding_private_hosts: true,
            held_check_bytes: 8 << 30,
            preview_burst: 10,
            preview_interval: Duration::from_secs(60),
            open_previews: 4,
            preview_rows: 1_000_000,
            node_silent: Duration::from_secs(60),
        }
    }
}

impl HostingLimits {
    /// Applies `key=value,...` on top of `self`.
    pub fn parse_overrides(mut self, text: &str) -> Result<Self, String> {
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("{part:?} is not key=value"))?;
            let value = value.trim();
            let count = || value.parse::<usize>().map_err(|_| format!("{value:?} is not a number"));
            let seconds = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{value:?} is not a number of seconds"))
            };
            let flag = || match value {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" => Ok(false),
                _ => Err(format!("{value:?} is not true or false")),
            };
            match key.trim() {
                "quota" => self.quota = parse_quota(value)?,
                "exports_per_user" => self.exports_per_user = count()?.max(1),
                "exports" => self.exports = count()?.max(1),
                "export_stall" => self.export_stall = seconds()?,
                "prepared_exports_per_user" => self.prepared_exports_per_user = count()?.max(1),
                "open_imports" => self.open_imports = count()?.max(1),
                "import_workers" => self.import_workers = count()?.max(1),
                "import_open" => self.import_open = seconds()?,
                "import_idle" => self.import_idle = seconds()?,
                "import_lifetime" => self.import_lifetime = seconds()?,
                "ticket_wait" => self.ticket_wait = seconds()?,
                "batch_memory" => self.batch_memory = parse_bytes(value)?.max(16 << 20),
                "login_burst" => self.login_burst = u32::try_from(count()?.max(1)).unwrap_or(u32::MAX),
                "login_interval" => self.login_interval = seconds()?,
                "password_hashes" => self.password_hashes = count()?.max(1),
                "trust_forwarded" => self.trust_forwarded = flag()?,
                "secure_cookies" => self.secure_cookies = flag()?,
                "embedding_requests" => self.embedding_requests = count()?.max(1),
                "embedding_timeout" => {
                    self.embedding_timeout = seconds()?.clamp(SHORTEST_EMBEDDING_TIMEOUT, Duration::from_secs(300))
                }
                "embedding_private_hosts" => self.embedding_private_hosts = flag()?,
                "held_check_bytes" => self.held_check_bytes = parse_bytes(value)?,
                "preview_burst" => self.preview_burst = u32::try_from(count()?.max(1)).unwrap_or(u32::MAX),
                "preview_interval" => self.preview_interval = seconds()?,
                "open_previews" => self.open_previews = count()?.max(1),
                "preview_rows" => self.preview_rows = count()?.max(1),
                "node_silent" => self.node_silent = seconds()?.max(Duration::from_secs(1)),
                other => return Err(format!("unknown setting {other:?}")),
            }
        }
        Ok(self)
    }

    /// The defaults, the serve flags, then `LVBAK_HOSTING`.
    pub fn for_serve(config: &ServeConfig) -> Result<Self, String> {
        let base = Self { quota: config.quota.0, secure_cookies: config.secure_cookies, ..Self::default() };
        match std::env::var("LVBAK_HOSTING") {
            Ok(text) => base.parse_overrides(&text).map_err(|error| format!("LVBAK_HOSTING: {error}")),
            Err(_) => Ok(base),
        }
    }
}

/// Parses a caps override such as `entries=64,decompressed=1048576`, starting from the
/// documented caps. Keys: `archive`, `decompressed`, `line`, `legacy_line`, `entries`,
/// `metadata` (bytes or counts).
pub fn parse_limits(text: &str) -> Result<lvbak_core::Limits, String> {
    let mut limits = lvbak_core::Limits::STANDARD;
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("{part:?} is not key=value"))?;
        let value: u64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
        let slot = match key.trim() {
            "archive" => &mut limits.max_archive_bytes,
            "decompressed" => &mut limits.max_decompressed_bytes,
            "line" => &mut limits.max_line_bytes,
            "legacy_line" => &mut limits.max_legacy_line_bytes,
            "entries" => &mut limits.max_entries,
            "metadata" => &mut limits.max_metadata_bytes,
            other => return Err(format!("unknown cap {other:?}")),
        };
        *slot = value;
    }
    Ok(limits)
}

/// The caps in force: `LVBAK_LIMITS` if set, else the documented ones.
pub fn limits_from_env() -> Result<lvbak_core::Limits, String> {
    match std::env::var("LVBAK_LIMITS") {
        Ok(text) => parse_limits(&text).map_err(|error| format!("LVBAK_LIMITS: {error}")),
        Err(_) => Ok(lvbak_core::Limits::STANDARD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_override() {
        let limits = parse_limits("entries=64, decompressed=1048576").unwrap_or_default();
        assert_eq!((limits.max_entries, limits.max_decompressed_bytes), (64, 1_048_576));
        assert_eq!(limits.max_line_bytes, lvbak_core::Limits::STANDARD.max_line_bytes);
        assert!(parse_limits("entries=x").is_err() && parse_limits("bogus=1").is_err());
    }

    #[test]
    fn sizes_and_hosting_overrides() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("10G"), Ok(10 << 30));
        assert_eq!(parse_bytes("10GiB"), Ok(10 << 30));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("ten").is_err() && parse_bytes("5Q").is_err());
        assert_eq!(parse_quota("none"), Ok(None));
        let hosting = HostingLimits::default()
            .parse_overrides("quota=1M, export_stall=2, exports_per_user=1")
            .unwrap_or_default();
        assert_eq!(
            (hosting.quota, hosting.export_stall, hosting.exports_per_user),
            (Some(1 << 20), Duration::from_secs(2), 1)
        );
        assert!(HostingLimits::default().parse_overrides("bogus=1").is_err());
    }
}
