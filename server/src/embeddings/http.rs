//! The embeddings routes: the setting (`GET/PUT /api/v1/embeddings/config`, the API key a
//! write-only field stored as the user's secret), a connection test that embeds one
//! string, the run's status and its events (SSE), start and cancel.

use crate::embeddings::config::EmbeddingRules as _;
use lvbak_core::protocol::{ConnectionTested, EmbeddingsConfig, RunCancelled};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::config::{EmbeddingSettings, SETTING_KEY};
use super::runs::{Embeddings, RunStatus, StartError};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::storage::Store;
use crate::util::now;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/embeddings/config", get(config).put(update_config))
        .route("/api/v1/embeddings/test", post(test_connection))
        .route("/api/v1/embeddings/status", get(status))
        .route("/api/v1/embeddings/events", get(events))
        .route("/api/v1/embeddings/start", post(start))
        .route("/api/v1/embeddings/cancel", post(cancel))
}

/// The setting as the page shows it, with whether a key may be sent to its endpoint
/// (never the key) and, for a stored key that may not, where it may go.
async fn config_answer(embeddings: &Embeddings, user_id: &str) -> AppResult<EmbeddingsConfig> {
    let settings = embeddings.settings(user_id).await?;
    Ok(EmbeddingsConfig {
        has_api_key: embeddings.api_key(user_id, &settings).await?.is_some(),
        key_saved_for: embeddings.key_bound_elsewhere(user_id, &settings).await?,
        endpoint: settings.endpoint(),
        settings,
    })
}

/// `GET /api/v1/embeddings/config`
async fn config(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> AppResult<Json<EmbeddingsConfig>> {
    Ok(Json(config_answer(state.embeddings(), &user.id).await?))
}

/// `PUT /api/v1/embeddings/config` with any of the setting's fields, and `api_key` (a
/// string stores it, `null` or `""` removes it). When the model, dimensions, provider or
/// URL change, every vector of the account is dropped and its rows wait for new ones.
async fn update_config(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Json(update): Json<Map<String, Value>>,
) -> AppResult<Json<EmbeddingsConfig>> {
    let (store, embeddings, user_id) = (state.store(), state.embeddings().clone(), user.id.clone());
    // A task of its own: the writes go to their end even if the client leaves.
    let changed_model =
        tokio::spawn(async move { save_config(&store, &embeddings, &user_id, &update).await }).await??;
    if changed_model {
        // The old vectors answer for another model: nobody may search them any more.
        let deleted = state.store().vectors.delete_user(&user.id).await.map_err(AppError::internal)?;
        tracing::info!("embedding model of {} changed: {deleted} vectors dropped", user.id);
    }
    let (embeddings, user_id) = (state.embeddings().clone(), user.id.clone());
    let answer = tokio::spawn(async move {
        embeddings.resume(&user_id).await;
        config_answer(&embeddings, &user_id).await
    })
    .await??;
    Ok(Json(answer))
}

/// Saves `update` into the user's setting, confirmed, with its key; whether the model (the
/// setting's fingerprint) changed, in which case the user's rows wait for new vectors.
async fn save_config(
    store: &Store,
    embeddings: &Embeddings,
    user_id: &str,
    update: &Map<String, Value>,
) -> AppResult<bool> {
    let stored = store.settings().setting(user_id, SETTING_KEY).await?;
    let before = EmbeddingSettings::from_setting(stored.as_deref());
    let merged = EmbeddingSettings::merge(stored.as_deref(), update)
        .map_err(|error| AppError::InvalidSetting(error.to_string()))?;
    let after = EmbeddingSettings::from_value(&Value::Object(merged.clone()));
    if let Some(Value::String(key)) = update.get("api_key") {
        if key.len() > 4096 {
            return Err(AppError::InvalidSetting("api_key: at most 4096 characters".into()));
        }
    }
    store.settings().put_setting(user_id, SETTING_KEY, &Value::Object(merged).to_string(), now()).await?;
    // Saved by the user in this account: the setting is confirmed, and a key restored
    // from a backup may go to the endpoint it now names (and only there).
    let endpoint = after.endpoint();
    store.settings().confirm_embedding_setting(user_id, &endpoint).await?;
    match update.get("api_key") {
        Some(Value::String(key)) if !key.trim().is_empty() => {
            let sealed = store.identity.seal(user_id, &after.secret_key(), key.trim());
            store.secrets().put_secret(user_id, &sealed, now(), Some(&endpoint)).await?;
        }
        Some(Value::String(_) | Value::Null) => {
            store.secrets().delete_secret(user_id, &after.secret_key()).await?;
        }
        _ => {}
    }
    let changed = before.fingerprint() != after.fingerprint();
    if changed {
        // A run going under the old model ends (within a batch write) before its rows
        // are reset, so none is marked done with an old vector after the reset.
        embeddings.cancel(user_id);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while embeddings.is_running(user_id) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        store.embedding_queue().reset_embeddings(user_id).await?;
    }
    Ok(changed)
}

/// `POST /api/v1/embeddings/test`: embeds one string with the stored setting and key;
/// `{ok, dimensions, model, endpoint}`, or the provider's refusal in words.
async fn test_connection(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<ConnectionTested>> {
    let embeddings = state.embeddings();
    let settings = embeddings.settings(&user.id).await?;
    let key = embeddings.api_key(&user.id, &settings).await?;
    let texts = ["lvbak connection test".to_string()];
    // A test that is dropped (the client went away) cancels its request.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let vectors = embeddings
        .client()
        .embed(&user.id, &settings, key.as_deref().map(String::as_str), &texts, 1, &cancel)
        .await
        .map_err(|error| AppError::Provider { code: error.code(), message: error.to_string() })?;
    let dimensions = vectors.first().map_or(0, Vec::len);
    Ok(Json(ConnectionTested { ok: true, dimensions, endpoint: settings.endpoint(), model: settings.model }))
}

/// `GET /api/v1/embeddings/status`
async fn status(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> AppResult<Json<RunStatus>> {
    Ok(Json(state.embeddings().status(&user.id).await?))
}

/// `POST /api/v1/embeddings/start`: starts the run (or answers the one going).
async fn start(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> AppResult<Json<RunStatus>> {
    let embeddings: Arc<Embeddings> = state.embeddings().clone();
    // A task of its own: a run that queued its rows starts even if the client leaves.
    let started = tokio::spawn(async move { embeddings.start(&user.id).await }).await?;
    match started {
        Ok(status) => Ok(Json(status)),
        Err(StartError::NotConfirmed) => Err(AppError::EmbeddingsNotConfirmed),
        Err(StartError::Database(error)) => Err(error.into()),
    }
}

/// `POST /api/v1/embeddings/cancel`: `{cancelled}` (whether a run was going).
async fn cancel(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Json<RunCancelled> {
    Json(RunCancelled { cancelled: state.embeddings().cancel(&user.id) })
}

/// `GET /api/v1/embeddings/events`: the status now, then each change, as `status` events;
/// the stream ends with the first status that is not `running`.
async fn events(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> AppResult<Response> {
    let receiver = state.embeddings().watch(&user.id).await?;
    let stream = futures::stream::unfold((receiver, true, false), |(mut receiver, first, ended)| async move {
        if ended {
            return None;
        }
        if !first && receiver.changed().await.is_err() {
            return None;
        }
        let status = receiver.borrow_and_update().clone();
        // Nothing running: the stream says so and ends (an idle stream held open would let
        // one account keep connections without limit).
        let over = status.status != "running";
        Some((status, (receiver, false, over)))
    });
    let events = futures::StreamExt::map(stream, |status: RunStatus| {
        let data = serde_json::to_string(&status).unwrap_or_default();
        Ok::<SseEvent, Infallible>(SseEvent::default().event("status").data(data))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
