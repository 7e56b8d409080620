//! The two-node cluster (issue 22's "done when"): two real `lvbak serve` processes over one
//! PostgreSQL database and one S3 prefix (the tests' SeaweedFS), each with a data directory
//! of its own, behind a real nginx (`lvbak_tests::nginx`, round robin). A real Chromium
//! signs in through nginx and imports a real export — its requests alternating between the
//! nodes — and the node that owns the job (`lvbak_open_jobs` in PostgreSQL) is killed with
//! SIGKILL mid-import. The other node takes the job over under the same id, from batch 0;
//! the page, given the same file again, resumes it to the end, and the account then
//! exports (from the surviving node, and through nginx) exactly as the single-node SQLite
//! server it came from exports it. A second account asks for the job by its id before and
//! after the kill, and is refused each time without taking it over.
//!
//! The nodes log (`RUST_LOG=info,lvbak_server=debug,tokio_postgres=warn`, or the filter in
//! `LVBAK_CLUSTER_LOG`) into files in the test's scratch folder; when the test fails, the
//! ends of those logs and of nginx's are printed, and the folder is kept with nginx's logs
//! copied in (with `LVBAK_CLUSTER_KEEP` set, also when it passes). Screenshots land
//! in `$CARGO_TARGET_DIR/browser-artefacts/cluster-*.png`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lvbak_core::upload::{upload_batches, BatchSink, UploadPlan, UploadProgress};
use lvbak_core::{Archive, FormatError, Limits};
use lvbak_server::seed::SeedOptions;
use lvbak_tests::nginx::Balancer;
use lvbak_tests::postgres_server::{test_database, TestDatabase};
use lvbak_tests::s3_server::test_prefix;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{ScratchDir, TestServer};
use crate::webdriver::Browser;

/// Large pictures put in the source account, each bigger than the 64 KiB under which the
/// uploader bundles files: each is a batch of its own.
const PICTURES: usize = 40;
const PICTURE_BYTES: usize = 96 * 1024;
/// The batch the import must have reached through nginx before its node is killed (the
/// job's `nextBatch`), unless `LVBAK_CLUSTER_KILL_AT` says another (the archive's batch
/// count, printed at the start, kills it once every batch went: during the commit).
const KILL_AT_BATCH: u64 = 3;
/// How much of a log a failure prints.
const TAIL_LINES: usize = 60;

const VICTIM: &str = "cluster-victim";
const HOSTILE: &str = "cluster-mallory";

/// The account the archive comes from: thousands of characters (their rows, a few hundred
/// with avatars), chats and messages, vectors, and no API keys (no ticket to answer).
fn seed_options() -> SeedOptions {
    SeedOptions {
        characters: 200,
        chats: 24,
        messages_per_chat: 500,
        images: 4,
        vectors: 300,
        secrets: 0,
        bulk_characters: 3_000,
        ..SeedOptions::default()
    }
}

fn password_of(name: &str) -> String {
    format!("pw-{name}-correct-horse-battery")
}

/// The `lvbak` binary beside the test binary (`target/debug/lvbak`).
fn lvbak_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(Path::parent).unwrap().join("lvbak");
    assert!(
        binary.exists(),
        "no lvbak binary at {}: build it first (cargo build -p lvbak-server --bin lvbak)",
        binary.display()
    );
    binary
}

/// The last `lines` lines of a file (or what is wrong with reading it).
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("({}: {error})", path.display()),
    }
}

/// One `lvbak serve` process.
struct Node {
    name: &'static str,
    child: Option<Child>,
    /// `127.0.0.1:port`, as the process printed it.
    address: String,
    log: PathBuf,
}

impl Node {
    /// Starts `lvbak serve` over a data directory of its own in `dir`, with `env`; its
    /// address read from the URL line it prints, the rest of its standard output drained,
    /// its log in `dir/<name>.log`.
    fn start(name: &'static str, dir: &Path, web_dir: &Path, env: &[(String, String)]) -> Self {
        let data = dir.join(format!("{name}-data"));
        std::fs::create_dir_all(&data).unwrap();
        let log = dir.join(format!("{name}.log"));
        let level =
            std::env::var("LVBAK_CLUSTER_LOG").unwrap_or_else(|_| "info,lvbak_server=debug,tokio_postgres=warn".into());
        let mut command = Command::new(lvbak_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--web-dir")
            .arg(web_dir)
            .env("RUST_LOG", level)
            .env_remove("LVBAK_HOSTING")
            .env_remove("LVBAK_QUOTA")
            .env_remove("LVBAK_NODE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (variable, value) in env {
            command.env(variable, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("http://").nth(1) {
                    let _ = sender.send(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => Self { name, child: Some(child), address, log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {name} printed no URL within 60 s; its log:\n{}", tail(&log, TAIL_LINES));
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// SIGSTOP (`true`) or SIGCONT: the process hangs, its connections open and its locks
    /// held, or goes on.
    fn hang(&self, hangs: bool) {
        let pid = self.child.as_ref().expect("the node runs").id().to_string();
        let signal = if hangs { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh identity key file in `dir` (32 random bytes, base64, mode 0600), as an operator
/// makes one for every node.
fn identity_key_file(dir: &Path) -> PathBuf {
    use base64::Engine as _;
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut key).unwrap();
    let path = dir.join("identity.key");
    std::fs::write(&path, format!("{}\n", base64::engine::general_purpose::STANDARD.encode(key))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Two nodes on one database and one object store prefix, behind nginx.
struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    balancer: Balancer,
    /// What a node and the CLI are given: the database and the object store.
    env: Vec<(String, String)>,
    postgres: tokio_postgres::Client,
    _database: TestDatabase,
}

impl Cluster {
    /// The cluster, its nodes given `faults` (`crate::faults`' variables, a path in the
    /// cluster's folder each) besides the database and the object store.
    async fn start(web_dir: PathBuf, faults: &[(&str, &str)]) -> Self {
        Self::start_with(web_dir, faults, &[]).await
    }

    /// As [`Self::start`], the nodes also given `settings` (variables and their values).
    async fn start_with(web_dir: PathBuf, faults: &[(&str, &str)], settings: &[(&str, &str)]) -> Self {
        let faults: Vec<(String, String)> =
            faults.iter().map(|(name, file)| (name.to_string(), file.to_string())).collect();
        let settings: Vec<(String, String)> =
            settings.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let (cluster, database) = tokio::task::spawn_blocking(move || {
            let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let dir = std::env::temp_dir().join(format!("lvbak-cluster-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let database = test_database();
            let place = test_prefix();
            let mut env = place.env();
            env.push(("LVBAK_DATABASE_URL".into(), database.url.clone()));
            // Every node of an instance (and the CLI) gets the same identity key.
            env.push(("LVBAK_IDENTITY_KEY_FILE".into(), identity_key_file(&dir).to_str().unwrap().to_string()));
            let mut node_env = env.clone();
            node_env
                .extend(faults.into_iter().map(|(name, file)| (name, dir.join(file).to_str().unwrap().to_string())));
            node_env.extend(settings);
            // One after the other: each recovers what an earlier process left at start.
            let nodes = vec![
                Node::start("node-a", &dir, &web_dir, &node_env),
                Node::start("node-b", &dir, &web_dir, &node_env),
            ];
            let balancer = Balancer::start(&nodes.iter().map(Node::url).collect::<Vec<_>>());
            ((dir, nodes, balancer, env), database)
        })
        .await
        .unwrap();
        let (dir, nodes, balancer, env) = cluster;
        let (postgres, connection) = database.config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        Self { dir, nodes, balancer, env, postgres, _database: database }
    }

    /// Runs the CLI over the cluster's database and object store (a data directory of its
    /// own); its standard output.
    fn lvbak(&self, args: &[&str]) -> String {
        let data = self.dir.join("cli-data");
        let output = Command::new(lvbak_binary())
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .envs(self.env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "lvbak {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn add_user(&self, name: &str) {
        self.lvbak(&["user", "add", name, "--password", &password_of(name)]);
    }

    /// The node whose URL is `url`.
    fn node_at(&self, url: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.url() == url)
    }

    /// `lvbak_open_jobs`' row for `job`: (node_url, user_id).
    async fn open_job(&self, job: &str) -> Option<(Option<String>, String)> {
        let rows = self
            .postgres
            .query("SELECT node_url, user_id FROM lvbak_open_jobs WHERE job_id = $1", &[&job])
            .await
            .unwrap_or_else(|error| {
                panic!("cannot read lvbak_open_jobs (has the server side of issue 22 landed?): {error}")
            });
        rows.first().map(|row| (row.get(0), row.get(1)))
    }

    /// Whether some connection holds the advisory lock `lvbak_open_jobs` gives `job` (the
    /// job's node holds it while it runs the job: PostgreSQL frees a dead node's locks, and
    /// a free lock is how the other nodes know the job's node is gone).
    async fn job_lock_held(&self, job: &str) -> bool {
        crate::nodes::lock_holder_of(&self.postgres, job).await.is_some()
    }

    /// The number of `lvbak_open_jobs` rows of `user_id`.
    async fn open_jobs_of(&self, user_id: &str) -> i64 {
        let row = self
            .postgres
            .query_one("SELECT count(*) FROM lvbak_open_jobs WHERE user_id = $1", &[&user_id])
            .await
            .unwrap();
        row.get(0)
    }

    /// How many requests nginx sent to each node (by the access log's upstream field) among
    /// those whose path contains `part`.
    fn requests_per_node(&self, part: &str) -> Vec<(String, usize)> {
        let log = self.balancer.access_log();
        self.nodes
            .iter()
            .map(|node| {
                let count = log
                    .lines()
                    .filter(|line| line.contains(part))
                    .filter(|line| line.contains(&format!("upstream={}", node.address)))
                    .count();
                (node.name.to_string(), count)
            })
            .collect()
    }
}

impl Drop for Cluster {
    /// Kills the nodes (nginx goes with its `Balancer`); when the test is failing, prints
    /// the ends of their logs and nginx's first and keeps the folder.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                let state = if node.child.is_some() { "running" } else { "killed" };
                eprintln!(
                    "\n===== {} ({}, {state}) log, last {TAIL_LINES} lines\n{}",
                    node.name,
                    node.address,
                    tail(&node.log, TAIL_LINES)
                );
            }
            let lines = |text: String| {
                let all: Vec<String> = text.lines().map(str::to_string).collect();
                all[all.len().saturating_sub(TAIL_LINES)..].join("\n")
            };
            eprintln!("\n===== nginx error log, last {TAIL_LINES} lines\n{}", lines(self.balancer.error_log()));
            eprintln!("\n===== nginx access log, last {TAIL_LINES} lines\n{}", lines(self.balancer.access_log()));
        }
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() || std::env::var_os("LVBAK_CLUSTER_KEEP").is_some() {
            let _ = std::fs::write(self.dir.join("nginx-access.log"), self.balancer.access_log());
            let _ = std::fs::write(self.dir.join("nginx-error.log"), self.balancer.error_log());
            eprintln!("the cluster's logs and data are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// An archive of `PICTURES` images, each a row and a file of pseudo-random bytes (deflate
/// cannot shrink them).
fn pictures_archive() -> Vec<u8> {
    let manifest = json!({"schemaVersion": 1, "producer": "lumiverse", "exportedAt": 1_795_313_867,
        "archiveId": "c1a5e000-0000-4000-8000-000000000001", "producerVersion": null, "ndjsonFormatVersion": 1,
        "includeVectors": false, "embeddingConfig": {"provider": null, "model": null, "dimension": null},
        "counts": {}, "missingFiles": [], "hasEncryptedSecrets": false, "secretsCount": 0});
    let mut rows = String::new();
    let mut files = Vec::new();
    for index in 0..PICTURES {
        let id = format!("c1a5e000-0000-4000-8000-{:012x}", index + 0x100);
        let name = format!("{id}.png");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let bytes: Vec<u8> = (0..PICTURE_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let row = json!({"id": id, "filename": name, "original_filename": format!("large-{index}.png"),
            "mime_type": "image/png", "byte_size": bytes.len(), "width": 640, "height": 480, "has_thumbnail": 0,
            "created_at": 1_795_313_867, "user_id": "x"});
        rows.push_str(&format!("{row}\n"));
        files.push(RawEntry::stored(&format!("files/images/{name}"), &bytes));
    }
    let mut entries = vec![
        RawEntry::deflated("manifest.json", manifest.to_string().as_bytes()),
        RawEntry::deflated("database/images.ndjson", rows.as_bytes()),
    ];
    entries.extend(files);
    RawZip::new(entries).build()
}

/// Counts the batches the page's uploader cuts `archive` into for a fresh account.
struct CountingSink {
    batches: u64,
}

impl BatchSink for CountingSink {
    fn send(&mut self, _: u64, _: &[u8]) -> Result<(), FormatError> {
        self.batches += 1;
        Ok(())
    }

    fn progress(&mut self, _: &UploadProgress) {}

    fn vectors_accepted(&mut self) -> Result<bool, FormatError> {
        Ok(true)
    }
}

fn batches_of(archive: &[u8]) -> u64 {
    let opened = Archive::open(Cursor::new(archive), Limits::STANDARD).unwrap();
    let mut sink = CountingSink { batches: 0 };
    let report = upload_batches(&opened, UploadPlan::default(), &mut sink).unwrap();
    assert_eq!(report.batches, sink.batches);
    report.batches
}

/// The entries two exports of one account must share: its tables (`database/`), vectors
/// (`lancedb/`) and files, with the account's user id written `<user>` (each instance gives
/// the account an id of its own) and each table's lines sorted (each database reads rows in
/// its own plan's order).
fn comparable(archive: &[u8], user_id: &str) -> BTreeMap<String, Vec<u8>> {
    crate::export::entries(archive)
        .into_iter()
        .filter(|(name, _)| ["database/", "lancedb/", "files/"].iter().any(|prefix| name.starts_with(prefix)))
        .map(|(name, bytes)| {
            let name = name.replace(user_id, "<user>");
            if !name.ends_with(".ndjson") {
                return (name, bytes);
            }
            let text = String::from_utf8(bytes).unwrap().replace(user_id, "<user>");
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            (name, lines.join("\n").into_bytes())
        })
        .collect()
}

/// Asserts an export equals the reference's, naming the first entry, line or byte that
/// differs.
fn assert_same_export(label: &str, reference: &BTreeMap<String, Vec<u8>>, export: &BTreeMap<String, Vec<u8>>) {
    let names = |entries: &BTreeMap<String, Vec<u8>>| entries.keys().cloned().collect::<BTreeSet<_>>();
    let (expected, found) = (names(reference), names(export));
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{label}: entries missing {missing:?}, extra {extra:?}");
    let (mut lines, mut file_bytes, mut files) = (0, 0, 0);
    for (name, want) in reference {
        let got = &export[name];
        if name.ends_with(".ndjson") {
            let (want, got) = (String::from_utf8_lossy(want), String::from_utf8_lossy(got));
            let (want_lines, got_lines): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
            if let Some(at) =
                (0..want_lines.len().max(got_lines.len())).find(|&i| want_lines.get(i) != got_lines.get(i))
            {
                panic!(
                    "{label}: {name} differs ({} lines in the reference, {} here); first difference, sorted line \
                     {at}:\n--- reference\n{:?}\n--- {label}\n{:?}",
                    want_lines.len(),
                    got_lines.len(),
                    want_lines.get(at),
                    got_lines.get(at)
                );
            }
            lines += want_lines.len();
        } else {
            if want != got {
                let at = want.iter().zip(got.iter()).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
                panic!(
                    "{label}: file {name} differs ({} bytes in the reference, {} here), first at byte {at}",
                    want.len(),
                    got.len()
                );
            }
            files += 1;
            file_bytes += want.len();
        }
    }
    eprintln!(
        "{label}: {} entries equal the reference ({lines} table and vector lines, {files} files of {file_bytes} bytes)",
        reference.len()
    );
}

/// A body and its content type.
type Body = Option<(Vec<u8>, &'static str)>;

/// An HTTP call with a bearer token (a body goes with its SHA-256, as batches do): status
/// and answer (JSON when it is JSON).
async fn call(client: &reqwest::Client, method: &str, url: &str, token: &str, body: Body) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some((body, content_type)) = body {
        request = request
            .header("content-type", content_type)
            .header("x-batch-sha256", hex::encode(Sha256::digest(&body)))
            .body(body);
    }
    let response = request.send().await.unwrap_or_else(|error| panic!("{url}: {error}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn login(client: &reqwest::Client, base: &str, name: &str) -> String {
    let body = json!({"username": name, "password": password_of(name)});
    let response = client.post(format!("{base}/api/v1/auth/login")).json(&body).send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    assert_eq!(status, 200, "sign-in of {name} through {base}: {answer}");
    answer["token"].as_str().unwrap().to_string()
}

/// What the hostile account asks of the victim's job on `base`: each request and its
/// answer's status and body.
async fn hostile_requests(client: &reqwest::Client, base: &str, token: &str, job: &str) -> Vec<(String, u16, Value)> {
    let job_url = format!("{base}/api/v1/user-data/import/{job}");
    let commit = serde_json::to_vec(&json!({"batches": 1})).unwrap();
    let requests: Vec<(&str, String, Body)> = vec![
        ("GET", format!("{job_url}/status"), None),
        ("GET", format!("{job_url}/held-rows"), None),
        ("GET", format!("{job_url}/held-files"), None),
        ("PUT", format!("{job_url}/batches/0"), Some((b"LVB1 not yours".to_vec(), "application/octet-stream"))),
        ("POST", format!("{job_url}/vectors-check"), None),
        ("POST", format!("{job_url}/commit"), Some((commit, "application/json"))),
        ("POST", format!("{job_url}/cancel"), None),
    ];
    let mut answers = Vec::new();
    for (method, url, body) in requests {
        let (status, answer) = call(client, method, &url, token, body).await;
        answers.push((format!("{method} {}", url.trim_start_matches(base)), status, answer));
    }
    answers
}

fn assert_all_not_found(when: &str, answers: &[(String, u16, Value)]) {
    for (request, status, answer) in answers {
        assert_eq!(*status, 404, "{when}: the hostile account's {request} was answered {status}: {answer}");
    }
    eprintln!("{when}: the hostile account's {} requests were each answered 404", answers.len());
}

/// The import card as the page shows it.
#[derive(Debug)]
struct Card {
    status: String,
    progress: String,
    start: String,
    start_enabled: bool,
}

async fn card(browser: &Browser) -> Card {
    let read = browser
        .script(
            "const t = (id) => (document.querySelector(`[data-testid=\"${id}\"]`) || {}).textContent || ''; \
             return {status: t('import-status'), progress: t('import-progress'), start: t('import-start'), \
             enabled: !document.querySelector('[data-testid=\"import-start\"]').disabled}",
        )
        .await;
    let text = |field: &str| read[field].as_str().unwrap_or_default().to_string();
    Card {
        status: text("status"),
        progress: text("progress"),
        start: text("start"),
        start_enabled: read["enabled"] == true,
    }
}

/// Waits (at most `limit`) until the card satisfies `done`; a screenshot and the card in
/// the failure otherwise.
async fn wait_card(browser: &Browser, what: &str, limit: Duration, done: impl Fn(&Card) -> bool) -> Card {
    let deadline = Instant::now() + limit;
    loop {
        let now = card(browser).await;
        if done(&now) {
            return now;
        }
        if Instant::now() > deadline {
            browser.screenshot(&format!("cluster-failed-{}.png", what.replace(' ', "-"))).await;
            panic!("the page never showed {what} within {limit:?}; last {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The job id the page remembers for its upload (localStorage, per archive and file).
const REMEMBERED_JOB: &str = "for (let i = 0; i < localStorage.length; i++) { const key = localStorage.key(i); \
     if (key.startsWith('lvbak-upload:')) return localStorage.getItem(key); } return null;";

const ENDED: [&str; 4] = ["interrupted", "complete", "failed", "cancelled"];

/// The archive both tests import, and what the cluster must export again.
struct Reference {
    archive: Vec<u8>,
    /// The archive's entries, as [`comparable`] reads them.
    expected: BTreeMap<String, Vec<u8>>,
}

/// A single node on SQLite, an account seeded there, with large pictures added: its export.
async fn reference_archive(step: &impl Fn(&str)) -> Reference {
    let reference = TestServer::start("cluster-reference").await;
    let source = reference.account("cluster-source", Some(seed_options())).await;
    let pictures = crate::import::import(&reference, &source, &pictures_archive(), None).await;
    assert_eq!(pictures["status"], "complete", "{pictures}");
    assert_eq!(pictures["fileSummary"]["imported"], PICTURES, "{pictures}");
    let archive = crate::export::export(&reference, &source, true).await;
    let expected = comparable(&archive, &source.user.id);
    let batches = {
        let archive = archive.clone();
        tokio::task::spawn_blocking(move || batches_of(&archive)).await.unwrap()
    };
    let files = expected.keys().filter(|name| name.starts_with("files/")).count();
    step(&format!(
        "the reference's export: {} bytes, {} entries ({files} files), {batches} batches for the page",
        archive.len(),
        expected.len()
    ));
    assert!(batches >= 20, "the archive makes only {batches} batches: make it larger");
    Reference { archive, expected }
}

/// The built page (`dist/`), once the page and the `lvbak` binary are both there.
fn built_page() -> PathBuf {
    let web_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("dist");
    assert!(web_dir.join("lvbak-wasm_bg.wasm").exists(), "build the page first: trunk build --release");
    lvbak_binary();
    web_dir
}

/// A browser signed in as the victim through nginx at `nginx`, with `archive` picked,
/// checked (a screenshot named `checked` then, if any) and its upload started.
async fn start_upload(downloads: &Path, nginx: &str, archive: &Path, checked: Option<&str>) -> Browser {
    let browser = Browser::start(downloads).await;
    browser.sign_in(&format!("{nginx}/"), VICTIM, &password_of(VICTIM)).await;
    crate::browser::pick_archive(&browser, archive).await;
    browser.wait_text("inspect-report", |text| !text.is_empty()).await;
    wait_card(&browser, "Upload ready", Duration::from_secs(60), |card| card.start_enabled).await;
    if let Some(name) = checked {
        browser.screenshot(name).await;
    }
    browser.click("import-start").await;
    browser
}

/// The job the page's upload went into, once the page remembers it.
async fn remembered_job(browser: &Browser) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(job) = browser.script(REMEMBERED_JOB).await.as_str() {
            return job.to_string();
        }
        let now = card(browser).await;
        if ENDED.contains(&now.status.as_str()) || Instant::now() > deadline {
            browser.screenshot("cluster-failed-no-job.png").await;
            panic!("the page named no job (it remembers none); the card: {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_behind_nginx_import_survives_a_killed_node() {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    let web_dir = built_page();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let kill_at = std::env::var("LVBAK_CLUSTER_KILL_AT").map_or(KILL_AT_BATCH, |at| at.parse().unwrap());

    let reference = reference_archive(&step).await;
    let (archive, expected) = (reference.archive, reference.expected);
    let scratch = ScratchDir::new("cluster-files");
    let archive_path = crate::browser::write(&scratch.path, "cluster.lvbak", &archive);

    // The cluster, and two accounts made with the CLI (sessions live in PostgreSQL: a
    // sign-in through nginx holds on either node).
    let mut cluster = Cluster::start(web_dir, &[]).await;
    let nginx = cluster.balancer.url();
    step(&format!("nodes {} and {} behind nginx at {nginx}", cluster.nodes[0].address, cluster.nodes[1].address));
    cluster.add_user(VICTIM);
    cluster.add_user(HOSTILE);
    let token = login(&client, &nginx, VICTIM).await;
    let hostile = login(&client, &nginx, HOSTILE).await;
    let user_id = |token: String| {
        let (client, me_url) = (client.clone(), format!("{nginx}/api/v1/auth/me"));
        async move {
            let (code, me) = call(&client, "GET", &me_url, &token, None).await;
            assert_eq!(code, 200, "{me}");
            me["id"].as_str().unwrap().to_string()
        }
    };
    let victim_id = user_id(token.clone()).await;
    let hostile_id = user_id(hostile.clone()).await;

    // The page, through nginx.
    let downloads = ScratchDir::new("cluster-downloads");
    let browser = start_upload(&downloads.path, &nginx, &archive_path, Some("cluster-1-checked.png")).await;
    step("the import started");

    let job = remembered_job(&browser).await;
    step(&format!("job {job}"));

    // Until the job has taken a few batches (its status asked through nginx, as the page
    // asks it: either node may answer).
    let status_url = format!("{nginx}/api/v1/user-data/import/{job}/status");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut answers: Vec<String> = Vec::new();
    loop {
        let (code, status) = call(&client, "GET", &status_url, &token, None).await;
        let summary = format!("{code} {} nextBatch={}", status["status"], status["nextBatch"]);
        if answers.last() != Some(&summary) {
            answers.push(summary);
        }
        if code == 200 && status["nextBatch"].as_u64().is_some_and(|next| next >= kill_at) {
            break;
        }
        let now = card(&browser).await;
        if ["complete", "failed", "cancelled"].contains(&status["status"].as_str().unwrap_or_default())
            || ENDED.contains(&now.status.as_str())
            || Instant::now() > deadline
        {
            browser.screenshot("cluster-failed-before-the-kill.png").await;
            panic!(
                "the import did not reach batch {kill_at} to kill its node (answers through nginx, in order: \
                 {answers:?}); the card: {now:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    step(&format!("status through nginx: {answers:?}"));
    let (owner_url, owner_user) = cluster.open_job(&job).await.expect("lvbak_open_jobs has no row for the open job");
    assert_eq!(owner_user, victim_id, "lvbak_open_jobs names another user for the job");
    let owner_url = owner_url.expect("lvbak_open_jobs names no node for the open job");
    let owner = cluster.node_at(&owner_url).unwrap_or_else(|| panic!("the job's node {owner_url} is neither node"));
    let survivor = 1 - owner;
    let survivor_url = cluster.nodes[survivor].url();
    let job_requests = cluster.requests_per_node(&format!("/import/{job}/"));
    step(&format!("{} owns the job; nginx sent its requests so far: {job_requests:?}", cluster.nodes[owner].name));
    assert!(job_requests.iter().all(|(_, count)| *count > 0), "nginx sent the job's requests to one node only");

    assert!(cluster.job_lock_held(&job).await, "nothing holds the job's lock while its node runs it");

    // The hostile account asks the other node for the job by its id (that node forwards
    // the requests to the job's node, which answers them).
    let before = hostile_requests(&client, &survivor_url, &hostile, &job).await;
    assert_all_not_found("before the kill", &before);

    // The kill. nginx is held meanwhile, so the page's next request waits and the hostile
    // account's requests reach the surviving node first — once PostgreSQL has freed the
    // dead node's lock, so that node finds the job's node gone.
    cluster.balancer.pause();
    let node = &mut cluster.nodes[owner];
    node.kill();
    step(&format!("{} ({}) killed with SIGKILL", node.name, node.address));
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.job_lock_held(&job).await {
        if Instant::now() > deadline {
            cluster.balancer.resume();
            panic!("PostgreSQL still holds the killed node's lock on the job after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    step("PostgreSQL freed the killed node's lock on the job");
    let after = hostile_requests(&client, &survivor_url, &hostile, &job).await;
    let still = cluster.open_job(&job).await;
    let hostile_jobs = cluster.open_jobs_of(&hostile_id).await;
    cluster.balancer.resume();
    assert_all_not_found("after the kill", &after);
    assert_eq!(
        still,
        Some((Some(owner_url.clone()), victim_id.clone())),
        "the hostile account's requests changed the job's record"
    );
    assert_eq!(hostile_jobs, 0, "the hostile account has an open job");

    // The page's next request finds the job's node gone: the other node takes the job
    // over from batch 0, and the page's upload starts over there by itself (or, should it
    // give up, says the upload was interrupted and resumes when the file is picked again).
    let ended =
        wait_card(&browser, "the upload's end", Duration::from_secs(300), |card| ENDED.contains(&card.status.as_str()))
            .await;
    browser.screenshot("cluster-2-after-the-kill.png").await;
    step(&format!("after the kill the page shows {ended:?}"));
    let finished = match ended.status.as_str() {
        "complete" => {
            // Under the same job id, through the surviving node.
            let log = std::fs::read_to_string(&cluster.nodes[survivor].log).unwrap_or_default();
            assert!(
                log.contains(&format!("took over batch import {job}")),
                "the surviving node never took the job over; its log:\n{}",
                tail(&cluster.nodes[survivor].log, TAIL_LINES)
            );
            step("taken over, and the page's upload started over there by itself");
            ended
        }
        "interrupted" => {
            assert!(
                ended.progress.starts_with("Upload interrupted (")
                    && ended.progress.ends_with("Pick the same file again to resume."),
                "{ended:?}"
            );
            let (code, status) = call(&client, "GET", &status_url, &token, None).await;
            assert_eq!(code, 200, "the job's status after the takeover: {status}");
            assert_eq!(status["jobId"], job.as_str(), "{status}");
            assert_eq!(status["nextBatch"], 0, "the job starts again from batch 0: {status}");
            let record = cluster.open_job(&job).await;
            assert_eq!(
                record,
                Some((Some(survivor_url.clone()), victim_id.clone())),
                "the job's record after the takeover"
            );
            step(&format!("taken over: {status}"));

            // The same file again: the page offers to resume the job, and does.
            crate::browser::pick_archive(&browser, &archive_path).await;
            let offer = wait_card(&browser, "the resume offer", Duration::from_secs(60), |card| {
                card.start.starts_with("Resume upload (batch ") && card.start_enabled
            })
            .await;
            assert_eq!(offer.start, "Resume upload (batch 1)", "{offer:?}");
            browser.screenshot("cluster-3-resume-offered.png").await;
            browser.click("import-start").await;
            step("resuming");
            wait_card(&browser, "the import's end", Duration::from_secs(600), |card| {
                ENDED.contains(&card.status.as_str())
            })
            .await
        }
        _ => panic!("after the kill the import ended {ended:?}"),
    };
    browser.screenshot("cluster-4-finished.png").await;
    assert_eq!(finished.status, "complete", "{finished:?}");
    assert_eq!(finished.progress, "Import complete");
    assert_eq!(browser.script(REMEMBERED_JOB).await, Value::Null, "the page still remembers the finished upload");
    step("the import is complete");

    // The job's final status, through nginx and from the surviving node.
    let (code, through) = call(&client, "GET", &status_url, &token, None).await;
    assert_eq!((code, through["status"].as_str()), (200, Some("complete")), "{through}");
    let direct_url = format!("{survivor_url}/api/v1/user-data/import/{job}/status");
    let (code, direct) = call(&client, "GET", &direct_url, &token, None).await;
    assert_eq!(code, 200, "{direct}");
    assert_eq!(direct, through, "the surviving node and nginx answer the job's status differently");
    let (code, hostile_status) = call(&client, "GET", &direct_url, &hostile, None).await;
    assert_eq!(code, 404, "the hostile account reads the finished job: {hostile_status}");
    assert_eq!(cluster.open_job(&job).await, None, "lvbak_open_jobs keeps the finished job");

    // The account exports as the reference does: from the surviving node and through nginx.
    for (label, base) in [("the surviving node", survivor_url.clone()), ("nginx", nginx.clone())] {
        let (code, bytes) = {
            let url = format!("{base}/api/v1/user-data/export?includeVectors=1");
            let response = client.get(url).bearer_auth(&token).send().await.unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
        };
        assert_eq!(code, 200, "export from {label}: {}", String::from_utf8_lossy(&bytes));
        assert_same_export(label, &expected, &comparable(&bytes, &victim_id));
    }
    let job_requests = cluster.requests_per_node(&format!("/import/{job}/"));
    step(&format!("done; nginx sent the job's requests: {job_requests:?}"));
}

/// The node running the job dies while the page waits for its commit (`crate::faults`
/// holds the instance's first commit there): the page sends the commit again (nginx
/// answers 502 for the dead node, the other node `node_unavailable` until PostgreSQL frees
/// the dead node's lock), the other node takes the job over from batch 0 and answers the
/// commit with that gap, and the page starts the upload over there by itself — no pick
/// again, no resume — to an account that exports as the reference does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_node_dies_is_sent_again_and_lands_on_the_other_node() {
    const HELD: &str = "commit-held";
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    let web_dir = built_page();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
    let reference = reference_archive(&step).await;
    let scratch = ScratchDir::new("cluster-commit-files");
    let archive_path = crate::browser::write(&scratch.path, "cluster.lvbak", &reference.archive);

    let mut cluster = Cluster::start(web_dir, &[(lvbak_server::faults::HOLD_COMMIT_VAR, HELD)]).await;
    let nginx = cluster.balancer.url();
    cluster.add_user(VICTIM);
    let token = login(&client, &nginx, VICTIM).await;
    let (code, me) = call(&client, "GET", &format!("{nginx}/api/v1/auth/me"), &token, None).await;
    assert_eq!(code, 200, "{me}");
    let victim_id = me["id"].as_str().unwrap().to_string();

    let downloads = ScratchDir::new("cluster-commit-downloads");
    let browser = start_upload(&downloads.path, &nginx, &archive_path, None).await;
    let job = remembered_job(&browser).await;
    step(&format!("the import started: job {job}"));

    // Until the job's node holds the page's commit.
    let held = cluster.dir.join(HELD);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !held.exists() {
        let now = card(&browser).await;
        if ENDED.contains(&now.status.as_str()) || Instant::now() > deadline {
            browser.screenshot("cluster-commit-failed-before-the-kill.png").await;
            panic!("no node held the page's commit; the card: {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (owner_url, owner_user) = cluster.open_job(&job).await.expect("lvbak_open_jobs has no row for the open job");
    assert_eq!(owner_user, victim_id, "lvbak_open_jobs names another user for the job");
    let owner_url = owner_url.expect("lvbak_open_jobs names no node for the open job");
    let owner = cluster.node_at(&owner_url).unwrap_or_else(|| panic!("the job's node {owner_url} is neither node"));
    let survivor = 1 - owner;
    let commits = |cluster: &Cluster| {
        let log = cluster.balancer.access_log();
        let path = format!("/import/{job}/commit ");
        log.lines().filter(|line| line.contains(&path)).map(str::to_string).collect::<Vec<_>>()
    };
    assert!(commits(&cluster).is_empty(), "nginx answered a commit before the kill: {:?}", commits(&cluster));
    cluster.nodes[owner].kill();
    step(&format!("{} held the commit and was killed with SIGKILL", cluster.nodes[owner].name));

    let ended =
        wait_card(&browser, "the upload's end", Duration::from_secs(600), |card| ENDED.contains(&card.status.as_str()))
            .await;
    browser.screenshot("cluster-commit-finished.png").await;
    assert_eq!(ended.status, "complete", "the page did not finish the upload by itself: {ended:?}");
    assert_eq!(ended.progress, "Import complete");
    let log = std::fs::read_to_string(&cluster.nodes[survivor].log).unwrap_or_default();
    assert!(
        log.contains(&format!("took over batch import {job}")),
        "the surviving node never took the job over; its log:\n{}",
        tail(&cluster.nodes[survivor].log, TAIL_LINES)
    );
    // The held commit (cut: 502, or 503 from the other node's forwarding), the repeats
    // refused while the job was another node's or started over (503 `node_unavailable`,
    // 409 `batch_gap`), then the one that completed the job.
    let commits = commits(&cluster);
    step(&format!("the commits nginx answered: {commits:?}"));
    assert!(commits.len() >= 2, "the page sent its commit once: {commits:?}");
    assert!(commits.last().is_some_and(|line| line.contains(" 200 ")), "{commits:?}");
    assert!(commits.iter().any(|line| line.contains(" 409 ")), "no commit was answered the gap: {commits:?}");

    let (code, status) =
        call(&client, "GET", &format!("{nginx}/api/v1/user-data/import/{job}/status"), &token, None).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "{status}");
    let url = format!("{}/api/v1/user-data/export?includeVectors=1", cluster.nodes[survivor].url());
    let response = client.get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_same_export("the surviving node", &reference.expected, &comparable(&bytes, &victim_id));
    step("done");
}

/// Sends `archive`'s batches for `job` to the node at `base` from `plan`, stopping once
/// `stop_after` went.
async fn send_batches(
    base: &str,
    token: &str,
    job: &str,
    archive: &[u8],
    plan: UploadPlan,
    stop_after: Option<usize>,
) -> (Result<u64, String>, Vec<u64>) {
    let urls = vec![format!("{base}/api/v1/user-data/import/{job}/batches")];
    crate::batches::send_batches(urls, token, archive, plan, stop_after).await
}

/// A node that hangs (SIGSTOP: its connections stay open, the lock of the job it runs stays
/// held, it answers nothing) is fenced by the other once silent for `node_silent` (3 s
/// here): every connection it opened is ended, and the job goes on there under the same id,
/// from batch 0, to its end. A hostile account's requests for the job through the other
/// node meanwhile get 404 and take nothing over. Woken, the hung node records nothing of
/// the job: the instance answers, through either node, that it completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_is_fenced_and_its_job_goes_on_elsewhere() {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", started.elapsed().as_secs_f64());
    let web_dir = built_page();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let archive = pictures_archive();
    let cluster = Cluster::start_with(web_dir, &[], &[("LVBAK_HOSTING", "node_silent=3")]).await;
    cluster.add_user(VICTIM);
    cluster.add_user(HOSTILE);
    let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let token = login(&client, &a, VICTIM).await;
    let hostile = login(&client, &b, HOSTILE).await;

    let opened = Archive::open(Cursor::new(archive.clone()), Limits::STANDARD).unwrap();
    let claims = lvbak_core::upload::file_claims(&opened);
    let body = serde_json::to_vec(&json!({"manifest": opened.manifest(), "files": claims})).unwrap();
    let open_url = format!("{a}/api/v1/user-data/import/batches");
    let (code, job) = call(&client, "POST", &open_url, &token, Some((body, "application/json"))).await;
    assert_eq!(code, 201, "{job}");
    let job = job["jobId"].as_str().unwrap().to_string();
    let (stopped, sent) = send_batches(&a, &token, &job, &archive, UploadPlan::default(), Some(3)).await;
    assert!(stopped.is_err() && sent == vec![0, 1, 2], "{stopped:?} {sent:?}");
    assert_eq!(cluster.open_job(&job).await.and_then(|(url, _)| url).as_deref(), Some(a.as_str()));

    cluster.nodes[0].hang(true);
    step("node-a hangs (SIGSTOP) with the job's lock held");
    assert!(cluster.job_lock_held(&job).await, "the hung node holds the job's lock");
    // Asked at once, node-b forwards to node-a (it still reads as there), and gives up
    // once node-a is silent for 3 s, instead of waiting for it.
    let asked = Instant::now();
    let (code, answer) = call(&client, "GET", &format!("{b}/api/v1/user-data/import/{job}/status"), &token, None).await;
    assert_eq!((code, answer["code"].as_str()), (503, Some("node_unavailable")), "{answer}");
    assert!(asked.elapsed() < Duration::from_secs(20), "answered after {:?}", asked.elapsed());
    step(&format!("a request forwarded to the hung node was given up after {:.1} s", asked.elapsed().as_secs_f64()));
    // Longer than the silence that fences a node (node-a beat at most 0.75 s before).
    tokio::time::sleep(Duration::from_secs(4)).await;

    let answers = hostile_requests(&client, &b, &hostile, &job).await;
    assert_all_not_found("node-a hung", &answers);
    assert_eq!(
        cluster.open_job(&job).await.and_then(|(url, _)| url).as_deref(),
        Some(a.as_str()),
        "the hostile account's requests took the job over"
    );
    let fenced: i64 = cluster
        .postgres
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'lvbak %' \
             AND application_name NOT IN (SELECT 'lvbak ' || node_id FROM lvbak_nodes WHERE node_url = $1) \
             AND application_name NOT IN (SELECT 'lvbak ' || node_id || ' locks' FROM lvbak_nodes WHERE node_url = $1)",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fenced, 0, "the hung node's connections were ended");
    step("node-b fenced node-a; the hostile account got 404 for each request");

    // The victim's upload goes on through node-b, from batch 0 (node-b takes the job over).
    let held =
        client.get(format!("{b}/api/v1/user-data/import/{job}/held-rows")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(held.status(), 200);
    let held = lvbak_core::upload::HeldRows::parse(&held.bytes().await.unwrap()).unwrap();
    assert_eq!(cluster.open_job(&job).await.and_then(|(url, _)| url).as_deref(), Some(b.as_str()), "node-b runs it");
    let plan = UploadPlan { held_rows: held.tables, fresh_tables: held.fresh, ..UploadPlan::default() };
    let (report, _) = send_batches(&b, &token, &job, &archive, plan, None).await;
    let batches = report.unwrap();
    let commit = serde_json::to_vec(&json!({"batches": batches})).unwrap();
    let commit_url = format!("{b}/api/v1/user-data/import/{job}/commit");
    let (code, done) = call(&client, "POST", &commit_url, &token, Some((commit, "application/json"))).await;
    assert_eq!((code, done["status"].as_str()), (200, Some("complete")), "{done}");
    step("node-b took the job over and completed it");

    cluster.nodes[0].hang(false);
    step("node-a goes on (SIGCONT)");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for base in [&a, &b] {
        let (code, status) =
            call(&client, "GET", &format!("{base}/api/v1/user-data/import/{job}/status"), &token, None).await;
        assert_eq!((code, status["status"].as_str()), (200, Some("complete")), "through {base}: {status}");
    }
    assert_eq!(cluster.open_job(&job).await, None, "an ended job is no node's");
    assert!(!cluster.job_lock_held(&job).await);
    let url = format!("{a}/api/v1/user-data/export");
    let response = client.get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let entries = crate::export::entries(&response.bytes().await.unwrap());
    let images = entries.iter().filter(|(name, _)| name.starts_with("files/images/")).count();
    let rows = entries.iter().find(|(name, _)| *name == "database/images.ndjson").map(|(_, rows)| rows.clone());
    let rows = rows.unwrap_or_default().split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).count();
    assert_eq!((images, rows), (PICTURES, PICTURES));
    let log = std::fs::read_to_string(&cluster.nodes[1].log).unwrap_or_default();
    assert!(log.contains("was silent for over"), "node-b never fenced node-a");
    step("done");
}
