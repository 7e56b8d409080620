//! A small WebDriver client: one `chromedriver` process driving Debian's headless
//! Chromium, with the calls the page tests and the browser benchmark need.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    profile: PathBuf,
}

/// Ends the browser however the test ends (a panic included): the session is closed, which
/// makes chromedriver quit Chromium, then chromedriver is killed, and any process still
/// running with this browser's profile directory (Chromium and its helpers) is killed too.
impl Drop for Browser {
    fn drop(&mut self) {
        let _ = end_session(&self.base, &self.session);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_processes_using(&self.profile);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/:id` without the async runtime (drop may run while it unwinds).
fn end_session(base: &str, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(())
}

/// Kills every process whose command line names `profile` as its user data directory.
fn kill_processes_using(profile: &Path) {
    let marker = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == marker.as_bytes()) {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn artefacts() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    pub async fn start(downloads: &Path) -> Self {
        let port = free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut up = false;
        for _ in 0..100 {
            if let Ok(answer) = client.get(format!("{base}/status")).send().await {
                if answer.status() == 200 {
                    up = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "chromedriver did not start");
        let profile = std::env::temp_dir().join(format!("lvbak-chromium-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1500",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let answer: Value =
            client.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string();
        let browser = Self { driver, base, session, client, profile };
        browser
            .call(
                "POST",
                "goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior",
                    "params": {"behavior": "allow", "downloadPath": downloads.display().to_string()}}),
            )
            .await;
        browser
    }

    /// A WebDriver command; an error reply fails the test with WebDriver's own words.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|(error, message)| panic!("WebDriver {method} {path}: {error}: {message}"))
    }

    /// A WebDriver command: its value, or the error reply's `(error, message)`.
    pub async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, (String, String)> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let request = match method {
            "GET" => self.client.get(url),
            _ => self.client.post(url).json(&body),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        let value = answer["value"].clone();
        match value.get("error").and_then(Value::as_str) {
            Some(error) => {
                let message = value["message"].as_str().unwrap_or_default();
                Err((error.to_string(), message.lines().next().unwrap_or_default().to_string()))
            }
            None => Ok(value),
        }
    }

    /// Signs in on the page at `url` and waits for the Data Portability page.
    pub async fn sign_in(&self, url: &str, username: &str, password: &str) {
        self.goto(url).await;
        self.type_into("login-username", username).await;
        self.type_into("login-password", password).await;
        self.click("login-submit").await;
        for _ in 0..100 {
            if self.script("return !document.getElementById('portability').hidden").await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sign-in did not show the Data Portability page");
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", "url", json!({"url": url})).await;
    }

    pub async fn find(&self, testid: &str) -> Option<String> {
        let query = json!({"using": "css selector", "value": format!("[data-testid=\"{testid}\"]")});
        match self.try_call("POST", "element", query).await {
            Ok(found) => found[ELEMENT].as_str().map(str::to_string),
            Err((error, _)) if error == "no such element" => None,
            Err((error, message)) => panic!("WebDriver find {testid}: {error}: {message}"),
        }
    }

    pub async fn element(&self, testid: &str) -> String {
        for _ in 0..100 {
            if let Some(id) = self.find(testid).await {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {testid}");
    }

    pub async fn click(&self, testid: &str) {
        let id = self.element(testid).await;
        self.call("POST", &format!("element/{id}/click"), json!({})).await;
    }

    pub async fn type_into(&self, testid: &str, text: &str) {
        let id = self.element(testid).await;
        self.call("POST", &format!("element/{id}/value"), json!({"text": text})).await;
    }

    /// Replaces the value of an input by typing `text` into it.
    pub async fn fill(&self, testid: &str, text: &str) {
        let id = self.element(testid).await;
        self.call("POST", &format!("element/{id}/clear"), json!({})).await;
        self.call("POST", &format!("element/{id}/value"), json!({"text": text})).await;
    }

    /// Picks a file in an `<input type=file>`.
    pub async fn pick(&self, testid: &str, path: &Path) {
        self.type_into(testid, &path.display().to_string()).await;
    }

    pub async fn text(&self, testid: &str) -> String {
        let id = self.element(testid).await;
        self.call("GET", &format!("element/{id}/text"), json!({})).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call("POST", "execute/sync", json!({"script": script, "args": []})).await
    }

    /// Waits (bounded) until the text of `testid` satisfies `accept`; returns it.
    pub async fn wait_text(&self, testid: &str, accept: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..600 {
            last = self.text(testid).await;
            if accept(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.screenshot(&format!("failed-{testid}.png")).await;
        panic!("{testid} never matched; last text {last:?}");
    }

    /// Waits in the page, checking every 20 ms for at most `limit`, until `body` (a
    /// function body) returns something other than null; returns it. One WebDriver call,
    /// so the waiting costs the browser next to nothing.
    pub async fn wait_in_page(&self, body: &str, limit: Duration) -> Value {
        let millis = limit.as_millis() as u64;
        self.call("POST", "timeouts", json!({"script": millis + 5_000})).await;
        let script = format!(
            "const done = arguments[arguments.length - 1]; const check = () => {{ {body} }}; \
             const until = Date.now() + {millis}; \
             const tick = () => {{ const value = check(); \
               if (value !== null && value !== undefined) done(value); \
               else if (Date.now() > until) done(null); else setTimeout(tick, 20); }}; tick();"
        );
        let value = self.call("POST", "execute/async", json!({"script": script, "args": []})).await;
        assert!(!value.is_null(), "nothing came in {limit:?}: {body}");
        value
    }

    /// Waits (bounded) until `script` returns something other than null or false; returns it.
    pub async fn wait_script(&self, script: &str) -> Value {
        for _ in 0..600 {
            let value = self.script(script).await;
            if !value.is_null() && value != false {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.screenshot("failed-wait-script.png").await;
        panic!("never true: {script}");
    }

    pub async fn screenshot(&self, name: &str) {
        let data = self.call("GET", "screenshot", json!({})).await;
        let png = BASE64.decode(data.as_str().unwrap()).unwrap();
        std::fs::write(artefacts().join(name), png).unwrap();
    }

    /// The summary row of `table`: imported, merged, skipped, rejected.
    pub async fn summary_row(&self, table: &str) -> [u64; 4] {
        let script = format!(
            "const row = document.querySelector('[data-testid=\"summary-{table}\"]'); if (!row) return null; \
             return ['imported','merged','skipped','rejected'].map(f => Number(row.querySelector(`[data-testid=\"${{f}}\"]`).textContent));"
        );
        let values = self.script(&script).await;
        let numbers: Vec<u64> = values
            .as_array()
            .unwrap_or_else(|| panic!("no summary row {table}"))
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        [numbers[0], numbers[1], numbers[2], numbers[3]]
    }
}
