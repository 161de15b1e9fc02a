// The directory: every Thing the user may see, a page at a time (the hub pages the
// listing), searched by text or JSONPath, with presence kept live from /events and a few
// current values of each device. The hub's own Things have a section of their own.

import * as api from "./api.js";
import { h, clear, ago, show, problemText } from "./dom.js";

const PAGE = 50;
const VALUES_SHOWN = 3; // current values shown per device
const VALUES_EVERY = 5000; // ms between two reads of the values of the devices shown
// The hub's own Things (auth/authorizer.py), owned by the hub itself: not devices.
const HUB_THINGS = ["urn:wothub:authn", "urn:wothub:certs", "urn:wothub:clients", "urn:wothub:directory", "urn:wothub:groups", "urn:wothub:history", "urn:wothub:queries", "urn:wothub:restore"];
const HUB_OWNER = "wothub";

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
  const heads = ["Title", "Type", "Values", "Owner", "Presence"];
  const table = h("table", { id: "things", class: "things" }, h("thead", {}, h("tr", {}, heads.map((text) => h("th", {}, text)))), body);
  const hubBody = h("tbody", { id: "hub-things-body" });
  const hubSection = h(
    "section",
    { id: "hub-things", hidden: true },
    h("h2", {}, "The hub's own Things"),
    h("p", { class: "help" }, "Services of the hub itself (logins, clients, certificates), not devices."),
    h("div", { class: "table-wrap" }, h("table", { class: "things" }, h("thead", {}, h("tr", {}, ["Title", "Type", "Owner", "Presence"].map((text) => h("th", {}, text)))), hubBody)),
  );
  const raw = h("pre", { id: "search-raw", class: "raw", hidden: true });
  const prev = h("button", { type: "button", id: "page-prev", class: "secondary" }, "← Previous");
  const next = h("button", { type: "button", id: "page-next", class: "secondary" }, "Next →");
  const range = h("span", { id: "page-range" });
  clear(
    view,
    h("section", { class: "directory" }, h("div", { class: "title-row" }, h("h1", {}, "Things"), live), form, message, h("div", { class: "table-wrap" }, table), raw, h("div", { class: "pager" }, prev, range, next), hubSection),
  );

  // The hub's own Things this user may list, in id order: shown apart, and left out of
  // the devices' pages.
  let hubIds = [];
  const isHub = (id) => hubIds.includes(id);
  async function loadHubThings() {
    const query = HUB_THINGS.map((id) => `id=${encodeURIComponent(id)}`).join("&");
    try {
      const found = await api.request("GET", `/presence?${query}`, null, { signal });
      hubIds = Object.keys(found).filter((id) => found[id].owner === HUB_OWNER).sort();
      for (const id of hubIds) presence.set(id, found[id]);
      // listed, but its TD refused to this role (the clients' and certificates' Things
      // are for administrators): left out here too
      const read = (id) => api.request("GET", api.thingPath(id), null, { signal }).catch((e) => (e.status === 403 ? null : Promise.reject(e)));
      const tds = (await Promise.all(hubIds.map(read))).filter(Boolean);
      clear(hubBody, ...tds.map((td) => row(td, false)));
      hubSection.hidden = !tds.length;
    } catch (error) {
      if (signal.aborted || error.status === 401) return;
      message.textContent = problemText(error);
    }
  }

  async function load() {
    message.textContent = "";
    try {
      if (state.mode === "list") {
        // The listing holds the hub's Things among the devices, in id order: a device's
        // place among the devices is its place in the listing less the hub's Things
        // before it, so a page of devices lies within PAGE + hubIds.length entries.
        const page = await api.request("GET", `/things?offset=${state.offset}&limit=${PAGE + hubIds.length}&format=collection`, null, { signal });
        state.total = page.total - hubIds.length;
        if (state.offset > 0 && state.offset >= state.total) {
          state.offset = Math.max(0, state.total - PAGE);
          return load();
        }
        const devices = page.members.filter((td, i) => !isHub(td.id) && state.offset + i - hubIds.filter((id) => id < td.id).length >= state.offset);
        await render(devices.slice(0, PAGE));
      } else {
        if (state.results === null) {
          const query = state.mode === "text" ? textQuery(state.query) : state.query;
          state.results = await api.request("GET", `/search/jsonpath?query=${encodeURIComponent(query)}`, null, { signal });
        }
        const things = state.results.every((r) => r && typeof r === "object" && typeof r.id === "string");
        if (things) state.results = state.results.filter((td) => !isHub(td.id));
        state.total = state.results.length;
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
    shown.clear();
    for (const td of things) shown.set(td.id, td);
    clear(body, ...things.map((td) => row(td, true)));
    if (!things.length) {
      body.append(h("tr", {}, h("td", { colspan: heads.length, class: "empty" }, state.mode === "list" ? "No Things yet." : "Nothing found.")));
    }
    const last = Math.min(state.offset + things.length, state.total);
    range.textContent = state.total ? `${state.offset + 1}–${last} of ${state.total}` : "0 Things";
    prev.disabled = state.offset === 0;
    next.disabled = last >= state.total;
    readValues([...shown.keys()]);
  }

  function row(td, withValues) {
    const types = [].concat(td["@type"] || []).join(", ");
    return h(
      "tr",
      { "data-id": td.id },
      h("td", { "data-label": "Title" }, h("a", { href: `#/thing/${encodeURIComponent(td.id)}`, class: "thing-link" }, td.title || td.id), h("div", { class: "id" }, td.id)),
      h("td", { "data-label": "Type", class: "type" }, types || "—"),
      withValues ? h("td", { "data-label": "Values", class: "values" }) : "",
      h("td", { "data-label": "Owner", class: "owner" }, presence.get(td.id)?.owner || "—"),
      h("td", { "data-label": "Presence", class: "presence-cell" }, presenceBadge(presence.get(td.id))),
    );
  }

  // A few current values of the devices on the page (readallproperties, one request per
  // device: there is no stream of every Thing's values), read again every few seconds
  // for those online.
  const shown = new Map(); // id -> TD of the devices on the page
  const reading = new Set(); // ids whose values are being read
  function readValues(ids) {
    for (const id of ids) {
      if (reading.has(id)) continue;
      reading.add(id);
      api
        .request("GET", `${api.thingPath(id)}/properties`, null, { signal })
        .then((values) => {
          const cell = body.querySelector(`tr[data-id="${CSS.escape(id)}"] .values`);
          if (cell && shown.has(id)) clear(cell, valueList(shown.get(id), values));
        })
        .catch(() => {}) // left as it was: the Thing page says why
        .finally(() => reading.delete(id));
    }
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
        if (data.online && shown.has(data.id)) readValues([data.id]);
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
  const valuesTicker = setInterval(() => {
    if (!document.hidden) readValues([...shown.keys()].filter((id) => presence.get(id)?.online));
  }, VALUES_EVERY);
  signal.addEventListener("abort", () => {
    clearInterval(ticker);
    clearInterval(valuesTicker);
    clearTimeout(reloadTimer);
  });
  await loadHubThings();
  await load();
}

// The first few reported values of a Thing, in its TD's order, with their units.
function valueList(td, values) {
  const names = Object.keys(td.properties || {}).filter((name) => values && name in values).slice(0, VALUES_SHOWN);
  if (!names.length) return "—";
  return names.map((name) => {
    const affordance = td.properties[name];
    const text = show(values[name]);
    return h(
      "span",
      { class: "value-item", "data-value": name, title: text },
      h("span", { class: "value-name" }, affordance.title || name),
      " ",
      h("strong", {}, text.length > 40 ? `${text.slice(0, 39)}…` : text),
      affordance.unit ? ` ${affordance.unit}` : "",
    );
  });
}

export function presenceBadge(p) {
  if (!p) return h("span", { class: "presence unknown" }, "unknown");
  if (p.online) return h("span", { class: "presence online" }, "online");
  return h("span", { class: "presence offline", title: p.lastSeen || "" }, p.lastSeen ? `offline · last seen ${ago(p.lastSeen)}` : "offline · never seen");
}
