//! The one error type of the format core: every variant carries its evidence and a stable
//! `code()` that the CLI, the HTTP API and the browser show unchanged.

use std::io;

/// Result alias used throughout the core.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Everything that can make an archive, a row or a ticket unacceptable.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    // --- container -------------------------------------------------------------------
    #[error("not a ZIP archive: the file starts with {found}, not PK\\x03\\x04")]
    NotZip { found: String },
    #[error("the archive is truncated: {what}")]
    Truncated { what: String },
    #[error("the archive is damaged: {what}")]
    CorruptArchive { what: String },
    #[error("{what} is {actual} bytes, over the {limit}-byte cap")]
    TooLarge { what: String, limit: u64, actual: u64 },
    #[error("the archive has at least {actual} entries; the cap is {limit}")]
    TooManyEntries { limit: u64, actual: u64 },
    #[error("decompressing the archive would produce more than {limit} bytes")]
    DecompressedCap { limit: u64 },

    // --- entry names -----------------------------------------------------------------
    #[error("entry {name:?} climbs out of its folder")]
    PathTraversal { name: String },
    #[error("entry {name:?} is an absolute path")]
    AbsolutePath { name: String },
    #[error("entry {name:?} is not a valid name: {reason}")]
    BadEntryName { name: String, reason: String },
    #[error("entry {name:?} is not under any known prefix")]
    UnknownPrefix { name: String },
    #[error("entry {name:?} appears more than once")]
    DuplicateEntry { name: String },
    #[error("entry {name:?} is a symbolic link")]
    SymlinkEntry { name: String },
    #[error("entry {name:?} is a directory")]
    DirectoryEntry { name: String },

    // --- entry headers and data ------------------------------------------------------
    #[error("entries {first:?} and {second:?} share bytes")]
    OverlappingEntries { first: String, second: String },
    #[error("entry {name:?}: local header and central directory disagree on {field}")]
    HeaderMismatch { name: String, field: String },
    #[error("entry {name:?} uses compression method {method}; only stored (0) and deflated (8) are allowed")]
    UnsupportedCompression { name: String, method: u16 },
    #[error("entry {name:?} is encrypted")]
    EncryptedEntry { name: String },
    #[error("entry {name:?} inflates past the {claimed} bytes its header claims")]
    SizeMismatch { name: String, claimed: u64, actual: u64 },
    #[error("entry {name:?} fails its CRC-32 check")]
    CrcMismatch { name: String },
    #[error("entry {name:?} has damaged compressed data: {detail}")]
    CorruptEntry { name: String, detail: String },

    // --- NDJSON ----------------------------------------------------------------------
    #[error("{entry} line {line}: longer than the {limit}-byte line cap")]
    LineTooLong { entry: String, line: u64, limit: u64 },
    #[error("{entry} line {line}: {detail}")]
    BadJson { entry: String, line: u64, detail: String },

    // --- manifest --------------------------------------------------------------------
    #[error("the archive has no manifest.json")]
    NoManifest,
    #[error("{entry} is not valid: {detail}")]
    BadManifest { entry: String, detail: String },
    #[error("the archive was made by {producer:?}, not by lumiverse")]
    WrongProducer { producer: String },
    #[error("{field} {found} is not supported (this build reads {supported})")]
    UnsupportedVersion { field: String, found: String, supported: String },

    // --- secrets and tickets ---------------------------------------------------------
    #[error("the ticket is malformed: {detail}")]
    TicketMalformed { detail: String },
    #[error("the file is a {kind:?}, not a lumiverse-decryption-ticket")]
    TicketWrongKind { kind: String },
    #[error("the ticket is for archive {ticket}, but this archive is {archive}")]
    ArchiveMismatch { ticket: String, archive: String },
    #[error("the ticket does not match this archive's secrets: {detail}")]
    BindingMismatch { detail: String },
    #[error("the archive's secrets entries are not valid: {detail}")]
    BadSecrets { detail: String },
    #[error("vector {what} is not valid: {detail}")]
    BadVector { what: String, detail: String },
    #[error("the upload batch is not valid: {detail}")]
    BadBatch { detail: String },

    // --- character cards -------------------------------------------------------------
    #[error("the archive has no character {id:?}")]
    CharacterNotFound { id: String },
    #[error("{what} cannot make a card: {detail}")]
    BadCardData { what: String, detail: String },
    #[error("the picture cannot be made a PNG: {detail}")]
    UnsupportedImage { detail: String },
    #[error("this file is not a character card: {detail}")]
    NotACard { detail: String },
    #[error("the card in {what} is not valid: {detail}")]
    BadCard { what: String, detail: String },
    #[error("PNG chunk {index} (at byte {offset}) is malformed: {detail}")]
    BadPngChunk { index: u64, offset: u64, detail: String },

    // --- reading ---------------------------------------------------------------------
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
}

impl FormatError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotZip { .. } => "not_zip",
            Self::Truncated { .. } => "truncated",
            Self::CorruptArchive { .. } => "corrupt_archive",
            Self::TooLarge { .. } => "too_large",
            Self::TooManyEntries { .. } => "too_many_entries",
            Self::DecompressedCap { .. } => "decompressed_cap",
            Self::PathTraversal { .. } => "path_traversal",
            Self::AbsolutePath { .. } => "absolute_path",
            Self::BadEntryName { .. } => "bad_entry_name",
            Self::UnknownPrefix { .. } => "unknown_prefix",
            Self::DuplicateEntry { .. } => "duplicate_entry",
            Self::SymlinkEntry { .. } => "symlink_entry",
            Self::DirectoryEntry { .. } => "directory_entry",
            Self::OverlappingEntries { .. } => "overlapping_entries",
            Self::HeaderMismatch { .. } => "header_mismatch",
            Self::UnsupportedCompression { .. } => "unsupported_compression",
            Self::EncryptedEntry { .. } => "encrypted_entry",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::CrcMismatch { .. } => "crc_mismatch",
            Self::CorruptEntry { .. } => "corrupt_entry",
            Self::LineTooLong { .. } => "line_too_long",
            Self::BadJson { .. } => "bad_json",
            Self::NoManifest => "no_manifest",
            Self::BadManifest { .. } => "bad_manifest",
            Self::WrongProducer { .. } => "wrong_producer",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::TicketMalformed { .. } => "malformed",
            Self::TicketWrongKind { .. } => "wrong_kind",
            Self::ArchiveMismatch { .. } => "archive_mismatch",
            Self::BindingMismatch { .. } => "binding_mismatch",
            Self::BadSecrets { .. } => "bad_secrets",
            Self::BadVector { .. } => "bad_vector",
            Self::BadBatch { .. } => "bad_batch",
            Self::CharacterNotFound { .. } => "character_not_found",
            Self::BadCardData { .. } => "bad_card_data",
            Self::UnsupportedImage { .. } => "unsupported_image",
            Self::NotACard { .. } => "not_a_card",
            Self::BadCard { .. } => "bad_card",
            Self::BadPngChunk { .. } => "bad_png_chunk",
            Self::Io(_) => "io",
        }
    }

    /// Whether the error is about a decryption ticket rather than the archive itself.
    pub fn is_ticket_error(&self) -> bool {
        matches!(
            self,
            Self::TicketMalformed { .. }
                | Self::TicketWrongKind { .. }
                | Self::ArchiveMismatch { .. }
                | Self::BindingMismatch { .. }
        ) || matches!(self, Self::UnsupportedVersion { field, .. } if field == "ticket version")
    }

    /// Wraps this error so it can travel through `std::io::Read`.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            Self::Io(inner) => inner,
            other => io::Error::other(other),
        }
    }

    /// Recovers a format error that travelled through `std::io::Read`, or wraps a real I/O
    /// error.
    pub fn from_io(error: io::Error) -> Self {
        if error.get_ref().is_some_and(|inner| inner.is::<FormatError>()) {
            if let Some(Ok(inner)) = error.into_inner().map(|boxed| boxed.downcast::<FormatError>()) {
                return *inner;
            }
            // Unreachable: the payload was checked to be a FormatError just above.
            return Self::Io(io::Error::other("format error lost in transit"));
        }
        if error.kind() == io::ErrorKind::UnexpectedEof {
            return Self::Truncated { what: "the data ends early".into() };
        }
        Self::Io(error)
    }
}

impl From<io::Error> for FormatError {
    fn from(error: io::Error) -> Self {
        Self::from_io(error)
    }
}
