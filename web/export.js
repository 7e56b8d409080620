// The export card: asks the server to prepare an archive, lets the browser download it
// straight to disk (it never passes through the page), saves the decryption ticket when
// API keys are included, and follows the export's progress events in words.
import { readJson, refusalOf, refusalWords, sendJson } from "./api.js";
import { $, make, text } from "./dom.js";
import { ExportPhase, exportEnded } from "./protocol.js";

/** The export's progress in the seed documents' words. */
function exportWords(event) {
  const table = (event.table || "").replace(/_/g, " ");
  switch (event.phase) {
    case ExportPhase.TABLE:
    case ExportPhase.TABLE_DONE:
      return `Exporting ${table}…`;
    case ExportPhase.FILES:
    case ExportPhase.FILES_DONE:
      return `Bundling files… ${event.processed}/${event.total}`;
    case ExportPhase.LANCEDB:
    case ExportPhase.LANCEDB_TABLE_DONE:
      return `Exporting vectors (${table})…`;
    case ExportPhase.SECRETS:
      return "Encrypting API keys…";
    case ExportPhase.COMPLETE:
      return "Export complete.";
    case ExportPhase.FAILED:
      return `Export failed: ${event.code || ""} ${event.error || ""}`.trim();
    case ExportPhase.CANCELLED:
      return "Export cancelled.";
    default:
      return "Exporting…";
  }
}

function download(url, filename) {
  const link = make("a", { href: url, download: filename || "" });
  document.body.append(link);
  link.click();
  link.remove();
}

/** Shows the export's progress events until the last. The server names each event by its
 * phase, so every phase is listened for by name (`onmessage` hears unnamed ones only). */
function followExport(url) {
  const events = new EventSource(url);
  const shown = (message) => {
    const event = JSON.parse(message.data);
    text($("export-progress"), exportWords(event));
    if (exportEnded(event.phase)) events.close();
  };
  for (const phase of Object.values(ExportPhase)) events.addEventListener(phase, shown);
  // A dropped stream is not retried: the download itself goes on either way.
  events.onerror = () => events.close();
}

async function startExport() {
  const button = $("export-download");
  button.disabled = true;
  $("export-notice").hidden = true;
  try {
    const answer = await sendJson("/api/v1/user-data/export/prepare", {
      includeVectors: $("export-vectors").checked,
      includeSecrets: $("export-secrets").checked,
    });
    const prepared = await readJson(answer);
    if (answer.status !== 200) throw new Error(refusalWords(refusalOf(answer.status, prepared)));
    text($("export-progress"), "Download started.");
    followExport(prepared.eventsUrl);
    download(prepared.archiveUrl, prepared.archiveFilename);
    if (prepared.ticket) {
      const blob = new Blob([JSON.stringify(prepared.ticket, null, 2)], { type: "application/json" });
      download(URL.createObjectURL(blob), prepared.ticketFilename);
    }
    if (prepared.unreachableSecrets && prepared.unreachableSecrets.length) {
      const notice = $("export-notice");
      notice.replaceChildren(make("p", {}, "These secrets could not be decrypted and were left out:"));
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
}

/** Wires the export card. */
export function createExportCard() {
  $("export-secrets").addEventListener("change", (event) => {
    $("export-secrets-warning").hidden = !event.target.checked;
  });
  $("export-download").addEventListener("click", startExport);
}
