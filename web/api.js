// How the page talks to the server: every request is same-origin with credentials and
// carries the `X-Requested-With: lvbak` header the server asks of state-changing requests
// (a CSRF check), JSON goes in and out, and a refusal — the server's `{code, error}` — is
// read as `{code, message}`, the shape the Worker's errors have too. No DOM here: the
// Worker imports it as well.
export const CSRF_HEADERS = Object.freeze({ "X-Requested-With": "lvbak" });

/** `fetch` with the page's credentials and the CSRF header. */
export function api(path, options = {}) {
  return fetch(path, { credentials: "same-origin", ...options, headers: { ...CSRF_HEADERS, ...(options.headers || {}) } });
}

/** Sends `body` as JSON (a POST unless `method` says otherwise). */
export function sendJson(path, body, method = "POST") {
  return api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/** An answer's JSON body, or `{}` when it has none (an empty body, a proxy's HTML page). */
export async function readJson(answer) {
  try {
    return (await answer.json()) ?? {};
  } catch (_) {
    return {};
  }
}

/** The JSON of a GET answered 200, or null (signed out, gone, refused). */
export async function getJson(path) {
  const answer = await api(path);
  return answer.status === 200 ? readJson(answer) : null;
}

/** A refusal's `{code, message}`: the server's `{code, error}`, or the HTTP status when the
 * body says nothing. */
export function refusalOf(status, body) {
  return { code: (body && body.code) || `http_${status}`, message: (body && (body.error || body.message)) || "" };
}

/** A refusal in words, code first (`not_zip: …`), as every card shows one. */
export const refusalWords = ({ code, message }) => `${code}: ${message}`;
