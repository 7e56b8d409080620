//! A PostgreSQL server for the tests (the server's unit tests and the end-to-end suites
//! alike), started by the tests: one private cluster per test process, made on first use
//! (`initdb` into a scratch folder, `pg_ctl start` on a free loopback port, as the
//! `postgres` user when the tests run as root), and a fresh database per test
//! ([`test_database`], dropped with its [`TestDatabase`]). `LVBAK_TEST_DATABASE_URL` names a
//! server to use instead (a database per test in it).
//!
//! The cluster never outlives the test process, however it ends (a failure, a panic,
//! `kill -9`): a watcher (`crate::watcher`) started before the cluster sees this process
//! go, then stops the cluster and removes its folder; it ignores the terminal's signals, so
//! a Ctrl-C that stops the tests does not stop it first.
//!
//! PostgreSQL not installed is a failure with the way to install it, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

use crate::watcher::{free_port, shell_quoted, start_watcher};

/// Where Debian's PostgreSQL keeps its programs: 15 first (what `scripts/setup --test`
/// installs), then any other version there.
const DEBIAN_BIN_DIRS: &str = "/usr/lib/postgresql";

/// The variable that names a server to use instead of a private cluster.
const DATABASE_URL_VARIABLE: &str = "LVBAK_TEST_DATABASE_URL";

/// A server the tests may create databases in.
struct TestServer {
    /// How to reach its maintenance database (to create and drop the tests' own).
    admin: tokio_postgres::Config,
    /// The private cluster's watcher (`None` for a server named by the variable); kept
    /// open for the life of the process.
    _watcher: Option<ChildStdin>,
}

/// One test's database, dropped (its connections ended) when this is dropped.
pub struct TestDatabase {
    /// How to reach it.
    pub config: tokio_postgres::Config,
    /// The same as a `postgres://user@host:port/database` URL (what `--database-url` takes).
    pub url: String,
    admin: tokio_postgres::Config,
    name: String,
}

/// A fresh, empty database on the test process's server (started on first use). This
/// blocks: call it off an async runtime's threads (e.g. in `spawn_blocking`).
pub fn test_database() -> TestDatabase {
    let server = server().as_ref().unwrap_or_else(|why| panic!("{why}"));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!(
        "lvbak_test_{}_{}_{}",
        std::process::id(),
        started.subsec_nanos(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    run_on_admin(&server.admin, format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|error| panic!("cannot make a database on the tests' PostgreSQL server: {error}"));
    let mut config = server.admin.clone();
    config.dbname(&name);
    TestDatabase { url: url_of(&config), config, admin: server.admin.clone(), name }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own (this may run inside a test's runtime,
    /// which cannot be blocked on), ending the connections still open to it.
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped =
            std::thread::spawn(move || run_on_admin(&admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")));
        let _ = dropped.join();
    }
}

/// Runs `sql` on the server's maintenance database, on a runtime of this thread's own.
fn run_on_admin(admin: &tokio_postgres::Config, sql: String) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = admin.connect(NoTls).await.map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        client.batch_execute(&sql).await.map_err(|error| error.to_string())
    })
}

/// `config` as a `postgres://` URL: its first host and port, user, password and database.
fn url_of(config: &tokio_postgres::Config) -> String {
    /// Everything but RFC 3986's unreserved characters percent-encoded.
    fn encoded(text: &[u8]) -> String {
        text.iter()
            .map(|&byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let (host, socket) = match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => (format!("[{host}]"), None),
        Some(Host::Tcp(host)) => (host.clone(), None),
        Some(Host::Unix(folder)) => (String::new(), Some(folder.display().to_string())),
        None => ("localhost".to_string(), None),
    };
    let user = config.get_user().map(|user| encoded(user.as_bytes()));
    let password = config.get_password().map(|password| format!(":{}", encoded(password)));
    let credentials = match (user, password) {
        (Some(user), password) => format!("{user}{}@", password.unwrap_or_default()),
        (None, _) => String::new(),
    };
    let database = encoded(config.get_dbname().unwrap_or_default().as_bytes());
    let query = socket.map(|folder| format!("?host={}", encoded(folder.as_bytes()))).unwrap_or_default();
    format!("postgres://{credentials}{host}:{port}/{database}{query}")
}

/// The process's server: made once, by the first test that asks.
fn server() -> &'static Result<TestServer, String> {
    static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(DATABASE_URL_VARIABLE) {
        Ok(url) => url
            .parse::<tokio_postgres::Config>()
            .map(|admin| TestServer { admin, _watcher: None })
            .map_err(|error| format!("{DATABASE_URL_VARIABLE} is not a PostgreSQL URL: {error}")),
        Err(_) => start_private_cluster(),
    })
}

/// PostgreSQL's programs, or why the tests cannot run.
fn bin_dir() -> Result<PathBuf, String> {
    let preferred = Path::new(DEBIAN_BIN_DIRS).join("15/bin");
    if preferred.join("initdb").is_file() {
        return Ok(preferred);
    }
    let mut others: Vec<PathBuf> = std::fs::read_dir(DEBIAN_BIN_DIRS)
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    others.sort();
    others.pop().ok_or_else(|| {
        format!(
            "PostgreSQL is not installed (no {DEBIAN_BIN_DIRS}/*/bin/initdb): the storage tests run on PostgreSQL \
             too. Run `scripts/setup --test`, or set {DATABASE_URL_VARIABLE} to a server where the tests may \
             create databases."
        )
    })
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// How the cluster's programs are run: as `postgres` when this process is root, else as
/// this process's user.
fn as_cluster_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The numeric id of the `postgres` user and group (`id`).
fn postgres_owner() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let output = Command::new("id").args([flag, "postgres"]).output().map_err(|error| error.to_string())?;
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|_| "there is no `postgres` user to run the tests' cluster as (scripts/setup --test)".to_string())
    };
    Ok((id("-u")?, id("-g")?))
}

/// Starts the watcher, then `initdb` and `pg_ctl start` on a free port (a few tries: a port
/// found free may be taken before the server binds it).
fn start_private_cluster() -> Result<TestServer, String> {
    let bin = bin_dir()?;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let folder = std::env::temp_dir().join(format!("lvbak-pg-{}-{}", std::process::id(), started.subsec_nanos()));
    std::fs::create_dir_all(&folder).map_err(|error| format!("cannot make {}: {error}", folder.display()))?;
    if is_root() {
        let (uid, gid) = postgres_owner()?;
        std::os::unix::fs::chown(&folder, Some(uid), Some(gid))
            .map_err(|error| format!("cannot give {} to postgres: {error}", folder.display()))?;
    }
    let data = folder.join("data");
    let watcher = start_cluster_watcher(&bin, &folder, &data)?;

    let initdb = as_cluster_owner(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
        .output()
        .map_err(|error| format!("cannot run initdb: {error}"))?;
    if !initdb.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr)));
    }
    let mut last_failure = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        // Room for every server a test process runs at once (each pools its own
        // connections), and no disk waits: the cluster is thrown away.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            folder.display()
        );
        let start = as_cluster_owner(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(folder.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run pg_ctl: {error}"))?;
        if start.status.success() {
            let mut admin = tokio_postgres::Config::new();
            admin.host("127.0.0.1").port(port).user("postgres").dbname("postgres");
            return Ok(TestServer { admin, _watcher: Some(watcher) });
        }
        last_failure = std::fs::read_to_string(folder.join("server.log")).unwrap_or_default();
    }
    Err(format!("the tests' PostgreSQL cluster did not start:\n{last_failure}"))
}

/// The watcher (see the module documentation): waits for end-of-file on its standard
/// input, then stops the cluster at once and removes its folder.
fn start_cluster_watcher(bin: &Path, folder: &Path, data: &Path) -> Result<ChildStdin, String> {
    let run_as = if is_root() { "runuser -u postgres -- " } else { "" };
    let quoted = |path: &Path| shell_quoted(&path.display().to_string());
    let script = format!(
        "cat >/dev/null; {run_as}{pg_ctl} -D {data} -m immediate -w stop; rm -rf {folder}",
        pg_ctl = quoted(&bin.join("pg_ctl")),
        data = quoted(data),
        folder = quoted(folder),
    );
    start_watcher(&script, "cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_written_as_urls_that_read_back_the_same() {
        let config: tokio_postgres::Config =
            "postgres://lvbak:p%40ss%20word@127.0.0.1:5433/lvbak_test_1".parse().unwrap();
        let url = url_of(&config);
        assert_eq!(url, "postgres://lvbak:p%40ss%20word@127.0.0.1:5433/lvbak_test_1");
        let mut plain = tokio_postgres::Config::new();
        plain.host("127.0.0.1").port(5432).user("postgres").dbname("x");
        assert_eq!(url_of(&plain), "postgres://postgres@127.0.0.1:5432/x");
        let back: tokio_postgres::Config = url_of(&plain).parse().unwrap();
        assert_eq!(back.get_dbname(), Some("x"));
    }
}
