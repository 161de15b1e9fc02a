// Administration (admins only; the hub refuses everyone else regardless): clients and
// certificates, through the actions of the hub's own Things urn:wothub:clients and
// urn:wothub:certs, like any other consumer would.

import * as api from "./api.js";
import { h, clear, when, download, problemText } from "./dom.js";
import { schemaForm } from "./schema.js";

const CLIENTS = "urn:wothub:clients";
const CERTS = "urn:wothub:certs";
const ROLES_OF_KIND = {
  consumer: ["viewer", "operator", "manager", "admin"],
  agent: ["agent"],
  service: ["service"],
};

const invoke = (thing, action, input = null) =>
  api.request("POST", `${api.thingPath(thing)}/actions/${action}`, input);

// A button that asks "sure?" on its first click and acts on the second.
function confirmButton(label, act) {
  const button = h("button", { type: "button", class: "secondary small danger" }, label);
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = `Confirm ${label.toLowerCase()}?`;
      setTimeout(() => {
        armed = false;
        button.textContent = label;
      }, 5000);
      return;
    }
    button.disabled = true;
    await act();
  });
  return button;
}

// A form for one action of a hub Thing, made from the action's input schema.
function actionForm(td, action, { id, submit, onDone, prepare }) {
  const form = schemaForm(td.actions[action].input, { idPrefix: id });
  const message = h("p", { class: "form-message", role: "status" });
  const button = h("button", { type: "submit" }, submit);
  const el = h("form", { id, class: "card admin-form", novalidate: true }, form.element, button, message);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.className = "form-message";
    message.textContent = "";
    const read = form.read();
    if (form.showErrors(read.errors)) return;
    button.disabled = true;
    try {
      const input = prepare ? await prepare(read.value) : read.value;
      const output = await invoke(td.id, action, input);
      el.reset();
      await onDone(output, message);
    } catch (error) {
      if (!form.showErrors(error.fields || {})) {
        message.textContent = problemText(error);
        message.classList.add("error");
      }
    } finally {
      button.disabled = false;
    }
  });
  return { element: el, form };
}

export async function clientsPage(view, signal) {
  document.title = "Clients · wothub";
  const td = await api.request("GET", api.thingPath(CLIENTS), null, { signal });
  const body = h("tbody", { id: "clients-body" });
  const message = h("p", { id: "clients-message", role: "status", class: "form-message" });

  async function load() {
    const clients = await invoke(CLIENTS, "listClients");
    clear(body, ...clients.map(row));
  }

  function row(client) {
    const roles = ROLES_OF_KIND[client.kind] || [client.role];
    const role = h("select", { "aria-label": `Role of ${client.clientID}`, "data-role-of": client.clientID }, ...roles.map((r) => h("option", { value: r, selected: r === client.role }, r)));
    role.disabled = roles.length < 2;
    role.addEventListener("change", () => act(() => invoke(CLIENTS, "setRole", { clientID: client.clientID, role: role.value }), `${client.clientID} is now ${role.value}.`));
    const password = h("input", { type: "password", placeholder: "new password", autocomplete: "new-password", "aria-label": `New password for ${client.clientID}`, minlength: 8 });
    const setPassword = h("button", { type: "button", class: "secondary small" }, "Set password");
    setPassword.addEventListener("click", () => {
      if (password.value.length < 8) {
        message.textContent = "A password has at least 8 characters.";
        message.className = "form-message error";
        return;
      }
      act(() => invoke(CLIENTS, "setPassword", { clientID: client.clientID, password: password.value }), `New password set for ${client.clientID}.`);
    });
    const self = client.clientID === api.current().clientID;
    const remove = self ? "" : confirmButton("Remove", () => act(() => invoke(CLIENTS, "removeClient", { clientID: client.clientID }), `${client.clientID} removed.`));
    return h(
      "tr",
      { "data-client": client.clientID },
      h("td", { "data-label": "Client" }, h("strong", {}, client.clientID), client.displayName ? h("div", { class: "id" }, client.displayName) : ""),
      h("td", { "data-label": "Kind" }, client.kind),
      h("td", { "data-label": "Role" }, role),
      h("td", { "data-label": "Enabled" }, client.enabled ? "yes" : "no"),
      h("td", { "data-label": "Password" }, h("div", { class: "inline" }, password, setPassword)),
      h("td", {}, remove),
    );
  }

  async function act(call, done) {
    message.className = "form-message";
    try {
      await call();
      message.textContent = done;
    } catch (error) {
      message.textContent = problemText(error);
      message.classList.add("error");
    }
    await load();
  }

  const add = actionForm(td, "addClient", {
    id: "add-client",
    submit: "Add client",
    onDone: async (account, msg) => {
      msg.textContent = `Added ${account.clientID} (${account.kind}, ${account.role}).`;
      await load();
    },
  });
  clear(
    view,
    h("section", { class: "admin" }, h("h1", {}, "Clients"), message, h("div", { class: "table-wrap" }, h("table", { id: "clients" }, h("thead", {}, h("tr", {}, h("th", {}, "Client"), h("th", {}, "Kind"), h("th", {}, "Role"), h("th", {}, "Enabled"), h("th", {}, "Password"), h("th", {}, ""))), body)), h("h2", {}, "Add a client"), add.element),
  );
  await load();
}

export async function certificatesPage(view, signal) {
  document.title = "Certificates · wothub";
  const td = await api.request("GET", api.thingPath(CERTS), null, { signal });
  const body = h("tbody", { id: "certificates-body" });
  const message = h("p", { id: "certificates-message", role: "status", class: "form-message" });
  const once = h("div", { id: "generated", class: "card once", hidden: true });

  async function load() {
    const certificates = await invoke(CERTS, "listCertificates", {});
    certificates.sort((a, b) => (b.notBefore || "").localeCompare(a.notBefore || ""));
    clear(body, ...certificates.map(row));
    if (!certificates.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No certificates issued yet.")));
  }

  function row(cert) {
    const revoke = cert.revoked
      ? ""
      : confirmButton("Revoke", async () => {
          message.className = "form-message";
          try {
            await invoke(CERTS, "revokeCertificate", { serial: cert.serial });
            message.textContent = `Certificate ${cert.serial} revoked.`;
          } catch (error) {
            message.textContent = problemText(error);
            message.classList.add("error");
          }
          await load();
        });
    return h(
      "tr",
      { "data-serial": cert.serial, "data-revoked": cert.revoked ? "yes" : "no" },
      h("td", { "data-label": "Serial" }, h("code", {}, cert.serial)),
      h("td", { "data-label": "Client" }, cert.clientID),
      h("td", { "data-label": "Valid" }, `${when(cert.notBefore)} – ${when(cert.notAfter)}`),
      h("td", { "data-label": "Status", class: cert.revoked ? "revoked" : "" }, cert.revoked ? `revoked ${when(cert.revokedAt)}` : "valid"),
      h("td", {}, revoke),
    );
  }

  // Issue from a CSR: the CSR comes from a file; the schema's csr text field is replaced
  // by a file input.
  const csrFile = h("input", { id: "csr-file", type: "file", accept: ".pem,.csr,application/pkcs10,application/x-pem-file" });
  const csrError = h("span", { class: "field-error" });
  const issue = actionForm(td, "issueCertificate", {
    id: "issue-certificate",
    submit: "Issue certificate",
    prepare: async (value) => {
      const file = csrFile.files[0];
      if (!file) {
        csrError.textContent = "choose the client's CSR (PEM)";
        throw new Error("no CSR chosen");
      }
      csrError.textContent = "";
      return { ...value, csr: await file.text() };
    },
    onDone: async (issued, msg) => {
      download(`${issued.clientID}.crt.pem`, issued.certificate);
      msg.textContent = `Issued certificate ${issued.serial} for ${issued.clientID} (downloaded).`;
      await load();
    },
  });
  const csrField = issue.element.querySelector('[data-field="csr"]');
  csrField.replaceChildren(h("label", { for: "csr-file" }, "CSR (PEM file)"), csrFile, csrError);
  issue.form.read = ((read) => () => {
    const out = read();
    out.value.csr = "-";
    delete out.errors.csr;
    return out;
  })(issue.form.read);

  const generate = actionForm(td, "generateCertificate", {
    id: "generate-certificate",
    submit: "Generate key and certificate",
    onDone: async (issued, msg) => {
      // the private key exists only in this answer: offer it once, then forget it
      let key = issued.privateKey;
      const keyButton = h("button", { type: "button", id: "download-key" }, "Download private key");
      keyButton.addEventListener("click", () => {
        download(`${issued.clientID}.key.pem`, key);
        key = null;
        keyButton.disabled = true;
        keyButton.textContent = "Key downloaded (not kept)";
      });
      const certButton = h("button", { type: "button", id: "download-cert", class: "secondary" }, "Download certificate");
      certButton.addEventListener("click", () => download(`${issued.clientID}.crt.pem`, issued.certificate));
      const caButton = h("button", { type: "button", class: "secondary" }, "Download hub CA");
      caButton.addEventListener("click", () => download("wothub-ca.pem", issued.caCertificate));
      clear(once, h("p", {}, `Certificate ${issued.serial} for ${issued.clientID}. `, h("strong", {}, "The private key is shown only now: download it and keep it safe.")), h("div", { class: "inline" }, keyButton, certButton, caButton));
      once.hidden = false;
      msg.textContent = `Generated certificate ${issued.serial}.`;
      await load();
    },
  });
  signal.addEventListener("abort", () => once.replaceChildren());

  clear(
    view,
    h(
      "section",
      { class: "admin" },
      h("h1", {}, "Certificates"),
      message,
      h("div", { class: "table-wrap" }, h("table", { id: "certificates" }, h("thead", {}, h("tr", {}, h("th", {}, "Serial"), h("th", {}, "Client"), h("th", {}, "Valid"), h("th", {}, "Status"), h("th", {}, ""))), body)),
      h("div", { class: "two" }, h("div", {}, h("h2", {}, "Issue from a CSR"), issue.element), h("div", {}, h("h2", {}, "Generate a key and certificate"), generate.element, once)),
    ),
  );
  await load();
}
