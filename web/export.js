// The export card: asks the server to prepare an archive, lets the browser download it
// straight to disk (it never passes through the page), saves the decryption ticket when
// API keys are included, and follows the export's progress events in words.
//
// "Export only some items" lists the account's own characters, chats, personas, world books
// and presets a page at a time (`GET …/items`), keeps the boxes ticked while the lists are
// paged, and exports just those with what they need (`only`; never API keys). Hooks:
// `export-kind`, `export-items` (with `data-kind`, `data-start`, `data-total` once drawn),
// `export-pick-<kind>-<id>`, `export-items-*` (its pager), `export-without-chats`,
// `export-picked`, `export-selected`, `export-clear`.
import { getJson, readJson, refusalOf, refusalWords, sendJson } from "./api.js";
import { $, make, text } from "./dom.js";
import { number, pager, pickedWords, plural } from "./pager.js";
import { ExportPhase, MAX_PICKS, exportEnded } from "./protocol.js";

/** Items per page of the account's lists. */
const ITEMS_PAGE = 50;

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

/** Prepares an export (`body`: the prepare request), downloads it and its ticket, and
 * follows its progress; `button` is disabled meanwhile. */
async function startExport(button, body) {
  button.disabled = true;
  $("export-notice").hidden = true;
  try {
    const answer = await sendJson("/api/v1/user-data/export/prepare", body);
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

/** "Export only some items": the account's lists, the picks, Export selected. */
function createItemPicker() {
  // `KIND:ID` → kind of every ticked item; the page of the list last asked for.
  const picks = new Map();
  let asked = null;

  function showPicks() {
    const count = picks.size;
    text($("export-picked"), count ? `${plural(count, "item", "items")} picked: ${pickedWords(picks.values())}.` : "Nothing picked.");
    $("export-selected").disabled = count === 0;
    $("export-clear").disabled = count === 0;
  }

  function itemEntry(kind, item) {
    const key = `${kind}:${item.id}`;
    const entry = make("li");
    const label = make("label", { class: "check" });
    const box = make("input", { type: "checkbox", "data-testid": `export-pick-${kind}-${item.id}` });
    box.checked = picks.has(key);
    box.addEventListener("change", () => {
      if (box.checked && picks.size >= MAX_PICKS) {
        box.checked = false;
        return text($("export-picked"), `One export takes at most ${number(MAX_PICKS)} picked items.`);
      }
      if (box.checked) picks.set(key, kind);
      else picks.delete(key);
      showPicks();
    });
    label.append(box, make("span", {}, item.name || "(no name)"));
    entry.append(label);
    return entry;
  }

  /** Asks for a page of the chosen kind's list and draws it (a later request wins). */
  async function list(start) {
    const kind = $("export-kind").value;
    const request = (asked = { kind, start });
    const items = $("export-items");
    items.setAttribute("aria-busy", "true");
    const page = await getJson(`/api/v1/user-data/items?kind=${encodeURIComponent(kind)}&start=${start}&count=${ITEMS_PAGE}`);
    if (asked !== request) return;
    items.removeAttribute("aria-busy");
    if (!page) {
      items.replaceChildren(make("li", { class: "muted" }, "Your items could not be listed. Open this section again to retry."));
      return;
    }
    const entries = page.items.map((item) => itemEntry(kind, item));
    if (page.total === 0) entries.push(make("li", { class: "muted" }, "None in your account."));
    if (page.total > ITEMS_PAGE) {
      const noun = $("export-kind").selectedOptions[0].textContent;
      const go = (to) => list(to);
      entries.push(pager("li", {}, "export-items", { start: page.start, shown: page.items.length, total: page.total, size: ITEMS_PAGE, noun, go }));
    }
    items.replaceChildren(...entries);
    // Set last: tests wait for it.
    Object.assign(items.dataset, { kind, start: String(page.start), total: String(page.total) });
  }

  $("export-some").addEventListener("toggle", () => {
    if ($("export-some").open) list(0);
  });
  $("export-kind").addEventListener("change", () => list(0));
  $("export-clear").addEventListener("click", () => {
    picks.clear();
    for (const box of $("export-items").querySelectorAll("input[type=checkbox]")) box.checked = false;
    showPicks();
  });
  $("export-selected").addEventListener("click", () =>
    startExport($("export-selected"), {
      includeVectors: $("export-vectors").checked,
      only: [...picks.keys()],
      withoutChats: $("export-without-chats").checked,
    }).then(showPicks),
  );
  showPicks();
}

/** Wires the export card. */
export function createExportCard() {
  $("export-secrets").addEventListener("change", (event) => {
    $("export-secrets-warning").hidden = !event.target.checked;
  });
  $("export-download").addEventListener("click", () =>
    startExport($("export-download"), { includeVectors: $("export-vectors").checked, includeSecrets: $("export-secrets").checked }),
  );
  createItemPicker();
}
