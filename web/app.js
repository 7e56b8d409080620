// The Data Portability page's entry point: sign-in, then the cards — export (export.js),
// import (import.js) with its archive explorer (explorer.js) and character cards
// (character-cards.js: downloads from the explorer, a card file checked), Settings →
// Embeddings (embeddings.js) — and the module Web Worker (worker.js) whose Wasm processor
// checks and uploads archives and builds cards. Browsers without Worker or WebAssembly get
// the import card's raw upload (and no cards).
import { getJson, sendJson } from "./api.js";
import { createCards } from "./character-cards.js";
import { $, text } from "./dom.js";
import { createEmbeddingsCard } from "./embeddings.js";
import { createExplorer } from "./explorer.js";
import { createExportCard } from "./export.js";
import { createImportCard } from "./import.js";
import { Kind } from "./protocol.js";

const capable = typeof Worker === "function" && typeof WebAssembly === "object";
// Replaced by a new one when its Wasm module traps (`fatal`): see startWorker.
let worker = null;
const post = (message) => worker.postMessage(message);
const cards = capable ? createCards(post) : null;
const explorer = capable ? createExplorer(post, cards) : null;
if (!capable) $("card-check").hidden = true;
const embeddings = createEmbeddingsCard();
createExportCard();
const importCard = createImportCard({ post: capable ? post : null, explorer, rowsToEmbed: () => embeddings.load() });
if (capable) startWorker();

/** Starts the Worker. One whose Wasm module trapped (out of memory, a panic) cannot be used
 * again: it is ended and a new one started, so the next archive works without a reload. */
function startWorker() {
  worker = new Worker("/worker.js", { type: "module" });
  // A module that failed to load says nothing more than that.
  worker.onerror = (event) => importCard.workerStopped(event.message || "it could not be loaded");
  worker.onmessage = ({ data }) => {
    if (explorer.handle(data) || cards.handle(data)) return;
    if (data.kind !== Kind.FATAL) return importCard.handle(data);
    worker.terminate();
    startWorker();
    importCard.workerRestarted(data.error);
  };
}

// ---- sign-in -------------------------------------------------------------------------
async function showApp() {
  const me = await getJson("/api/v1/auth/me");
  $("login").hidden = Boolean(me);
  $("portability").hidden = !me;
  if (!me) return;
  text($("whoami"), `Signed in as ${me.username || (me.user && me.user.username) || ""}`);
  embeddings.load();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const answer = await sendJson("/api/v1/auth/login", { username: form.get("username"), password: form.get("password") });
  if (answer.status !== 200) {
    text($("login-error"), "Wrong user name or password.");
    return;
  }
  text($("login-error"), "");
  await showApp();
});

showApp();
