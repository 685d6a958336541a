// The collector's API as the page calls it: the read key from
// sessionStorage in the Authorization header (never in a URL), relative
// URLs (so the page works under a path prefix), the API's JSON errors as
// ApiError, and a record of when data last arrived, for the staleness
// indicator.

const KEY = 'vitals.collector.readKey';

/** The signed-in read key, or null. Kept for this browser tab only. */
export function getKey() {
  try { return sessionStorage.getItem(KEY); } catch { return null; }
}
export function setKey(key) { sessionStorage.setItem(KEY, key); }
export function clearKey() { sessionStorage.removeItem(KEY); }

/** An answer that was not 2xx, with the API's reason code and message. */
export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
  /** The key is unknown, revoked or not allowed to read. */
  get isAuth() { return this.status === 401 || this.status === 403; }
}

/** When data last came back, and whether the last call failed. */
export const freshness = { lastOkMs: 0, lastErrorMs: 0, lastError: '' };
const listeners = new Set();
/** Calls fn on every change of freshness or on a refused key; returns the unsubscribe. */
export function onFreshness(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function notify(event) { for (const fn of listeners) fn(event); }

/** The headers of every API call. */
export function authHeaders(key = getKey()) {
  return { Authorization: `Bearer ${key}`, Accept: 'application/json' };
}

/**
 * GET an API path (relative, `v1/...`) with the key; its JSON, or an
 * ApiError. `key` overrides the stored key (sign-in tries one first).
 */
export async function get(path, { key = getKey(), signal } = {}) {
  let response;
  try {
    response = await fetch(path, { headers: authHeaders(key), signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    freshness.lastErrorMs = Date.now();
    freshness.lastError = 'the collector did not answer';
    notify({ kind: 'error' });
    throw new ApiError(0, 'unreachable', `The collector did not answer (${e.message}).`);
  }
  let body = null;
  const text = await response.text();
  try { body = JSON.parse(text); } catch { body = null; }
  if (!response.ok) {
    const message = (body && typeof body.error === 'string') ? body.error : `${response.status} ${response.statusText}`;
    const reason = (body && typeof body.reason === 'string') ? body.reason : String(response.status);
    const error = new ApiError(response.status, reason, message);
    if (error.isAuth) notify({ kind: 'auth', error });
    throw error;
  }
  freshness.lastOkMs = Date.now();
  freshness.lastError = '';
  notify({ kind: 'ok' });
  return body;
}

/** A path segment, escaped (service names may hold any character). */
export const seg = (s) => encodeURIComponent(s);
