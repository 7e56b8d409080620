// The archive explorer: a read-only view of the picked archive, built by the Worker from
// the local file (lvbak-core's explore index). Nothing here makes a request: pictures come
// from the Worker as bytes and are shown through blob: URLs, revoked when the explorer
// closes or another archive is picked. Lists, transcripts and world books come from the
// Worker a page at a time, so the page never holds more than a page of them.
//
// Characters, chats, personas, world books and presets each have a box to tick for a
// selective restore (hooks `pick-<kind>-<id>`, kinds as lvbak-core words them); the picks
// are kept here while the lists are paged, and handed to the import card (`onPicks`), which
// has the Worker work out what they need and restores just that (`restore-selected`).
import { refusalWords } from "./api.js";
import { $, make } from "./dom.js";
import { placeholder } from "./character-cards.js";
import { number, pager, pickedWords, plural } from "./pager.js";
import { ItemKind, Kind, MAX_PICKS } from "./protocol.js";

/** Cards per page of a list, messages per page of a transcript, entries per page of a
 * world book (the Worker hands out no more: lvbak-core's LIST_PAGE, MESSAGE_PAGE,
 * ENTRY_PAGE). */
const LIST_PAGE = 100;
const MESSAGE_PAGE = 200;
const ENTRY_PAGE = 100;

/** Pictures kept as blob: URLs at most. */
const PICTURES_KEPT = 300;

/** Each list's panel. */
const PANELS = {
  characters: "explore-characters",
  chats: "explore-chats",
  personas: "explore-personas",
  worldBooks: "explore-worldbooks",
  presets: "explore-presets",
  images: "explore-images",
};

/** The item kind each list's items are picked as. */
const PICKED_AS = {
  characters: ItemKind.CHARACTER,
  chats: ItemKind.CHAT,
  personas: ItemKind.PERSONA,
  worldBooks: ItemKind.WORLD_BOOK,
  presets: ItemKind.PRESET,
};

/** `post(message)` sends a message to the current Worker; `cards` (character-cards.js)
 * gives each character its card controls. */
export function createExplorer(post, cards) {
  const state = {
    explored: false,
    // Items ticked for a selective restore: `KIND:ID` → kind, kept while lists are paged.
    picks: new Map(),
    // Told of every change of the picks (the import card's `select`).
    onPicks: () => {},
    imagesTotal: 0,
    // The page of each list last asked for (answers to older requests are dropped).
    asked: {},
    // Chats are listed for one character (its id and name) or for all (null).
    chatsOf: null,
    chatsOfName: "",
    // The chat or book shown in the detail, the page asked for, and a message to show.
    detail: null,
    urls: new Map(),
    waiting: new Map(),
    searchSeq: 0,
    searchTimer: null,
  };

  // ---- pictures: asked of the Worker once each, when they come into view (so a long
  // gallery does not hold up opening a chat), shown through blob: URLs -----------------
  const inView =
    typeof IntersectionObserver === "function"
      ? new IntersectionObserver(
          (seen) => {
            for (const entry of seen) {
              if (!entry.isIntersecting) continue;
              inView.unobserve(entry.target);
              load(entry.target.dataset.picture, entry.target);
            }
          },
          { rootMargin: "300px" },
        )
      : null;
  function picture(name, img) {
    if (!name) return;
    if (!inView) return load(name, img);
    img.dataset.picture = name;
    inView.observe(img);
  }
  function load(name, img) {
    if (state.urls.has(name)) {
      img.src = state.urls.get(name);
      return;
    }
    const list = state.waiting.get(name);
    if (list) return list.push(img);
    state.waiting.set(name, [img]);
    post({ kind: Kind.EXPLORE_FILE, name });
  }
  function pictureArrived(name, bytes) {
    const type = name.endsWith(".webp") ? "image/webp" : name.endsWith(".png") ? "image/png" : "";
    const url = URL.createObjectURL(new Blob([bytes], type ? { type } : {}));
    state.urls.set(name, url);
    for (const img of state.waiting.get(name) || []) img.src = url;
    state.waiting.delete(name);
    // Paging through a long list would keep every picture seen: the oldest are let go (a
    // picture already shown stays shown; asked for again, it is read again).
    for (const [old, oldUrl] of state.urls) {
      if (state.urls.size <= PICTURES_KEPT) break;
      URL.revokeObjectURL(oldUrl);
      state.urls.delete(old);
    }
  }
  function forgetPictures() {
    if (inView) inView.disconnect();
    for (const url of state.urls.values()) URL.revokeObjectURL(url);
    state.urls.clear();
    state.waiting.clear();
  }

  /** Drops what an element's data attributes say of the last archive, chat or page. */
  function forgetData(element) {
    for (const key of Object.keys(element.dataset)) if (key !== "testid") delete element.dataset[key];
  }

  // ---- lists: one page of cards each, asked of the Worker -------------------------
  /** A picture, or the initials of `who` when there is none or it cannot be shown. */
  function avatar(name, label, who) {
    if (!name) return placeholder(who, label);
    const img = make("img", { alt: label, class: "avatar", loading: "lazy" });
    img.dataset.who = who || "";
    img.addEventListener("error", () => img.replaceWith(placeholder(who, label)), { once: true });
    picture(name, img);
    return img;
  }
  function opener(label, action) {
    const button = make("button", { type: "button" }, label);
    button.addEventListener("click", action);
    return button;
  }

  // ---- picks: a box per item, kept here while the lists are paged -----------------------
  /** The box that picks `item` of `list` for a selective restore. An id the explorer had to
   * clip (longer than any real one) cannot be picked: it names no row. */
  function pickBox(list, item, name) {
    const kind = PICKED_AS[list];
    const key = `${kind}:${item.id}`;
    const label = make("label", { class: "pick" });
    const box = make("input", { type: "checkbox", "data-testid": `pick-${kind}-${item.id}`, "aria-label": `Pick ${name} to restore` });
    box.checked = state.picks.has(key);
    box.disabled = item.id.endsWith("…");
    box.addEventListener("change", () => {
      if (box.checked && state.picks.size >= MAX_PICKS) {
        box.checked = false;
        $("picks-count").textContent = `One restore takes at most ${number(MAX_PICKS)} picked items.`;
        return;
      }
      if (box.checked) state.picks.set(key, kind);
      else state.picks.delete(key);
      picksChanged();
    });
    label.append(box, make("span", { "aria-hidden": "true" }, "Pick to restore"));
    return label;
  }

  /** Shows how many items are picked and tells the import card. */
  function picksChanged() {
    showPicks();
    state.onPicks({ picks: [...state.picks.keys()], withoutChats: $("picks-without-chats").checked, asCopy: $("picks-as-copy").checked });
  }

  function showPicks() {
    const count = state.picks.size;
    $("picks-count").textContent = count
      ? `${plural(count, "item", "items")} picked: ${pickedWords(state.picks.values())}.`
      : "Nothing picked: a restore brings back the whole archive. Tick items below to restore only them, with what they need and what belongs to them (no API keys).";
    $("picks-clear").disabled = count === 0;
    $("picks-bar").dataset.picks = String(count);
  }

  function clearPicks() {
    state.picks.clear();
    for (const box of document.querySelectorAll("#explorer input[data-testid^='pick-']")) box.checked = false;
  }

  function askList(list, start) {
    const characterId = list === "chats" ? state.chatsOf : null;
    state.asked[list] = { start, characterId };
    post({ kind: Kind.EXPLORE_LIST, list, characterId, start, count: LIST_PAGE });
  }

  const CARDS = {
    characters(c) {
      const item = make("li", { "data-testid": `explore-character-${c.id}` });
      const body = make("div");
      body.append(make("strong", {}, c.name || "(no name)"), make("p", { class: "muted" }, c.description));
      if (c.chats) body.append(opener(`${plural(c.chats, "chat", "chats")} ›`, () => showTab("explore-chats", c.id, c.name)));
      // One row of controls: the pick, then the card's (a box for the ZIP, downloads).
      const actions = cards.actions(c);
      actions.prepend(pickBox("characters", c, c.name || "this character"));
      body.append(actions);
      item.append(avatar(c.avatar, `${c.name}'s picture`, c.name), body);
      return item;
    },
    chats(chat) {
      const item = make("li", { "data-testid": `explore-chat-${chat.id}`, "data-messages": String(chat.messages) });
      const body = make("div");
      body.append(opener(chat.name || "(untitled chat)", () => openChat(chat.id, 0)), pickBox("chats", chat, chat.name || "this chat"));
      const members = chat.members.join(", ") + (chat.membersMore ? ` and ${plural(chat.membersMore, "other", "others")}` : "");
      const who = chat.members.length || chat.membersMore ? `group: ${members}` : chat.characterName;
      const facts = [who, plural(chat.messages, "message", "messages")].filter(Boolean);
      if (chat.branchedFrom) facts.push(branchWords(chat));
      body.append(make("p", { class: "muted", "data-testid": "explore-facts" }, facts.join(" · ")));
      item.append(body);
      return item;
    },
    personas(p) {
      const item = make("li", { "data-testid": `explore-persona-${p.id}` });
      const body = make("div");
      body.append(make("strong", {}, p.name), pickBox("personas", p, p.name || "this persona"), make("p", { class: "muted" }, p.description));
      item.append(avatar(p.avatar, `${p.name}'s picture`, p.name), body);
      return item;
    },
    worldBooks(b) {
      const item = make("li", { "data-testid": `explore-worldbook-${b.id}` });
      const body = make("div");
      body.append(make("strong", {}, b.name), make("p", { class: "muted" }, b.description));
      body.append(opener(`${plural(b.entries, "entry", "entries")} ›`, () => openBook(b.id, 0)), pickBox("worldBooks", b, b.name || "this world book"));
      item.append(body);
      return item;
    },
    presets(p) {
      const item = make("li", { "data-testid": `explore-preset-${p.id}` });
      const body = make("div");
      body.append(make("strong", {}, p.name), make("span", { class: "muted" }, ` ${p.provider}`), pickBox("presets", p, p.name || "this preset"));
      item.append(body);
      return item;
    },
    images(image) {
      const figure = make("figure");
      const img = make("img", { alt: image.name, loading: "lazy", "data-testid": `explore-image-${image.id}` });
      picture(image.thumbnail, img);
      const caption = make("figcaption");
      const open = opener(image.name, () => openImage(image));
      open.setAttribute("aria-label", `Show ${image.name} at full size`);
      caption.append(open);
      figure.append(img, caption);
      return figure;
    },
  };

  /** Shows one page of a list (the Worker's `{list, characterId, start, total, items}`). */
  function showList(page) {
    const asked = state.asked[page.list];
    if (asked && (asked.start !== page.start || (page.list === "chats" && asked.characterId !== (page.characterId || null)))) return;
    const panel = $(PANELS[page.list]);
    const images = page.list === "images";
    const note = (words) => make(images ? "p" : "li", { class: "muted" }, words);
    const cards = document.createDocumentFragment();
    if (page.list === "chats" && page.characterId) {
      const header = note(`Chats with ${state.chatsOfName || "this character"} · `);
      header.append(opener("All chats", () => showTab("explore-chats", null)));
      cards.append(header);
    }
    if (page.total === 0) cards.append(note("None in this archive."));
    for (const item of page.items) cards.append(CARDS[page.list](item));
    const prefix = PANELS[page.list];
    if (page.total > LIST_PAGE) {
      const noun = { characters: "Characters", chats: "Chats", personas: "Personas", worldBooks: "World books", presets: "Presets", images: "Images" }[page.list];
      cards.append(
        pager(images ? "div" : "li", { "data-testid": `${prefix}-pager` }, prefix, {
          start: page.start,
          shown: page.items.length,
          total: page.total,
          size: LIST_PAGE,
          noun,
          go: (start) => askList(page.list, start),
        }),
      );
    }
    if (images && state.imagesTotal > page.total) {
      cards.append(note(`The gallery shows the first ${number(page.total)} of ${plural(state.imagesTotal, "image", "images")}.`));
    }
    panel.replaceChildren(cards);
    Object.assign(panel.dataset, { start: String(page.start), total: String(page.total) });
    // A page asked for (not the first pages of a new index) is read from its top.
    if (asked) document.querySelector("#explorer .tabs").scrollIntoView({ block: "start" });
  }

  function branchWords(chat) {
    const where = chat.branchAtIndex != null ? ` at message #${chat.branchAtIndex}` : "";
    const parent = chat.branchedFromName != null ? chat.branchedFromName : "a chat not in this archive";
    return `branch of “${parent}”${where}`;
  }

  /** Shows a tab; the chats tab lists the chats of `characterId` (named `name`), or all. */
  function showTab(panel, characterId, name) {
    for (const tab of document.querySelectorAll("#explorer .tabs button")) {
      const selected = tab.dataset.panel === panel;
      tab.setAttribute("aria-selected", String(selected));
      $(tab.dataset.panel).hidden = !selected;
    }
    if (panel === "explore-chats" && state.explored && (characterId || null) !== state.chatsOf) {
      state.chatsOf = characterId || null;
      state.chatsOfName = name || "";
      askList("chats", 0);
    }
  }

  // ---- a chat, a world book: a page at a time --------------------------------------
  function openDetail(kind, id, start, focus) {
    const detail = $("explore-detail");
    const fresh = !state.detail || state.detail.kind !== kind || state.detail.id !== id;
    state.detail = { kind, id, start, focus, asked: performance.now() };
    detail.hidden = false;
    Object.assign(detail.dataset, { chat: kind === "chat" ? id : "", book: kind === "book" ? id : "" });
    if (fresh) {
      $("explore-detail-title").textContent = "";
      $("explore-detail-note").textContent = "Reading…";
      $("explore-transcript").replaceChildren();
      $("explore-detail-pager").replaceChildren();
      forgetData($("explore-transcript"));
    }
  }

  function openChat(chatId, start, focus) {
    openDetail("chat", chatId, start, focus);
    post({ kind: Kind.EXPLORE_CHAT, chatId, start, count: MESSAGE_PAGE });
  }

  function showChat({ chatId, chat, start, total, messages, readMs, wasmMemoryBytes }) {
    const detail = state.detail;
    if (!detail || detail.kind !== "chat" || detail.id !== chatId || detail.start !== start) return;
    const transcript = $("explore-transcript");
    const started = performance.now();
    const items = document.createDocumentFragment();
    let focused = null;
    for (const message of messages) {
      const item = make("li", {
        "data-testid": "explore-message",
        "data-swipes": String(message.swipesTotal),
        "data-index": String(message.index),
        class: message.isUser ? "user" : "",
      });
      const who = make("span", { class: "who" }, `#${message.index} ${message.name || (message.isUser ? "You" : "")}`);
      const body = make("span", { class: "text" }, message.swipes[message.swipeId]);
      item.append(who, body);
      if (message.swipesTotal > 1) item.append(swipeSwitcher(message, body));
      if (detail.focus != null && message.index === detail.focus) focused = item;
      items.append(item);
    }
    transcript.replaceChildren(items);
    transcript.scrollTop = 0;
    $("explore-detail-title").textContent = chat ? chat.name || "(untitled chat)" : "(a chat not in this archive)";
    $("explore-detail-pager").replaceChildren();
    if (total > MESSAGE_PAGE) {
      const go = (to) => openChat(chatId, to);
      const noun = "Messages";
      $("explore-detail-pager").append(pager("nav", { "aria-label": "Pages of this chat" }, "explore-page", { start, shown: messages.length, total, size: MESSAGE_PAGE, noun, go }));
    }
    $("explore-detail").scrollIntoView({ block: "start" });
    if (focused) {
      focused.classList.add("focus");
      focused.scrollIntoView({ block: "center" });
    }
    const renderMs = performance.now() - started;
    Object.assign(transcript.dataset, {
      start: String(start),
      total: String(total),
      readMs: String(readMs),
      renderMs: String(renderMs),
      totalMs: String(performance.now() - detail.asked),
      wasmMemoryBytes: String(wasmMemoryBytes),
    });
    const branch = chat && chat.branchedFrom ? `This chat is a ${branchWords(chat)}. ` : "";
    $("explore-detail-note").textContent =
      `${branch}${plural(total, "message", "messages")}; this page read from the archive in ${Math.round(readMs)} ms.`;
  }

  function swipeSwitcher(message, body) {
    const box = make("span", { class: "swipes", "data-testid": "explore-swipes" });
    let shown = message.swipeId;
    const label = make("span", { "aria-live": "polite", "data-testid": "explore-swipe-position" });
    const show = (at) => {
      shown = (at + message.swipes.length) % message.swipes.length;
      body.textContent = message.swipes[shown];
      label.textContent = `${message.swipesFrom + shown + 1}/${message.swipesTotal}`;
    };
    const previous = make("button", { type: "button", "aria-label": "Previous swipe", "data-testid": "explore-swipe-previous" }, "‹");
    const next = make("button", { type: "button", "aria-label": "Next swipe", "data-testid": "explore-swipe-next" }, "›");
    previous.addEventListener("click", () => show(shown - 1));
    next.addEventListener("click", () => show(shown + 1));
    box.append(previous, label, next);
    show(shown);
    return box;
  }

  function openImage(image) {
    state.detail = { kind: "image", id: image.id };
    $("explore-detail").hidden = false;
    Object.assign($("explore-detail").dataset, { chat: "", book: "" });
    $("explore-detail-title").textContent = image.name;
    $("explore-detail-note").textContent = image.width && image.height ? `${image.width} × ${image.height}` : "";
    $("explore-detail-pager").replaceChildren();
    const full = make("img", { alt: image.name, class: "full", "data-testid": "explore-image-full" });
    picture(image.original || image.thumbnail, full);
    const item = make("li");
    item.append(full);
    $("explore-transcript").replaceChildren(item);
    $("explore-detail").scrollIntoView({ block: "start" });
  }

  function openBook(bookId, start) {
    openDetail("book", bookId, start);
    post({ kind: Kind.EXPLORE_BOOK, bookId, start, count: ENTRY_PAGE });
  }

  function showBook({ bookId, book, start, total, entries }) {
    const detail = state.detail;
    if (!detail || detail.kind !== "book" || detail.id !== bookId || detail.start !== start) return;
    const items = document.createDocumentFragment();
    for (const entry of entries) {
      const item = make("li", { "data-testid": "explore-entry" });
      const keys = entry.keys.length ? entry.keys.join(", ") + (entry.keysMore ? ` and ${plural(entry.keysMore, "other key", "other keys")}` : "") : "(no keys)";
      item.append(make("span", { class: "who" }, `${keys}${entry.disabled ? " · disabled" : ""}${entry.comment ? ` · ${entry.comment}` : ""}`));
      item.append(make("span", {}, entry.content));
      items.append(item);
    }
    $("explore-transcript").replaceChildren(items);
    $("explore-transcript").scrollTop = 0;
    $("explore-detail-title").textContent = book ? book.name : "";
    $("explore-detail-note").textContent = plural(total, "entry", "entries");
    $("explore-detail-pager").replaceChildren();
    if (total > ENTRY_PAGE) {
      const go = (to) => openBook(bookId, to);
      const noun = "Entries";
      $("explore-detail-pager").append(pager("nav", { "aria-label": "Pages of this world book" }, "explore-page", { start, shown: entries.length, total, size: ENTRY_PAGE, noun, go }));
    }
    $("explore-detail").scrollIntoView({ block: "start" });
  }

  // ---- search: hits shown as the Worker finds them ------------------------------------
  function search(query) {
    const seq = ++state.searchSeq;
    $("explore-results").replaceChildren();
    if (!query.trim()) {
      $("explore-search-state").textContent = "";
      return;
    }
    $("explore-search-state").textContent = "Searching…";
    post({ kind: Kind.EXPLORE_SEARCH, query, seq, limit: 200 });
  }

  function showHits({ seq, hits }) {
    if (seq !== state.searchSeq || !state.explored) return;
    const list = $("explore-results");
    for (const hit of hits) {
      const item = make("li", { "data-testid": `explore-hit-${hit.kind}` });
      if (hit.kind === "character") {
        item.append(opener(`Character: ${hit.name}`, () => showTab("explore-chats", hit.id, hit.name)));
      } else if (hit.kind === "chat") {
        item.append(opener(`Chat: ${hit.name}`, () => openChat(hit.id, 0)));
      } else {
        // Opens the page the message is on, and shows it.
        const start = hit.position != null ? Math.floor(hit.position / MESSAGE_PAGE) * MESSAGE_PAGE : 0;
        item.append(opener(`${hit.chatName} #${hit.index}`, () => openChat(hit.chatId, start, hit.index)));
        item.append(make("span", { class: "muted" }, ` ${hit.snippet}`));
      }
      list.append(item);
    }
  }

  // ---- wiring -------------------------------------------------------------------------
  for (const tab of document.querySelectorAll("#explorer .tabs button")) {
    tab.addEventListener("click", () => showTab(tab.dataset.panel));
  }
  $("explore-search").addEventListener("input", (event) => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => search(event.target.value), 200);
  });
  $("explore-close").addEventListener("click", () => close());
  $("picks-clear").addEventListener("click", () => {
    clearPicks();
    picksChanged();
  });
  // The toggles change what the picks bring (or how): told only when something is picked.
  for (const id of ["picks-without-chats", "picks-as-copy"]) {
    $(id).addEventListener("change", () => {
      if (state.picks.size) picksChanged();
    });
  }
  showPicks();
  $("explore-open").addEventListener("click", () => {
    $("explorer").hidden = false;
    $("explore-state").textContent = "Reading the archive…";
    post({ kind: Kind.EXPLORE });
    $("explorer").scrollIntoView({ block: "start" });
  });

  function close() {
    $("explorer").hidden = true;
    $("explore-detail").hidden = true;
    state.detail = null;
    forgetPictures();
  }

  return {
    /** `listener({picks, withoutChats, asCopy})` hears every change of the picks. */
    onPicks(listener) {
      state.onPicks = listener;
    },
    /** A new archive was picked (or none, or the Worker was replaced): the explorer starts
     * over, with nothing picked (the Worker's new archive has no selection either). */
    reset(canExplore) {
      close();
      cards.reset();
      clearPicks();
      $("picks-without-chats").checked = false;
      $("picks-as-copy").checked = false;
      showPicks();
      Object.assign(state, { explored: false, imagesTotal: 0, asked: {}, chatsOf: null, chatsOfName: "" });
      // The timings of the last archive's index and chat go with it.
      for (const id of ["explorer", "explore-transcript", ...Object.values(PANELS)]) forgetData($(id));
      for (const id of ["explore-transcript", "explore-detail-pager", "explore-results", ...Object.values(PANELS)]) $(id).replaceChildren();
      $("explore-open").hidden = !canExplore;
      $("explore-search").value = "";
    },
    /** Handles the Worker's explorer messages; answers whether it was one. */
    handle(data) {
      switch (data.kind) {
        case Kind.EXPLORE_PROGRESS:
          $("explore-state").textContent = `Reading ${data.table.replace(/_/g, " ")}…`;
          return true;
        case Kind.EXPLORED: {
          const index = data.index;
          Object.assign(state, { explored: true, imagesTotal: index.imagesTotal, asked: {}, chatsOf: null, chatsOfName: "" });
          const { rows, indexBytes } = index.stats;
          $("explore-state").textContent =
            `${plural(index.characters.total, "character", "characters")}, ${plural(index.chats.total, "chat", "chats")}, ` +
            `${plural(index.worldBooks.total, "world book", "world books")}, ${plural(index.imagesTotal, "image", "images")} · ` +
            `${number(rows)} rows indexed in ${Math.round(index.buildMs)} ms (${number(Math.ceil(indexBytes / 1024))} KiB held).`;
          for (const list of Object.keys(PANELS)) showList(index[list]);
          showTab("explore-characters");
          // Set last: tests wait for it, and the lists are drawn by then.
          Object.assign($("explorer").dataset, {
            buildMs: String(index.buildMs),
            indexBytes: String(indexBytes),
            rows: String(rows),
            wasmMemoryBytes: String(index.wasmMemoryBytes),
          });
          return true;
        }
        case Kind.EXPLORE_LIST:
          showList(data.result);
          return true;
        case Kind.EXPLORE_CHAT:
          showChat(data.result);
          return true;
        case Kind.EXPLORE_BOOK:
          showBook(data.result);
          return true;
        case Kind.EXPLORE_FILE:
          pictureArrived(data.name, data.bytes);
          return true;
        case Kind.EXPLORE_HITS:
          showHits(data);
          return true;
        case Kind.EXPLORE_SEARCH_DONE:
          if (data.seq === state.searchSeq) {
            $("explore-search-state").textContent = data.count ? plural(data.count, "result", "results") : "Nothing found.";
          }
          return true;
        case Kind.EXPLORE_FAILED:
          if (data.request === Kind.EXPLORE_FILE) {
            // A picture the archive cannot give: its characters are shown by their initials.
            for (const img of state.waiting.get(data.name) || []) if (img.dataset.who != null) img.replaceWith(placeholder(img.dataset.who, img.alt));
            state.waiting.delete(data.name);
          }
          else $("explore-state").textContent = refusalWords(data.error);
          return true;
      }
      return false;
    },
  };
}
