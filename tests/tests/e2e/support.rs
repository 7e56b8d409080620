//! A real lvbak server on 127.0.0.1 over a real data directory (SQLite file, LanceDB
//! directory, file tree), with helpers to make accounts and talk HTTP to it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lvbak_core::Limits;
use lvbak_server::app::{self, AppState};
use lvbak_server::seed::{seed, SeedOptions, SeedReport};
use lvbak_server::storage::sqlite::UserRecord;
use lvbak_server::storage::Store;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;

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

pub struct TestServer {
    pub base: String,
    pub store: Arc<Store>,
    pub data: ScratchDir,
    pub client: Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
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
        Self::start_with_limits(label, Limits::STANDARD).await
    }

    pub async fn start_with_limits(label: &str, limits: Limits) -> Self {
        // Tests sign in many accounts from one address; the abuse suite checks the limit.
        let hosting = lvbak_server::config::HostingLimits { login_burst: 10_000, ..Default::default() };
        Self::start_with(label, limits, hosting).await
    }

    /// A server held to `hosting`'s limits.
    pub async fn start_with(label: &str, limits: Limits, hosting: lvbak_server::config::HostingLimits) -> Self {
        let data = ScratchDir::new(label);
        let store = Arc::new(Store::open(&data.path.join("data")).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let web_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
        let state = AppState::new(store.clone(), web_dir, limits, hosting).await;
        let served = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self { base, store, data, client: Client::new(), state, shutdown: Some(shutdown) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an account, optionally seeds it, and signs it in.
    pub async fn account(&self, name: &str, seeding: Option<SeedOptions>) -> Account {
        let password = format!("pw-{name}-correct-horse");
        lvbak_server::cli::add_user(&self.store, name, &password).await.unwrap();
        let user = self.store.db.user_by_name(name).unwrap().unwrap();
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
