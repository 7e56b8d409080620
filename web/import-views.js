// What the import card shows, built from data and nothing else: the inspection report (the
// Worker's `report`), the restore preview (the server's `RestorePreview`), the import summary
// and its notes (the server's job status), and the words for an upload's progress, held
// files, a reused ticket and what a selective restore sends. import.js decides when.
import { refusalWords } from "./api.js";
import { make } from "./dom.js";
import { number, plural } from "./pager.js";
import { RestoreState, UploadPhase } from "./protocol.js";

/** The report's headline counts, in the seed documents' words. */
const REPORT_DOMAINS = [
  ["characters", "Characters"],
  ["chats", "Chats"],
  ["messages", "Messages"],
  ["world_books", "World books"],
  ["world_book_entries", "World book entries"],
  ["personas", "Personas"],
  ["presets", "Presets"],
  ["images", "Images"],
];

/** The inspection report's elements: facts, rows per table, warnings. */
export function reportView(report) {
  const manifest = report.manifest || {};
  const facts = make("dl");
  const fact = (name, value, testid) => {
    facts.append(make("dt", {}, name));
    facts.append(make("dd", testid ? { "data-testid": testid } : {}, String(value)));
  };
  fact("Archive", report.archiveId, "inspect-archive-id");
  fact("Exported", new Date((manifest.exportedAt || 0) * 1000).toLocaleString());
  fact("Made by", `${manifest.producer}${manifest.producerVersion ? " " + manifest.producerVersion : ""}`);
  for (const [table, label] of REPORT_DOMAINS) if (table in report.counts) fact(label, report.counts[table]);
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
  const details = make("details");
  details.append(make("summary", {}, "Rows per table"));
  const table = make("table");
  const body = make("tbody");
  // By name, as the page has always listed them (the report keeps the import order).
  const byName = Object.entries(report.counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, rows] of byName) {
    const row = make("tr");
    row.append(make("td", {}, name), make("td", { class: "n", "data-testid": `inspect-count-${name}` }, String(rows)));
    body.append(row);
  }
  table.append(body);
  details.append(table);
  const warnings = (report.warnings || []).map((warning) => make("p", { class: "warning" }, warning));
  return [facts, details, ...warnings];
}

/** The question for an archive with `count` encrypted API keys. */
export const ticketQuestion = (count, where) =>
  `This archive carries ${count} encrypted API keys. Pick its decryption ticket${where}, or skip them.`;

/** The Worker's answer to a ticket in words. */
export function ticketWords({ decrypted, failed }) {
  return `Ticket accepted: ${decrypted} API keys decrypted on this device${failed.length ? `, ${failed.length} could not be` : ""}.`;
}

/** The upload's progress (the Worker's `progress`) in words, and its percentage. */
export function progressWords(progress) {
  const percent = progress.bytesTotal ? Math.floor((100 * progress.bytesDone) / progress.bytesTotal) : 0;
  switch (progress.phase) {
    case UploadPhase.TABLES:
      return { percent, words: `Uploading… ${percent}% — Applying ${progress.item} (${progress.rows})…` };
    case UploadPhase.VECTORS:
      return { percent, words: `Uploading… ${percent}% — Restoring vectors for ${progress.item}…` };
    case UploadPhase.FILES:
      return { percent, words: `Uploading… ${percent}% — Restoring files… ${progress.filesDone}/${progress.filesTotal}` };
    case UploadPhase.SECRETS:
      return { percent, words: "Restoring API keys…" };
    case UploadPhase.COMMITTING:
      return { percent, words: "Finishing import…" };
    default:
      return { percent, words: `Uploading… ${percent}%` };
  }
}

/** What the Worker's upload report says of files the server had already, or "". */
export function heldWords(report) {
  if (!report || !(report.filesHeld > 0)) return "";
  const megabytes = (report.heldBytes / 1e6).toFixed(1);
  return `${report.filesHeld} files (${megabytes} MB) were already on this server with the same contents, so they were not sent again.`;
}

/** The warning for a ticket used before, or "". */
export function reusedWords(ticket) {
  if (!ticket || !ticket.wasReused) return "";
  const when = ticket.previouslyConsumedAt ? new Date(ticket.previouslyConsumedAt * 1000).toLocaleString() : "before";
  return `This ticket was already used (${when}). If that was not you, rotate these API keys.`;
}

/** The summary's domains, in the seed documents' words, and the tables each gathers. */
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

/** The summary table's rows: a row per domain with its totals, then a row per table. */
export function summaryRows(status) {
  const rows = [];
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
    rows.push(heading);
    for (const name of present) {
      const row = make("tr", { class: "table-row", "data-testid": `summary-${name}` });
      row.append(make("th", { scope: "row" }, name.replace(/_/g, " ")));
      for (const field of SUMMARY_FIELDS) {
        row.append(make("td", { class: "n", "data-testid": field }, String(counts[name][field] ?? 0)));
      }
      rows.push(row);
    }
  }
  return rows;
}

/** Whether the import left rows to be embedded again (its vectors were not restored). */
export const leftRowsToEmbed = (status) =>
  Boolean(status.vectorSummary && status.vectorSummary.restored === false && status.revectorized > 0);

/** The summary's notes: columns the server did not keep, its notices, rows left to embed. */
export function summaryNotes(status) {
  const notes = [];
  for (const [name, columns] of Object.entries(status.droppedColumns || {})) {
    const plural = columns.length === 1 ? "a column" : "columns";
    notes.push(
      make(
        "p",
        { class: "warning", "data-testid": `dropped-${name}` },
        `Not kept: the archive's ${name} rows have ${plural} this server does not know ` +
          `(${columns.join(", ")}). Those values were not imported; the archive may come from a newer Lumiverse.`,
      ),
    );
  }
  for (const notice of status.notices || []) {
    notes.push(make("p", { class: "notice", "data-testid": "import-notice" }, notice));
  }
  if (leftRowsToEmbed(status)) {
    const note = make("p", { class: "notice", "data-testid": "import-revectorize" });
    note.append(
      `Vectors were not restored (${status.vectorSummary.reason || "no vectors in the archive"}): ` +
        `${status.revectorized} rows wait to be embedded again. Memory and world-book search find nothing for them until then. `,
      make("a", { href: "#embeddings" }, "Watch progress in Settings → Embeddings"),
      ".",
    );
    notes.push(note);
  }
  return notes;
}

// ---- the restore preview -------------------------------------------------------------------

/** A preview's progress in words, and its percentage: the upload's, named a preview. */
export function previewProgressWords(progress) {
  if (progress.phase === UploadPhase.COMMITTING) return { percent: 100, words: "Previewing… comparing with your account" };
  const { percent } = progressWords(progress);
  const item = progress.phase === UploadPhase.TABLES && progress.item ? ` — reading ${progress.item}` : "";
  return { percent, words: `Previewing… ${percent}%${item}` };
}

/** The states' counts summed over every table of a preview. */
function previewTotals(preview) {
  const totals = Object.fromEntries(Object.values(RestoreState).map((state) => [state, 0]));
  for (const counts of Object.values(preview.tables || {})) {
    for (const state of Object.keys(totals)) totals[state] += counts[state] || 0;
  }
  return totals;
}

const countsTotal = (counts) => Object.values(RestoreState).reduce((sum, state) => sum + ((counts && counts[state]) || 0), 0);

/** Counts in words, the states that have any: "2 new, 15 unchanged". */
function countWords(counts) {
  const words = Object.values(RestoreState)
    .filter((state) => counts[state] > 0)
    .map((state) => `${number(counts[state])} ${STATE_WORDS[state]}`);
  return words.length ? words.join(", ") : "none";
}

const STATE_WORDS = {
  [RestoreState.NEW]: "new",
  [RestoreState.UNCHANGED]: "unchanged",
  [RestoreState.DIFFERS]: "differ",
  [RestoreState.REMAPPED]: "copied under new ids",
  [RestoreState.REFUSED]: "refused",
};

/** The preview's summary line: what a restore would do with the archive's rows and files. */
export function previewWords(preview) {
  const rows = previewTotals(preview);
  const parts = [`add ${plural(rows.new, "new row", "new rows")}`, `keep ${number(rows.unchanged)} unchanged`];
  if (rows.differs) parts.push(`leave ${number(rows.differs)} that ${rows.differs === 1 ? "differs" : "differ"} as your account has ${rows.differs === 1 ? "it" : "them"}`);
  if (rows.remapped) parts.push(`add ${number(rows.remapped)} as copies under new ids (their ids are another account's here)`);
  if (rows.refused) parts.push(`refuse ${number(rows.refused)}`);
  const last = parts.pop();
  const files = preview.files || {};
  const filesWords = countsTotal(files) ? ` Files: ${countWords(files)}.` : "";
  return `A restore would ${parts.join(", ")} and ${last}.${filesWords} Nothing was written.`;
}

/** Item kinds (lvbak-core's `ItemKind` words) in the page's words. */
const KIND_LABELS = {
  character: "Character",
  chat: "Chat",
  persona: "Persona",
  world_book: "World book",
  preset: "Preset",
};

/** The item groups, the important ones first: a heading's words for each state. */
const ITEM_GROUPS = [
  [RestoreState.NEW, "New", "Not in your account (deleted since the backup, or never here): a restore adds them."],
  [RestoreState.DIFFERS, "Different here", "Your account has another version: a restore keeps yours."],
  [RestoreState.REMAPPED, "Copied", "Their ids belong to another account here: a restore adds them as copies under new ids."],
  [RestoreState.REFUSED, "Refused", "They belong under something that is not yours here: a restore leaves them out."],
];

/** Items listed per group at most; the rest are counted. */
const ITEMS_LISTED = 200;

/** A time a message tally gives (`send_date`: seconds, or milliseconds from some writers). */
function dateWords(value) {
  if (typeof value !== "number") return "";
  return new Date(value < 1e11 ? value * 1000 : value).toLocaleString();
}

/** What differs of an item, in words, or "". */
export function differenceWords(differs) {
  if (!differs) return "";
  const words = [];
  if (differs.columns && differs.columns.length) words.push(`Differs in: ${differs.columns.join(", ")}.`);
  const tally = differs.messages;
  if (tally) {
    const lastHere = dateWords(tally.accountLastAt);
    const lastThere = dateWords(tally.archiveLastAt);
    words.push(
      `${plural(tally.edited, "message", "messages")} edited since, ${number(tally.missing)} missing; ` +
        `your account has ${plural(tally.account, "message", "messages")}${lastHere ? `, the last at ${lastHere}` : ""} ` +
        `(the backup has ${number(tally.archive)}${lastThere ? `, the last at ${lastThere}` : ""}).`,
    );
  }
  return words.join(" ");
}

/** One item's list entry: its kind and name, and for one that differs, what differs. */
function itemEntry(item) {
  const entry = make("li", { "data-testid": "preview-item", "data-kind": item.kind, "data-state": item.state });
  entry.dataset.id = item.id;
  const kind = KIND_LABELS[item.kind] || item.kind;
  entry.append(make("span", { class: "kind" }, `${kind} · `), make("span", {}, item.name || item.id));
  const differs = differenceWords(item.differs);
  if (differs) entry.append(make("span", { class: "muted differs" }, differs));
  return entry;
}

/** A list of items, at most `ITEMS_LISTED` of them and how many more. */
function itemList(items) {
  const list = make("ul", { class: "preview-items" });
  list.append(...items.slice(0, ITEMS_LISTED).map(itemEntry));
  if (items.length > ITEMS_LISTED) list.append(make("li", { class: "muted" }, `…and ${number(items.length - ITEMS_LISTED)} more.`));
  return list;
}

/** The preview's elements: rows per table (the tables that have any), the files, and the
 * items by state, the ones a restore would change first and the unchanged ones folded. */
export function previewView(preview) {
  const elements = [];
  const columns = [RestoreState.NEW, RestoreState.UNCHANGED, RestoreState.DIFFERS, RestoreState.REMAPPED, RestoreState.REFUSED];
  const headings = { new: "New", unchanged: "Unchanged", differs: "Differs", remapped: "Copied", refused: "Refused" };
  const tables = Object.entries(preview.tables || {}).filter(([, counts]) => countsTotal(counts) > 0);
  // Folded, as the inspection report's: the items below are what most look for.
  const perTable = make("details", { class: "preview-group" });
  perTable.append(make("summary", {}, `Rows per table (${plural(tables.length, "table", "tables")})`));
  if (tables.length) {
    const table = make("table", { "data-testid": "preview-tables" });
    const head = make("tr");
    head.append(make("th", { scope: "col" }, "Table"), ...columns.map((state) => make("th", { scope: "col", class: "n" }, headings[state])));
    const body = make("tbody");
    for (const [name, counts] of tables) {
      const row = make("tr", { "data-testid": `preview-table-${name}` });
      row.append(make("th", { scope: "row" }, name.replace(/_/g, " ")));
      for (const state of columns) row.append(make("td", { class: "n", "data-testid": state }, number(counts[state] || 0)));
      body.append(row);
    }
    const thead = make("thead");
    thead.append(head);
    table.append(thead, body);
    const scroll = make("div", { class: "scroll" });
    scroll.append(table);
    perTable.append(scroll);
  } else {
    perTable.append(make("p", {}, "The archive has no rows."));
  }
  elements.push(perTable);
  const files = preview.files || {};
  elements.push(make("p", { "data-testid": "preview-files" }, countsTotal(files) ? `Files: ${countWords(files)}.` : "The archive has no files."));

  const items = preview.items || [];
  elements.push(make("h4", {}, "Characters, chats, personas, world books and presets"));
  if (items.length === 0) elements.push(make("p", {}, "The archive has none."));
  for (const [state, title, meaning] of ITEM_GROUPS) {
    const group = items.filter((item) => item.state === state);
    if (group.length === 0) continue;
    const section = make("section", { class: "preview-group", "data-testid": `preview-items-${state}` });
    section.append(make("h5", {}, `${title}: ${number(group.length)}`), make("p", { class: "muted" }, meaning), itemList(group));
    elements.push(section);
  }
  const unchanged = items.filter((item) => item.state === RestoreState.UNCHANGED);
  if (unchanged.length) {
    const details = make("details", { class: "preview-group", "data-testid": "preview-items-unchanged" });
    details.append(make("summary", {}, `Unchanged: ${plural(unchanged.length, "item is", "items are")} in your account as the backup has ${unchanged.length === 1 ? "it" : "them"}`), itemList(unchanged));
    elements.push(details);
  }
  return elements;
}

// ---- a selective restore -------------------------------------------------------------------

/** The tables a selective restore's words name, and their rows in words. */
const SELECTION_TABLES = [
  ["characters", "character", "characters"],
  ["chats", "chat", "chats"],
  ["messages", "message", "messages"],
  ["personas", "persona", "personas"],
  ["world_books", "world book", "world books"],
  ["world_book_entries", "world book entry", "world book entries"],
  ["presets", "preset", "presets"],
];

/** What a selective restore sends, in words, from the Worker's rows per table (or that it is
 * being worked out, or cannot be); `needsTicket` when the API keys' question is still open. */
export function selectionWords({ picks, pending, tables, error, asCopy }, needsTicket) {
  if (error) return `The picked items cannot be restored: ${refusalWords(error)}. Change the picks, or clear them.`;
  if (pending) {
    return picks.length ? `Working out what the ${plural(picks.length, "picked item needs", "picked items need")}…` : "Clearing the picks…";
  }
  const named = new Set(SELECTION_TABLES.map(([table]) => table));
  const parts = SELECTION_TABLES.filter(([table]) => tables[table] > 0).map(([table, one, many]) => plural(tables[table], one, many));
  const others = Object.entries(tables).reduce((sum, [table, rows]) => sum + (named.has(table) ? 0 : rows), 0);
  if (others) parts.push(`${plural(others, "other row", "other rows")} they need or own`);
  const last = parts.pop() || "nothing";
  const list = parts.length ? `${parts.join(", ")} and ${last}` : last;
  const how = asCopy ? ", as a copy beside your account's version (new ids, names with the backup's date)" : "";
  const ticket = needsTicket ? " Answer the API keys' question first: skip them or give the ticket (none are sent with picked items)." : "";
  return `Restores only ${list}${how}. Preview restore and Upload & import send just these, and no API keys.${ticket}`;
}
