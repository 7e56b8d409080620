//! The storage traits, each exercised through the trait object `Store` hands out, once per
//! backend — SQLite over a real data directory, PostgreSQL over a fresh database of the
//! cluster the tests start (`test_support::postgres_cluster`): what one account stores
//! never answers for another.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::config::HostingLimits;
use crate::storage::sqlite::DbError;
use crate::storage::{SourceKind, Store, StoredSecret, UnboundKey, UserRecord};
use crate::test_support::{test_state, test_state_on_postgres, TestState};

/// A fresh state of every backend: SQLite's, and one whose account-side traits
/// (`AccountStore`, `JobLog`, `SecretStore`, `SettingStore`, `SignInLimits`,
/// `PreparedExportStore`) answer from PostgreSQL.
async fn backends(label: &str) -> Vec<TestState> {
    backends_with(label, HostingLimits::default()).await
}

/// The same, with these hosting limits.
async fn backends_with(label: &str, hosting: HostingLimits) -> Vec<TestState> {
    vec![test_state(label, hosting.clone()).await, test_state_on_postgres(label, hosting).await]
}

/// Says which backend the assertions that follow are about (shown when a test fails).
fn on(test: &TestState) -> &TestState {
    eprintln!("backend: {}", test.backend());
    test
}

/// Two accounts, made through the trait.
async fn alice_and_bob(store: &Store) -> (UserRecord, UserRecord) {
    let alice = store.accounts().create_user("id-alice", "alice", "hash-alice", 1).await.unwrap();
    let bob = store.accounts().create_user("id-bob", "bob", "hash-bob", 1).await.unwrap();
    (alice, bob)
}

fn secret(key: &str, value: &str) -> StoredSecret {
    StoredSecret { key: key.into(), encrypted_value: value.into(), iv: "iv".into(), tag: "tag".into() }
}

/// Rows written as a test's setup, not through the traits under test, into the backend
/// that answers for `table` in this test's state.
async fn insert(test: &TestState, table: &str, rows: &[Value]) {
    if let Some(postgres) = &test.postgres {
        postgres.stores.insert_json_rows(table, rows).await.unwrap();
        return;
    }
    let rows: Vec<Map<String, Value>> = rows.iter().map(|row| row.as_object().unwrap().clone()).collect();
    test.state.store().db.insert_json_rows(table, &rows).unwrap();
}

/// Accounts are found by name, a taken name is refused, credentials are each account's own,
/// and a session resolves to the account it was made for, only while it lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_sessions_are_each_accounts_own() {
    for test in backends("trait-accounts").await {
        let test = on(&test);
        let store = test.state.store();
        let accounts = store.accounts();
        let (alice, bob) = alice_and_bob(&store).await;
        assert_eq!(alice, UserRecord { id: "id-alice".into(), username: "alice".into() });
        let taken = accounts.create_user("id-other", "alice", "hash", 2).await.unwrap_err();
        assert!(matches!(taken, DbError::NameTaken(ref name) if name == "alice"), "{taken}");

        assert_eq!(accounts.user_by_name("bob").await.unwrap(), Some(bob.clone()));
        assert_eq!(accounts.user_by_name("carol").await.unwrap(), None);
        assert_eq!(accounts.user_names().await.unwrap(), ["alice", "bob"]);
        assert_eq!(accounts.user_ids().await.unwrap(), ["id-alice", "id-bob"]);
        assert_eq!(accounts.credentials("alice").await.unwrap(), Some((alice.clone(), "hash-alice".into())));
        assert_eq!(accounts.credentials("carol").await.unwrap(), None);

        accounts.create_session("token-a", &alice.id, 100, 200).await.unwrap();
        accounts.create_session("token-b", &bob.id, 100, 200).await.unwrap();
        assert_eq!(accounts.session_user("token-a", 150).await.unwrap(), Some(alice.clone()));
        assert_eq!(accounts.session_user("token-b", 150).await.unwrap(), Some(bob.clone()));
        assert_eq!(accounts.session_user("token-a", 200).await.unwrap(), None, "expired");
        assert_eq!(accounts.session_user("token-c", 150).await.unwrap(), None);
        accounts.delete_session("token-a").await.unwrap();
        accounts.delete_session("token-a").await.unwrap();
        assert_eq!(accounts.session_user("token-a", 150).await.unwrap(), None, "ended");
        assert_eq!(accounts.session_user("token-b", 150).await.unwrap(), Some(bob), "the other's lives on");
    }
}

/// A quota and a recorded use belong to one account: setting one account's leaves the
/// other's unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_usage_are_per_account() {
    for test in backends("trait-quotas").await {
        let test = on(&test);
        let store = test.state.store();
        let accounts = store.accounts();
        let (alice, bob) = alice_and_bob(&store).await;
        assert_eq!(accounts.quota_of(&alice.id).await.unwrap(), None);
        accounts.set_quota(&alice.id, Some(Some(100))).await.unwrap();
        accounts.set_quota(&bob.id, Some(None)).await.unwrap();
        assert_eq!(accounts.quota_of(&alice.id).await.unwrap(), Some(Some(100)));
        assert_eq!(accounts.quota_of(&bob.id).await.unwrap(), Some(None), "no limit");
        accounts.set_quota(&alice.id, Some(Some(250))).await.unwrap();
        assert_eq!(accounts.quota_of(&alice.id).await.unwrap(), Some(Some(250)));
        accounts.set_quota(&alice.id, None).await.unwrap();
        assert_eq!(accounts.quota_of(&alice.id).await.unwrap(), None, "the instance's again");
        assert_eq!(accounts.quota_of(&bob.id).await.unwrap(), Some(None));

        // Opening the store measured the accounts there were (none); these are unmeasured.
        assert_eq!(accounts.usage_of(&alice.id).await.unwrap(), None);
        accounts.set_usage(&alice.id, 42).await.unwrap();
        assert_eq!(accounts.usage_of(&alice.id).await.unwrap(), Some(42));
        assert_eq!(accounts.usage_of(&bob.id).await.unwrap(), None);
        accounts.set_usage(&bob.id, 7).await.unwrap();
        accounts.set_usage(&alice.id, 43).await.unwrap();
        assert_eq!(accounts.usage_of(&alice.id).await.unwrap(), Some(43));
        assert_eq!(accounts.usage_of(&bob.id).await.unwrap(), Some(7));
    }
}

/// A job's record is read back by its own account only; its end is recorded as written,
/// and a restart fails the unfinished jobs of every account and no finished one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_record_is_its_accounts_alone() {
    for test in backends("trait-jobs").await {
        let test = on(&test);
        let store = test.state.store();
        let jobs = store.jobs();
        let (alice, bob) = alice_and_bob(&store).await;
        jobs.record_job("job-1", &alice.id, "queued", "archive-1", 10).await.unwrap();
        let queued = jobs.job_record("job-1", &alice.id).await.unwrap().unwrap();
        assert_eq!(
            (queued.status.as_str(), queued.archive_id.as_deref(), queued.started_at),
            ("queued", Some("archive-1"), 10)
        );
        assert_eq!((queued.finished_at, queued.report), (None, None));
        assert_eq!(jobs.job_record("job-1", &bob.id).await.unwrap(), None, "another account's job");
        assert_eq!(jobs.job_record("job-9", &alice.id).await.unwrap(), None);

        jobs.finish_job("job-1", "failed", 20, Some("bad_json"), Some("line 2"), "{\"jobId\":\"job-1\"}")
            .await
            .unwrap();
        let ended = jobs.job_record("job-1", &alice.id).await.unwrap().unwrap();
        assert_eq!(ended.status, "failed");
        assert_eq!((ended.finished_at, ended.error_code.as_deref()), (Some(20), Some("bad_json")));
        assert_eq!(
            (ended.error_message.as_deref(), ended.report.as_deref()),
            (Some("line 2"), Some("{\"jobId\":\"job-1\"}"))
        );

        jobs.record_job("job-2", &bob.id, "queued", "archive-2", 30).await.unwrap();
        jobs.record_job("job-3", &alice.id, "queued", "archive-3", 31).await.unwrap();
        jobs.record_job("job-4", &bob.id, "queued", "archive-4", 32).await.unwrap();
        let mut users = jobs.fail_unfinished_jobs(40, "interrupted", "the server stopped").await.unwrap();
        users.sort();
        assert_eq!(users, [alice.id.clone(), bob.id.clone()], "each account once");
        let failed = jobs.job_record("job-2", &bob.id).await.unwrap().unwrap();
        assert_eq!((failed.status.as_str(), failed.finished_at), ("failed", Some(40)));
        assert_eq!(failed.error_code.as_deref(), Some("interrupted"));
        let kept = jobs.job_record("job-1", &alice.id).await.unwrap().unwrap();
        assert_eq!((kept.error_code.as_deref(), kept.finished_at), (Some("bad_json"), Some(20)), "a finished job");
        assert!(jobs.fail_unfinished_jobs(50, "interrupted", "again").await.unwrap().is_empty());
    }
}

/// Secrets are per account and per name: an absent-only write keeps the stored value, a
/// delete takes one account's secret alone, and ticket uses are counted per account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_ticket_uses_are_per_account() {
    for test in backends("trait-secrets").await {
        let test = on(&test);
        let store = test.state.store();
        let secrets = store.secrets();
        let (alice, bob) = alice_and_bob(&store).await;
        secrets.put_secret(&alice.id, &secret("openai_api_key", "sealed-1"), 1, None).await.unwrap();
        secrets.put_secret(&alice.id, &secret("anthropic_api_key", "sealed-2"), 1, None).await.unwrap();
        assert!(secrets.secrets_of(&bob.id).await.unwrap().is_empty());
        let keys: Vec<String> = secrets.secrets_of(&alice.id).await.unwrap().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["anthropic_api_key", "openai_api_key"], "by name");

        secrets.put_secret(&alice.id, &secret("openai_api_key", "sealed-3"), 2, None).await.unwrap();
        assert!(!secrets
            .put_secret_if_absent(&alice.id, &secret("openai_api_key", "sealed-4"), 3, None)
            .await
            .unwrap());
        assert!(secrets.put_secret_if_absent(&bob.id, &secret("openai_api_key", "sealed-5"), 3, None).await.unwrap());
        let value =
            |all: Vec<StoredSecret>, key: &str| all.into_iter().find(|s| s.key == key).map(|s| s.encrypted_value);
        assert_eq!(value(secrets.secrets_of(&alice.id).await.unwrap(), "openai_api_key").as_deref(), Some("sealed-3"));
        assert_eq!(value(secrets.secrets_of(&bob.id).await.unwrap(), "openai_api_key").as_deref(), Some("sealed-5"));

        assert!(secrets.delete_secret(&bob.id, "openai_api_key").await.unwrap());
        assert!(!secrets.delete_secret(&bob.id, "openai_api_key").await.unwrap(), "already gone");
        assert!(secrets.secrets_of(&bob.id).await.unwrap().is_empty());
        assert_eq!(secrets.secrets_of(&alice.id).await.unwrap().len(), 2, "the other's stay");

        let first = secrets.record_ticket_use("archive-1", &alice.id, 100).await.unwrap();
        assert_eq!((first.was_reused, first.uses, first.previously_consumed_at), (false, 1, None));
        let again = secrets.record_ticket_use("archive-1", &alice.id, 200).await.unwrap();
        assert_eq!((again.was_reused, again.uses, again.previously_consumed_at), (true, 2, Some(100)));
        let other = secrets.record_ticket_use("archive-1", &bob.id, 300).await.unwrap();
        assert_eq!((other.was_reused, other.uses, other.previously_consumed_at), (false, 1, None), "another account");
    }
}

/// A charge fits the account's own quota or else the instance's, and one that does not fit
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_is_held_to_its_accounts_quota() {
    for test in backends("trait-charge").await {
        let test = on(&test);
        let store = test.state.store();
        let accounts = store.accounts();
        let (alice, bob) = alice_and_bob(&store).await;
        accounts.set_quota(&alice.id, Some(Some(100))).await.unwrap();
        accounts.charge_usage(&alice.id, 60, None).await.unwrap();
        let refused = accounts.charge_usage(&alice.id, 50, None).await.unwrap_err();
        let DbError::QuotaExceeded(exceeded) = refused else { panic!("{refused}") };
        assert_eq!((exceeded.quota, exceeded.used, exceeded.needed), (100, 60, 50));
        assert_eq!(accounts.usage_of(&alice.id).await.unwrap(), Some(60), "nothing charged");
        accounts.charge_usage(&alice.id, 40, Some(10)).await.unwrap();
        assert_eq!(accounts.usage_of(&alice.id).await.unwrap(), Some(100), "its own quota wins");

        accounts.charge_usage(&bob.id, 1000, None).await.unwrap();
        assert!(matches!(accounts.charge_usage(&bob.id, 1, Some(1000)).await, Err(DbError::QuotaExceeded(_))));
        assert_eq!(accounts.usage_of(&bob.id).await.unwrap(), Some(1000));
    }
}

/// Settings are per account; a restored embeddings setting stays unconfirmed until its
/// user confirms it, which binds that account's keys bound nowhere to the endpoint; keys
/// stored before bindings get bound once, and a delete takes the binding with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_key_bindings_are_per_account() {
    for test in backends("trait-settings").await {
        let test = on(&test);
        let store = test.state.store();
        let (settings, secrets) = (store.settings(), store.secrets());
        let (alice, bob) = alice_and_bob(&store).await;
        assert_eq!(settings.setting(&alice.id, "embeddingConfig").await.unwrap(), None);
        settings.put_setting(&alice.id, "embeddingConfig", r#"{"model":"a"}"#, 1).await.unwrap();
        settings.put_setting(&alice.id, "embeddingConfig", r#"{"model":"b"}"#, 2).await.unwrap();
        assert_eq!(settings.setting(&alice.id, "embeddingConfig").await.unwrap().as_deref(), Some(r#"{"model":"b"}"#));
        assert_eq!(settings.setting(&bob.id, "embeddingConfig").await.unwrap(), None);

        // What an import leaves in an account it restored an embeddings setting into.
        insert(test, "lvbak_embedding_unconfirmed", &[json!({"user_id": alice.id, "restored_at": 1})]).await;
        assert!(settings.embedding_unconfirmed(&alice.id).await.unwrap());
        assert!(!settings.embedding_unconfirmed(&bob.id).await.unwrap());
        let key = "embedding_api_key_openai";
        assert!(secrets.put_secret_if_absent(&alice.id, &secret(key, "a"), 1, None).await.unwrap());
        secrets.put_secret(&bob.id, &secret(key, "b"), 1, Some("https://b.example")).await.unwrap();
        assert_eq!(secrets.key_endpoints(&alice.id).await.unwrap(), HashMap::from([(key.to_string(), None)]));
        settings.confirm_embedding_setting(&alice.id, "https://a.example").await.unwrap();
        assert!(!settings.embedding_unconfirmed(&alice.id).await.unwrap());
        let bound = |endpoint: &str| HashMap::from([(key.to_string(), Some(endpoint.to_string()))]);
        assert_eq!(secrets.key_endpoints(&alice.id).await.unwrap(), bound("https://a.example"));
        assert_eq!(secrets.key_endpoints(&bob.id).await.unwrap(), bound("https://b.example"), "the other's");

        // Keys stored before keys were bound: bound once, to where the setting sends then;
        // an account whose setting is restored and unconfirmed gets none.
        let old = |user: &UserRecord| {
            json!({"key": "embedding_api_key", "encrypted_value": "e", "iv": "i",
            "tag": "t", "updated_at": 1, "user_id": user.id})
        };
        insert(test, "secrets", &[old(&alice), old(&bob)]).await;
        insert(test, "lvbak_embedding_unconfirmed", &[json!({"user_id": bob.id, "restored_at": 1})]).await;
        let mut unbound = secrets.keys_without_endpoint().await.unwrap();
        unbound.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let expected = |user: &UserRecord, setting: Option<&str>| UnboundKey {
            user_id: user.id.clone(),
            key: "embedding_api_key".into(),
            setting: setting.map(str::to_string),
        };
        assert_eq!(unbound, [expected(&alice, Some(r#"{"model":"b"}"#)), expected(&bob, None)]);
        secrets.bind_key_saved_earlier(&alice.id, "embedding_api_key", "https://c.example").await.unwrap();
        secrets.bind_key_saved_earlier(&bob.id, "embedding_api_key", "https://c.example").await.unwrap();
        assert!(secrets.keys_without_endpoint().await.unwrap().is_empty());
        assert_eq!(
            secrets.key_endpoints(&alice.id).await.unwrap()["embedding_api_key"].as_deref(),
            Some("https://c.example")
        );
        assert_eq!(secrets.key_endpoints(&bob.id).await.unwrap()["embedding_api_key"], None, "unconfirmed: nowhere");
        secrets.bind_key_saved_earlier(&alice.id, "embedding_api_key", "https://d.example").await.unwrap();
        assert_eq!(
            secrets.key_endpoints(&alice.id).await.unwrap()["embedding_api_key"].as_deref(),
            Some("https://c.example"),
            "kept"
        );

        assert!(secrets.delete_secret(&alice.id, key).await.unwrap());
        assert!(!secrets.key_endpoints(&alice.id).await.unwrap().contains_key(key), "the binding went with it");
        assert!(secrets.key_endpoints(&bob.id).await.unwrap().contains_key(key));
    }
}

/// The queue holds each account's own rows: queued, handed out with their text in order,
/// marked as being written, marked embedded (leaving the queue) only by their owner, and
/// reset when the model changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_queue_is_per_account() {
    // SQLite only: the queue's rows (chats, chunks) are not on PostgreSQL yet (issue 22).
    for test in [test_state("trait-queue", HostingLimits::default()).await] {
        let test = on(&test);
        let store = test.state.store();
        let queue = store.embedding_queue();
        let (alice, bob) = alice_and_bob(&store).await;
        let chat = |id: &str, user: &UserRecord| {
            json!({"id": id, "character_id": null, "user_id": user.id,
            "name": id, "metadata": "{}", "created_at": 1, "updated_at": 1})
        };
        insert(test, "chats", &[chat("chat-a", &alice), chat("chat-b", &bob)]).await;
        let chunk = |id: &str, chat: &str, content: &str| {
            json!({"id": id, "chat_id": chat, "start_message_id": "m",
            "end_message_id": "m", "message_ids": "[]", "content": content, "token_count": 3, "message_count": 1,
            "created_at": 1, "updated_at": 1})
        };
        insert(
            test,
            "chat_chunks",
            &[
                chunk("chunk-a1", "chat-a", "first of alice"),
                chunk("chunk-a2", "chat-a", "second of alice"),
                chunk("chunk-a3", "chat-a", "   "),
                chunk("chunk-b1", "chat-b", "bob's"),
            ],
        )
        .await;

        assert_eq!(
            queue.queue_pending_embeddings(&alice.id, &[SourceKind::ChatChunk]).await.unwrap(),
            2,
            "not the blank one"
        );
        assert_eq!(queue.queue_pending_embeddings(&alice.id, &[SourceKind::ChatChunk]).await.unwrap(), 2, "once each");
        assert_eq!(queue.queued_embeddings(&bob.id).await.unwrap(), 0);
        assert_eq!(queue.users_with_queued_embeddings().await.unwrap(), [alice.id.as_str()]);
        assert!(queue.next_embedding_sources(&bob.id, None, 10).await.unwrap().is_empty());
        let first = queue.next_embedding_sources(&alice.id, None, 1).await.unwrap();
        assert_eq!(
            first
                .iter()
                .map(|row| (row.id.as_str(), row.text.as_str(), row.owner_id.as_str(), row.written))
                .collect::<Vec<_>>(),
            [("chunk-a1", "first of alice", "chat-a", false)]
        );
        let next = queue.next_embedding_sources(&alice.id, Some(("chat_chunk", "chunk-a1")), 10).await.unwrap();
        assert_eq!(next.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(), ["chunk-a2"]);

        let a1 = [(SourceKind::ChatChunk, "chunk-a1".to_string())];
        queue.mark_writing(&alice.id, &a1).await.unwrap();
        let again = queue.next_embedding_sources(&alice.id, None, 10).await.unwrap();
        assert_eq!(
            again.iter().map(|row| (row.id.as_str(), row.written)).collect::<Vec<_>>(),
            [("chunk-a1", true), ("chunk-a2", false)]
        );
        queue.mark_embedded(&bob.id, &a1, "model", 5).await.unwrap();
        assert_eq!(queue.queued_embeddings(&alice.id).await.unwrap(), 2, "not by another account");
        queue.mark_embedded(&alice.id, &a1, "model", 5).await.unwrap();
        assert_eq!(queue.queued_embeddings(&alice.id).await.unwrap(), 1);
        assert_eq!(queue.queue_pending_embeddings(&alice.id, &[SourceKind::ChatChunk]).await.unwrap(), 1, "a1 is done");

        assert_eq!(queue.queue_pending_embeddings(&bob.id, &[SourceKind::ChatChunk]).await.unwrap(), 1);
        assert_eq!(queue.reset_embeddings(&alice.id).await.unwrap(), 3, "every chunk of alice's");
        assert_eq!(queue.queued_embeddings(&alice.id).await.unwrap(), 0, "the queue emptied");
        assert_eq!(queue.queued_embeddings(&bob.id).await.unwrap(), 1, "the other's stays");
        assert_eq!(
            queue.queue_pending_embeddings(&alice.id, &[SourceKind::ChatChunk]).await.unwrap(),
            2,
            "a1 waits again"
        );
    }
}

/// A prepared export is handed out once, and only to its own user; a user keeps a few at
/// most, the oldest going first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_export_is_fetched_once_by_its_own_user() {
    for test in backends("trait-prepared").await {
        let test = on(&test);
        let store = test.state.store();
        let (alice, bob) = alice_and_bob(&store).await;
        let prepared = test.state.prepared_exports();
        let plan = |user: &UserRecord, id: &str| super::ExportPlan {
            only: None,
            user: user.clone(),
            archive_id: id.into(),
            exported_at: 1,
            include_vectors: false,
            secrets: None,
        };
        prepared.insert(plan(&alice, "a1")).await;
        assert!(prepared.take("a1", &bob.id).await.is_none(), "bob took alice's export");
        assert_eq!(prepared.take("a1", &alice.id).await.map(|p| p.user), Some(alice.clone()));
        assert!(prepared.take("a1", &alice.id).await.is_none(), "fetched twice");
        let per_user = HostingLimits::default().prepared_exports_per_user;
        for n in 0..=per_user {
            prepared.insert(plan(&bob, &format!("b{n}"))).await;
        }
        assert!(prepared.take("b0", &bob.id).await.is_none(), "the oldest stayed past {per_user}");
        assert!(prepared.take(&format!("b{per_user}"), &bob.id).await.is_some());
    }
}

/// Sign-in attempts run out per address and failures per name, each on its own, and a
/// success gives its failure back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_limits_are_per_address_and_per_name() {
    let hosting = HostingLimits {
        login_burst: 2,
        login_interval: std::time::Duration::from_secs(3600),
        ..HostingLimits::default()
    };
    for test in backends_with("trait-sign-in", hosting).await {
        let test = on(&test);
        let limits = &test.state.sign_in().limits;
        assert!(limits.take_attempt("10.0.0.1").await.is_ok());
        assert!(limits.take_attempt("10.0.0.1").await.is_ok());
        assert!(limits.take_attempt("10.0.0.1").await.is_err(), "a third attempt from one address");
        assert!(limits.take_attempt("10.0.0.2").await.is_ok(), "another address was refused");
        assert!(limits.take_failure("alice").await.is_ok());
        limits.give_back_failure("alice").await;
        assert!(limits.take_failure("alice").await.is_ok());
        assert!(limits.take_failure("alice").await.is_ok());
        assert!(limits.take_failure("alice").await.is_err(), "alice's failures never ran out");
        assert!(limits.take_failure("bob").await.is_ok(), "bob paid for alice's failures");
    }
}

/// Writes to one account at once are each applied once: of twenty charges only those that
/// fit the quota are taken, one of two accounts made with one name at once gets it, and
/// ten ticket uses at once count 1 to 10 (SQLite by its one writer, PostgreSQL by its
/// statements, where several nodes share one database).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_at_once_are_each_applied_once() {
    for test in backends("trait-at-once").await {
        let test = on(&test);
        let store = test.state.store();
        let (alice, _) = alice_and_bob(&store).await;
        store.accounts().set_quota(&alice.id, Some(Some(100))).await.unwrap();
        let charges = (0..20).map(|_| {
            let (store, user) = (store.clone(), alice.id.clone());
            tokio::spawn(async move { store.accounts().charge_usage(&user, 10, None).await.is_ok() })
        });
        let fitted = futures::future::join_all(charges).await.into_iter().filter(|fitted| *fitted.as_ref().unwrap());
        assert_eq!(fitted.count(), 10, "charges that fit a quota of 100");
        assert_eq!(store.accounts().usage_of(&alice.id).await.unwrap(), Some(100));

        let creations = (0..2).map(|n| {
            let store = store.clone();
            tokio::spawn(
                async move { store.accounts().create_user(&format!("id-carol-{n}"), "carol", "hash", 1).await },
            )
        });
        let created = futures::future::join_all(creations).await.into_iter().map(Result::unwrap);
        let (made, refused): (Vec<_>, Vec<_>) = created.partition(Result::is_ok);
        assert_eq!(made.len(), 1, "one account of the name");
        assert!(refused.into_iter().all(|refusal| matches!(refusal, Err(DbError::NameTaken(_)))));

        let uses = (0..10).map(|n| {
            let (store, user) = (store.clone(), alice.id.clone());
            tokio::spawn(async move { store.secrets().record_ticket_use("archive-1", &user, n).await.unwrap().uses })
        });
        let mut counted: Vec<i64> = futures::future::join_all(uses).await.into_iter().map(Result::unwrap).collect();
        counted.sort_unstable();
        assert_eq!(counted, (1..=10).collect::<Vec<i64>>());
    }
}
