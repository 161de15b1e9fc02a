// The dashboard's shell: login, the header, and the pages behind "#/..." (hash routes,
// so moving between pages never reloads the document and the in-memory token stays).

import * as api from "./api.js";
import { clientsPage, certificatesPage } from "./admin.js";
import { directoryPage } from "./directory.js";
import { h, clear, problemText } from "./dom.js";
import { groupPage, groupsPage } from "./groups.js";
import { thingPage } from "./thing.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");
const noticeBar = document.getElementById("notice");
let page = null; // the AbortController of the page on show: aborted when it is left

export function notice(text, kind = "info") {
  noticeBar.hidden = !text;
  noticeBar.className = `notice ${kind}`;
  noticeBar.textContent = text || "";
}

function route() {
  page?.abort();
  page = new AbortController();
  const signal = page.signal;
  const session = api.current();
  nav.hidden = logoutButton.hidden = !session;
  who.textContent = session ? `${session.clientID} (${session.role})` : "";
  for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !api.may.administer();
  if (!session) {
    loginPage();
    return;
  }
  const path = location.hash.slice(1) || "/";
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#${path}`);
  }
  let shown;
  if (path.startsWith("/thing/")) {
    shown = thingPage(view, decodeURIComponent(path.slice("/thing/".length)), signal);
  } else if (path === "/groups") {
    shown = groupsPage(view, signal);
  } else if (path.startsWith("/group/")) {
    shown = groupPage(view, decodeURIComponent(path.slice("/group/".length)), signal);
  } else if (path.startsWith("/admin/")) {
    if (!api.may.administer()) {
      clear(view, h("p", { class: "refused" }, "Only administrators may see this page."));
      return;
    }
    shown = path === "/admin/certificates" ? certificatesPage(view, signal) : clientsPage(view, signal);
  } else {
    shown = directoryPage(view, signal);
  }
  Promise.resolve(shown).catch((error) => {
    if (signal.aborted || error.name === "AbortError" || error.status === 401) return;
    clear(view, h("p", { class: "error" }, problemText(error)), h("p", {}, h("a", { href: "#/" }, "Back to the Things")));
  });
}

function loginPage() {
  document.title = "Log in · wothub";
  const id = h("input", { id: "login-id", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("p", { id: "login-message", class: "error", role: "alert" });
  const button = h("button", { type: "submit" }, "Log in");
  const form = h(
    "form",
    { id: "login-form", class: "login card" },
    h("h1", {}, "Log in to the hub"),
    h("div", { class: "field" }, h("label", { for: "login-id" }, "Client id"), id),
    h("div", { class: "field" }, h("label", { for: "login-password" }, "Password"), password),
    message,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    message.textContent = "";
    try {
      await api.login(id.value.trim(), password.value);
      notice("");
      route();
    } catch (error) {
      message.textContent =
        error.status === 401
          ? "Wrong client id or password."
          : error.status === 429
            ? "Too many failed attempts: wait a moment and try again."
            : problemText(error);
      button.disabled = false;
      password.select();
    }
  });
  clear(view, form);
  id.focus();
}

logoutButton.addEventListener("click", async () => {
  await api.logout();
  notice("You have logged out.");
  route();
});

api.whenExpired((message) => {
  notice(message, "warning");
  route();
});

window.addEventListener("hashchange", route);
route();
