//! The HTTP edge's one error type: a status, a stable code and a sentence, answered as
//! `{"code": ..., "error": ...}`. Format errors keep lvbak-core's codes; storage and other
//! internal failures are logged and answered with a generic `internal`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lvbak_core::FormatError;
use serde_json::json;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_string(), message: message.into() }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// An internal failure: logged in full, answered without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {error}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server")
    }

    /// The status a format error is answered with.
    pub fn status_of(error: &FormatError) -> StatusCode {
        match error.code() {
            "not_zip" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "too_large" | "too_many_entries" | "decompressed_cap" => StatusCode::PAYLOAD_TOO_LARGE,
            "malformed" | "wrong_kind" => StatusCode::BAD_REQUEST,
            "archive_mismatch" | "binding_mismatch" => StatusCode::CONFLICT,
            "io" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl From<FormatError> for AppError {
    fn from(error: FormatError) -> Self {
        if let FormatError::Io(inner) = &error {
            return Self::internal(inner);
        }
        Self::new(Self::status_of(&error), error.code(), error.to_string())
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
        (self.status, Json(json!({"code": self.code, "error": self.message}))).into_response()
    }
}
