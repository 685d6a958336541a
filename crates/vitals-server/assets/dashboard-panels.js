// Vitals dashboard: the figures on the page, drawn from `state`. The
// panels (every `data-field` element), the task queues, the custom
// metrics, the sortable route table, the recent events list, and the status
// line and error banner. The charts are in dashboard-charts.js.
import { intervalMs, params, retryMs, state } from './dashboard-state.js';
import { format, get, isNum, num, setValue } from './dashboard-format.js';
import { routeKey } from './dashboard-data.js';
import { renderClients, renderServers } from './dashboard-clients.js';

/** The recent events list keeps this many. */
export const MAX_RECENT_EVENTS = 50;

const $ = (sel) => document.querySelector(sel);

// ---- banner and status ---------------------------------------------------

/** Shows the banner: the server is unreachable or answered an error. */
export function showError(title, text) {
  if (!state.unreachableSince) state.unreachableSince = Date.now();
  $('#error-title').textContent = title;
  const since = new Date(state.unreachableSince).toLocaleTimeString();
  $('#error-text').textContent = `${text} (since ${since}; retrying every ${num(retryMs() / 1000)} s)`;
  $('#error-banner').hidden = false;
  document.body.classList.add('failing');
}
/** Hides the banner: the last poll succeeded. */
export function clearError() {
  state.unreachableSince = 0;
  $('#error-banner').hidden = true;
  document.body.classList.remove('failing');
}
/** The status line: polling, live, or why live is unavailable. */
export function setStatus() {
  const el = $('#status');
  el.classList.toggle('live', state.liveWanted && state.esOpen);
  if (state.liveWanted && state.esOpen) el.textContent = 'Live';
  else if (state.liveWanted && state.liveUnavailable) el.textContent = `Polling every ${num(intervalMs / 1000)} s (live unavailable: ${state.liveUnavailable})`;
  else if (state.liveWanted) el.textContent = 'Live: connecting…';
  else el.textContent = `Polling every ${num(intervalMs / 1000)} s`;
  el.dataset.mode = state.liveWanted && state.esOpen ? 'live' : 'poll';
}

// ---- panels and tables ---------------------------------------------------

/** Redraws everything but the charts from `state.data`. */
export function render() {
  const d = state.data;
  if (!d) return;
  for (const el of document.querySelectorAll('[data-field]')) {
    setValue(el, el.dataset.format, get(d, el.dataset.field));
  }
  const errors = get(d, 'requests.errors');
  $('[data-field="requests.errors"]').classList.toggle('bad', isNum(errors) && errors > 0);
  $('#updated').textContent = new Date(state.updatedAt).toLocaleTimeString();
  if (isNum(d.window_seconds)) $('#footer-window').textContent = `${num(d.window_seconds)} s`;
  renderQueues(get(d, 'tasks.queues'));
  renderCustom(d.custom);
  renderRoutes(Array.isArray(d.routes) ? d.routes : []);
  renderServers(d.servers, d.server);
  renderClients(d.clients);
}

/** One line per queue: its name, then what it has done. */
function renderQueues(queues) {
  const list = Array.isArray(queues) ? queues.filter((q) => q && typeof q === 'object').slice(0, 200) : [];
  const frag = document.createDocumentFragment();
  for (const q of list) {
    const li = document.createElement('li');
    li.dataset.queue = String(q.queue ?? '');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = String(q.queue ?? '');
    li.append(name);
    for (const [col, label, text] of [
      ['in_flight', 'running', format('int', q.in_flight)[0]],
      ['completed', 'done', format('int', q.completed)[0]],
      ['failed', 'failed', format('int', q.failed)[0]],
      ['p95_ms', 'p95', `${num(q.p95_ms)} ms`],
    ]) {
      const stat = document.createElement('span');
      stat.className = 'stat';
      stat.dataset.col = col;
      stat.dataset.value = isNum(q[col]) ? String(q[col]) : '';
      if (col === 'failed' && isNum(q.failed) && q.failed > 0) stat.classList.add('bad');
      const b = document.createElement('b');
      b.textContent = text;
      stat.append(b, document.createTextNode(` ${label}`));
      li.append(stat);
    }
    frag.append(li);
  }
  $('#task-queues').replaceChildren(frag);
  $('#task-queues').hidden = list.length === 0;
  $('#tasks-empty').hidden = list.length > 0;
}

/** Any object, flattened to `a.b` keys; unknown sections still show. */
function renderKeyValues(dl, obj) {
  const rows = [];
  const walk = (o, prefix, depth) => {
    if (o === null || typeof o !== 'object' || depth > 4) return;
    for (const [k, v] of Object.entries(o)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v, key, depth + 1);
      else rows.push([key, v]);
    }
  };
  walk(obj, '', 0);
  const frag = document.createDocumentFragment();
  for (const [k, v] of rows.slice(0, 200)) {
    const dt = document.createElement('dt');
    dt.textContent = k.replace(/_/g, ' ');
    const dd = document.createElement('dd');
    dd.dataset.key = k;
    const kind = !isNum(v) ? 'text' : /_ms$/.test(k) ? 'ms' : /_per_sec$/.test(k) ? 'rate' : Number.isInteger(v) ? 'int' : 'number';
    if (kind === 'number') { dd.textContent = num(v); dd.dataset.value = String(v); } else setValue(dd, kind, v);
    frag.append(dt, dd);
  }
  dl.replaceChildren(frag);
}

function renderCustom(custom) {
  const list = Array.isArray(custom) ? custom.slice(0, 200) : [];
  $('#custom-panel').hidden = list.length === 0;
  const obj = {};
  list.forEach((item, i) => {
    if (item && typeof item === 'object') {
      const name = typeof item.name === 'string' ? item.name : `#${i}`;
      const labels = item.labels && typeof item.labels === 'object'
        ? Object.entries(item.labels).map(([k, v]) => `${k}=${String(v)}`).join(',') : '';
      obj[labels ? `${name}{${labels}}` : name] = 'value' in item ? item.value : JSON.stringify(item);
    } else {
      obj[`#${i}`] = item;
    }
  });
  renderKeyValues($('#custom'), obj);
}

const ROUTE_COLS = [
  ['method', 'text'], ['route', 'route'], ['requests', 'int'], ['errors', 'int'],
  ['rate_per_sec', 'num'], ['error_rate_per_sec', 'num'], ['p50_ms', 'num'], ['p95_ms', 'num'], ['p99_ms', 'num'],
];

function compareRoutes(a, b) {
  const { key, dir } = state.sort;
  const x = a[key];
  const y = b[key];
  let c;
  if (key === 'method' || key === 'route') c = String(x ?? '').localeCompare(String(y ?? ''));
  else {
    // Missing numbers (no recent request) sort below every number.
    const nx = isNum(x) ? x : -Infinity;
    const ny = isNum(y) ? y : -Infinity;
    c = nx < ny ? -1 : nx > ny ? 1 : 0;
  }
  if (c === 0) c = routeKey(a).localeCompare(routeKey(b));
  return dir === 'asc' ? c : -c;
}

function renderRoutes(routes) {
  const rows = routes.filter((r) => r && typeof r === 'object').slice().sort(compareRoutes);
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement('tr');
    tr.dataset.method = String(r.method ?? '');
    tr.dataset.route = String(r.route ?? '');
    for (const [col, kind] of ROUTE_COLS) {
      const td = document.createElement('td');
      td.dataset.col = col;
      const v = r[col];
      if (kind === 'route') {
        td.className = 'route';
        const a = document.createElement('a');
        const q = new URLSearchParams(params);
        q.set('route', String(v ?? ''));
        a.href = '?' + q.toString();
        a.textContent = String(v ?? '');
        a.title = 'Show only this route';
        td.append(a);
      } else if (kind === 'text') {
        td.textContent = String(v ?? '');
      } else {
        td.className = 'num';
        td.textContent = kind === 'int' ? format('int', v)[0] : num(v);
        td.dataset.value = isNum(v) ? String(v) : '';
        if (col === 'errors' && isNum(v) && v > 0) td.classList.add('bad');
      }
      tr.append(td);
    }
    frag.append(tr);
  }
  $('#routes tbody').replaceChildren(frag);
  $('#routes-empty').hidden = rows.length > 0;
  for (const th of document.querySelectorAll('#routes th[data-sort]')) {
    if (th.dataset.sort === state.sort.key) th.setAttribute('aria-sort', state.sort.dir === 'asc' ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
}

/** Sorts the route table by `key`; again on the same key flips the order. */
export function sortBy(key) {
  if (state.sort.key === key) state.sort.dir = state.sort.dir === 'asc' ? 'desc' : 'asc';
  else state.sort = { key, dir: key === 'method' || key === 'route' ? 'asc' : 'desc' };
  if (state.data) renderRoutes(Array.isArray(state.data.routes) ? state.data.routes : []);
}

/** Puts one live event on top of the recent events list. */
export function addRecentEvent(type, e) {
  const li = document.createElement('li');
  const time = isNum(e.time_ms) ? new Date(e.time_ms) : new Date();
  const hhmmss = time.toLocaleTimeString('en-GB', { hour12: false });
  const ms = String(time.getMilliseconds()).padStart(3, '0');
  let text = `${hhmmss}.${ms} ${type}`;
  if (type === 'request_completed') {
    const dur = isNum(e.duration_secs) ? ` ${num(e.duration_secs * 1000)} ms` : '';
    text += ` ${String(e.method ?? '')} ${String(e.route ?? '')} ${String(e.status ?? '')}${dur}`;
    if (isNum(e.status) && e.status >= 500) li.className = 'bad';
  } else {
    const extra = Object.entries(e)
      .filter(([k]) => k !== 'id' && k !== 'time_ms' && k !== 'type')
      .slice(0, 6)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(' ');
    if (extra) text += ` ${extra}`;
  }
  li.textContent = text.length > 300 ? text.slice(0, 300) + '…' : text;
  const list = $('#recent-events');
  list.prepend(li);
  while (list.childElementCount > MAX_RECENT_EVENTS) list.lastElementChild.remove();
  $('#events-empty').hidden = true;
}
