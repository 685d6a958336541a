// A request journey: every sampled request that carries one trace id,
// across the tenant's services, on one timeline (oldest first). The trace
// id comes from a link in a service's recent requests or is typed in.
import { html, useRef } from '../html.js';
import { get } from '../api.js';
import { go, href } from '../router.js';
import { useData, Problem } from '../widgets.js';
import * as f from '../format.js';

const TRACE = /^[0-9a-f]{32}$/;

function TraceForm({ value }) {
  const input = useRef(null);
  const submit = (e) => {
    e.preventDefault();
    go('journey', input.current.value.trim().toLowerCase());
  };
  return html`<form id="trace-form" class="inline" onSubmit=${submit}>
    <label for="trace">Trace id</label>
    <input id="trace" ref=${input} value=${value || ''} placeholder="32 hexadecimal digits" spellcheck="false" size="36" />
    <button type="submit">Show journey</button>
  </form>`;
}

function Timeline({ requests }) {
  const rows = [...requests].sort((a, b) => a.timestamp_ms - b.timestamp_ms);
  const start = Math.min(...rows.map((r) => r.timestamp_ms));
  const end = Math.max(...rows.map((r) => r.timestamp_ms + (r.duration_ms || 0)));
  const span = Math.max(1, end - start);
  return html`<div class="timeline" id="timeline" data-requests=${rows.length}>
    <p class="muted">${rows.length} request${rows.length === 1 ? '' : 's'} over ${f.ms(end - start)}, from ${f.time(start)}.</p>
    <ol>${rows.map((r) => {
      const left = ((r.timestamp_ms - start) / span) * 100;
      const width = Math.max(0.5, ((r.duration_ms || 0) / span) * 100);
      return html`<li class=${`step${r.status >= 500 ? ' error' : ''}`} data-service=${r.service} data-timestamp=${r.timestamp_ms}>
        <div class="step-text">
          <a href=${href('service', r.service)} class="service-link">${r.service}</a>
          <span class="method">${r.method}</span> <span class="route">${r.route}</span>
          <span class="path muted">${r.path}</span>
          <span class="num">${r.status}</span> <span class="num">${f.ms(r.duration_ms)}</span>
          <span class="muted">+${f.ms(r.timestamp_ms - start)}${r.caller ? ` · called by ${r.caller}` : ''}${r.instance ? ` · ${r.instance}` : ''}</span>
        </div>
        <div class="bar-track"><div class="bar" style=${{ left: `${left.toFixed(3)}%`, width: `${Math.min(width, 100 - left).toFixed(3)}%` }}></div></div>
      </li>`;
    })}</ol>
  </div>`;
}

export default function Journey({ place, version }) {
  const trace = place.arg;
  const valid = trace && TRACE.test(trace);
  const { data, error } = useData(
    () => (valid ? get(`v1/traces/${trace}`) : Promise.resolve(null)),
    [trace, version],
  );
  const requests = (data && data.requests) || [];
  return html`<div class="page journey">
    <div class="page-head"><h1>Request journey</h1></div>
    <${TraceForm} value=${trace} />
    ${trace && !valid ? html`<p class="problem" role="alert">A trace id is 32 lowercase hexadecimal digits (as in a traceparent header).</p>` : null}
    ${valid ? html`<${Problem} error=${error} />` : null}
    ${valid && data && requests.length === 0
      ? html`<p class="muted">No sampled request carries this trace id (yet). Only sampled requests are kept.</p>` : null}
    ${requests.length ? html`<${Timeline} requests=${requests} />` : null}
    ${!trace ? html`<p class="muted">Open a trace from a service's recent requests, or type its id.</p>` : null}
  </div>`;
}
