// Vitals dashboard: the history charts. Each redraw builds one SVG per
// chart from `state.points` (request rate, error rate, latency, active
// connections) over the window the server keeps, with its legend and axes.
import { state } from './dashboard-state.js';
import { isNum, num } from './dashboard-format.js';

const svgNs = 'http://www.w3.org/2000/svg';

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

/** Redraws every chart from `state.points`. */
export function drawCharts() {
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

/** Says under the charts why they start empty (no history to seed them). */
export function noteHistory(text) {
  const el = document.querySelector('#history-note');
  el.textContent = text;
  el.hidden = false;
}
