// Vitals dashboard: keeping the page in step with the server. It polls
// `metrics` (one request at a time, shared by every caller), seeds the
// charts from `history`, and in live mode follows `events`, counting each
// event at once and refreshing the JSON now and then; polling takes over
// whenever the stream is down. Polling and the live stream are one file:
// each starts and stops the other.
import { endpoints, intervalMs, metricsQuery, retryMs, routeFilter, state } from './dashboard-state.js';
import { isNum } from './dashboard-format.js';
import { applyEvent, applySnapshot, seedHistory } from './dashboard-data.js';
import { MAX_RECENT_EVENTS, addRecentEvent, clearError, render, setStatus, showError } from './dashboard-panels.js';
import { drawCharts, noteHistory } from './dashboard-charts.js';

const LIVE_REFRESH_MIN_MS = 1000; // live: the JSON at most this often
const RENDER_MIN_MS = 50; // live: redraw at most this often
const EVENT_TYPES = [
  'request_completed', 'connection_opened', 'connection_closed', 'connection_failed',
  'web_socket_opened', 'web_socket_message', 'web_socket_closed',
  'sse_opened', 'sse_event', 'sse_closed', 'lifespan', 'worker_spawned', 'worker_exited',
  'task', 'custom',
];

const $ = (sel) => document.querySelector(sel);

// ---- polling -------------------------------------------------------------

/** GETs `url` as JSON: {status, body}; throws on a network failure. */
async function getJson(url) {
  const ctl = new AbortController();
  const timeout = setTimeout(() => ctl.abort(), Math.max(3000, intervalMs));
  try {
    const r = await fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    return { status: r.status, ok: r.ok, body };
  } finally {
    clearTimeout(timeout);
  }
}

/** One refresh of the JSON; concurrent callers share it. */
export function refresh() {
  if (state.inflight) return state.inflight;
  state.lastRefresh = Date.now();
  state.inflight = (async () => {
    let res;
    try {
      res = await getJson('metrics' + metricsQuery());
    } catch (e) {
      const why = e && e.name === 'AbortError' ? 'no answer in time' : 'the connection failed';
      showError('Server unreachable.', `Could not load /debug/metrics: ${why}.`);
      return false;
    }
    if (!res.ok || !res.body || typeof res.body !== 'object') {
      const msg = res.body && typeof res.body.error === 'string' ? res.body.error : 'no JSON error message';
      showError(`The server answered ${res.status}.`, msg);
      return false;
    }
    const restarted = state.data && isNum(res.body.uptime_seconds)
      && res.body.uptime_seconds + 1 < state.data.uptime_seconds;
    const wasFailing = !!state.unreachableSince;
    clearError();
    if (state.onSnapshot) state.onSnapshot(res.body);
    applySnapshot(res.body, restarted);
    render();
    drawCharts();
    if ((wasFailing || restarted) && state.liveWanted && !state.esOpen) openEvents();
    return true;
  })().finally(() => { state.inflight = null; });
  return state.inflight;
}

/** The next poll in `ms`, replacing any planned one. */
export function schedule(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(tick, ms);
}
async function tick() {
  await refresh();
  if (state.liveWanted && !state.es && !state.liveUnavailable && !state.unreachableSince) openEvents();
  schedule(retryMs());
}
/** Live mode: a refresh soon, at most one per LIVE_REFRESH_MIN_MS. */
function requestRefresh() {
  if (state.refreshTimer) return;
  const wait = Math.max(0, state.lastRefresh + LIVE_REFRESH_MIN_MS - Date.now());
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    refresh();
  }, wait);
}

/** Seeds the charts from `history`, or says why there is none. */
export async function loadHistory() {
  if (!endpoints.has('history')) {
    noteHistory('This server keeps no history: the charts start now.');
    return;
  }
  if (routeFilter !== null) {
    noteHistory('History covers the whole server, so it is not shown for one route: the charts start now.');
    return;
  }
  let res;
  try {
    res = await getJson('history');
  } catch (_) {
    return; // the metrics poll shows the banner
  }
  if (res.status === 404) {
    noteHistory('This server has no /debug/history: the charts start now.');
    return;
  }
  const b = res.body;
  if (!res.ok || !b || !Array.isArray(b.points)) return;
  seedHistory(b);
  drawCharts();
}

// ---- live ----------------------------------------------------------------

/** One event from the stream: counted at once, drawn and listed soon. */
function onEvent(ev) {
  let e;
  try { e = JSON.parse(ev.data); } catch (_) { return; }
  if (!e || typeof e !== 'object') return;
  const own = state.data ? applyEvent(state.data, ev.type, e) : false;
  // The page's own polls are counted, not listed: they would crowd out the rest.
  if (!own) {
    state.pendingEvents.push([ev.type, e]);
    if (state.pendingEvents.length > MAX_RECENT_EVENTS) state.pendingEvents.shift();
    requestRefresh();
  }
  scheduleRender();
}

/**
 * Live updates are drawn at once, but at most every RENDER_MIN_MS: the
 * events of a busy second are drawn together, so a busy server cannot
 * swamp the page, and a lone request still shows without waiting.
 */
function scheduleRender() {
  if (state.renderPending) return;
  const draw = () => {
    state.renderPending = false;
    state.lastRender = performance.now();
    render();
    for (const [type, e] of state.pendingEvents) addRecentEvent(type, e);
    state.pendingEvents = [];
  };
  const wait = state.lastRender + RENDER_MIN_MS - performance.now();
  if (wait <= 0) {
    draw();
    return;
  }
  state.renderPending = true;
  setTimeout(draw, wait);
}

/** Opens the live stream, or says why live is unavailable. */
export function openEvents() {
  closeEvents();
  if (!endpoints.has('events')) {
    state.liveUnavailable = 'this server has no /debug/events';
    setStatus();
    return;
  }
  state.liveUnavailable = '';
  let opened = false;
  const es = new EventSource('events');
  state.es = es;
  es.onopen = () => {
    opened = true;
    state.esOpen = true;
    setStatus();
    refresh();
  };
  es.onerror = () => {
    if (state.es !== es) return;
    closeEvents();
    setStatus();
    if (!opened) probeEvents();
    // Polling takes over until a refresh succeeds, then live again.
    schedule(intervalMs);
  };
  for (const t of EVENT_TYPES) es.addEventListener(t, onEvent);
  es.onmessage = onEvent;
  setStatus();
}
function closeEvents() {
  if (state.es) state.es.close();
  state.es = null;
  state.esOpen = false;
}
/** Why did the stream never open? A 404 means this server has none. */
async function probeEvents() {
  const ctl = new AbortController();
  try {
    const r = await fetch('events', { signal: ctl.signal, cache: 'no-store' });
    if (r.status === 404) state.liveUnavailable = 'this server has no /debug/events';
    else if (r.status === 503) state.liveUnavailable = 'too many live clients; retrying';
    else if (!r.ok) state.liveUnavailable = `/debug/events answered ${r.status}`;
    if (r.status === 503) setTimeout(() => { state.liveUnavailable = ''; }, 10 * intervalMs);
  } catch (_) {
    // Unreachable: the metrics poll shows the banner and retries.
  } finally {
    ctl.abort();
  }
  setStatus();
}

/** The Live switch: follows `events` or polls, and keeps it in the URL. */
export function setLive(on) {
  state.liveWanted = on;
  $('#live-toggle').checked = on;
  const url = new URL(location.href);
  if (on) url.searchParams.set('live', '1');
  else url.searchParams.delete('live');
  history.replaceState(null, '', url.pathname + url.search);
  if (on) openEvents();
  else closeEvents();
  $('#events-empty').hidden = on || $('#recent-events').childElementCount > 0;
  setStatus();
  schedule(retryMs());
}
