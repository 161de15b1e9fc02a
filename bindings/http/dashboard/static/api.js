// The hub's HTTP API as the dashboard uses it: the session (the token lives in this
// module's memory only: never in a URL, a cookie or Web Storage), JSON requests that
// send it as a bearer token, and SSE streams read with fetch() so they can send it too
// (EventSource cannot set an Authorization header). See docs/dashboard.md.

let session = null; // {token, expires, clientID, role}
let refreshTimer = null;
let onExpired = () => {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  // {field: description} from the problem's validationErrors
  get fields() {
    const out = {};
    for (const e of this.problem.validationErrors || []) out[e.field] = e.description;
    return out;
  }
}

export const current = () => session;

export function whenExpired(handler) {
  onExpired = handler;
}

export function hasRole(...roles) {
  return session !== null && roles.includes(session.role);
}

// Who may do what (docs/auth.md); the hub checks again on every request.
export const may = {
  invoke: () => hasRole("operator", "manager", "admin", "service"),
  write: () => hasRole("manager", "admin", "service"),
  administer: () => hasRole("admin"),
};

export async function login(clientID, password) {
  const answer = await request("POST", "/authn/login", { clientID, password }, { auth: false });
  start(answer);
  return answer;
}

export async function logout() {
  const token = session?.token;
  end();
  if (token) {
    await fetch("/authn/logout", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    }).catch(() => {});
  }
}

function start(answer) {
  session = answer;
  clearTimeout(refreshTimer);
  // Refresh when four fifths of the token's life is gone (at most a minute before it
  // ends), so requests never carry an expired token.
  const left = Date.parse(answer.expires) - Date.now();
  const delay = Math.max(1000, Math.min(left * 0.8, left - 60_000));
  refreshTimer = setTimeout(refresh, delay);
}

async function refresh() {
  if (!session) return;
  try {
    start(await request("POST", "/authn/refresh", null));
  } catch (error) {
    if (error.status === 401) return; // request() has already ended the session
    refreshTimer = setTimeout(refresh, 10_000); // the hub is unreachable: try again
  }
}

function end() {
  session = null;
  clearTimeout(refreshTimer);
}

function expired(message) {
  if (!session) return;
  end();
  onExpired(message);
}

// One request; JSON in and out. Resolves to the parsed body (null when empty) or
// rejects with ApiError. A 401 ends the session (the token expired or was revoked).
export async function request(method, path, body, options = {}) {
  const { status, data } = await exchange(method, path, body, options);
  return data;
}

// Like request(), with the status and headers too: {status, data, headers}.
export async function exchange(method, path, body, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.auth !== false) {
    if (!session) throw new ApiError(401, { title: "Not logged in" });
    headers.Authorization = `Bearer ${session.token}`;
  }
  const init = { method, headers, signal: options.signal };
  if (body !== null && body !== undefined) {
    headers["Content-Type"] = options.contentType || "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { title: "The hub cannot be reached", detail: String(error) });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && options.auth !== false) {
      expired("Your session has expired or was ended. Please log in again.");
    }
    throw new ApiError(response.status, typeof data === "object" ? data : { detail: text });
  }
  return { status: response.status, data, headers: response.headers };
}

// Path of a Thing (one percent-encoded segment, so an id with "/" stays whole).
export const thingPath = (id) => `/things/${encodeURIComponent(id)}`;

// Follow a Server-Sent Events stream until `signal` aborts: onEvent(name, data) per
// event. Reconnects with Last-Event-ID after a drop (the hub replays what was missed, or
// sends "resync"); onState("open" | "retrying") reports the connection.
export function stream(path, onEvent, { signal, onState = () => {} }) {
  let lastId = null;
  let delay = 500;
  const run = async () => {
    while (!signal.aborted && session) {
      const headers = {
        Accept: "text/event-stream",
        Authorization: `Bearer ${session.token}`,
      };
      if (lastId) headers["Last-Event-ID"] = lastId;
      try {
        const response = await fetch(path, { headers, signal, cache: "no-store" });
        if (response.status === 401) {
          expired("Your session has expired or was ended. Please log in again.");
          return;
        }
        if (!response.ok || !response.body) {
          onEvent("error", { status: response.status, detail: await response.text() });
          if (response.status < 500) return; // refused: retrying will not help
        } else {
          onState("open");
          delay = 500;
          await readEvents(response.body, (event) => {
            if (event.id) lastId = event.id;
            if (event.name !== null) onEvent(event.name, event.data);
          });
        }
      } catch (error) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  run();
}

// Parse text/event-stream (the WHATWG rules: "event", "data", "id"; comments ignored).
async function readEvents(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = null;
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (newline === buffer.length - 1 && buffer.endsWith("\r")) break; // "\n" may follow
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (data.length || id !== null) {
          let parsed = null;
          if (data.length) {
            const text = data.join("\n");
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          emit({ name: data.length ? name || "message" : null, data: parsed, id });
        }
        name = null;
        data = [];
        id = null;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let text = colon < 0 ? "" : line.slice(colon + 1);
      if (text.startsWith(" ")) text = text.slice(1);
      if (field === "event") name = text;
      else if (field === "data") data.push(text);
      else if (field === "id") id = text;
    }
  }
}
