//! What ends an import job without completing it ([`JobFailure`]), and the two quota
//! refusals every layer shares (storage, the import engine, the HTTP edge, the runs) —
//! each defined once, each with one stable code.

use lvbak_core::protocol::JobError;

/// Writing would take the account past its disk quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this needs {needed} more bytes; the account uses {used} of its {quota}-byte quota")]
pub struct QuotaExceeded {
    pub quota: u64,
    pub used: u64,
    pub needed: u64,
}

/// The account already keeps more than its quota (a smaller quota, or a fairer count, put
/// it over): it keeps everything and imports nothing until it is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the account uses {used} bytes, more than its {quota}-byte quota: nothing can be imported until it is under")]
pub struct OverQuota {
    pub quota: u64,
    pub used: u64,
}

/// Why an import job failed. Recorded with the job and answered by its status as
/// `{code, message}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobFailure {
    /// The archive, a batch or a secret was refused: lvbak-core's code and its sentence.
    Refused {
        code: &'static str,
        message: String,
    },
    /// Over the quota: nothing of the import was kept.
    QuotaExceeded(QuotaExceeded),
    OverQuota(OverQuota),
    /// The server's disk filled: nothing of the import was kept.
    DiskFull,
    /// The upload stopped coming, or stayed open too long (why, in words).
    UploadTimedOut(String),
    /// No ticket or skip decision came in time.
    TicketTimeout,
    /// The instance had no room for what the import must hold (why, in words).
    Busy(&'static str),
    /// The server stopped during the import.
    Interrupted,
    /// The object store did not answer: nothing of the import was kept.
    StorageUnavailable,
    /// A selective restore brought rows its picks' closure does not hold, or a pick that
    /// never came (why, in words): nothing of the import was kept.
    OpenSelection(String),
    /// A restore preview that would hold more than this many rows in memory.
    PreviewTooLarge(u64),
    /// The import could not start or finish (logged where it happened; no details here).
    Internal,
}

impl JobFailure {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused { code, .. } => code,
            Self::QuotaExceeded(_) | Self::OverQuota(_) => "quota_exceeded",
            Self::DiskFull => "disk_full",
            Self::UploadTimedOut(_) => "upload_timeout",
            Self::TicketTimeout => "ticket_timeout",
            Self::Busy(_) => "busy",
            Self::Interrupted => "interrupted",
            Self::StorageUnavailable => "storage_unavailable",
            Self::OpenSelection(_) => "open_selection",
            Self::PreviewTooLarge(_) => "preview_too_large",
            Self::Internal => "internal",
        }
    }

    /// The failure in words, fit for the user.
    pub fn message(&self) -> String {
        match self {
            Self::Refused { message, .. } => message.clone(),
            Self::QuotaExceeded(exceeded) => format!("{exceeded}; nothing of this import was kept"),
            Self::OverQuota(over) => over.to_string(),
            Self::DiskFull => "the server's disk is full; nothing of this import was kept — try again later".into(),
            Self::UploadTimedOut(why) => format!("the upload stopped: {why}; import the archive again"),
            Self::TicketTimeout => "no ticket or skip decision came in time; import the archive again".into(),
            Self::Busy(why) => format!("{why}; import the archive again later"),
            Self::Interrupted => "the server stopped during this import; import the archive again to finish \
                                  (rows and files already restored are kept and skipped)"
                .into(),
            Self::StorageUnavailable => {
                "the server's file storage did not answer; nothing of this import was kept — try again later".into()
            }
            Self::OpenSelection(why) => format!("{why}; nothing of this import was kept"),
            Self::PreviewTooLarge(limit) => format!(
                "this archive adds more than {limit} rows, more than a preview holds; preview picked items instead, or restore it"
            ),
            Self::Internal => "the server could not finish the import".into(),
        }
    }

    /// As a status answers it.
    pub fn to_error(&self) -> JobError {
        JobError { code: self.code().to_string(), message: self.message() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_code_and_words() {
        let exceeded = QuotaExceeded { quota: 10, used: 8, needed: 5 };
        assert_eq!(JobFailure::QuotaExceeded(exceeded).code(), "quota_exceeded");
        assert_eq!(
            JobFailure::QuotaExceeded(exceeded).message(),
            "this needs 5 more bytes; the account uses 8 of its 10-byte quota; nothing of this import was kept"
        );
        assert_eq!(JobFailure::Refused { code: "bad_json", message: "x".into() }.to_error().code, "bad_json");
        assert_eq!(JobFailure::Interrupted.code(), "interrupted");
        assert_eq!(JobFailure::StorageUnavailable.code(), "storage_unavailable");
    }
}
