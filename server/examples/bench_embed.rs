//! Benchmark (prints figures, asserts nothing about time): re-vectorization of an account
//! whose chat chunks all wait for vectors, against the local stub provider on 127.0.0.1
//! (`lvbak_tests::embedding_stub`, answering at once): rows/s by request batch size, the
//! requests sent, and the process's peak RSS while the run goes. The stub runs in this
//! process, so the figures are lvbak's own cost (SQLite, LanceDB, JSON) plus the stub's.
//! Run with `scripts/bench`, or `bench_embed CHUNKS DIMENSIONS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use lvbak_server::embeddings::Embeddings;
use lvbak_server::storage::Store;
use lvbak_tests::embedding_stub::EmbeddingStub;
use serde_json::{json, Map, Value};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak RSS the kernel keeps for this process (`VmHWM`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn run(chunks: usize, dimensions: usize, batch_size: usize) {
    let dir = std::env::temp_dir().join(format!("lvbak-bench-embed-{}-{batch_size}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Store::open(&dir).await.unwrap());
    lvbak_server::cli::add_user(&store, "bench", "bench-password-123").await.unwrap();
    let user = store.db.user_by_name("bench").unwrap().unwrap();
    let stub = EmbeddingStub::start(dimensions);
    let config = json!({"enabled": true, "provider": "openai-compatible", "api_url": stub.url, "model": "stub",
        "dimensions": dimensions, "send_dimensions": true, "vectorize_chat_messages": true, "batch_size": batch_size});
    store.db.put_setting(&user.id, "embeddingConfig", &config.to_string(), 1).unwrap();
    let chats = 100;
    let chat_rows: Vec<_> = (0..chats)
        .map(|c| {
            object(
                json!({"id": format!("chat-{c}"), "character_id": null, "user_id": user.id, "name": format!("Chat {c}"),
            "metadata": "{}", "created_at": 1, "updated_at": 1}),
            )
        })
        .collect();
    store.db.insert_json_rows("chats", &chat_rows).unwrap();
    let filler = "The tide came in over the harbour wall and the bells rang twice. ".repeat(6);
    for start in (0..chunks).step_by(10_000) {
        let rows: Vec<_> = (start..(start + 10_000).min(chunks))
            .map(|i| object(json!({"id": format!("chunk-{i:07}"), "chat_id": format!("chat-{}", i % chats),
                "start_message_id": "m", "end_message_id": "m", "message_ids": "[]", "content": format!("{filler} #{i}"),
                "token_count": 100, "message_count": 1, "created_at": 1, "updated_at": 1})))
            .collect();
        store.db.insert_json_rows("chat_chunks", &rows).unwrap();
    }
    let embeddings = Arc::new(Embeddings::new(store.clone(), 4, None, true).await);
    let before_kib = status_kib("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let first = embeddings.start(&user.id).await.unwrap();
    let done = embeddings.finished(&user.id).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!((done.status.as_str(), done.done), ("complete", chunks as u64), "{done:?}");
    assert_eq!(first.total, chunks as u64);
    let vectors = store.vectors.count_of("embeddings", &user.id).await.unwrap();
    assert_eq!(vectors, chunks as u64);
    println!(
        "{chunks} chunks, {dimensions} dimensions, batch {batch_size}: {seconds:.1} s, {:.0} rows/s, {} requests; \
         RSS {:.0} MiB before, peak {:.0} MiB during the run",
        chunks as f64 / seconds,
        stub.seen(|s| s.embedded_requests),
        before_kib as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0,
    );
    drop(embeddings);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let chunks = arguments.first().copied().unwrap_or(100_000);
    let dimensions = arguments.get(1).copied().unwrap_or(256);
    for batch_size in [50, 200] {
        run(chunks, dimensions, batch_size).await;
    }
}
