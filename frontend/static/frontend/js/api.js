// The REST client of the pages: same API external clients use (docs/architecture.md).

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
  get isNetwork() { return this.status === 0; }
  get isAuth() { return this.status === 401 || (this.status === 403 && this.code === "not_authenticated"); }
}

function cookie(name) {
  const m = document.cookie.match(new RegExp(`(?:^|; )${name}=([^;]*)`));
  return m ? decodeURIComponent(m[1]) : "";
}

function csrfToken() {
  // Read on every call: signing in again (expired session) rotates the token.
  return cookie("csrftoken") || document.querySelector("meta[name=csrf-token]")?.content || "";
}

/** fetch JSON from /api/v1/...; throws ApiError with the server's rule code and message. */
export async function api(method, path, body, { signal, keepalive } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", signal, keepalive };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  let resp;
  try {
    resp = await fetch(`/api/v1/${path}`, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "The server could not be reached. Your work is kept in this browser; try again in a moment.");
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    let code = e.code || (data && data.code) || `http_${resp.status}`;
    let message = e.message || (data && data.detail) || `The server answered ${resp.status}.`;
    if (resp.status === 403 && /credentials|authenticat/i.test(message)) code = "not_authenticated";
    if (resp.status === 401) code = "not_authenticated";
    if (code === "not_authenticated") message = "You were signed out. Your work is kept in this browser; sign in again to continue.";
    throw new ApiError(resp.status, code, message, e.details);
  }
  return data;
}
