//! The Data Portability page in a real headless Chromium (Debian `chromium` driven through
//! `chromedriver` over the WebDriver protocol) against a real server: sign-in, archives
//! refused in the browser with no request reaching the server, a Lumiverse fixture
//! inspected, imported with its ticket and imported again, a cancelled import, and an
//! export downloaded and opened by lvbak-core. Screenshots land in
//! `$CARGO_TARGET_DIR/browser-artefacts/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lvbak_core::explore::{LIST_PAGE, MESSAGE_PAGE, NAME_TEXT};
use lvbak_core::{Archive, Limits};
use lvbak_server::seed::SeedOptions;
use lvbak_tests::zipcraft::{RawEntry, RawZip};
use lvbak_tests::{corpus, fixtures};
use serde_json::json;

use crate::support::{on_each_backend, Account, Backend, ScratchDir, TestServer};
use crate::webdriver::Browser;

// The tests that reach the server's storage run on SQLite (`name::sqlite`) and on
// PostgreSQL (`name::postgres`); the explorer's stay in the browser and run once.
on_each_backend!(
    the_page_checks_imports_and_exports_in_a_real_browser,
    the_plain_upload_fallback_asks_for_the_ticket,
    a_cancelled_import_then_another_archive_starts_the_card_over,
    the_embeddings_card_configures_tests_and_follows_a_run,
    a_restored_embeddings_setting_waits_to_be_checked_and_enabled,
);

/// [`an_interrupted_upload_resumes_from_the_servers_next_batch`] on each backend (written
/// out: the import of 160,000 messages, every id another account's so every row copied,
/// took 44 s on PostgreSQL before its copies went in by `COPY` and the id map lost its
/// per-row foreign-key check; 14 s now by the CLI, SQLite's 11 s).
mod an_interrupted_upload_resumes_from_the_servers_next_batch {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::an_interrupted_upload_resumes_from_the_servers_next_batch(crate::support::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::an_interrupted_upload_resumes_from_the_servers_next_batch(crate::support::Backend::Postgres).await
    }
}

async fn sign_in(browser: &Browser, server: &TestServer, account: &Account) {
    browser.sign_in(&server.url("/"), &account.user.username, &account.password).await;
}

pub(crate) fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Picks a new archive: the page resets and inspects it.
pub(crate) async fn pick_archive(browser: &Browser, path: &Path) {
    browser.script("document.querySelector('[data-testid=\"import-file\"]').value = ''").await;
    browser.pick("import-file", path).await;
}

async fn the_page_checks_imports_and_exports_in_a_real_browser(backend: Backend) {
    assert!(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/lvbak-wasm_bg.wasm").exists(),
        "build the page first: trunk build --release"
    );
    let server = TestServer::start_on(backend, "browser").await;
    let account = server.account("browser-user", None).await;
    let files = ScratchDir::new("browser-files");
    let downloads = ScratchDir::new("browser-downloads");
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &account).await;

    // Refused in the browser, with the code first, and nothing sent.
    let before = server.state.import_requests();
    let not_zip = write(&files.path, "notes.lvbak", b"these are not the archives you are looking for");
    pick_archive(&browser, &not_zip).await;
    let refused = browser.wait_text("inspect-error", |t| !t.is_empty()).await;
    assert!(refused.starts_with("not_zip"), "{refused}");
    let traversal = corpus::cases().into_iter().find(|c| c.name == "dot_dot_segment").unwrap();
    let traversal = write(&files.path, "traversal.lvbak", &traversal.bytes);
    pick_archive(&browser, &traversal).await;
    let refused = browser.wait_text("inspect-error", |t| t.starts_with("path_traversal")).await;
    assert!(refused.contains("passwd"), "{refused}");
    assert_eq!(browser.script("return document.querySelector('[data-testid=\"import-start\"]').disabled").await, true);
    assert_eq!(server.state.import_requests(), before, "a refused archive must not reach the server");

    // A Lumiverse fixture with secrets: inspected locally, imported with its ticket.
    let archive = write(&files.path, "secrets.lvbak", fixtures::SECRETS);
    let ticket = write(&files.path, "secrets.ticket.json", fixtures::SECRETS_TICKET);
    pick_archive(&browser, &archive).await;
    let report = browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let opened = Archive::open(std::io::Cursor::new(fixtures::SECRETS), Limits::STANDARD).unwrap();
    let archive_id = opened.manifest().archive_id.clone();
    let index = opened.table_entry("messages").unwrap();
    let messages_in_archive = opened.ndjson_lines(index).unwrap().count().unwrap();
    assert!(messages_in_archive > 0);
    assert!(report.contains(&archive_id), "{report}");
    let shown =
        browser.script("return document.querySelector('[data-testid=\"inspect-count-messages\"]').textContent").await;
    assert_eq!(shown.as_str().unwrap().parse::<u64>().unwrap(), messages_in_archive);
    assert_eq!(server.state.import_requests(), before, "inspection must not upload anything");
    browser.screenshot("inspection-report.png").await;
    browser.pick("ticket-file", &ticket).await;
    for _ in 0..100 {
        if browser.script("return document.querySelector('[data-testid=\"import-start\"]').disabled").await == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    let progress = browser.text("import-progress").await;
    assert_eq!(status, "complete", "{progress}");
    assert_eq!(progress, "Import complete");
    browser.screenshot("import-summary.png").await;
    assert_eq!(browser.summary_row("messages").await, [messages_in_archive, 0, 0, 0]);
    // Grouped by domain: the fixture's one chat and its messages under "Chats".
    assert_eq!(browser.summary_row("domain-chats").await, [messages_in_archive + 1, 0, 0, 0]);
    let rows = crate::export::owned_rows(&server, "messages", &account.user.id);
    assert_eq!(rows.len() as u64, messages_in_archive);
    let stored = server.secrets_of(&account.user.id);
    assert_eq!(stored.len(), 3, "the API keys arrive sealed and are stored");

    // The same archive again: everything is skipped, and the ticket's reuse is reported.
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| t.contains(&archive_id)).await;
    browser.pick("ticket-file", &ticket).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete");
    assert_eq!(browser.summary_row("messages").await, [0, 0, messages_in_archive, 0]);
    let reused = browser.script("return document.getElementById('ticket-reused').hidden").await;
    assert_eq!(reused, false, "the reuse warning is shown");

    // An archive from a newer Lumiverse: imported, and the values it could not keep named.
    let id = "6b1d4c2f-9e3a-4f7b-8c8d-1e2f3a4b5c6d";
    let newer =
        crate::import::archive_with_tables(&[("characters", crate::compat::character_with_extra_columns(id, "x"))]);
    let newer = write(&files.path, "newer.lvbak", &newer);
    pick_archive(&browser, &newer).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete");
    let warning = browser.text("dropped-characters").await;
    assert!(
        warning.contains("characters rows have columns this server does not know (mood_json, voice_profile)"),
        "{warning}"
    );

    // A large archive, cancelled mid-way.
    let source = server
        .account("browser-big", Some(SeedOptions { chats: 4, messages_per_chat: 40_000, ..SeedOptions::default() }))
        .await;
    let big = server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let big = write(&files.path, "big.lvbak", &big.bytes().await.unwrap());
    let target = server.account("browser-cancel", None).await;
    let _ = browser.script("return fetch('/api/v1/auth/logout', {method: 'POST', headers: {'X-Requested-With': 'x'}}).then(r => r.status)").await;
    sign_in(&browser, &server, &target).await;
    pick_archive(&browser, &big).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    browser.click("import-start").await;
    browser.wait_text("import-progress", |t| t.starts_with("Uploading")).await;
    browser.click("import-cancel").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "cancelled", "{}", browser.text("import-progress").await);
    let kept = crate::export::owned_rows(&server, "messages", &target.user.id).len();
    assert!(kept < 160_000, "the cancelled import stopped early ({kept} messages)");

    // Export: a native download that lvbak-core opens.
    browser.click("export-download").await;
    let mut downloaded = None;
    for _ in 0..300 {
        let done: Vec<PathBuf> = std::fs::read_dir(&downloads.path)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "lvbak"))
            .collect();
        if let Some(path) = done.into_iter().next() {
            downloaded = Some(path);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downloaded = downloaded.expect("the export was downloaded");
    let bytes = std::fs::read(&downloaded).unwrap();
    let opened = Archive::open(std::io::Cursor::new(bytes), Limits::STANDARD).unwrap();
    assert_eq!(opened.manifest().producer, "lumiverse");
    assert!(opened.table_entry("messages").is_some());
    // The page has an icon (no 404 on every load) and a labelled progress bar.
    assert_eq!(browser.script("return fetch('/favicon.svg').then(r => r.status)").await, 200);
    let label = browser.script("return document.getElementById('import-bar').getAttribute('aria-label')").await;
    assert_eq!(label, "Import progress");
    // The export's named progress events reach the page, to the last one.
    let progress = browser.wait_text("export-progress", |t| t == "Export complete.").await;
    assert_eq!(progress, "Export complete.");
}

/// A browser without Web Workers uploads the archive as it is; when the server asks for
/// the ticket, the page asks the user (it used to skip the API keys without asking).
async fn the_plain_upload_fallback_asks_for_the_ticket(backend: Backend) {
    let server = TestServer::start_on(backend, "browser-fallback").await;
    let account = server.account("fallback-user", None).await;
    let files = ScratchDir::new("browser-fallback-files");
    let downloads = ScratchDir::new("browser-fallback-downloads");
    let browser = Browser::start(&downloads.path).await;
    // Chromium's DevTools protocol, through chromedriver: no Worker on any page from now on.
    browser
        .call(
            "POST",
            "goog/cdp/execute",
            serde_json::json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": "delete window.Worker;"}}),
        )
        .await;
    sign_in(&browser, &server, &account).await;
    let archive = write(&files.path, "secrets.lvbak", fixtures::SECRETS);
    let ticket = write(&files.path, "secrets.ticket.json", fixtures::SECRETS_TICKET);
    pick_archive(&browser, &archive).await;
    browser.wait_text("import-progress", |t| t.contains("the server will")).await;
    browser.click("import-start").await;
    browser.wait_text("import-progress", |t| t == "Waiting for the ticket…").await;
    let asked = browser.script("return document.getElementById('ticket-box').hidden").await;
    assert_eq!(asked, false, "the ticket is asked for");
    browser.pick("ticket-file", &ticket).await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
    crate::import::assert_fixture_secrets_stored(&server, &account);
}

/// The import card's states, past a cancellation: an upload cancelled while its job waits
/// for the ticket, then another archive picked, leaves the card as a first pick does (no
/// summary, no ticket question, nothing running, Upload ready), and that archive imports.
/// Without a Worker, so the job waits on the server for as long as the test needs.
async fn a_cancelled_import_then_another_archive_starts_the_card_over(backend: Backend) {
    let server = TestServer::start_on(backend, "browser-cancel-over").await;
    let account = server.account("cancel-over-user", None).await;
    let files = ScratchDir::new("browser-cancel-over-files");
    let downloads = ScratchDir::new("browser-cancel-over-downloads");
    let browser = Browser::start(&downloads.path).await;
    let no_worker =
        json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": "delete window.Worker;"}});
    browser.call("POST", "goog/cdp/execute", no_worker).await;
    sign_in(&browser, &server, &account).await;
    let secrets = write(&files.path, "secrets.lvbak", fixtures::SECRETS);
    pick_archive(&browser, &secrets).await;
    browser.wait_text("import-progress", |t| t.contains("the server will")).await;
    browser.click("import-start").await;
    browser.wait_text("import-progress", |t| t == "Waiting for the ticket…").await;
    browser.click("import-cancel").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "cancelled", "{}", browser.text("import-progress").await);
    assert_eq!(browser.text("import-progress").await, "Import cancelled");

    let minimal = write(&files.path, "minimal.lvbak", fixtures::MINIMAL);
    pick_archive(&browser, &minimal).await;
    browser.wait_text("import-progress", |t| t.contains("the server will")).await;
    let card = browser
        .script(
            "const $ = (id) => document.getElementById(id); \
             return {status: $('import-status').textContent, start: $('import-start').textContent, \
             startDisabled: $('import-start').disabled, cancel: $('import-cancel').hidden, bar: $('import-bar').hidden, \
             picker: $('import-file').disabled, ticket: $('ticket-box').hidden, summary: $('import-summary').hidden, \
             notes: $('import-notes').hidden}",
        )
        .await;
    let idle = json!({"status": "idle", "start": "Upload & import", "startDisabled": false, "cancel": true, "bar": true,
        "picker": false, "ticket": true, "summary": true, "notes": true});
    assert_eq!(card, idle, "the card starts over");
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
    assert_eq!(browser.text("import-progress").await, "Import complete");
}

async fn the_embeddings_card_configures_tests_and_follows_a_run(backend: Backend) {
    use lvbak_tests::embedding_stub::EmbeddingStub;
    let stub = EmbeddingStub::start(8);
    stub.set(|s| s.key = Some("page-key".into()));
    let server = TestServer::start_on(backend, "browser-embeddings").await;
    let account = server.account("embed-user", Some(crate::support::small_seed())).await;
    let downloads = ScratchDir::new("browser-embeddings-downloads");
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &account).await;
    // The card shows the stored setting (the seed's OpenAI one) and no key.
    browser.wait_text("embeddings-status", |t| t.starts_with("idle")).await;
    assert_eq!(
        browser.script("return document.querySelector('[data-testid=\"embeddings-model\"]').value").await,
        "text-embedding-3-small"
    );
    browser.script("document.querySelector('[data-testid=\"embeddings-provider\"]').value = 'openai-compatible'").await;
    browser.fill("embeddings-url", &stub.url).await;
    browser.fill("embeddings-model", "stub-embed").await;
    browser.fill("embeddings-dimensions", "8").await;
    browser.fill("embeddings-key", "page-key").await;
    browser.script("document.querySelector('[data-testid=\"embeddings-chats\"]').checked = true").await;
    browser.click("embeddings-save").await;
    // Saving a new model starts the run by itself; it reaches its total.
    let progress = browser
        .wait_text("embeddings-progress", |t| {
            t.split_once('/').is_some_and(|(done, total)| done == total && done != "0")
        })
        .await;
    let (done, _) = progress.split_once('/').unwrap();
    let status = browser.wait_text("embeddings-status", |t| t.starts_with("complete")).await;
    assert!(status.starts_with("complete"), "{status}");
    assert_eq!(done.parse::<u64>().unwrap(), stub.seen(|s| s.embedded_texts));
    // The key is never shown back.
    assert_eq!(browser.script("return document.querySelector('[data-testid=\"embeddings-key\"]').value").await, "");
    browser.click("embeddings-test").await;
    browser.wait_text("embeddings-status", |t| t.starts_with("complete")).await;
    let message = browser.script("return document.getElementById('embeddings-message').textContent").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut message = message.as_str().unwrap_or_default().to_string();
    while !message.starts_with("Connected") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        message = browser
            .script("return document.getElementById('embeddings-message').textContent")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert_eq!(message, "Connected: stub-embed answered a vector of 8 dimensions.");
    browser.screenshot("embeddings-card.png").await;
    // A wrong key is said in words.
    browser.fill("embeddings-key", "wrong").await;
    browser.fill("embeddings-model", "stub-embed-2").await;
    browser.click("embeddings-save").await;
    let refused = browser.wait_text("embeddings-status", |t| t.starts_with("stopped")).await;
    assert!(refused.contains("refused the API key"), "{refused}");
    let error = browser.script("return document.getElementById('embeddings-error').textContent").await;
    assert!(error.as_str().unwrap().contains("Incorrect API key provided"), "{error}");
}

/// At a phone's width (360 CSS pixels) no screen state scrolls sideways: sign-in, the
/// cards, an inspection report, an import summary and the embeddings card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_fits_a_phone_screen() {
    let server = TestServer::start("browser-phone").await;
    let account = server.account("phone-user-with-a-rather-long-name", None).await;
    let files = ScratchDir::new("browser-phone-files");
    let downloads = ScratchDir::new("browser-phone-downloads");
    let browser = Browser::start(&downloads.path).await;
    let metrics = serde_json::json!({"width": 360, "height": 780, "deviceScaleFactor": 1, "mobile": true});
    browser
        .call(
            "POST",
            "goog/cdp/execute",
            serde_json::json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics}),
        )
        .await;
    let overflow = "return [document.documentElement.scrollWidth, window.innerWidth]";
    let assert_fits = |state: &'static str, widths: serde_json::Value| {
        let (scroll, inner) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert_eq!(inner, 360, "{state}: the viewport is not a phone's");
        assert!(scroll <= inner, "{state}: the page is {scroll} px wide on a {inner} px screen");
    };
    browser.goto(&server.url("/")).await;
    browser.element("login-username").await;
    assert_fits("sign-in", browser.script(overflow).await);
    sign_in(&browser, &server, &account).await;
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;
    assert_fits("cards", browser.script(overflow).await);
    let archive = write(&files.path, "minimal.lvbak", fixtures::MINIMAL);
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    assert_fits("inspection report", browser.script(overflow).await);
    browser.screenshot("phone-inspection-report.png").await;
    open_explorer(&browser).await;
    assert_fits("explorer", browser.script(overflow).await);
    let (chat, count) = messages_per_chat(fixtures::MINIMAL).into_iter().next().unwrap();
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    open_chat(&browser, &chat, count).await;
    assert_fits("explorer chat", browser.script(overflow).await);
    browser.screenshot("phone-explorer-chat.png").await;
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete");
    assert_fits("import summary", browser.script(overflow).await);
    browser.screenshot("phone-import-summary.png").await;
    let corrupt = write(&files.path, "notes.lvbak", b"not an archive at all, with a long name to wrap");
    pick_archive(&browser, &corrupt).await;
    browser.wait_text("inspect-error", |t| !t.is_empty()).await;
    assert_fits("refusal", browser.script(overflow).await);
    browser.fill("embeddings-url", "http://127.0.0.1:9/a/very/long/path/that/should/not/push/the/page/sideways").await;
    browser.click("embeddings-test").await;
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;
    assert_fits("embeddings card", browser.script(overflow).await);
    browser.script("document.getElementById('embeddings').scrollIntoView()").await;
    browser.screenshot("phone-embeddings.png").await;
}

/// An upload cut short by a reload resumes when the same file is picked again: the page
/// offers "Resume upload (batch K+1)", sends only the batches the server does not have,
/// and the import completes with every row.
async fn an_interrupted_upload_resumes_from_the_servers_next_batch(backend: Backend) {
    let server = TestServer::start_on(backend, "browser-resume").await;
    let source = server
        .account("resume-source", Some(SeedOptions { chats: 4, messages_per_chat: 40_000, ..SeedOptions::default() }))
        .await;
    let bytes = server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let files = ScratchDir::new("browser-resume-files");
    let archive = write(&files.path, "big.lvbak", &bytes.bytes().await.unwrap());
    let messages_in_archive = crate::export::owned_rows(&server, "messages", &source.user.id).len();
    let target = server.account("resume-target", None).await;
    let downloads = ScratchDir::new("browser-resume-downloads");
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &target).await;
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    browser.click("import-start").await;
    // Once the server holds a few batches, the page is reloaded: the Worker dies mid-upload.
    let job_of_page = "return Object.keys(localStorage).filter(k => k.startsWith('lvbak-upload:')).map(k => localStorage.getItem(k))[0] || null";
    let mut job = None;
    let mut next = 0;
    for _ in 0..3000 {
        if job.is_none() {
            job = browser.script(job_of_page).await.as_str().map(str::to_string);
        }
        if let Some(job) = &job {
            let path = format!("/api/v1/user-data/import/{job}/status");
            let status: serde_json::Value = server.get(&target, &path).send().await.unwrap().json().await.unwrap();
            next = status["nextBatch"].as_u64().unwrap_or(0);
            if next >= 4 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = job.expect("the page remembered its job");
    assert!(next >= 4, "the upload never got going");
    browser.goto(&server.url("/")).await;
    // The same file again: the page offers to resume where the server stands (read after
    // the offer: a batch the old page had in flight may land after the reload).
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;
    pick_archive(&browser, &archive).await;
    let offer = browser.wait_text("import-start", |t| t.starts_with("Resume upload")).await;
    let path = format!("/api/v1/user-data/import/{job}/status");
    let status: serde_json::Value = server.get(&target, &path).send().await.unwrap().json().await.unwrap();
    assert!(!["complete", "failed", "cancelled"].contains(&status["status"].as_str().unwrap()), "{status}");
    let taken = status["nextBatch"].as_u64().unwrap();
    assert_eq!(offer, format!("Resume upload (batch {})", taken + 1));
    let before = server.state.import_requests();
    browser.click("import-start").await;
    let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
    assert_eq!(status, "complete", "{}", browser.text("import-progress").await);
    let requests = server.state.import_requests() - before;
    let outcome = browser
        .script("return JSON.parse(document.querySelector('[data-testid=\"import-status\"]').dataset.outcome)")
        .await;
    let batches = outcome["report"]["batches"].as_u64().unwrap();
    assert!(taken < batches, "{taken} of {batches}");
    // The remaining batches, plus the vectors check, the commit and the final status.
    assert!(requests <= batches - taken + 3, "{requests} requests for {} remaining batches", batches - taken);
    assert!(requests < batches, "a whole upload was sent again ({requests} requests, {batches} batches)");
    let imported = crate::export::owned_rows(&server, "messages", &target.user.id).len();
    assert_eq!(imported, messages_in_archive);

    // Exporting this account (160k messages) shows its progress as it goes, in words.
    let observe = "window.seenExport = []; const el = document.querySelector('[data-testid=\"export-progress\"]'); \
        new MutationObserver(() => { const t = el.textContent; \
        if (t && window.seenExport[window.seenExport.length - 1] !== t) window.seenExport.push(t); }) \
        .observe(el, {childList: true, characterData: true, subtree: true});";
    browser.script(observe).await;
    browser.click("export-download").await;
    browser.wait_text("export-progress", |t| t == "Export complete.").await;
    let seen = browser.script("return window.seenExport").await;
    let seen: Vec<&str> = seen.as_array().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert!(seen.len() >= 3, "the progress changed fewer than twice: {seen:?}");
    assert!(seen.iter().any(|t| t.starts_with("Exporting ")), "{seen:?}");
    assert_eq!(seen.last(), Some(&"Export complete."));
}

/// Clicks the first button inside the element with this test id.
async fn click_inside(browser: &Browser, testid: &str) {
    let clicked = browser
        .script(&format!(
            "const b = document.querySelector('[data-testid=\"{testid}\"] button'); if (b) b.click(); return !!b"
        ))
        .await;
    assert_eq!(clicked, true, "no button in {testid}");
}

/// Messages per chat id, counted in the archive itself.
fn messages_per_chat(bytes: &[u8]) -> std::collections::BTreeMap<String, u64> {
    let archive = Archive::open(std::io::Cursor::new(bytes), Limits::STANDARD).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    let index = archive.table_entry("messages").unwrap();
    archive
        .for_each_row(index, |_, row| {
            *counts.entry(row["chat_id"].as_str().unwrap().to_string()).or_default() += 1;
            Ok(())
        })
        .unwrap();
    counts
}

/// Opens the explorer on the picked archive and waits for its index.
pub(crate) async fn open_explorer(browser: &Browser) -> serde_json::Value {
    browser.click("explore-open").await;
    browser.wait_script("return document.getElementById('explorer').dataset.buildMs || null").await;
    browser.script("return Object.assign({}, document.getElementById('explorer').dataset)").await
}

/// Opens a chat and waits until its first page of messages (all of them, up to a page) is
/// shown; the transcript's data (timings, `start`, `total`).
async fn open_chat(browser: &Browser, chat: &str, messages: u64) -> serde_json::Value {
    click_inside(browser, &format!("explore-chat-{chat}")).await;
    let page = messages.min(MESSAGE_PAGE as u64);
    let shown = format!(
        "const t = document.getElementById('explore-transcript'); \
         return document.getElementById('explore-detail').dataset.chat === '{chat}' && t.dataset.total === '{messages}' \
           && t.querySelectorAll('[data-testid=\"explore-message\"]').length === {page} && t.dataset.totalMs ? Object.assign({{}}, t.dataset) : null"
    );
    browser.wait_script(&shown).await
}

/// The explorer on a real Lumiverse fixture and on an export of a seeded account with a
/// 2,000-message chat: message counts equal the archive's, swipes switch through every
/// swipe, branches name their parent and fork point, pictures load from the archive, search
/// finds message text, and not one request reaches the server while browsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_explorer_browses_the_local_file_without_a_request() {
    let server = TestServer::start("browser-explorer").await;
    let source = server
        .account(
            "explorer-source",
            Some(SeedOptions { chats: 2, messages_per_chat: 2000, characters: 3, ..SeedOptions::default() }),
        )
        .await;
    let viewer = server.account("explorer-viewer", None).await;
    let exported = server.get(&source, "/api/v1/user-data/export?includeVectors=0").send().await.unwrap();
    let exported = exported.bytes().await.unwrap().to_vec();
    let files = ScratchDir::new("browser-explorer-files");
    let downloads = ScratchDir::new("browser-explorer-downloads");
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &viewer).await;
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;

    // The Lumiverse fixture: a 20-message chat with a 3-swipe message.
    let minimal = write(&files.path, "minimal.lvbak", fixtures::MINIMAL);
    pick_archive(&browser, &minimal).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let before = server.state.requests();
    open_explorer(&browser).await;
    let (chat, count) = messages_per_chat(fixtures::MINIMAL).into_iter().next().unwrap();
    assert_eq!(count, 20);
    let listed = browser
        .script(&format!("return document.querySelector('[data-testid=\"explore-chat-{chat}\"]').dataset.messages"))
        .await;
    assert_eq!(listed, count.to_string());
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    open_chat(&browser, &chat, count).await;
    let swipes = browser
        .script(
            "const m = [...document.querySelectorAll('[data-testid=\"explore-message\"]')].find(m => m.dataset.swipes === '3'); \
             if (!m) return null; const seen = []; \
             for (let i = 0; i < 3; i++) { seen.push([m.querySelector('[data-testid=\"explore-swipe-position\"]').textContent, m.querySelector('.text').textContent]); \
               m.querySelector('[data-testid=\"explore-swipe-next\"]').click(); } return seen",
        )
        .await;
    let archive = Archive::open(std::io::Cursor::new(fixtures::MINIMAL), Limits::STANDARD).unwrap();
    let mut expected_swipes = Vec::new();
    let index = archive.table_entry("messages").unwrap();
    archive
        .for_each_row(index, |_, row| {
            let swipes: Vec<String> = serde_json::from_str(row["swipes"].as_str().unwrap_or("[]")).unwrap_or_default();
            if swipes.len() == 3 {
                let at = row["swipe_id"].as_u64().unwrap_or(0) as usize;
                expected_swipes = (0..3).map(|i| swipes[(at + i) % 3].clone()).collect();
            }
            Ok(())
        })
        .unwrap();
    let seen: Vec<(String, String)> = serde_json::from_value(swipes).unwrap();
    assert_eq!(seen.iter().map(|(_, text)| text.clone()).collect::<Vec<_>>(), expected_swipes, "every swipe, in order");
    let positions: Vec<&str> = seen.iter().map(|(position, _)| position.as_str()).collect();
    assert!(positions.iter().all(|p| p.ends_with("/3")), "{positions:?}");
    browser.screenshot("explorer-fixture-chat.png").await;

    // The seeded account's export: avatars, images, a branch, a 2,000-message chat.
    let seeded = write(&files.path, "seeded.lvbak", &exported);
    pick_archive(&browser, &seeded).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let built = open_explorer(&browser).await;
    let widths = browser
        .wait_script("const w = [...document.querySelectorAll('[data-testid=\"explore-characters\"] img')].map(i => i.complete && i.naturalWidth); return w.length && w.every(x => x > 0) ? w : null")
        .await;
    assert_eq!(widths.as_array().unwrap().len(), 3, "one loaded avatar per character: {widths}");
    browser.script("document.getElementById('explorer').scrollIntoView()").await;
    browser.screenshot("explorer-characters.png").await;
    // Only the chosen tab's panel shows (the gallery is a grid: `hidden` must still win).
    let shown = browser
        .script("return [...document.querySelectorAll('#explorer [role=tabpanel]')].filter(p => p.offsetParent !== null).map(p => p.id)")
        .await;
    assert_eq!(shown, serde_json::json!(["explore-characters"]));
    browser.script("document.querySelector('[data-panel=\"explore-images\"]').click()").await;
    let gallery = browser
        .wait_script("const w = [...document.querySelectorAll('[data-testid=\"explore-images\"] img')].map(i => i.complete && i.naturalWidth); return w.length && w.every(x => x > 0) ? w.length : null")
        .await;
    assert_eq!(gallery, 3, "every image of the gallery shows");
    browser.script("document.querySelector('[data-testid=\"explore-images\"] figcaption button').click()").await;
    let full = browser
        .wait_script("const i = document.querySelector('[data-testid=\"explore-image-full\"]'); return i && i.complete && i.naturalWidth ? i.naturalWidth : null")
        .await;
    assert!(full.as_u64().unwrap() >= 48, "the original, not the thumbnail: {full}");
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    let counts = messages_per_chat(&exported);
    assert_eq!(counts.len(), 3, "two chats and a branch: {counts:?}");
    for (chat, count) in &counts {
        let shown = browser
            .script(&format!("return document.querySelector('[data-testid=\"explore-chat-{chat}\"]').dataset.messages"))
            .await;
        assert_eq!(shown, count.to_string(), "chat {chat}");
    }
    let branch = browser.script("return [...document.querySelectorAll('[data-testid=\"explore-chats\"] li')].map(li => li.textContent).find(t => t.includes('branch of')) || null").await;
    let branch = branch.as_str().unwrap_or_default().to_string();
    assert!(branch.contains("branch of “Harbour night 1” at message #2"), "{branch}");
    let (long_chat, long_count) = counts.iter().max_by_key(|(_, count)| **count).unwrap();
    assert!(*long_count >= 2000);
    let timings = open_chat(&browser, long_chat, *long_count).await;
    eprintln!("explorer on the seeded account: index {built}; {long_count}-message chat {timings}");
    assert_eq!(timings["start"], "0", "the first page");
    browser.screenshot("explorer-seeded-chat.png").await;
    browser.script("document.querySelector('[data-panel=\"explore-worldbooks\"]').click()").await;
    let book = browser.script("const li = document.querySelector('[data-testid^=\"explore-worldbook-\"]'); return li ? li.dataset.testid.slice('explore-worldbook-'.length) : null").await;
    click_inside(&browser, &format!("explore-worldbook-{}", book.as_str().unwrap())).await;
    let entries = browser
        .wait_script("const n = document.querySelectorAll('[data-testid=\"explore-entry\"]').length; return n || null")
        .await;
    assert!(entries.as_u64().unwrap() > 0);

    browser.fill("explore-search", "lanterns stayed LIT").await;
    let hits = browser.wait_script("return document.getElementById('explore-search-state').textContent.includes('result') ? document.querySelectorAll('[data-testid=\"explore-hit-message\"]').length : null").await;
    assert_eq!(hits, 1, "the branch's own message, found by its text");
    assert_eq!(server.state.requests(), before, "browsing must not send a single request");

    // Imported twice into this account (as copies: the ids are the source account's): the
    // second upload leaves out every file, which the server holds already.
    let files_in_archive = Archive::open(std::io::Cursor::new(exported.as_slice()), Limits::STANDARD)
        .unwrap()
        .entries()
        .iter()
        .filter(|entry| entry.name.starts_with("files/"))
        .count();
    for round in 0..2 {
        pick_archive(&browser, &seeded).await;
        browser.wait_text("inspect-report", |t| !t.is_empty()).await;
        browser.click("import-start").await;
        let status = browser.wait_text("import-status", |t| ["complete", "failed", "cancelled"].contains(&t)).await;
        assert_eq!(status, "complete", "round {round}: {}", browser.text("import-progress").await);
    }
    let held = browser.text("import-held").await;
    assert!(held.starts_with(&format!("{files_in_archive} files (")), "{held}");
}

/// `n` as the page writes it (`toLocaleString("en-US")`: 200,000).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// An archive of these tables (name, NDJSON text) and a manifest, nothing else.
fn archive_of(tables: &[(&str, String)]) -> Vec<u8> {
    let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
    for (table, ndjson) in tables {
        entries.push(RawEntry::deflated(&lvbak_core::table_entry_name(table), ndjson.as_bytes()));
    }
    RawZip::new(entries).build()
}

/// A browser signed in to a fresh server, with scratch folders for its files.
pub(crate) async fn explorer_session(label: &str) -> (TestServer, Browser, ScratchDir, ScratchDir) {
    let server = TestServer::start(label).await;
    let viewer = server.account(&format!("{label}-viewer"), None).await;
    let files = ScratchDir::new(&format!("{label}-files"));
    let downloads = ScratchDir::new(&format!("{label}-downloads"));
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &viewer).await;
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;
    (server, browser, files, downloads)
}

/// The transcript's messages, as `[index, text]`, and its `start` and `total`.
async fn transcript(browser: &Browser) -> (Vec<(u64, String)>, u64, u64) {
    let seen = browser
        .script(
            "const t = document.getElementById('explore-transcript'); \
             return {start: t.dataset.start, total: t.dataset.total, items: t.children.length, \
               messages: [...t.querySelectorAll('[data-testid=\"explore-message\"]')].map(m => [Number(m.dataset.index), m.querySelector('.text').textContent])}",
        )
        .await;
    let messages: Vec<(u64, String)> = serde_json::from_value(seen["messages"].clone()).unwrap();
    assert_eq!(seen["items"].as_u64().unwrap(), messages.len() as u64, "the transcript holds messages only");
    let number = |key: &str| seen[key].as_str().unwrap().parse::<u64>().unwrap();
    (messages, number("start"), number("total"))
}

/// Finding 12, "explorer members bomb": one character with a 1 MB name, named 500,000 times
/// by one group chat, in a 14 KB archive, used to run the Worker's Wasm out of memory
/// (`unreachable`) and leave it broken for every later archive. Now the group shows its one
/// member under a clipped name, the Wasm module stays small, and the next archive browses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_bounds_a_members_bomb_and_browses_the_next_archive() {
    let (server, browser, files, _downloads) = explorer_session("browser-bomb").await;
    let name = "N".repeat(1 << 20);
    let characters = format!("{}\n", json!({"id": "c1", "name": name, "description": "one of many"}));
    let metadata = json!({"group": true, "character_ids": vec!["c1"; 500_000]}).to_string();
    let chats =
        format!("{}\n", json!({"id": "bomb-chat", "name": "Everyone", "character_id": null, "metadata": metadata}));
    let bomb = archive_of(&[("characters", characters), ("chats", chats)]);
    assert!(bomb.len() < 32 * 1024, "the bomb is small: {} bytes", bomb.len());
    let bomb = write(&files.path, "bomb.lvbak", &bomb);
    pick_archive(&browser, &bomb).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let before = server.state.requests();
    let built = open_explorer(&browser).await;
    let state = browser.text("explore-state").await;
    assert!(state.starts_with("1 character, 1 chat"), "{state}");
    let memory: f64 = built["wasmMemoryBytes"].as_str().unwrap().parse().unwrap();
    eprintln!("members bomb: Wasm memory {:.1} MiB, index {built}", memory / (1 << 20) as f64);
    assert!(memory < (64 << 20) as f64, "the Worker's Wasm memory grew to {memory} bytes");
    let index_bytes: u64 = built["indexBytes"].as_str().unwrap().parse().unwrap();
    assert!(index_bytes < 4096, "the index holds {index_bytes} bytes");
    let clipped = format!("{}…", "N".repeat(NAME_TEXT));
    let character = browser
        .script("return document.querySelector('[data-testid=\"explore-character-c1\"] strong').textContent")
        .await;
    assert_eq!(character, clipped.as_str(), "the name, clipped");
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    let facts = browser
        .script("return document.querySelector('[data-testid=\"explore-chat-bomb-chat\"] [data-testid=\"explore-facts\"]').textContent")
        .await;
    assert_eq!(facts, format!("group: {clipped} · 0 messages").as_str(), "one member, once");
    let text = browser.script("return document.getElementById('explorer').textContent.length").await;
    assert!(text.as_u64().unwrap() < 4096, "the explorer shows {text} characters");
    browser.screenshot("explorer-members-bomb.png").await;

    // A normal archive afterwards, in the same Worker: it opens and browses.
    let minimal = write(&files.path, "minimal.lvbak", fixtures::MINIMAL);
    pick_archive(&browser, &minimal).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    open_explorer(&browser).await;
    let (chat, count) = messages_per_chat(fixtures::MINIMAL).into_iter().next().unwrap();
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    open_chat(&browser, &chat, count).await;
    let (messages, start, total) = transcript(&browser).await;
    assert_eq!((messages.len() as u64, start, total), (count, 0, count));
    assert_eq!(server.state.requests(), before, "browsing must not send a single request");
}

/// The page's first Worker traps for real (a Wasm `unreachable`) when asked to explore; the
/// others are the page's own. Run in the page before its scripts, so it sees every Worker.
/// The page's Worker is a module: the trapping one imports the page's worker.js and the
/// Wasm module's `Processor` (the same module instance worker.js uses) by absolute URL.
const FIRST_WORKER_TRAPS: &str = r#"(() => {
  const Real = window.Worker;
  window.lvbakWorkers = [];
  const trapping = `
    import { Processor } from ${JSON.stringify(location.origin + "/lvbak-wasm.js")};
    import ${JSON.stringify(location.origin + "/worker.js")};
    // A module whose one function is \`unreachable\`: calling it traps as an out-of-memory would.
    const bytes = new Uint8Array([0,97,115,109,1,0,0,0,1,4,1,96,0,0,3,2,1,0,7,8,1,4,116,114,97,112,0,0,10,5,1,3,0,0,11]);
    const trap = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.trap;
    Processor.prototype.explore = function () { trap(); };
  `;
  window.Worker = class extends Real {
    constructor(url, options) {
      const first = window.lvbakWorkers.length === 0;
      super(first ? URL.createObjectURL(new Blob([trapping], { type: "text/javascript" })) : url, options);
      window.lvbakWorkers.push(this);
    }
    terminate() {
      this.terminated = true;
      return super.terminate();
    }
  };
})();"#;

/// A Worker whose Wasm trapped is ended and a new one started: the next archive works
/// without reloading the page (it used to fail with "attempted to take ownership of Rust
/// value while it was borrowed" until a reload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_wasm_trapped_is_replaced_and_the_next_archive_works() {
    let server = TestServer::start("browser-trap").await;
    let viewer = server.account("trap-viewer", None).await;
    let files = ScratchDir::new("browser-trap-files");
    let downloads = ScratchDir::new("browser-trap-downloads");
    let browser = Browser::start(&downloads.path).await;
    let install = json!({"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": FIRST_WORKER_TRAPS}});
    browser.call("POST", "goog/cdp/execute", install).await;
    sign_in(&browser, &server, &viewer).await;
    browser.wait_text("embeddings-status", |t| !t.is_empty()).await;
    let minimal = write(&files.path, "minimal.lvbak", fixtures::MINIMAL);
    pick_archive(&browser, &minimal).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    browser.click("explore-open").await;
    let said = browser.wait_text("import-progress", |t| t.contains("restarted")).await;
    assert!(said.contains("wasm_trap") && said.contains("unreachable"), "{said}");
    let workers = browser.script("return window.lvbakWorkers.map(w => !!w.terminated)").await;
    assert_eq!(workers, json!([true, false]), "the trapped Worker ended, a new one started");
    assert_eq!(browser.script("return document.getElementById('explorer').hidden").await, true);

    // The same archive again, in the new Worker: inspected, explored, a chat opened.
    pick_archive(&browser, &minimal).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    open_explorer(&browser).await;
    let (chat, count) = messages_per_chat(fixtures::MINIMAL).into_iter().next().unwrap();
    open_chat(&browser, &chat, count).await;
    let (messages, _, total) = transcript(&browser).await;
    assert_eq!((messages.len() as u64, total), (count, count));
    assert_eq!(browser.script("return window.lvbakWorkers.length").await, 2);
}

/// Finding 13, "explorer scale" (transcripts): a chat of 300,000 messages used to never
/// open (`replaceChildren(...items)` throws past ~100k arguments). Now it opens at its first
/// page and pages forward, back and to the end, never holding more than a page of messages;
/// a search hit opens the page its message is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_of_300000_messages_opens_and_pages() {
    const MESSAGES: u64 = 300_000;
    let (_server, browser, files, _downloads) = explorer_session("browser-long-chat").await;
    let chats = format!("{}\n", json!({"id": "long", "name": "The long watch", "metadata": "{}"}));
    let mut messages = String::new();
    for n in 0..MESSAGES {
        let row = json!({"id": format!("m{n}"), "chat_id": "long", "index_in_chat": n, "is_user": n % 2, "name": "Watch",
            "content": format!("bell {n} of the long watch"), "swipes": "[]"});
        messages.push_str(&format!("{row}\n"));
    }
    let archive = write(&files.path, "long.lvbak", &archive_of(&[("chats", chats), ("messages", messages)]));
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    open_explorer(&browser).await;
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    let listed =
        browser.script("return document.querySelector('[data-testid=\"explore-chat-long\"]').dataset.messages").await;
    assert_eq!(listed, MESSAGES.to_string());
    open_chat(&browser, "long", MESSAGES).await;
    let page = MESSAGE_PAGE as u64;
    let (shown, start, total) = transcript(&browser).await;
    assert_eq!((start, total, shown.len() as u64), (0, MESSAGES, page));
    assert_eq!(shown[0], (0, "bell 0 of the long watch".to_string()));
    assert_eq!(shown.last().unwrap().0, page - 1);
    assert_eq!(browser.text("explore-page-range").await, format!("Messages 1–{page} of 300,000"));
    browser.screenshot("explorer-long-chat.png").await;

    // Forward a page: the next messages, and only those.
    let at = |start: u64| {
        format!("return document.getElementById('explore-transcript').dataset.start === '{start}' || null")
    };
    browser.click("explore-page-next").await;
    browser.wait_script(&at(page)).await;
    let (shown, _, _) = transcript(&browser).await;
    assert_eq!(shown.len() as u64, page);
    assert_eq!(shown[0], (page, format!("bell {page} of the long watch")));
    assert_eq!(browser.text("explore-page-range").await, format!("Messages {}–{} of 300,000", page + 1, 2 * page));
    // To the end, and back a page.
    browser.click("explore-page-last").await;
    let last = (MESSAGES - 1) / page * page;
    browser.wait_script(&at(last)).await;
    let (shown, _, _) = transcript(&browser).await;
    assert_eq!(shown.last().unwrap(), &(MESSAGES - 1, format!("bell {} of the long watch", MESSAGES - 1)));
    assert!(shown.len() as u64 <= page);
    let disabled =
        browser.script("return document.querySelector('[data-testid=\"explore-page-next\"]').disabled").await;
    assert_eq!(disabled, true, "nothing after the last page");
    browser.click("explore-page-previous").await;
    browser.wait_script(&at(last - page)).await;
    let (shown, _, _) = transcript(&browser).await;
    assert_eq!(shown[0].0, last - page);

    // A message found by search opens on its page.
    browser.fill("explore-search", "bell 123456 of").await;
    browser.wait_script("return document.querySelector('[data-testid=\"explore-hit-message\"] button') || null").await;
    click_inside(&browser, "explore-results").await;
    let on = 123_456 / page * page;
    browser.wait_script(&at(on)).await;
    let focused = browser.script("return document.querySelector('#explore-transcript li.focus').dataset.index").await;
    assert_eq!(focused, "123456");
    let (shown, _, _) = transcript(&browser).await;
    assert_eq!(shown.len() as u64, page);
}

/// Finding 13, "explorer scale" (lists): an archive of 1,000,000 tiny chats used to freeze
/// the page for seconds (the whole index crossed to it, and every list was built from it).
/// Now the Worker hands out a page of a list at a time: the chats list holds at most a page
/// of items, and pages forward, to the end and by character.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_of_a_million_chats_lists_them_a_page_at_a_time() {
    const CHATS: usize = 1_000_000;
    let (_server, browser, files, _downloads) = explorer_session("browser-many-chats").await;
    let characters: String =
        (0..3).map(|n| format!("{}\n", json!({"id": format!("c{n}"), "name": format!("Keeper {n}")}))).collect();
    let mut chats = String::new();
    for n in 0..CHATS {
        chats.push_str(&format!(
            "{}\n",
            json!({"id": format!("chat-{n}"), "name": format!("Chat {n}"), "character_id": format!("c{}", n % 3)})
        ));
    }
    let archive = write(&files.path, "many.lvbak", &archive_of(&[("characters", characters), ("chats", chats)]));
    pick_archive(&browser, &archive).await;
    browser.wait_text("inspect-report", |t| !t.is_empty()).await;
    let built = open_explorer(&browser).await;
    eprintln!("{CHATS} chats: index {built}");
    let state = browser.text("explore-state").await;
    assert!(state.starts_with(&format!("3 characters, {} chats", thousands(CHATS))), "{state}");
    browser.script("document.querySelector('[data-panel=\"explore-chats\"]').click()").await;
    let listed = "const items = [...document.querySelectorAll('[data-testid^=\"explore-chat-\"]')]; \
        const list = document.getElementById('explore-chats'); \
        return {start: list.dataset.start, total: list.dataset.total, count: items.length, \
          first: items.length ? items[0].querySelector('button').textContent : null, \
          last: items.length ? items[items.length - 1].querySelector('button').textContent : null, \
          nodes: document.getElementById('explorer').querySelectorAll('*').length}";
    let page = browser.script(listed).await;
    assert_eq!(page["count"], LIST_PAGE, "{page}");
    assert_eq!((page["start"].as_str(), page["total"].as_str()), (Some("0"), Some(CHATS.to_string().as_str())));
    assert_eq!((page["first"].as_str(), page["last"].as_str()), (Some("Chat 0"), Some("Chat 99")));
    assert!(page["nodes"].as_u64().unwrap() < 5000, "{page}");
    assert_eq!(browser.text("explore-chats-range").await, format!("Chats 1–100 of {}", thousands(CHATS)));

    let at =
        |start: usize| format!("return document.getElementById('explore-chats').dataset.start === '{start}' || null");
    browser.click("explore-chats-next").await;
    browser.wait_script(&at(LIST_PAGE)).await;
    let page = browser.script(listed).await;
    assert_eq!((page["count"].as_u64(), page["first"].as_str()), (Some(LIST_PAGE as u64), Some("Chat 100")));
    browser.click("explore-chats-last").await;
    browser.wait_script(&at(CHATS - LIST_PAGE)).await;
    let page = browser.script(listed).await;
    let last = format!("Chat {}", CHATS - 1);
    assert_eq!((page["count"].as_u64(), page["last"].as_str()), (Some(LIST_PAGE as u64), Some(last.as_str())));

    // One character's chats, paged the same way.
    browser.script("document.querySelector('[data-panel=\"explore-characters\"]').click()").await;
    click_inside(&browser, "explore-character-c1").await;
    let of_c1 = (CHATS + 1) / 3;
    browser
        .wait_script(&format!(
            "const l = document.getElementById('explore-chats'); return l.dataset.start === '0' && l.dataset.total === '{of_c1}' || null"
        ))
        .await;
    let page = browser.script(listed).await;
    assert_eq!((page["count"].as_u64(), page["first"].as_str()), (Some(LIST_PAGE as u64), Some("Chat 1")));
    assert_eq!(browser.text("explore-chats-range").await, format!("Chats 1–100 of {}", thousands(of_c1)));
    browser.screenshot("explorer-many-chats.png").await;
}

/// An archive's embeddings setting (someone else's server, switched on) restored into an
/// account that had none: the card says it waits to be checked, nothing is sent and a run
/// is refused until the user saves it, then the rows go to the provider the user saved.
async fn a_restored_embeddings_setting_waits_to_be_checked_and_enabled(backend: Backend) {
    use lvbak_tests::embedding_stub::EmbeddingStub;
    let stub = EmbeddingStub::start(8);
    let server = TestServer::start_on(backend, "browser-restored-embeddings").await;
    let account = server.account("restorer", None).await;
    let setting = json!({"enabled": true, "provider": "openai-compatible", "api_url": stub.url, "model": "packed",
        "vectorize_world_books": true});
    let manifest = json!({"schemaVersion": 1, "producer": "lumiverse", "exportedAt": 1_795_313_867,
        "archiveId": "0c0ffee0-0000-4000-8000-000000000001", "producerVersion": null, "ndjsonFormatVersion": 1,
        "includeVectors": false, "embeddingConfig": {"provider": null, "model": null, "dimension": null},
        "counts": {}, "missingFiles": [], "hasEncryptedSecrets": false, "secretsCount": 0});
    let rows = |items: Vec<serde_json::Value>| items.iter().map(|row| format!("{row}\n")).collect::<String>();
    let bytes = RawZip::new(vec![
        RawEntry::deflated("manifest.json", manifest.to_string().as_bytes()),
        RawEntry::deflated(
            "database/settings.ndjson",
            rows(vec![json!({"key": "embeddingConfig", "value": setting.to_string(), "user_id": "x"})]).as_bytes(),
        ),
        RawEntry::deflated(
            "database/world_books.ndjson",
            rows(vec![json!({"id": "0c0ffee0-0000-4000-8000-000000000002", "name": "lore"})]).as_bytes(),
        ),
        RawEntry::deflated(
            "database/world_book_entries.ndjson",
            rows(vec![json!({"id": "0c0ffee0-0000-4000-8000-000000000003", "world_book_id":
                "0c0ffee0-0000-4000-8000-000000000002", "uid": 1, "content": "the harbour bell", "vectorized": 1})])
            .as_bytes(),
        ),
    ])
    .build();
    let imported = crate::import::import(&server, &account, &bytes, None).await;
    assert_eq!(imported["revectorized"], 1, "{imported}");
    let downloads = ScratchDir::new("browser-restored-embeddings-downloads");
    let browser = Browser::start(&downloads.path).await;
    sign_in(&browser, &server, &account).await;
    let notice = browser.wait_text("embeddings-restored", |t| !t.is_empty()).await;
    assert!(notice.starts_with("Restored from a backup: check and enable"), "{notice}");
    assert_eq!(browser.script("return document.getElementById('embeddings-restored').hidden").await, false);
    browser.click("embeddings-start").await;
    let refused = browser.wait_text("embeddings-message", |t| t.starts_with("embeddings_not_confirmed")).await;
    assert!(refused.contains("restored from a backup"), "{refused}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stub.seen(|s| s.requests), 0, "the restored setting sent something");
    // The form shows the restored values; saving them is the user's confirmation.
    assert_eq!(browser.script("return document.getElementById('embeddings-model').value").await, "packed");
    browser.click("embeddings-save").await;
    let status = browser.wait_text("embeddings-status", |t| t.starts_with("complete")).await;
    assert!(status.starts_with("complete"), "{status}");
    assert_eq!(browser.script("return document.getElementById('embeddings-restored').hidden").await, true);
    assert_eq!(stub.seen(|s| s.texts.clone()).len(), 1);
    browser.screenshot("embeddings-restored.png").await;
}
