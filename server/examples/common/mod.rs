//! What the benchmark drivers and the process-level tests share: running the real `lvbak`
//! binary (with the environment a test gives it), a minimal HTTP/1.1 client over std (so
//! the drivers do not link the server), and reading a process's resident memory and
//! thread count from /proc.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `lvbak` binary built beside this example.
pub fn lvbak_binary() -> PathBuf {
    // Another build to compare with (an A/B run of the same benchmark).
    if let Some(binary) = std::env::var_os("LVBAK_BINARY") {
        return PathBuf::from(binary);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = dir.join("lvbak");
    assert!(binary.exists(), "build the binary first: cargo build -p lvbak-server --bin lvbak");
    binary
}

pub fn run_lvbak(args: &[&str]) {
    run_lvbak_with(args, &[]);
}

/// The same with extra environment (an object store's `LVBAK_OBJECT_STORE` and `AWS_*`).
pub fn run_lvbak_with(args: &[&str], env: &[(String, String)]) {
    let mut command = Command::new(lvbak_binary());
    command.args(args).stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "lvbak {args:?} failed");
}

/// A running `lvbak serve` and its address.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// A server with extra environment (`LVBAK_HOSTING`, `LVBAK_QUOTA`...). With
    /// `LVBAK_HEAPTRACK=<file>` in the driver's environment the server runs under heaptrack
    /// (a profile of its allocations; the memory figures then describe heaptrack's script);
    /// with `LVBAK_PERF=<file>`, under `perf record` (CPU samples of every thread, for
    /// `perf report -i <file>.<n>`, n counting the servers started from 1).
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = match (std::env::var("LVBAK_HEAPTRACK"), std::env::var("LVBAK_PERF")) {
            (Ok(out), _) => {
                let mut command = Command::new("heaptrack");
                command.args(["-o", &out]).arg(lvbak_binary());
                command
            }
            (_, Ok(out)) => {
                static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let mut command = Command::new("perf");
                command
                    .args(["record", "-q", "-e", "cpu-clock", "-F", "1999", "-g", "-o", &format!("{out}.{n}"), "--"])
                    .arg(lvbak_binary());
                command
            }
            _ => Command::new(lvbak_binary()),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("LVBAK_HOSTING")
            .env_remove("LVBAK_QUOTA")
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        // The URL line gives the address; the rest of stdout is drained, so the server never
        // writes into a closed pipe.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("http://").nth(1) {
                    let _ = sender.send(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
        });
        let address = receiver.recv_timeout(std::time::Duration::from_secs(60)).expect("the server printed no URL");
        Self { child, address }
    }

    /// Resets the kernel's record of peak resident memory (Linux: clear_refs 5).
    pub fn reset_peak_memory(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    fn status_field(&self, field: &str) -> f64 {
        status_field(self.child.id(), field).unwrap()
    }

    /// Peak resident memory since the last reset, in MiB.
    pub fn peak_memory_mib(&self) -> f64 {
        self.status_field("VmHWM") / 1024.0
    }

    /// Bytes the server has handed to `write` calls so far (`wchar` of `/proc/<pid>/io`:
    /// its WAL, database, journal and file writes, before the page cache), in MB.
    pub fn written_mb(&self) -> f64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).unwrap_or_default();
        io.lines().find_map(|line| line.strip_prefix("wchar: ")).and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0)
            / 1e6
    }

    /// Resident memory now, in MiB.
    pub fn memory_mib(&self) -> f64 {
        self.status_field("VmRSS") / 1024.0
    }

    /// Threads of the server process now.
    pub fn threads(&self) -> u64 {
        self.status_field("Threads") as u64
    }

    /// Stops the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One number of /proc/<pid>/status (`VmHWM`, `VmRSS`, `RssAnon`, `Threads`...), if the
/// process is there.
pub fn status_field(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// An HTTP answer: status, headers (names in lower case) and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 exchange that keeps the answer's headers; the body is read to its end.
pub fn request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse::<u64>().ok());
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).unwrap();
            let size = u64::from_str_radix(size_line.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            (&mut reader).take(size).read_to_end(&mut body).unwrap();
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).unwrap();
        }
    } else if let Some(length) = length {
        (&mut reader).take(length).read_to_end(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Reply { status, headers, body }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::env::var_os("LVBAK_PERF").is_some() {
            // perf writes its file on SIGINT, and ends the server with it.
            let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange; the body is streamed into `sink` (chunked encoding undone) and
/// its length returned with the status.
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    sink: &mut dyn Write,
) -> (u16, u64) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        chunked |= lower == "transfer-encoding: chunked";
        if let Some(value) = lower.strip_prefix("content-length: ") {
            length = value.parse::<u64>().ok();
        }
    }
    let mut total = 0u64;
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).unwrap();
            let size = u64::from_str_radix(size_line.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            total += std::io::copy(&mut (&mut reader).take(size), sink).unwrap();
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).unwrap();
        }
    } else {
        let mut limited: Box<dyn Read> = match length {
            Some(length) => Box::new((&mut reader).take(length)),
            None => Box::new(&mut reader),
        };
        total = std::io::copy(&mut limited, sink).unwrap();
    }
    (status, total)
}

/// Signs in and returns the bearer token.
pub fn login(address: &str, user: &str, password: &str) -> String {
    let body = format!("{{\"username\":\"{user}\",\"password\":\"{password}\"}}");
    let mut answer = Vec::new();
    let (status, _) = http(
        address,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        &mut answer,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let text = String::from_utf8(answer).unwrap();
    let start = text.find("\"token\":\"").unwrap() + 9;
    text[start..].split('"').next().unwrap().to_string()
}

/// A scratch directory for one benchmark run.
pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvbak-bench-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Creates the user `bench` (password `bench-password`) in `data_dir` with `characters`
/// bulk characters and nothing else.
pub fn seed_bulk_account(data_dir: &str, characters: usize) {
    seed_bulk_account_with_messages(data_dir, characters, 0);
}

/// [`seed_bulk_account`], the account also holding `messages` messages (in chats of 200).
pub fn seed_bulk_account_with_messages(data_dir: &str, characters: usize, messages: usize) {
    run_lvbak(&["user", "add", "bench", "--password", "bench-password", "--data-dir", data_dir]);
    let (bulk, chats) = (characters.to_string(), messages.div_ceil(200).to_string());
    let (demo, per_chat) = if messages > 0 { ("1", "200") } else { ("0", "0") };
    let none = ["--images", "0", "--vectors", "0", "--secrets", "0"];
    let mut args = vec!["seed", "--user", "bench", "--bulk-characters", &bulk, "--data-dir", data_dir];
    args.extend(["--characters", demo, "--chats", &chats, "--messages-per-chat", per_chat]);
    args.extend(none);
    run_lvbak(&args);
}

/// The median of three runs of `run(n)` (n = 0, 1, 2), in seconds.
pub fn median_of_3(mut run: impl FnMut(usize) -> f64) -> f64 {
    let mut times: Vec<f64> = (0..3).map(&mut run).collect();
    times.sort_by(f64::total_cmp);
    times[1]
}
