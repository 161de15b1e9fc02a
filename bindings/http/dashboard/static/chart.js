// A chart of one property's or event's history (docs/history.md): the values of a range
// (the last hour, day or week), read downsampled to a few hundred buckets, with the live
// values appended as they come, and the rows shown offered as CSV. Numbers are a line
// through each bucket's mean; booleans and enums are steps between their states (each
// bucket's last value). Drawn by uPlot, vendored in vendor/uplot/ (index.html loads it
// as the global `uPlot`).

import * as api from "./api.js";
import { h, download, problemText } from "./dom.js";

// Each range's step keeps it to about 300 buckets.
const RANGES = {
  hour: { label: "Hour", ms: 3_600_000, step: "12s" },
  day: { label: "Day", ms: 86_400_000, step: "5m" },
  week: { label: "Week", ms: 604_800_000, step: "30m" },
};
const HEIGHT = 150;
const MAX_PAGES = 10; // a page of buckets ends early after 250,000 values: a week at 1 Hz takes 3
const COLUMNS = ["time", "count", "min", "max", "mean", "last"];
const LINE = "#2563eb";
const BAND = "rgba(37, 99, 235, 0.15)";

// How values of this data schema are drawn: {kind: "number"}, {kind: "state", states},
// or null (not at all: objects, arrays, free text).
export function chartable(schema) {
  if (!schema) return null;
  if (schema.type === "number" || schema.type === "integer") return { kind: "number" };
  if (schema.type === "boolean") return { kind: "state", states: [false, true] };
  if (Array.isArray(schema.enum) && schema.enum.length) return { kind: "state", states: schema.enum };
  return null;
}

export class HistoryChart {
  // path: the history's URL; how: from chartable(); filename: the CSV's, without ".csv"
  constructor(path, label, how, { signal, filename }) {
    this.path = path;
    this.label = label;
    this.how = how;
    this.signal = signal;
    this.filename = filename;
    this.range = "hour";
    this.from = Date.now() - RANGES.hour.ms; // ms: where the range shown starts
    this.rows = []; // what is shown, oldest first: buckets, then live values as rows of one
    this.loading = null; // the load under way: live values wait in `waiting` meanwhile
    this.waiting = [];
    this.plot = null;
    this.area = h("div", { class: "chart-plot" });
    this.message = h("p", { class: "chart-message", role: "status" });
    this.buttons = Object.entries(RANGES).map(([range, { label: text }]) =>
      h("button", { type: "button", class: "small secondary", "data-range": range, onclick: () => this.load(range) }, text),
    );
    const csv = h("button", { type: "button", class: "small secondary", "data-csv": true, onclick: () => this.exportCsv() }, "CSV");
    this.element = h(
      "div",
      { class: "history-chart", "data-kind": how.kind, "data-points": "0", role: "figure", "aria-label": `${label} over time` },
      h("div", { class: "chart-tools" }, this.buttons, h("span", { class: "spacer" }), csv),
      this.area,
      this.message,
    );
    this.element.chart = this; // so tests (and the console) reach the uPlot instance
  }

  // Read the range (a key of RANGES) from the history and draw it.
  async load(range = this.range) {
    this.range = range;
    for (const button of this.buttons) button.setAttribute("aria-pressed", String(button.dataset.range === range));
    const from = Date.now() - RANGES[range].ms;
    const run = (this.loading = this.read(from, RANGES[range].step));
    try {
      const rows = await run;
      if (this.loading !== run) return; // a later load (another range) has replaced it
      const newest = rows.length ? Date.parse(rows.at(-1).time) : -Infinity;
      this.from = from;
      this.rows = [...rows, ...this.waiting.filter((row) => Date.parse(row.time) > newest)];
      this.message.textContent = this.rows.length ? "" : "No values in this range yet.";
      this.draw();
    } catch (error) {
      if (this.loading === run && !this.signal.aborted) this.message.textContent = problemText(error);
    } finally {
      if (this.loading === run) {
        this.loading = null;
        this.waiting = [];
      }
    }
  }

  // The buckets from `from` to now, oldest first, following the pages.
  async read(from, step) {
    const query = { from: new Date(from).toISOString(), step, order: "oldest", limit: "1000" };
    const rows = [];
    for (let page = 0; page < MAX_PAGES; page++) {
      const answer = await api.request("GET", `${this.path}?${new URLSearchParams(query)}`, null, { signal: this.signal });
      rows.push(...answer.items);
      if (!answer.cursor) break;
      query.cursor = answer.cursor;
    }
    return rows;
  }

  // A live value (from the page's SSE stream), timed on arrival.
  add(value) {
    const row = { time: new Date().toISOString(), count: 1, last: value };
    if (typeof value === "number") Object.assign(row, { min: value, max: value, mean: value });
    if (this.loading) {
      this.waiting.push(row);
      return;
    }
    this.from = Date.now() - RANGES[this.range].ms; // the range moves on with the clock
    while (this.rows.length && Date.parse(this.rows[0].time) < this.from) this.rows.shift();
    this.rows.push(row);
    this.message.textContent = "";
    this.draw();
  }

  draw() {
    const data = [this.rows.map((row) => Date.parse(row.time) / 1000), this.rows.map((row) => this.y(row))];
    this.element.dataset.points = String(this.rows.length);
    this.area.hidden = !this.rows.length; // no empty axes: the message says why
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    if (typeof uPlot === "undefined") {
      this.message.textContent = "The chart library did not load.";
      return;
    }
    this.plot = new uPlot(this.options(), data, this.area);
    const resizer = new ResizeObserver(() => {
      const width = this.area.clientWidth;
      if (width && width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    });
    resizer.observe(this.area);
    this.signal.addEventListener("abort", () => {
      resizer.disconnect();
      this.plot.destroy();
    });
  }

  // A row's height: a number's mean, or a state's place in the list of states.
  y(row) {
    if (this.how.kind === "number") return typeof row.mean === "number" ? row.mean : null;
    const at = this.how.states.indexOf(row.last);
    return at < 0 ? null : at;
  }

  options() {
    const range = () => [this.from / 1000, (this.from + RANGES[this.range].ms) / 1000];
    const line = { label: this.label, stroke: LINE, width: 1.5 };
    const options = {
      width: this.area.clientWidth || 300,
      height: HEIGHT,
      legend: { show: false },
      scales: { x: { time: true, range } },
      axes: [{}, {}],
      series: [{}, line],
    };
    if (this.how.kind === "state") {
      const names = this.how.states.map(String);
      options.scales.y = { range: () => [-0.25, names.length - 0.75] };
      options.axes[1] = {
        splits: () => names.map((_, i) => i),
        values: (u, splits) => splits.map((i) => names[i] ?? ""),
        size: Math.min(140, 16 + 7 * Math.max(...names.map((n) => n.length))),
      };
      Object.assign(line, { paths: uPlot.paths.stepped({ align: 1 }), fill: BAND });
    }
    return options;
  }

  // The rows shown as CSV (time, count, min, max, mean, last), made in the browser.
  exportCsv() {
    const lines = [COLUMNS.join(","), ...this.rows.map((row) => COLUMNS.map((column) => csvField(row[column])).join(","))];
    download(`${this.filename}-${this.range}.csv`, `${lines.join("\r\n")}\r\n`, "text/csv");
  }
}

function csvField(value) {
  if (value === undefined || value === null) return "";
  let text = typeof value === "string" ? value : JSON.stringify(value);
  // a spreadsheet would run a reported text starting with = + - @ as a formula
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
