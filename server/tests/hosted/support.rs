//! A real `lvbak serve` process on 127.0.0.1 over a scratch data directory, with what the
//! hosting tests need around it: accounts made with the real CLI, calls with a bearer
//! token, job polling, archives built by code, batch uploads, and the server's memory and
//! threads from /proc. An instance keeps accounts and rows in its data directory's SQLite
//! file (`Instance::start`) or in a PostgreSQL database of its own
//! (`Instance::start_on_postgres`, on `lvbak_tests::postgres_server`'s cluster); the
//! tests read either through `count_rows`, `text` and `row`, and `on_each_backend!` runs
//! a test body as `name::sqlite` and `name::postgres`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lvbak_core::batch::{deflate_ndjson, Batch};
use lvbak_core::FileBucket;
use lvbak_core::{Archive, Limits};
use lvbak_tests::postgres_server::{test_database, TestDatabase};
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{request, run_lvbak_with, scratch, Reply, Server};

/// A server under test and its directories.
pub struct Instance {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub server: Server,
    env: Vec<(String, String)>,
    /// The PostgreSQL database accounts and rows live in (`None`: the SQLite file); dropped
    /// after the server is killed.
    database: Option<TestDatabase>,
}

/// How a test starts its instance: [`Instance::start`] or [`Instance::start_on_postgres`].
pub type Start = fn(&str, &[(&str, &str)]) -> Instance;

/// The variable `lvbak serve` and every subcommand take the PostgreSQL database from.
const DATABASE_URL_VARIABLE: &str = "LVBAK_DATABASE_URL";

/// Runs each named test body, a `fn(Start)`, on both backends: `name::sqlite` and
/// `name::postgres`.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::support::Instance::start)
                }

                #[test]
                fn postgres() {
                    super::$name($crate::support::Instance::start_on_postgres)
                }
            }
        )*
    };
}
pub(crate) use on_each_backend;

impl Instance {
    /// A fresh data directory and a server over it, with `env` (`LVBAK_HOSTING`...).
    pub fn start(label: &str, env: &[(&str, &str)]) -> Self {
        Self::start_prepared(label, env, false, |_| {})
    }

    /// The same with accounts and rows in a fresh PostgreSQL database (`LVBAK_DATABASE_URL`
    /// for the server and the CLI); files stay in the data directory (or `env`'s object
    /// store).
    pub fn start_on_postgres(label: &str, env: &[(&str, &str)]) -> Self {
        Self::start_prepared(label, env, true, |_| {})
    }

    /// [`Instance::start`], or [`Instance::start_on_postgres`] (`on_postgres`), with
    /// `prepare` run on the data directory before the server starts (a test mounts a small
    /// disk there).
    pub fn start_prepared(label: &str, env: &[(&str, &str)], on_postgres: bool, prepare: impl FnOnce(&Path)) -> Self {
        let database = on_postgres.then(test_database);
        let mut all = env.to_vec();
        if let Some(database) = &database {
            all.push((DATABASE_URL_VARIABLE, &database.url));
        }
        let dir = scratch(&if on_postgres { format!("{label}-pg") } else { label.to_string() });
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        prepare(&data);
        let server = Server::start_with(&data, &all);
        let env = all.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self { dir, data, server, env, database }
    }

    /// Another node of this instance (PostgreSQL only): a server process of its own, over
    /// a data directory of its own and the same database (and object store, if any), with
    /// this instance's environment less its fault point, plus `extra`.
    pub fn another_node(&self, label: &str, extra: &[(&str, &str)]) -> Self {
        assert!(self.database.is_some(), "nodes share a PostgreSQL database");
        let dir = scratch(label);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut env: Vec<(String, String)> =
            self.env.iter().filter(|(name, _)| name != lvbak_server::faults::HOLD_AFTER_VAR).cloned().collect();
        env.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        // Every node of an instance has its identity key.
        let key = self.data.join("identity.key");
        env.push(("LVBAK_IDENTITY_KEY_FILE".to_string(), key.to_str().unwrap().to_string()));
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let server = Server::start_with(&data, &pairs);
        Self { dir, data, server, env, database: None }
    }

    /// Kills the server (SIGKILL) and starts it again over the same data, with the same
    /// environment except a fault point (the process it was for is gone).
    pub fn restart(&mut self) {
        self.server.kill();
        self.env.retain(|(name, _)| name != lvbak_server::faults::HOLD_AFTER_VAR);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.server = Server::start_with(&self.data, &env);
    }

    /// Restarts the server with its usage recount due, as after an upgrade of the formula:
    /// every account's use is counted again from what the disk holds.
    pub fn restart_recounting(&mut self) {
        self.server.kill();
        self.execute("DELETE FROM lvbak_meta WHERE key = 'usage_formula'");
        self.restart();
    }

    /// The first row `sql` answers, read beside the server (which keeps running) from
    /// whichever database it keeps rows in: integers, reals, text and NULL as JSON values.
    pub fn row(&self, sql: &str) -> Vec<Value> {
        match &self.database {
            None => {
                let connection = rusqlite::Connection::open_with_flags(
                    self.data.join("lvbak.sqlite"),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                connection.busy_timeout(Duration::from_secs(10)).unwrap();
                connection
                    .query_row(sql, [], |row| {
                        (0..row.as_ref().column_count())
                            .map(|index| {
                                Ok(match row.get_ref(index)? {
                                    rusqlite::types::ValueRef::Null => Value::Null,
                                    rusqlite::types::ValueRef::Integer(integer) => integer.into(),
                                    rusqlite::types::ValueRef::Real(real) => real.into(),
                                    rusqlite::types::ValueRef::Text(text) => {
                                        String::from_utf8_lossy(text).into_owned().into()
                                    }
                                    rusqlite::types::ValueRef::Blob(_) => panic!("a blob from {sql}"),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_else(|error| panic!("{sql}: {error}"))
            }
            Some(database) => on_postgres(database, |client| async move {
                use tokio_postgres::types::Type;
                let row = client.query_one(sql, &[]).await?;
                Ok((0..row.len())
                    .map(|index| match row.columns()[index].type_() {
                        &Type::INT8 => row.get::<_, Option<i64>>(index).into(),
                        &Type::INT4 => row.get::<_, Option<i32>>(index).into(),
                        &Type::INT2 => row.get::<_, Option<i16>>(index).into(),
                        &Type::FLOAT8 => row.get::<_, Option<f64>>(index).into(),
                        &Type::TEXT | &Type::VARCHAR | &Type::NAME => row.get::<_, Option<String>>(index).into(),
                        other => panic!("{sql}: a column of type {other} (cast it)"),
                    })
                    .collect())
            })
            .unwrap_or_else(|error| panic!("{sql}: {error}")),
        }
    }

    /// The number (an integer) `sql` answers first; see [`Instance::row`].
    pub fn count_rows(&self, sql: &str) -> i64 {
        let row = self.row(sql);
        row[0].as_i64().unwrap_or_else(|| panic!("{sql} answered {row:?}"))
    }

    /// The text `sql` answers first; see [`Instance::row`].
    pub fn text(&self, sql: &str) -> String {
        let row = self.row(sql);
        row[0].as_str().unwrap_or_else(|| panic!("{sql} answered {row:?}")).to_string()
    }

    /// Runs statements on the instance's database, as another program sharing it would (on
    /// SQLite with foreign keys on, as Lumiverse opens it).
    pub fn execute(&self, sql: &str) {
        match &self.database {
            None => {
                let connection = rusqlite::Connection::open(self.data.join("lvbak.sqlite")).unwrap();
                connection.busy_timeout(Duration::from_secs(10)).unwrap();
                connection.execute_batch("PRAGMA foreign_keys = ON").unwrap();
                connection.execute_batch(sql).unwrap_or_else(|error| panic!("{sql}: {error}"));
            }
            Some(database) => on_postgres(database, |client| async move { client.batch_execute(sql).await })
                .unwrap_or_else(|error| panic!("{sql}: {error}")),
        }
    }

    /// Whether accounts and rows are in PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.database.is_some()
    }

    /// The database's own check, beside the server: SQLite's `PRAGMA integrity_check`, or
    /// on PostgreSQL amcheck's over every B-tree index of the instance's tables (an index
    /// that disagrees with its table fails the call); "ok" when it finds nothing wrong.
    pub fn integrity(&self) -> String {
        if self.database.is_none() {
            return integrity(&self.data);
        }
        self.execute(
            "CREATE EXTENSION IF NOT EXISTS amcheck; \
             DO $$ DECLARE i regclass; BEGIN \
               FOR i IN SELECT c.oid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
                 JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace \
               LOOP PERFORM bt_index_check(i, true); END LOOP; END $$",
        );
        "ok".to_string()
    }

    pub fn address(&self) -> &str {
        &self.server.address
    }

    /// Makes an account with the real CLI; its password is `pw-<name>`.
    pub fn add_user(&self, name: &str) {
        let password = format!("pw-{name}");
        self.run_lvbak(&["user", "add", name, "--password", &password, "--data-dir", self.data.to_str().unwrap()]);
    }

    /// Runs the CLI over this instance's storage: its object store and its PostgreSQL
    /// database too, if it has them.
    pub fn run_lvbak(&self, args: &[&str]) {
        let storage: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(name, _)| {
                name == "LVBAK_OBJECT_STORE"
                    || name == DATABASE_URL_VARIABLE
                    || name == "LVBAK_IDENTITY_KEY_FILE"
                    || name.starts_with("AWS_")
            })
            .cloned()
            .collect();
        run_lvbak_with(args, &storage);
    }

    /// Makes an account and signs it in; the bearer token.
    pub fn account(&self, name: &str) -> String {
        self.add_user(name);
        self.login(name)
    }

    pub fn login(&self, name: &str) -> String {
        let body = json!({"username": name, "password": format!("pw-{name}")}).to_string();
        let reply = request(
            self.address(),
            "POST",
            "/api/v1/auth/login",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "login of {name}: {}", String::from_utf8_lossy(&reply.body));
        reply.json()["token"].as_str().unwrap().to_string()
    }

    /// A call with a bearer token (and JSON content type when there is a body).
    pub fn call(&self, method: &str, path: &str, token: &str, body: &[u8]) -> Reply {
        let bearer = format!("Bearer {token}");
        request(self.address(), method, path, &[("Authorization", &bearer), ("Content-Type", "application/json")], body)
    }

    /// The user id of the account behind `token`.
    pub fn user_id(&self, token: &str) -> String {
        self.call("GET", "/api/v1/auth/me", token, b"").json()["id"].as_str().unwrap().to_string()
    }

    /// Polls a job until it ends (skipping the ticket when asked for one); its status.
    pub fn wait_job(&self, token: &str, job: &str) -> Value {
        let path = format!("/api/v1/user-data/import/{job}/status");
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            let status = self.call("GET", &path, token, b"").json();
            match status["status"].as_str() {
                Some("complete" | "failed" | "cancelled") => return status,
                Some("awaiting_ticket") => {
                    self.call("POST", &format!("/api/v1/user-data/import/{job}/skip-ticket"), token, b"");
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("job {job} did not end: {}", self.call("GET", &path, token, b"").json());
    }

    /// Uploads an archive the raw way and waits for the job; its final status.
    pub fn import_raw(&self, token: &str, archive: &[u8]) -> Value {
        let reply = self.call("POST", "/api/v1/user-data/import", token, archive);
        assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
        self.wait_job(token, reply.json()["jobId"].as_str().unwrap())
    }

    /// Exports the account behind `token`.
    pub fn export(&self, token: &str) -> Vec<u8> {
        let reply = self.call("GET", "/api/v1/user-data/export", token, b"");
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        reply.body
    }

    /// Opens a batch import for an archive with `manifest`; the job id.
    pub fn open_batches(&self, token: &str, manifest: Value) -> String {
        let body = json!({"manifest": manifest}).to_string();
        let reply = self.call("POST", "/api/v1/user-data/import/batches", token, body.as_bytes());
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["jobId"].as_str().unwrap().to_string()
    }

    /// Sends batch `number` of a job.
    pub fn put_batch(&self, token: &str, job: &str, number: u64, batch: &[u8]) -> Reply {
        let bearer = format!("Bearer {token}");
        let digest = hex::encode(Sha256::digest(batch));
        let path = format!("/api/v1/user-data/import/{job}/batches/{number}");
        request(self.address(), "PUT", &path, &[("Authorization", &bearer), ("X-Batch-Sha256", &digest)], batch)
    }

    /// Commits a batch import after `batches` batches; the answer.
    pub fn commit(&self, token: &str, job: &str, batches: u64) -> Reply {
        let body = json!({"batches": batches}).to_string();
        self.call("POST", &format!("/api/v1/user-data/import/{job}/commit"), token, body.as_bytes())
    }

    /// Files under the data directory's staging folder.
    pub fn staging_files(&self) -> Vec<PathBuf> {
        files_under(&self.data.join("staging"))
    }

    /// Runs `work` and says by how much the server's resident memory peaked above where
    /// it was before, in MiB.
    pub fn memory_rise(&self, work: impl FnOnce()) -> f64 {
        self.server.reset_peak_memory();
        let before = self.server.memory_mib();
        work();
        self.server.peak_memory_mib() - before
    }

    /// Waits (a bounded time) until `done` holds; whether it did.
    pub fn eventually(&self, seconds: u64, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        done()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `planter` writes a file under a name `owner`'s next archive uses; `owner`'s import
/// keeps its own file under that name, as its export shows. The name.
pub fn plant_then_restore(instance: &Instance, planter: &str, owner: &str) -> String {
    let name = format!("{}.png", uuid(0x503));
    let plant = archive(
        json!({"archiveId": uuid(0x5a)}),
        vec![
            table("images", &[json!({"id": uuid(0x504), "filename": name})]),
            RawEntry::stored(&format!("files/images/{name}"), b"planted here"),
        ],
    );
    assert_eq!(instance.import_raw(planter, &plant)["fileSummary"]["imported"], 1);
    let owners = archive(
        json!({"archiveId": uuid(0x5b)}),
        vec![
            table("images", &[json!({"id": uuid(0x505), "filename": name})]),
            RawEntry::stored(&format!("files/images/{name}"), b"the owner's own picture"),
        ],
    );
    let status = instance.import_raw(owner, &owners);
    assert_eq!(status["fileSummary"]["imported"], 1, "{status}");
    let export = instance.export(owner);
    let kept = entry_bytes(&export, &format!("files/images/{name}"));
    assert_eq!(kept.as_deref(), Some(&b"the owner's own picture"[..]));
    name
}

/// Every regular file under `folder`.
pub fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A manifest for a test archive, with `changes` applied.
pub fn manifest(changes: Value) -> Value {
    let mut manifest = json!({
        "schemaVersion": 1,
        "producer": "lumiverse",
        "exportedAt": 1_795_313_867,
        "archiveId": uuid(0xa11),
        "producerVersion": null,
        "ndjsonFormatVersion": 1,
        "includeVectors": false,
        "embeddingConfig": {"provider": null, "model": null, "dimension": null},
        "counts": {},
        "missingFiles": [],
        "hasEncryptedSecrets": false,
        "secretsCount": 0,
    });
    if let (Some(target), Some(changes)) = (manifest.as_object_mut(), changes.as_object()) {
        for (key, value) in changes {
            target.insert(key.clone(), value.clone());
        }
    }
    manifest
}

/// A lower-case UUID made from a number (distinct numbers, distinct ids).
pub fn uuid(n: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n >> 32, n & 0xffff_ffff_ffff)
}

/// An archive of `entries` after a manifest (with `manifest_changes`).
pub fn archive(manifest_changes: Value, entries: Vec<RawEntry>) -> Vec<u8> {
    let mut all = vec![RawEntry::deflated("manifest.json", manifest(manifest_changes).to_string().as_bytes())];
    all.extend(entries);
    RawZip::new(all).build()
}

/// A deflated `database/<table>.ndjson` entry of these rows.
pub fn table(name: &str, rows: &[Value]) -> RawEntry {
    let lines: String = rows.iter().map(|row| format!("{row}\n")).collect();
    RawEntry::deflated(&lvbak_core::table_entry_name(name), lines.as_bytes())
}

/// A batch of rows of `table` (raw NDJSON lines).
pub fn rows_batch(table: &str, first_line: u64, ndjson: &[u8]) -> Vec<u8> {
    let lines = ndjson.iter().filter(|&&b| b == b'\n').count() as u64;
    let deflated = deflate_ndjson(ndjson).unwrap();
    Batch::Rows { table: table.into(), first_line, lines, held: 0, deflated }.encode().unwrap()
}

/// A batch holding bytes `offset..` of a file of `size` bytes.
pub fn file_batch(bucket: &str, name: &str, offset: u64, size: u64, bytes: &[u8]) -> Vec<u8> {
    let bucket = FileBucket::from_archive_folder(bucket).unwrap();
    Batch::FileChunk { bucket, name: name.into(), offset, size, bytes: bytes.to_vec() }.encode().unwrap()
}

/// On a connection of its own to `database` (and a runtime of this thread's own), `work`.
fn on_postgres<T, F>(
    database: &TestDatabase,
    work: impl FnOnce(tokio_postgres::Client) -> F,
) -> Result<T, tokio_postgres::Error>
where
    F: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = database.config.connect(tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let answer = work(client).await;
        let _ = connection.await;
        answer
    })
}

/// Rows of a data directory's SQLite database, read beside the server (which keeps
/// running): for a data directory without its `Instance`, or SQLite's own questions.
pub fn count_rows(data: &Path, sql: &str) -> i64 {
    let connection =
        rusqlite::Connection::open_with_flags(data.join("lvbak.sqlite"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// `PRAGMA integrity_check` of a data directory's database (the server stopped).
pub fn integrity(data: &Path) -> String {
    let connection = rusqlite::Connection::open(data.join("lvbak.sqlite")).unwrap();
    connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap()
}

/// The bytes of one entry of an archive.
pub(crate) fn entry_bytes(archive: &[u8], name: &str) -> Option<Vec<u8>> {
    let opened = Archive::open(std::io::Cursor::new(archive.to_vec()), Limits::STANDARD).ok()?;
    let index = opened.index_of(name)?;
    let mut bytes = Vec::new();
    opened.open_entry(index).ok()?.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}
