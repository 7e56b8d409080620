//! The HTTP protocol between lvbak's clients (the page, the Worker, the CLI, scripts) and
//! its server, as serde types: every answer and every streamed event, defined once. The
//! server writes them, clients read them; the field names are the wire's (camelCase,
//! except the embeddings setting, whose fields keep Lumiverse's snake_case names).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

// ---- errors ---------------------------------------------------------------------------

/// Every refusal: `{code, error}` (a stable code and a sentence), with `nextBatch` when a
/// batch came out of order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorAnswer {
    pub code: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_batch: Option<u64>,
}

// ---- import jobs ----------------------------------------------------------------------

/// Where an import job stands (FORMAT §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    AwaitingTicket,
    Running,
    Complete,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::AwaitingTicket => "awaiting_ticket",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status a recorded name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Queued, Self::AwaitingTicket, Self::Running, Self::Complete, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == name)
    }

    /// Whether the job has ended (and takes nothing more).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Cancelled)
    }
}

/// Why a job failed: its stable code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// What became of the rows of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounts {
    /// New rows, the remapped ones included.
    pub imported: u64,
    /// Of the imported rows, those whose id belonged to another user: imported as copies
    /// under new ids.
    #[serde(default)]
    pub remapped: u64,
    pub skipped: u64,
    pub merged: u64,
    pub rejected: u64,
    /// Bytes the imported rows count for against the account's quota (not answered).
    #[serde(skip)]
    pub bytes: u64,
}

impl TableCounts {
    pub fn add(&mut self, other: TableCounts) {
        self.imported += other.imported;
        self.remapped += other.remapped;
        self.skipped += other.skipped;
        self.merged += other.merged;
        self.rejected += other.rejected;
        self.bytes += other.bytes;
    }
}

/// Files: what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    pub imported: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub bytes: u64,
}

/// Vectors: restored per table, or why not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorSummary {
    pub restored: bool,
    pub reason: Option<String>,
    pub tables: BTreeMap<String, TableCounts>,
}

/// Secrets: restored, or skipped alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSummary {
    /// Whether a ticket was given and the secrets were applied.
    pub applied: bool,
    pub imported: u64,
    /// Already there (kept).
    pub skipped: u64,
    /// Records that did not decrypt (a bad tag skips that record alone).
    pub rejected: u64,
    pub rejected_keys: Vec<String>,
}

/// Everything an import did (the `complete` event's summary).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    pub tables: BTreeMap<String, TableCounts>,
    pub files: FileSummary,
    pub vectors: VectorSummary,
    pub secrets: SecretSummary,
    /// Tables in the archive that are not applied (unknown, or never travelling).
    pub skipped_tables: Vec<String>,
    /// Per table, the keys its rows carried that the table has no column for: values that
    /// could not be kept. `…` last when there were more than are listed.
    pub dropped_columns: BTreeMap<String, Vec<String>>,
    pub scrubbed_references: u64,
    pub revectorized: u64,
}

impl ImportSummary {
    /// What a user should know about this import, in plain words: rows copied under new
    /// ids because their ids belonged to another account of this server.
    pub fn notices(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, counts)| counts.remapped > 0)
            .map(|(table, counts)| {
                let (rows, were, copies, them) = match counts.remapped {
                    1 => ("row", "was", "a copy", "it"),
                    _ => ("rows", "were", "copies", "them"),
                };
                format!(
                    "{} {rows} of {} already existed in another account on this server and {were} imported as \
                     {copies} (with new ids; everything in this archive that refers to {them} was updated)",
                    counts.remapped,
                    table.replace('_', " ")
                )
            })
            .collect()
    }
}

/// Restored secrets as a status lists them beside the tables (as Lumiverse reports them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretCounts {
    pub imported: u64,
    pub skipped: u64,
    pub merged: u64,
    pub rejected: u64,
}

/// One line of a status's `summary`: a table's counts, or the secrets' (read back as the
/// secrets' only when it has exactly their fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SummaryLine {
    Secrets(SecretCounts),
    Table(TableCounts),
}

/// A ticket's use as a job records it (FORMAT §6: reuse is an advisory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketUse {
    pub accepted: bool,
    pub was_reused: bool,
    pub previously_consumed_at: Option<i64>,
    pub uses: i64,
}

/// The embedding configuration an archive's manifest names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingConfigReport {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub dimension: Option<u32>,
}

/// A manifest as a status shows it, bounded whatever the archive says: counts of known
/// tables only, the first missing files, strings cut short.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestReport {
    pub schema_version: i64,
    pub producer: String,
    pub exported_at: Option<i64>,
    pub archive_id: String,
    pub producer_version: Option<String>,
    pub ndjson_format_version: Option<i64>,
    pub include_vectors: bool,
    pub embedding_config: EmbeddingConfigReport,
    pub counts: BTreeMap<String, u64>,
    pub missing_files: Vec<String>,
    pub missing_files_count: usize,
    pub has_encrypted_secrets: bool,
    pub secrets_count: u64,
}

/// What an ended import did, as a status answers it: per table (and `secrets`, as
/// Lumiverse reports restored keys beside the tables), files, vectors, secrets, what was
/// not applied, notices in words.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryReport {
    pub summary: BTreeMap<String, SummaryLine>,
    pub file_summary: FileSummary,
    pub vector_summary: VectorSummary,
    pub secret_summary: SecretSummary,
    pub skipped_tables: Vec<String>,
    pub dropped_columns: BTreeMap<String, Vec<String>>,
    pub notices: Vec<String>,
    pub scrubbed_references: u64,
    pub revectorized: u64,
}

impl From<&ImportSummary> for SummaryReport {
    fn from(summary: &ImportSummary) -> Self {
        let mut lines: BTreeMap<String, SummaryLine> =
            summary.tables.iter().map(|(table, counts)| (table.clone(), SummaryLine::Table(*counts))).collect();
        if summary.secrets.applied {
            let secrets = &summary.secrets;
            lines.insert(
                "secrets".into(),
                SummaryLine::Secrets(SecretCounts {
                    imported: secrets.imported,
                    skipped: secrets.skipped,
                    merged: 0,
                    rejected: secrets.rejected,
                }),
            );
        }
        Self {
            summary: lines,
            file_summary: summary.files,
            vector_summary: summary.vectors.clone(),
            secret_summary: summary.secrets.clone(),
            skipped_tables: summary.skipped_tables.clone(),
            dropped_columns: summary.dropped_columns.clone(),
            notices: summary.notices(),
            scrubbed_references: summary.scrubbed_references,
            revectorized: summary.revectorized,
        }
    }
}

/// `GET /api/v1/user-data/import/:jobId/status` (and a batch commit's answer): where the
/// job stands and, once it completed, what it did. The same report is recorded when it
/// ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReport {
    pub job_id: String,
    pub status: JobStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub manifest: Option<ManifestReport>,
    #[serde(default)]
    pub secrets_count: usize,
    #[serde(default)]
    pub ticket: Option<TicketUse>,
    pub error: Option<JobError>,
    /// Present once the job completed.
    #[serde(flatten, default)]
    pub outcome: Option<SummaryReport>,
    /// A batch import's: the batch expected next, the key secrets are sealed to, and how
    /// many files the server said it holds (their names: `held-files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_batch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_files: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpke_public_key: Option<String>,
}

/// `POST /api/v1/user-data/import` (a raw upload): `202`, the job and its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobAccepted {
    pub job_id: String,
    pub status: JobStatus,
}

/// `POST …/cancel`: whether a running job was asked to stop, and its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub cancelled: bool,
    pub status: Option<JobStatus>,
}

/// `POST …/skip-ticket`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSkipped {
    pub skipped: bool,
}

// ---- batch imports --------------------------------------------------------------------

/// `POST /api/v1/user-data/import/batches`: `201`, the job, whether vectors would be
/// taken, the key to seal secrets to, and which of the archive's files the account holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchJobOpened {
    pub job_id: String,
    pub status: JobStatus,
    pub accept_vectors: bool,
    pub vector_reason: Option<String>,
    pub hpke_public_key: String,
    pub next_batch: u64,
    pub max_batch_bytes: usize,
    pub held_files: Vec<String>,
}

/// `PUT …/batches/:n`: the batch taken (a replay answers the same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAccepted {
    pub batch: u64,
    pub accepted: bool,
    pub next_batch: u64,
}

/// `POST …/vectors-check`: whether the archive's vectors will be taken, or why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VectorsCheck {
    pub accept_vectors: bool,
    pub vector_reason: Option<String>,
}

/// `GET …/held-files`: the files the server said it holds when the job opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldFiles {
    pub held_files: Vec<String>,
}

/// `GET …/held-rows`, as written (streamed: see the server's `write_held_rows`): per table
/// the base64 of the 8-byte little-endian hashes of the account's row ids, and the tables
/// the account had no rows of when the job began.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRowsAnswer {
    pub tables: BTreeMap<String, String>,
    #[serde(default)]
    pub fresh: Option<Vec<String>>,
}

/// `POST …/commit` `{batches}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    pub batches: u64,
}

// ---- restore preview ------------------------------------------------------------------

/// What a restore would do with one row, file or item of an archive, as the account is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// The account does not have it (never had it, or deleted it since: without
    /// tombstones, both look alike).
    New,
    /// The account has it as the archive has it.
    Unchanged,
    /// The account has it in another version; a restore keeps the account's.
    Differs,
    /// Its id is another account's: it would be restored as a copy under a new id.
    Remapped,
    /// A restore would refuse it (it belongs under a row that is not the account's).
    Refused,
}

/// How many rows (or files) of one table would be in each [`RestoreState`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub new: u64,
    pub unchanged: u64,
    pub differs: u64,
    pub remapped: u64,
    pub refused: u64,
}

impl StateCounts {
    pub fn count(&mut self, state: RestoreState) {
        *match state {
            RestoreState::New => &mut self.new,
            RestoreState::Unchanged => &mut self.unchanged,
            RestoreState::Differs => &mut self.differs,
            RestoreState::Remapped => &mut self.remapped,
            RestoreState::Refused => &mut self.refused,
        } += 1;
    }

    pub fn total(&self) -> u64 {
        self.new + self.unchanged + self.differs + self.remapped + self.refused
    }
}

/// The things a user picks and recognises in an archive (a restore preview's items, the
/// `KIND` of a selection's `KIND:ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Character,
    Chat,
    Persona,
    WorldBook,
    Preset,
}

impl ItemKind {
    pub const ALL: [ItemKind; 5] = [Self::Character, Self::Chat, Self::Persona, Self::WorldBook, Self::Preset];

    /// The word used in `KIND:ID` (the wire's name).
    pub fn word(self) -> &'static str {
        match self {
            Self::Character => "character",
            Self::Chat => "chat",
            Self::Persona => "persona",
            Self::WorldBook => "world_book",
            Self::Preset => "preset",
        }
    }

    /// The registry table an item of this kind is a row of.
    pub fn table(self) -> &'static str {
        match self {
            Self::Character => "characters",
            Self::Chat => "chats",
            Self::Persona => "personas",
            Self::WorldBook => "world_books",
            Self::Preset => "presets",
        }
    }

    pub fn of_table(table: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.table() == table)
    }
}

/// One item of the archive and what a restore would do with it. A chat differs when any of
/// its own rows (the chat, its messages) differs from the account's or is not there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewItem {
    pub kind: ItemKind,
    pub id: String,
    pub name: String,
    pub state: RestoreState,
    /// For an item that differs: what differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs: Option<ItemDifference>,
}

/// What differs between the archive's version of an item and the account's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDifference {
    /// The item's own columns whose values differ (`name`, `description`, …).
    pub columns: Vec<String>,
    /// A chat's messages, as the archive has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessageTally>,
}

/// A chat's messages: how many the archive has and the account has, how many of the
/// archive's the account has in another version (edited since) or lacks (deleted since, or
/// never had), and each side's last message time (`send_date`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageTally {
    pub archive: u64,
    pub account: u64,
    pub edited: u64,
    pub missing: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_last_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_last_at: Option<i64>,
}

/// `lvbak import --dry-run --json`: what restoring an archive would do, before anything is
/// written (issue 23's CLI surface).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePreview {
    pub tables: BTreeMap<String, StateCounts>,
    pub files: StateCounts,
    pub items: Vec<PreviewItem>,
}

// ---- exports --------------------------------------------------------------------------

/// `GET /api/v1/user-data/items?kind=KIND&start=N&count=N`: a page of the account's own
/// items of one kind (what the page lists to pick a selective export from), in the order
/// they are stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountItems {
    pub kind: ItemKind,
    /// How many items of the kind the account has.
    pub total: u64,
    pub start: u64,
    pub items: Vec<AccountItem>,
}

/// One of the account's items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountItem {
    pub id: String,
    pub name: String,
}

/// `POST /api/v1/user-data/export/prepare`: where to fetch the archive (and its ticket,
/// whose JSON is answered here once and never stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPrepared {
    pub archive_id: String,
    pub archive_url: String,
    pub archive_filename: String,
    pub ticket_filename: Option<String>,
    pub ticket: Option<serde_json::Value>,
    pub secrets_count: usize,
    pub unreachable_secrets: Vec<String>,
    pub events_url: String,
}

/// What a finished export wrote (its `complete` event).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportOutcome {
    pub rows: u64,
    pub files: u64,
    pub missing_files: Vec<String>,
    pub vectors: BTreeMap<String, u64>,
    pub secrets: u64,
    pub bytes: u64,
    pub seconds: f64,
}

// ---- events ---------------------------------------------------------------------------

/// Everything an export or import tells its watchers (Server-Sent Events named by their
/// phase), with the phase as `phase` and fields in camelCase. (Written only: an import's
/// and an export's `complete` share the phase name, so the phase alone cannot tell them
/// apart when read.)
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum Event {
    /// A raw upload was staged and its container and manifest checked.
    Verifying {
        done: bool,
    },
    AwaitingTicket {
        secrets_count: usize,
    },
    TicketAccepted {
        was_reused: bool,
    },
    TicketSkipped,
    Running,
    /// A restore preview's answer is ready (its commit answers it; nothing was written).
    Previewed,
    Extracted,
    Table {
        table: String,
        processed: u64,
    },
    TableDone {
        table: String,
        counts: TableCounts,
    },
    Files {
        processed: u64,
        total: u64,
    },
    FilesDone {
        processed: u64,
        total: u64,
        summary: FileSummary,
    },
    Lancedb {
        table: String,
        processed: u64,
    },
    LancedbTableDone {
        table: String,
    },
    LancedbSkipped {
        reason: String,
    },
    /// An export writes the secrets entries.
    Secrets {
        count: usize,
    },
    SecretsApplyStart {
        count: usize,
    },
    SecretsApplyDone {
        imported: u64,
        skipped: u64,
    },
    #[serde(rename = "complete")]
    ImportComplete {
        summary: Box<ImportSummary>,
    },
    #[serde(rename = "complete")]
    ExportComplete(ExportOutcome),
    Failed {
        code: String,
        error: String,
    },
    Cancelled {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Event {
    /// Whether nothing follows this event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::ImportComplete { .. } | Self::ExportComplete(_) | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }
}

// ---- accounts -------------------------------------------------------------------------

/// An account as answered (never with its password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub username: String,
}

/// `POST /api/v1/auth/login`: a bearer token (also set as the session cookie).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub token: String,
    pub user: Account,
}

/// `GET /api/v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub version: String,
    /// The part of the storage that does not answer (`object_store`), when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
}

// ---- embeddings -----------------------------------------------------------------------

/// The embeddings setting as it takes effect (Lumiverse's `embeddingConfig`, snake_case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSettings {
    pub enabled: bool,
    pub provider: String,
    pub api_url: String,
    pub model: String,
    pub dimensions: Option<u32>,
    pub send_dimensions: bool,
    pub batch_size: usize,
    /// Seconds per request; 0 means the longest the instance allows.
    pub request_timeout: u64,
    pub vectorize_world_books: bool,
    pub vectorize_chat_messages: bool,
    pub vectorize_chat_documents: bool,
    /// Restored from a backup and not yet confirmed in this account: nothing is sent
    /// under it (`enabled` reads false) until the user saves it.
    pub restored: bool,
}

/// `GET/PUT /api/v1/embeddings/config`: the setting, whether a key may be sent to its
/// endpoint (never the key), and the endpoint requests go to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsConfig {
    #[serde(flatten)]
    pub settings: EmbeddingSettings,
    pub has_api_key: bool,
    /// Where a stored key that may not go to `endpoint` may go (`null`: nowhere yet; a key
    /// restored from a backup). Absent when there is no such key.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub key_saved_for: Option<Option<String>>,
    pub endpoint: String,
}

/// `POST /api/v1/embeddings/test`: a vector came back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionTested {
    pub ok: bool,
    pub dimensions: usize,
    pub model: String,
    pub endpoint: String,
}

/// Where a user's re-vectorization run stands (`GET /api/v1/embeddings/status`, its
/// events, and `POST …/start`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// `idle`, `running`, `complete`, `cancelled`, or why it stopped: `unauthorized`,
    /// `dimension_mismatch`, `provider_error`, `unreachable`, `private_host`,
    /// `quota_exceeded`, `failed`.
    pub status: String,
    /// Rows embedded by this run.
    pub done: u64,
    /// Rows still waiting.
    pub pending: u64,
    /// `done + pending` when the run started.
    pub total: u64,
    /// Rows the run could not embed before it stopped.
    pub failed: u64,
    pub error: Option<String>,
    /// Rows per second over the run so far.
    pub rate: f64,
    pub batch_size: usize,
    pub model: String,
}

/// `POST /api/v1/embeddings/cancel`: whether a run was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCancelled {
    pub cancelled: bool,
}

/// `Option<Option<T>>` as "absent", `null` and a value.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The wire's shapes, spelled out: a change here is a change every client sees.
    #[test]
    fn answers_and_events_keep_their_wire_shape() {
        let error = ErrorAnswer { code: "batch_gap".into(), error: "batch 3 is next".into(), next_batch: Some(3) };
        assert_eq!(
            serde_json::to_value(&error).ok(),
            Some(json!({"code": "batch_gap", "error": "batch 3 is next", "nextBatch": 3}))
        );
        let plain = ErrorAnswer { next_batch: None, ..error };
        assert_eq!(serde_json::to_value(&plain).ok(), Some(json!({"code": "batch_gap", "error": "batch 3 is next"})));
        let event = Event::TableDone {
            table: "chats".into(),
            counts: TableCounts { imported: 2, bytes: 9, ..TableCounts::default() },
        };
        assert_eq!(
            serde_json::to_value(&event).ok(),
            Some(
                json!({"phase": "table_done", "table": "chats", "counts": {"imported": 2, "remapped": 0, "skipped": 0, "merged": 0, "rejected": 0}})
            )
        );
        assert_eq!(serde_json::to_value(Event::Cancelled { reason: None }).ok(), Some(json!({"phase": "cancelled"})));
        assert_eq!(
            serde_json::to_value(Event::AwaitingTicket { secrets_count: 2 }).ok(),
            Some(json!({"phase": "awaiting_ticket", "secretsCount": 2}))
        );
        let summary: BTreeMap<String, SummaryLine> = [
            ("chats".to_string(), SummaryLine::Table(TableCounts { imported: 1, ..TableCounts::default() })),
            ("secrets".to_string(), SummaryLine::Secrets(SecretCounts { imported: 2, ..SecretCounts::default() })),
        ]
        .into();
        assert_eq!(
            serde_json::to_value(&summary).ok(),
            Some(json!({"chats": {"imported": 1, "remapped": 0, "skipped": 0, "merged": 0, "rejected": 0},
                        "secrets": {"imported": 2, "skipped": 0, "merged": 0, "rejected": 0}}))
        );
        let status = serde_json::to_value(JobStatus::AwaitingTicket).ok();
        assert_eq!(status, Some(json!("awaiting_ticket")));
        assert_eq!(JobStatus::parse("awaiting_ticket"), Some(JobStatus::AwaitingTicket));
        assert!(JobStatus::Cancelled.is_final() && !JobStatus::Running.is_final());
    }

    #[test]
    fn a_key_saved_elsewhere_is_absent_null_or_a_url() {
        let settings = EmbeddingSettings {
            enabled: false,
            provider: "openai".into(),
            api_url: "https://x".into(),
            model: "m".into(),
            dimensions: None,
            send_dimensions: false,
            batch_size: 50,
            request_timeout: 120,
            vectorize_world_books: true,
            vectorize_chat_messages: false,
            vectorize_chat_documents: true,
            restored: true,
        };
        let answer = |key_saved_for| EmbeddingsConfig {
            settings: settings.clone(),
            has_api_key: false,
            key_saved_for,
            endpoint: "https://x/embeddings".into(),
        };
        let read = |config: EmbeddingsConfig| serde_json::to_value(config).unwrap_or_default();
        assert!(read(answer(None)).get("key_saved_for").is_none());
        assert_eq!(read(answer(Some(None)))["key_saved_for"], json!(null));
        assert_eq!(read(answer(Some(Some("u".into()))))["key_saved_for"], json!("u"));
        assert_eq!(read(answer(None))["restored"], json!(true));
        let back: EmbeddingsConfig = serde_json::from_value(read(answer(Some(None)))).unwrap_or_else(|_| answer(None));
        assert_eq!(back.key_saved_for, Some(None));
    }
}
