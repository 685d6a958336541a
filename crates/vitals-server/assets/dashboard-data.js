// Vitals dashboard: how the figures change. A new snapshot from
// `metrics` replaces the old one (counters never go back while the server
// runs), each live event counts itself into the snapshot until the next one
// arrives, and the chart points grow, seeded from `history`. No drawing
// here: the callers redraw.
import { routeFilter, serverFilter, state } from './dashboard-state.js';
import { get, isNum, set } from './dashboard-format.js';

const MAX_POINTS = 2000;
// Counters only grow while the server runs: in live mode an event may be
// counted locally before a JSON snapshot taken earlier arrives.
const MONOTONE = [
  'connections.total', 'connections.failed', 'connections.peer_closed', 'streams.total',
  'requests.total', 'requests.errors', 'bytes.sent_total', 'bytes.recv_total',
  'websocket.connections_total', 'websocket.messages_received', 'websocket.messages_sent',
  'websocket.bytes_received', 'websocket.bytes_sent', 'sse.connections_total',
  'sse.events_sent', 'sse.bytes_sent', 'workers.spawns_total', 'tasks.enqueued',
  'tasks.started', 'tasks.completed', 'tasks.failed', 'tasks.retried',
];
// The page's own requests: counted, but they do not ask for a refresh
// (or every refresh would ask for the next one).
const OWN_ROUTE = /(^|\/)(debug\/(metrics|history|events|\{file\}|dashboard(-[a-z]+)?\.(js|css)|favicon\.svg)?|metrics)$/;

/** What identifies a row of the route table. */
export function routeKey(r) { return `${r.method} ${r.route}`; }

/**
 * Takes `body` (a `metrics` snapshot) as the figures and adds its chart
 * point; after a restart of the server, the old points go.
 */
export function applySnapshot(body, restarted) {
  const old = state.data;
  if (old && !restarted) {
    for (const path of MONOTONE) {
      const a = get(body, path);
      const b = get(old, path);
      if (isNum(a) && isNum(b) && b > a) set(body, path, b);
    }
    if (Array.isArray(body.routes) && Array.isArray(old.routes)) {
      const fresh = new Map(body.routes.filter((r) => r && typeof r === 'object').map((r) => [routeKey(r), r]));
      for (const r of old.routes) {
        const f = fresh.get(routeKey(r));
        if (!f) {
          if (r.local) body.routes.push(r);
          continue;
        }
        for (const k of ['requests', 'errors']) if (isNum(r[k]) && isNum(f[k]) && r[k] > f[k]) f[k] = r[k];
      }
    }
  }
  if (restarted) state.points = [];
  state.data = body;
  state.updatedAt = Date.now();
  const errorsPerSec = Array.isArray(body.routes)
    ? body.routes.reduce((s, r) => s + (r && isNum(r.error_rate_per_sec) ? r.error_rate_per_sec : 0), 0)
    : null;
  const req = body.requests || {};
  state.points.push({
    t: state.updatedAt,
    rate: req.rate_per_sec,
    errors: errorsPerSec,
    p50: req.p50_ms,
    p95: req.p95_ms,
    p99: req.p99_ms,
    conns: get(body, 'connections.active'),
  });
  trimPoints();
}

function trimPoints() {
  const oldest = Date.now() - state.windowMs;
  let cut = 0;
  while (cut < state.points.length && state.points[cut].t < oldest) cut += 1;
  if (state.points.length - cut > MAX_POINTS) cut = state.points.length - MAX_POINTS;
  if (cut > 0) state.points.splice(0, cut);
}

function routeWanted(route) {
  return routeFilter === null || route === routeFilter;
}

/**
 * Counts one live event of `type` into the snapshot `d`. True when it is
 * one of the page's own requests (counted, but not listed).
 */
export function applyEvent(d, type, e) {
  let own = false;
  const bump = (path, by) => { const v = get(d, path); if (isNum(v)) set(d, path, Math.max(0, v + by)); };
  // Events do not say which server they came from: with one server shown,
  // its requests and connections wait for the next snapshot.
  if (serverFilter !== null && (type === 'request_completed' || type.startsWith('connection_'))) {
    return type === 'request_completed' && typeof e.route === 'string' && OWN_ROUTE.test(e.route);
  }
  switch (type) {
    case 'request_completed': {
      if (typeof e.route !== 'string' || !routeWanted(e.route)) break;
      own = OWN_ROUTE.test(e.route);
      const failed = isNum(e.status) && e.status >= 500 && e.status < 600;
      bump('requests.total', 1);
      if (failed) bump('requests.errors', 1);
      if (!Array.isArray(d.routes)) d.routes = [];
      const method = typeof e.method === 'string' ? e.method : '_OTHER';
      let row = d.routes.find((r) => r && r.route === e.route && r.method === method);
      if (!row) {
        row = { method, route: e.route, requests: 0, errors: 0, rate_per_sec: null, error_rate_per_sec: null, p50_ms: null, p95_ms: null, p99_ms: null, local: true };
        d.routes.push(row);
      }
      row.requests = (isNum(row.requests) ? row.requests : 0) + 1;
      if (failed) row.errors = (isNum(row.errors) ? row.errors : 0) + 1;
      break;
    }
    case 'connection_opened': bump('connections.total', 1); bump('connections.active', 1); break;
    case 'connection_closed': bump('connections.active', -1); break;
    case 'connection_failed': bump('connections.failed', 1); break;
    case 'web_socket_opened':
      if (routeWanted(e.route)) { bump('websocket.connections_total', 1); bump('websocket.active', 1); }
      break;
    case 'web_socket_closed': if (routeWanted(e.route)) bump('websocket.active', -1); break;
    case 'web_socket_message': {
      if (!routeWanted(e.route)) break;
      const dir = e.direction === 'sent' ? 'sent' : e.direction === 'received' ? 'received' : null;
      if (!dir) break;
      bump(`websocket.messages_${dir}`, 1);
      if (isNum(e.bytes)) bump(`websocket.bytes_${dir}`, e.bytes);
      break;
    }
    case 'sse_opened': if (routeWanted(e.route)) { bump('sse.connections_total', 1); bump('sse.active', 1); } break;
    case 'sse_closed': if (routeWanted(e.route)) bump('sse.active', -1); break;
    case 'sse_event': if (routeWanted(e.route)) bump('sse.events_sent', 1); break;
    case 'worker_spawned': bump('workers.active', 1); bump('workers.spawns_total', 1); break;
    case 'worker_exited': bump('workers.active', -1); break;
    case 'task': {
      const st = String(e.state ?? '');
      if (!['enqueued', 'started', 'completed', 'failed', 'retried'].includes(st)) break;
      const queue = Array.isArray(get(d, 'tasks.queues'))
        ? d.tasks.queues.find((q) => q && q.queue === e.queue) : null;
      const step = (path, by) => { bump(`tasks.${path}`, by); if (queue && isNum(queue[path])) queue[path] = Math.max(0, queue[path] + by); };
      step(st, 1);
      if (st === 'started') step('in_flight', 1);
      if (st === 'completed' || st === 'failed' || st === 'retried') step('in_flight', -1);
      break;
    }
    default: break;
  }
  return own;
}

/** Puts the points of a `history` answer before those polled meanwhile. */
export function seedHistory(b) {
  if (isNum(b.interval_ms) && isNum(b.capacity) && b.interval_ms > 0 && b.capacity > 0) {
    state.windowMs = Math.min(24 * 3600 * 1000, b.interval_ms * b.capacity);
  }
  const seeded = [];
  for (const p of b.points.slice(-MAX_POINTS)) {
    if (!p || !isNum(p.t_ms)) continue;
    seeded.push({
      t: p.t_ms,
      rate: p.rate_per_sec,
      errors: p.errors_per_sec,
      p50: p.p50_ms,
      p95: p.p95_ms,
      p99: p.p99_ms,
      conns: p.connections_active,
    });
  }
  // Points polled meanwhile are newer than the history: keep them after it.
  const first = state.points.length ? state.points[0].t : Infinity;
  state.points = seeded.filter((p) => p.t < first).concat(state.points);
}
