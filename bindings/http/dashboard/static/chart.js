// A small live line chart of a numeric property, drawn as plain SVG.

import { h } from "./dom.js";

const WIDTH = 240;
const HEIGHT = 60;
const POINTS = 60; // the last 60 values

export class Chart {
  constructor(label) {
    this.values = [];
    this.line = h("svg:polyline", { class: "chart-line", points: "" });
    this.low = h("svg:text", { class: "chart-label", x: 2, y: HEIGHT - 2 }, "");
    this.high = h("svg:text", { class: "chart-label", x: 2, y: 10 }, "");
    this.element = h(
      "svg:svg",
      {
        class: "chart",
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        preserveAspectRatio: "none",
        role: "img",
        "aria-label": `${label} over time`,
      },
      h("svg:rect", { class: "chart-frame", x: 0, y: 0, width: WIDTH, height: HEIGHT }),
      this.line,
      this.high,
      this.low,
    );
  }

  add(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return;
    this.values.push(value);
    if (this.values.length > POINTS) this.values.shift();
    this.draw();
  }

  draw() {
    const values = this.values;
    let min = Math.min(...values);
    let max = Math.max(...values);
    if (min === max) {
      min -= 1;
      max += 1;
    }
    const step = WIDTH / Math.max(POINTS - 1, 1);
    const offset = POINTS - values.length;
    const points = values.map((v, i) => {
      const x = (offset + i) * step;
      const y = HEIGHT - 4 - ((v - min) / (max - min)) * (HEIGHT - 8);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    this.line.setAttribute("points", points.join(" "));
    this.high.textContent = String(+max.toPrecision(4));
    this.low.textContent = String(+min.toPrecision(4));
    this.element.dataset.points = String(values.length);
  }
}
