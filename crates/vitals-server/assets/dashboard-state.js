// Vitals dashboard: what the page knows. Its settings, read once from the
// URL and from the page itself (the filters it forwards, the poll interval,
// the endpoints the server has), and `state`, the one object every other
// module reads and updates: the last snapshot, the chart points, the sort,
// the live stream and the timers.

/** The page's query string: filters, `interval_ms`, `live`, `theme`. */
export const params = new URLSearchParams(location.search);
// The filters /debug/metrics has; the page forwards these and no others.
const FILTER_KEYS = ['route', 'server', 'client'];
const DEFAULT_INTERVAL_MS = 1500;
const LIVE_IDLE_REFRESH_MS = 5000; // live: the JSON at least this often
const DEFAULT_WINDOW_MS = 15 * 60 * 1000;

/** The filters as a query string for `metrics` (`?route=…`), or ''. */
export const filterQuery = (() => {
  const q = new URLSearchParams();
  for (const k of FILTER_KEYS) for (const v of params.getAll(k)) q.append(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
})();
/** The one route shown, or null for the whole server. */
export const routeFilter = params.get('route');
/** The one server shown (`?server=`), or null for all of them. */
export const serverFilter = params.get('server');

/** How often the page polls, from `?interval_ms=` (clamped) or the default. */
export const intervalMs = (() => {
  const n = Number(params.get('interval_ms'));
  if (!params.has('interval_ms') || !Number.isFinite(n)) return DEFAULT_INTERVAL_MS;
  return Math.min(600000, Math.max(200, Math.round(n)));
})();

/** The sibling endpoints the server says it has (`history`, `events`). */
export const endpoints = (() => {
  const meta = document.querySelector('meta[name="vitals-endpoints"]');
  const words = meta ? meta.content.split(/\s+/) : [];
  // Opened from a file, or from a server too old to say: metrics only.
  return new Set(words.filter((w) => /^[a-z]+$/.test(w)).concat(['metrics']));
})();

/** Everything that changes while the page runs. */
export const state = {
  data: null, // last snapshot, with live increments applied
  updatedAt: 0,
  points: [],
  windowMs: DEFAULT_WINDOW_MS,
  sort: { key: 'requests', dir: 'desc' },
  liveWanted: false,
  liveUnavailable: '',
  es: null,
  esOpen: false,
  timer: 0,
  inflight: null,
  lastRefresh: 0,
  refreshTimer: 0,
  unreachableSince: 0,
  renderPending: false,
  lastRender: -Infinity,
  pendingEvents: [],
};

/** The time to the next poll: the interval, or the idle refresh when live. */
export const retryMs = () => (state.liveWanted && state.esOpen ? LIVE_IDLE_REFRESH_MS : intervalMs);
