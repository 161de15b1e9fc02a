// Forms generated from WoT data schemas (a JSON Schema subset), validated in the
// browser before sending (the hub validates again). Field paths are the hub's
// validationErrors fields: "a.b.0", and "(root)" for the value itself.

import { h } from "./dom.js";

export const ROOT = "(root)";
const join = (path, key) => (path === ROOT ? String(key) : `${path}.${key}`);

// A form for a value of `schema`: {element, read(): {value, errors}, showErrors(map)}.
export function schemaForm(schema, { idPrefix = "f" } = {}) {
  const fields = new Map(); // path -> {wrapper, error}
  const root = build(schema || {}, ROOT, "value", true, idPrefix, fields);
  return {
    element: root.element,
    read() {
      const value = root.read();
      const errors = {};
      if (value !== undefined || schema) validate(schema || {}, value, ROOT, errors);
      for (const [path, message] of root.parseErrors()) errors[path] = message;
      return { value, errors };
    },
    showErrors(errors) {
      let shown = false;
      for (const [path, field] of fields) {
        const message = errors[path];
        field.error.textContent = message || "";
        field.wrapper.classList.toggle("invalid", Boolean(message));
        if (message) shown = true;
      }
      return shown;
    },
  };
}

function typeOf(schema) {
  if (schema.type) return Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (schema.enum) return "enum";
  if (schema.properties) return "object";
  return "any";
}

function build(schema, path, label, required, idPrefix, fields) {
  const type = typeOf(schema);
  const id = `${idPrefix}-${path.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const error = h("span", { class: "field-error", "data-error-for": path });
  const title = schema.title || label;
  const labelEl = h("label", { for: id }, title, required ? "" : h("span", { class: "optional" }, " (optional)"));
  const unit = schema.unit ? h("span", { class: "unit" }, schema.unit) : "";
  const help = schema.description ? h("small", { class: "help" }, schema.description) : "";
  const parseErrors = [];

  if (type === "object" && schema.properties) {
    const children = Object.entries(schema.properties).map(([key, sub]) =>
      build(sub, join(path, key), key, (schema.required || []).includes(key), idPrefix, fields),
    );
    const keys = Object.keys(schema.properties);
    const element = h(
      path === ROOT ? "div" : "fieldset",
      { class: "object", "data-field": path },
      path === ROOT ? "" : h("legend", {}, title),
      ...children.map((c) => c.element),
      error,
    );
    fields.set(path, { wrapper: element, error });
    return {
      element,
      read() {
        const out = {};
        children.forEach((child, i) => {
          const v = child.read();
          if (v !== undefined) out[keys[i]] = v;
        });
        return out;
      },
      parseErrors: () => children.flatMap((c) => c.parseErrors()),
    };
  }

  let input;
  let read;
  if (schema.const !== undefined) {
    input = h("input", { id, value: JSON.stringify(schema.const), disabled: true });
    read = () => schema.const;
  } else if (schema.enum) {
    const options = schema.enum.map((v, i) => h("option", { value: String(i) }, String(v)));
    input = h("select", { id }, required ? "" : h("option", { value: "" }, "—"), ...options);
    read = () => (input.value === "" ? undefined : schema.enum[Number(input.value)]);
  } else if (type === "boolean") {
    input = h("select", { id }, required ? "" : h("option", { value: "" }, "—"),
      h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    read = () => (input.value === "" ? undefined : input.value === "true");
  } else if (type === "integer" || type === "number") {
    const attrs = { id, type: "number", step: type === "integer" ? "1" : "any", inputmode: "decimal" };
    if (schema.minimum !== undefined) attrs.min = schema.minimum;
    if (schema.maximum !== undefined) attrs.max = schema.maximum;
    input = h("input", attrs);
    read = () => {
      if (input.value.trim() === "") return undefined;
      const n = Number(input.value);
      if (Number.isNaN(n)) parseErrors.push([path, "not a number"]);
      return n;
    };
  } else if (type === "string") {
    input = h("input", { id, type: schema.format === "password" ? "password" : "text", autocomplete: "off" });
    read = () => (input.value === "" && !required ? undefined : input.value);
  } else if (type === "null") {
    input = h("input", { id, value: "null", disabled: true });
    read = () => null;
  } else {
    // arrays, objects without properties, anything else: JSON text
    input = h("textarea", { id, rows: 3, placeholder: "JSON" });
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch {
        parseErrors.push([path, "not valid JSON"]);
        return undefined;
      }
    };
  }
  const element = h("div", { class: "field", "data-field": path }, labelEl, h("div", { class: "input-row" }, input, unit), help, error);
  fields.set(path, { wrapper: element, error });
  return {
    element,
    read: () => {
      parseErrors.length = 0;
      return read();
    },
    parseErrors: () => parseErrors,
  };
}

// Show `value` in a form made by schemaForm (a property's write form follows the
// property's value): each field gets the part of the value at its path.
export function fillForm(form, value) {
  if (value === undefined) return;
  const fields = [form.element, ...form.element.querySelectorAll(".field[data-field]")];
  for (const field of fields.filter((f) => f.matches(".field[data-field]"))) {
    const input = field.querySelector(":scope > .input-row > :is(input, select, textarea)");
    if (!input || input.disabled) continue;
    const part = at(value, field.dataset.field);
    if (input.tagName === "SELECT") {
      const option = [...input.options].find((o) => o.textContent === String(part));
      input.value = option ? option.value : "";
    } else if (input.tagName === "TEXTAREA") {
      input.value = part === undefined ? "" : JSON.stringify(part);
    } else {
      input.value = part === undefined || part === null ? "" : String(part);
    }
  }
}

function at(value, path) {
  if (path === ROOT) return value;
  let here = value;
  for (const key of path.split(".")) {
    if (here === null || typeof here !== "object") return undefined;
    here = here[key];
  }
  return here;
}

const TYPES = {
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number" && Number.isFinite(v),
  integer: (v) => Number.isInteger(v),
  boolean: (v) => typeof v === "boolean",
  object: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  null: (v) => v === null,
};

// Collect {path: description} for every failing field of `value`.
export function validate(schema, value, path = ROOT, errors = {}) {
  const fail = (message) => {
    if (!(path in errors)) errors[path] = message;
  };
  if (value === undefined) return errors;
  if (schema.type) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => TYPES[t]?.(value))) {
      fail(`must be ${types.join(" or ")}`);
      return errors;
    }
  }
  if (schema.const !== undefined && JSON.stringify(value) !== JSON.stringify(schema.const)) fail(`must be ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) fail(`must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) fail(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) fail(`must be at most ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) fail(`must be more than ${schema.exclusiveMinimum}`);
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) fail(`must be less than ${schema.exclusiveMaximum}`);
    if (schema.multipleOf && Math.abs(value / schema.multipleOf - Math.round(value / schema.multipleOf)) > 1e-9) fail(`must be a multiple of ${schema.multipleOf}`);
  }
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) fail(`must have at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined && length > schema.maxLength) fail(`must have at most ${schema.maxLength} characters`);
    if (schema.pattern) {
      try {
        if (!new RegExp(schema.pattern, "u").test(value)) fail(`must match ${schema.pattern}`);
      } catch {
        // a pattern this browser cannot compile: the hub decides
      }
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) fail(`must have at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`must have at most ${schema.maxItems} items`);
    if (schema.items && !Array.isArray(schema.items)) value.forEach((item, i) => validate(schema.items, item, join(path, i), errors));
  }
  if (TYPES.object(value)) {
    for (const key of schema.required || []) {
      if (!(key in value)) errors[join(path, key)] = "is required";
    }
    for (const [key, sub] of Object.entries(schema.properties || {})) {
      if (key in value) validate(sub, value[key], join(path, key), errors);
    }
  }
  return errors;
}
