// The services overview: one row per service of the tenant with its health
// light (the reasons on hover), request rate, error %, p95, Apdex, last
// seen and a sparkline of requests per minute; sortable and filterable.
import { html } from '../html.js';
import { get, ApiError } from '../api.js';
import { windowOf } from '../router.js';
import { DataTable } from '../table.js';
import { useData, WindowPicker, Light, ServiceLink, Sparkline, Problem } from '../widgets.js';
import * as f from '../format.js';

/** Whether this collector answers `sparkline=1` (one from before it refuses the parameter). */
let sparklines = true;

/** The overview's data, with sparklines when the collector has them. */
async function load(w) {
  if (sparklines) {
    try {
      return await get(`v1/services?window=${w}&sparkline=1`);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 400) throw e;
      sparklines = false;
    }
  }
  return get(`v1/services?window=${w}`);
}

export default function Services({ place, version, now }) {
  const w = windowOf(place.params);
  const { data, error } = useData(() => load(w), [w, version]);
  const services = (data && data.services) || [];
  const columns = [
    { key: 'health', title: 'Health', value: (s) => ({ down: 0, degraded: 1, healthy: 2 }[s.health] ?? 3), text: (s) => s.health, cell: (s) => html`<${Light} health=${s.health} reasons=${s.health_reasons} /> ${s.health}` },
    { key: 'service', title: 'Service', value: (s) => s.service, text: (s) => s.service, cell: (s) => html`<${ServiceLink} name=${s.service} window=${w} />` },
    { key: 'rate_per_sec', title: 'Rate', num: true, value: (s) => s.rate_per_sec, text: (s) => f.rate(s.rate_per_sec) },
    { key: 'requests', title: 'Requests', num: true, value: (s) => s.requests, text: (s) => f.int(s.requests) },
    { key: 'error_rate', title: 'Error %', num: true, value: (s) => s.error_rate, text: (s) => f.pct(s.error_rate) },
    { key: 'p95_ms', title: 'p95', num: true, value: (s) => s.p95_ms, text: (s) => f.ms(s.p95_ms) },
    { key: 'apdex', title: 'Apdex', num: true, value: (s) => s.apdex, text: (s) => f.apdex(s.apdex) },
    { key: 'last_seen_ms', title: 'Last seen', num: true, value: (s) => s.last_seen_ms, text: (s) => f.ago(s.last_seen_ms, now) },
    { key: 'sparkline', title: 'Requests/min', value: (s) => (s.sparkline ? s.sparkline.reduce((a, p) => a + (Number(p.value) || 0), 0) : null), text: () => '', cell: (s) => html`<${Sparkline} points=${s.sparkline} />` },
  ];
  return html`<div class="page services">
    <div class="page-head">
      <h1>Services</h1>
      <${WindowPicker} value=${w} />
    </div>
    <${Problem} error=${error} />
    ${data ? html`<${DataTable} id="services" columns=${columns} rows=${services} params=${place.params}
        rowAttrs=${(s) => ({ 'data-service': s.service, 'data-health': s.health })}
        empty="No service has pushed data to this tenant in this window." />`
      : (error ? null : html`<p class="muted">Loading…</p>`)}
  </div>`;
}
