//! The `lvbak` binary from the outside: `inspect` on the real fixtures and on every corpus
//! case, checking stdout JSON, codes and exit statuses; `card` (in `cli/card.rs`); the
//! restore preview, `import --dry-run` (in `cli/preview.rs`); `export --only` (in
//! `cli/selective_export.rs`); `import --only` (in `cli/selective_restore.rs`). (This test
//! binary does not use the server library, so it does not link LanceDB.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lvbak_tests::corpus;
use serde_json::Value;

#[path = "cli/card.rs"]
mod card;
#[path = "cli/preview.rs"]
mod preview;
#[path = "cli/selective_export.rs"]
mod selective_export;
#[path = "cli/selective_restore.rs"]
mod selective_restore;

/// The binary under test: this build's, or `LVBAK_BINARY` when set (a build elsewhere).
fn lvbak_binary() -> String {
    std::env::var("LVBAK_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lvbak").to_string())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures").join(name)
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lvbak-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lvbak(args: &[&str], limits: Option<&str>) -> Output {
    let mut command = Command::new(lvbak_binary());
    command.args(args).env_remove("LVBAK_LIMITS");
    if let Some(limits) = limits {
        command.env("LVBAK_LIMITS", limits);
    }
    command.output().unwrap()
}

fn json_of(output: &Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn inspect_json_reports_fixture_counts() {
    let output = lvbak(&["inspect", fixture("vectors-patched.lvbak").to_str().unwrap(), "--json"], None);
    assert_eq!(output.status.code(), Some(0));
    let report = json_of(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["code"], Value::Null);
    assert_eq!(report["archiveId"], "9d8c8171-ee80-4fcb-b58c-224cd4f618ee");
    assert_eq!(report["counts"]["messages"], 20);
    assert_eq!(report["counts"]["settings"], 6);
    assert_eq!(report["vectors"]["embeddings"], 300);
    assert_eq!(report["vectors"]["embeddings_world_books"], 3);
    assert_eq!(report["manifest"]["embeddingConfig"]["dimension"], 8);
    assert_eq!(report["files"]["images"]["count"], 0);
    assert_eq!(report["secrets"]["count"], 0);
    assert_eq!(report["ticket"], Value::Null);
    assert_eq!(report["bytes"]["archive"], 30261);
}

#[test]
fn inspect_with_ticket_counts_decrypted_secrets_without_printing_them() {
    let archive = fixture("secrets.lvbak");
    let ticket = fixture("secrets.ticket.json");
    let args = ["inspect", archive.to_str().unwrap(), "--json", "--ticket", ticket.to_str().unwrap()];
    let output = lvbak(&args, None);
    assert_eq!(output.status.code(), Some(0));
    let report = json_of(&output);
    assert_eq!(report["secrets"]["count"], 3);
    assert_eq!(report["ticket"]["decrypted"], 3);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("sk-or-v1-TESTKEY-0001-abcdef"), "plaintext leaked without --reveal-secrets");

    let revealed = lvbak(&[&args[..], &["--reveal-secrets"]].concat(), None);
    let report = json_of(&revealed);
    let key = "connection_7987e7a5-a873-4fe0-8cbd-2ce739bb217a_api_key";
    assert_eq!(report["ticket"]["values"][key], "sk-or-v1-TESTKEY-0001-abcdef");

    let text = lvbak(&["inspect", archive.to_str().unwrap(), "--ticket", ticket.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("Ticket accepted: 3 of 3 secrets decrypt"), "{stdout}");
    assert!(!stdout.contains("TESTKEY"), "{stdout}");
}

#[test]
fn wrong_ticket_exits_2_with_its_code() {
    let archive = fixture("secrets.lvbak");
    let ticket = fixture("secrets-wrong.ticket.json");
    let output = lvbak(&["inspect", archive.to_str().unwrap(), "--json", "--ticket", ticket.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2));
    let report = json_of(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["code"], "archive_mismatch");
    assert_eq!(report["secrets"]["count"], 3, "the archive itself is still described");

    let text = lvbak(&["inspect", archive.to_str().unwrap(), "--ticket", ticket.to_str().unwrap()], None);
    assert_eq!(text.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&text.stdout).to_string();
    let last_line = stdout.lines().last().unwrap_or_default();
    assert!(last_line.starts_with("archive_mismatch: "), "{last_line}");
}

#[test]
fn count_rows_agrees_with_stats() {
    let output = lvbak(&["inspect", fixture("minimal.lvbak").to_str().unwrap(), "--json", "--count-rows"], None);
    let report = json_of(&output);
    assert_eq!(report["countSource"], "lines");
    assert_eq!(report["counts"]["messages"], 20);
    assert_eq!(report["counts"]["world_book_entries"], 3);
    assert_eq!(report["warnings"], serde_json::json!([]));
}

/// The corpus's limits, as `LVBAK_LIMITS` gives them.
fn corpus_limits() -> String {
    let l = corpus::LIMITS;
    format!(
        "archive={},decompressed={},line={},legacy_line={},entries={},metadata={}",
        l.max_archive_bytes,
        l.max_decompressed_bytes,
        l.max_line_bytes,
        l.max_legacy_line_bytes,
        l.max_entries,
        l.max_metadata_bytes
    )
}

#[test]
fn every_corpus_case_through_the_binary() {
    let dir = scratch_dir("corpus");
    let limits = corpus_limits();
    let mut failures = Vec::new();
    for case in corpus::cases() {
        let path = dir.join(format!("{}.lvbak", case.name));
        std::fs::write(&path, &case.bytes).unwrap();
        let output = lvbak(&["inspect", path.to_str().unwrap(), "--json", "--verify"], Some(&limits));
        let report = json_of(&output);
        let code = report["code"].as_str().map(str::to_string);
        let status = output.status.code();
        let wanted_status = if case.expected.is_some() { Some(2) } else { Some(0) };
        if code.as_deref() != case.expected || status != wanted_status {
            failures.push(format!("{}: wanted {:?}, got {code:?} (exit {status:?})", case.name, case.expected));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn unreadable_limits_are_a_usage_error() {
    let output = lvbak(&["inspect", fixture("minimal.lvbak").to_str().unwrap()], Some("entries=lots"));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LVBAK_LIMITS"));
}

#[test]
fn user_seed_and_export_from_the_command_line() {
    let dir = scratch_dir("export");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let added = lvbak(&["user", "add", "dana", "--data-dir", data_arg], None);
    assert_eq!(added.status.code(), Some(0), "{}", String::from_utf8_lossy(&added.stderr));
    let printed = String::from_utf8_lossy(&added.stdout).to_string();
    assert!(printed.starts_with("created user dana with password "), "{printed}");
    let duplicate = lvbak(&["user", "add", "dana", "--password", "x", "--data-dir", data_arg], None);
    assert_eq!(duplicate.status.code(), Some(1));

    let seeded = lvbak(
        &[
            "seed",
            "--user",
            "dana",
            "--characters",
            "2",
            "--chats",
            "1",
            "--messages-per-chat",
            "10",
            "--secrets",
            "2",
            "--data-dir",
            data_arg,
        ],
        None,
    );
    assert_eq!(seeded.status.code(), Some(0), "{}", String::from_utf8_lossy(&seeded.stderr));

    let archive = dir.join("dana.lvbak");
    let exported = lvbak(
        &[
            "export",
            "--user",
            "dana",
            "--include-vectors",
            "--include-secrets",
            "-o",
            archive.to_str().unwrap(),
            "--data-dir",
            data_arg,
        ],
        None,
    );
    assert_eq!(exported.status.code(), Some(0), "{}", String::from_utf8_lossy(&exported.stderr));
    let ticket = dir.join("dana.ticket.json");
    assert!(ticket.exists(), "{}", String::from_utf8_lossy(&exported.stdout));
    assert!(!dir.join("dana.lvbak.partial").exists());
    // Not a terminal: progress is plain lines on stderr, in the page's words.
    let progress = String::from_utf8_lossy(&exported.stderr);
    assert!(progress.lines().any(|l| l.starts_with("characters… ")), "{progress}");
    assert!(progress.lines().any(|l| l.starts_with("Files… ") && l.ends_with("(100%)")), "{progress}");
    // --json: the HTTP export's `complete` shape, and nothing on stderr.
    let again = dir.join("dana-2.lvbak");
    let output =
        lvbak(&["export", "--user", "dana", "--json", "-o", again.to_str().unwrap(), "--data-dir", data_arg], None);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
    let outcome = json_of(&output);
    assert_eq!(outcome["status"], "complete", "{outcome}");
    assert_eq!(outcome["bytes"].as_u64(), Some(std::fs::metadata(&again).unwrap().len()), "{outcome}");
    let zip = zip::ZipArchive::new(std::fs::File::open(&again).unwrap()).unwrap();
    let file_entries = zip.file_names().filter(|name| name.as_ref().is_ok_and(|n| n.starts_with("files/"))).count();
    assert_eq!(outcome["files"].as_u64(), Some(file_entries as u64), "{outcome}");
    assert!(outcome["rows"].as_u64().unwrap() > 11, "{outcome}");
    assert_eq!(outcome["ticketFile"], Value::Null);
    assert_eq!(outcome["missingFiles"], serde_json::json!([]));

    let report = json_of(&lvbak(
        &["inspect", archive.to_str().unwrap(), "--json", "--verify", "--ticket", ticket.to_str().unwrap()],
        None,
    ));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["counts"]["characters"], 2);
    // The chat and its branch; 10 messages, one off the third, and the branch's 4.
    assert_eq!(report["counts"]["chats"], 2);
    assert_eq!(report["counts"]["messages"], 15);
    assert_eq!(report["secrets"]["count"], 2);
    assert_eq!(report["ticket"]["decrypted"], 2);
    assert_eq!(report["manifest"]["includeVectors"], true);
    assert!(report["vectors"]["embeddings"].as_u64().unwrap() > 0);
    assert_eq!(report["files"]["avatars"]["count"], 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An archive whose characters carry a column this schema lacks: `inspect --verify` names
/// it before anything is imported, and `import` says the values were not kept.
#[test]
fn columns_the_schema_lacks_are_named_by_inspect_and_import() {
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    let dir = scratch_dir("dropped");
    let mut entries = corpus::valid_entries();
    let row = r#"{"id":"5a0c3b1e-8d2f-4e6a-9b7c-0d1e2f3a4b5c","name":"Wren","user_id":"u","voice_profile":"alto"}"#;
    entries.push(RawEntry::deflated("database/characters.ndjson", row.as_bytes()));
    let archive = dir.join("newer.lvbak");
    std::fs::write(&archive, RawZip::new(entries).build()).unwrap();
    let path = archive.to_str().unwrap();

    let report = json_of(&lvbak(&["inspect", path, "--json", "--verify"], None));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["droppedColumns"], serde_json::json!({"characters": ["voice_profile"]}));
    let text = lvbak(&["inspect", path, "--verify"], None);
    let printed = String::from_utf8_lossy(&text.stdout);
    assert!(
        printed
            .contains("Warning: the archive's characters rows have a column this server does not know (voice_profile)"),
        "{printed}"
    );
    // Without --verify the rows are not read, so nothing is claimed.
    assert_eq!(json_of(&lvbak(&["inspect", path, "--json"], None))["droppedColumns"], serde_json::json!({}));

    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let added = lvbak(&["user", "add", "erin", "--password", "pw-erin-123", "--data-dir", data_arg], None);
    assert_eq!(added.status.code(), Some(0), "{}", String::from_utf8_lossy(&added.stderr));
    let imported = lvbak(&["import", "--user", "erin", path, "--data-dir", data_arg], None);
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert_eq!(imported.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("(voice_profile): those values were not imported"), "{stderr}");
    // A second account: the character's id is erin's now, so it arrives as a copy; --json
    // gives the HTTP status shape.
    let added = lvbak(&["user", "add", "finn", "--password", "pw-finn-123", "--data-dir", data_arg], None);
    assert_eq!(added.status.code(), Some(0));
    let report = json_of(&lvbak(&["import", "--user", "finn", path, "--json", "--data-dir", data_arg], None));
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["summary"]["characters"]["imported"], 1, "{report}");
    assert_eq!(report["summary"]["characters"]["remapped"], 1, "{report}");
    assert_eq!(report["droppedColumns"], serde_json::json!({"characters": ["voice_profile"]}));
    let notice = report["notices"][0].as_str().unwrap_or_default();
    assert!(notice.starts_with("1 row of characters already existed in another account"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embed_re_vectorizes_an_imported_account_from_the_command_line() {
    use lvbak_tests::embedding_stub::{vector_for, EmbeddingStub};
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    let stub = EmbeddingStub::start(8);
    let dir = scratch_dir("embed");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    // An archive whose settings point at the stub, with two world-book entries the user had
    // turned vector search on for, and no vectors.
    let config = serde_json::json!({"enabled": true, "provider": "openai-compatible", "api_url": stub.url,
        "model": "stub-embed", "dimensions": 8, "send_dimensions": true});
    let settings =
        serde_json::json!({"key": "embeddingConfig", "value": config.to_string(), "updated_at": 1, "user_id": "u"});
    let book = serde_json::json!({"id": "b-1", "user_id": "u", "name": "Lore", "created_at": 1, "updated_at": 1});
    let entry = |id: &str, content: &str| {
        serde_json::json!({"id": id, "world_book_id": "b-1", "uid": id, "key": "[\"k\"]", "keysecondary": "[]",
            "content": content, "comment": "", "created_at": 1, "updated_at": 1, "vectorized": 1,
            "vector_index_status": "indexed"})
        .to_string()
    };
    let mut entries = corpus::valid_entries();
    entries.retain(|e| e.name != b"database/settings.ndjson");
    entries.push(RawEntry::deflated("database/settings.ndjson", format!("{settings}\n").as_bytes()));
    entries.push(RawEntry::deflated("database/world_books.ndjson", format!("{book}\n").as_bytes()));
    let rows = format!("{}\n{}\n", entry("e-1", "The tide turns at noon."), entry("e-2", "Bells ring twice."));
    entries.push(RawEntry::deflated("database/world_book_entries.ndjson", rows.as_bytes()));
    let archive = dir.join("lore.lvbak");
    std::fs::write(&archive, RawZip::new(entries).build()).unwrap();
    assert_eq!(
        lvbak(&["user", "add", "gus", "--password", "pw-gus-12345", "--data-dir", data_arg], None).status.code(),
        Some(0)
    );
    let imported = json_of(&lvbak(
        &["import", "--user", "gus", archive.to_str().unwrap(), "--json", "--data-dir", data_arg],
        None,
    ));
    assert_eq!(imported["vectorSummary"]["restored"], false, "{imported}");
    assert_eq!(imported["revectorized"], 2, "{imported}");

    // The setting came with the archive: nothing is sent until the operator confirms it.
    let refused = lvbak(&["embed", "--user", "gus", "--json", "--data-dir", data_arg], None);
    assert_eq!(refused.status.code(), Some(1), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("restored from a backup"));
    assert_eq!(stub.seen(|s| s.requests), 0);
    let output = lvbak(&["embed", "--user", "gus", "--json", "--confirm-setting", "--data-dir", data_arg], None);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status["status"].as_str(), status["done"].as_u64(), status["pending"].as_u64()),
        (Some("complete"), Some(2), Some(0)),
        "{status}"
    );
    assert_eq!(stub.seen(|s| s.embedded_texts), 2);
    // The export carries exactly the stub's vectors for the two entries' search texts.
    let exported = dir.join("out.lvbak");
    let output = lvbak(
        &["export", "--user", "gus", "--include-vectors", "-o", exported.to_str().unwrap(), "--data-dir", data_arg],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&exported).unwrap()).unwrap();
    let mut ndjson = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("lancedb/embeddings_world_books.ndjson").unwrap(), &mut ndjson)
        .unwrap();
    let rows: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let metadata: Value = serde_json::from_str(row["metadata_json"].as_str().unwrap()).unwrap();
        let expected = vector_for(metadata["search_text"].as_str().unwrap(), 8);
        let bytes: Vec<u8> = expected.iter().flat_map(|f| f.to_le_bytes()).collect();
        use base64::Engine as _;
        assert_eq!(row["vector_b64"], base64::engine::general_purpose::STANDARD.encode(bytes), "{row}");
    }
    // Nothing left: a second run embeds nothing and asks the provider nothing.
    let again = lvbak(&["embed", "--user", "gus", "--data-dir", data_arg], None);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("complete: 0 rows embedded, 0 still waiting"));
    assert_eq!(stub.seen(|s| s.embedded_texts), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What a hostile archive writes into its text: clear the screen, retitle the window, turn
/// the text green, a DEL, a C1 CSI (`\u{9b}`) that turns it red, and a right-to-left
/// override.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;title\u{7}\u{1b}[32mArchive verified\u{7f}\u{9b}31m\u{202e}kcab";

/// `HOSTILE` as the CLI must show it: every control a visible escape.
const HOSTILE_SHOWN: &str = r"\x1b[2J\x1b]0;title\x07\x1b[32mArchive verified\x7f\u{9b}31m\u{202e}kcab";

/// Fails unless `bytes` hold no control a terminal would act on (a line break aside): no
/// C0 control, DEL, C1 control or bidi control.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let acted_on = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    });
    assert_eq!(acted_on, None, "{what} carries a control character: {text:?}");
}

/// Fails unless the JSON in `bytes` is terminal-safe: besides the C0 controls serde_json
/// escapes anyway, no raw DEL, C1 CSI (UTF-8 C2 9B) or right-to-left override (E2 80 AE).
fn assert_json_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!bytes.contains(&0x7f), "{what} carries a DEL: {text:?}");
    assert!(!bytes.windows(2).any(|w| w == [0xc2, 0x9b]), "{what} carries U+009B: {text:?}");
    assert!(!bytes.windows(3).any(|w| w == [0xe2, 0x80, 0xae]), "{what} carries U+202E: {text:?}");
    assert_terminal_safe(what, bytes);
}

/// A valid archive whose every free-text place says `HOSTILE`: the manifest's
/// producerVersion, embedding provider and model and a missing file; table and vector-table
/// names in manifest-stats.json; a secret's key; a column of a characters row.
fn hostile_archive(dir: &Path) -> PathBuf {
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    let hostile = serde_json::to_string(HOSTILE).unwrap();
    let embedding = format!("{{\"provider\": {hostile}, \"model\": {hostile}, \"dimension\": 8}}");
    let missing = format!("[{hostile}]");
    let manifest = corpus::manifest_json(&[
        ("producerVersion", &hostile),
        ("embeddingConfig", &embedding),
        ("missingFiles", &missing),
        ("hasEncryptedSecrets", "true"),
        ("secretsCount", "1"),
    ]);
    let stats = serde_json::json!({
        "counts": {"settings": 3, "messages": 0, "characters": 1, HOSTILE: 7, format!("lancedb:{HOSTILE}"): 2},
        "missingFiles": [],
    });
    let index = serde_json::json!({"version": 1, "archiveId": corpus::ARCHIVE_ID, "keys": [HOSTILE]});
    let secret = serde_json::json!({"key": HOSTILE, "iv": "AAAAAAAAAAAAAAAA", "tag": "AAAAAAAAAAAAAAAAAAAAAA==",
        "ciphertext": "AAAA"});
    let row = serde_json::json!({"id": "5a0c3b1e-8d2f-4e6a-9b7c-0d1e2f3a4b5c", "name": HOSTILE, "user_id": "u",
        HOSTILE: "alto"});
    let mut entries = corpus::valid_entries();
    entries.retain(|e| e.name != b"manifest.json" && e.name != b"manifest-stats.json");
    entries.insert(0, RawEntry::deflated("manifest.json", &manifest));
    entries.push(RawEntry::deflated("database/characters.ndjson", format!("{row}\n").as_bytes()));
    entries.push(RawEntry::deflated("secrets/index.json", index.to_string().as_bytes()));
    entries.push(RawEntry::deflated("secrets/encrypted.ndjson", format!("{secret}\n").as_bytes()));
    entries.push(RawEntry::deflated("manifest-stats.json", stats.to_string().as_bytes()));
    let path = dir.join("hostile.lvbak");
    std::fs::write(&path, RawZip::new(entries).build()).unwrap();
    path
}

/// Archives refused with messages that quote what they say: a schemaVersion (quoted as
/// JSON, which escapes C0 but not C1 or bidi controls) and an entry name.
fn hostile_rejections(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    let version = serde_json::to_string(HOSTILE).unwrap();
    let mut entries = corpus::valid_entries();
    entries[0] = RawEntry::deflated("manifest.json", &corpus::manifest_json(&[("schemaVersion", &version)]));
    let bad_version = dir.join("version.lvbak");
    std::fs::write(&bad_version, RawZip::new(entries).build()).unwrap();
    let mut entries = corpus::valid_entries();
    entries
        .push(RawEntry::stored("files/avatars/x.png", b"x").named(format!("files/avatars/{HOSTILE}.png").as_bytes()));
    let bad_name = dir.join("name.lvbak");
    std::fs::write(&bad_name, RawZip::new(entries).build()).unwrap();
    vec![(bad_version, "unsupported_version"), (bad_name, "bad_entry_name")]
}

#[test]
fn inspect_shows_archive_text_with_its_controls_escaped() {
    let dir = scratch_dir("hostile-inspect");
    let archive = hostile_archive(&dir);
    let path = archive.to_str().unwrap();
    for flags in [&[][..], &["--verify"], &["--count-rows"], &["--count-rows", "--verify"]] {
        let output = lvbak(&[&["inspect", path][..], flags].concat(), None);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{flags:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert_terminal_safe(&format!("inspect {flags:?} stdout"), &output.stdout);
        assert_terminal_safe(&format!("inspect {flags:?} stderr"), &output.stderr);
        // Shown, not hidden: the producer version, the provider and model, the secret's key.
        assert!(stdout.contains(&format!("Producer  lumiverse {HOSTILE_SHOWN} (schema 1)")), "{stdout}");
        assert!(stdout.contains(&format!("({HOSTILE_SHOWN} / {HOSTILE_SHOWN} / 8 dimensions)")), "{stdout}");
        assert!(stdout.contains(&format!("\n  {HOSTILE_SHOWN}\n")), "{stdout}");
        assert!(stdout.contains(&format!("missing on the source server when this archive was made: {HOSTILE_SHOWN}")));
        if flags.is_empty() {
            // Row counts from manifest-stats.json name its tables.
            assert!(stdout.contains(&format!("  {HOSTILE_SHOWN} ")), "{stdout}");
        }
        if flags.contains(&"--verify") {
            let warning = format!("rows have a column this server does not know ({HOSTILE_SHOWN})");
            assert!(stdout.contains(&warning), "{stdout}");
        }
    }
    // JSON has every control as a \u escape (C0 by serde_json, DEL, C1 and bidi by the
    // CLI's formatter), and the text reads back whole.
    for flags in [&["--verify"][..], &[]] {
        let output = lvbak(&[&["inspect", path, "--json"][..], flags].concat(), None);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        assert_json_terminal_safe(&format!("inspect --json {flags:?}"), &output.stdout);
        assert_terminal_safe(&format!("inspect --json {flags:?} stderr"), &output.stderr);
        let report = json_of(&output);
        assert_eq!(report["manifest"]["producerVersion"], HOSTILE, "{report}");
        assert_eq!(report["manifest"]["embeddingConfig"]["provider"], HOSTILE, "{report}");
        assert_eq!(report["manifest"]["embeddingConfig"]["model"], HOSTILE, "{report}");
        assert_eq!(report["manifest"]["missingFiles"], serde_json::json!([HOSTILE]), "{report}");
        assert_eq!(report["secrets"]["keys"], serde_json::json!([HOSTILE]), "{report}");
        if flags.is_empty() {
            assert_eq!(report["counts"][HOSTILE], 7, "{report}");
        } else {
            assert_eq!(report["droppedColumns"]["characters"], serde_json::json!([HOSTILE]), "{report}");
        }
    }

    for (rejected, code) in hostile_rejections(&dir) {
        let output = lvbak(&["inspect", rejected.to_str().unwrap()], None);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{stdout}");
        assert!(stdout.starts_with(&format!("{code}: ")), "{stdout}");
        assert_terminal_safe(&format!("inspect of a {code} archive"), &output.stdout);
        assert_terminal_safe(&format!("inspect of a {code} archive (stderr)"), &output.stderr);
        assert!(stdout.contains(r"\u{9b}31m\u{202e}kcab"), "{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn import_shows_archive_text_with_its_controls_escaped() {
    let dir = scratch_dir("hostile-import");
    let archive = hostile_archive(&dir);
    let path = archive.to_str().unwrap();
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let added = lvbak(&["user", "add", "hana", "--password", "pw-hana-123", "--data-dir", data_arg], None);
    assert_eq!(added.status.code(), Some(0), "{}", String::from_utf8_lossy(&added.stderr));

    let imported = lvbak(&["import", "--user", "hana", path, "--skip-secrets", "--data-dir", data_arg], None);
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert_eq!(imported.status.code(), Some(0), "{stderr}");
    assert_terminal_safe("import stdout", &imported.stdout);
    assert_terminal_safe("import stderr", &imported.stderr);
    assert!(stderr.contains(&format!("({HOSTILE_SHOWN}): those values were not imported")), "{stderr}");

    // --json: the summary names the dropped column, escaped for the terminal, read back whole.
    let added = lvbak(&["user", "add", "ines", "--password", "pw-ines-123", "--data-dir", data_arg], None);
    assert_eq!(added.status.code(), Some(0), "{}", String::from_utf8_lossy(&added.stderr));
    let imported = lvbak(&["import", "--user", "ines", path, "--skip-secrets", "--json", "--data-dir", data_arg], None);
    assert_eq!(imported.status.code(), Some(0), "{}", String::from_utf8_lossy(&imported.stderr));
    assert_json_terminal_safe("import --json", &imported.stdout);
    assert_terminal_safe("import --json stderr", &imported.stderr);
    let report = json_of(&imported);
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["droppedColumns"]["characters"], serde_json::json!([HOSTILE]), "{report}");

    for (rejected, code) in hostile_rejections(&dir) {
        let output = lvbak(&["import", "--user", "hana", rejected.to_str().unwrap(), "--data-dir", data_arg], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with(&format!("{code}: ")), "{stderr}");
        assert_terminal_safe(&format!("import of a {code} archive"), &output.stdout);
        assert_terminal_safe(&format!("import of a {code} archive (stderr)"), &output.stderr);
        assert!(stderr.contains(r"\u{9b}31m\u{202e}kcab"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A name with a right-to-left override would print reordered (`user list`, the page's
/// sign-in): refused like other controls, and no account is made.
#[test]
fn user_add_refuses_a_name_with_a_bidi_control() {
    let dir = scratch_dir("bidi-name");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    for name in ["eve\u{202e}gnp.exe", "\u{2066}eve", "eve\u{200f}"] {
        let added = lvbak(&["user", "add", name, "--password", "pw-eve-123", "--data-dir", data_arg], None);
        let stderr = String::from_utf8_lossy(&added.stderr);
        assert_eq!(added.status.code(), Some(1), "{name:?}: {stderr}");
        assert!(stderr.contains("without control characters, bidi controls or '/'"), "{stderr}");
        assert!(added.stdout.is_empty(), "{}", String::from_utf8_lossy(&added.stdout));
    }
    let listed = lvbak(&["user", "list", "--data-dir", data_arg], None);
    assert_eq!(listed.status.code(), Some(0), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(listed.stdout.is_empty(), "{}", String::from_utf8_lossy(&listed.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}
