//! What the tests' own servers (PostgreSQL in `postgres_server`, SeaweedFS in
//! `s3_server`) share so that none outlives the test process: a free loopback port, `sh`
//! quoting, and the watcher — a shell in a process group of its own that ignores the
//! terminal's signals and holds the read end of a pipe whose write end only the test
//! process holds; its script waits for end-of-file (`cat >/dev/null`), which comes however
//! that process ends, then stops the server and removes its folder.

use std::os::unix::process::CommandExt as _;
use std::process::{ChildStdin, Command, Stdio};

/// A loopback port nothing listens on now.
pub fn free_port() -> Result<u16, String> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct free loopback ports: each is held until all are chosen (a port given
/// back at once may be handed out again by the next bind — SeaweedFS once got its filer's
/// HTTP and gRPC ports equal that way, and did not start).
pub fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()).map_err(|e| e.to_string()))
        .collect()
}

/// Quotes a path or word for `sh`.
pub fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Starts a watcher running `script` (which waits with `cat >/dev/null`); the pipe's
/// write end, to keep open for the life of the process. `what` names the server in errors.
pub fn start_watcher(script: &str, what: &str) -> Result<ChildStdin, String> {
    let mut watcher = Command::new("sh")
        .args(["-c", &format!("trap '' INT HUP TERM QUIT; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start the {what}'s watcher: {error}"))?;
    watcher.stdin.take().ok_or_else(|| format!("the {what}'s watcher has no standard input"))
}
