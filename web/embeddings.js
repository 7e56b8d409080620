// The Settings → Embeddings card: the account's embeddings provider (URL, model,
// dimensions, a key that is never shown back), a connection test, and the re-vectorization
// run — rows an import could not restore vectors for — followed on its event stream.
import { api, getJson, readJson, refusalOf, sendJson } from "./api.js";
import { $, text } from "./dom.js";
import { EmbeddingsRun } from "./protocol.js";

/** A run's status in words: its own states, and the error codes a run stops on. */
const RUN_WORDS = {
  [EmbeddingsRun.IDLE]: "idle",
  [EmbeddingsRun.RUNNING]: "running",
  [EmbeddingsRun.COMPLETE]: "complete",
  [EmbeddingsRun.CANCELLED]: "cancelled",
  unauthorized: "stopped: the provider refused the API key",
  dimension_mismatch: "stopped: the provider's vectors have another length than the dimensions set here",
  provider_error: "stopped: the provider refused the request",
  unreachable: "stopped: the provider could not be reached",
  embeddings_not_confirmed: "waiting: the settings were restored from a backup; check and save them first",
  quota_exceeded: "stopped: the account is out of disk quota",
  private_host: "stopped: this server does not call addresses inside its own network",
  failed: "stopped: the server could not finish",
};

/** Wires the embeddings card; `load()` reads the setting and follows the run. */
export function createEmbeddingsCard() {
  let events = null;

  function showStatus(status) {
    const total = status.total || status.done + status.pending;
    const running = status.status === EmbeddingsRun.RUNNING;
    text($("embeddings-progress"), `${status.done}/${total}`);
    $("embeddings-bar").value = total ? Math.floor((100 * status.done) / total) : 0;
    const words = RUN_WORDS[status.status] || status.status;
    const rate = running && status.rate ? ` · ${status.rate.toFixed(1)} rows/s` : "";
    text($("embeddings-status"), `${words}${rate}${status.pending && !running ? ` · ${status.pending} waiting` : ""}`);
    $("embeddings-status").dataset.state = status.status;
    $("embeddings-error").hidden = !status.error;
    text($("embeddings-error"), status.error || "");
    $("embeddings-cancel").disabled = !running;
    $("embeddings-start").disabled = running;
    text($("embeddings-start"), status.pending && status.done ? "Resume" : "Start");
  }

  function follow() {
    if (events) events.close();
    events = new EventSource("/api/v1/embeddings/events");
    events.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      showStatus(status);
      if (status.status !== EmbeddingsRun.RUNNING) {
        events.close();
        events = null;
      }
    });
    events.onerror = () => {
      if (events) events.close();
      events = null;
    };
  }

  async function load() {
    const config = await getJson("/api/v1/embeddings/config");
    if (!config) return;
    $("embeddings-provider").value = config.provider;
    $("embeddings-url").value = config.api_url;
    $("embeddings-model").value = config.model;
    $("embeddings-dimensions").value = config.dimensions ?? "";
    $("embeddings-key").value = "";
    $("embeddings-key").placeholder = config.has_api_key ? "stored (type to replace)" : "none stored";
    // A setting an import brought is off until its user saves it here; nothing is sent before.
    $("embeddings-restored").hidden = !config.restored;
    text(
      $("embeddings-restored"),
      config.restored
        ? `Restored from a backup: check and enable. These settings came with an imported archive and stay switched off — nothing is sent to ${config.endpoint} — until you save them.`
        : "",
    );
    // A stored key goes only to the address it was saved for.
    const keyNote = "key_saved_for" in config;
    $("embeddings-key-note").hidden = !keyNote;
    text(
      $("embeddings-key-note"),
      !keyNote
        ? ""
        : config.key_saved_for === null
          ? `An API key restored from a backup waits: saving these settings lets it be sent to ${config.endpoint}, and nowhere else.`
          : `The stored API key was saved for ${config.key_saved_for} and is only ever sent there. Enter it again to use it with ${config.endpoint}.`,
    );
    $("embeddings-chats").checked = config.vectorize_chat_messages;
    $("embeddings-worldbooks").checked = config.vectorize_world_books;
    $("embeddings-documents").checked = config.vectorize_chat_documents;
    follow();
  }

  /** Says `success(body)` for a 200 answer and the refusal otherwise; the body, or null. */
  async function said(answer, success) {
    const body = await readJson(answer);
    if (answer.status === 200) {
      text($("embeddings-message"), success(body));
      return body;
    }
    const { code, message } = refusalOf(answer.status, body);
    text($("embeddings-message"), `${code}: ${message || "the server refused"}`);
    return null;
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
    const answer = await sendJson("/api/v1/embeddings/config", update, "PUT");
    if (await said(answer, (config) => `Saved. Requests go to ${config.endpoint}.`)) await load();
  });

  $("embeddings-test").addEventListener("click", async () => {
    text($("embeddings-message"), "Testing…");
    const answer = await api("/api/v1/embeddings/test", { method: "POST" });
    await said(answer, (body) => `Connected: ${body.model} answered a vector of ${body.dimensions} dimensions.`);
  });

  $("embeddings-start").addEventListener("click", async () => {
    const answer = await api("/api/v1/embeddings/start", { method: "POST" });
    const status = await said(answer, () => "");
    if (status) {
      showStatus(status);
      follow();
    }
  });

  $("embeddings-cancel").addEventListener("click", async () => {
    await api("/api/v1/embeddings/cancel", { method: "POST" });
    text($("embeddings-message"), "Cancelling…");
  });

  return { load };
}
