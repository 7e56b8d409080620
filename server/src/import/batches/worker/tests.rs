//! Unit tests of the batch import's [`super::Worker`]: its thread started on a job, fed
//! through its queue as the handlers feed it, and each way it ends — commit, a refused
//! batch, cancel, a dropped queue, each timeout, an account it cannot open.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use lvbak_core::hpke::HpkeKeyPair;
use lvbak_core::protocol::JobStatus;
use tokio::sync::{oneshot, Semaphore};

use super::super::testing::{book, ids, manifest, new_job, rows};
use super::super::work::{Queued, Work};
use super::super::QUEUE;
use super::{Opened, Worker};
use crate::config::HostingLimits;
use crate::import::jobs::Job;
use crate::state::AppState;
use crate::storage::UserRecord;
use crate::test_support::{account, test_state};

const A: &str = "5a9c0b7e-0000-4000-8000-0000000000a1";
const B: &str = "5a9c0b7e-0000-4000-8000-0000000000b2";

/// A started worker: its queue, the places in it, and the job.
struct Running {
    queue: SyncSender<Queued>,
    places: Arc<Semaphore>,
    job: Arc<Job>,
    opened: oneshot::Receiver<Opened>,
}

impl Running {
    /// Queues work as the handlers do (a place first); `false` once the worker has ended.
    async fn send(&self, work: Work) -> bool {
        let place = self.places.clone().acquire_owned().await.unwrap();
        self.queue.try_send(Queued { work, place, memory: None }).is_ok()
    }

    /// Waits for the job to end: its status and error code.
    async fn ended(&self) -> (JobStatus, Option<String>) {
        ended(&self.job).await
    }
}

/// Waits for `job` to end: its status and error code.
async fn ended(job: &Job) -> (JobStatus, Option<String>) {
    for _ in 0..1500 {
        let status = job.status();
        if status.is_final() {
            return (status, job.lock().error.as_ref().map(|error| error.code.clone()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the job did not end");
}

/// Starts a worker on a new job of `user`.
async fn start(state: &AppState, user: &UserRecord) -> Running {
    let job = new_job(state, user, &manifest(&[]), None).await;
    let (queue, receiver) = sync_channel(QUEUE);
    let worker = Worker {
        services: state.import_services(),
        job: job.clone(),
        queue: receiver,
        key: HpkeKeyPair::from_secret([7; 32]).unwrap(),
        inflated: Arc::default(),
        runtime: tokio::runtime::Handle::current(),
        claims: Vec::new(),
        selection: None,
    };
    let (ready, opened) = oneshot::channel();
    worker.spawn(ready).unwrap();
    Running { queue, places: Arc::new(Semaphore::new(QUEUE)), job, opened }
}

/// The worker opens the session and says so (why vectors would not be restored, the
/// files held); it applies batches and answers a vectors check in the order they came,
/// and answers the commit only once the job's end is recorded: complete, forgotten by the
/// instance, its queue's places and worker slots all given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_applies_in_order_and_answers_the_commit_once_the_end_is_recorded() {
    let test = test_state("worker-commit", HostingLimits::default()).await;
    let state = &test.state;
    let alice = account(state, "alice").await;
    let mut running = start(state, &alice).await;
    let opened = (&mut running.opened).await.unwrap().unwrap();
    // The corpus manifest names an embedding model this account has not set.
    assert!(opened.blocker.is_some() && opened.held_files.is_empty());

    assert!(running.send(Work::Batch(rows("world_books", 1, &book(A), 0))).await);
    let (answer, vectors) = oneshot::channel();
    assert!(running.send(Work::CheckVectors(answer)).await);
    assert_eq!(vectors.await.unwrap(), opened.blocker, "checked after the batch before it");
    assert_eq!(running.job.status(), JobStatus::Running);
    assert!(running.send(Work::Batch(rows("world_books", 2, &book(B), 0))).await);
    let (done, committed) = oneshot::channel();
    assert!(running.send(Work::Commit(done)).await);
    committed.await.unwrap();

    assert_eq!(running.job.status(), JobStatus::Complete);
    let imported = running.job.lock().summary.as_ref().unwrap().tables["world_books"].imported;
    assert_eq!(imported, 2);
    assert_eq!(ids(state, "world_books", &alice), [A, B]);
    assert!(state.jobs().get(&running.job.id, &alice.id).is_none(), "forgotten");
    assert_eq!(running.places.available_permits(), QUEUE);
    assert_eq!(state.jobs().idle_workers(), state.jobs().worker_count());
    let place = running.places.clone().try_acquire_owned().unwrap();
    let late = running.queue.try_send(Queued { work: Work::Batch(rows("world_books", 3, "", 0)), place, memory: None });
    assert!(matches!(late, Err(TrySendError::Disconnected(_))), "nobody reads the queue any more");
}

/// A batch refused while it is applied ends the job failed with the refusal's code; what
/// came before it stays, and the job's user may open another import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_ends_the_job_with_its_code() {
    let test = test_state("worker-refused", HostingLimits::default()).await;
    let state = &test.state;
    let alice = account(state, "alice").await;
    let mut running = start(state, &alice).await;
    (&mut running.opened).await.unwrap().unwrap();
    assert!(running.send(Work::Batch(rows("world_books", 1, &book(A), 0))).await);
    assert!(running.send(Work::Batch(rows("world_books", 2, "{\"id\": \n", 0))).await);
    assert_eq!(running.ended().await, (JobStatus::Failed, Some("bad_json".into())));
    assert_eq!(ids(state, "world_books", &alice), [A]);
    assert!(state.jobs().get(&running.job.id, &alice.id).is_none());
    assert!(state.jobs().reserve(&alice.id).is_ok(), "the user's import slot is free");
}

/// A cancel stops a waiting worker, as does a queue nobody feeds any more (the handlers'
/// side dropped): the job ends cancelled, with no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_a_dropped_queue_ends_the_job_cancelled() {
    let test = test_state("worker-cancel", HostingLimits::default()).await;
    let state = &test.state;
    let alice = account(state, "alice").await;
    let mut running = start(state, &alice).await;
    (&mut running.opened).await.unwrap().unwrap();
    assert!(state.jobs().cancel(&running.job));
    assert_eq!(running.ended().await, (JobStatus::Cancelled, None));

    let mut running = start(state, &alice).await;
    (&mut running.opened).await.unwrap().unwrap();
    let Running { queue, job, .. } = running;
    drop(queue);
    assert_eq!(ended(&job).await, (JobStatus::Cancelled, None));
}

/// A job that gets no first batch in time, no next batch in time, or stays open too
/// long fails as `upload_timeout`, saying which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_timeout_ends_the_job_saying_which() {
    let long = Duration::from_secs(3600);
    let cases = [
        ("no first batch", Duration::ZERO, long, long, "no first batch came for 0 seconds"),
        ("no next batch", long, Duration::ZERO, long, "no batch came for 0 seconds"),
        ("open too long", long, long, Duration::ZERO, "the import stayed open longer than 0 minutes"),
    ];
    for (what, import_open, import_idle, import_lifetime, why) in cases {
        let hosting = HostingLimits { import_open, import_idle, import_lifetime, ..HostingLimits::default() };
        let test = test_state("worker-timeout", hosting).await;
        let state = &test.state;
        let alice = account(state, "alice").await;
        let mut running = start(state, &alice).await;
        (&mut running.opened).await.unwrap().unwrap();
        if what == "no next batch" {
            assert!(running.send(Work::Batch(rows("world_books", 1, &book(A), 0))).await);
        }
        assert_eq!(running.ended().await, (JobStatus::Failed, Some("upload_timeout".into())), "{what}");
        let message = running.job.lock().error.as_ref().unwrap().message.clone();
        assert!(message.contains(why), "{what}: {message}");
    }
}

/// An account over its quota cannot open an import: the worker says why instead of
/// opening, and the job ends failed with that code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_over_its_quota_is_refused_when_the_worker_opens() {
    let hosting = HostingLimits { quota: Some(10), ..HostingLimits::default() };
    let test = test_state("worker-quota", hosting).await;
    let state = &test.state;
    let alice = account(state, "alice").await;
    state.store().accounts().set_usage(&alice.id, 11).await.unwrap();
    let mut running = start(state, &alice).await;
    let refused = (&mut running.opened).await.unwrap().err().unwrap();
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(running.ended().await, (JobStatus::Failed, Some("quota_exceeded".into())));
    assert!(!running.send(Work::Batch(rows("world_books", 1, &book(A), 0))).await);
}
