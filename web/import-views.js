// What the import card shows, built from data and nothing else: the inspection report (the
// Worker's `report`), the import summary and its notes (the server's job status), and the
// words for an upload's progress, held files and a reused ticket. import.js decides when.
import { make } from "./dom.js";
import { UploadPhase } from "./protocol.js";

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
