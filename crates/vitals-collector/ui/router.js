// Where the page is, in the URL's fragment, so a link can be shared:
// `#/<page>[/<argument>][?window=1h&sort=p95_ms&dir=desc&f.route=users]`.
// The page, its argument (a service name, a trace id), the window and the
// filters are in it; the key never is.

/** The current place: {page, arg, params (URLSearchParams)}. */
export function current() {
  const hash = location.hash.replace(/^#\/?/, '');
  const q = hash.indexOf('?');
  const path = q < 0 ? hash : hash.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  const slash = path.indexOf('/');
  const page = decodeURIComponent(slash < 0 ? path : path.slice(0, slash)) || 'services';
  let arg = null;
  if (slash >= 0) {
    try { arg = decodeURIComponent(path.slice(slash + 1)); } catch { arg = path.slice(slash + 1); }
  }
  return { page, arg, params };
}

/** The fragment of a place; params is an object or URLSearchParams. */
export function href(page, arg = null, params = {}) {
  const p = new URLSearchParams(params);
  for (const [k, v] of [...p.entries()]) if (v === '' || v === null || v === 'undefined') p.delete(k);
  const qs = p.toString();
  return `#/${encodeURIComponent(page)}${arg !== null && arg !== undefined ? `/${encodeURIComponent(arg)}` : ''}${qs ? `?${qs}` : ''}`;
}

const listeners = new Set();
/** Calls fn after every change of place; returns the unsubscribe. */
export function onPlace(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function changed() { for (const fn of listeners) fn(current()); }
window.addEventListener('hashchange', changed);

/** Goes to a place (a new history entry). */
export function go(page, arg = null, params = {}) {
  location.hash = href(page, arg, params);
}

/**
 * Changes some parameters of the current place (null removes one) without
 * a new history entry, as typing in a filter does.
 */
export function setParams(patch) {
  const { page, arg, params } = current();
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined || v === '') params.delete(k); else params.set(k, v);
  }
  history.replaceState(null, '', href(page, arg, params));
  changed();
}

/** The window the page shows (a URL parameter shared by every page). */
export const WINDOWS = ['15m', '1h', '6h', '24h', '7d'];
export function windowOf(params) {
  const w = params.get('window');
  return WINDOWS.includes(w) ? w : '15m';
}
