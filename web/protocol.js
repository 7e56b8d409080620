// The words the page, its Worker and the server agree on, each spelled once here: the kinds
// of message between the page and the Worker (worker.js), an import job's statuses and
// which of them are final, the upload's progress phases, the export's progress events and
// an embeddings run's states. The page's modules and the Worker both import this file.

/** Every message between the page and the Worker has one of these `kind`s. */
export const Kind = Object.freeze({
  // The page asks; the Worker answers with the kinds after the arrow.
  OPEN: "open", // {file, seq} → REPORT {seq, report} or REFUSED {seq, error}
  TICKET: "ticket", // {text} → TICKET {result} or TICKET_REFUSED {error}
  SKIP_SECRETS: "skipSecrets", // (no answer)
  UPLOAD: "upload", // {resume} → JOB {jobId}, PROGRESS {progress}…, COMPLETE or FAILED {error}
  // A restore preview: the archive sent as an upload is, to a preview job that writes nothing
  // and answers what a restore would do (the server's RestorePreview); no API keys are sent.
  PREVIEW: "preview", // → PROGRESS {progress}…, PREVIEWED or PREVIEW_FAILED {error}
  VERSION: "version", // → VERSION {version}: lvbak-core's version
  // A selective restore: the picked items (`KIND:ID`; none clears the selection), whose
  // closure over the archive is what the next preview and upload send (never API keys);
  // `asCopy` restores them as a copy beside the account's version.
  SELECT: "select", // {seq, picks, withoutChats, asCopy} → SELECTED {seq, tables: {TABLE: rows}} or SELECT_FAILED {seq, error}
  // The Worker's answers.
  REPORT: "report",
  REFUSED: "refused",
  TICKET_REFUSED: "ticketRefused",
  JOB: "job",
  PROGRESS: "progress",
  COMPLETE: "complete", // {jobId, status, report, seconds, wireBytes, waitMs}
  FAILED: "failed", // {jobId?, error}
  PREVIEWED: "previewed", // {preview, report, seconds, wireBytes, waitMs}
  PREVIEW_FAILED: "previewFailed",
  SELECTED: "selected",
  SELECT_FAILED: "selectFailed",
  // The Worker threw outside a request's own handling ({error}); its Wasm module still works.
  CRASHED: "crashed",
  // The Wasm module trapped ({error}): the Worker closes, and the page starts a new one.
  FATAL: "fatal",
  // The archive explorer's requests: each is answered by a message of the same kind (or
  // EXPLORE_FAILED {request, name, error}); lists, transcripts and books a page at a time.
  EXPLORE: "explore", // → EXPLORE_PROGRESS {table}…, EXPLORED {index}
  EXPLORE_LIST: "exploreList", // {list, characterId, start, count} → {result}
  EXPLORE_CHAT: "exploreChat", // {chatId, start, count} → {result}
  EXPLORE_BOOK: "exploreBook", // {bookId, start, count} → {result}
  EXPLORE_FILE: "exploreFile", // {name} → {name, bytes}
  EXPLORE_SEARCH: "exploreSearch", // {query, seq, limit} → EXPLORE_HITS {seq, hits}…, EXPLORE_SEARCH_DONE {seq, count}
  EXPLORE_PROGRESS: "exploreProgress",
  EXPLORED: "explored",
  EXPLORE_HITS: "exploreHits",
  EXPLORE_SEARCH_DONE: "exploreSearchDone",
  EXPLORE_FAILED: "exploreFailed",
  // Character cards, built (or read back) by the Worker from a local file. Failures answer
  // CARD_FAILED {seq, request, characterId?, error}.
  CARD: "card", // {characterId, format, seq} → CARD {seq, format, bytes, fileName, name, buildMs, wasmMemoryBytes}
  CARDS_ZIP: "cardsZip", // {characterIds, format, seq} → CARDS_PROGRESS {seq, done, total}…, CARDS_ZIP {seq, format, bytes, cards, skipped}
  READ_CARD: "readCard", // {file, seq} → CARD_READ {seq, card}: lvbak-core's CardView
  CARDS_PROGRESS: "cardsProgress",
  CARD_READ: "cardRead",
  CARD_FAILED: "cardFailed",
});

/** The explorer's requests, which the Worker hands to its explorer. */
export const EXPLORER_REQUESTS = new Set([
  Kind.EXPLORE,
  Kind.EXPLORE_LIST,
  Kind.EXPLORE_CHAT,
  Kind.EXPLORE_BOOK,
  Kind.EXPLORE_FILE,
  Kind.EXPLORE_SEARCH,
]);

/** The card requests, which the Worker hands to its card builder. */
export const CARD_REQUESTS = new Set([Kind.CARD, Kind.CARDS_ZIP, Kind.READ_CARD]);

/** The kinds of item a selective restore or export picks (`KIND:ID`), as lvbak-core's
 * `ItemKind` words them. */
export const ItemKind = Object.freeze({
  CHARACTER: "character",
  CHAT: "chat",
  PERSONA: "persona",
  WORLD_BOOK: "world_book",
  PRESET: "preset",
});

/** The most items one selective restore or export may pick (the server refuses more). */
export const MAX_PICKS = 1000;

/** An import job's status, as the server's `…/import/{job}/status` answers name it
 * (lvbak-server's `import::jobs::Status`). */
export const JobStatus = Object.freeze({
  QUEUED: "queued",
  AWAITING_TICKET: "awaiting_ticket",
  RUNNING: "running",
  COMPLETE: "complete",
  FAILED: "failed",
  CANCELLED: "cancelled",
});

/** Whether a job with this status has ended: it takes no more batches. */
export const jobEnded = (status) =>
  status === JobStatus.COMPLETE || status === JobStatus.FAILED || status === JobStatus.CANCELLED;

/** The phase of the Worker's upload progress: lvbak-core's `UploadProgress` phases, then
 * the Worker's own COMMITTING while the server applies the last batch (or, for a preview,
 * compares the archive with the account). */
export const UploadPhase = Object.freeze({
  TABLES: "tables",
  VECTORS: "vectors",
  FILES: "files",
  SECRETS: "secrets",
  SENT: "sent",
  COMMITTING: "committing",
});

/** What a restore would do with a row, file or item of an archive, as a restore preview
 * (the server's `RestorePreview`) names it: lvbak-core's `RestoreState`. */
export const RestoreState = Object.freeze({
  NEW: "new", // not in the account: never here, or deleted since the backup
  UNCHANGED: "unchanged",
  DIFFERS: "differs", // here in another version; a restore keeps the account's
  REMAPPED: "remapped", // its id is another account's: restored as a copy under a new id
  REFUSED: "refused",
});

/** The export's progress events, named by phase on its event stream. */
export const ExportPhase = Object.freeze({
  TABLE: "table",
  TABLE_DONE: "table_done",
  FILES: "files",
  FILES_DONE: "files_done",
  LANCEDB: "lancedb",
  LANCEDB_TABLE_DONE: "lancedb_table_done",
  SECRETS: "secrets",
  COMPLETE: "complete",
  FAILED: "failed",
  CANCELLED: "cancelled",
});

/** Whether the export's stream ends with this phase. */
export const exportEnded = (phase) =>
  phase === ExportPhase.COMPLETE || phase === ExportPhase.FAILED || phase === ExportPhase.CANCELLED;

/** An embeddings run's status. A run that stopped on an error has the error's code as its
 * status instead (`unauthorized`, `unreachable`, …). */
export const EmbeddingsRun = Object.freeze({
  IDLE: "idle",
  RUNNING: "running",
  COMPLETE: "complete",
  CANCELLED: "cancelled",
});
