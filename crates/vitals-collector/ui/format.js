// Values into the text a person reads. Each returns '–' for a missing value.

const DASH = '–';
const missing = (v) => v === null || v === undefined || Number.isNaN(v);

/** A whole count with thousands separators: 12,345. */
export function int(v) {
  return missing(v) ? DASH : Math.round(v).toLocaleString('en-US');
}

/** A rate per second, shown per second: 12.3/s. */
export function rate(v) {
  if (missing(v)) return DASH;
  if (v === 0) return '0/s';
  if (v >= 100) return `${Math.round(v).toLocaleString('en-US')}/s`;
  if (v >= 1) return `${v.toFixed(2)}/s`;
  return `${v.toFixed(3)}/s`;
}

/** A fraction as a percentage: 0.0123 → 1.23 %. */
export function pct(v) {
  return missing(v) ? DASH : `${(v * 100).toFixed(2)} %`;
}

/** Milliseconds: 0.42 ms, 12.3 ms, 1,234 ms. */
export function ms(v) {
  if (missing(v)) return DASH;
  if (v >= 100) return `${Math.round(v).toLocaleString('en-US')} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

/** An Apdex score, 0.00 to 1.00. */
export function apdex(v) {
  return missing(v) ? DASH : v.toFixed(2);
}

/** How long ago a unix-ms time was: 4 s ago, 3 min ago. */
export function ago(t, now = Date.now()) {
  if (missing(t) || !t) return DASH;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A unix-ms time as local date and time, to the millisecond. */
export function time(t) {
  if (missing(t)) return DASH;
  const d = new Date(t);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
