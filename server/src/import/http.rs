//! Import over HTTP (FORMAT §8): `POST /import` takes the raw archive, decides on its first
//! four bytes before staging anything, streams the rest to a staging file with
//! backpressure (removed by a guard whatever ends the request), verifies the container and
//! manifest, and answers 202 with a job; the job then waits (a bounded time) for a ticket
//! decision if the archive has secrets, for a worker, and applies.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use lvbak_core::container::check_zip_magic;
use lvbak_core::{Archive, FormatError, Ticket};
use tokio::io::AsyncWriteExt;

use super::from_archive::import_archive;
use super::jobs::{decide, ArchiveFacts, Job, Opening, Outcome, SecretsDecision};
use super::session::{ImportError, ImportSession};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::failure::JobFailure;
use crate::progress::{events_response, Event};
use crate::state::AppState;
use crate::storage::files::StagedFile;
use crate::util::new_id;
use crate::util::now;
use lvbak_core::protocol::{Cancelled, JobAccepted, JobError, JobReport, JobStatus, TicketSkipped, TicketUse};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user-data/import", post(upload).layer(DefaultBodyLimit::disable()))
        .route("/api/v1/user-data/import/{job_id}/status", get(status))
        .route("/api/v1/user-data/import/{job_id}/cancel", post(cancel))
        .route("/api/v1/user-data/import/{job_id}/ticket", post(ticket))
        .route("/api/v1/user-data/import/{job_id}/skip-ticket", post(skip_ticket))
        .route("/api/v1/user-data/import/{job_id}/events", get(events))
}

/// `POST /api/v1/user-data/import` with the archive as the raw body.
async fn upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    body: Body,
) -> AppResult<(StatusCode, Json<JobAccepted>)> {
    let limits = state.limits();
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Err(AppError::MultipartNotSupported);
    }
    let declared: Option<u64> = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(length) = declared.filter(|&length| length > limits.max_archive_bytes) {
        return Err(FormatError::TooLarge {
            what: "the archive".into(),
            limit: limits.max_archive_bytes,
            actual: length,
        }
        .into());
    }
    state.ensure_under_quota(&user.id).await?;
    let reservation = state.jobs().reserve(&user.id)?;

    // Nothing is staged until the first four bytes say ZIP.
    let mut stream = body.into_data_stream();
    let mut head = Vec::with_capacity(4);
    let mut pending: Vec<Bytes> = Vec::new();
    while head.len() < 4 {
        match stream.next().await {
            Some(Ok(chunk)) => {
                head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
                pending.push(chunk);
            }
            Some(Err(_)) => return Err(AppError::UploadFailed),
            None => break,
        }
    }
    check_zip_magic(&head)?;

    let store = state.store();
    let job_id = new_id();
    let staging = store.staging_dir();
    tokio::fs::create_dir_all(&staging).await.map_err(AppError::internal)?;
    // From here on the guard removes the staging file if this handler stops for any reason,
    // a client that disconnects mid-upload included (axum then drops the handler).
    let staged = StagedFile::new(staging.join(format!("{job_id}.lvbak.partial")));
    let file = tokio::fs::File::create(staged.path()).await.map_err(AppError::internal)?;
    // Large writes: each write of a tokio file is a trip to a blocking thread.
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut total = 0u64;
    let mut chunks = futures::stream::iter(pending.into_iter().map(Ok)).chain(stream);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| AppError::UploadFailed)?;
        total += chunk.len() as u64;
        if total > limits.max_archive_bytes {
            return Err(FormatError::TooLarge {
                what: "the archive".into(),
                limit: limits.max_archive_bytes,
                actual: total,
            }
            .into());
        }
        file.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    file.flush().await.map_err(AppError::internal)?;
    drop(file);

    // Verify the container and the manifest before accepting the job.
    let verified = {
        let path = staged.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let archive = Archive::open(BufReader::with_capacity(64 * 1024, File::open(&path)?), limits)?;
            let binding = archive.secrets_index().map(|index| index.binding());
            Ok::<_, FormatError>(ArchiveFacts::new(archive.manifest(), binding))
        })
        .await?
    };
    let facts = verified?;
    let path = staged.path().to_path_buf();
    let job = state
        .jobs()
        .create(&store, state.progress(), reservation, job_id.clone(), facts, Some(path), Opening::Raw)
        .await?;
    // The job removes the file when it ends; until it is registered, the guard does.
    staged.keep();
    job.progress.publish(Event::Verifying { done: true });
    tokio::spawn(run_job(state.clone(), job.clone()));
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id, status: job.status() })))
}

/// Waits for what the job needs (a ticket decision, a worker), then applies it.
async fn run_job(state: AppState, job: Arc<Job>) {
    let store = state.store();

    let mut key = None;
    if job.needs_ticket() {
        job.set_status(JobStatus::AwaitingTicket);
        job.progress.publish(Event::AwaitingTicket { secrets_count: job.archive.secrets_count() });
        let decided = tokio::time::timeout(state.hosting().ticket_wait, async {
            loop {
                if job.is_cancelled() {
                    return None;
                }
                let decision = job.lock().decision.take();
                match decision {
                    Some(decision) => return Some(decision),
                    None => job.wake.notified().await,
                }
            }
        })
        .await;
        match decided {
            Ok(Some(SecretsDecision::Ticket(ticket_key))) => key = Some(ticket_key),
            Ok(Some(SecretsDecision::Skip)) => {}
            Ok(None) => return state.finish_job(&job, Outcome::Cancelled).await,
            Err(_) => return state.finish_job(&job, Outcome::Failed(JobFailure::TicketTimeout)).await,
        }
        job.set_status(JobStatus::Queued);
    }
    let permit = tokio::select! {
        permit = state.jobs().worker() => permit,
        () = async { while !job.is_cancelled() { job.wake.notified().await } } => None,
    };
    if job.is_cancelled() || permit.is_none() {
        return state.finish_job(&job, Outcome::Cancelled).await;
    }
    job.set_status(JobStatus::Running);
    job.progress.publish(Event::Running);

    let (limits, quota, memory) = (state.limits(), state.hosting().quota, state.memory().clone());
    let runtime = tokio::runtime::Handle::current();
    let (worker_store, worker_job) = (store.clone(), job.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let path =
            worker_job.staged.clone().ok_or_else(|| ImportError::Io(std::io::Error::other("no staged archive")))?;
        let mut archive = Archive::open(BufReader::with_capacity(256 * 1024, File::open(&path)?), limits)?;
        let progress = worker_job.progress.clone();
        let publish = move |event: Event| progress.publish(event);
        let mut session = ImportSession::new(
            &worker_store,
            &worker_job.user_id,
            quota,
            worker_job.cancel.clone(),
            &publish,
            runtime,
        )?;
        session.count_memory_in(&memory);
        match import_archive(&mut session, &mut archive, key.as_ref(), Some(&path)) {
            Ok(()) => session.finish(),
            Err(error) => {
                session.settle_after_stop();
                Err(error)
            }
        }
    })
    .await;
    let outcome = match outcome {
        Ok(Ok(summary)) => Outcome::Complete(summary),
        Ok(Err(error)) => Outcome::of_error(error, &job.id),
        Err(panic) => {
            tracing::error!("import {} panicked: {panic}", job.id);
            Outcome::Failed(JobFailure::Internal)
        }
    };
    state.finish_job(&job, outcome).await;
}

fn job_of(state: &AppState, id: &str, user_id: &str) -> AppResult<Arc<Job>> {
    state.jobs().get(id, user_id).ok_or(AppError::NotFound("import job"))
}

/// `GET /api/v1/user-data/import/:jobId/status`
async fn status(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<JobReport>> {
    if let Some(job) = state.jobs().get(&id, &user.id) {
        return Ok(Json(job.report()));
    }
    Ok(Json(recorded_status(&state, &id, &user.id).await?))
}

/// The status of a job that has ended (this run of the server or an earlier one), as
/// recorded (a preview that failed or was cancelled: while the instance keeps it).
pub async fn recorded_status(state: &AppState, id: &str, user_id: &str) -> AppResult<JobReport> {
    if let Some(report) = state.jobs().ended_preview(id, user_id) {
        return Ok(report);
    }
    let record = state.store().jobs().job_record(id, user_id).await?;
    let record = record.ok_or(AppError::NotFound("import job"))?;
    if let Some(report) = record.report.as_deref().and_then(|text| serde_json::from_str(text).ok()) {
        return Ok(report);
    }
    // A job recorded without its report (it never ended in this process).
    Ok(JobReport {
        job_id: id.to_string(),
        status: JobStatus::parse(&record.status).unwrap_or(JobStatus::Failed),
        started_at: record.started_at,
        finished_at: record.finished_at,
        manifest: None,
        secrets_count: 0,
        ticket: None,
        error: record.error_code.map(|code| JobError { code, message: record.error_message.unwrap_or_default() }),
        outcome: None,
        next_batch: None,
        held_files: None,
        hpke_public_key: None,
    })
}

/// `POST /api/v1/user-data/import/:jobId/cancel`
async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Cancelled>> {
    let Some(job) = state.jobs().get(&id, &user.id) else {
        let recorded = recorded_status(&state, &id, &user.id).await?;
        return Ok(Json(Cancelled { cancelled: false, status: Some(recorded.status) }));
    };
    let cancelled = state.jobs().cancel(&job);
    // Give the job its chance to stop, so the answer usually carries the final status.
    for _ in 0..40 {
        if job.status().is_final() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(Json(Cancelled { cancelled, status: Some(job.status()) }))
}

/// Ticket decisions are taken only while a job waits for one.
fn ensure_awaiting_ticket(job: &Job) -> AppResult<()> {
    if job.status() != JobStatus::AwaitingTicket {
        return Err(AppError::NotAwaitingTicket);
    }
    Ok(())
}

/// `POST /api/v1/user-data/import/:jobId/ticket` with the ticket JSON.
async fn ticket(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    body: Bytes,
) -> AppResult<Json<TicketUse>> {
    let job = job_of(&state, &id, &user.id)?;
    ensure_awaiting_ticket(&job)?;
    let ticket = Ticket::parse(&body)?;
    let archive_id = job.archive.archive_id.clone();
    if ticket.archive_id != archive_id {
        return Err(FormatError::ArchiveMismatch { ticket: ticket.archive_id, archive: archive_id }.into());
    }
    let binding = job
        .archive
        .secrets
        .as_ref()
        .ok_or_else(|| FormatError::BindingMismatch { detail: "the archive carries no secrets".into() })?;
    ticket.verify_binding(&archive_id, binding)?;
    let key = ticket.key()?;
    let used = state.store().secrets().record_ticket_use(&archive_id, &user.id, now()).await?;
    let answer = used.answer();
    job.lock().ticket_use = Some(answer.clone());
    decide(&job, SecretsDecision::Ticket(key));
    job.progress.publish(Event::TicketAccepted { was_reused: used.was_reused });
    Ok(Json(answer))
}

/// `POST /api/v1/user-data/import/:jobId/skip-ticket`
async fn skip_ticket(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<TicketSkipped>> {
    let job = job_of(&state, &id, &user.id)?;
    ensure_awaiting_ticket(&job)?;
    decide(&job, SecretsDecision::Skip);
    job.progress.publish(Event::TicketSkipped);
    Ok(Json(TicketSkipped { skipped: true }))
}

/// `GET /api/v1/user-data/import/:jobId/events`
async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (latest, receiver) = state.progress().subscribe(&id, &user.id).ok_or(AppError::NotFound("import job"))?;
    Ok(events_response(latest, receiver))
}
