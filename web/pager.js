// The explorer's pagers (first/previous/next/last and "noun X–Y of N") and the number
// words every explorer view uses (the export card's list of items too). No state: each
// pager is drawn from its page's numbers.
import { make } from "./dom.js";
import { ItemKind } from "./protocol.js";

export const number = (n) => n.toLocaleString("en-US");
export const plural = (n, one, many) => `${number(n)} ${n === 1 ? one : many}`;

/** Each item kind in words, one and many. */
const KIND_WORDS = {
  [ItemKind.CHARACTER]: ["character", "characters"],
  [ItemKind.CHAT]: ["chat", "chats"],
  [ItemKind.PERSONA]: ["persona", "personas"],
  [ItemKind.WORLD_BOOK]: ["world book", "world books"],
  [ItemKind.PRESET]: ["preset", "presets"],
};

/** Picked items (their kinds) counted by kind in words: "1 character, 2 chats". */
export function pickedWords(kinds) {
  const counts = new Map();
  for (const kind of kinds) counts.set(kind, (counts.get(kind) || 0) + 1);
  return Object.entries(KIND_WORDS)
    .filter(([kind]) => counts.has(kind))
    .map(([kind, [one, many]]) => plural(counts.get(kind), one, many))
    .join(", ");
}

/** First/previous/next/last buttons and "noun X–Y of N" for a page from `start` of
 * `size` within `total`; `go(start)` asks for another page. Hooks:
 * `${prefix}-first|previous|next|last|range`. */
export function pager(tag, attributes, prefix, { start, shown, total, size, noun, go }) {
  const box = make(tag, { class: "pager", ...attributes });
  const last = Math.max(0, Math.floor((total - 1) / size) * size);
  const button = (name, label, to, enabled) => {
    const b = make("button", { type: "button", class: "secondary", "data-testid": `${prefix}-${name}` }, label);
    b.disabled = !enabled;
    b.addEventListener("click", () => go(to));
    return b;
  };
  const range = shown ? `${noun} ${number(start + 1)}–${number(start + shown)} of ${number(total)}` : `${noun}: none here (of ${number(total)})`;
  box.append(
    button("first", "« First", 0, start > 0),
    button("previous", "‹ Previous", Math.max(0, start - size), start > 0),
    make("span", { "data-testid": `${prefix}-range`, "aria-live": "polite" }, range),
    button("next", "Next ›", start + size, start + size < total),
    button("last", "Last »", last, start < last),
  );
  return box;
}
