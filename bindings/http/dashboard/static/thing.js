// One Thing, built from its twin TD alone: properties with live values (SSE), the
// desired value while a write waits for the device and the last write it declined (the
// state document, followed live), forms for writable properties and
// actions made from their data schemas, the requests (actions and writes) and their
// states, events, and charts of the history of numbers, booleans and enums.

import * as api from "./api.js";
import { HistoryChart, chartable } from "./chart.js";
import { presenceBadge } from "./directory.js";
import { h, clear, show, when, problemText } from "./dom.js";
import { schemaForm, fillForm } from "./schema.js";

const FINAL = new Set(["completed", "failed", "expired", "cancelled"]);
const WRITE = "writeproperty";
// What a form says while its request has not ended, by the request's state.
const UNDER_WAY = {
  pending: "Queued: the device will get it when it connects.",
  delivered: "Sent to the device: waiting for its answer.",
  running: "The device is carrying it out.",
};
const AFFORDANCE_KEYS = new Set(["forms", "observable", "readOnly", "writeOnly", "uriVariables"]);

function dataSchema(affordance) {
  // a property affordance is its own data schema, with interaction keys around it
  const schema = {};
  for (const [key, value] of Object.entries(affordance)) if (!AFFORDANCE_KEYS.has(key)) schema[key] = value;
  return schema;
}

// "properties/<name>" and "events/<name>" of each affordance whose history the TD links
// (a link with rel "history" anchored at the affordance's URL; docs/history.md).
function histories(td) {
  const found = new Set();
  for (const link of td.links || []) {
    if (link.rel !== "history" || typeof link.anchor !== "string") continue;
    try {
      const [member, name] = new URL(link.anchor, location.href).pathname.split("/").slice(-2);
      found.add(`${member}/${decodeURIComponent(name)}`);
    } catch {
      // not a URL the hub made (an agent's own link): no chart from it
    }
  }
  return found;
}

export async function thingPage(view, id, signal) {
  clear(view, h("p", { class: "loading" }, "Loading…"));
  const base = api.thingPath(id);
  const td = await api.request("GET", base, null, { signal });
  const found = await api.request("GET", `/presence?id=${encodeURIComponent(id)}`, null, { signal }).catch(() => ({}));
  let presence = found[id];
  document.title = `${td.title || id} · wothub`;

  const presenceEl = h("span", { id: "thing-presence" }, presenceBadge(presence));
  const types = [].concat(td["@type"] || []).join(", ");
  const header = h(
    "header",
    { class: "thing-header" },
    h("a", { href: "#/", class: "back" }, "← Things"),
    h("h1", { id: "thing-title" }, td.title || id),
    h("div", { class: "id" }, id),
    h("p", { class: "meta" }, types ? h("span", {}, types) : "", h("span", {}, "owner ", h("strong", { id: "thing-owner" }, presence?.owner || "—")), presenceEl),
    td.description ? h("p", { class: "description" }, td.description) : "",
  );

  const properties = Object.entries(td.properties || {});
  const actions = Object.entries(td.actions || {});
  const writable = properties.some(([, affordance]) => !affordance.readOnly);
  const hasRequests = actions.length > 0 || writable;

  const statusBody = h("tbody", { id: "requests-body" });
  const heads = ["Request", "State", "Requested by", "Requested", "Ended", "Result", ""];
  const statusSection = h(
    "section",
    { id: "requests" },
    h("h2", {}, "Requests"),
    h("div", { class: "table-wrap" }, h("table", { class: "requests" }, h("thead", {}, h("tr", {}, heads.map((text) => h("th", {}, text)))), statusBody)),
  );
  // forms waiting for their request's end: request id -> onStatus(status)
  const watchers = new Map();
  const refreshStatuses = async () => {
    try {
      const [invoked, written] = await Promise.all([
        actions.length ? api.request("GET", `${base}/actions`, null, { signal }) : {},
        writable ? api.request("GET", `${base}/writes`, null, { signal }) : {},
      ]);
      const all = [...Object.values(invoked).flat(), ...Object.values(written).flat()];
      for (const status of all) watchers.get(status.id)?.(status);
      renderStatuses(statusBody, all, base, td, refreshStatuses);
    } catch (error) {
      if (!signal.aborted && error.status !== 401) clear(statusBody, h("tr", {}, h("td", { colspan: heads.length, class: "error" }, problemText(error))));
    }
  };
  const requests = {
    refresh: refreshStatuses,
    // call onStatus with the request's status at each look until it has ended
    watch(id, onStatus) {
      watchers.set(id, (status) => {
        if (FINAL.has(status.state)) watchers.delete(id);
        onStatus(status);
      });
    },
    unwatch: (id) => watchers.delete(id),
  };

  // a history chart for each value that can be drawn, when the TD links its history
  const linked = histories(td);
  const charts = [];
  const chartFor = (member, name, title, schema) => {
    const how = chartable(schema);
    if (!how || !linked.has(`${member}/${name}`)) return null;
    const path = `${base}/${member}/${encodeURIComponent(name)}/history`;
    const filename = `${td.title || id}-${name}`.replace(/[^A-Za-z0-9_.-]+/g, "-");
    const chart = new HistoryChart(path, title, how, { signal, filename });
    charts.push(chart);
    return chart;
  };

  const cards = new Map(); // property name -> card
  const propertySection = h("section", { id: "properties" }, h("h2", {}, "Properties"), properties.length ? "" : h("p", { class: "empty" }, "No properties."));
  const propertyGrid = h("div", { class: "cards" });
  propertySection.append(propertyGrid);
  for (const [name, affordance] of properties) {
    const chart = chartFor("properties", name, affordance.title || name, dataSchema(affordance));
    const card = propertyCard(base, name, affordance, chart, requests, signal);
    cards.set(name, card);
    propertyGrid.append(card.element);
  }

  const actionSection = h("section", { id: "actions" }, h("h2", {}, "Actions"));
  if (!actions.length) actionSection.append(h("p", { class: "empty" }, "No actions."));
  else if (!api.may.invoke()) actionSection.append(h("p", { class: "refused", id: "actions-refused" }, `Your role (${api.current().role}) may not invoke actions.`));
  const actionGrid = h("div", { class: "cards" });
  actionSection.append(actionGrid);
  for (const [name, affordance] of actions) actionGrid.append(actionCard(base, name, affordance, requests));

  const eventCharts = new Map(); // event name -> its chart
  const eventChartGrid = h("div", { class: "cards", id: "event-charts" });
  for (const [name, affordance] of Object.entries(td.events || {})) {
    const chart = chartFor("events", name, affordance.title || name, affordance.data);
    if (!chart) continue;
    eventCharts.set(name, chart);
    eventChartGrid.append(h("div", { class: "card event", "data-event-chart": name }, h("h3", {}, affordance.title || name), chart.element));
  }
  const eventLog = h("ol", { id: "event-log", class: "event-log" });
  const eventSection = h(
    "section",
    { id: "events" },
    h("h2", {}, "Events"),
    eventCharts.size ? eventChartGrid : "",
    Object.keys(td.events || {}).length ? eventLog : h("p", { class: "empty" }, "No events."),
  );

  const live = h("span", { class: "live", id: "live-state" }, "connecting…");
  clear(view, h("article", { class: "thing" }, live, header, propertySection, actionSection, hasRequests ? statusSection : "", eventSection));

  // the values now (with their timestamps and any desired value) and their history, then live
  await Promise.all([...[...cards.values()].map((card) => card.refresh()), ...charts.map((chart) => chart.load())]);
  if (properties.length) {
    api.stream(
      `${base}/properties`,
      (name, value) => {
        if (name === "resync") cards.forEach((card) => card.refresh(true));
        else cards.get(name)?.update(value, new Date().toISOString());
      },
      {
        signal,
        onState: (s) => {
          live.textContent = s === "open" ? "live" : "reconnecting…";
          live.classList.toggle("on", s === "open");
        },
      },
    );
  } else {
    live.hidden = true;
  }
  if (Object.keys(td.events || {}).length) {
    api.stream(
      `${base}/events`,
      (name, data) => {
        if (name === "resync") eventCharts.forEach((chart) => chart.load()); // the history has what was missed
        if (name === "resync" || name === "error") return;
        eventCharts.get(name)?.add(data);
        const title = td.events[name]?.title || name;
        eventLog.prepend(h("li", { "data-event": name }, h("time", {}, new Date().toLocaleTimeString()), h("strong", {}, title), h("code", {}, show(data))));
        while (eventLog.children.length > 200) eventLog.lastChild.remove();
      },
      { signal },
    );
  }
  api.stream(
    "/events/thing_presence",
    (name, data) => {
      if (name !== "thing_presence" || data.id !== id) return;
      presence = { ...(presence || {}), online: data.online, lastSeen: data.lastSeen };
      clear(presenceEl, presenceBadge(presence));
      if (hasRequests) refreshStatuses();
    },
    { signal },
  );
  // desired and declined writes and the delta (the state document), then their changes live
  if (properties.length) {
    const showState = (doc) => {
      for (const [name, entry] of Object.entries(doc.properties || {})) cards.get(name)?.showState(entry);
    };
    const readState = () => api.request("GET", `${base}/state`, null, { signal }).then(showState, () => {});
    // read once the stream is open: what changed before is in the answer, after in the stream
    api.stream(
      `${base}/state`,
      (name, entry) => {
        if (name === "resync") readState();
        else if (name !== "error") cards.get(name)?.showState(entry);
      },
      { signal, onState: (s) => s === "open" && readState() },
    );
  }
  // requests change state at the device: look again every 2 s while this page is shown
  if (hasRequests) await refreshStatuses();
  const poll = setInterval(() => {
    if (hasRequests) refreshStatuses();
    for (const card of cards.values()) if (card.pending()) card.refresh();
  }, 2000);
  signal.addEventListener("abort", () => clearInterval(poll));
}

function propertyCard(base, name, affordance, chart, requests, signal) {
  const schema = dataSchema(affordance);
  const path = `${base}/properties/${encodeURIComponent(name)}`;
  const value = h("span", { class: "value" }, "—");
  const unit = affordance.unit ? h("span", { class: "unit" }, affordance.unit) : "";
  const stamp = h("small", { class: "timestamp" }, "");
  const desired = h("div", { class: "desired", hidden: true });
  const declined = h("div", { class: "declined", hidden: true });
  const flags = [affordance.readOnly && "read-only", affordance.writeOnly && "write-only", affordance.observable && "observable"].filter(Boolean);
  const element = h(
    "div",
    { class: "card property", "data-property": name },
    h("h3", {}, affordance.title || name, flags.map((f) => h("span", { class: "badge" }, f))),
    affordance.description ? h("p", { class: "help" }, affordance.description) : "",
    h("div", { class: "reading" }, value, unit),
    stamp,
    desired,
    declined,
    chart ? chart.element : "",
  );
  let pendingWrite = false;
  let current;
  let live = 0; // live updates so far: a refresh answered after one of them is older than it
  let follow = () => {}; // the write form, if any, shows the value as it changes

  const card = {
    element,
    pending: () => pendingWrite,
    update(v, timestamp) {
      live += 1;
      current = v;
      value.textContent = show(v);
      stamp.textContent = timestamp ? `reported ${when(timestamp)}` : "";
      if (chart) chart.add(v);
      follow();
      if (pendingWrite) card.refresh();
    },
    // The property's entry in the state document: the last write the device refused,
    // and whether the desired value differs from the reported one (the delta).
    showState(entry) {
      const refused = entry.declined;
      declined.hidden = !refused;
      if (refused) {
        const why = [refused.error?.title, refused.error?.detail].filter(Boolean).join(": ") || "refused";
        clear(declined, "declined ", h("strong", {}, show(refused.value)), ` · ${why} · asked by ${refused.senderID} · ${when(refused.time)}`);
      }
      const wanted = entry.desired;
      const differs = !!wanted && (!entry.reported || JSON.stringify(entry.reported.value) !== JSON.stringify(wanted.value));
      element.classList.toggle("in-delta", differs);
      if (!!wanted !== pendingWrite) card.refresh(); // a write queued or ended elsewhere
    },
    // resync: values were missed, so the chart reads its history again too
    async refresh(resync = false) {
      if (affordance.writeOnly) return;
      if (resync) chart?.load();
      try {
        const before = live;
        const detail = await api.request("GET", `${path}?detail=true`, null, { signal });
        const stale = live !== before; // a live value came while this one was on its way
        if ("value" in detail && !stale && (detail.value !== current || !stamp.textContent)) {
          current = detail.value;
          value.textContent = show(detail.value);
          follow();
        }
        if (detail.timestamp && !stale) stamp.textContent = `reported ${when(detail.timestamp)}`;
        pendingWrite = "desired" in detail;
        desired.hidden = !pendingWrite;
        if (pendingWrite) {
          // {"value", "timestamp", "id"}: the write waiting for the device
          const wanted = detail.desired && typeof detail.desired === "object" && "value" in detail.desired ? detail.desired : { value: detail.desired };
          clear(desired, "desired ", h("strong", {}, show(wanted.value)), unit ? ` ${affordance.unit}` : "", ` · waiting for the device${wanted.timestamp ? ` since ${when(wanted.timestamp)}` : ""}`);
        }
      } catch (error) {
        if (!signal.aborted && error.status !== 401) stamp.textContent = problemText(error);
      }
    },
  };

  if (!affordance.readOnly && api.may.write()) {
    const form = schemaForm(schema, { idPrefix: `p-${name}` });
    const message = h("p", { class: "form-message", role: "status" });
    const button = h("button", { type: "submit" }, "Set");
    const el = h("form", { class: "write", "data-write": name, novalidate: true }, form.element, button, message);
    // The input shows the value as it changes, unless the user is editing it: a field
    // of the form has the focus, or holds a change not sent yet (Escape drops it).
    let changed = false;
    let watched = null; // the id of the write this form's message follows
    el.addEventListener("input", () => (changed = true));
    el.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !changed) return;
      changed = false;
      form.showErrors({});
      fillForm(form, current);
    });
    const editing = () => changed || (el.contains(document.activeElement) && document.activeElement.matches("input, select, textarea"));
    follow = () => {
      if (current !== undefined && !editing()) fillForm(form, current);
    };
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.textContent = "";
      message.className = "form-message";
      if (watched) requests.unwatch(watched);
      watched = null;
      const { value: v, errors } = form.read();
      if (v === undefined) errors["(root)"] = errors["(root)"] || "enter a value";
      if (form.showErrors(errors)) return;
      button.disabled = true;
      try {
        const answer = await api.exchange("PUT", path, v, { signal });
        changed = false;
        if (answer.status === 202) {
          watched = answer.data.id;
          showProgress(message, answer.data, "Written.");
          requests.watch(watched, (status) => {
            showProgress(message, status, "Written.");
            if (FINAL.has(status.state)) card.refresh(); // no longer desired
          });
          requests.refresh();
        } else {
          message.textContent = "Written.";
        }
        await card.refresh();
      } catch (error) {
        if (!form.showErrors(error.fields)) {
          message.textContent = problemText(error);
          message.classList.add("error");
        }
      } finally {
        button.disabled = false;
      }
    });
    element.append(el);
  }
  return card;
}

// A form's message for its request: under way, done, or how it ended otherwise.
function showProgress(message, status, done) {
  message.className = "form-message";
  if (status.state === "completed") {
    message.textContent = done;
  } else if (FINAL.has(status.state)) {
    const detail = status.error?.detail || status.error?.title;
    message.textContent = `${status.state[0].toUpperCase()}${status.state.slice(1)}${detail ? `: ${detail}` : "."}`;
    message.classList.add("error");
  } else {
    message.textContent = UNDER_WAY[status.state] || status.state;
  }
}

function actionCard(base, name, affordance, requests) {
  const path = `${base}/actions/${encodeURIComponent(name)}`;
  const element = h(
    "div",
    { class: "card action", "data-action": name },
    h("h3", {}, affordance.title || name, affordance.safe ? h("span", { class: "badge" }, "safe") : ""),
    affordance.description ? h("p", { class: "help" }, affordance.description) : "",
  );
  if (!api.may.invoke()) return element;
  const form = affordance.input ? schemaForm(affordance.input, { idPrefix: `a-${name}` }) : null;
  const result = h("pre", { class: "result", hidden: true });
  const message = h("p", { class: "form-message", role: "status" });
  const button = h("button", { type: "submit" }, "Invoke");
  const el = h("form", { class: "invoke", "data-invoke": name, novalidate: true }, form ? form.element : "", button, message, result);
  const showOutput = (output) => {
    if (output === null || output === undefined) return;
    result.textContent = JSON.stringify(output, null, 2);
    result.hidden = false;
  };
  let watched = null; // the id of the action this form's message follows
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    message.className = "form-message";
    result.hidden = true;
    if (watched) requests.unwatch(watched);
    watched = null;
    let input = null;
    if (form) {
      const read = form.read();
      if (form.showErrors(read.errors)) return;
      input = read.value;
    }
    button.disabled = true;
    try {
      // Prefer: the status (201) when the device has not finished within 2 s.
      const answer = await api.exchange("POST", path, input, { headers: { Prefer: "wait=2" } });
      if (answer.status === 201) {
        watched = answer.data.id;
        showProgress(message, answer.data, "Completed.");
        requests.watch(watched, (status) => {
          showProgress(message, status, "Completed.");
          if (status.state === "completed") showOutput(status.output);
        });
      } else {
        message.textContent = "Completed.";
        showOutput(answer.data);
      }
    } catch (error) {
      if (!form || !form.showErrors(error.fields)) {
        message.textContent = problemText(error);
        message.classList.add("error");
      }
    } finally {
      button.disabled = false;
      requests.refresh();
    }
  });
  element.append(el);
  return element;
}

function renderStatuses(body, all, base, td, refresh) {
  all.sort((a, b) => (b.timeRequested || "").localeCompare(a.timeRequested || ""));
  const shown = all.slice(0, 50);
  const signature = JSON.stringify(shown);
  if (body.dataset.signature === signature) return; // unchanged: keep the buttons as they are
  body.dataset.signature = signature;
  const rows = shown.map((s) => {
    const write = s.operation === WRITE;
    const member = write ? "properties" : "actions";
    let cancel = "";
    if (!FINAL.has(s.state) && api.may.invoke()) {
      cancel = h("button", { type: "button", class: "secondary small", "data-cancel": s.id }, "Cancel");
      cancel.addEventListener("click", async () => {
        cancel.disabled = true;
        try {
          await api.request("DELETE", `${base}/${member}/${encodeURIComponent(s.name)}/${encodeURIComponent(s.id)}`);
        } catch (error) {
          cancel.replaceWith(h("span", { class: "error" }, problemText(error)));
          return;
        }
        refresh();
      });
    }
    const title = td[member]?.[s.name]?.title || s.name;
    const what = write ? [h("span", { class: "badge" }, "write"), ` ${title} = `, h("code", {}, show(s.input))] : [h("span", { class: "badge" }, "action"), ` ${title}`];
    const result = s.error ? problemText({ problem: s.error }) : s.output !== undefined ? show(s.output) : "";
    return h(
      "tr",
      { "data-request": s.id, "data-state": s.state, "data-kind": write ? "write" : "action" },
      h("td", { "data-label": "Request" }, what),
      h("td", { "data-label": "State" }, h("span", { class: `state state-${s.state}` }, s.state)),
      h("td", { "data-label": "Requested by", class: "requested-by" }, s.senderID || ""),
      h("td", { "data-label": "Requested" }, when(s.timeRequested)),
      h("td", { "data-label": "Ended" }, when(s.timeEnded)),
      h("td", { "data-label": "Result", class: s.error ? "error" : "" }, result),
      h("td", {}, cancel),
    );
  });
  clear(body, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No requests yet.")));
}
