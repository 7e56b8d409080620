//! nginx as the tests' load balancer (Debian's `/usr/sbin/nginx`, installed by
//! `scripts/setup --test`): [`Balancer::start`] writes a config of its own into a scratch
//! folder (pid file, error and access logs, every temp path there too) for a round-robin
//! upstream over the given nodes, and runs `nginx -c CONF -p DIR -e ERRLOG` with
//! `daemon off;` as a child process in a process group of its own, on a free 127.0.0.1 port.
//!
//! The proxying is what a deployment in front of lvbak nodes would use: HTTP/1.1 to the
//! nodes, request and response bodies streamed (no buffering), 64 MiB bodies, long read
//! timeouts, and nginx's default `proxy_next_upstream error timeout` (a request that could
//! not be sent to a node goes to the next one; an idempotent one cut while it was being
//! answered too, unless its body had begun to go), a node taken out for 5 s after one
//! failure (`max_fails=1 fail_timeout=5s`). The access log names the node (or nodes) each
//! request went to.
//!
//! nginx never outlives its [`Balancer`]: dropping it kills the process group (master and
//! workers; `daemon off` does not take the workers down with a killed master), and a
//! watcher (`crate::watcher`) does the same once the test process is gone, however it ends.
//! nginx not installed is a failure with the way to install it, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

use crate::watcher::{free_port, start_watcher};

/// Debian's nginx.
pub const NGINX: &str = "/usr/sbin/nginx";
/// `-e` (the error log before the config is read) came in nginx 1.19.5.
const NEEDED: (u32, u32, u32) = (1, 19, 5);
/// How long nginx may take to listen once started.
const STARTUP: Duration = Duration::from_secs(15);

/// A running nginx balancing over lvbak nodes.
pub struct Balancer {
    child: Child,
    address: String,
    dir: PathBuf,
    _watcher: ChildStdin,
}

impl Balancer {
    /// nginx on a free loopback port, round-robin over `upstreams` (`127.0.0.1:port`, or
    /// `http://127.0.0.1:port`). Fails the test, with nginx's own words and its error log,
    /// when it does not start.
    pub fn start<S: AsRef<str>>(upstreams: &[S]) -> Self {
        assert!(!upstreams.is_empty(), "a balancer needs at least one upstream");
        check_version();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lvbak-nginx-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for temp in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("temp").join(temp)).unwrap();
        }
        let upstreams: Vec<String> =
            upstreams.iter().map(|upstream| upstream.as_ref().trim_start_matches("http://").to_string()).collect();
        // A port found free may be taken before nginx binds it: a few tries.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port().unwrap_or_else(|why| panic!("no free port for nginx: {why}"));
            let address = format!("127.0.0.1:{port}");
            let config = dir.join("nginx.conf");
            std::fs::write(&config, config_text(&dir, &address, &upstreams)).unwrap();
            let error_log = dir.join("error.log");
            let mut child = Command::new(NGINX)
                .arg("-c")
                .arg(&config)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
                .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot run {NGINX}: {error}"));
            let group = child.id();
            let watcher = start_watcher(&format!("cat >/dev/null; kill -9 -- -{group} 2>/dev/null"), "nginx")
                .unwrap_or_else(|why| panic!("{why}"));
            let deadline = Instant::now() + STARTUP;
            let exited = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if TcpStream::connect(&address).is_ok() {
                    break None;
                }
                if Instant::now() > deadline {
                    let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
                    let _ = child.wait();
                    panic!("nginx did not listen on {address} within {STARTUP:?}:\n{}", logs_of(&dir));
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            match exited {
                None => return Self { child, address, dir, _watcher: watcher },
                Some(status) => {
                    let logs = logs_of(&dir);
                    if !logs.contains("Address already in use") {
                        panic!("nginx exited at once ({status}):\n{logs}");
                    }
                    failures.push(logs);
                }
            }
        }
        panic!("nginx found no free port in 5 tries:\n{}", failures.join("\n"));
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The folder holding the config, logs and temp paths.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log so far: one line per request, with the node(s) it went to.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Stops nginx (SIGSTOP to master and workers): requests in flight and new ones wait,
    /// their connections held, until [`Balancer::resume`].
    pub fn pause(&self) {
        kill_process_group(Pid::from_child(&self.child), Signal::STOP).unwrap();
    }

    /// Lets a paused nginx go on (SIGCONT).
    pub fn resume(&self) {
        kill_process_group(Pid::from_child(&self.child), Signal::CONT).unwrap();
    }
}

impl Drop for Balancer {
    /// Kills master and workers (their process group); the folder stays when the test is
    /// failing, for its logs.
    fn drop(&mut self) {
        let _ = kill_process_group(Pid::from_child(&self.child), Signal::KILL);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("nginx's config and logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Fails the test unless nginx is installed and has `-e`.
fn check_version() {
    let output = Command::new(NGINX).arg("-v").output().unwrap_or_else(|error| {
        panic!(
            "nginx is not installed ({NGINX}: {error}): the cluster test runs real nginx. Run `scripts/setup --test`."
        )
    });
    // `nginx version: nginx/1.22.1`, on standard error.
    let said = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    let version = said.split("nginx/").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_default();
    let parts: Vec<u32> = version.split('.').filter_map(|part| part.parse().ok()).collect();
    let found = (parts.first().copied(), parts.get(1).copied(), parts.get(2).copied());
    let (Some(major), Some(minor), Some(patch)) = found else {
        panic!("cannot read nginx's version from {said:?}");
    };
    assert!(
        (major, minor, patch) >= NEEDED,
        "nginx {version} is older than {}.{}.{} (no -e option)",
        NEEDED.0,
        NEEDED.1,
        NEEDED.2
    );
}

/// Whether this process runs as root: then nginx's workers would switch to `nobody`, who
/// cannot write the temp paths, unless the config says `user root;`.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The config: everything nginx writes under `dir`, one worker, the upstream, the proxy.
fn config_text(dir: &Path, address: &str, upstreams: &[String]) -> String {
    let at = |name: &str| dir.join(name).display().to_string();
    let user = if is_root() { "user root;\n" } else { "" };
    let servers: String =
        upstreams.iter().map(|upstream| format!("        server {upstream} max_fails=1 fail_timeout=5s;\n")).collect();
    format!(
        r#"# Written by lvbak_tests::nginx for one test run.
{user}daemon off;
worker_processes 1;
pid {pid};
error_log {error_log} info;

events {{
    worker_connections 512;
}}

http {{
    log_format lvbak '$msec $request_method $request_uri $status $body_bytes_sent '
                     'upstream=$upstream_addr upstream_status=$upstream_status time=$request_time';
    access_log {access_log} lvbak;
    client_body_temp_path {client_body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    upstream lvbak_nodes {{
{servers}    }}

    server {{
        listen {address};
        client_max_body_size 64m;
        client_body_timeout 600s;
        send_timeout 600s;

        location / {{
            proxy_pass http://lvbak_nodes;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_connect_timeout 5s;
            proxy_send_timeout 600s;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#,
        pid = at("nginx.pid"),
        error_log = at("error.log"),
        access_log = at("access.log"),
        client_body = at("temp/client_body"),
        proxy = at("temp/proxy"),
        fastcgi = at("temp/fastcgi"),
        uwsgi = at("temp/uwsgi"),
        scgi = at("temp/scgi"),
    )
}

/// What nginx said when it failed: its standard error and the end of its error log.
fn logs_of(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let log = read("error.log");
    let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    format!("--- nginx standard error\n{}--- error log (end)\n{}", read("stderr.log"), tail.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_everything_in_its_folder_and_balances_over_every_node() {
        let dir = Path::new("/scratch/here");
        let text = config_text(dir, "127.0.0.1:8080", &["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        assert!(text.contains("server 127.0.0.1:1 max_fails=1 fail_timeout=5s;"));
        assert!(text.contains("server 127.0.0.1:2 max_fails=1 fail_timeout=5s;"));
        assert!(text.contains("listen 127.0.0.1:8080;"));
        assert!(text.contains("daemon off;"));
        for path in ["nginx.pid", "error.log", "access.log", "temp/proxy", "temp/client_body", "temp/scgi"] {
            assert!(text.contains(&format!("/scratch/here/{path}")), "{path}");
        }
        assert_eq!(text.contains("user root;"), is_root());
    }
}
