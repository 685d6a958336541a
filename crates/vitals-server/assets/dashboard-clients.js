// Vitals dashboard: the process's other sides. The server switch (a
// process may run several servers: the page shows all of them summed, or
// one, by `?server=`) and the Clients panel (the outbound HTTP calls the
// process makes, per client and host, from the snapshot's `clients`).
// Values go into the page through textContent only.
import { params } from './dashboard-state.js';
import { format, isNum, num } from './dashboard-format.js';

const $ = (sel) => document.querySelector(sel);

/** Offers the snapshot's declared servers; switching reloads the page. */
export function renderServers(servers, current) {
  const select = $('#server-select');
  const list = Array.isArray(servers) ? servers.filter((s) => s && isNum(s.index)) : [];
  $('#server-switch').hidden = list.length < 2;
  if (list.length < 2) return;
  const want = ['all'].concat(list.map((s) => String(s.index)));
  const have = [...select.options].map((o) => o.value);
  if (want.join(',') !== have.join(',')) {
    const all = document.createElement('option');
    all.value = 'all';
    all.textContent = 'All servers';
    const options = [all];
    for (const s of list) {
      const o = document.createElement('option');
      o.value = String(s.index);
      o.textContent = typeof s.name === 'string' && s.name ? s.name : `server ${s.index}`;
      options.push(o);
    }
    select.replaceChildren(...options);
  }
  select.value = isNum(current) ? String(current) : 'all';
}

/** Reloads the page on the chosen server (or all of them). */
export function switchServer(value) {
  const q = new URLSearchParams(params);
  q.delete('server');
  if (value !== 'all') q.set('server', value);
  const s = q.toString();
  location.search = s ? '?' + s : '';
}

const CLIENT_COLS = ['requests', 'errors', 'rate_per_sec', 'p50_ms', 'p95_ms', 'p99_ms'];

/** The Clients panel: one row per (client, host), a summary per client. */
export function renderClients(clients) {
  const list = Array.isArray(clients) ? clients.filter((c) => c && typeof c === 'object') : [];
  const frag = document.createDocumentFragment();
  const summary = document.createDocumentFragment();
  for (const c of list) {
    const name = String(c.client ?? '');
    const li = document.createElement('li');
    li.dataset.client = name;
    const kinds = c.errors_by_kind && typeof c.errors_by_kind === 'object'
      ? Object.entries(c.errors_by_kind).filter(([, n]) => isNum(n) && n > 0).map(([k, n]) => `${k} ${n}`)
      : [];
    li.textContent = `${name}: ${format('int', c.active)[0]} active, `
      + `${format('int', c.connections_opened)[0]} connections opened, `
      + `${format('int', c.connections_reused)[0]} reused`
      + (kinds.length ? `; failed: ${kinds.join(', ')}` : '');
    if (kinds.length) li.className = 'bad';
    summary.append(li);
    for (const h of Array.isArray(c.hosts) ? c.hosts : []) {
      if (!h || typeof h !== 'object') continue;
      const tr = document.createElement('tr');
      tr.dataset.client = name;
      tr.dataset.host = String(h.host ?? '');
      for (const text of [name, String(h.host ?? '')]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      for (const col of CLIENT_COLS) {
        const td = document.createElement('td');
        td.className = 'num';
        td.dataset.col = col;
        const v = h[col];
        td.textContent = col === 'requests' || col === 'errors' ? format('int', v)[0] : num(v);
        if (col === 'errors' && isNum(v) && v > 0) td.classList.add('bad');
        tr.append(td);
      }
      frag.append(tr);
    }
  }
  $('#clients tbody').replaceChildren(frag);
  $('#client-summary').replaceChildren(summary);
  $('#clients-empty').hidden = list.length > 0;
}
