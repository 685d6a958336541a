// Tools of the dashboard's browser driver (drive.js): failing a check and
// reporting one, plain HTTP from node, watching a page for console errors,
// and reading the figures, the route table and live updates off the page.
'use strict';

function assert(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}
function ok(name) { console.log(`ok - ${name}`); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

async function get(url) {
  const r = await fetch(url);
  await r.arrayBuffer();
  return r.status;
}
async function getJson(url) {
  const r = await fetch(url);
  assert(r.ok, `GET ${url} answered ${r.status}`);
  return r.json();
}

/** Records console errors and page errors of a page, by phase. */
function watch(page, label) {
  const w = { label, errors: [], allowed: [] };
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    w.errors.push({ text: m.text(), url: (m.location() && m.location().url) || '' });
  });
  page.on('pageerror', (e) => w.errors.push({ text: `uncaught: ${e.message}`, url: '' }));
  page.on('dialog', (d) => { w.errors.push({ text: `dialog opened: ${d.message()}`, url: '' }); d.dismiss(); });
  return w;
}
function assertNoErrors(w, allow = () => false) {
  const bad = w.errors.filter((e) => !allow(e));
  assert(bad.length === 0, `${w.label}: console errors: ${JSON.stringify(bad)}`);
}

async function fieldValues(page) {
  return page.$$eval('[data-field]', (els) => els.map((el) => ({
    field: el.dataset.field,
    format: el.dataset.format,
    value: el.dataset.value,
    text: el.textContent,
    title: el.title,
  })));
}
function pick(obj, p) {
  return p.split('.').reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), obj);
}
function textNumber(text) {
  return Number(text.replace(/,/g, '').replace(/[^0-9.+-].*$/, ''));
}
/** The text a person sees agrees with the value, to the shown precision. */
function checkShown(f, expected) {
  if (expected === null || expected === undefined) {
    assert(f.text.trim() === '–', `${f.field}: shows ${f.text} for a missing value`);
    return;
  }
  assert(f.value === String(expected), `${f.field}: page holds ${f.value}, server said ${expected}`);
  if (f.format === 'bytes') {
    assert(f.title === `${Number(expected).toLocaleString('en-US')} bytes`, `${f.field}: title ${f.title}`);
    return;
  }
  if (f.format === 'duration') {
    const s = Math.floor(expected);
    const parts = [...f.text.matchAll(/(\d+)([dhms])/g)];
    const secs = parts.reduce((t, [, n, u]) => t + Number(n) * { d: 86400, h: 3600, m: 60, s: 1 }[u], 0);
    assert(secs === s, `${f.field}: shows ${f.text} for ${expected}`);
    return;
  }
  const shown = textNumber(f.text);
  const abs = Math.abs(expected);
  const tol = f.format === 'int' ? 0 : abs >= 100 ? 0.5 : abs >= 10 ? 0.05 : 0.005;
  assert(Math.abs(shown - expected) <= tol + 1e-9, `${f.field}: shows ${f.text} for ${expected}`);
}

async function routeRequests(page, route) {
  return page.evaluate((r) => {
    for (const tr of document.querySelectorAll('#routes tbody tr')) {
      if (tr.dataset.route === r) return Number(tr.querySelector('[data-col="requests"]').dataset.value);
    }
    return 0;
  }, route);
}
async function waitRoute(page, route, atLeast, timeout) {
  await page.waitForFunction(([r, n]) => {
    for (const tr of document.querySelectorAll('#routes tbody tr')) {
      if (tr.dataset.route === r) return Number(tr.querySelector('[data-col="requests"]').dataset.value) >= n;
    }
    return false;
  }, [route, atLeast], { timeout, polling: 'raf' });
}
const loaded = (page) => page.waitForFunction(
  () => document.querySelector('[data-field="requests.total"]').dataset.value !== undefined
    && document.querySelector('[data-field="requests.total"]').dataset.value !== '',
  null, { timeout: 10000 },
);

/**
 * Live-mode latency of one request: from just before node sends it to the
 * first frame after the page's DOM counts it.
 */
async function liveSample(page, base, i) {
  const before = await routeRequests(page, '/users/{id}');
  await page.evaluate((n) => {
    window.__seen = new Promise((resolve) => {
      const done = () => {
        for (const tr of document.querySelectorAll('#routes tbody tr')) {
          if (tr.dataset.route === '/users/{id}'
            && Number(tr.querySelector('[data-col="requests"]').dataset.value) > n) return true;
        }
        return false;
      };
      const obs = new MutationObserver(() => {
        if (!done()) return;
        obs.disconnect();
        requestAnimationFrame(() => resolve(performance.timeOrigin + performance.now()));
      });
      obs.observe(document.querySelector('#routes tbody'), { childList: true, subtree: true, attributes: true });
    });
  }, before);
  const sent = now();
  const status = await get(`${base}/users/${i}`);
  assert(status === 200, `/users/${i} answered ${status}`);
  const seen = await Promise.race([
    page.evaluate(() => window.__seen),
    sleep(5000).then(() => null),
  ]);
  assert(seen !== null, 'live mode never showed the request (5 s)');
  return seen - sent;
}

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

module.exports = {
  assert,
  ok,
  sleep,
  get,
  getJson,
  watch,
  assertNoErrors,
  fieldValues,
  pick,
  checkShown,
  routeRequests,
  waitRoute,
  loaded,
  liveSample,
  percentile,
};
