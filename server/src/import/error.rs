//! [`ImportError`]: why an import stopped — the archive refused, storage, the quota, a
//! timeout, a cancel — and the failure a job that stopped with it records ([`JobFailure`]).

use std::io;

use lvbak_core::FormatError;

use crate::failure::{JobFailure, OverQuota, QuotaExceeded};
use crate::storage::backend::vector_storage::VectorError;
use crate::storage::object_storage::Unavailable;
use crate::storage::sqlite::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Db(DbError),
    #[error(transparent)]
    Vectors(#[from] VectorError),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the import was cancelled")]
    Cancelled,
    /// An upload that stopped coming, or stayed open too long.
    #[error("{0}")]
    TimedOut(String),
    #[error(transparent)]
    QuotaExceeded(QuotaExceeded),
    #[error(transparent)]
    OverQuota(OverQuota),
    /// The instance had no room for what the import must hold.
    #[error("{0}")]
    Busy(&'static str),
    /// A selective restore that is not its picks' closure (why, in words).
    #[error("{0}")]
    OpenSelection(String),
    /// A preview that would hold more rows than it may (the bound).
    #[error("the preview holds at most {0} rows")]
    PreviewTooLarge(u64),
}

impl From<DbError> for ImportError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::QuotaExceeded(exceeded) => Self::QuotaExceeded(exceeded),
            other => Self::Db(other),
        }
    }
}

impl ImportError {
    /// Whether the import stopped because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        let full = |error: &io::Error| error.kind() == io::ErrorKind::StorageFull || error.raw_os_error() == Some(28);
        match self {
            Self::Io(error) | Self::Format(FormatError::Io(error)) => full(error),
            Self::Db(error) => error.is_disk_full(),
            Self::Vectors(error) => error.is_disk_full(),
            _ => false,
        }
    }

    /// Whether the import stopped because the object store did not answer.
    pub fn is_storage_unavailable(&self) -> bool {
        match self {
            Self::Io(error) | Self::Format(FormatError::Io(error)) => Unavailable::is(error),
            _ => false,
        }
    }

    /// Why the job fails, as recorded and answered (`None`: it was cancelled). Internal
    /// failures are logged here, with the job's id, and answered without details.
    pub fn into_failure(self, job_id: &str) -> Option<JobFailure> {
        if self.is_disk_full() {
            return Some(JobFailure::DiskFull);
        }
        if self.is_storage_unavailable() {
            tracing::warn!("import {job_id} failed: {self}");
            return Some(JobFailure::StorageUnavailable);
        }
        Some(match self {
            Self::Cancelled => return None,
            Self::Format(error) => JobFailure::Refused { code: error.code(), message: error.to_string() },
            Self::TimedOut(why) => JobFailure::UploadTimedOut(why),
            Self::QuotaExceeded(exceeded) => JobFailure::QuotaExceeded(exceeded),
            Self::OverQuota(over) => JobFailure::OverQuota(over),
            Self::Busy(why) => JobFailure::Busy(why),
            Self::OpenSelection(why) => JobFailure::OpenSelection(why),
            Self::PreviewTooLarge(limit) => JobFailure::PreviewTooLarge(limit),
            internal => {
                tracing::error!("import {job_id} failed: {internal}");
                JobFailure::Internal
            }
        })
    }
}
