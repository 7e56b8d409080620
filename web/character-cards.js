// Character cards on the page: "Download card" (JSON, PNG, CHARX) on each character of the
// archive explorer, the characters chosen downloaded at once as one ZIP, and a card file the
// user picks or drops anywhere on the page read back and shown ("Check a character card").
// The Worker builds and reads every card from the local file: nothing is uploaded. A
// download is a blob: URL clicked as <a download>, revoked a minute later. Hooks:
// `card-<format>-<id>`, `card-choose-<id>`, `cards-zip-*`, `cards-state` (with `data-file`,
// `data-bytes`, `data-code` of the last download or refusal, and a card's `data-build-ms`
// and `data-wasm-memory-bytes`), `card-file`, `card-view*`.
import { refusalWords } from "./api.js";
import { $, make } from "./dom.js";
import { number, plural } from "./pager.js";
import { Kind } from "./protocol.js";

const FORMATS = { json: "JSON", png: "PNG", charx: "CHARX" };
const TYPES = { json: "application/json", png: "image/png", charx: "application/zip", zip: "application/zip" };

/** Characters one ZIP takes at most (the Worker refuses more). */
const ZIP_CARDS = 1000;

/** Where a card read back was found, in words. */
const SOURCES = { json: "a JSON file", "png-ccv3": "the PNG's ccv3 chunk", "png-chara": "the PNG's chara chunk", charx: "a CHARX's card.json" };

/** Up to two capital letters of a name's words ("Aria of the Lanterns" → "AL"), or "?". */
export function initials(name) {
  const words = String(name || "").match(/\p{L}[\p{L}\p{M}]*|\p{N}+/gu) || [];
  const picked = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return picked.map((w) => [...w][0].toLocaleUpperCase()).join("") || "?";
}

/** A character's picture when it has none (or it cannot be shown): its initials. */
export function placeholder(name, label) {
  return make("span", { class: "avatar initials", role: "img", "aria-label": label, "data-testid": "avatar-initials" }, initials(name));
}

function save(bytes, fileName, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const link = make("a", { href: url, download: fileName });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** `post(message)` sends a message to the current Worker. */
export function createCards(post) {
  const state = { seq: 0, waiting: null, chosen: new Map(), readSeq: 0 };

  function say(words, facts = {}) {
    const line = $("cards-state");
    line.textContent = words;
    for (const key of ["file", "bytes", "code", "buildMs", "wasmMemoryBytes"]) delete line.dataset[key];
    Object.assign(line.dataset, facts);
  }

  function ask(message, words) {
    state.waiting = ++state.seq;
    post({ ...message, seq: state.seq });
    say(words);
  }

  function showChosen() {
    const count = state.chosen.size;
    $("cards-chosen").textContent = count ? `${plural(count, "character", "characters")} chosen` : "Tick characters below to download their cards as one ZIP.";
    $("cards-zip-download").disabled = count === 0;
  }

  /** The card controls of one character of the explorer's list. */
  function actions(character) {
    const box = make("div", { class: "card-actions" });
    const choose = make("input", { type: "checkbox", "data-testid": `card-choose-${character.id}`, "aria-label": `Choose ${character.name || "this character"}` });
    choose.checked = state.chosen.has(character.id);
    choose.addEventListener("change", () => {
      if (choose.checked && state.chosen.size >= ZIP_CARDS) {
        choose.checked = false;
        return say(`One ZIP takes at most ${number(ZIP_CARDS)} cards.`);
      }
      if (choose.checked) state.chosen.set(character.id, character.name);
      else state.chosen.delete(character.id);
      showChosen();
    });
    box.append(choose, make("span", { class: "muted" }, "Download card:"));
    for (const [format, label] of Object.entries(FORMATS)) {
      const button = make("button", { type: "button", "data-testid": `card-${format}-${character.id}` }, label);
      button.setAttribute("aria-label", `Download ${character.name || "this character"}'s card as ${label}`);
      button.addEventListener("click", () =>
        ask({ kind: Kind.CARD, characterId: character.id, format }, `Building the ${label} card of ${character.name || "this character"}…`),
      );
      box.append(button);
    }
    return box;
  }

  function refused(error, what) {
    const hint = error.code === "unsupported_image" ? " Its JSON card can still be downloaded." : "";
    say(`${what}: ${refusalWords(error)}.${hint}`, { code: error.code });
  }

  // ---- a card file read back ------------------------------------------------------------
  function readCard(file) {
    if (!file) return;
    $("card-error").hidden = true;
    $("card-view").hidden = true;
    post({ kind: Kind.READ_CARD, file, seq: ++state.readSeq });
    $("card-check-state").textContent = `Reading ${file.name}…`;
  }

  function showCard(card) {
    const view = $("card-view");
    const facts = [`${card.spec}${card.specVersion ? ` ${card.specVersion}` : ""}`, `from ${SOURCES[card.source] || card.source}`];
    if (card.tags.length) facts.push(`tags: ${card.tags.join(", ")}`);
    facts.push(plural(card.alternateGreetings, "alternate greeting", "alternate greetings"));
    if (card.assets != null) facts.push(plural(card.assets, "picture", "pictures"));
    const fields = make("dl", { "data-testid": "card-view-fields" });
    for (const { field, text } of card.fields) fields.append(make("dt", {}, field.replace(/_/g, " ")), make("dd", {}, text));
    view.replaceChildren(make("h3", { "data-testid": "card-view-name" }, card.name), make("p", { class: "muted", "data-testid": "card-view-facts" }, facts.join(" · ")), fields);
    const book = card.book;
    if (book) {
      view.append(make("h4", {}, `Book: ${book.name || "(unnamed)"} (${plural(book.entriesTotal, "entry", "entries")})`));
      const entries = make("ol", { class: "transcript", "data-testid": "card-view-entries" });
      for (const entry of book.entries) {
        const item = make("li", { "data-testid": "card-view-entry" });
        const keys = entry.keys.length ? entry.keys.join(", ") : "(no keys)";
        item.append(make("span", { class: "who" }, `${keys}${entry.enabled ? "" : " · disabled"}${entry.comment ? ` · ${entry.comment}` : ""}`), make("span", {}, entry.content));
        entries.append(item);
      }
      if (book.entriesTotal > book.entries.length) entries.append(make("li", { class: "muted" }, `… and ${plural(book.entriesTotal - book.entries.length, "more entry", "more entries")}`));
      view.append(entries);
    }
    Object.assign(view.dataset, { name: card.name, source: card.source, entries: String(book ? book.entriesTotal : 0) });
    view.hidden = false;
    $("card-check-state").textContent = "";
  }

  // ---- wiring -----------------------------------------------------------------------------
  $("cards-zip-download").addEventListener("click", () => {
    const format = $("cards-zip-format").value;
    const characterIds = [...state.chosen.keys()];
    ask({ kind: Kind.CARDS_ZIP, characterIds, format }, `Building ${plural(characterIds.length, "card", "cards")}…`);
  });
  $("card-file").addEventListener("change", (event) => readCard(event.target.files[0]));
  // A file dropped anywhere on the page: an archive goes to the import card, anything else
  // is read as a card (and the browser never navigates away to show it).
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (!file) return;
    if (/\.(lvbak|zip)$/i.test(file.name)) {
      const input = $("import-file");
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    } else {
      $("card-check").scrollIntoView({ block: "start" });
      readCard(file);
    }
  });
  showChosen();

  return {
    actions,
    /** A new archive (or none): nothing is chosen, nothing waited for. */
    reset() {
      state.chosen.clear();
      state.waiting = null;
      say("");
      showChosen();
    },
    /** Handles the Worker's card messages; answers whether it was one. */
    handle(data) {
      switch (data.kind) {
        case Kind.CARD:
          if (data.seq !== state.waiting) return true;
          save(data.bytes, data.fileName, TYPES[data.format]);
          say(`Downloaded ${data.fileName} (${number(data.bytes.length)} bytes, built in ${Math.round(data.buildMs)} ms).`, {
            file: data.fileName,
            bytes: String(data.bytes.length),
            buildMs: String(data.buildMs),
            wasmMemoryBytes: String(data.wasmMemoryBytes),
          });
          return true;
        case Kind.CARDS_PROGRESS:
          if (data.seq === state.waiting) say(`Building cards… ${number(data.done)}/${number(data.total)}`);
          return true;
        case Kind.CARDS_ZIP: {
          if (data.seq !== state.waiting) return true;
          const fileName = `lvbak-cards-${data.format}.zip`;
          save(data.bytes, fileName, TYPES.zip);
          const left = data.skipped.map((s) => `${state.chosen.get(s.id) || s.id} (${s.code})`);
          const note = left.length ? ` Left out: ${left.join(", ")}.` : "";
          say(`Downloaded ${fileName}: ${plural(data.cards, "card", "cards")} (${number(data.bytes.length)} bytes).${note}`, { file: fileName, bytes: String(data.bytes.length) });
          return true;
        }
        case Kind.CARD_READ:
          if (data.seq === state.readSeq) showCard(data.card);
          return true;
        case Kind.CARD_FAILED:
          if (data.request === Kind.READ_CARD) {
            if (data.seq !== state.readSeq) return true;
            $("card-check-state").textContent = "";
            Object.assign($("card-error"), { hidden: false, textContent: refusalWords(data.error) });
            $("card-error").dataset.code = data.error.code;
          } else if (data.seq === state.waiting) {
            refused(data.error, data.request === Kind.CARDS_ZIP ? "The ZIP of cards could not be made" : "The card could not be made");
          }
          return true;
      }
      return false;
    },
  };
}
