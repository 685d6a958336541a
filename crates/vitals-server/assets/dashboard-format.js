// Vitals dashboard: values into text. Numbers, bytes, durations and rates as
// a person reads them (with the unit apart, and the raw value kept in
// `data-value`), and the small helpers for the snapshot's nested fields.
// Nothing here touches the page beyond the element it is given.

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
/** A number to two, one or no decimals by its size; – when missing. */
export function num(v) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
  const x = Number(v);
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return new Intl.NumberFormat('en-US', {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(x);
}
function bytes(v) {
  if (!Number.isFinite(Number(v))) return ['–', ''];
  let x = Number(v);
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(x) >= 1000 && i < units.length - 1) { x /= 1000; i += 1; }
  return [i === 0 ? intFmt.format(x) : num(x), units[i]];
}
function duration(v) {
  if (!Number.isFinite(Number(v))) return '–';
  let s = Math.floor(Number(v));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${pad(h)}h ${pad(m)}m ${pad(s)}s`;
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}
/** [text, unit] for a value in a given format. */
export function format(kind, v) {
  if (v === null || v === undefined) return ['–', ''];
  switch (kind) {
    case 'int': return Number.isFinite(Number(v)) ? [intFmt.format(Number(v)), ''] : ['–', ''];
    case 'rate': return [num(v), '/s'];
    case 'ms': return [num(v), 'ms'];
    case 'kbps': return [num(v), 'kbit/s'];
    case 'seconds': return [num(v), 's'];
    case 'bytes': return bytes(v);
    case 'duration': return [duration(v), ''];
    default: return [typeof v === 'object' ? JSON.stringify(v) : String(v), ''];
  }
}
/** Shows `v` in `el` as `kind`, with its unit, and keeps it in `data-value`. */
export function setValue(el, kind, v) {
  const [text, unit] = format(kind, v);
  el.replaceChildren(document.createTextNode(text));
  if (unit) {
    const u = document.createElement('span');
    u.className = 'unit';
    u.textContent = unit;
    el.append(u);
  }
  el.dataset.value = v === null || v === undefined ? '' : String(v);
  if (kind === 'bytes' && Number.isFinite(Number(v))) el.title = `${intFmt.format(Number(v))} bytes`;
}
/** `obj.a.b` for the path `a.b`; undefined where a step is missing. */
export function get(obj, path) {
  let o = obj;
  for (const k of path.split('.')) {
    if (o === null || typeof o !== 'object') return undefined;
    o = o[k];
  }
  return o;
}
/** Sets `obj.a.b` for the path `a.b`, making the objects on the way. */
export function set(obj, path, v) {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (o[k] === null || typeof o[k] !== 'object') o[k] = {};
    o = o[k];
  }
  o[keys[keys.length - 1]] = v;
}
/** A finite number (not a string, not NaN). */
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
