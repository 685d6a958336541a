// The call map: every service of the tenant as a node (one with no calls
// too), and each caller → callee edge of the window as an arrow whose width
// grows with its rate, labelled with its rate, error % and p95. Nodes sit
// on a circle in name order: the same services always draw the same map,
// which a screen on the wall wants more than a force layout's motion. The
// edges are listed in a table below as well.
import { html } from '../html.js';
import { get } from '../api.js';
import { href, windowOf } from '../router.js';
import { useData, WindowPicker, Problem, ServiceLink } from '../widgets.js';
import * as f from '../format.js';

const W = 900;
const H = 560;
const R = 22;
/** An edge at or above this error rate is drawn red. */
const FAILING = 0.05;

/** Node positions: on a circle, in name order. */
export function layout(names) {
  const n = names.length;
  const cx = W / 2;
  const cy = H / 2;
  const radius = n <= 1 ? 0 : Math.min(W, H) / 2 - 80;
  return new Map(names.map((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, n);
    return [name, { x: cx + radius * Math.cos(a), y: cy + radius * Math.sin(a) }];
  }));
}

function Edge({ e, from, to, width, bent }) {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const len = Math.hypot(dx, dy) || 1;
  const ux = dx / len;
  const uy = dy / len;
  // Two services calling each other: each arrow moves aside.
  const off = bent ? 7 : 0;
  const ox = -uy * off;
  const oy = ux * off;
  const x1 = from.x + ux * R + ox;
  const y1 = from.y + uy * R + oy;
  const x2 = to.x - ux * (R + 6) + ox;
  const y2 = to.y - uy * (R + 6) + oy;
  const label = `${f.rate(e.rate_per_sec)} · ${f.pct(e.error_rate)} err · p95 ${f.ms(e.p95_ms)}`;
  return html`<g class=${`edge${e.error_rate >= FAILING ? ' failing' : ''}`} data-caller=${e.caller} data-callee=${e.callee} data-width=${width.toFixed(2)}>
    <title>${`${e.caller} → ${e.callee}: ${label}`}</title>
    <line x1=${x1} y1=${y1} x2=${x2} y2=${y2} stroke-width=${width} marker-end="url(#arrow)"></line>
    <text x=${(x1 + x2) / 2 + ox * 2} y=${(y1 + y2) / 2 + oy * 2 - 4} text-anchor="middle">${label}</text>
  </g>`;
}

export default function CallMap({ place, version }) {
  const w = windowOf(place.params);
  const { data, error } = useData(async () => {
    const [services, connections] = await Promise.all([
      get(`v1/services?window=${w}`), get(`v1/connections?window=${w}`),
    ]);
    return { services: services.services || [], edges: connections.edges || [] };
  }, [w, version]);
  if (!data) {
    return html`<div class="page callmap"><div class="page-head"><h1>Call map</h1><${WindowPicker} value=${w} /></div>
      ${error ? html`<${Problem} error=${error} />` : html`<p class="muted">Loading…</p>`}</div>`;
  }
  const pushed = new Set(data.services.map((s) => s.service));
  const names = [...new Set([...pushed, ...data.edges.flatMap((e) => [e.caller, e.callee])])].sort();
  const at = layout(names);
  const maxRate = Math.max(1e-9, ...data.edges.map((e) => e.rate_per_sec || 0));
  const pairs = new Set(data.edges.map((e) => `${e.caller}\u0000${e.callee}`));
  const health = new Map(data.services.map((s) => [s.service, s.health]));
  return html`<div class="page callmap">
    <div class="page-head"><h1>Call map</h1><${WindowPicker} value=${w} /></div>
    <${Problem} error=${error} />
    <svg id="callmap" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="Call map: services and who calls whom"
        data-nodes=${names.length} data-edges=${data.edges.length}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="12" markerHeight="12" orient="auto">
        <path d="M 0 0 L 10 5 L 0 10 z"></path></marker></defs>
      ${data.edges.filter((e) => e.caller !== e.callee).map((e) => html`<${Edge} e=${e} from=${at.get(e.caller)} to=${at.get(e.callee)}
          width=${1.5 + 7 * Math.sqrt((e.rate_per_sec || 0) / maxRate)} bent=${pairs.has(`${e.callee}\u0000${e.caller}`)} />`)}
      ${names.map((n) => {
        const p = at.get(n);
        const kind = pushed.has(n) ? (health.get(n) || 'unknown') : 'external';
        return html`<a href=${pushed.has(n) ? href('service', n, { window: w }) : null} class=${`node ${kind}`} data-node=${n}>
          <title>${pushed.has(n) ? `${n} (${kind})` : `${n}: calls in, pushes no metrics of its own`}</title>
          <circle cx=${p.x} cy=${p.y} r=${R}></circle>
          <text x=${p.x} y=${p.y + R + 16} text-anchor="middle">${n}</text>
        </a>`;
      })}
    </svg>
    ${names.length === 0 ? html`<p class="muted">No service has pushed data in this window.</p>` : null}
    <h2>Edges</h2>
    ${data.edges.length === 0 ? html`<p class="muted">No call between services in this window (a call is counted when a request carries its caller).</p>`
      : html`<table class="data" id="edges"><thead><tr><th>Caller</th><th>Callee</th><th class="num">Requests</th><th class="num">Rate</th><th class="num">Error %</th><th class="num">p95</th></tr></thead>
      <tbody>${data.edges.map((e) => html`<tr data-caller=${e.caller} data-callee=${e.callee}>
        <td>${pushed.has(e.caller) ? html`<${ServiceLink} name=${e.caller} window=${w} />` : e.caller}</td>
        <td>${pushed.has(e.callee) ? html`<${ServiceLink} name=${e.callee} window=${w} />` : e.callee}</td>
        <td class="num" data-col="requests" data-value=${e.requests}>${f.int(e.requests)}</td>
        <td class="num" data-col="rate_per_sec" data-value=${e.rate_per_sec}>${f.rate(e.rate_per_sec)}</td>
        <td class="num" data-col="error_rate" data-value=${e.error_rate}>${f.pct(e.error_rate)}</td>
        <td class="num" data-col="p95_ms" data-value=${e.p95_ms ?? ''}>${f.ms(e.p95_ms)}</td></tr>`)}</tbody></table>`}
  </div>`;
}
