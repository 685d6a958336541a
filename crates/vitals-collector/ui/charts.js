// Time-series charts, drawn by uPlot (vendor/uplot.js): fast canvas
// charts with axes, a cursor and a legend, in one small file with no
// dependencies. Colours come from the theme's CSS variables, so a chart
// is redrawn when the theme changes.
import uPlot from './vendor/uplot.js';
import { html, useEffect, useRef } from './html.js';

const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6'];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888';
}

/**
 * Joins series of [{t, value}] on their times: uPlot's [[t (s)], [v], ...],
 * with null where a series has no point at a time.
 */
export function align(series) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = series.map((s) => {
    const col = new Array(times.length).fill(null);
    for (const p of s.points) col[index.get(p.t)] = p.value === null || p.value === undefined ? null : Number(p.value);
    return col;
  });
  return [times.map((t) => t / 1000), ...columns];
}

/**
 * A chart of one or more series: `series` = [{label, points: [{t, value}]}];
 * `unit` is shown on the y axis; `scale(v)` turns a value into what is drawn.
 */
export function Chart({ id, title, series, unit = '', theme }) {
  const box = useRef(null);
  const plot = useRef(null);
  const total = series.reduce((n, s) => n + s.points.length, 0);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const fg = cssVar('--muted');
    const grid = cssVar('--grid');
    const opts = {
      width: Math.max(200, el.clientWidth || 400),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60, label: unit, labelSize: 18 },
      ],
      series: [{}, ...series.map((s, i) => ({
        label: s.label,
        stroke: cssVar(PALETTE[i % PALETTE.length]),
        width: 1.5,
        spanGaps: false,
        // Dots too: a minute with requests between two without is a lone
        // point, which a line alone would not show.
        points: { show: true, size: 5 },
      }))],
    };
    plot.current = new uPlot(opts, align(series), el);
    const resize = new ResizeObserver(() => {
      if (plot.current && el.clientWidth) plot.current.setSize({ width: el.clientWidth, height: 180 });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current.destroy();
      plot.current = null;
    };
  }, [theme, series.length, series.map((s) => s.label).join('\u0000')]);
  useEffect(() => {
    if (plot.current) plot.current.setData(align(series));
  }, [series]);
  return html`<figure class="chart" id=${id} data-points=${total}>
    <figcaption>${title}</figcaption>
    <div class="chart-box" ref=${box}></div>
    ${total === 0 ? html`<p class="muted">No data in this window.</p>` : null}
  </figure>`;
}
