// The directory: every Thing the user may see, a page at a time (the hub pages the
// listing), searched by text or JSONPath, with presence kept live from /events.

import * as api from "./api.js";
import { h, clear, ago, problemText } from "./dom.js";

const PAGE = 50;

// The text search as a JSONPath query: RFC 9535 search() with an I-Regexp that matches
// the words in any case (I-Regexp has no flags, so "a" becomes "[aA]").
export function textQuery(text) {
  let regexp = "";
  for (const c of text) {
    const lower = c.toLowerCase();
    const upper = c.toUpperCase();
    if (lower !== upper && lower.length === 1 && upper.length === 1) regexp += `[${lower}${upper}]`;
    else if ("\\.^$*+?()[]{}|-".includes(c)) regexp += `\\${c}`;
    else regexp += c;
  }
  const literal = regexp.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
  const where = ["title", "id", "description"].map((field) => `search(@.${field}, '${literal}')`);
  return `$[?${where.join(" || ")}]`;
}

export async function directoryPage(view, signal) {
  document.title = "Things · wothub";
  const state = { offset: 0, mode: "list", query: "", results: null, total: 0 };
  const presence = new Map(); // thing id -> {owner, online, lastSeen}

  const live = h("span", { class: "live", id: "live-state" }, "connecting…");
  const text = h("input", { id: "search-text", type: "search", placeholder: "Search titles, ids and descriptions", "aria-label": "Search" });
  const mode = h("select", { id: "search-mode", "aria-label": "Search by" }, h("option", { value: "text" }, "Text"), h("option", { value: "jsonpath" }, "JSONPath"));
  const clearButton = h("button", { type: "button", id: "search-clear", class: "secondary" }, "Clear");
  const form = h("form", { class: "search", id: "search-form" }, text, mode, h("button", { type: "submit" }, "Search"), clearButton);
  const message = h("p", { id: "directory-message", class: "error", role: "alert" });
  const body = h("tbody", { id: "things-body" });
  const table = h(
    "table",
    { id: "things", class: "things" },
    h("thead", {}, h("tr", {}, h("th", {}, "Title"), h("th", {}, "Type"), h("th", {}, "Owner"), h("th", {}, "Presence"))),
    body,
  );
  const raw = h("pre", { id: "search-raw", class: "raw", hidden: true });
  const prev = h("button", { type: "button", id: "page-prev", class: "secondary" }, "← Previous");
  const next = h("button", { type: "button", id: "page-next", class: "secondary" }, "Next →");
  const range = h("span", { id: "page-range" });
  clear(
    view,
    h("section", { class: "directory" }, h("div", { class: "title-row" }, h("h1", {}, "Things"), live), form, message, h("div", { class: "table-wrap" }, table), raw, h("div", { class: "pager" }, prev, range, next)),
  );

  async function load() {
    message.textContent = "";
    try {
      if (state.mode === "list") {
        const page = await api.request("GET", `/things?offset=${state.offset}&limit=${PAGE}&format=collection`, null, { signal });
        state.total = page.total;
        if (state.offset > 0 && state.offset >= page.total) {
          state.offset = Math.max(0, page.total - PAGE);
          return load();
        }
        await render(page.members);
      } else {
        if (state.results === null) {
          const query = state.mode === "text" ? textQuery(state.query) : state.query;
          state.results = await api.request("GET", `/search/jsonpath?query=${encodeURIComponent(query)}`, null, { signal });
        }
        state.total = state.results.length;
        const things = state.results.every((r) => r && typeof r === "object" && typeof r.id === "string");
        if (!things) {
          table.hidden = true;
          raw.hidden = false;
          raw.textContent = JSON.stringify(state.results, null, 2);
          range.textContent = `${state.results.length} results`;
          prev.disabled = next.disabled = true;
          return;
        }
        await render(state.results.slice(state.offset, state.offset + PAGE));
      }
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      message.textContent = problemText(error);
    }
  }

  async function render(things) {
    table.hidden = false;
    raw.hidden = true;
    const ids = things.map((td) => td.id);
    if (ids.length) {
      const query = ids.map((id) => `id=${encodeURIComponent(id)}`).join("&");
      try {
        const found = await api.request("GET", `/presence?${query}`, null, { signal });
        for (const [id, p] of Object.entries(found)) presence.set(id, p);
      } catch (error) {
        if (signal.aborted) return;
      }
    }
    clear(body, ...things.map(row));
    if (!things.length) {
      body.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, state.mode === "list" ? "No Things yet." : "Nothing found.")));
    }
    const last = Math.min(state.offset + things.length, state.total);
    range.textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "0 Things";
    prev.disabled = state.offset === 0;
    next.disabled = last >= state.total;
  }

  function row(td) {
    const types = [].concat(td["@type"] || []).join(", ");
    return h(
      "tr",
      { "data-id": td.id },
      h("td", { "data-label": "Title" }, h("a", { href: `#/thing/${encodeURIComponent(td.id)}`, class: "thing-link" }, td.title || td.id), h("div", { class: "id" }, td.id)),
      h("td", { "data-label": "Type" }, types || "—"),
      h("td", { "data-label": "Owner", class: "owner" }, presence.get(td.id)?.owner || "—"),
      h("td", { "data-label": "Presence", class: "presence-cell" }, presenceBadge(presence.get(td.id))),
    );
  }

  function updatePresence(id) {
    const cell = body.querySelector(`tr[data-id="${CSS.escape(id)}"] .presence-cell`);
    if (cell) clear(cell, presenceBadge(presence.get(id)));
  }

  let reloadTimer = null;
  const reloadSoon = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => {
      if (state.mode !== "list") state.results = null;
      load();
    }, 300);
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = text.value.trim();
    state.offset = 0;
    state.results = null;
    state.mode = query ? mode.value : "list";
    state.query = query;
    load();
  });
  clearButton.addEventListener("click", () => {
    text.value = "";
    Object.assign(state, { offset: 0, mode: "list", query: "", results: null });
    load();
  });
  prev.addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    load();
  });
  next.addEventListener("click", () => {
    state.offset += PAGE;
    load();
  });

  api.stream(
    "/events?presence=true",
    (name, data) => {
      if (name === "thing_presence") {
        const known = presence.get(data.id) || {};
        presence.set(data.id, { ...known, online: data.online, lastSeen: data.lastSeen });
        updatePresence(data.id);
      } else if (name === "thing_created" || name === "thing_deleted" || name === "thing_updated" || name === "resync") {
        reloadSoon();
      }
    },
    {
      signal,
      onState: (s) => {
        live.textContent = s === "open" ? "live" : "reconnecting…";
        live.classList.toggle("on", s === "open");
      },
    },
  );
  // "last seen 3 min ago" grows older by itself
  const ticker = setInterval(() => {
    for (const id of presence.keys()) updatePresence(id);
  }, 30_000);
  signal.addEventListener("abort", () => {
    clearInterval(ticker);
    clearTimeout(reloadTimer);
  });
  await load();
}

export function presenceBadge(p) {
  if (!p) return h("span", { class: "presence unknown" }, "unknown");
  if (p.online) return h("span", { class: "presence online" }, "online");
  return h("span", { class: "presence offline", title: p.lastSeen || "" }, p.lastSeen ? `offline · last seen ${ago(p.lastSeen)}` : "offline · never seen");
}
