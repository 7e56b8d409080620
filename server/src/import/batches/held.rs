//! What the account holds, as a batch job tells its client: the files the job found held
//! when it opened (`GET …/held-files`, for a resumed upload), and the hashes of the row ids
//! the account has (`GET …/held-rows`), written as they are read through a bounded pipe,
//! each table's count budgeted for the `held` counts the client may claim. A preview job
//! holds back no row.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{GeneralPurpose, STANDARD as BASE64};
use base64::write::EncoderWriter;
use lvbak_core::protocol::{HeldFiles, HeldRowsAnswer};
use lvbak_core::upload::held_id_hash;

use super::lookup::batches_of;
use super::{BatchUpload, HELD_ROWS_READS};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::export::pipe::pipe;
use crate::state::AppState;
use crate::storage::sqlite::DbError;

/// `GET /api/v1/user-data/import/:jobId/held-files`: the files the server said it holds
/// when the job opened (for a client resuming the upload, which must leave out the same).
pub(super) async fn held_files(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<HeldFiles>> {
    let (_, batches) = batches_of(&state, &id, &user.id).await?;
    Ok(Json(HeldFiles { held_files: batches.held_files() }))
}

/// `GET /api/v1/user-data/import/:jobId/held-rows`: per table, the hashes of the row ids the
/// account has now (8 bytes little-endian each, base64), so the client leaves those rows out.
/// The answer is written as the ids are read, through a bounded pipe: the server holds a
/// few chunks of it, whatever the account's size.
pub(super) async fn held_rows(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (job, batches) = batches_of(&state, &id, &user.id).await?;
    if job.preview {
        // Every row is sent to be previewed: none is held, and each table may come as the
        // archive's own deflate stream.
        let fresh = fresh_tables(&std::collections::HashSet::new()).into_iter().map(str::to_string).collect();
        return Ok(Json(HeldRowsAnswer { tables: Default::default(), fresh: Some(fresh) }).into_response());
    }
    // One reading at a time and a few per job: an account's ids are read whole.
    // A refusal while another reading runs does not count as one.
    if batches.reading_held_rows.swap(true, Ordering::AcqRel) {
        return Err(AppError::Busy { what: "held rows", retry_after: Duration::from_secs(1) });
    }
    if batches.held_rows_reads.fetch_add(1, Ordering::AcqRel) >= HELD_ROWS_READS {
        batches.reading_held_rows.store(false, Ordering::Release);
        return Err(AppError::RateLimited { retry_after: Duration::from_secs(60) });
    }
    let (mut writer, failer, body) = pipe(tokio::runtime::Handle::current(), state.hosting().export_stall);
    let store = state.store();
    let user_id = user.id.clone();
    tokio::task::spawn_blocking(move || {
        let written = write_held_rows(&store, &user_id, &batches, &mut writer);
        batches.reading_held_rows.store(false, Ordering::Release);
        if let Err(error) = written {
            tracing::warn!("held rows for {user_id}: {error}");
            drop(writer);
            failer.fail(error.to_string());
        }
    });
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// Writes `{"tables": {"<table>": "<base64 of the hashes>", …}}` as the ids are read, and
/// budgets each table's held rows once its ids are all handed out.
fn write_held_rows<W: Write>(
    store: &crate::storage::Store,
    user_id: &str,
    batches: &BatchUpload,
    out: &mut W,
) -> Result<(), DbError> {
    /// The table being written: its name, its ids so far, and the encoder its hashes go
    /// through into the answer.
    struct Table<'e, W: Write> {
        name: &'static str,
        count: u64,
        base64: EncoderWriter<'e, GeneralPurpose, W>,
    }
    impl<W: Write> Table<'_, W> {
        /// Writes the encoder's last bytes and padding and the closing quote, and budgets
        /// the table's rows; gives the answer's writer back.
        fn end(mut self, batches: &BatchUpload) -> std::io::Result<W> {
            let mut out = self.base64.finish()?;
            out.write_all(b"\"")?;
            batches.hand_out_rows(self.name, self.count);
            Ok(out)
        }
    }
    /// Where the answer stands: between tables, or inside one (`out` is then the encoder's).
    enum Answer<'e, W: Write> {
        Between(W),
        In(Box<Table<'e, W>>),
    }
    let io = |error: std::io::Error| DbError::Invalid(error.to_string());
    let broken = || DbError::Invalid("the held rows were written after a failure".into());
    out.write_all(br#"{"tables":{"#).map_err(io)?;
    let mut answer = Some(Answer::Between(out));
    store.row_snapshot()?.held_row_ids(user_id, |name, id| {
        if !matches!(&answer, Some(Answer::In(table)) if table.name == name) {
            let (out, comma) = match answer.take() {
                Some(Answer::In(ended)) => (ended.end(batches).map_err(io)?, ","),
                Some(Answer::Between(out)) => (out, ""),
                None => return Err(broken()),
            };
            out.write_all(format!("{comma}\"{name}\":\"").as_bytes()).map_err(io)?;
            let base64 = EncoderWriter::new(out, &BASE64);
            answer = Some(Answer::In(Box::new(Table { name, count: 0, base64 })));
        }
        let Some(Answer::In(table)) = answer.as_mut() else { return Err(broken()) };
        table.base64.write_all(&held_id_hash(id).to_le_bytes()).map_err(io)?;
        table.count += 1;
        Ok::<(), DbError>(())
    })?;
    let out = match answer {
        Some(Answer::In(ended)) => ended.end(batches).map_err(io)?,
        Some(Answer::Between(out)) => out,
        None => return Err(broken()),
    };
    // The tables with no rows at the first whole reading, whatever this one found.
    let fresh = batches.fresh_tables.get_or_init(|| {
        let read = batches.held_rows.lock().keys().cloned().collect();
        fresh_tables(&read)
    });
    let fresh = serde_json::to_string(fresh).map_err(|error| DbError::Invalid(error.to_string()))?;
    out.write_all(format!(r#"}},"fresh":{fresh}}}"#).as_bytes()).map_err(io)?;
    out.flush().map_err(io)
}

/// The registry's tables not among `held` (those the account has rows of).
fn fresh_tables(held: &std::collections::HashSet<String>) -> Vec<&'static str> {
    lvbak_core::registry::TABLES.iter().map(|spec| spec.name).filter(|name| !held.contains(*name)).collect()
}
