// Drives the collector's web UI in Debian's headless Chromium. Started by
// tests/ui.rs with a real collector's URL and four keys (ingest and read
// of two tenants); pushes batches to it, then checks each page against the
// JSON API. Prints one line per check ("ok - …") and exits non-zero on the
// first failed one. The tools it uses are in helpers.js.
//
//   node drive.js --base http://127.0.0.1:PORT --ingest vk_… --read vk_… \
//       --other-ingest vk_… --other-read vk_… --shots DIR
//   node drive.js --bench 200 --base … --ingest vk_… --read vk_… [--mode poll]
//       (only the time from a batch's acknowledgement to the overview showing it)
'use strict';

const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const {
  assert, ok, sleep, client, watch, assertNoErrors, tableRows, sameNumber, traceId,
} = require('./helpers');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run',
];

function parseArgs(argv) {
  const out = { shots: os.tmpdir() };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    out[name] = argv[i + 1];
  }
  out.bench = Number(out.bench || 0);
  out.mode = out.mode || 'live';
  const required = out.bench > 0 ? ['base', 'ingest', 'read'] : ['base', 'ingest', 'read', 'otherIngest', 'otherRead'];
  for (const k of required) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

const HOSTILE_SERVICE = '<img src=x onerror="window.__pwned=1">';
const HOSTILE_ROUTE = '/<script>window.__pwned=2</script>/{id}';
const HOSTILE_LABEL = '<b onmouseover="window.__pwned=3">shop</b>';
const JOURNEY = traceId(0xC0FFEE);
const WINDOW = '15m';
/** A rate is requests over the window up to now: it moves between two reads. */
const RATE_TOLERANCE = 0.01;

/** Records for one service: [method, route, status, duration, caller?, trace?, offset ms]. */
function records(list, now) {
  return list.map(([method, route, status, duration_ms, caller, trace_id, offset = 0]) => ({
    method, route, path: route.replace('{id}', '7'), status, duration_ms,
    ...(caller ? { caller } : {}), ...(trace_id ? { trace_id } : {}),
    timestamp_ms: now - 3000 + offset,
  }));
}

async function push(api, now) {
  const checkout = [];
  for (let i = 0; i < 8; i += 1) checkout.push(['GET', '/users/{id}', 200, 5 + i * 5, 'web', null, i]);
  for (let i = 0; i < 4; i += 1) checkout.push(['POST', '/orders', i < 2 ? 500 : 201, 80 + i * 40, 'web', null, 10 + i]);
  for (let i = 0; i < 3; i += 1) checkout.push(['GET', '/health', 200, 1, null, null, 20 + i]);
  checkout.push(['DELETE', '/users/{id}', 204, 12, null, null, 30]);
  for (let i = 0; i < 6; i += 1) checkout.push(['GET', '/search', 200, 300 + i * 100, 'web', null, 40 + i]);
  checkout.push(['PUT', '/cart', 200, 22, null, null, 50], ['PUT', '/cart', 503, 900, null, null, 51]);
  // One journey: web → checkout POST /orders → payments POST /charge.
  checkout.push(['POST', '/orders', 201, 60, 'web', JOURNEY, 100]);
  const payments = [];
  for (let i = 0; i < 5; i += 1) payments.push(['POST', '/charge', i === 4 ? 502 : 200, 20 + i * 10, 'checkout', null, 60 + i]);
  payments.push(['POST', '/charge', 200, 25, 'checkout', JOURNEY, 110]);
  await api.post('v1/requests', { service: 'checkout', instance: 'checkout-1', requests: records(checkout, now) });
  await api.post('v1/requests', { service: 'payments', instance: 'payments-1', requests: records(payments, now) });
  await api.post('v1/requests', {
    service: HOSTILE_SERVICE,
    requests: records([['GET', HOSTILE_ROUTE, 200, 3, null, null, 0]], now),
  });
  // Custom metrics ride in aggregated batches.
  await api.post('v1/ingest', {
    batch_id: `custom-${now}`, service: 'checkout', instance: 'checkout-1',
    start_unix_ms: now - 10000, interval_ms: 10000, routes: [],
    custom: [
      { name: 'orders_total', kind: 'counter', labels: { [HOSTILE_LABEL]: 'eu' }, value: 42 },
      { name: 'queue_depth', kind: 'gauge', labels: {}, value: 7 },
    ],
  });
}

async function signIn(page, key) {
  await page.fill('#key', key);
  await page.click('#signin button[type=submit]');
}

async function checkSignIn(page, base, keys) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#signin');
  await signIn(page, 'not-a-key');
  await page.waitForSelector('#signin-error');
  assert((await page.textContent('#signin-error')).includes('not a key'), 'a malformed key is named as such');
  await signIn(page, `vk_${'0'.repeat(64)}`);
  await page.waitForFunction(() => document.querySelector('#signin-error')?.textContent.includes('refused'));
  ok('sign-in: a wrong key is a clear message, and nothing is stored');
  assert(await page.evaluate(() => sessionStorage.length) === 0, 'no key kept after a refusal');
  await signIn(page, keys.ingest);
  await page.waitForFunction(() => document.querySelector('#signin-error')?.textContent.includes('read key'));
  ok('sign-in: an ingest key is refused, with a message saying a read key is needed');
  await signIn(page, keys.read);
  await page.waitForSelector('#services');
  const stored = await page.evaluate(() => Object.values(sessionStorage));
  assert(stored.includes(keys.read), 'the key is kept in sessionStorage');
  assert(await page.evaluate(() => localStorage.length === 0 || !Object.values(localStorage).some((v) => v.startsWith('vk_'))),
    'the key is not in localStorage');
  ok('sign-in: a read key opens the overview and is kept in sessionStorage');
}

async function checkOverview(page, base, read) {
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  const api = await read.get(`v1/services?window=${WINDOW}&sparkline=1`);
  assert(api.services.length === 3, `three services pushed: ${JSON.stringify(api.services.map((s) => s.service))}`);
  await page.waitForFunction((n) => document.querySelectorAll('#services tbody tr').length === n, api.services.length);
  const rows = await tableRows(page, 'services');
  const byName = new Map(rows.map((r) => [r.attrs.service, r]));
  for (const s of api.services) {
    const row = byName.get(s.service);
    assert(row, `the overview lists ${s.service}`);
    for (const k of ['requests', 'rate_per_sec', 'error_rate', 'p95_ms', 'apdex', 'last_seen_ms']) {
      sameNumber(row.cells[k], s[k], `${s.service} ${k}`, k === 'rate_per_sec' ? RATE_TOLERANCE : 0);
    }
    assert(row.attrs.health === s.health, `${s.service}: health ${row.attrs.health}, API ${s.health}`);
  }
  const light = await page.$eval('#services tr[data-service="payments"] .light', (el) => ({ title: el.title, health: el.dataset.health }));
  const payments = api.services.find((s) => s.service === 'payments');
  assert(light.health === payments.health, 'the light shows the health');
  if (payments.health_reasons.length) {
    assert(light.title === payments.health_reasons.join('\n'), `the light's hover text is the reasons: ${light.title}`);
  }
  // Sparklines: drawn from the API's points when it sends them.
  const spark = await page.$eval('#services tr[data-service="checkout"] td[data-col="sparkline"]', (td) => {
    const svg = td.querySelector('svg.spark');
    return svg ? Number(svg.dataset.points) : null;
  });
  const checkout = api.services.find((s) => s.service === 'checkout');
  if (Array.isArray(checkout.sparkline)) {
    assert(spark === checkout.sparkline.length, `sparkline has ${spark} points, API ${checkout.sparkline.length}`);
  } else {
    assert(spark === null, 'no sparkline drawn when the API sends none');
  }
  ok(`overview: the ${api.services.length} services with the API's numbers, health lights with reasons${Array.isArray(checkout.sparkline) ? ', sparklines' : ' (API without sparklines)'}`);
}

async function checkHostile(page, base) {
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  await page.waitForSelector('#services tbody tr');
  const link = await page.$$eval('#services a.service-link', (as) => as.map((a) => a.textContent));
  assert(link.includes(HOSTILE_SERVICE), `the hostile service name is shown as text: ${JSON.stringify(link)}`);
  assert(await page.$$eval('#page img, #page script, #page b', (els) => els.length) === 0, 'no element made from data');
  await page.goto(`${base}/#/service/${encodeURIComponent(HOSTILE_SERVICE)}?window=${WINDOW}`);
  await page.waitForSelector('#routes tbody tr');
  const route = await page.$eval('#routes tbody tr td[data-col="route"]', (td) => td.textContent.trim());
  assert(route === HOSTILE_ROUTE, `the hostile route is shown as text: ${route}`);
  assert(await page.textContent('#service-name') === HOSTILE_SERVICE, 'the page title shows the name as text');
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  await page.waitForFunction((l) => [...document.querySelectorAll('#custom-table td.labels')].some((td) => td.textContent.includes(l)), HOSTILE_LABEL);
  await page.hover('#routes thead th');
  assert(await page.$$eval('#page img, #page script, #page b', (els) => els.length) === 0, 'no element made from data');
  assert(await page.evaluate(() => window.__pwned === undefined), 'no hostile script ran');
  ok('hostile service, route and label names are shown as text, and nothing of them ran');
}

async function checkServicePage(page, base, read) {
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  const api = await read.get(`v1/services/checkout/routes?window=${WINDOW}`);
  assert(api.routes.length === 6, `checkout has 6 routes: ${api.routes.length}`);
  await page.waitForFunction((n) => document.querySelectorAll('#routes tbody tr').length === n, api.routes.length);
  const rows = await tableRows(page, 'routes');
  for (const r of api.routes) {
    const row = rows.find((x) => x.attrs.route === r.route && x.attrs.method === r.method);
    assert(row, `the table has ${r.method} ${r.route}`);
    for (const k of ['requests', 'rate_per_sec', 'error_rate', 'avg_ms', 'p50_ms', 'p95_ms', 'p99_ms', 'apdex', 'last_seen_ms']) {
      sameNumber(row.cells[k], r[k], `${r.method} ${r.route} ${k}`, k === 'rate_per_sec' ? RATE_TOLERANCE : 0);
    }
  }
  ok(`service page: the route table equals /v1/services/checkout/routes (${api.routes.length} routes, every column)`);

  // Sorting, on a number column and a text column, both ways.
  const column = async (key) => (await tableRows(page, 'routes')).map((r) => r.cells[key].value);
  await page.click('[data-sort="p95_ms"]');
  await page.waitForFunction(() => location.hash.includes('sort=p95_ms'));
  let p95 = (await column('p95_ms')).map(Number);
  assert(p95.every((v, i) => i === 0 || p95[i - 1] >= v), `p95 descending: ${p95}`);
  await page.click('[data-sort="p95_ms"]');
  await page.waitForFunction(() => location.hash.includes('dir=asc'));
  p95 = (await column('p95_ms')).map(Number);
  assert(p95.every((v, i) => i === 0 || p95[i - 1] <= v), `p95 ascending: ${p95}`);
  await page.click('[data-sort="route"]');
  const routes = await column('route');
  assert(routes.every((v, i) => i === 0 || routes[i - 1].localeCompare(v) >= 0), `route descending: ${routes}`);
  ok('service page: sorting by a number and a text column, both directions');

  // Filtering: text, then a comparison on a number column.
  await page.fill('[data-filter="route"]', 'users');
  await page.waitForFunction(() => document.querySelectorAll('#routes tbody tr').length === 2);
  assert((await column('route')).every((r) => r.includes('users')), 'only routes with "users"');
  await page.fill('[data-filter="route"]', '');
  await page.fill('[data-filter="requests"]', '>3');
  const more = api.routes.filter((r) => r.requests > 3).length;
  await page.waitForFunction((n) => document.querySelectorAll('#routes tbody tr').length === n, more);
  assert((await column('requests')).every((v) => Number(v) > 3), 'only routes with more than 3 requests');
  await page.fill('[data-filter="method"]', 'post');
  const posts = api.routes.filter((r) => r.requests > 3 && r.method === 'POST').length;
  await page.waitForFunction((n) => document.querySelectorAll('#routes tbody tr').length === n, posts);
  ok(`service page: filters on text and number columns combine (${more} rows > 3 requests, ${posts} of them POST)`);

  // The URL holds the page, the window, the sort and the filters; not the key.
  const url = page.url();
  assert(url.includes('window=15m') && url.includes('f.requests=%3E3') && url.includes('f.method=post'), `shareable URL: ${url}`);
  assert(!url.includes('vk_'), 'the key is not in the URL');
  const fresh = await page.context().newPage();
  await fresh.goto(url);
  await fresh.waitForSelector('#signin');
  await signIn(fresh, read.key);
  await fresh.waitForFunction((n) => document.querySelectorAll('#routes tbody tr').length === n, posts);
  assert(await fresh.inputValue('[data-filter="requests"]') === '>3', 'the filter is restored from the URL');
  await fresh.close();
  ok('shareable URL: a new tab opens the same page, window and filters after signing in');
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  await page.waitForFunction((n) => document.querySelectorAll('#routes tbody tr').length === n, api.routes.length);

  // The window picker.
  await page.click('[data-window="1h"]');
  await page.waitForFunction(() => location.hash.includes('window=1h'));
  await page.waitForSelector('[data-window="1h"].on');
  await page.click(`[data-window="${WINDOW}"]`);
  ok('service page: the window picker changes the URL');

  // Charts: requests/min, latency and error rate, with the API's points.
  const ts = await read.get(`v1/services/checkout/timeseries?window=${WINDOW}&metric=rate`);
  await page.waitForFunction(() => document.querySelectorAll('#chart-requests canvas, #chart-latency canvas, #chart-errors canvas').length === 3);
  const drawn = await page.$eval('#chart-requests', (f) => Number(f.dataset.points));
  assert(drawn === ts.points.length, `requests chart: ${drawn} points, API ${ts.points.length}`);
  const latency = await page.$$eval('#chart-latency .u-legend .u-label', (ls) => ls.map((l) => l.textContent));
  for (const s of ['p50', 'p95', 'p99']) assert(latency.includes(s), `latency chart has ${s}: ${latency}`);
  ok('service page: charts of requests/min, latency p50/p95/p99 and error rate');

  // Recent requests, with links to journeys.
  const recent = await read.get('v1/services/checkout/recent?limit=50');
  await page.waitForFunction((n) => document.querySelectorAll('#recent tbody tr').length === n, recent.requests.length);
  assert(await page.$(`#recent tr[data-trace="${JOURNEY}"] a.trace`), 'the traced request links to its journey');
  ok(`service page: ${recent.requests.length} recent requests, trace ids linked`);

  // Callers and callees.
  await page.waitForSelector('#callers tr[data-service="web"]');
  await page.waitForSelector('#callees tr[data-service="payments"]');
  ok('service page: callers (web) and callees (payments)');

  // Custom metrics, a chart each.
  await page.waitForSelector('#custom-table tr[data-metric="orders_total"]');
  await page.waitForSelector('#custom-table tr[data-metric="queue_depth"]');
  await page.waitForFunction(() => document.getElementById('custom-orders_total')?.querySelector('canvas')
    && document.getElementById('custom-queue_depth')?.querySelector('canvas'));
  ok('service page: custom metrics listed, with a chart each');
}

async function checkJourney(page, base, read) {
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  await page.click(`#recent tr[data-trace="${JOURNEY}"] a.trace`);
  await page.waitForFunction(() => location.hash.startsWith('#/journey/'));
  const api = await read.get(`v1/traces/${JOURNEY}`);
  assert(api.requests.length === 2, `the trace has two requests: ${JSON.stringify(api)}`);
  await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 2);
  const steps = await page.$$eval('#timeline li', (lis) => lis.map((li) => ({ service: li.dataset.service, t: Number(li.dataset.timestamp) })));
  assert(steps[0].service === 'checkout' && steps[1].service === 'payments', `in time order: ${JSON.stringify(steps)}`);
  assert(steps[0].t <= steps[1].t, 'timestamps ascend');
  assert(steps.every((s, i) => s.t === api.requests[i].timestamp_ms), 'the API\'s times');
  // Typed in.
  await page.goto(`${base}/#/journey`);
  await page.fill('#trace', JOURNEY.toUpperCase());
  await page.click('#trace-form button');
  await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 2);
  await page.fill('#trace', 'nothex');
  await page.click('#trace-form button');
  await page.waitForSelector('.journey .problem');
  ok('journey: the two requests of one trace, checkout then payments, linked and typed in');
}

async function checkCallMap(page, base, read) {
  await page.goto(`${base}/#/callmap?window=${WINDOW}`);
  const api = await read.get(`v1/connections?window=${WINDOW}`);
  const services = await read.get(`v1/services?window=${WINDOW}`);
  await page.waitForSelector('#callmap');
  await page.waitForFunction((n) => document.querySelectorAll('#callmap g.edge').length === n, api.edges.filter((e) => e.caller !== e.callee).length);
  const edges = await page.$$eval('#callmap g.edge', (gs) => gs.map((g) => `${g.dataset.caller}→${g.dataset.callee}`));
  const want = api.edges.map((e) => `${e.caller}→${e.callee}`);
  assert(want.includes('checkout→payments') && want.includes('web→checkout'), `API edges: ${want}`);
  assert(JSON.stringify([...edges].sort()) === JSON.stringify([...want].sort()), `map edges ${edges} = API ${want}`);
  const nodes = await page.$$eval('#callmap [data-node]', (ns) => ns.map((n) => n.dataset.node));
  for (const s of services.services) assert(nodes.includes(s.service), `the map shows ${s.service}, even without calls`);
  const rows = await tableRows(page, 'edges');
  for (const e of api.edges) {
    const row = rows.find((r) => r.attrs.caller === e.caller && r.attrs.callee === e.callee);
    for (const k of ['requests', 'rate_per_sec', 'error_rate', 'p95_ms']) sameNumber(row.cells[k], e[k], `${e.caller}→${e.callee} ${k}`, k === 'rate_per_sec' ? RATE_TOLERANCE : 0);
  }
  // Width by rate: the busier edge is the wider.
  const widths = await page.$$eval('#callmap g.edge', (gs) => Object.fromEntries(gs.map((g) => [`${g.dataset.caller}→${g.dataset.callee}`, Number(g.dataset.width)])));
  const rate = Object.fromEntries(api.edges.map((e) => [`${e.caller}→${e.callee}`, e.rate_per_sec]));
  const [a, b] = ['web→checkout', 'checkout→payments'];
  assert((rate[a] > rate[b]) === (widths[a] > widths[b]), `width follows rate: ${JSON.stringify({ widths, rate })}`);
  ok(`call map: ${nodes.length} services as nodes, the ${api.edges.length} edges of /v1/connections with their figures, width by rate`);
}

async function checkLive(page, base, ingest, read) {
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  await page.waitForSelector('#services tr[data-service="payments"]');
  await page.waitForSelector('#status[data-mode="live"]', { timeout: 10000 });
  const before = Number(await page.$eval('#services tr[data-service="payments"] td[data-col="requests"]', (td) => td.dataset.value));
  const samples = [];
  for (let i = 0; i < 3; i += 1) {
    const n = before + (i + 1) * 2;
    const seen = page.waitForFunction((want) => Number(document.querySelector('#services tr[data-service="payments"] td[data-col="requests"]')?.dataset.value) === want, n, { timeout: 2000, polling: 'raf' });
    const t0 = Date.now();
    await ingest.post('v1/requests', { service: 'payments', requests: records([['POST', '/charge', 200, 30, 'checkout'], ['POST', '/charge', 200, 31, 'checkout']], Date.now()) });
    const acked = Date.now();
    await seen;
    samples.push(Date.now() - acked);
    assert(Date.now() - t0 < 2500, 'within 2 s of the post');
  }
  const api = await read.get(`v1/services?window=${WINDOW}`);
  assert(api.services.find((s) => s.service === 'payments').requests === before + 6, 'the API agrees');
  ok(`live: after each new batch the page showed it without a reload, within 2 s (ack → shown: ${samples.join(', ')} ms)`);
}

async function checkFallback(context, base, ingest, read) {
  // The stream refused: the page polls, and still updates.
  const page = await context.newPage();
  const w = watch(page, 'fallback');
  await page.route('**/v1/live', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"too many","reason":"too_many_live_clients"}' }));
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  // A new tab: sessionStorage is per tab, so it signs in again.
  await page.waitForSelector('#signin');
  await signIn(page, read.key);
  await page.waitForSelector('#status[data-mode="polling"]');
  await page.waitForSelector('#services tr[data-service="checkout"]');
  const before = Number(await page.$eval('#services tr[data-service="checkout"] td[data-col="requests"]', (td) => td.dataset.value));
  await ingest.post('v1/requests', { service: 'checkout', requests: records([['GET', '/health', 200, 1]], Date.now()) });
  await page.waitForFunction((want) => Number(document.querySelector('#services tr[data-service="checkout"] td[data-col="requests"]')?.dataset.value) === want, before + 1, { timeout: 8000 });
  ok('live: without the stream the page polls every 5 s and still updates');
  // The collector stops answering: the page says its data is stale.
  await page.route('**/v1/**', (route) => route.abort('connectionrefused'));
  await page.waitForSelector('#status[data-stale="1"]', { timeout: 8000 });
  assert((await page.textContent('#status')).includes('Stale'), 'the status says Stale');
  ok('staleness: when the collector stops answering, the page says its data is stale');
  assertNoErrors(w, (e) => /v1\/live|Failed to load resource|ERR_CONNECTION_REFUSED/.test(e.text + e.url));
  await page.close();
  void read;
}

async function checkOtherTenant(browser, base, other, otherKey) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.waitForSelector('#signin');
  await signIn(page, otherKey);
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  await page.waitForSelector('#services tr[data-service="globex-secret"]');
  const names = await page.$$eval('#services tbody tr', (trs) => trs.map((tr) => tr.dataset.service));
  assert(JSON.stringify(names) === '["globex-secret"]', `the other tenant sees only its own: ${names}`);
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  await page.waitForSelector('.service .problem');
  assert(await page.$$eval('#routes tbody tr', (t) => t.length) === 0, 'no route of another tenant');
  await page.goto(`${base}/#/callmap?window=${WINDOW}`);
  await page.waitForSelector('#callmap');
  const nodes = await page.$$eval('#callmap [data-node]', (ns) => ns.map((n) => n.dataset.node));
  assert(JSON.stringify(nodes) === '["globex-secret"]', `its call map: ${nodes}`);
  await page.goto(`${base}/#/journey/${JOURNEY}`);
  await page.waitForFunction(() => document.querySelector('.journey .muted, .journey .problem'));
  assert(await page.$$eval('#timeline li', (l) => l.length) === 0, 'no journey of another tenant');
  ok('another tenant\'s key sees none of it: overview, service page, call map, journey');
  await context.close();
  void other;
}

async function screenshots(page, base, shots) {
  const files = [];
  const shot = async (name) => {
    const file = path.join(shots, name);
    await page.screenshot({ path: file, fullPage: true });
    files.push(file);
  };
  await page.goto(`${base}/#/services?window=${WINDOW}`);
  if (await page.evaluate(() => document.documentElement.dataset.theme) !== 'light') await page.click('#theme');
  await page.waitForSelector('#services tbody tr');
  await shot('collector-overview-light.png');
  await page.goto(`${base}/#/service/checkout?window=${WINDOW}`);
  await page.waitForFunction(() => document.querySelectorAll('#chart-latency canvas').length === 1);
  await page.waitForSelector('#recent tbody tr');
  await sleep(300);
  await shot('collector-service-light.png');
  await page.click('#theme');
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert(bg !== 'rgb(255, 255, 255)', `dark theme background: ${bg}`);
  await sleep(300);
  await shot('collector-service-dark.png');
  await page.goto(`${base}/#/callmap?window=${WINDOW}`);
  await page.waitForSelector('#callmap g.edge');
  await shot('collector-callmap-dark.png');
  await page.goto(`${base}/#/journey/${JOURNEY}`);
  await page.waitForSelector('#timeline li');
  await shot('collector-journey-dark.png');
  for (const f of files) console.log(`screenshot: ${f}`);
  ok('light and dark screenshots taken');
}

let failing = async () => {};

const stamp = () => performance.timeOrigin + performance.now();
function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * The benchmark: N batches of one request each to service "bench", each
 * timed from its acknowledgement (and from just before it was sent) to the
 * first animation frame after the overview's row counts it.
 */
async function bench(browser, args) {
  const base = args.base.replace(/\/$/, '');
  const ingest = client(base, args.ingest);
  const one = () => ({ service: 'bench', requests: [{ method: 'GET', route: '/b', status: 200, duration_ms: 1 }] });
  await ingest.post('v1/requests', one());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  if (args.mode === 'poll') {
    await page.route('**/v1/live', (r) => r.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"off","reason":"bench"}' }));
  }
  await page.goto(`${base}/#/services?window=15m`);
  await signIn(page, args.read);
  await page.waitForSelector(`#status[data-mode="${args.mode === 'poll' ? 'polling' : 'live'}"]`);
  await page.waitForSelector('#services tr[data-service="bench"]');
  const fromAck = [];
  const fromSend = [];
  for (let i = 0; i < args.bench; i += 1) {
    const before = Number(await page.$eval('#services tr[data-service="bench"] td[data-col="requests"]', (td) => td.dataset.value));
    await page.evaluate((n) => {
      window.__seen = new Promise((resolve) => {
        const cell = () => document.querySelector('#services tr[data-service="bench"] td[data-col="requests"]');
        const obs = new MutationObserver(() => {
          if (Number(cell()?.dataset.value) <= n) return;
          obs.disconnect();
          requestAnimationFrame(() => resolve(performance.timeOrigin + performance.now()));
        });
        obs.observe(document.getElementById('page'), { subtree: true, childList: true, attributes: true, characterData: true });
      });
    }, before);
    const sent = stamp();
    await ingest.post('v1/requests', one());
    const acked = stamp();
    const shown = await page.evaluate(() => window.__seen);
    fromAck.push(shown - acked);
    fromSend.push(shown - sent);
    await sleep(args.mode === 'poll' ? 0 : 50 + Math.random() * 100);
  }
  const report = (name, xs) => {
    const v = [...xs].sort((a, b) => a - b);
    const f = (x) => `${x.toFixed(1)} ms`;
    console.log(`${name}: n=${v.length} median ${f(percentile(v, 0.5))}, p95 ${f(percentile(v, 0.95))}, p99 ${f(percentile(v, 0.99))}, max ${f(v[v.length - 1])}`);
  };
  console.log(`mode ${args.mode}`);
  report('acknowledged → shown', fromAck);
  report('sent → shown', fromSend);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const base = args.base.replace(/\/$/, '');
  const ingest = client(base, args.ingest);
  const read = client(base, args.read);
  read.key = args.read;
  const other = client(base, args.otherIngest || args.ingest);
  const now = Date.now();
  if (args.bench > 0) {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    try { await bench(browser, args); } finally { await browser.close(); }
    return;
  }
  await push(ingest, now);
  await other.post('v1/requests', { service: 'globex-secret', requests: records([['GET', '/secret', 200, 4]], now) });
  ok('pushed: checkout, payments and a hostile name to one tenant, globex-secret to another');

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    const w = watch(page, 'main page');
    failing = async () => {
      console.log(`console errors so far: ${JSON.stringify(w.errors)}`);
      const file = path.join(args.shots, 'collector-failed.png');
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`screenshot of the failure: ${file}; page at ${page.url()}`);
    };
    await checkSignIn(page, base, { ingest: args.ingest, read: args.read });
    // The sign-in checks' refusals are the browser's own network errors.
    w.errors = w.errors.filter((e) => !/status of 40[13]/.test(e.text));
    await checkOverview(page, base, read);
    await checkHostile(page, base);
    await checkServicePage(page, base, read);
    await checkJourney(page, base, read);
    await checkCallMap(page, base, read);
    await checkLive(page, base, ingest, read);
    await checkFallback(context, base, ingest, read);
    await checkOtherTenant(browser, base, other, args.otherRead);
    await screenshots(page, base, args.shots);
    assertNoErrors(w);
    ok('no console error on the main page (the CSP refused nothing)');
    await page.click('#signout');
    await page.waitForSelector('#signin');
    assert(await page.evaluate(() => sessionStorage.length) === 0, 'sign out forgets the key');
    ok('sign out forgets the key');
    await context.close();
  } catch (e) {
    await failing();
    throw e;
  } finally {
    await browser.close();
  }
  console.log('all collector UI checks passed');
}

main().catch((e) => {
  console.log(`not ok - ${e.message}`);
  console.error(e.stack);
  process.exit(1);
});
