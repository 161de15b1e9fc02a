// Groups of Things (docs/groups.md): the list, a form to define one (managers and
// administrators), and one group: its members, the group table (every member's values,
// a page at a time, kept current from the group's SSE stream), and a write of one
// property to every member, with the group status of each member's request.

import * as api from "./api.js";
import { h, clear, show, problemText } from "./dom.js";

const PAGE = 50;
const groupPath = (name) => `/groups/${encodeURIComponent(name)}`;

function membership(group) {
  if (group.members) return `${group.members.length} listed`;
  return Object.entries(group.query || {}).map(([key, value]) => `${key} = ${value}`).join(", ");
}

export async function groupsPage(view, signal) {
  document.title = "Groups · wothub";
  const body = h("tbody", { id: "groups-body" });
  const message = h("p", { id: "groups-message", class: "form-message", role: "status" });
  const table = h("table", {}, h("thead", {}, h("tr", {}, ["Group", "Title", "Members", ""].map((t) => h("th", {}, t)))), body);
  const load = async () => {
    const groups = await api.request("GET", "/groups", null, { signal });
    clear(
      body,
      groups.length ? "" : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No groups yet.")),
      ...groups.map((group) =>
        h(
          "tr",
          { "data-group": group.name },
          h("td", {}, h("a", { href: `#/group/${encodeURIComponent(group.name)}` }, group.name)),
          h("td", {}, group.title || ""),
          h("td", {}, membership(group)),
          h("td", {}, api.may.write() ? h("button", { type: "button", class: "small danger", onclick: () => remove(group.name) }, "Remove") : ""),
        ),
      ),
    );
  };
  const remove = async (name) => {
    try {
      await api.request("DELETE", groupPath(name), null, { signal });
      message.textContent = `Removed ${name}.`;
      await load();
    } catch (error) {
      message.textContent = problemText(error);
    }
  };
  clear(view, h("section", {}, h("h1", {}, "Groups"), h("div", { class: "table-wrap" }, table), message, api.may.write() ? defineForm(signal, load, message) : ""));
  await load();
}

function defineForm(signal, reload, message) {
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const name = h("input", { id: "group-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.~\\-]{0,63}" });
  const title = h("input", { id: "group-title" });
  const members = h("textarea", { id: "group-members", rows: 3, placeholder: "one Thing id a line" });
  const agent = h("input", { id: "group-agent" });
  const type = h("input", { id: "group-type", placeholder: "e.g. saref:LightSwitch" });
  const filter = h("input", { id: "group-filter", placeholder: "$[?@.title == 'Lamp']" });
  const form = h(
    "form",
    { id: "group-form", class: "card" },
    h("h2", {}, "Define a group"),
    field("group-name", "Name", name),
    field("group-title", "Title", title),
    field("group-members", "Members (a list), or a query below", members),
    h("div", { class: "inline" }, field("group-agent", "Agent", agent), field("group-type", "@type", type), field("group-filter", "JSONPath filter", filter)),
    h("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const listed = members.value.split("\n").map((line) => line.trim()).filter(Boolean);
    const query = {};
    for (const [key, input] of [["agent", agent], ["type", type], ["filter", filter]]) if (input.value.trim()) query[key] = input.value.trim();
    const definition = listed.length ? { members: listed } : { query };
    if (title.value.trim()) definition.title = title.value.trim();
    try {
      await api.request("PUT", groupPath(name.value.trim()), definition, { signal });
      message.textContent = `Saved ${name.value.trim()}.`;
      form.reset();
      await reload();
    } catch (error) {
      message.textContent = problemText(error);
    }
  });
  return form;
}

export async function groupPage(view, name, signal) {
  clear(view, h("p", { class: "loading" }, "Loading…"));
  const path = groupPath(name);
  const [group, td] = await Promise.all([api.request("GET", path, null, { signal }), api.request("GET", `${path}/td`, null, { signal })]);
  document.title = `${group.title || name} · wothub`;
  const live = h("span", { class: "live", id: "group-live" }, "connecting…");
  const head = h("thead");
  const body = h("tbody", { id: "group-table-body" });
  const range = h("span", { id: "group-range" });
  const prev = h("button", { type: "button", class: "secondary", id: "group-prev" }, "← Previous");
  const next = h("button", { type: "button", class: "secondary", id: "group-next" }, "Next →");
  const cells = new Map(); // "thing id\0property" -> its cell
  let offset = 0;

  const load = async () => {
    const table = await api.request("GET", `${path}/properties?offset=${offset}&limit=${PAGE}`, null, { signal });
    const names = [...new Set(table.rows.flatMap((row) => Object.keys(row.values || {})))].sort();
    for (const name of Object.keys(td.properties || {})) if (!names.includes(name)) names.push(name);
    clear(head, h("tr", {}, h("th", {}, "Thing"), names.map((n) => h("th", {}, n))));
    cells.clear();
    clear(
      body,
      ...table.rows.map((row) =>
        h(
          "tr",
          { "data-id": row.thingID },
          h("td", {}, h("a", { href: `#/thing/${encodeURIComponent(row.thingID)}` }, row.thingID)),
          row.error
            ? h("td", { colspan: names.length || 1, class: "refused" }, problemText({ problem: row.error }))
            : names.map((n) => {
                const cell = h("td", { "data-value": n }, show(row.values?.[n]));
                cells.set(`${row.thingID}\0${n}`, cell);
                return cell;
              }),
        ),
      ),
    );
    range.textContent = table.total ? `${offset + 1}–${offset + table.rows.length} of ${table.total}` : "no members";
    prev.disabled = offset === 0;
    next.disabled = offset + table.rows.length >= table.total;
  };
  prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener("click", () => { offset += PAGE; load(); });

  clear(
    view,
    h(
      "section",
      { class: "group" },
      h("a", { href: "#/groups", class: "back" }, "← Groups"),
      h("div", { class: "title-row" }, h("h1", { id: "group-title" }, group.title || name), live),
      h("p", { class: "meta" }, `${td.id} · ${membership(group)} · ${group.memberIDs.length} members now`),
      h("div", { class: "table-wrap" }, h("table", { id: "group-table" }, head, body)),
      h("div", { class: "pager" }, prev, range, next),
      api.may.write() ? writeForm(path, td, signal) : "",
    ),
  );
  await load();
  api.stream(
    `${path}/events`,
    (kind, data) => {
      if (kind !== "property" || !data) return;
      const cell = cells.get(`${data.thingID}\0${data.name}`);
      if (cell) cell.textContent = show(data.value);
    },
    { signal, onState: (state) => { live.textContent = state === "open" ? "live" : "reconnecting…"; live.classList.toggle("on", state === "open"); } },
  );
}

function writeForm(path, td, signal) {
  const writable = Object.entries(td.properties || {}).filter(([, p]) => !p.readOnly).map(([n]) => n);
  if (!writable.length) return "";
  const property = h("select", { id: "group-write-name" }, writable.map((n) => h("option", { value: n }, n)));
  const value = h("input", { id: "group-write-value", placeholder: "a JSON value, e.g. 40 or true" });
  const status = h("p", { id: "group-write-status", class: "form-message", role: "status" });
  const refresh = h("button", { type: "button", class: "secondary small", hidden: true }, "Refresh");
  let location = null;
  const showStatus = (answer) => {
    const counts = Object.entries(answer.counts).map(([state, count]) => `${count} ${state}`).join(", ");
    const skipped = answer.skipped.length ? `, ${answer.skipped.length} without it` : "";
    status.textContent = `${answer.status}: ${counts || "no members"}${skipped}`;
  };
  refresh.addEventListener("click", async () => {
    try {
      showStatus(await api.request("GET", location, null, { signal }));
    } catch (error) {
      status.textContent = problemText(error);
    }
  });
  const form = h("form", { id: "group-write", class: "card" }, h("h2", {}, "Write to every member"), h("div", { class: "inline" }, property, value, h("button", { type: "submit" }, "Write"), refresh), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(value.value);
    } catch {
      parsed = value.value; // not JSON: a string
    }
    try {
      const { data, headers } = await api.exchange("PUT", `${path}/properties/${encodeURIComponent(property.value)}`, parsed, { signal });
      location = headers.get("Location");
      refresh.hidden = false;
      showStatus(data);
    } catch (error) {
      status.textContent = problemText(error);
    }
  });
  return form;
}
