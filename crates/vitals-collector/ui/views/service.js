// A service's page: its figures and health, the charts (service-charts.js),
// EVERY route of the window in a table sortable and filterable on each
// column, the recent requests with links to their journeys, the services
// that call it and that it calls, and its custom metrics.
import { html } from '../html.js';
import { get, seg } from '../api.js';
import { href, windowOf } from '../router.js';
import { DataTable } from '../table.js';
import { useData, WindowPicker, Light, ServiceLink, Problem, Section } from '../widgets.js';
import { ServiceCharts, CustomMetrics } from './service-charts.js';
import * as f from '../format.js';

const num = (key, title, text) => ({ key, title, num: true, value: (r) => r[key], text: (r) => text(r[key]) });

/** The route table's columns: every one sortable and filterable. */
export function routeColumns(now) {
  return [
    { key: 'method', title: 'Method', value: (r) => r.method, text: (r) => r.method },
    { key: 'route', title: 'Route', value: (r) => r.route, text: (r) => r.route },
    num('requests', 'Requests', f.int),
    num('rate_per_sec', 'Rate', f.rate),
    num('error_rate', 'Error %', f.pct),
    num('avg_ms', 'Avg', f.ms),
    num('p50_ms', 'p50', f.ms),
    num('p95_ms', 'p95', f.ms),
    num('p99_ms', 'p99', f.ms),
    num('apdex', 'Apdex', f.apdex),
    { key: 'last_seen_ms', title: 'Last seen', num: true, value: (r) => r.last_seen_ms, text: (r) => f.ago(r.last_seen_ms, now) },
  ];
}

function Figures({ stats }) {
  const items = [
    ['requests', 'Requests', f.int(stats.requests)],
    ['rate_per_sec', 'Rate', f.rate(stats.rate_per_sec)],
    ['error_rate', 'Errors', f.pct(stats.error_rate)],
    ['p50_ms', 'p50', f.ms(stats.p50_ms)],
    ['p95_ms', 'p95', f.ms(stats.p95_ms)],
    ['p99_ms', 'p99', f.ms(stats.p99_ms)],
    ['apdex', 'Apdex', f.apdex(stats.apdex)],
  ];
  return html`<dl class="figures" id="figures">${items.map(([k, label, text]) => html`<div>
    <dt>${label}</dt><dd data-field=${k} data-value=${stats[k] === null || stats[k] === undefined ? '' : String(stats[k])}>${text}</dd>
  </div>`)}</dl>`;
}

function Routes({ service, w, version, place, now }) {
  const { data, error } = useData(() => get(`v1/services/${seg(service)}/routes?window=${w}`), [service, w, version]);
  return html`<${Section} title="Routes" id="routes-section">
    <${Problem} error=${error} />
    ${data ? html`<${DataTable} id="routes" columns=${routeColumns(now)} rows=${data.routes || []} params=${place.params}
      rowAttrs=${(r) => ({ 'data-route': r.route, 'data-method': r.method })}
      empty="No request to this service in this window." />` : null}
  <//>`;
}

function Recent({ service, version }) {
  const { data, error } = useData(() => get(`v1/services/${seg(service)}/recent?limit=50`), [service, version]);
  const rows = (data && data.requests) || [];
  return html`<${Section} title="Recent requests" id="recent-section">
    <${Problem} error=${error} />
    ${data && rows.length === 0 ? html`<p class="muted">No sampled request yet.</p>` : null}
    ${rows.length ? html`<div class="table-wrap"><table class="data" id="recent">
      <thead><tr><th>Time</th><th>Method</th><th>Path</th><th>Route</th><th class="num">Status</th><th class="num">Duration</th><th>Caller</th><th>Instance</th><th>Trace</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr data-trace=${r.trace_id || ''} class=${r.status >= 500 ? 'error' : ''}>
        <td>${f.time(r.timestamp_ms)}</td><td>${r.method}</td><td class="path">${r.path}</td><td>${r.route}</td>
        <td class="num">${r.status}</td><td class="num">${f.ms(r.duration_ms)}</td>
        <td>${r.caller || '–'}</td><td>${r.instance || '–'}</td>
        <td>${r.trace_id ? html`<a class="trace" href=${href('journey', r.trace_id)}>${r.trace_id.slice(0, 12)}…</a>` : '–'}</td>
      </tr>`)}</tbody>
    </table></div>` : null}
  <//>`;
}

function Neighbours({ service, w, version }) {
  const { data, error } = useData(() => get(`v1/connections?window=${w}`), [w, version]);
  const edges = (data && data.edges) || [];
  const list = (id, title, rows, other) => html`<div class="neighbours" id=${id}>
    <h3>${title}</h3>
    ${rows.length === 0 ? html`<p class="muted">None in this window.</p>` : html`<table class="data">
      <thead><tr><th>Service</th><th class="num">Rate</th><th class="num">Error %</th><th class="num">p95</th></tr></thead>
      <tbody>${rows.map((e) => html`<tr data-service=${e[other]}>
        <td><${ServiceLink} name=${e[other]} window=${w} /></td><td class="num">${f.rate(e.rate_per_sec)}</td>
        <td class="num">${f.pct(e.error_rate)}</td><td class="num">${f.ms(e.p95_ms)}</td></tr>`)}</tbody>
    </table>`}
  </div>`;
  return html`<${Section} title="Callers and callees" id="connections-section">
    <${Problem} error=${error} />
    <div class="two">
      ${list('callers', 'Callers (call this service)', edges.filter((e) => e.callee === service), 'caller')}
      ${list('callees', 'Callees (this service calls)', edges.filter((e) => e.caller === service), 'callee')}
    </div>
  <//>`;
}

export default function Service({ place, version, theme, now }) {
  const service = place.arg;
  const w = windowOf(place.params);
  const { data: stats, error } = useData(
    () => (service ? get(`v1/services/${seg(service)}/stats?window=${w}`) : Promise.resolve(null)),
    [service, w, version],
  );
  if (!service) return html`<p class="problem">No service named. <a href=${href('services')}>All services</a></p>`;
  return html`<div class="page service" data-service=${service}>
    <div class="page-head">
      <h1><a href=${href('services', null, { window: w })} class="up">Services</a> / <span id="service-name">${service}</span>
        ${stats ? html` <${Light} health=${stats.health} reasons=${stats.health_reasons} />` : null}</h1>
      <${WindowPicker} value=${w} />
    </div>
    <${Problem} error=${error} />
    ${stats && stats.health_reasons && stats.health_reasons.length
      ? html`<ul class="reasons">${stats.health_reasons.map((r) => html`<li>${r}</li>`)}</ul>` : null}
    ${stats ? html`<${Figures} stats=${stats} />` : null}
    <${ServiceCharts} service=${service} w=${w} version=${version} theme=${theme} />
    <${Routes} service=${service} w=${w} version=${version} place=${place} now=${now} />
    <${Recent} service=${service} version=${version} />
    <${Neighbours} service=${service} w=${w} version=${version} />
    <${CustomMetrics} service=${service} w=${w} version=${version} theme=${theme} />
  </div>`;
}
