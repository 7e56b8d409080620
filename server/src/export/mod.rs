//! Export over HTTP (FORMAT §8): `GET /export` streams an archive at once; `POST
//! /export/prepare` makes an archive id (and, with secrets, the ticket) and `GET
//! /export/archive/:id` streams that archive once; `GET /export/:id/events` follows the
//! progress. The archive is written on a thread of its own (never the runtime's blocking
//! pool, which sign-in needs) into a bounded pipe that feeds the response, so memory stays
//! flat, a client that leaves stops the work, and one that stops reading is cut off after
//! the stall limit. Exports running at once are limited per user and per instance (429
//! with `Retry-After` beyond), and so are prepared exports per user.

pub mod archive;
pub mod items;
pub mod pipe;
pub mod plan;
pub mod prepared;
pub mod rows;
pub mod selection;

use lvbak_core::protocol::ExportPrepared;
use std::io::Write as _;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use lvbak_core::closure::{ClosureError, Pick, Selection};

use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::progress::{events_response, Event};
use crate::state::AppState;
use crate::throttle::{Slot, SlotRefusal};
use crate::util::now;
use plan::ExportPlan;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(items::routes())
        .route("/api/v1/user-data/export", get(export_now))
        .route("/api/v1/user-data/export/prepare", post(prepare))
        .route("/api/v1/user-data/export/archive/{archive_id}", get(download_prepared))
        .route("/api/v1/user-data/export/{archive_id}/events", get(events))
}

#[derive(Deserialize)]
struct ExportQuery {
    #[serde(rename = "includeVectors")]
    include_vectors: Option<String>,
}

fn flag(value: Option<&str>, default: bool) -> bool {
    match value {
        Some("0" | "false" | "no") => false,
        Some(_) => true,
        None => default,
    }
}

/// An export slot for `user_id`, or the 429 that says why not.
fn export_slot(state: &AppState, user_id: &str) -> AppResult<Slot> {
    state.exports().try_take(user_id).map_err(|refusal| match refusal {
        SlotRefusal::User(running) => AppError::TooManyExports { running, retry_after: Duration::from_secs(5) },
        SlotRefusal::Instance => AppError::Busy { what: "exports", retry_after: Duration::from_secs(5) },
    })
}

/// `GET /api/v1/user-data/export?includeVectors=0|1`
async fn export_now(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<ExportQuery>,
) -> AppResult<Response> {
    let slot = export_slot(&state, &user.id)?;
    let plan = ExportPlan::new(user, now(), flag(query.include_vectors.as_deref(), true));
    stream_archive(&state, plan, slot)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrepareRequest {
    #[serde(default = "yes")]
    include_vectors: bool,
    #[serde(default)]
    include_secrets: bool,
    /// A selective export: `KIND:ID` of the picked items (their closure goes in, never API
    /// keys).
    #[serde(default)]
    only: Vec<String>,
    /// With `only`: picked characters come without their chats.
    #[serde(default)]
    without_chats: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/user-data/export/prepare {includeVectors, includeSecrets, only?, withoutChats?}`
async fn prepare(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(request): Json<PrepareRequest>,
) -> AppResult<Json<ExportPrepared>> {
    let mut plan = ExportPlan::new(user, now(), request.include_vectors);
    let store = state.store();
    if !request.only.is_empty() {
        plan.only = Some(checked_selection(&state, &plan.user.id, &request.only, request.without_chats).await?);
    }
    let with_secrets = request.include_secrets && plan.only.is_none();
    let stored = if with_secrets { Some(store.secrets().secrets_of(&plan.user.id).await?) } else { None };
    let (plan, secrets) = tokio::task::spawn_blocking(move || {
        let secrets = stored.map(|stored| plan.seal_secrets(&store.identity, stored));
        (plan, secrets)
    })
    .await?;
    let archive_url = format!("/api/v1/user-data/export/archive/{}", plan.archive_id);
    let ticket = secrets.as_ref().and_then(|s| s.ticket.as_ref());
    let answer = ExportPrepared {
        archive_id: plan.archive_id.clone(),
        archive_url,
        archive_filename: plan.archive_file_name(),
        ticket_filename: ticket.map(|_| plan.ticket_file_name()),
        ticket: ticket.and_then(|ticket| serde_json::to_value(ticket).ok()),
        secrets_count: secrets.as_ref().map_or(0, |s| s.sealed.index.keys.len()),
        unreachable_secrets: secrets.as_ref().map_or(Vec::new(), |s| s.unreachable.clone()),
        events_url: format!("/api/v1/user-data/export/{}/events", plan.archive_id),
    };
    state.progress().open(&plan.archive_id, &plan.user.id);
    state.prepared_exports().insert(plan).await;
    Ok(Json(answer))
}

/// The picks of a selective export (`KIND:ID`), each naming something `user_id` holds:
/// `bad_pick` for one that is not `KIND:ID`, `not_in_account` naming those the account
/// lacks (another account's ids among them, told apart from nothing).
async fn checked_selection(
    state: &AppState,
    user_id: &str,
    only: &[String],
    without_chats: bool,
) -> AppResult<Selection> {
    let selection = Selection::from_words(only, without_chats).map_err(AppError::BadPick)?;
    let (store, user_id, checked) = (state.store(), user_id.to_string(), selection.clone());
    let closure =
        tokio::task::spawn_blocking(move || selection::closure_in_account(&store, &user_id, &checked)).await?;
    match closure {
        Ok(_) => Ok(selection),
        Err(ClosureError::NotFound(picks)) => Err(AppError::NotInAccount(Pick::named(&picks))),
        Err(ClosureError::Source(error)) => Err(AppError::internal(error)),
    }
}

/// `GET /api/v1/user-data/export/archive/:archiveId`
async fn download_prepared(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(archive_id): Path<String>,
) -> AppResult<Response> {
    let slot = export_slot(&state, &user.id)?;
    let plan =
        state.prepared_exports().take(&archive_id, &user.id).await.ok_or(AppError::NotFound("prepared archive"))?;
    stream_archive(&state, plan, slot)
}

/// `GET /api/v1/user-data/export/:archiveId/events`
async fn events(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(archive_id): Path<String>,
) -> AppResult<Response> {
    let (latest, receiver) = state.progress().subscribe(&archive_id, &user.id).ok_or(AppError::NotFound("export"))?;
    Ok(events_response(latest, receiver))
}

/// Starts writing `plan`'s archive on a thread of its own, holding `slot` until it ends,
/// and answers with its stream.
fn stream_archive(state: &AppState, plan: ExportPlan, slot: Slot) -> AppResult<Response> {
    let runtime = tokio::runtime::Handle::current();
    let (writer, failer, body) = pipe::pipe(runtime.clone(), state.hosting().export_stall);
    let progress = state.progress().open(&plan.archive_id, &plan.user.id);
    let store = state.store();
    let file_name = plan.archive_file_name();
    let archive_id = plan.archive_id.clone();
    let work = move || {
        let _slot = slot;
        let started = Instant::now();
        let publish = |event: Event| progress.publish(event);
        match archive::write_archive(&store, &runtime, &plan, writer, &publish) {
            Ok((mut writer, report)) => {
                let flushed = writer.flush();
                let bytes = writer.written();
                drop(writer);
                match flushed {
                    Ok(()) => publish(Event::ExportComplete(report.outcome(bytes, started.elapsed().as_secs_f64()))),
                    Err(error) => publish(Event::Cancelled { reason: Some(stop_reason(&error)) }),
                }
            }
            Err(error) if error.is_disconnect() => {
                let reason = if error.is_stall() { "the client stopped reading" } else { "the client went away" };
                tracing::info!("export {} stopped: {reason}", plan.archive_id);
                publish(Event::Cancelled { reason: Some(reason.to_string()) });
            }
            Err(error) => {
                tracing::error!("export {} failed: {error}", plan.archive_id);
                publish(Event::Failed { code: error.code().to_string(), error: error.to_string() });
                failer.fail(error.to_string());
            }
        }
    };
    std::thread::Builder::new().name(format!("export-{archive_id}")).spawn(work).map_err(AppError::internal)?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&archive_id) {
        headers.insert("x-lvbak-archive-id", value);
    }
    Ok(response)
}

/// Why an export stopped early, in words.
fn stop_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::TimedOut => "the client stopped reading".to_string(),
        _ => "the client went away".to_string(),
    }
}
