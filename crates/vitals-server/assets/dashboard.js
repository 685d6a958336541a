// Vitals dashboard: polls `metrics` (or follows `events` live), draws the
// panels, the route table and the history charts. Every value from the
// server goes into the page through textContent or an attribute, never as
// markup: route names are user input. URLs are relative to the page, so it
// works under any path prefix.
(() => {
  'use strict';

  const params = new URLSearchParams(location.search);
  // The filters /debug/metrics has; the page forwards these and no others.
  const FILTER_KEYS = ['route'];
  const DEFAULT_INTERVAL_MS = 1500;
  const LIVE_REFRESH_MIN_MS = 1000; // live: the JSON at most this often
  const LIVE_IDLE_REFRESH_MS = 5000; // live: and at least this often
  const RENDER_MIN_MS = 50; // live: redraw at most this often
  const DEFAULT_WINDOW_MS = 15 * 60 * 1000;
  const MAX_POINTS = 2000;
  const MAX_RECENT_EVENTS = 50;
  const EVENT_TYPES = [
    'request_completed', 'connection_opened', 'connection_closed', 'connection_failed',
    'web_socket_opened', 'web_socket_message', 'web_socket_closed',
    'sse_opened', 'sse_event', 'sse_closed', 'lifespan', 'worker_spawned', 'worker_exited',
    'task', 'custom',
  ];
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
  const OWN_ROUTE = /(^|\/)(debug\/(metrics|history|events|dashboard\.(js|css)|favicon\.svg)?|metrics)$/;

  const $ = (sel) => document.querySelector(sel);
  const svgNs = 'http://www.w3.org/2000/svg';

  const filterQuery = (() => {
    const q = new URLSearchParams();
    for (const k of FILTER_KEYS) for (const v of params.getAll(k)) q.append(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  })();
  const routeFilter = params.get('route');

  const intervalMs = (() => {
    const n = Number(params.get('interval_ms'));
    if (!params.has('interval_ms') || !Number.isFinite(n)) return DEFAULT_INTERVAL_MS;
    return Math.min(600000, Math.max(200, Math.round(n)));
  })();

  const endpoints = (() => {
    const meta = document.querySelector('meta[name="vitals-endpoints"]');
    const words = meta ? meta.content.split(/\s+/) : [];
    // Opened from a file, or from a server too old to say: metrics only.
    return new Set(words.filter((w) => /^[a-z]+$/.test(w)).concat(['metrics']));
  })();

  const state = {
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

  // ---- formatting ----------------------------------------------------------

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  function num(v) {
    if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
    const x = Number(v);
    const abs = Math.abs(x);
    const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
    return new Intl.NumberFormat('en-US', {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(x);
  }
  function bytes(v) {
    if (!Number.isFinite(Number(v))) return ['–', ''];
    let x = Number(v);
    const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
    let i = 0;
    while (Math.abs(x) >= 1000 && i < units.length - 1) { x /= 1000; i += 1; }
    return [i === 0 ? intFmt.format(x) : num(x), units[i]];
  }
  function duration(v) {
    if (!Number.isFinite(Number(v))) return '–';
    let s = Math.floor(Number(v));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const pad = (n) => String(n).padStart(2, '0');
    if (d > 0) return `${d}d ${pad(h)}h ${pad(m)}m ${pad(s)}s`;
    if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
    if (m > 0) return `${m}m ${pad(s)}s`;
    return `${s}s`;
  }
  /** [text, unit] for a value in a given format. */
  function format(kind, v) {
    if (v === null || v === undefined) return ['–', ''];
    switch (kind) {
      case 'int': return Number.isFinite(Number(v)) ? [intFmt.format(Number(v)), ''] : ['–', ''];
      case 'rate': return [num(v), '/s'];
      case 'ms': return [num(v), 'ms'];
      case 'kbps': return [num(v), 'kbit/s'];
      case 'seconds': return [num(v), 's'];
      case 'bytes': return bytes(v);
      case 'duration': return [duration(v), ''];
      default: return [typeof v === 'object' ? JSON.stringify(v) : String(v), ''];
    }
  }
  function setValue(el, kind, v) {
    const [text, unit] = format(kind, v);
    el.replaceChildren(document.createTextNode(text));
    if (unit) {
      const u = document.createElement('span');
      u.className = 'unit';
      u.textContent = unit;
      el.append(u);
    }
    el.dataset.value = v === null || v === undefined ? '' : String(v);
    if (kind === 'bytes' && Number.isFinite(Number(v))) el.title = `${intFmt.format(Number(v))} bytes`;
  }
  function get(obj, path) {
    let o = obj;
    for (const k of path.split('.')) {
      if (o === null || typeof o !== 'object') return undefined;
      o = o[k];
    }
    return o;
  }
  function set(obj, path, v) {
    const keys = path.split('.');
    let o = obj;
    for (const k of keys.slice(0, -1)) {
      if (o[k] === null || typeof o[k] !== 'object') o[k] = {};
      o = o[k];
    }
    o[keys[keys.length - 1]] = v;
  }
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  // ---- theme ---------------------------------------------------------------

  const THEMES = ['auto', 'light', 'dark'];
  function storedTheme() {
    const p = params.get('theme');
    if (THEMES.includes(p)) return p;
    try {
      const t = localStorage.getItem('vitals-theme');
      return THEMES.includes(t) ? t : 'auto';
    } catch (_) {
      return 'auto';
    }
  }
  function applyTheme(theme) {
    if (theme === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    $('#theme-toggle').textContent = `Theme: ${theme}`;
    $('#theme-toggle').dataset.theme = theme;
  }
  function cycleTheme() {
    const now = $('#theme-toggle').dataset.theme || 'auto';
    const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
    try { localStorage.setItem('vitals-theme', next); } catch (_) { /* private mode: not kept */ }
    applyTheme(next);
  }

  // ---- banner and status ---------------------------------------------------

  function showError(title, text) {
    if (!state.unreachableSince) state.unreachableSince = Date.now();
    $('#error-title').textContent = title;
    const since = new Date(state.unreachableSince).toLocaleTimeString();
    $('#error-text').textContent = `${text} (since ${since}; retrying every ${num(retryMs() / 1000)} s)`;
    $('#error-banner').hidden = false;
    document.body.classList.add('failing');
  }
  function clearError() {
    state.unreachableSince = 0;
    $('#error-banner').hidden = true;
    document.body.classList.remove('failing');
  }
  function setStatus() {
    const el = $('#status');
    el.classList.toggle('live', state.liveWanted && state.esOpen);
    if (state.liveWanted && state.esOpen) el.textContent = 'Live';
    else if (state.liveWanted && state.liveUnavailable) el.textContent = `Polling every ${num(intervalMs / 1000)} s (live unavailable: ${state.liveUnavailable})`;
    else if (state.liveWanted) el.textContent = 'Live: connecting…';
    else el.textContent = `Polling every ${num(intervalMs / 1000)} s`;
    el.dataset.mode = state.liveWanted && state.esOpen ? 'live' : 'poll';
  }
  const retryMs = () => (state.liveWanted && state.esOpen ? LIVE_IDLE_REFRESH_MS : intervalMs);

  // ---- fetching ------------------------------------------------------------

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
  function refresh() {
    if (state.inflight) return state.inflight;
    state.lastRefresh = Date.now();
    state.inflight = (async () => {
      let res;
      try {
        res = await getJson('metrics' + filterQuery);
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
      applySnapshot(res.body, restarted);
      if ((wasFailing || restarted) && state.liveWanted && !state.esOpen) openEvents();
      return true;
    })().finally(() => { state.inflight = null; });
    return state.inflight;
  }

  function schedule(ms) {
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

  async function loadHistory() {
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
    drawCharts();
  }
  function noteHistory(text) {
    const el = $('#history-note');
    el.textContent = text;
    el.hidden = false;
  }

  // ---- applying data -------------------------------------------------------

  function routeKey(r) { return `${r.method} ${r.route}`; }

  function applySnapshot(body, restarted) {
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
    render();
    drawCharts();
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

  function onEvent(ev) {
    let e;
    try { e = JSON.parse(ev.data); } catch (_) { return; }
    if (!e || typeof e !== 'object') return;
    const d = state.data;
    let own = false;
    if (d) {
      const bump = (path, by) => { const v = get(d, path); if (isNum(v)) set(d, path, Math.max(0, v + by)); };
      switch (ev.type) {
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
    }
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

  function openEvents() {
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

  function setLive(on) {
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

  // ---- rendering -----------------------------------------------------------

  function render() {
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

  function sortBy(key) {
    if (state.sort.key === key) state.sort.dir = state.sort.dir === 'asc' ? 'desc' : 'asc';
    else state.sort = { key, dir: key === 'method' || key === 'route' ? 'asc' : 'desc' };
    if (state.data) renderRoutes(Array.isArray(state.data.routes) ? state.data.routes : []);
  }

  function addRecentEvent(type, e) {
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

  // ---- charts --------------------------------------------------------------

  const CHARTS = {
    rate: { unit: '/s', series: [['rate', 'req/s', 's1']] },
    errors: { unit: '/s', series: [['errors', 'errors/s', 's3']] },
    latency: { unit: 'ms', series: [['p50', 'p50', 's1'], ['p95', 'p95', 's2'], ['p99', 'p99', 's3']] },
    connections: { unit: '', series: [['conns', 'active', 's1']] },
  };
  const W = 600;
  const H = 100;

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawCharts() {
    const pts = state.points;
    const now = Date.now();
    const t1 = pts.length ? Math.max(now, pts[pts.length - 1].t) : now;
    const t0 = pts.length ? Math.max(pts[0].t, t1 - state.windowMs) : t1 - state.windowMs;
    const span = Math.max(1, t1 - t0);
    for (const [name, spec] of Object.entries(CHARTS)) {
      const fig = document.querySelector(`.chart[data-chart="${name}"]`);
      const plot = fig.querySelector('.plot');
      let max = 0;
      for (const p of pts) for (const [k] of spec.series) if (isNum(p[k])) max = Math.max(max, p[k]);
      const top = niceMax(max * 1.05); // headroom: a flat line stays off the border
      const svg = document.createElementNS(svgNs, 'svg');
      svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
      svg.setAttribute('preserveAspectRatio', 'none');
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', `${fig.querySelector('figcaption').firstChild.textContent.trim()} over time`);
      for (const y of [0, H / 2, H]) {
        const line = document.createElementNS(svgNs, 'line');
        line.setAttribute('class', 'grid-line');
        line.setAttribute('x1', '0'); line.setAttribute('x2', String(W));
        line.setAttribute('y1', String(y)); line.setAttribute('y2', String(y));
        svg.append(line);
      }
      const legend = fig.querySelector('.legend');
      const legendFrag = document.createDocumentFragment();
      for (const [k, label, cls] of spec.series) {
        let d = '';
        let pen = false;
        let last = null;
        for (const p of pts) {
          if (!isNum(p[k])) { pen = false; continue; }
          const x = ((p.t - t0) / span) * W;
          const y = H - (p[k] / top) * H;
          d += `${pen ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)} `;
          pen = true;
          last = p[k];
        }
        // One point alone still shows, as a short flat line.
        if (pts.length === 1 && d) d += `l4 0`;
        const path = document.createElementNS(svgNs, 'path');
        path.setAttribute('class', `series ${cls}`);
        path.setAttribute('d', d.trim() || 'M0 0');
        if (!d) path.setAttribute('visibility', 'hidden');
        path.dataset.series = k;
        path.dataset.points = String(pts.filter((p) => isNum(p[k])).length);
        svg.append(path);
        const item = document.createElement('span');
        const sw = document.createElement('span');
        sw.className = `swatch ${cls}`;
        item.append(sw, document.createTextNode(`${label} ${last === null ? '–' : num(last)}${spec.unit && last !== null ? ' ' + spec.unit : ''}`));
        legendFrag.append(item);
      }
      legend.replaceChildren(legendFrag);
      const axis = (cls, text) => {
        const s = document.createElement('span');
        s.className = `axis ${cls}`;
        s.textContent = text;
        return s;
      };
      const spanMin = Math.round(span / 60000);
      plot.replaceChildren(
        svg,
        axis('ymax', `${num(top)}${spec.unit ? ' ' + spec.unit : ''}`),
        axis('xmin', spanMin >= 1 ? `−${spanMin} min` : `−${Math.round(span / 1000)} s`),
        axis('xmax', 'now'),
      );
      if (!pts.length) {
        const e = document.createElement('div');
        e.className = 'empty';
        e.textContent = 'Waiting for data…';
        plot.append(e);
      }
    }
  }

  // ---- start ---------------------------------------------------------------

  function start() {
    applyTheme(storedTheme());
    $('#theme-toggle').addEventListener('click', cycleTheme);
    $('#server-name').textContent = location.host;
    if (filterQuery) {
      const f = $('#filters');
      f.textContent = [...new URLSearchParams(filterQuery.slice(1))].map(([k, v]) => `${k}: ${v}`).join(' · ');
      f.hidden = false;
    }
    $('#json-link').href = 'metrics' + filterQuery;
    document.title = routeFilter !== null ? `Vitals: ${routeFilter}` : `Vitals: ${location.host}`;
    for (const th of document.querySelectorAll('#routes th[data-sort]')) {
      th.querySelector('button').addEventListener('click', () => sortBy(th.dataset.sort));
    }
    $('#live-toggle').addEventListener('change', (e) => setLive(e.target.checked));
    drawCharts();
    const live = params.get('live');
    state.liveWanted = live === '1' || live === 'true';
    $('#live-toggle').checked = state.liveWanted;
    setStatus();
    refresh().then(() => {
      loadHistory();
      if (state.liveWanted) openEvents();
      schedule(retryMs());
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
