// Vitals dashboard: polls `metrics` (or follows `events` live), draws the
// panels, the route table and the history charts. Every value from the
// server goes into the page through textContent or an attribute, never as
// markup: route names are user input. URLs are relative to the page, so it
// works under any path prefix.
//
// This file starts the page; dashboard.html loads it as an ES module, and
// it imports the rest (each served beside it, no build step):
//   dashboard-state.js   the URL's settings and the shared `state`
//   dashboard-format.js  values into text (numbers, bytes, durations)
//   dashboard-data.js    snapshots and live events into the figures
//   dashboard-sync.js    polling `metrics`, `history`, the live stream
//   dashboard-panels.js  panels, tables, events list, status and banner
//   dashboard-charts.js  the history charts
//   dashboard-theme.js   the colour theme
//   dashboard-clients.js the server switch and the Clients panel
import { filterQuery, params, retryMs, routeFilter, state } from './dashboard-state.js';
import { startTheme } from './dashboard-theme.js';
import { setStatus, sortBy } from './dashboard-panels.js';
import { drawCharts } from './dashboard-charts.js';
import { loadHistory, openEvents, refresh, schedule, setLive } from './dashboard-sync.js';
import { switchServer } from './dashboard-clients.js';

const $ = (sel) => document.querySelector(sel);

function start() {
  startTheme();
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
  $('#server-select').addEventListener('change', (e) => switchServer(e.target.value));
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
