// The Data Portability page: sign-in, the export card, the import card with its archive
// explorer (explorer.js), and the Settings → Embeddings card. Archives are
// opened and checked by the Wasm processor in a Web Worker (worker.js); browsers without
// Worker or WebAssembly fall back to uploading the raw archive.
import { createExplorer } from "./explorer.js";

const $ = (id) => document.getElementById(id);
const headers = { "X-Requested-With": "lvbak" };
const api = (path, options = {}) =>
  fetch(path, { credentials: "same-origin", ...options, headers: { ...headers, ...(options.headers || {}) } });
const text = (element, value) => {
  element.textContent = value;
  return element;
};
const make = (tag, attributes = {}, content = "") => {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.textContent = content;
  return element;
};
const capable = typeof Worker === "function" && typeof WebAssembly === "object";
// Replaced by a new one when its Wasm module traps (`fatal`): see restartWorker.
let worker = capable ? wireWorker(new Worker("/worker.js")) : null;
const explorer = worker ? createExplorer((message) => worker.postMessage(message)) : null;

// ---- sign-in -------------------------------------------------------------------------
async function showApp() {
  const me = await api("/api/v1/auth/me");
  if (me.status !== 200) {
    $("login").hidden = false;
    $("portability").hidden = true;
    return;
  }
  const user = await me.json();
  text($("whoami"), `Signed in as ${user.username || (user.user && user.user.username) || ""}`);
  $("login").hidden = true;
  $("portability").hidden = false;
  loadEmbeddings();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await api("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  if (answer.status !== 200) {
    text($("login-error"), "Wrong user name or password.");
    return;
  }
  text($("login-error"), "");
  await showApp();
});

// ---- export --------------------------------------------------------------------------
$("export-secrets").addEventListener("change", (event) => {
  $("export-secrets-warning").hidden = !event.target.checked;
});

function download(url, filename) {
  const link = make("a", { href: url, download: filename || "" });
  document.body.append(link);
  link.click();
  link.remove();
}

// The export's progress in the seed documents' words. The server names each SSE event by
// its phase, so every phase is listened for by name (`onmessage` hears unnamed ones only).
const EXPORT_PHASES = ["table", "table_done", "files", "files_done", "lancedb", "lancedb_table_done", "secrets",
  "complete", "failed", "cancelled"];
const FINAL_PHASES = ["complete", "failed", "cancelled"];

function exportWords(event) {
  const table = (event.table || "").replace(/_/g, " ");
  switch (event.phase) {
    case "table":
    case "table_done":
      return `Exporting ${table}…`;
    case "files":
    case "files_done":
      return `Bundling files… ${event.processed}/${event.total}`;
    case "lancedb":
    case "lancedb_table_done":
      return `Exporting vectors (${table})…`;
    case "secrets":
      return "Encrypting API keys…";
    case "complete":
      return "Export complete.";
    case "failed":
      return `Export failed: ${event.code || ""} ${event.error || ""}`.trim();
    case "cancelled":
      return "Export cancelled.";
    default:
      return "Exporting…";
  }
}

function followExport(url) {
  const events = new EventSource(url);
  const shown = (message) => {
    const event = JSON.parse(message.data);
    text($("export-progress"), exportWords(event));
    if (FINAL_PHASES.includes(event.phase)) events.close();
  };
  for (const phase of EXPORT_PHASES) events.addEventListener(phase, shown);
  // A dropped stream is not retried: the download itself goes on either way.
  events.onerror = () => events.close();
}

$("export-download").addEventListener("click", async () => {
  const button = $("export-download");
  button.disabled = true;
  $("export-notice").hidden = true;
  try {
    const answer = await api("/api/v1/user-data/export/prepare", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ includeVectors: $("export-vectors").checked, includeSecrets: $("export-secrets").checked }),
    });
    const prepared = await answer.json();
    if (answer.status !== 200) throw new Error(`${prepared.code}: ${prepared.error}`);
    text($("export-progress"), "Download started.");
    followExport(prepared.eventsUrl);
    // The browser streams the archive straight to disk: it never passes through this page.
    download(prepared.archiveUrl, prepared.archiveFilename);
    if (prepared.ticket) {
      const blob = new Blob([JSON.stringify(prepared.ticket, null, 2)], { type: "application/json" });
      download(URL.createObjectURL(blob), prepared.ticketFilename);
    }
    if (prepared.unreachableSecrets && prepared.unreachableSecrets.length) {
      const notice = $("export-notice");
      notice.replaceChildren(text(make("p"), "These secrets could not be decrypted and were left out:"));
      const list = make("ul");
      for (const key of prepared.unreachableSecrets) list.append(make("li", {}, key));
      notice.append(list);
      notice.hidden = false;
    }
  } catch (error) {
    text($("export-progress"), `Export failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
});

// ---- import --------------------------------------------------------------------------
const importState = { report: null, file: null, secretsDecided: true, jobId: null, resume: null };

// An upload cut short (a network error, a reload) is remembered per archive and file, so
// picking the same file again continues the job from the server's next expected batch.
const uploadKey = (report, file) => `lvbak-upload:${report.archiveId}:${file.name}:${file.size}`;
function rememberUpload(jobId) {
  if (importState.report && importState.file) {
    localStorage.setItem(uploadKey(importState.report, importState.file), jobId);
  }
}
function forgetUpload() {
  if (importState.report && importState.file) localStorage.removeItem(uploadKey(importState.report, importState.file));
}

/** Offers to resume when this file's earlier upload left a job that still takes batches. */
async function offerResume(report, file) {
  const jobId = localStorage.getItem(uploadKey(report, file));
  if (!jobId) return;
  const answer = await api(`/api/v1/user-data/import/${jobId}/status`);
  const status = answer.status === 200 ? await answer.json() : null;
  if (!status || ["complete", "failed", "cancelled"].includes(status.status) || status.nextBatch === undefined) {
    localStorage.removeItem(uploadKey(report, file));
    return;
  }
  importState.resume = { jobId, hpkePublicKey: status.hpkePublicKey, start: status.nextBatch };
  text($("import-start"), `Resume upload (batch ${status.nextBatch + 1})`);
  text($("import-progress"), `An earlier upload of this file stopped after ${status.nextBatch} batches; it continues from there.`);
}
const domains = [
  ["characters", "Characters"],
  ["chats", "Chats"],
  ["messages", "Messages"],
  ["world_books", "World books"],
  ["world_book_entries", "World book entries"],
  ["personas", "Personas"],
  ["presets", "Presets"],
  ["images", "Images"],
];

function resetImport() {
  if (explorer) explorer.reset(false);
  importState.report = null;
  importState.jobId = null;
  importState.resume = null;
  text($("import-start"), "Upload & import");
  $("inspect-error").hidden = true;
  $("inspect-report").hidden = true;
  $("ticket-box").hidden = true;
  $("ticket-file").value = "";
  $("import-summary").hidden = true;
  $("import-notes").hidden = true;
  $("import-held").hidden = true;
  $("ticket-reused").hidden = true;
  $("import-start").disabled = true;
  text($("import-progress"), "");
  text($("import-status"), "idle");
}

function showRefusal(error) {
  const box = $("inspect-error");
  text(box, `${error.code}: ${error.message}`);
  box.hidden = false;
}

function renderReport(report) {
  const box = $("inspect-report");
  box.replaceChildren();
  const manifest = report.manifest || {};
  const facts = make("dl");
  const fact = (name, value, testid) => {
    facts.append(make("dt", {}, name));
    facts.append(make("dd", testid ? { "data-testid": testid } : {}, String(value)));
  };
  fact("Archive", report.archiveId, "inspect-archive-id");
  fact("Exported", new Date((manifest.exportedAt || 0) * 1000).toLocaleString());
  fact("Made by", `${manifest.producer}${manifest.producerVersion ? " " + manifest.producerVersion : ""}`);
  for (const [table, label] of domains) if (table in report.counts) fact(label, report.counts[table]);
  const files = Object.values(report.files || {}).reduce((sum, f) => sum + f.count, 0);
  fact("Files", files);
  const vectorRows = Object.values(report.vectors || {}).reduce((sum, n) => sum + n, 0);
  const dimension = manifest.embeddingConfig && manifest.embeddingConfig.dimension;
  fact(
    "Vectors",
    vectorRows === 0
      ? "none"
      : dimension
        ? `${vectorRows} (restored if this account's embedding settings match: ${manifest.embeddingConfig.model}, ${dimension} dimensions)`
        : `${vectorRows} (no dimension recorded: chats will be re-vectorized here)`,
  );
  fact("Encrypted API keys", report.secrets.count);
  box.append(facts);
  const details = make("details");
  details.append(make("summary", {}, "Rows per table"));
  const table = make("table");
  const body = make("tbody");
  for (const [name, rows] of Object.entries(report.counts)) {
    const row = make("tr");
    row.append(make("td", {}, name), make("td", { class: "n", "data-testid": `inspect-count-${name}` }, String(rows)));
    body.append(row);
  }
  table.append(body);
  details.append(table);
  box.append(details);
  for (const warning of report.warnings || []) box.append(make("p", { class: "warning" }, warning));
  box.hidden = false;

  importState.secretsDecided = report.secrets.count === 0;
  if (report.secrets.count > 0) {
    askForTicket(report.secrets.count, " (it stays on this device)");
  }
  $("import-start").disabled = !importState.secretsDecided;
}

// Shows the ticket question for an archive with `count` encrypted API keys.
function askForTicket(count, where) {
  text($("ticket-text"), `This archive carries ${count} encrypted API keys. Pick its decryption ticket${where}, or skip them.`);
  text($("ticket-state"), "");
  $("ticket-box").hidden = false;
}

$("import-file").addEventListener("change", (event) => {
  resetImport();
  const file = event.target.files[0];
  if (!file) return;
  importState.file = file;
  text($("import-progress"), "Verifying archive…");
  if (!worker) {
    // Fallback: no local inspection; the server checks everything.
    importState.secretsDecided = true;
    $("import-start").disabled = false;
    text($("import-progress"), "This browser cannot check archives locally; the server will.");
    return;
  }
  worker.postMessage({ kind: "open", file });
});

$("ticket-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  if (!worker) return answerTicket("ticket", await file.text());
  worker.postMessage({ kind: "ticket", text: await file.text() });
});

$("ticket-skip").addEventListener("click", () => {
  if (!worker) return answerTicket("skip-ticket");
  worker.postMessage({ kind: "skipSecrets" });
  importState.secretsDecided = true;
  text($("ticket-state"), "API keys will be skipped.");
  $("import-start").disabled = false;
});

// The summary's domains, in the seed documents' words, and the tables each gathers.
const SUMMARY_DOMAINS = [
  ["Characters", ["characters", "character_gallery"]],
  ["Chats", ["chats", "messages", "message_breakdowns", "chat_chunks", "chat_memory_cache"]],
  ["Memory", ["memory_entities", "memory_mentions", "memory_relations", "memory_consolidations", "memory_font_colors",
    "memory_salience", "cortex_vaults", "cortex_vault_entities", "cortex_vault_relations", "cortex_vault_chunks",
    "cortex_chat_links"]],
  ["World books", ["world_books", "world_book_entries"]],
  ["Personas", ["personas"]],
  ["Presets & connections", ["presets", "connection_profiles", "image_gen_connections", "tts_connections",
    "stt_connections"]],
  ["Images & themes", ["images", "theme_assets"]],
  ["Databanks", ["databanks", "databank_documents", "databank_chunks"]],
  ["Packs & extensions", ["packs", "loom_items", "loom_tools", "lumia_items", "regex_scripts", "extensions",
    "global_addons", "mcp_servers"]],
  ["Dream Weaver", ["dream_weaver_sessions", "dream_weaver_messages", "dream_weaver_saved_prompts", "weaver_sessions",
    "weaver_extraction", "weaver_interview_turns", "weaver_bible", "weaver_fields", "weaver_taste"]],
  ["Settings", ["settings"]],
  ["API keys", ["secrets"]],
];
const SUMMARY_FIELDS = ["imported", "remapped", "merged", "skipped", "rejected"];

function renderSummary(status) {
  const table = $("import-summary");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  const counts = status.summary || {};
  const placed = new Set(SUMMARY_DOMAINS.flatMap(([, tables]) => tables));
  const other = Object.keys(counts).filter((name) => !placed.has(name));
  for (const [label, tables] of [...SUMMARY_DOMAINS, ["Other", other]]) {
    const present = tables.filter((name) => name in counts);
    if (present.length === 0) continue;
    const slug = label.toLowerCase().replace(/[^a-z]+/g, "-");
    const heading = make("tr", { class: "domain", "data-testid": `summary-domain-${slug}` });
    heading.append(make("th", { scope: "rowgroup" }, label));
    for (const field of SUMMARY_FIELDS) {
      const total = present.reduce((sum, name) => sum + (counts[name][field] ?? 0), 0);
      heading.append(make("td", { class: "n", "data-testid": field }, String(total)));
    }
    body.append(heading);
    for (const name of present) {
      const row = make("tr", { class: "table-row", "data-testid": `summary-${name}` });
      row.append(make("th", { scope: "row" }, name.replace(/_/g, " ")));
      for (const field of SUMMARY_FIELDS) {
        row.append(make("td", { class: "n", "data-testid": field }, String(counts[name][field] ?? 0)));
      }
      body.append(row);
    }
  }
  table.hidden = false;
  const dropped = $("import-notes");
  dropped.replaceChildren();
  for (const [name, columns] of Object.entries(status.droppedColumns || {})) {
    const plural = columns.length === 1 ? "a column" : "columns";
    dropped.append(
      make(
        "p",
        { class: "warning", "data-testid": `dropped-${name}` },
        `Not kept: the archive's ${name} rows have ${plural} this server does not know ` +
          `(${columns.join(", ")}). Those values were not imported; the archive may come from a newer Lumiverse.`,
      ),
    );
  }
  for (const notice of status.notices || []) {
    dropped.append(make("p", { class: "notice", "data-testid": "import-notice" }, notice));
  }
  if (status.vectorSummary && status.vectorSummary.restored === false && status.revectorized > 0) {
    const note = make("p", { class: "notice", "data-testid": "import-revectorize" });
    note.append(
      `Vectors were not restored (${status.vectorSummary.reason || "no vectors in the archive"}): ` +
        `${status.revectorized} rows wait to be embedded again. Memory and world-book search find nothing for them until then. `,
      make("a", { href: "#embeddings" }, "Watch progress in Settings → Embeddings"),
      ".",
    );
    dropped.append(note);
    loadEmbeddings();
  }
  dropped.hidden = dropped.childElementCount === 0;
  const ticket = status.ticket;
  if (ticket && ticket.wasReused) {
    const when = ticket.previouslyConsumedAt ? new Date(ticket.previouslyConsumedAt * 1000).toLocaleString() : "before";
    text($("ticket-reused"), `This ticket was already used (${when}). If that was not you, rotate these API keys.`);
    $("ticket-reused").hidden = false;
  }
}

async function finalStatus(jobId) {
  if (!jobId) return null;
  const answer = await api(`/api/v1/user-data/import/${jobId}/status`);
  return answer.status === 200 ? answer.json() : null;
}

function progressWords(progress) {
  const percent = progress.bytesTotal ? Math.floor((100 * progress.bytesDone) / progress.bytesTotal) : 0;
  $("import-bar").value = percent;
  switch (progress.phase) {
    case "tables":
      return `Uploading… ${percent}% — Applying ${progress.item} (${progress.rows})…`;
    case "vectors":
      return `Uploading… ${percent}% — Restoring vectors for ${progress.item}…`;
    case "files":
      return `Uploading… ${percent}% — Restoring files… ${progress.filesDone}/${progress.filesTotal}`;
    case "secrets":
      return "Restoring API keys…";
    case "committing":
      return "Finishing import…";
    default:
      return `Uploading… ${percent}%`;
  }
}

function importing(on) {
  $("import-start").disabled = on;
  $("import-cancel").hidden = !on;
  $("import-bar").hidden = !on;
  $("import-file").disabled = on;
}

$("import-start").addEventListener("click", async () => {
  importing(true);
  delete $("import-status").dataset.outcome;
  text($("import-status"), "running");
  if (worker) {
    worker.postMessage({ kind: "upload", resume: importState.resume });
    return;
  }
  // Raw fallback.
  text($("import-progress"), "Uploading…");
  const answer = await api("/api/v1/user-data/import", { method: "POST", body: importState.file });
  const accepted = await answer.json();
  if (answer.status !== 202) return finish({ error: { code: accepted.code, message: accepted.error } });
  importState.jobId = accepted.jobId;
  let asked = false;
  // Polled until the job ends (at most a day: the server ends stalled jobs long before).
  for (let i = 0; i < 432000; i++) {
    const status = await finalStatus(accepted.jobId);
    if (status && status.status === "awaiting_ticket" && !asked) {
      // As on the Worker path, the user decides: the ticket, or no API keys.
      asked = true;
      askForTicket(status.secretsCount, "");
      text($("import-progress"), "Waiting for the ticket…");
    }
    if (status && ["complete", "failed", "cancelled"].includes(status.status)) return finish({ status });
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});

// The fallback's answer to the server's ticket question.
async function answerTicket(path, body) {
  const answer = await api(`/api/v1/user-data/import/${importState.jobId}/${path}`, { method: "POST", body });
  const json = await answer.json().catch(() => ({}));
  if (answer.status !== 200) {
    text($("ticket-state"), `${json.code}: ${json.error || json.message || ""}`);
    return;
  }
  $("ticket-box").hidden = true;
  text($("import-progress"), "Importing…");
}

$("import-cancel").addEventListener("click", async () => {
  if (importState.jobId) await api(`/api/v1/user-data/import/${importState.jobId}/cancel`, { method: "POST" });
  text($("import-progress"), "Cancelling…");
});

async function finish({ status, error, report }) {
  importing(false);
  if (report && report.filesHeld > 0) {
    const megabytes = (report.heldBytes / 1e6).toFixed(1);
    text($("import-held"), `${report.filesHeld} files (${megabytes} MB) were already on this server with the same contents, so they were not sent again.`);
    $("import-held").hidden = false;
  }
  const final = status || (await finalStatus(importState.jobId));
  if (final) {
    text($("import-status"), final.status);
    if (final.summary) renderSummary(final);
  } else {
    text($("import-status"), "failed");
  }
  if (final && ["complete", "failed", "cancelled"].includes(final.status)) forgetUpload();
  if (final && !["complete", "failed", "cancelled"].includes(final.status)) {
    // The job still takes batches: the upload was cut (network); the same file resumes it.
    text($("import-status"), "interrupted");
    text($("import-progress"), `Upload interrupted (${(error && error.message) || "connection lost"}). Pick the same file again to resume.`);
    return;
  }
  if (final && final.status === "complete") text($("import-progress"), "Import complete");
  else if (final && final.status === "cancelled") text($("import-progress"), "Import cancelled");
  else text($("import-progress"), `Import failed: ${(error && error.code) || (final && final.error && final.error.code)} — ${(error && error.message) || (final && final.error && final.error.message) || ""}`);
}

// A Worker whose Wasm module trapped (out of memory, a panic) cannot be used again: it is
// ended and a new one started, so the next archive works without reloading the page.
function restartWorker(error) {
  worker.terminate();
  worker = wireWorker(new Worker("/worker.js"));
  resetImport();
  importing(false);
  $("import-file").value = "";
  text($("import-progress"), `The archive processor failed (${error.code}: ${error.message}) and was restarted. Pick an archive again.`);
}

function wireWorker(target) {
  target.onerror = (event) => {
    text($("import-progress"), `The archive processor stopped: ${event.message}`);
    importing(false);
  };
  target.onmessage = ({ data }) => {
    if (explorer.handle(data)) return;
    switch (data.kind) {
      case "report":
        explorer.reset(true);
        importState.report = data.report;
        // For tests and benchmarks, on the element their hook names (never on window).
        $("inspect-report").dataset.report = JSON.stringify(data.report);
        text($("import-progress"), `Checked on this device in ${Math.round(data.report.openMs)} ms.`);
        renderReport(data.report);
        offerResume(data.report, importState.file);
        break;
      case "refused":
        text($("import-progress"), "");
        showRefusal(data.error);
        break;
      case "ticket": {
        const { decrypted, failed } = data.result;
        text($("ticket-state"), `Ticket accepted: ${decrypted} API keys decrypted on this device${failed.length ? `, ${failed.length} could not be` : ""}.`);
        importState.secretsDecided = true;
        $("import-start").disabled = false;
        break;
      }
      case "ticketRefused":
        text($("ticket-state"), `${data.error.code}: ${data.error.message}`);
        break;
      case "job":
        importState.jobId = data.jobId;
        rememberUpload(data.jobId);
        break;
      case "progress":
        text($("import-progress"), progressWords(data.progress));
        break;
      case "complete":
        $("import-status").dataset.outcome = JSON.stringify({ seconds: data.seconds, wireBytes: data.wireBytes, waitMs: data.waitMs, report: data.report });
        finish({ status: data.status, report: data.report });
        break;
      case "failed":
        finish({ error: data.error });
        break;
      case "crashed":
        text($("import-progress"), `The archive processor failed: ${data.error.code}: ${data.error.message}`);
        importing(false);
        break;
      case "fatal":
        restartWorker(data.error);
        break;
    }
  };
  return target;
}

// ---- Settings → Embeddings ---------------------------------------------------------------
const EMBEDDING_STATES = {
  idle: "idle",
  running: "running",
  complete: "complete",
  cancelled: "cancelled",
  unauthorized: "stopped: the provider refused the API key",
  dimension_mismatch: "stopped: the provider's vectors have another length than the dimensions set here",
  provider_error: "stopped: the provider refused the request",
  unreachable: "stopped: the provider could not be reached",
  embeddings_not_confirmed: "waiting: the settings were restored from a backup; check and save them first",
  quota_exceeded: "stopped: the account is out of disk quota",
  private_host: "stopped: this server does not call addresses inside its own network",
  failed: "stopped: the server could not finish",
};
let embeddingEvents = null;

function showEmbeddingStatus(status) {
  const total = status.total || status.done + status.pending;
  text($("embeddings-progress"), `${status.done}/${total}`);
  $("embeddings-bar").value = total ? Math.floor((100 * status.done) / total) : 0;
  const words = EMBEDDING_STATES[status.status] || status.status;
  const rate = status.status === "running" && status.rate ? ` · ${status.rate.toFixed(1)} rows/s` : "";
  text($("embeddings-status"), `${words}${rate}${status.pending && status.status !== "running" ? ` · ${status.pending} waiting` : ""}`);
  $("embeddings-status").dataset.state = status.status;
  $("embeddings-error").hidden = !status.error;
  text($("embeddings-error"), status.error || "");
  $("embeddings-cancel").disabled = status.status !== "running";
  $("embeddings-start").disabled = status.status === "running";
  text($("embeddings-start"), status.pending && status.done ? "Resume" : "Start");
}

function followEmbeddings() {
  if (embeddingEvents) embeddingEvents.close();
  embeddingEvents = new EventSource("/api/v1/embeddings/events");
  embeddingEvents.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    showEmbeddingStatus(status);
    if (status.status !== "running") {
      embeddingEvents.close();
      embeddingEvents = null;
    }
  });
  embeddingEvents.onerror = () => {
    if (embeddingEvents) embeddingEvents.close();
    embeddingEvents = null;
  };
}

async function loadEmbeddings() {
  const answer = await api("/api/v1/embeddings/config");
  if (answer.status !== 200) return;
  const config = await answer.json();
  $("embeddings-provider").value = config.provider;
  $("embeddings-url").value = config.api_url;
  $("embeddings-model").value = config.model;
  $("embeddings-dimensions").value = config.dimensions ?? "";
  $("embeddings-key").value = "";
  $("embeddings-key").placeholder = config.has_api_key ? "stored (type to replace)" : "none stored";
  // A setting an import brought is off until its user saves it here; nothing is sent before.
  $("embeddings-restored").hidden = !config.restored;
  text($("embeddings-restored"), config.restored
    ? `Restored from a backup: check and enable. These settings came with an imported archive and stay switched off — nothing is sent to ${config.endpoint} — until you save them.`
    : "");
  // A stored key goes only to the address it was saved for.
  const keyNote = "key_saved_for" in config;
  $("embeddings-key-note").hidden = !keyNote;
  text($("embeddings-key-note"), !keyNote ? "" : config.key_saved_for === null
    ? `An API key restored from a backup waits: saving these settings lets it be sent to ${config.endpoint}, and nowhere else.`
    : `The stored API key was saved for ${config.key_saved_for} and is only ever sent there. Enter it again to use it with ${config.endpoint}.`);
  $("embeddings-chats").checked = config.vectorize_chat_messages;
  $("embeddings-worldbooks").checked = config.vectorize_world_books;
  $("embeddings-documents").checked = config.vectorize_chat_documents;
  followEmbeddings();
}

async function embeddingsAnswer(answer, success) {
  const body = await answer.json().catch(() => ({}));
  if (answer.status === 200) text($("embeddings-message"), success(body));
  else text($("embeddings-message"), `${body.code || answer.status}: ${body.error || "the server refused"}`);
  return answer.status === 200 ? body : null;
}

$("embeddings-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const dimensions = $("embeddings-dimensions").value.trim();
  const update = {
    enabled: true,
    provider: $("embeddings-provider").value,
    model: $("embeddings-model").value.trim(),
    dimensions: dimensions ? Number(dimensions) : null,
    send_dimensions: Boolean(dimensions),
    vectorize_chat_messages: $("embeddings-chats").checked,
    vectorize_world_books: $("embeddings-worldbooks").checked,
    vectorize_chat_documents: $("embeddings-documents").checked,
  };
  if ($("embeddings-url").value.trim()) update.api_url = $("embeddings-url").value.trim();
  if ($("embeddings-key").value) update.api_key = $("embeddings-key").value;
  const answer = await api("/api/v1/embeddings/config", {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(update),
  });
  if (await embeddingsAnswer(answer, (config) => `Saved. Requests go to ${config.endpoint}.`)) await loadEmbeddings();
});

$("embeddings-test").addEventListener("click", async () => {
  text($("embeddings-message"), "Testing…");
  const answer = await api("/api/v1/embeddings/test", { method: "POST" });
  await embeddingsAnswer(answer, (body) => `Connected: ${body.model} answered a vector of ${body.dimensions} dimensions.`);
});

$("embeddings-start").addEventListener("click", async () => {
  const answer = await api("/api/v1/embeddings/start", { method: "POST" });
  const status = await embeddingsAnswer(answer, () => "");
  if (status) {
    showEmbeddingStatus(status);
    followEmbeddings();
  }
});

$("embeddings-cancel").addEventListener("click", async () => {
  await api("/api/v1/embeddings/cancel", { method: "POST" });
  text($("embeddings-message"), "Cancelling…");
});

showApp();
