// A table sortable and filterable on every column, its sort and filters
// kept in the URL (`<prefix>sort`, `<prefix>dir`, `<prefix>f.<column>`), so
// a filtered view can be shared.
//
// A filter on a text column keeps rows whose text contains it (any case).
// On a number column it may also compare: `>100`, `>=0.5`, `<10`, `<=3`,
// `=200`; anything else matches the shown text.
import { html } from './html.js';
import { setParams } from './router.js';

const COMPARE = /^\s*(>=|<=|>|<|=)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$/i;

/** Whether a row's cell passes a column's filter. */
export function passes(column, row, filter) {
  if (!filter) return true;
  if (column.num) {
    const m = COMPARE.exec(filter);
    if (m) {
      const v = column.value(row);
      if (v === null || v === undefined) return false;
      const x = Number(m[2]);
      switch (m[1]) {
        case '>': return v > x;
        case '>=': return v >= x;
        case '<': return v < x;
        case '<=': return v <= x;
        default: return v === x;
      }
    }
  }
  return String(column.text(row)).toLowerCase().includes(filter.toLowerCase());
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

/**
 * The table. `columns`: [{key, title, num, value(row), text(row), cell?(row)}];
 * `rowAttrs(row)`: attributes of each <tr>; `params`: the URL's parameters.
 */
export function DataTable({ id, columns, rows, params, prefix = '', rowAttrs = () => ({}), empty = 'Nothing yet.', defaultSort }) {
  const sortKey = params.get(`${prefix}sort`) || defaultSort || null;
  const dir = params.get(`${prefix}dir`) === 'asc' ? 'asc' : (params.get(`${prefix}dir`) === 'desc' ? 'desc' : (sortKey ? 'desc' : null));
  const filters = Object.fromEntries(columns.map((c) => [c.key, params.get(`${prefix}f.${c.key}`) || '']));
  let shown = rows.filter((row) => columns.every((c) => passes(c, row, filters[c.key])));
  const sortColumn = columns.find((c) => c.key === sortKey);
  if (sortColumn) {
    const sign = dir === 'asc' ? 1 : -1;
    shown = shown
      .map((row, i) => ({ row, i }))
      .sort((x, y) => {
        const c = compare(sortColumn.value(x.row), sortColumn.value(y.row));
        // Missing values last whichever the direction; ties keep the API's order.
        const vx = sortColumn.value(x.row);
        const vy = sortColumn.value(y.row);
        if (vx === null || vx === undefined || vy === null || vy === undefined) return c || x.i - y.i;
        return sign * c || x.i - y.i;
      })
      .map((x) => x.row);
  }
  const toggle = (key) => {
    const next = key === sortKey && dir === 'desc' ? 'asc' : 'desc';
    setParams({ [`${prefix}sort`]: key, [`${prefix}dir`]: next });
  };
  const anyFilter = Object.values(filters).some(Boolean);
  return html`<div class="table-wrap">
    <table id=${id} class="data" data-rows=${shown.length} data-total=${rows.length}>
      <thead>
        <tr>${columns.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''}
            aria-sort=${c.key === sortKey ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
          <button type="button" class="sort" data-sort=${c.key} onClick=${() => toggle(c.key)}>
            ${c.title}${c.key === sortKey ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}
          </button></th>`)}</tr>
        <tr class="filters">${columns.map((c) => html`<th>
          <input type="search" data-filter=${c.key} aria-label=${`filter ${c.title}`}
            placeholder=${c.num ? '>, <, =' : 'filter'} value=${filters[c.key]}
            onInput=${(e) => setParams({ [`${prefix}f.${c.key}`]: e.currentTarget.value })} />
        </th>`)}</tr>
      </thead>
      <tbody>
        ${shown.map((row) => html`<tr ...${rowAttrs(row)}>
          ${columns.map((c) => html`<td class=${c.num ? 'num' : ''} data-col=${c.key}
              data-value=${c.value(row) === null || c.value(row) === undefined ? '' : String(c.value(row))}>
            ${c.cell ? c.cell(row) : c.text(row)}</td>`)}
        </tr>`)}
      </tbody>
    </table>
    ${shown.length === 0 ? html`<p class="muted empty">${rows.length && anyFilter ? 'No row matches the filters.' : empty}</p>` : null}
    ${rows.length ? html`<p class="muted count">${shown.length === rows.length ? `${rows.length} rows` : `${shown.length} of ${rows.length} rows`}</p>` : null}
  </div>`;
}
