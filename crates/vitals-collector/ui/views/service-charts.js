// The charts of a service page: requests per minute, latency p50/p95/p99
// and error rate over the window, and one chart per custom metric (a line
// per label set).
import { html } from '../html.js';
import { get, seg } from '../api.js';
import { Chart } from '../charts.js';
import { useData, Problem, Section } from '../widgets.js';
import * as f from '../format.js';

const scaled = (points, k) => points.map((p) => ({ t: p.t, value: p.value === null ? null : p.value * k }));

/** The three RED charts of a service. */
export function ServiceCharts({ service, w, version, theme }) {
  const base = `v1/services/${seg(service)}/timeseries?window=${w}`;
  const { data, error } = useData(async () => {
    const metrics = ['rate', 'p50_ms', 'p95_ms', 'p99_ms', 'error_rate'];
    const answers = await Promise.all(metrics.map((m) => get(`${base}&metric=${m}`)));
    return Object.fromEntries(metrics.map((m, i) => [m, answers[i].points || []]));
  }, [service, w, version]);
  if (!data) return html`<${Problem} error=${error} />`;
  return html`<div class="charts">
    <${Chart} id="chart-requests" theme=${theme} title="Requests per minute" unit="req/min"
      series=${[{ label: 'requests/min', points: scaled(data.rate, 60) }]} />
    <${Chart} id="chart-latency" theme=${theme} title="Latency" unit="ms"
      series=${[
        { label: 'p50', points: data.p50_ms },
        { label: 'p95', points: data.p95_ms },
        { label: 'p99', points: data.p99_ms },
      ]} />
    <${Chart} id="chart-errors" theme=${theme} title="Error rate" unit="%"
      series=${[{ label: 'errors %', points: scaled(data.error_rate, 100) }]} />
  </div>`;
}

function labelText(labels) {
  const entries = Object.entries(labels || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '(no labels)';
}

function CustomChart({ service, name, w, version, theme }) {
  const { data, error } = useData(
    () => get(`v1/services/${seg(service)}/custom/${seg(name)}?window=${w}`),
    [service, name, w, version],
  );
  if (!data) return html`<${Problem} error=${error} />`;
  const series = (data.series || []).map((s) => ({ label: labelText(s.labels), points: s.points || [] }));
  return html`<${Chart} id=${`custom-${name}`} theme=${theme} title=${name} series=${series} />`;
}

/** The custom metrics of a service: a table of their latest values and a chart each. */
export function CustomMetrics({ service, w, version, theme }) {
  const { data, error } = useData(() => get(`v1/services/${seg(service)}/custom?window=${w}`), [service, w, version]);
  const metrics = (data && data.metrics) || [];
  const names = [...new Set(metrics.map((m) => m.name))];
  return html`<${Section} title="Custom metrics" id="custom">
    <${Problem} error=${error} />
    ${data && metrics.length === 0 ? html`<p class="muted">This service pushed no custom metric in this window.</p>` : null}
    ${metrics.length ? html`<table class="data" id="custom-table">
      <thead><tr><th>Name</th><th>Kind</th><th>Labels</th><th class="num">Value</th><th class="num">Rate</th><th class="num">Min</th><th class="num">Max</th><th class="num">Instances</th></tr></thead>
      <tbody>${metrics.map((m) => html`<tr data-metric=${m.name}>
        <td>${m.name}</td><td>${m.kind}</td><td class="labels">${labelText(m.labels)}</td>
        <td class="num">${m.value === null || m.value === undefined ? '–' : String(m.value)}</td>
        <td class="num">${m.rate_per_sec === null || m.rate_per_sec === undefined ? '–' : f.rate(m.rate_per_sec)}</td>
        <td class="num">${m.min ?? '–'}</td><td class="num">${m.max ?? '–'}</td><td class="num">${m.instances ?? '–'}</td>
      </tr>`)}</tbody>
    </table>` : null}
    <div class="charts">${names.map((n) => html`<${CustomChart} key=${n} service=${service} name=${n} w=${w} version=${version} theme=${theme} />`)}</div>
  <//>`;
}
