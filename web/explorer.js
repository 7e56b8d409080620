// The archive explorer: a read-only view of the picked archive, built by the Worker from
// the local file (lvbak-core's explore index). Nothing here makes a request: pictures come
// from the Worker as bytes and are shown through blob: URLs, revoked when the explorer
// closes or another archive is picked.
const $ = (id) => document.getElementById(id);
const make = (tag, attributes = {}, content = "") => {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.textContent = content;
  return element;
};
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** Pictures shown at once at most per list (the rest say how many more there are). */
const SHOWN = 500;

export function createExplorer(worker) {
  const state = { index: null, urls: new Map(), waiting: new Map(), searchSeq: 0, searchTimer: null };

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
    worker.postMessage({ kind: "exploreFile", name });
  }
  function pictureArrived(name, bytes) {
    const type = name.endsWith(".webp") ? "image/webp" : name.endsWith(".png") ? "image/png" : "";
    const url = URL.createObjectURL(new Blob([bytes], type ? { type } : {}));
    state.urls.set(name, url);
    for (const img of state.waiting.get(name) || []) img.src = url;
    state.waiting.delete(name);
  }
  function forgetPictures() {
    if (inView) inView.disconnect();
    for (const url of state.urls.values()) URL.revokeObjectURL(url);
    state.urls.clear();
    state.waiting.clear();
  }

  // ---- lists ----------------------------------------------------------------------
  function avatar(name, label) {
    const img = make("img", { alt: label, class: "avatar", loading: "lazy" });
    picture(name, img);
    return img;
  }
  function more(list, total) {
    if (total > SHOWN) list.append(make("li", { class: "muted" }, `…and ${total - SHOWN} more (search to find them).`));
  }
  function fill(id, items, render) {
    const list = $(id);
    list.replaceChildren();
    if (items.length === 0) list.append(make("li", { class: "muted" }, "None in this archive."));
    for (const item of items.slice(0, SHOWN)) list.append(render(item));
    more(list, items.length);
  }
  function opener(label, action) {
    const button = make("button", { type: "button" }, label);
    button.addEventListener("click", action);
    return button;
  }

  function render(index) {
    const byId = new Map(index.chats.map((chat) => [chat.id, chat]));
    fill("explore-characters", index.characters, (c) => {
      const item = make("li", { "data-testid": `explore-character-${c.id}` });
      const body = make("div");
      body.append(make("strong", {}, c.name || "(no name)"), make("p", { class: "muted" }, c.description));
      const chats = index.chats.filter((chat) => chat.characterId === c.id);
      if (chats.length) body.append(opener(`${plural(chats.length, "chat", "chats")} ›`, () => showTab("explore-chats", c.id)));
      item.append(avatar(c.avatar, `${c.name}'s picture`), body);
      return item;
    });
    fillChats(index, byId, null);
    fill("explore-personas", index.personas, (p) => {
      const item = make("li", { "data-testid": `explore-persona-${p.id}` });
      const body = make("div");
      body.append(make("strong", {}, p.name), make("p", { class: "muted" }, p.description));
      item.append(avatar(p.avatar, `${p.name}'s picture`), body);
      return item;
    });
    fill("explore-worldbooks", index.worldBooks, (b) => {
      const item = make("li", { "data-testid": `explore-worldbook-${b.id}` });
      const body = make("div");
      body.append(make("strong", {}, b.name), make("p", { class: "muted" }, b.description));
      body.append(opener(`${plural(b.entries, "entry", "entries")} ›`, () => openBook(b)));
      item.append(body);
      return item;
    });
    fill("explore-presets", index.presets, (p) => {
      const item = make("li", { "data-testid": `explore-preset-${p.id}` });
      item.append(make("strong", {}, p.name), make("span", { class: "muted" }, p.provider));
      return item;
    });
    const gallery = $("explore-images");
    gallery.replaceChildren();
    if (index.images.length === 0) gallery.append(make("p", { class: "muted" }, "None in this archive."));
    for (const image of index.images.slice(0, SHOWN)) {
      const figure = make("figure");
      const img = make("img", { alt: image.name, loading: "lazy", "data-testid": `explore-image-${image.id}` });
      picture(image.thumbnail, img);
      const caption = make("figcaption");
      const open = opener(image.name, () => openImage(image));
      open.setAttribute("aria-label", `Show ${image.name} at full size`);
      caption.append(open);
      figure.append(img, caption);
      gallery.append(figure);
    }
    const shown = Math.min(index.images.length, SHOWN);
    if (index.imagesTotal > shown) gallery.append(make("p", { class: "muted" }, `…and ${index.imagesTotal - shown} more.`));
  }

  function fillChats(index, byId, characterId) {
    const chats = characterId ? index.chats.filter((chat) => chat.characterId === characterId) : index.chats;
    fill("explore-chats", chats, (chat) => {
      const item = make("li", { "data-testid": `explore-chat-${chat.id}`, "data-messages": String(chat.messages) });
      const body = make("div");
      body.append(opener(chat.name || "(untitled chat)", () => openChat(chat, byId)));
      const who = chat.members.length ? `group: ${chat.members.join(", ")}` : chat.characterName;
      const facts = [who, plural(chat.messages, "message", "messages")].filter(Boolean);
      if (chat.branchedFrom) facts.push(branchWords(chat, byId));
      body.append(make("p", { class: "muted" }, facts.join(" · ")));
      item.append(body);
      return item;
    });
  }

  function branchWords(chat, byId) {
    const parent = byId.get(chat.branchedFrom);
    const where = chat.branchAtIndex != null ? ` at message #${chat.branchAtIndex}` : "";
    return `branch of “${parent ? parent.name : "a chat not in this archive"}”${where}`;
  }

  function showTab(panel, characterId) {
    for (const tab of document.querySelectorAll("#explorer .tabs button")) {
      const selected = tab.dataset.panel === panel;
      tab.setAttribute("aria-selected", String(selected));
      $(tab.dataset.panel).hidden = !selected;
    }
    if (panel === "explore-chats" && state.index) {
      fillChats(state.index, new Map(state.index.chats.map((c) => [c.id, c])), characterId || null);
    }
  }

  // ---- a chat, a world book --------------------------------------------------------
  function openChat(chat, byId) {
    $("explore-detail").hidden = false;
    $("explore-detail").dataset.chat = chat.id;
    $("explore-detail").dataset.book = "";
    $("explore-detail-title").textContent = chat.name || "(untitled chat)";
    $("explore-detail-note").textContent = chat.branchedFrom ? `This chat is a ${branchWords(chat, byId)}.` : "Reading…";
    $("explore-transcript").replaceChildren();
    state.chatAsked = performance.now();
    worker.postMessage({ kind: "exploreChat", chatId: chat.id });
  }

  function showChat({ chatId, messages, readMs, wasmMemoryBytes }) {
    const transcript = $("explore-transcript");
    if ($("explore-detail").dataset.chat !== chatId) return;
    const started = performance.now();
    const items = messages.map((message) => {
      const item = make("li", {
        "data-testid": "explore-message",
        "data-swipes": String(message.swipes.length),
        "data-index": String(message.index),
        class: message.isUser ? "user" : "",
      });
      const who = make("span", { class: "who" }, `#${message.index} ${message.name || (message.isUser ? "You" : "")}`);
      const body = make("span", { class: "text" }, message.swipes[message.swipeId]);
      item.append(who, body);
      if (message.swipes.length > 1) item.append(swipeSwitcher(message, body));
      return item;
    });
    transcript.replaceChildren(...items);
    $("explore-detail").scrollIntoView({ block: "start" });
    const renderMs = performance.now() - started;
    const totalMs = performance.now() - state.chatAsked;
    Object.assign(transcript.dataset, {
      readMs: String(readMs),
      renderMs: String(renderMs),
      totalMs: String(totalMs),
      wasmMemoryBytes: String(wasmMemoryBytes),
    });
    const note = $("explore-detail-note");
    const words = `${plural(messages.length, "message", "messages")}, read from the archive in ${Math.round(readMs)} ms.`;
    note.textContent = note.textContent === "Reading…" ? words : `${note.textContent} ${words}`;
  }

  function swipeSwitcher(message, body) {
    const box = make("span", { class: "swipes", "data-testid": "explore-swipes" });
    let shown = message.swipeId;
    const label = make("span", { "aria-live": "polite", "data-testid": "explore-swipe-position" });
    const show = (at) => {
      shown = (at + message.swipes.length) % message.swipes.length;
      body.textContent = message.swipes[shown];
      label.textContent = `${shown + 1}/${message.swipes.length}`;
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
    $("explore-detail").hidden = false;
    Object.assign($("explore-detail").dataset, { chat: "", book: "" });
    $("explore-detail-title").textContent = image.name;
    $("explore-detail-note").textContent = image.width && image.height ? `${image.width} × ${image.height}` : "";
    const full = make("img", { alt: image.name, class: "full", "data-testid": "explore-image-full" });
    picture(image.original || image.thumbnail, full);
    const item = make("li");
    item.append(full);
    $("explore-transcript").replaceChildren(item);
    $("explore-detail").scrollIntoView({ block: "start" });
  }

  function openBook(book) {
    $("explore-detail").hidden = false;
    $("explore-detail").dataset.chat = "";
    $("explore-detail").dataset.book = book.id;
    $("explore-detail-title").textContent = book.name;
    $("explore-detail-note").textContent = "Reading…";
    $("explore-transcript").replaceChildren();
    worker.postMessage({ kind: "exploreBook", bookId: book.id });
  }

  function showBook({ bookId, entries }) {
    if ($("explore-detail").dataset.book !== bookId) return;
    $("explore-detail").scrollIntoView({ block: "start" });
    $("explore-detail-note").textContent = plural(entries.length, "entry", "entries");
    $("explore-transcript").replaceChildren(
      ...entries.map((entry) => {
        const item = make("li", { "data-testid": "explore-entry" });
        const keys = entry.keys.length ? entry.keys.join(", ") : "(no keys)";
        item.append(make("span", { class: "who" }, `${keys}${entry.disabled ? " · disabled" : ""}${entry.comment ? ` · ${entry.comment}` : ""}`));
        item.append(make("span", {}, entry.content));
        return item;
      }),
    );
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
    worker.postMessage({ kind: "exploreSearch", query, seq, limit: 200 });
  }

  function showHits({ seq, hits }) {
    if (seq !== state.searchSeq || !state.index) return;
    const byId = new Map(state.index.chats.map((chat) => [chat.id, chat]));
    const list = $("explore-results");
    for (const hit of hits) {
      const item = make("li", { "data-testid": `explore-hit-${hit.kind}` });
      if (hit.kind === "character") {
        item.append(opener(`Character: ${hit.name}`, () => showTab("explore-chats", hit.id)));
      } else if (hit.kind === "chat") {
        item.append(opener(`Chat: ${hit.name}`, () => openChat(byId.get(hit.id), byId)));
      } else {
        item.append(opener(`${hit.chatName} #${hit.index}`, () => openChat(byId.get(hit.chatId), byId)));
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
  $("explore-open").addEventListener("click", () => {
    $("explorer").hidden = false;
    $("explore-state").textContent = "Reading the archive…";
    worker.postMessage({ kind: "explore" });
    $("explorer").scrollIntoView({ block: "start" });
  });

  function close() {
    $("explorer").hidden = true;
    $("explore-detail").hidden = true;
    forgetPictures();
  }

  return {
    /** A new archive was picked (or none): the explorer starts over. */
    reset(canExplore) {
      close();
      state.index = null;
      // The timings of the last archive's index and chat go with it.
      for (const id of ["explorer", "explore-transcript"]) {
        for (const key of Object.keys($(id).dataset)) if (key !== "testid") delete $(id).dataset[key];
      }
      $("explore-transcript").replaceChildren();
      $("explore-open").hidden = !canExplore;
      $("explore-results").replaceChildren();
      $("explore-search").value = "";
    },
    /** Handles the Worker's explorer messages; answers whether it was one. */
    handle(data) {
      switch (data.kind) {
        case "exploreProgress":
          $("explore-state").textContent = `Reading ${data.table.replace(/_/g, " ")}…`;
          return true;
        case "explored": {
          const index = data.index;
          state.index = index;
          const { rows, indexBytes } = index.stats;
          Object.assign($("explorer").dataset, {
            buildMs: String(index.buildMs),
            indexBytes: String(indexBytes),
            rows: String(rows),
            wasmMemoryBytes: String(index.wasmMemoryBytes),
          });
          $("explore-state").textContent =
            `${plural(index.characters.length, "character", "characters")}, ${plural(index.chats.length, "chat", "chats")}, ` +
            `${plural(index.worldBooks.length, "world book", "world books")}, ${plural(index.imagesTotal, "image", "images")} · ` +
            `${rows} rows indexed in ${Math.round(index.buildMs)} ms (${Math.ceil(indexBytes / 1024)} KiB held).`;
          render(index);
          showTab("explore-characters");
          return true;
        }
        case "exploreChat":
          showChat(data.result);
          return true;
        case "exploreBook":
          showBook(data.result);
          return true;
        case "exploreFile":
          pictureArrived(data.name, data.bytes);
          return true;
        case "exploreHits":
          showHits(data);
          return true;
        case "exploreSearchDone":
          if (data.seq === state.searchSeq) {
            $("explore-search-state").textContent = data.count ? plural(data.count, "result", "results") : "Nothing found.";
          }
          return true;
        case "exploreFailed":
          if (data.request === "exploreFile") state.waiting.delete(data.name);
          else $("explore-state").textContent = `${data.error.code}: ${data.error.message}`;
          return true;
      }
      return false;
    },
  };
}
