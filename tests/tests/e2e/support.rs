//! A real lvbak server on 127.0.0.1 over a real data directory (SQLite file, LanceDB
//! directory, file tree) — or with accounts and rows in a PostgreSQL database of its own
//! (`Backend::Postgres`, on `lvbak_tests::postgres_server`'s cluster) — with helpers to make
//! accounts, talk HTTP to it and read what it stored on either backend, and
//! [`on_each_backend!`], which runs a test on both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use lvbak_core::Limits;
use lvbak_server::app::{self, AppState};
use lvbak_server::seed::{seed, SeedOptions, SeedReport};
use lvbak_server::storage::{DatabaseUrl, Store, StoredSecret, UserRecord};
use lvbak_tests::postgres_server::{self, TestDatabase};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tokio_postgres::types::{ToSql, Type};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system's temporary folder, removed when dropped.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> Self {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("lvbak-e2e-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a test server keeps accounts and rows (files and vectors stay in its data
/// directory on both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// A fresh database of the test process's PostgreSQL cluster (`--database-url`).
    Postgres,
}

/// Runs each named test, an `async fn(Backend)`, on both backends: `name::sqlite` and
/// `name::postgres`.
// (The benchmarks in `tests/examples` include this file without the suites.)
#[allow(unused_macros)]
macro_rules! on_each_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use on_each_backend;

pub struct TestServer {
    pub base: String,
    pub store: Arc<Store>,
    pub data: ScratchDir,
    pub client: Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    /// PostgreSQL's connection for the tests' own readings, then its database (dropped
    /// last, ending the server's connections).
    postgres: Option<(tokio_postgres::Client, TestDatabase)>,
}

/// A signed-in user of a test server.
pub struct Account {
    pub user: UserRecord,
    pub password: String,
    pub token: String,
    pub seeded: Option<SeedReport>,
}

impl TestServer {
    pub async fn start(label: &str) -> Self {
        Self::start_on(Backend::Sqlite, label).await
    }

    /// A server keeping accounts and rows on `backend`.
    pub async fn start_on(backend: Backend, label: &str) -> Self {
        Self::start_on_with_limits(backend, label, Limits::STANDARD).await
    }

    pub async fn start_on_with_limits(backend: Backend, label: &str, limits: Limits) -> Self {
        // Tests sign in many accounts from one address; the abuse suite checks the limit.
        let hosting = lvbak_server::config::HostingLimits { login_burst: 10_000, ..Default::default() };
        Self::start_on_with(backend, label, limits, hosting).await
    }

    /// A server on `backend` held to `hosting`'s limits.
    pub async fn start_on_with(
        backend: Backend,
        label: &str,
        limits: Limits,
        hosting: lvbak_server::config::HostingLimits,
    ) -> Self {
        let data = ScratchDir::new(label);
        let (store, postgres) = match backend {
            Backend::Sqlite => (Store::open(&data.path.join("data")).await.unwrap(), None),
            Backend::Postgres => {
                let database = tokio::task::spawn_blocking(postgres_server::test_database).await.unwrap();
                let url: DatabaseUrl = database.url.parse().unwrap();
                let store = Store::open_with(&data.path.join("data"), None, Some(&url)).await.unwrap();
                let (client, connection) = database.config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                (store, Some((client, database)))
            }
        };
        Self::serve(Arc::new(store), data, limits, hosting, postgres).await
    }

    /// Serves `store` on a free loopback port, with the page.
    async fn serve(
        store: Arc<Store>,
        data: ScratchDir,
        limits: Limits,
        hosting: lvbak_server::config::HostingLimits,
        postgres: Option<(tokio_postgres::Client, TestDatabase)>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let web_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
        let state = AppState::new(store.clone(), web_dir, limits, hosting).await;
        state.set_node_url(None, listener.local_addr().unwrap());
        let served = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self { base, store, data, client: Client::new(), state, shutdown: Some(shutdown), postgres }
    }

    /// Another node of this server's instance (PostgreSQL only): a server over the same
    /// database with a data directory of its own, reached at its own address.
    pub async fn another_node(&self, label: &str) -> Self {
        let (_, database) = self.postgres.as_ref().expect("nodes share a PostgreSQL database");
        let data = ScratchDir::new(label);
        let url: DatabaseUrl = database.url.parse().unwrap();
        // Every node of an instance has its identity key.
        let key = self.data.path.join("data/identity.key");
        let store = Store::open_with_identity(&data.path.join("data"), None, Some(&url), Some(&key)).await.unwrap();
        let hosting = self.state.hosting().clone();
        Self::serve(Arc::new(store), data, self.state.limits(), hosting, None).await
    }

    /// The PostgreSQL database of this server (the first node's), if it has one.
    pub fn database_url(&self) -> Option<DatabaseUrl> {
        self.postgres.as_ref().map(|(_, database)| database.url.parse().unwrap())
    }

    /// Stops answering requests (the node's address refuses connections from now on).
    pub fn stop_serving(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// The test's own connection to the PostgreSQL database of this server (the first
    /// node's), if it has one.
    pub fn postgres_client(&self) -> Option<&tokio_postgres::Client> {
        self.postgres.as_ref().map(|(client, _)| client)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an account, optionally seeds it, and signs it in.
    pub async fn account(&self, name: &str, seeding: Option<SeedOptions>) -> Account {
        let password = format!("pw-{name}-correct-horse");
        let id = lvbak_server::cli::add_user(&self.store, name, &password).await.unwrap();
        let user = UserRecord { id, username: name.to_string() };
        if self.postgres.is_some() {
            // On PostgreSQL the data directory's SQLite file knows no account.
            assert_eq!(self.store.db.user_by_name(name).unwrap(), None, "{name} is in SQLite");
        }
        let seeded = match seeding {
            Some(options) => Some(seed(&self.store, &user, options, 1_795_313_867).await.unwrap()),
            None => None,
        };
        let token = self.login(name, &password).await;
        Account { user, password, token, seeded }
    }

    pub async fn login(&self, name: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {name}");
        let body: Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    pub fn get(&self, account: &Account, path: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&account.token)
    }

    pub fn post(&self, account: &Account, path: &str) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(&account.token)
    }

    /// Every row of `table` whose `column` is `value`, read straight from the backend's
    /// database (every user's: no ownership rule applied) as SQLite stores it: on
    /// PostgreSQL, a value its typed column could not hold comes back from `lvbak_odd`, and
    /// lvbak's own bookkeeping columns (`lvbak_import`, `lvbak_odd`) are left out.
    pub fn rows_where(&self, table: &str, column: &str, value: &str) -> Vec<Map<String, Value>> {
        match &self.postgres {
            None => self.store.db.rows_where(table, column, value).unwrap(),
            Some((client, _)) => postgres_rows_where(client, table, column, value),
        }
    }

    /// The number of rows of `table` (every user's; a table the backend does not have has
    /// none).
    pub fn count_rows(&self, table: &str) -> u64 {
        match &self.postgres {
            None => self.store.db.count_rows(table).unwrap(),
            Some((client, _)) => blocking(async {
                let exists = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted(table)]).await?;
                if !exists.get::<_, bool>(0) {
                    return Ok(0);
                }
                let count = client.query_one(&format!("SELECT count(*) FROM {}", quoted(table)), &[]).await?;
                Ok(count.get::<_, i64>(0) as u64)
            })
            .unwrap(),
        }
    }

    /// The first column of every row `sql` answers, text on both backends (see
    /// [`TestServer::text_rows`]).
    pub fn texts(&self, sql: &str, params: &[&str]) -> Vec<String> {
        self.text_rows(sql, params).into_iter().map(|mut row| row.swap_remove(0)).collect()
    }

    /// Every row a query of the test's own answers, read straight from the backend's
    /// database (no ownership rule applied), each column text (a NULL or any other type
    /// fails the test). The SQL is written once for both backends: numbered parameters
    /// (`?1`, given to PostgreSQL as `$1`), each bound as text.
    pub fn text_rows(&self, sql: &str, params: &[&str]) -> Vec<Vec<String>> {
        match &self.postgres {
            None => {
                let db = self.sqlite_connection();
                let mut statement = db.prepare(sql).unwrap_or_else(|error| panic!("{sql}: {error}"));
                let width = statement.column_count();
                let rows = statement
                    .query_map(rusqlite::params_from_iter(params), |row| {
                        (0..width).map(|at| row.get(at)).collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .unwrap();
                rows.map(|row| row.unwrap_or_else(|error| panic!("{sql}: {error}"))).collect()
            }
            Some((client, _)) => {
                let rows = postgres_query(client, sql, params);
                let text = |row: &tokio_postgres::Row, at| row.try_get::<_, String>(at);
                let texts = rows.iter().map(|row| (0..row.len()).map(|at| text(row, at)).collect());
                texts.collect::<Result<_, _>>().unwrap_or_else(|error| panic!("{sql}: {error}"))
            }
        }
    }

    /// The one integer `sql` answers (a count, a sum: cast it `AS BIGINT`, PostgreSQL sums
    /// BIGINTs as NUMERIC), as [`TestServer::text_rows`] reads.
    pub fn integer(&self, sql: &str, params: &[&str]) -> i64 {
        match &self.postgres {
            None => self
                .sqlite_connection()
                .query_row(sql, rusqlite::params_from_iter(params), |row| row.get(0))
                .unwrap_or_else(|error| panic!("{sql}: {error}")),
            Some((client, _)) => match postgres_query(client, sql, params).as_slice() {
                [row] => row.try_get(0).unwrap_or_else(|error| panic!("{sql}: {error}")),
                rows => panic!("{sql}: {} rows, not one", rows.len()),
            },
        }
    }

    /// Runs a statement of the test's own (parameters as [`TestServer::text_rows`] takes
    /// them) straight on the backend's database; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&str]) -> u64 {
        match &self.postgres {
            None => {
                let changed = self.sqlite_connection().execute(sql, rusqlite::params_from_iter(params));
                changed.unwrap_or_else(|error| panic!("{sql}: {error}")) as u64
            }
            Some((client, _)) => {
                let (sql, params) = postgres_statement(sql, params);
                blocking(client.execute(&sql, &params)).unwrap_or_else(|error| panic!("{sql}: {error}"))
            }
        }
    }

    /// A connection of the test's own to the data directory's SQLite file, waiting for the
    /// server's writes.
    fn sqlite_connection(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(self.data.path.join("data/lvbak.sqlite")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        db
    }

    /// The API keys stored for `user_id` (sealed), by key.
    pub fn secrets_of(&self, user_id: &str) -> Vec<StoredSecret> {
        let text = |row: &Map<String, Value>, column: &str| row[column].as_str().unwrap().to_string();
        let mut secrets: Vec<StoredSecret> = self
            .rows_where("secrets", "user_id", user_id)
            .iter()
            .map(|row| StoredSecret {
                key: text(row, "key"),
                encrypted_value: text(row, "encrypted_value"),
                iv: text(row, "iv"),
                tag: text(row, "tag"),
            })
            .collect();
        secrets.sort_by(|a, b| a.key.cmp(&b.key));
        secrets
    }
}

/// A name quoted for SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A statement of the tests' own (see [`TestServer::text_rows`]) as PostgreSQL takes it:
/// SQLite's numbered parameters (`?1`) spelled `$1`, the values bound as text.
fn postgres_statement<'a>(sql: &str, params: &'a [&'a str]) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut spelled = String::with_capacity(sql.len());
    let mut characters = sql.chars().peekable();
    while let Some(character) = characters.next() {
        let numbered = character == '?' && characters.peek().is_some_and(char::is_ascii_digit);
        spelled.push(if numbered { '$' } else { character });
    }
    (spelled, params.iter().map(|param| param as _).collect())
}

/// The rows a query of the tests' own answers on PostgreSQL.
fn postgres_query(client: &tokio_postgres::Client, sql: &str, params: &[&str]) -> Vec<tokio_postgres::Row> {
    let (sql, params) = postgres_statement(sql, params);
    blocking(client.query(&sql, &params)).unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// Waits for a statement of the tests' own PostgreSQL connection from synchronous code on a
/// test's (multi-threaded) runtime, whose other threads drive the connection meanwhile.
fn blocking<T>(work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, String> {
    tokio::task::block_in_place(|| futures::executor::block_on(work)).map_err(|error| match error.as_db_error() {
        Some(database) => format!("{error}: {database}"),
        None => error.to_string(),
    })
}

/// [`TestServer::rows_where`] on PostgreSQL: the table's columns in their order (SQLite's),
/// typed values as SQLite's classes, odd ones from `lvbak_odd`.
fn postgres_rows_where(
    client: &tokio_postgres::Client,
    table: &str,
    column: &str,
    value: &str,
) -> Vec<Map<String, Value>> {
    const ODD: &str = "lvbak_odd";
    blocking(async {
        let columns: Vec<(String, String)> = client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&quoted(table)],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        assert!(!columns.is_empty(), "PostgreSQL has no table {table}");
        // Values PostgreSQL has no plain Rust type for here are read as text.
        let select: Vec<String> = columns
            .iter()
            .map(|(name, kind)| match kind.as_str() {
                "bigint" | "integer" | "smallint" | "double precision" | "real" | "text" | "bytea" => quoted(name),
                "boolean" => format!("{}::integer", quoted(name)),
                _ => format!("{}::text", quoted(name)),
            })
            .collect();
        let sql = format!("SELECT {} FROM {} WHERE {} = $1", select.join(", "), quoted(table), quoted(column));
        let rows = client.query(&sql, &[&value]).await?;
        let mut found = Vec::new();
        for row in rows {
            let odd: Map<String, Value> = columns
                .iter()
                .position(|(name, _)| name == ODD)
                .and_then(|index| row.get::<_, Option<String>>(index))
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default();
            let mut object = Map::new();
            for (index, (name, _)) in columns.iter().enumerate() {
                if name == ODD || name == "lvbak_import" {
                    continue;
                }
                let kind = row.columns()[index].type_();
                let typed = if [Type::INT8, Type::INT4, Type::INT2].contains(kind) {
                    let integer = match *kind {
                        Type::INT8 => row.get::<_, Option<i64>>(index),
                        Type::INT4 => row.get::<_, Option<i32>>(index).map(i64::from),
                        _ => row.get::<_, Option<i16>>(index).map(i64::from),
                    };
                    integer.map(Value::from)
                } else if *kind == Type::FLOAT8 {
                    row.get::<_, Option<f64>>(index).map(Value::from)
                } else if *kind == Type::FLOAT4 {
                    row.get::<_, Option<f32>>(index).map(|real| Value::from(f64::from(real)))
                } else if *kind == Type::BYTEA {
                    row.get::<_, Option<Vec<u8>>>(index).map(Value::from)
                } else {
                    row.get::<_, Option<String>>(index).map(Value::from)
                };
                let value = typed.or_else(|| odd.get(name).map(odd_value)).unwrap_or(Value::Null);
                object.insert(name.clone(), value);
            }
            found.push(object);
        }
        Ok(found)
    })
    .unwrap()
}

/// A value as `lvbak_odd` keeps it (`{"i": integer}`, `{"r": real}`, `{"t": base64 of the
/// text}`), as SQLite would have stored it.
fn odd_value(entry: &Value) -> Value {
    if let Some(integer) = entry.get("i").and_then(Value::as_i64) {
        return integer.into();
    }
    if let Some(real) = entry.get("r").and_then(Value::as_f64) {
        return real.into();
    }
    let text = entry["t"].as_str().unwrap_or_else(|| panic!("an odd value of no known class: {entry}"));
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    String::from_utf8(bytes).unwrap().into()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The body of a response that must have succeeded.
pub async fn ok_bytes(response: Response) -> Vec<u8> {
    let status = response.status();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert!(status.is_success(), "status {status}: {}", String::from_utf8_lossy(&bytes));
    bytes
}

/// Status and JSON body.
pub async fn status_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A small account, the default for tests that do not measure anything.
pub fn small_seed() -> SeedOptions {
    SeedOptions {
        characters: 3,
        chats: 2,
        messages_per_chat: 12,
        images: 2,
        vectors: 10,
        secrets: 2,
        ..SeedOptions::default()
    }
}
