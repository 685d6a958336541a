// Small pieces the pages share: loading data, the window picker, the
// health light, the sparkline, a message box.
import { html, useState, useEffect, useRef } from './html.js';
import { href, setParams, WINDOWS } from './router.js';
import { ApiError } from './api.js';

/**
 * Runs `load()` (async) whenever `deps` change; returns {data, error}.
 * The last data stays shown while a refresh is under way, and an answer
 * that arrives after a newer request started is dropped.
 */
export function useData(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loaded: false });
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    load().then(
      (data) => { if (mine === seq.current) setState({ data, error: null, loaded: true }); },
      (error) => {
        if (mine !== seq.current || error.name === 'AbortError') return;
        setState((s) => ({ data: s.data, error, loaded: true }));
      },
    );
  }, deps);
  return state;
}

/** The window picker; the window lives in the URL. */
export function WindowPicker({ value }) {
  return html`<div class="windows" role="group" aria-label="Window">
    ${WINDOWS.map((w) => html`<button type="button" data-window=${w}
      class=${w === value ? 'on' : ''} aria-pressed=${w === value ? 'true' : 'false'}
      onClick=${() => setParams({ window: w })}>${w}</button>`)}
  </div>`;
}

/** A health light: its colour says the health, its title the reasons. */
export function Light({ health, reasons }) {
  const h = ['healthy', 'degraded', 'down'].includes(health) ? health : 'unknown';
  const why = reasons && reasons.length ? reasons.join('\n') : (h === 'healthy' ? 'healthy' : h);
  return html`<span class=${`light ${h}`} data-health=${h} title=${why} role="img" aria-label=${`${h}: ${why}`}></span>`;
}

/** A link to a service's page, keeping the window. */
export function ServiceLink({ name, window: w }) {
  return html`<a class="service-link" href=${href('service', name, { window: w })} data-service=${name}>${name}</a>`;
}

/** A sparkline of [{t, value}] as an SVG polyline; '–' without points. */
export function Sparkline({ points }) {
  if (!Array.isArray(points)) {
    return html`<span class="muted" title="this collector sends no sparkline">–</span>`;
  }
  const values = points.map((p) => Number(p.value) || 0);
  const max = Math.max(1e-9, ...values);
  const n = Math.max(1, values.length - 1);
  const coords = values.map((v, i) => `${((i / n) * 100).toFixed(2)},${(22 - (v / max) * 20).toFixed(2)}`).join(' ');
  return html`<svg class="spark" viewBox="0 0 100 24" preserveAspectRatio="none" data-points=${values.length}
      role="img" aria-label=${`requests per minute, ${values.length} points, at most ${max.toFixed(1)}`}>
    <polyline points=${coords} fill="none" vector-effect="non-scaling-stroke"></polyline>
  </svg>`;
}

/** An error box for a failed call (an auth failure is handled by the frame). */
export function Problem({ error }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.message} (${error.reason})` : String(error.message || error);
  return html`<p class="problem" role="alert">${text}</p>`;
}

/** A section with a heading. */
export function Section({ title, id, children }) {
  return html`<section id=${id}><h2>${title}</h2>${children}</section>`;
}
