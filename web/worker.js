// The Web Worker: holds the lvbak-wasm archive processor and talks to the server with
// synchronous requests (allowed in workers), one per batch, so the page never freezes and
// the archive never has to be in memory. A module Worker: its messages' kinds come from
// protocol.js (what each asks and answers is listed there), and the Wasm module from Trunk's
// `web`-target loader, which finds `lvbak-wasm_bg.wasm` beside itself.
// The archive explorer's requests, and the character cards built from the archive or read
// back from a card file, read local files only, with no request at all. Picked items (a
// selective restore) make the next preview and upload send only their closure.
// A trap of the Wasm module (out of memory, a panic) leaves it unusable: the Worker says
// `fatal` and closes, and the page starts a new one.
import init, { Processor, coreVersion, readCard } from "./lvbak-wasm.js";
import { CSRF_HEADERS, refusalOf } from "./api.js";
import { CARD_REQUESTS, EXPLORER_REQUESTS, Kind, UploadPhase } from "./protocol.js";

const ready = init();
let processor = null;
// Whether the last picks could not be worked out: the processor still holds the selection
// before them, so nothing is sent until picks that work (or none) replace them.
let selectionFailed = false;

const post = (message) => self.postMessage(message);

/** The `{code, message}` of something thrown by the processor or by a request: an `Error`
 * with a `code` (what both throw), or a `{code, message}` JSON string. */
function errorOf(thrown) {
  if (thrown && typeof thrown === "object" && typeof thrown.code === "string") {
    return { code: thrown.code, message: thrown.message || "" };
  }
  const text = typeof thrown === "string" ? thrown : thrown && thrown.message;
  try {
    const parsed = JSON.parse(text);
    if (parsed && parsed.code) return { code: parsed.code, message: parsed.message || parsed.error || "" };
  } catch (_) {}
  return { code: "internal", message: String(text) };
}

/** Whether `thrown` means the Wasm module can no longer be used: a trap stops it mid-call,
 * with its memory and its objects' borrow flags as they were, so every later call fails
 * ("attempted to take ownership of Rust value while it was borrowed"). */
function isFatal(thrown) {
  if (thrown instanceof WebAssembly.RuntimeError) return true;
  const text = String((thrown && thrown.message) || thrown);
  return /ownership of Rust value while it was borrowed|recursive use of an object detected/.test(text);
}

/** Rethrows what `isFatal` says ends the module (to `onmessage`, which reports it). */
function rethrowFatal(thrown) {
  if (isFatal(thrown)) throw thrown;
}

function request(method, url, body, headers = {}) {
  const xhr = new XMLHttpRequest();
  xhr.open(method, url, false);
  for (const [name, value] of Object.entries({ ...CSRF_HEADERS, ...headers })) xhr.setRequestHeader(name, value);
  xhr.send(body === undefined ? null : body);
  let json = null;
  try {
    json = JSON.parse(xhr.responseText);
  } catch (_) {}
  return { status: xhr.status, json, retryAfter: Number(xhr.getResponseHeader("Retry-After")) || 0 };
}

/** Times a request whose connection dropped before the answer is sent again. */
const DROPPED_TRIES = 4;
/** How long a request answered "not now" is sent again, at most: 503 (the server is busy,
 * or the node running the job does not answer while PostgreSQL still says it holds it)
 * and 502/504 (a load balancer lost the node the request went to). A killed node's job is
 * taken over by another node once PostgreSQL lets go of its lock, within seconds. */
const PATIENCE_MS = 90000;
/** The wait between two tries when the answer names none (`Retry-After`), and at most. */
const RETRY_WAIT_MS = 1000;
const MAX_RETRY_WAIT_MS = 5000;

/** Whether an answer says to try again later. */
const notNow = (status) => status === 502 || status === 503 || status === 504;

/** A request that may be sent again (a read, a batch, a commit: the server answers a repeat
 * as the first): a connection that drops before the answer (a reused connection the server
 * had closed, a node killed mid-request) is retried at once, a few times, and an answer
 * saying "not now" is retried after the wait it names, for up to `PATIENCE_MS`. Its last
 * answer (a dropped connection as status 0, code `network`). */
function requestPatiently(method, url, body, headers) {
  const until = performance.now() + PATIENCE_MS;
  let dropped = 0;
  for (;;) {
    let answer;
    try {
      answer = request(method, url, body, headers);
    } catch (error) {
      answer = { status: 0, json: { code: "network", error: String(error) }, retryAfter: 0 };
    }
    const again = answer.status === 0 ? ++dropped < DROPPED_TRIES : notNow(answer.status);
    if (!again || performance.now() >= until) return answer;
    if (answer.status !== 0) waitBlocking(Math.min(answer.retryAfter * 1000 || RETRY_WAIT_MS, MAX_RETRY_WAIT_MS));
  }
}

/** Waits `ms` without returning to the event loop (this Worker's requests are synchronous,
 * and the Wasm uploader calls them; the page is not cross-origin isolated, so
 * `Atomics.wait` is not available). Only while a server asks to be asked again later. */
function waitBlocking(ms) {
  const until = performance.now() + ms;
  while (performance.now() < until) {}
}

/** The server's refusal as an `Error` with its code. */
function refusal(answer) {
  const { code, message } = refusalOf(answer.status, answer.json);
  const error = new Error(message);
  error.name = error.code = code;
  return error;
}

/** A restore preview: the archive is sent as an upload is, to a preview job, whose commit
 * answers what a restore would do (the server's `RestorePreview`); the server writes
 * nothing and keeps no job. Its API keys are not sent (they stay for the upload). */
function preview() {
  sendArchive({ preview: true });
}

/** Times an upload starts over when its job was opened again on another node. */
const MAX_RESTARTS = 2;

/** Sends the opened archive in batches and commits it. An upload goes into a new job, or,
 * with `resume` ({jobId, hpkePublicKey, start}), into the job an interrupted upload left,
 * from the batch the server expects, and is answered by JOB, COMPLETE or FAILED; with
 * `preview`, into a preview job (never resumed, not remembered), answered by PREVIEWED or
 * PREVIEW_FAILED. Both post PROGRESS. When the job's node goes away mid-upload and another
 * node opens the job again (its batches answer a gap back to an earlier batch), the upload
 * starts over there by itself, leaving out what the server now holds. */
function sendArchive({ resume = null, preview = false }) {
  const started = performance.now();
  const json = { "Content-Type": "application/json" };
  const failed = preview ? Kind.PREVIEW_FAILED : Kind.FAILED;
  if (selectionFailed) {
    return post({ kind: failed, error: { code: "bad_pick", message: "the picked items could not be worked out; pick again" } });
  }
  let job = resume && resume.jobId;
  let publicKey = resume && resume.hpkePublicKey;
  // Files the server holds already (the same size and CRC-32, by its own reading): never
  // sent. A resumed upload leaves out the same ones, so its batch numbers match; a preview
  // is told every file of the archive (it compares them by their claims).
  let heldFiles = [];
  if (!resume) {
    const body = preview ? JSON.stringify({ ...JSON.parse(processor.openRequest()), preview: true }) : processor.openRequest();
    const opened = request("POST", "/api/v1/user-data/import/batches", body, json);
    if (opened.status !== 201) return post({ kind: failed, error: errorOf(refusal(opened)) });
    job = opened.json.jobId;
    publicKey = opened.json.hpkePublicKey;
    heldFiles = opened.json.heldFiles || [];
  } else {
    const held = requestPatiently("GET", `/api/v1/user-data/import/${job}/held-files`);
    if (held.status !== 200) return post({ kind: failed, jobId: job, error: errorOf(refusal(held)) });
    heldFiles = held.json.heldFiles || [];
  }
  // The ids of rows the account has (hashed): those rows are not sent either.
  let heldRows = requestPatiently("GET", `/api/v1/user-data/import/${job}/held-rows`);
  if (heldRows.status !== 200) return post({ kind: failed, jobId: job, error: errorOf(refusal(heldRows)) });
  if (!preview) post({ kind: Kind.JOB, jobId: job });
  let wireBytes = 0;
  // Set when the server asks for an earlier batch than the one sent (see `send`).
  let restartAt = null;
  // Time spent waiting for the server's answers (the rest is reading, checking, packing).
  let waitMs = 0;
  // The server expects an earlier batch than the one sent (or than the count committed):
  // the job was opened again on another node of the instance (its node went away), which
  // starts it over.
  const noteGap = (answer, sent) => {
    const gap = answer.json && answer.json.code === "batch_gap" ? answer.json.nextBatch : undefined;
    if (answer.status === 409 && typeof gap === "number" && gap < sent) restartAt = gap;
  };
  const sink = {
    send(number, bytes, hash) {
      const asked = performance.now();
      // A batch is idempotent: the server answers a replay as the first.
      const answer = requestPatiently("PUT", `/api/v1/user-data/import/${job}/batches/${number}`, bytes, {
        "Content-Type": "application/octet-stream",
        "X-Batch-Sha256": hash,
      });
      if (answer.status === 200) {
        wireBytes += bytes.length;
        waitMs += performance.now() - asked;
        return;
      }
      noteGap(answer, number);
      throw refusal(answer);
    },
    progress(text) {
      post({ kind: Kind.PROGRESS, progress: JSON.parse(text) });
    },
    vectorsAccepted() {
      const answer = requestPatiently("POST", `/api/v1/user-data/import/${job}/vectors-check`);
      if (answer.status !== 200) throw refusal(answer);
      return answer.json.acceptVectors === true;
    },
  };
  let report;
  processor.sendSecrets(!preview);
  let start = resume ? resume.start : 0;
  let done;
  for (let restarts = 0; ; restarts++) {
    restartAt = null;
    try {
      report = JSON.parse(processor.upload(job, publicKey, start, JSON.stringify(heldFiles), JSON.stringify(heldRows.json), sink));
      post({ kind: Kind.PROGRESS, progress: { phase: UploadPhase.COMMITTING } });
      // A commit is idempotent too: repeated, it waits for the same end, or answers it.
      done = requestPatiently("POST", `/api/v1/user-data/import/${job}/commit`, JSON.stringify({ batches: report.batches }), json);
      if (done.status === 200) break;
      noteGap(done, report.batches);
      throw refusal(done);
    } catch (thrown) {
      rethrowFatal(thrown);
      if (restartAt === null || preview || restarts >= MAX_RESTARTS) return post({ kind: failed, jobId: job, error: errorOf(thrown) });
    }
    // Started over on another node: what it holds is asked again (the job's key too: the
    // node made its own), and the upload goes on from the batch it expects.
    const status = requestPatiently("GET", `/api/v1/user-data/import/${job}/status`);
    const held = requestPatiently("GET", `/api/v1/user-data/import/${job}/held-files`);
    heldRows = requestPatiently("GET", `/api/v1/user-data/import/${job}/held-rows`);
    const refused = [status, held, heldRows].find((answer) => answer.status !== 200);
    if (refused) return post({ kind: failed, jobId: job, error: errorOf(refusal(refused)) });
    publicKey = status.json.hpkePublicKey;
    heldFiles = held.json.heldFiles || [];
    start = restartAt;
  }
  const seconds = (performance.now() - started) / 1000;
  if (preview) return post({ kind: Kind.PREVIEWED, preview: done.json, report, seconds, wireBytes, waitMs });
  post({ kind: Kind.COMPLETE, jobId: job, status: done.json, report, seconds, wireBytes, waitMs });
}

self.onmessage = async ({ data }) => {
  await ready;
  try {
    handle(data);
  } catch (thrown) {
    if (!isFatal(thrown)) return post({ kind: Kind.CRASHED, error: errorOf(thrown) });
    const { message } = errorOf(thrown);
    post({ kind: Kind.FATAL, error: { code: "wasm_trap", message: message || String(thrown) } });
    self.close();
  }
};

function handle(data) {
  switch (data.kind) {
    case Kind.VERSION:
      post({ kind: Kind.VERSION, version: coreVersion() });
      break;
    case Kind.OPEN:
      if (processor) processor.free();
      processor = null;
      selectionFailed = false;
      try {
        processor = new Processor(data.file);
        post({ kind: Kind.REPORT, seq: data.seq, report: JSON.parse(processor.report()) });
      } catch (thrown) {
        rethrowFatal(thrown);
        post({ kind: Kind.REFUSED, seq: data.seq, error: errorOf(thrown) });
      }
      break;
    case Kind.TICKET:
      try {
        post({ kind: Kind.TICKET, result: JSON.parse(processor.applyTicket(data.text)) });
      } catch (thrown) {
        rethrowFatal(thrown);
        post({ kind: Kind.TICKET_REFUSED, error: errorOf(thrown) });
      }
      break;
    case Kind.SKIP_SECRETS:
      processor.skipSecrets();
      break;
    case Kind.UPLOAD:
      sendArchive({ resume: data.resume });
      break;
    case Kind.PREVIEW:
      preview();
      break;
    case Kind.SELECT:
      select(data);
      break;
    default:
      if (EXPLORER_REQUESTS.has(data.kind)) explore(data);
      else if (CARD_REQUESTS.has(data.kind)) cards(data);
  }
}

/** A selective restore's picks: their closure over the archive (lvbak-core's) is what the
 * next preview and upload send. Restored as a copy, the copies' ids are derived from the
 * signed-in user's id (asked of the server), as the server derives them. Answers SELECTED
 * with the rows per table, or SELECT_FAILED (`bad_pick`, `not_in_archive`, or the refusal
 * of the question who is signed in). */
function select({ seq, picks, withoutChats, asCopy }) {
  try {
    if (asCopy && picks.length) {
      const me = requestPatiently("GET", "/api/v1/auth/me");
      if (me.status !== 200 || !me.json || !me.json.id) throw refusal(me);
      processor.setImporter(me.json.id);
    }
    const answer = JSON.parse(processor.selectItems(JSON.stringify(picks), Boolean(withoutChats), Boolean(asCopy)));
    selectionFailed = false;
    post({ kind: Kind.SELECTED, seq, tables: answer.tables });
  } catch (thrown) {
    rethrowFatal(thrown);
    selectionFailed = true;
    post({ kind: Kind.SELECT_FAILED, seq, error: errorOf(thrown) });
  }
}

/** The card requests: a card of the open archive, several in one ZIP, a card file read
 * back. Each answers with its own kind, or CARD_FAILED. */
function cards(data) {
  try {
    switch (data.kind) {
      case Kind.CARD: {
        const started = performance.now();
        const card = processor.characterCard(data.characterId, data.format);
        const { seq, format } = data;
        const facts = { buildMs: performance.now() - started, wasmMemoryBytes: card.wasmMemoryBytes };
        self.postMessage({ kind: Kind.CARD, seq, format, bytes: card.bytes, fileName: card.fileName, name: card.name, ...facts }, [card.bytes.buffer]);
        break;
      }
      case Kind.CARDS_ZIP: {
        const { seq, format } = data;
        const zip = processor.cardsZip(JSON.stringify(data.characterIds), format, (done, total) => post({ kind: Kind.CARDS_PROGRESS, seq, done, total }));
        self.postMessage({ kind: Kind.CARDS_ZIP, seq, format, bytes: zip.bytes, cards: zip.cards, skipped: zip.skipped }, [zip.bytes.buffer]);
        break;
      }
      case Kind.READ_CARD:
        post({ kind: Kind.CARD_READ, seq: data.seq, card: JSON.parse(readCard(data.file)) });
        break;
    }
  } catch (thrown) {
    rethrowFatal(thrown);
    post({ kind: Kind.CARD_FAILED, seq: data.seq, request: data.kind, characterId: data.characterId, error: errorOf(thrown) });
  }
}

/** The explorer's requests: each answers with its own kind, or `exploreFailed`. Lists,
 * transcripts and world books come a page at a time (`start`, `count`). */
function explore(data) {
  try {
    switch (data.kind) {
      case Kind.EXPLORE: {
        const started = performance.now();
        const index = JSON.parse(processor.explore((table) => post({ kind: Kind.EXPLORE_PROGRESS, table })));
        index.totalMs = performance.now() - started;
        post({ kind: Kind.EXPLORED, index });
        break;
      }
      case Kind.EXPLORE_LIST:
        post({ kind: Kind.EXPLORE_LIST, result: JSON.parse(processor.exploreList(data.list, data.characterId || "", data.start, data.count)) });
        break;
      case Kind.EXPLORE_CHAT:
        post({ kind: Kind.EXPLORE_CHAT, result: JSON.parse(processor.exploreChat(data.chatId, data.start, data.count)) });
        break;
      case Kind.EXPLORE_BOOK:
        post({ kind: Kind.EXPLORE_BOOK, result: JSON.parse(processor.exploreWorldBook(data.bookId, data.start, data.count)) });
        break;
      case Kind.EXPLORE_FILE: {
        const bytes = processor.exploreFile(data.name);
        self.postMessage({ kind: Kind.EXPLORE_FILE, name: data.name, bytes }, [bytes.buffer]);
        break;
      }
      case Kind.EXPLORE_SEARCH: {
        const count = processor.exploreSearch(data.query, data.limit || 200, (hits) =>
          post({ kind: Kind.EXPLORE_HITS, seq: data.seq, hits: JSON.parse(hits) }),
        );
        post({ kind: Kind.EXPLORE_SEARCH_DONE, seq: data.seq, count });
        break;
      }
    }
  } catch (thrown) {
    rethrowFatal(thrown);
    post({ kind: Kind.EXPLORE_FAILED, request: data.kind, name: data.name, error: errorOf(thrown) });
  }
}
