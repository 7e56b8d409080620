//! The HTTP edge's one error type: every refusal the server answers is a variant of
//! [`AppError`], with a stable `code()`, a `status()` and a sentence, answered as
//! `{"code": ..., "error": ...}` (plus `nextBatch` for a batch gap, and `Retry-After` for
//! limits). Format errors keep lvbak-core's codes; storage and other internal failures are
//! logged and answered with a generic `internal`.

use lvbak_core::protocol::ErrorAnswer;
use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lvbak_core::protocol::{JobError, JobStatus};
use lvbak_core::FormatError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("sign in first")]
    Unauthorized,
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("send X-Requested-With with cookie-authenticated requests")]
    CrossSiteRequest,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("too many attempts; try again in {} seconds", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("the server is at capacity for {what}; try again in {} seconds", retry_after.as_secs().max(1))]
    Busy { what: &'static str, retry_after: Duration },
    #[error("the server running this import does not answer; try again in {} seconds", retry_after.as_secs().max(1))]
    NodeUnavailable { retry_after: Duration },
    #[error("{running} exports of yours are running; wait for one to end")]
    TooManyExports { running: usize, retry_after: Duration },
    #[error(transparent)]
    QuotaExceeded(crate::failure::QuotaExceeded),
    #[error(transparent)]
    OverQuota(crate::failure::OverQuota),
    #[error("an import of yours is already under way")]
    ImportRunning,
    #[error("send the archive as the raw request body, not as a multipart form")]
    MultipartNotSupported,
    #[error("the upload was interrupted")]
    UploadFailed,
    #[error("the request body did not arrive within {seconds} seconds")]
    UploadTimedOut { seconds: u64 },
    #[error("this import is not waiting for a ticket")]
    NotAwaitingTicket,
    #[error("this import takes no batches: it was a raw upload")]
    NotABatchImport,
    #[error("send the batch with a Content-Length of at most {limit} bytes")]
    BatchLength { limit: usize },
    #[error("the batch does not match its X-Batch-Sha256 header (damaged in transit?)")]
    BatchHashMismatch,
    #[error("batch {batch} was already received with other contents")]
    BatchConflict { batch: u64 },
    #[error("batch {next} is the next one expected")]
    BatchGap { next: u64 },
    #[error("send vectors only after a vectors check that accepts them")]
    VectorsNotAccepted,
    /// A request to an import that has ended: its status and, if it failed, why.
    #[error("{}", ended_message(*status, error.as_ref()))]
    ImportEnded { status: JobStatus, error: Option<JobError> },
    #[error("the server could not finish the import")]
    ImportFailed,
    #[error("{0}")]
    InvalidSetting(String),
    /// The embeddings provider refused or could not be reached (`code` as a run reports it).
    #[error("{message}")]
    Provider { code: &'static str, message: String },
    #[error(
        "the embeddings setting was restored from a backup and is switched off: check it and save it before a run"
    )]
    EmbeddingsNotConfirmed,
    /// Picks of a selective export that name nothing the account holds (`KIND:ID`, …).
    #[error("nothing of {0} is in your account")]
    NotInAccount(String),
    /// A pick that is not `KIND:ID` with a known kind.
    #[error("{0}")]
    BadPick(String),
    #[error("something went wrong on the server")]
    Internal,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An internal failure: logged in full, answered without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {error}");
        Self::Internal
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &str {
        match self {
            Self::Format(error) => error.code(),
            Self::Unauthorized => "unauthorized",
            Self::BadCredentials => "bad_credentials",
            Self::CrossSiteRequest => "cross_site_request",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Busy { .. } => "busy",
            Self::NodeUnavailable { .. } => "node_unavailable",
            Self::TooManyExports { .. } => "too_many_exports",
            Self::QuotaExceeded(_) | Self::OverQuota(_) => "quota_exceeded",
            Self::ImportRunning => "import_running",
            Self::MultipartNotSupported => "multipart_not_supported",
            Self::UploadFailed => "upload_failed",
            Self::UploadTimedOut { .. } => "upload_timeout",
            Self::NotAwaitingTicket => "not_awaiting_ticket",
            Self::NotABatchImport => "not_a_batch_import",
            Self::BatchLength { .. } => "batch_length",
            Self::BatchHashMismatch => "batch_hash_mismatch",
            Self::BatchConflict { .. } => "batch_conflict",
            Self::BatchGap { .. } => "batch_gap",
            Self::VectorsNotAccepted => "vectors_not_accepted",
            Self::ImportEnded { error: Some(error), .. } => &error.code,
            Self::ImportEnded { status, error: None } => ended_code(*status),
            Self::InvalidSetting(_) => "invalid_setting",
            Self::Provider { code, .. } => code,
            Self::EmbeddingsNotConfirmed => "embeddings_not_confirmed",
            Self::NotInAccount(_) => "not_in_account",
            Self::BadPick(_) => "bad_pick",
            Self::ImportFailed | Self::Internal => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Format(error) => format_status(error),
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NotInAccount(_) => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } | Self::TooManyExports { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy { .. } | Self::NodeUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::QuotaExceeded(_) | Self::OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MultipartNotSupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UploadFailed | Self::BatchHashMismatch | Self::InvalidSetting(_) | Self::BadPick(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Provider { .. } => StatusCode::BAD_GATEWAY,
            Self::UploadTimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BatchLength { .. } => StatusCode::LENGTH_REQUIRED,
            Self::ImportRunning
            | Self::NotAwaitingTicket
            | Self::NotABatchImport
            | Self::BatchConflict { .. }
            | Self::BatchGap { .. }
            | Self::VectorsNotAccepted
            | Self::EmbeddingsNotConfirmed
            | Self::ImportEnded { .. } => StatusCode::CONFLICT,
            Self::ImportFailed | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before trying again, for limits.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after }
            | Self::Busy { retry_after, .. }
            | Self::NodeUnavailable { retry_after }
            | Self::TooManyExports { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The code of a request to an import that ended without a failure of its own.
fn ended_code(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Complete => "import_complete",
        JobStatus::Cancelled => "import_cancelled",
        JobStatus::Failed => "import_failed",
        JobStatus::Queued => "import_queued",
        JobStatus::AwaitingTicket => "import_awaiting_ticket",
        JobStatus::Running => "import_running",
    }
}

fn ended_message(status: JobStatus, error: Option<&JobError>) -> String {
    match error {
        Some(error) => error.message.clone(),
        None => format!("this import is {}", status.as_str()),
    }
}

/// The status a format error is answered with.
pub fn format_status(error: &FormatError) -> StatusCode {
    match error.code() {
        "not_zip" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "too_large" | "too_many_entries" | "decompressed_cap" => StatusCode::PAYLOAD_TOO_LARGE,
        "malformed" | "wrong_kind" => StatusCode::BAD_REQUEST,
        "archive_mismatch" | "binding_mismatch" => StatusCode::CONFLICT,
        "io" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<crate::storage::sqlite::DbError> for AppError {
    fn from(error: crate::storage::sqlite::DbError) -> Self {
        Self::internal(error)
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Format(FormatError::Io(inner)) = &self {
            return Self::internal(inner).into_response();
        }
        let next_batch = match &self {
            Self::BatchGap { next } => Some(*next),
            _ => None,
        };
        let body = ErrorAnswer { code: self.code().to_string(), error: self.to_string(), next_batch };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(wait) = self.retry_after() {
            let seconds = wait.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        response
    }
}
