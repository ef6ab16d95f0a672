// The API client: the signed-in session (tokens kept in localStorage, refreshed before they
// expire, a 401 refreshed and retried once), waiting as told on 429/503, errors as ApiError,
// and a reader of Server-Sent Events from a fetch body.

const AUTH_KEY = "switchboard.auth";
const REFRESH_MARGIN_MS = 60_000; // refresh this long before the access token expires
const MAX_WAIT_SECONDS = 60; // a longer Retry-After is shown to the user, not waited out

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = typeof body?.detail === "string" ? body.detail : Array.isArray(body?.detail)
      ? body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.code = body?.code ?? null;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

export class NetworkError extends Error {}
export class SignedOut extends Error {}

/** Seconds a Retry-After header asks for (a number or an HTTP date), or null. */
export function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body, retryAfter(response));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// What the page shows while a request waits out a 429 or a 503; replaced by the app.
export const hooks = {
  async wait(seconds) {
    await sleep(seconds * 1000);
  },
  signedOut() {},
  changed() {},
};

// ---------------------------------------------------------------------------- the session

let session = read();
let refreshTimer = null;
let refreshing = null;

function read() {
  try {
    const value = JSON.parse(localStorage.getItem(AUTH_KEY));
    return value && value.access_token && value.refresh_token ? value : null;
  } catch {
    return null;
  }
}

function store(body) {
  session = {
    access_token: body.access_token,
    refresh_token: body.refresh_token,
    expires_at: Date.now() + body.expires_in * 1000,
    user: body.user ?? session?.user ?? null,
  };
  localStorage.setItem(AUTH_KEY, JSON.stringify(session));
  schedule();
  hooks.changed(session.user);
}

function forget() {
  session = null;
  localStorage.removeItem(AUTH_KEY);
  clearTimeout(refreshTimer);
}

function schedule() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const due = Math.max(5_000, session.expires_at - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), due);
}

// Another tab signed in, out, or refreshed: take its tokens (a refresh token is spent once).
window.addEventListener("storage", (event) => {
  if (event.key !== AUTH_KEY) return;
  const before = session;
  session = read();
  schedule();
  if (before && !session) hooks.signedOut();
});

export function currentUser() {
  return session?.user ?? null;
}

export function signedIn() {
  return session !== null;
}

export function setUser(user) {
  if (!session) return;
  session.user = user;
  localStorage.setItem(AUTH_KEY, JSON.stringify(session));
}

function withLock(task) {
  // One refresh at a time across this browser's tabs: rotating refresh tokens are single use.
  if (navigator.locks?.request) return navigator.locks.request("switchboard-refresh", task);
  return task();
}

/** A new token pair from the refresh token (once at a time, across tabs). */
export function refresh() {
  if (refreshing) return refreshing;
  const spent = session?.refresh_token;
  refreshing = withLock(async () => {
    const latest = read();
    if (!latest) throw new SignedOut();
    if (latest.refresh_token !== spent && latest.expires_at - Date.now() > REFRESH_MARGIN_MS) {
      session = latest; // another tab refreshed while this one waited for the lock
      schedule();
      return;
    }
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch("/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ refresh_token: latest.refresh_token }),
        });
      } catch {
        throw new NetworkError();
      }
      if (response.ok) {
        store(await response.json());
        return;
      }
      const wait = retryAfter(response);
      if ((response.status === 429 || response.status === 503) && wait !== null && attempt < 3) {
        await hooks.wait(Math.min(wait, MAX_WAIT_SECONDS), response.status);
        continue;
      }
      if (response.status === 401) {
        forget();
        hooks.signedOut();
        throw new SignedOut();
      }
      throw await errorFrom(response);
    }
  }).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

// ---------------------------------------------------------------------------- requests

/**
 * A JSON request. `auth: false` for /auth/*; `raw: true` answers the Response itself (for a
 * stream). A 401 is refreshed and retried once; a 429 or 503 with a Retry-After up to a minute
 * is waited out (hooks.wait shows it) and retried, a longer one is an ApiError to show.
 */
export async function request(method, path, options = {}) {
  const { body, auth = true, raw = false, accept = "application/json", signal } = options;
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth) {
      if (!session) throw new SignedOut();
      if (session.expires_at - Date.now() < 30_000 && !refreshed) {
        await refresh();
        refreshed = true;
      }
      headers.Authorization = `Bearer ${session.access_token}`;
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new NetworkError();
    }
    if (response.status === 401 && auth && !refreshed) {
      refreshed = true;
      await refresh();
      continue;
    }
    if (response.status === 401 && auth) {
      forget();
      hooks.signedOut();
      throw new SignedOut();
    }
    if (response.status === 429 || response.status === 503) {
      const wait = retryAfter(response);
      if (wait !== null && wait <= MAX_WAIT_SECONDS && attempt < 3) {
        await hooks.wait(wait, response.status);
        continue;
      }
    }
    if (!response.ok) throw await errorFrom(response);
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });
export const put = (path, body, options = {}) => request("PUT", path, { ...options, body });
export const del = (path, options) => request("DELETE", path, options);

export async function signIn(email, password) {
  store(await post("/auth/login", { email, password }, { auth: false }));
  return session.user;
}

export async function signUp(name, email, password) {
  store(await post("/auth/register", { name, email, password }, { auth: false }));
  return session.user;
}

export async function signOut() {
  const token = session?.refresh_token;
  forget();
  if (token) {
    try {
      await post("/auth/logout", { refresh_token: token }, { auth: false });
    } catch {
      // Signed out here either way; the token expires by itself.
    }
  }
}

/** Start the refresh timer of a session read from storage (a page load). */
export function resume() {
  if (session) schedule();
}

// ---------------------------------------------------------------------------- SSE

/**
 * The events of a text/event-stream body, as {type, data, id}: the WHATWG parsing rules (any
 * line ending, comments, multi-line data); `id` is the event's own id line, or null.
 */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let type = "";
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending += value;
      // A "\r" at the end may be half of a "\r\n": keep it for the next chunk.
      const end = pending.endsWith("\r") ? pending.length - 1 : pending.length;
      const lines = pending.slice(0, end).split(/\r\n|\r|\n/);
      pending = lines.pop() + pending.slice(end);
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), id };
          type = "";
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) id = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
