// The import card as a state machine. An archive is picked, checked on this device by the
// Worker (or, in a browser without one, by the server after a raw upload), its API keys'
// ticket asked for, then uploaded in batches; the summary shows what was imported. Before
// that, a restore preview may show what a restore would do, with nothing written. The card
// is in one `State` at a time, `NEXT` says where each may go, `go` is the only way to move,
// and `show` is the one place that puts the card's state on the page.
//
// Items picked in the explorer make a selective restore: the Worker works out what they
// need and what belongs to them (their closure over the archive), the card says what will
// be sent, and Preview restore and Upload & import (or the explorer's Restore selected) send
// only that, never API keys. The selection is card data beside the state: while the Worker
// works it out, or when it cannot, nothing may be sent.
//
// An upload cut short (a network error, a reload) is remembered per archive and file in
// localStorage, so picking the same file again offers to resume the job from the server's
// next expected batch. A selective upload is not remembered: it is sent again whole.
import { api, getJson, readJson, refusalOf, refusalWords } from "./api.js";
import { $ } from "./dom.js";
import {
  heldWords,
  leftRowsToEmbed,
  previewProgressWords,
  previewView,
  previewWords,
  progressWords,
  reportView,
  reusedWords,
  selectionWords,
  summaryNotes,
  summaryRows,
  ticketQuestion,
  ticketWords,
} from "./import-views.js";
import { JobStatus, Kind, jobEnded } from "./protocol.js";

const IMPORT_URL = "/api/v1/user-data/import";

/** The card's states. */
export const State = Object.freeze({
  /** No archive picked (or the Worker was restarted). */
  IDLE: "idle",
  /** The Worker reads and checks the archive. */
  CHECKING: "checking",
  /** The Worker refused the archive; the card says why. */
  REFUSED: "refused",
  /** Checked; its API keys wait for the ticket or a skip before anything is sent. */
  NEEDS_TICKET: "needsTicket",
  /** Can be uploaded: checked and decided (or, with no Worker, left to the server). A resume
   * offer, when the server still holds an earlier upload of this file, keeps it here. */
  READY: "ready",
  /** A restore preview: the archive goes to a preview job, which writes nothing. Returns
   * to the state it came from (READY or NEEDS_TICKET). */
  PREVIEWING: "previewing",
  /** Batches (or the raw archive) go to the server. */
  UPLOADING: "uploading",
  /** The raw upload's job asks for the ticket (browsers without a Worker). */
  AWAITING_TICKET: "awaitingTicket",
  /** The upload was cut; its job still takes batches, so the same file resumes it. */
  INTERRUPTED: "interrupted",
  /** The job ended, with its summary shown. */
  COMPLETE: "complete",
  FAILED: "failed",
  CANCELLED: "cancelled",
  /** The Worker failed outside an upload's own error handling. */
  STOPPED: "stopped",
});

/** Where each state may go. IDLE (a new archive picked, a Worker restarted) and STOPPED
 * (the Worker failed) may follow any state, and a state may always stay (new words). */
const NEXT = {
  [State.IDLE]: [State.CHECKING, State.READY],
  [State.CHECKING]: [State.REFUSED, State.NEEDS_TICKET, State.READY],
  [State.REFUSED]: [],
  [State.NEEDS_TICKET]: [State.READY, State.PREVIEWING],
  [State.READY]: [State.UPLOADING, State.PREVIEWING],
  [State.PREVIEWING]: [State.READY, State.NEEDS_TICKET],
  [State.UPLOADING]: [State.AWAITING_TICKET, State.INTERRUPTED, State.COMPLETE, State.FAILED, State.CANCELLED],
  [State.AWAITING_TICKET]: [State.UPLOADING, State.COMPLETE, State.FAILED, State.CANCELLED],
  // Once an upload ended, Upload sends the same archive again, as a new job.
  [State.INTERRUPTED]: [State.UPLOADING],
  [State.COMPLETE]: [State.UPLOADING],
  [State.FAILED]: [State.UPLOADING],
  [State.CANCELLED]: [State.UPLOADING],
  [State.STOPPED]: [],
};

/** What each state shows: whether Upload and Preview restore may be clicked, whether an
 * upload or a preview is under way (the progress bar shown, the file picker locked) and
 * whether it may be cancelled (an upload's job may; a preview's writes nothing), the status
 * word (the import job's own once there is a job; "idle" and "interrupted" are the page's),
 * and whether the ticket question may be answered. */
const VIEW = {
  [State.IDLE]: { upload: false, preview: false, busy: false, cancel: false, status: "idle", ticket: false },
  [State.CHECKING]: { upload: false, preview: false, busy: false, cancel: false, status: "idle", ticket: false },
  [State.REFUSED]: { upload: false, preview: false, busy: false, cancel: false, status: "idle", ticket: false },
  [State.NEEDS_TICKET]: { upload: false, preview: true, busy: false, cancel: false, status: "idle", ticket: true },
  [State.READY]: { upload: true, preview: true, busy: false, cancel: false, status: "idle", ticket: true },
  [State.PREVIEWING]: { upload: false, preview: false, busy: true, cancel: false, status: "idle", ticket: false },
  [State.UPLOADING]: { upload: false, preview: false, busy: true, cancel: true, status: JobStatus.RUNNING, ticket: false },
  [State.AWAITING_TICKET]: { upload: false, preview: false, busy: true, cancel: true, status: JobStatus.RUNNING, ticket: true },
  [State.INTERRUPTED]: { upload: true, preview: false, busy: false, cancel: false, status: "interrupted", ticket: false },
  [State.COMPLETE]: { upload: true, preview: false, busy: false, cancel: false, status: JobStatus.COMPLETE, ticket: false },
  [State.FAILED]: { upload: true, preview: false, busy: false, cancel: false, status: JobStatus.FAILED, ticket: false },
  [State.CANCELLED]: { upload: true, preview: false, busy: false, cancel: false, status: JobStatus.CANCELLED, ticket: false },
  [State.STOPPED]: { upload: false, preview: false, busy: false, cancel: false, status: JobStatus.FAILED, ticket: false },
};

/** The card's data when nothing is picked. */
const EMPTY = Object.freeze({
  state: State.IDLE,
  /** The picked archive, the number of the Worker's reading of it (answers to earlier
   * readings are dropped), and its report. */
  file: null,
  reading: 0,
  report: null,
  /** The Worker's refusal of the archive ({code, message}). */
  refusal: null,
  /** The ticket question and the answer to it, in words ("" when not asked). */
  ticketQuestion: "",
  ticketState: "",
  /** The restore preview of this archive (the server's `RestorePreview`), and the state a
   * preview under way returns to. */
  preview: null,
  previewFrom: null,
  /** The number of the picks a preview under way was asked for (see `selecting`). */
  previewOf: 0,
  /** A selective restore: the explorer's picks ({picks, withoutChats, asCopy}) with, once
   * the Worker worked them out, the rows they send per table (`tables`) or its refusal
   * (`error`); `pending` until then. Null when nothing is picked. */
  selection: null,
  /** The job uploaded into, and the earlier job this upload resumes ({jobId, hpkePublicKey, start}). */
  jobId: null,
  resume: null,
  /** Whether the upload under way sends picked items only (its job is never resumed). */
  selective: false,
  /** The line under the buttons, and the progress bar's percentage. */
  progress: "",
  percent: 0,
  /** The job's final status (with its summary), the Worker's upload report, and the
   * timings tests and benchmarks read from `import-status`'s `data-outcome`. */
  final: null,
  uploadReport: null,
  outcome: null,
});

/** `post(message)` sends a message to the current Worker, or is null when the browser has
 * none (the raw upload); `explorer` is the archive explorer (with a Worker);
 * `rowsToEmbed()` is called when an import leaves rows to be embedded again. */
export function createImportCard({ post, explorer, rowsToEmbed }) {
  let card = { ...EMPTY };
  // The picks asked of the Worker: the number of the one it works on (0: none), and the
  // newest picks, asked once it answers (so quick ticks are worked out once, not each).
  const selecting = { seq: 0, waiting: 0, queued: null };

  /** Moves to `next` with `changes` to the card's data, if `next` may follow the current
   * state; answers whether it did. A message meant for an earlier state (a Worker's answer
   * about the archive picked before) is dropped here. */
  function go(next, changes = {}) {
    const allowed =
      next === card.state || next === State.IDLE || next === State.STOPPED || NEXT[card.state].includes(next);
    if (!allowed) return false;
    Object.assign(card, changes, { state: next });
    show();
    return true;
  }

  /** Says `words` on the progress line, in whatever state the card is. */
  const say = (words) => go(card.state, { progress: words });

  /** Forgets the last archive: the card is IDLE with `changes`. */
  function startOver(changes = {}) {
    if (explorer) explorer.reset(false);
    $("ticket-file").value = "";
    Object.assign(selecting, { waiting: 0, queued: null });
    card = { ...EMPTY };
    go(State.IDLE, changes);
  }

  // What `show` last drew of the data it draws in full, so it draws each once.
  const drawn = { report: null, final: null, preview: null };

  /** Puts the card's state on the page: the one place that does. Text is written only
   * when it changes, so live regions announce news, not every progress tick. */
  function show() {
    const view = VIEW[card.state];
    const put = (id, words) => {
      const element = $(id);
      if (element.textContent !== words) element.textContent = words;
      return element;
    };
    const selection = card.selection;
    const start = selection ? "Upload & import selected" : card.resume ? `Resume upload (batch ${card.resume.start + 1})` : "Upload & import";
    put("import-start", start);
    $("import-start").disabled = !canUpload();
    // Only where a Worker checks the archive: it is what sends the preview's batches.
    $("import-preview").hidden = !post;
    $("import-preview").disabled = !(view.preview && selectionReady());
    // What a selective restore sends (the explorer's Restore selected uploads it).
    const told = put("import-selection", selection ? selectionWords(selection, card.state === State.NEEDS_TICKET) : "");
    told.hidden = !selection;
    if (selection && selection.tables) told.dataset.tables = JSON.stringify(selection.tables);
    else delete told.dataset.tables;
    $("restore-selected").disabled = !(selection && canUpload());
    $("import-cancel").hidden = !view.cancel;
    $("import-bar").hidden = !view.busy;
    $("import-bar").value = card.percent;
    $("import-file").disabled = view.busy;
    put("import-progress", card.progress);
    const status = put("import-status", view.status);
    if (card.outcome) status.dataset.outcome = JSON.stringify(card.outcome);
    else delete status.dataset.outcome;

    put("inspect-error", card.refusal ? refusalWords(card.refusal) : "").hidden = !card.refusal;
    const report = $("inspect-report");
    if (drawn.report !== card.report) {
      drawn.report = card.report;
      report.replaceChildren(...(card.report ? reportView(card.report) : []));
      // For tests and benchmarks, on the element their hook names (never on window).
      if (card.report) report.dataset.report = JSON.stringify(card.report);
    }
    report.hidden = !card.report;

    $("ticket-box").hidden = !card.ticketQuestion;
    put("ticket-text", card.ticketQuestion);
    put("ticket-state", card.ticketState);
    $("ticket-file").disabled = !view.ticket;
    $("ticket-skip").disabled = !view.ticket;

    const held = heldWords(card.uploadReport);
    put("import-held", held).hidden = !held;
    // The summary, its notes and the reused-ticket warning: from a final status with a summary.
    const final = card.final && card.final.summary ? card.final : null;
    if (drawn.final !== final) {
      drawn.final = final;
      $("import-summary").querySelector("tbody").replaceChildren(...(final ? summaryRows(final) : []));
      $("import-notes").replaceChildren(...(final ? summaryNotes(final) : []));
    }
    $("import-summary").hidden = !final;
    $("import-notes").hidden = $("import-notes").childElementCount === 0;
    const reused = final ? reusedWords(final.ticket) : "";
    put("ticket-reused", reused).hidden = !reused;

    // The restore preview: what a restore would do, drawn once per preview.
    const preview = $("restore-preview");
    if (drawn.preview !== card.preview) {
      drawn.preview = card.preview;
      $("restore-preview-body").replaceChildren(...(card.preview ? previewView(card.preview) : []));
      put("restore-preview-summary", card.preview ? previewWords(card.preview) : "");
      // For tests, as the inspection report's `data-report`.
      if (card.preview) preview.dataset.preview = JSON.stringify(card.preview);
      else delete preview.dataset.preview;
    }
    preview.hidden = !card.preview;
  }

  /** Whether the picks, if any, are worked out and can be sent. */
  const selectionReady = () => !card.selection || (!card.selection.pending && !card.selection.error);

  /** Whether Upload may start: the state allows it and the picks, if any, are ready. */
  const canUpload = () => VIEW[card.state].upload && selectionReady();

  // ---- picking an archive, and its ticket --------------------------------------------
  let readings = 0;
  const uploadKey = (report, file) => `lvbak-upload:${report.archiveId}:${file.name}:${file.size}`;

  function pick(file) {
    startOver();
    if (!file) return;
    if (!post) {
      // No local inspection; the server checks everything.
      go(State.READY, { file, progress: "This browser cannot check archives locally; the server will." });
      return;
    }
    const reading = ++readings;
    go(State.CHECKING, { file, reading, progress: "Verifying archive…" });
    post({ kind: Kind.OPEN, file, seq: reading });
  }

  function inspected(report) {
    const secrets = report.secrets.count;
    const next = secrets > 0 ? State.NEEDS_TICKET : State.READY;
    const changes = { report, progress: `Checked on this device in ${Math.round(report.openMs)} ms.` };
    if (secrets > 0) Object.assign(changes, { ticketQuestion: ticketQuestion(secrets, " (it stays on this device)") });
    if (!go(next, changes)) return;
    explorer.reset(true);
    offerResume(report, card.file);
  }

  /** Offers to resume when this file's earlier upload left a job that still takes batches. */
  async function offerResume(report, file) {
    const key = uploadKey(report, file);
    const jobId = localStorage.getItem(key);
    if (!jobId) return;
    const status = await getJson(`${IMPORT_URL}/${jobId}/status`);
    if (!status || jobEnded(status.status) || status.nextBatch === undefined) {
      localStorage.removeItem(key);
      return;
    }
    // Another archive may have been picked meanwhile, or the upload begun (a preview under
    // way keeps its own words; the offer stays for when it returns).
    if (card.report !== report || ![State.NEEDS_TICKET, State.READY, State.PREVIEWING].includes(card.state)) return;
    const words = `An earlier upload of this file stopped after ${status.nextBatch} batches; it continues from there.`;
    go(card.state, {
      resume: { jobId, hpkePublicKey: status.hpkePublicKey, start: status.nextBatch },
      ...(card.state === State.PREVIEWING ? {} : { progress: words }),
    });
  }

  async function ticketPicked(file) {
    const ticket = await file.text();
    if (card.state === State.AWAITING_TICKET) return answerServer("ticket", ticket);
    if (VIEW[card.state].ticket) post({ kind: Kind.TICKET, text: ticket });
  }

  function skipPicked() {
    if (card.state === State.AWAITING_TICKET) return answerServer("skip-ticket");
    if (!VIEW[card.state].ticket) return;
    post({ kind: Kind.SKIP_SECRETS });
    go(State.READY, { ticketState: "API keys will be skipped." });
  }

  // ---- the restore preview ---------------------------------------------------------------
  /** Asks the Worker for a restore preview of the picked archive (nothing is written). */
  function preview() {
    const from = card.state;
    if (!VIEW[from].preview || !selectionReady()) return;
    const changes = { previewFrom: from, previewOf: selecting.seq, preview: null, percent: 0, progress: "Previewing…" };
    if (!go(State.PREVIEWING, changes)) return;
    post({ kind: Kind.PREVIEW });
  }

  /** The preview ended: back to the state it came from, with the preview or the refusal (a
   * preview of picks changed since is not shown). */
  function previewed({ preview, error }) {
    const stale = preview && card.previewOf !== selecting.seq;
    const progress = stale
      ? "The picks changed during the preview: preview again."
      : preview
        ? "Preview ready: nothing was written. What a restore would do is below."
        : `Preview refused: ${refusalWords(error)}`;
    go(card.previewFrom, { preview: (!stale && preview) || null, previewFrom: null, percent: 0, progress });
  }

  // ---- a selective restore ---------------------------------------------------------------
  /** The explorer's picks changed: the Worker works out what they need (none clears the
   * selection); nothing may be sent until it answered. A preview shown is of other picks. */
  function select(picked) {
    if (!post || !card.report) return;
    go(card.state, { selection: { ...picked, pending: true, tables: null, error: null }, preview: null });
    if (selecting.waiting) selecting.queued = picked;
    else askSelection(picked);
  }

  function askSelection({ picks, withoutChats, asCopy }) {
    selecting.waiting = ++selecting.seq;
    post({ kind: Kind.SELECT, seq: selecting.waiting, picks, withoutChats, asCopy });
  }

  /** The Worker's answer to the picks: the rows they send per table, or its refusal. */
  function selected({ seq, tables, error }) {
    if (seq !== selecting.waiting || !card.selection) return;
    selecting.waiting = 0;
    if (selecting.queued) {
      const newer = selecting.queued;
      selecting.queued = null;
      return askSelection(newer);
    }
    const picked = card.selection.picks.length > 0;
    go(card.state, { selection: picked ? { ...card.selection, pending: false, tables: tables || null, error: error || null } : null });
  }

  /** The explorer's Restore selected: Upload & import, with the card in view. */
  function restoreSelected() {
    if (!card.selection || !canUpload()) return;
    $("import-title").scrollIntoView({ block: "start" });
    upload();
  }

  // ---- uploading -----------------------------------------------------------------------
  function upload() {
    if (!selectionReady()) return;
    // A preview says what a restore would do before it; once one runs, it says no more.
    const selective = Boolean(card.selection);
    if (!go(State.UPLOADING, { outcome: null, percent: 0, preview: null, selective })) return;
    // A selective upload is a new job (an interrupted job to resume holds the whole archive).
    if (post) post({ kind: Kind.UPLOAD, resume: selective ? null : card.resume });
    else uploadRaw();
  }

  /** The raw upload (no Worker): the server checks the archive, and may ask for the ticket. */
  async function uploadRaw() {
    say("Uploading…");
    const answer = await api(IMPORT_URL, { method: "POST", body: card.file });
    const accepted = await readJson(answer);
    if (answer.status !== 202) return finish({ error: refusalOf(answer.status, accepted) });
    card.jobId = accepted.jobId;
    let asked = false;
    // Polled until the job ends (at most a day: the server ends stalled jobs long before).
    for (let i = 0; i < 432000; i++) {
      const status = await getJson(`${IMPORT_URL}/${accepted.jobId}/status`);
      if (status && status.status === JobStatus.AWAITING_TICKET && !asked) {
        // As with a Worker, the user decides: the ticket, or no API keys.
        asked = true;
        go(State.AWAITING_TICKET, {
          ticketQuestion: ticketQuestion(status.secretsCount, ""),
          ticketState: "",
          progress: "Waiting for the ticket…",
        });
      }
      if (status && jobEnded(status.status)) return finish({ status });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** The raw upload's answer to the server's ticket question. */
  async function answerServer(path, body) {
    const answer = await api(`${IMPORT_URL}/${card.jobId}/${path}`, { method: "POST", body });
    const json = await readJson(answer);
    if (answer.status !== 200) {
      go(card.state, { ticketState: refusalWords(refusalOf(answer.status, json)) });
      return;
    }
    go(State.UPLOADING, { ticketQuestion: "", progress: "Importing…" });
  }

  async function cancel() {
    if (card.jobId) await api(`${IMPORT_URL}/${card.jobId}/cancel`, { method: "POST" });
    // Unless the upload ended meanwhile (its words stay).
    if (VIEW[card.state].cancel) say("Cancelling…");
  }

  /** The upload ended: with the job's final `status`, or an `error` (then the job's status
   * is asked for), and the Worker's upload `report` and `outcome`. */
  async function finish({ status, error, report, outcome }) {
    const final = status || (card.jobId ? await getJson(`${IMPORT_URL}/${card.jobId}/status`) : null);
    const changes = { final, uploadReport: report || null, outcome: outcome || null };
    if (final && !jobEnded(final.status)) {
      // The job still takes batches: the upload was cut (network); the same file resumes it.
      // A selective upload's job is let go: Upload sends the picks again, as a new job.
      const why = (error && error.message) || "connection lost";
      if (card.selective) {
        if (card.jobId) api(`${IMPORT_URL}/${card.jobId}/cancel`, { method: "POST" });
        go(State.INTERRUPTED, { ...changes, progress: `Upload interrupted (${why}). Upload sends the picked items again.` });
        return;
      }
      go(State.INTERRUPTED, { ...changes, progress: `Upload interrupted (${why}). Pick the same file again to resume.` });
      return;
    }
    if (card.report && card.file) localStorage.removeItem(uploadKey(card.report, card.file));
    const failure = (error && error.code) || (final && final.error && final.error.code);
    const said = (error && error.message) || (final && final.error && final.error.message) || "";
    const ended = final ? final.status : JobStatus.FAILED;
    const progress =
      ended === JobStatus.COMPLETE
        ? "Import complete"
        : ended === JobStatus.CANCELLED
          ? "Import cancelled"
          : `Import failed: ${failure} — ${said}`;
    const next = { [JobStatus.COMPLETE]: State.COMPLETE, [JobStatus.CANCELLED]: State.CANCELLED }[ended] || State.FAILED;
    if (go(next, { ...changes, resume: null, progress }) && final && final.summary && leftRowsToEmbed(final)) {
      rowsToEmbed();
    }
  }

  // ---- the Worker's messages -------------------------------------------------------------
  /** Handles the Worker's messages about the archive and its upload. */
  function handle(data) {
    switch (data.kind) {
      case Kind.REPORT:
        if (data.seq === card.reading) inspected(data.report);
        break;
      case Kind.REFUSED:
        if (data.seq === card.reading) go(State.REFUSED, { refusal: data.error, progress: "" });
        break;
      case Kind.TICKET:
        if (card.state !== State.NEEDS_TICKET && card.state !== State.READY) break;
        go(State.READY, { ticketState: ticketWords(data.result) });
        break;
      case Kind.TICKET_REFUSED:
        if (VIEW[card.state].ticket) go(card.state, { ticketState: refusalWords(data.error) });
        break;
      case Kind.JOB:
        if (card.state !== State.UPLOADING) break;
        card.jobId = data.jobId;
        if (card.report && card.file && !card.selective) localStorage.setItem(uploadKey(card.report, card.file), data.jobId);
        break;
      case Kind.PROGRESS:
        if (card.state === State.UPLOADING) go(State.UPLOADING, progressOf(progressWords(data.progress)));
        else if (card.state === State.PREVIEWING) go(State.PREVIEWING, progressOf(previewProgressWords(data.progress)));
        break;
      case Kind.PREVIEWED:
        if (card.state === State.PREVIEWING) previewed({ preview: data.preview });
        break;
      case Kind.PREVIEW_FAILED:
        if (card.state === State.PREVIEWING) previewed({ error: data.error });
        break;
      case Kind.SELECTED:
        selected({ seq: data.seq, tables: data.tables });
        break;
      case Kind.SELECT_FAILED:
        selected({ seq: data.seq, error: data.error });
        break;
      case Kind.COMPLETE:
        if (card.state !== State.UPLOADING) break;
        finish({
          status: data.status,
          report: data.report,
          outcome: { seconds: data.seconds, wireBytes: data.wireBytes, waitMs: data.waitMs, report: data.report },
        });
        break;
      case Kind.FAILED:
        if (card.state !== State.UPLOADING) break;
        finish({ error: data.error });
        break;
      case Kind.CRASHED:
        go(State.STOPPED, { progress: `The archive processor failed: ${refusalWords(data.error)}` });
        break;
    }
  }

  const progressOf = ({ words, percent }) => ({ progress: words, percent });

  $("import-file").addEventListener("change", (event) => pick(event.target.files[0]));
  $("ticket-file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) ticketPicked(file);
  });
  $("ticket-skip").addEventListener("click", skipPicked);
  $("import-start").addEventListener("click", upload);
  $("import-preview").addEventListener("click", preview);
  $("import-cancel").addEventListener("click", cancel);
  $("restore-selected").addEventListener("click", restoreSelected);
  if (explorer) explorer.onPicks(select);

  return {
    handle,
    /** The Worker stopped (it failed to load, or threw where nothing caught it). */
    workerStopped(message) {
      go(State.STOPPED, { progress: `The archive processor stopped: ${message}` });
    },
    /** The Worker's Wasm module trapped and a new Worker replaced it: pick again. */
    workerRestarted(error) {
      $("import-file").value = "";
      startOver({
        progress: `The archive processor failed (${refusalWords(error)}) and was restarted. Pick an archive again.`,
      });
    },
  };
}
