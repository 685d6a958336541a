// Drives the /debug/ dashboard in Debian's headless Chromium. Started by
// tests/dashboard.rs with the URL of a real server; prints one line per
// check ("ok - …"), and "CONTROL stop" / "CONTROL start" lines that ask the
// Rust side to stop the server and start a new one on the same port (it
// answers "ok" on stdin). Exits non-zero on the first failed check. The
// checks are here, in the order they run; the tools they use to read the
// page are in helpers.js.
//
//   node drive.js --base http://127.0.0.1:PORT --old http://127.0.0.1:PORT2 \
//       --auth http://user:password@127.0.0.1:PORT3 --prefixed http://127.0.0.1:PORT4/ops \
//       --multi http://127.0.0.1:PORT5 --shots DIR
//   node drive.js --bench 200 --base http://127.0.0.1:3000 [--mode poll]
//       (only the latency from a request to the page showing it, live or polling)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');
const {
  assert, ok, sleep, get, getJson, watch, assertNoErrors, fieldValues, pick, checkShown,
  routeRequests, waitRoute, loaded, liveSample, percentile,
} = require('./helpers');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run',
];

function parseArgs(argv) {
  const out = { base: null, old: null, auth: null, prefixed: null, multi: null, shots: os.tmpdir(), bench: 0, mode: 'live' };
  for (let i = 0; i < argv.length; i += 1) {
    const next = () => {
      i += 1;
      if (i >= argv.length) throw new Error(`${argv[i - 1]} needs a value`);
      return argv[i];
    };
    switch (argv[i]) {
      case '--base': out.base = next(); break;
      case '--old': out.old = next(); break;
      case '--auth': out.auth = next(); break;
      case '--prefixed': out.prefixed = next(); break;
      case '--multi': out.multi = next(); break;
      case '--mode': out.mode = next(); break;
      case '--shots': out.shots = next(); break;
      case '--bench': out.bench = Number(next()); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!out.base) throw new Error('--base URL is required');
  return out;
}

// ---- talking to the Rust side ---------------------------------------------

const replies = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (waiting) { const w = waiting; waiting = null; w(line); } else replies.push(line);
});
async function control(command) {
  console.log(`CONTROL ${command}`);
  const line = replies.length ? replies.shift() : await new Promise((r) => { waiting = r; });
  assert(line.startsWith('ok'), `server control "${command}" answered ${line}`);
}

// ---- the checks ---------------------------------------------------------------

async function traffic(context, base) {
  for (let i = 1; i <= 5; i += 1) assert(await get(`${base}/users/${i}`) === 200, 'users');
  for (let i = 0; i < 2; i += 1) assert(await get(`${base}/fail`) === 500, 'fail');
  assert(await get(`${base}/slow?ms=25`) === 200, 'slow');
  for (const q of ['', '', '?fail=1']) assert([200, 202].includes(await get(`${base}/job${q}`)), 'job');
  // WebSocket and SSE from a real browser page.
  const page = await context.newPage();
  await page.goto(`${base}/`);
  const got = await page.evaluate(async (wsUrl) => {
    const ws = new WebSocket(wsUrl);
    const echoed = [];
    await new Promise((resolve, reject) => {
      ws.onopen = () => { for (const m of ['one', 'two', 'three']) ws.send(m); };
      ws.onmessage = (e) => { echoed.push(e.data); if (echoed.length === 3) ws.close(1000); };
      ws.onclose = resolve;
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    const events = await new Promise((resolve) => {
      const seen = [];
      const es = new EventSource('/sse?n=4&interval_ms=10');
      es.onmessage = (e) => { seen.push(e.data); if (seen.length === 4) { es.close(); resolve(seen); } };
    });
    return { echoed, events };
  }, base.replace(/^http/, 'ws') + '/ws');
  assert(got.echoed.length === 3 && got.events.length === 4, `ws/sse traffic: ${JSON.stringify(got)}`);
  await page.close();
}

async function checkPanels(context, base) {
  // One poll only, so the figures stay put while they are compared.
  const page = await context.newPage();
  const w = watch(page, 'panels page');
  let polls = 0;
  const isMetrics = (r) => new URL(r.url()).pathname === '/debug/metrics';
  page.on('response', (r) => { if (isMetrics(r)) polls += 1; });
  const firstPoll = page.waitForResponse(isMetrics);
  const response = await page.goto(`${base}/debug?interval_ms=600000`);
  assert(new URL(page.url()).pathname === '/debug/', `/debug redirects to /debug/ (at ${page.url()})`);
  assert(response.headers()['cache-control'] === 'no-cache', 'page is served with Cache-Control: no-cache');
  assert(response.headers()['content-type'] === 'text/html; charset=utf-8', 'page content type');
  await loaded(page);
  await page.waitForFunction(() => document.querySelector('#updated').textContent !== '–');
  const body = await (await firstPoll).json();
  assert(polls === 1, `exactly one /debug/metrics poll so far (${polls})`);
  const fields = await fieldValues(page);
  assert(fields.length >= 41, `panels show ${fields.length} fields`);
  for (const f of fields) checkShown(f, pick(body, f.field));
  ok(`every panel field shows the JSON the page received (${fields.length} fields)`);

  // Figures that do not move by themselves, against the test's own fetch.
  const mine = await getJson(`${base}/debug/metrics`);
  const shown = Object.fromEntries(fields.map((f) => [f.field, f.value]));
  for (const p of ['requests.errors', 'websocket.connections_total', 'websocket.messages_received',
    'websocket.messages_sent', 'websocket.bytes_received', 'websocket.bytes_sent',
    'sse.connections_total', 'sse.events_sent', 'sse.bytes_sent', 'workers.active', 'streams.total',
    'tasks.enqueued', 'tasks.started', 'tasks.completed', 'tasks.failed', 'tasks.in_flight']) {
    assert(shown[p] === String(pick(mine, p)), `${p}: page shows ${shown[p]}, /debug/metrics says ${pick(mine, p)}`);
  }
  assert(Number(shown['websocket.messages_received']) === 3, 'three WebSocket messages received');
  assert(Number(shown['sse.events_sent']) === 4, 'four SSE events sent');
  assert(Number(shown['requests.errors']) === 2, 'two errors');
  assert(shown['tasks.completed'] === '2' && shown['tasks.failed'] === '1', 'two jobs done, one failed');
  const queue = await page.$eval('#task-queues [data-queue="emails"]', (tr) => ({
    completed: tr.querySelector('[data-col="completed"]').dataset.value,
    failed: tr.querySelector('[data-col="failed"]').dataset.value,
  }));
  assert(queue.completed === '2' && queue.failed === '1', `emails queue row ${JSON.stringify(queue)}`);
  for (const r of mine.routes.filter((x) => x.route === '/users/{id}' || x.route === '/fail')) {
    const row = await page.$eval(`#routes tbody tr[data-route="${r.route}"]`, (tr) => ({
      requests: tr.querySelector('[data-col="requests"]').dataset.value,
      errors: tr.querySelector('[data-col="errors"]').dataset.value,
      text: tr.querySelector('[data-col="route"]').textContent,
    }));
    assert(row.requests === String(r.requests) && row.errors === String(r.errors) && row.text === r.route,
      `route ${r.route}: page ${JSON.stringify(row)}, server ${JSON.stringify(r)}`);
  }
  assert(await page.$eval('#server-switch', (l) => l.hidden), 'no server switch with one server');
  assert(!(await page.$eval('#clients-empty', (p) => p.hidden)), 'the Clients panel says no client is declared');
  ok('panels and route rows agree with /debug/metrics fetched by the test');
  assertNoErrors(w);
  await page.close();
}

async function checkUpdatesAndSort(context, base, shots) {
  const page = await context.newPage();
  const w = watch(page, 'polling page');
  await page.setViewportSize({ width: 1280, height: 1000 });
  // The sampler adds a point a second from its start (the first /debug/
  // request): wait for two, on a slow machine too, instead of assuming
  // the earlier checks took long enough.
  let hist = await getJson(`${base}/debug/history`);
  for (const deadline = Date.now() + 10000; hist.points.length < 2 && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 250));
    hist = await getJson(`${base}/debug/history`);
  }
  await page.goto(`${base}/debug/`);
  await loaded(page);
  {
    assert(hist.points.length >= 2, `/debug/history has ${hist.points.length} points after 10 s of waiting`);
    // Seeded from /debug/history before the second poll.
    await page.waitForFunction((n) => Number(document.querySelector('.chart[data-chart="connections"] path.series').dataset.points) > n,
      hist.points.length, { timeout: 1400 });
    assert(await page.$eval('#history-note', (e) => e.hidden), 'no "no history" note');
    ok(`charts are seeded from /debug/history (${hist.points.length}+ points)`);
  }
  const before = await routeRequests(page, '/users/{id}');
  const totalBefore = Number(await page.$eval('[data-field="requests.total"]', (e) => e.dataset.value));
  for (let i = 0; i < 20; i += 1) assert(await get(`${base}/users/${100 + i}`) === 200, 'users');
  const t0 = Date.now();
  await waitRoute(page, '/users/{id}', before + 20, 5000);
  const totalAfter = Number(await page.$eval('[data-field="requests.total"]', (e) => e.dataset.value));
  assert(totalAfter >= totalBefore + 20, `requests.total went ${totalBefore} -> ${totalAfter}`);
  ok(`polling page shows 20 new requests after ${Date.now() - t0} ms`);
  // The charts have points from the polls.
  await page.waitForFunction(() => Number(document.querySelector('.chart[data-chart="rate"] path.series').dataset.points) >= 2,
    null, { timeout: 5000 });
  ok('charts draw the polled points');

  const order = (col) => page.$$eval('#routes tbody tr', (trs, c) => trs.map((tr) => (c === 'route'
    ? tr.dataset.route : Number(tr.querySelector(`[data-col="${c}"]`).dataset.value))), col);
  const sorted = (xs, cmp) => xs.every((x, i) => i === 0 || cmp(xs[i - 1], x) <= 0);
  await page.click('#routes th[data-sort="route"] button');
  let routes = await order('route');
  assert(routes.length >= 4, `route table has ${routes.length} rows`);
  // Rows with the same route (other methods) keep a stable order; compare routes only.
  assert(sorted(routes, (a, b) => a.localeCompare(b)), `ascending by route: ${routes}`);
  assert(await page.$eval('#routes th[data-sort="route"]', (th) => th.getAttribute('aria-sort')) === 'ascending', 'aria-sort ascending');
  await page.click('#routes th[data-sort="route"] button');
  routes = await order('route');
  assert(sorted(routes, (a, b) => b.localeCompare(a)), `descending by route: ${routes}`);
  await page.click('#routes th[data-sort="requests"] button');
  let counts = await order('requests');
  assert(sorted(counts, (a, b) => b - a), `descending by requests: ${counts}`);
  await page.click('#routes th[data-sort="requests"] button');
  counts = await order('requests');
  assert(sorted(counts, (a, b) => a - b), `ascending by requests: ${counts}`);
  await page.click('#routes th[data-sort="errors"] button');
  const errors = await order('errors');
  assert(sorted(errors, (a, b) => b - a) && errors[0] === 2, `descending by errors: ${errors}`);
  // A later poll keeps the chosen order.
  await page.waitForTimeout(1700);
  assert(sorted(await order('errors'), (a, b) => b - a), 'order kept across polls');
  ok('route table sorts by route, requests and errors, both ways');

  const light = path.join(shots, 'dashboard-light.png');
  await page.click('#routes th[data-sort="requests"] button');
  await page.screenshot({ path: light, fullPage: true });
  console.log(`screenshot: ${light}`);
  assertNoErrors(w);
  return { page, w };
}

async function checkFilterAndEscaping(context, base) {
  const page = await context.newPage();
  const w = watch(page, 'filtered page');
  await page.goto(`${base}/debug/?route=${encodeURIComponent('/users/{id}')}&interval_ms=600000`);
  await loaded(page);
  const rows = await page.$$eval('#routes tbody tr', (trs) => trs.map((tr) => tr.dataset.route));
  assert(rows.length === 1 && rows[0] === '/users/{id}', `filtered table: ${rows}`);
  const total = await page.$eval('[data-field="requests.total"]', (e) => e.dataset.value);
  assert(total === String(await routeRequests(page, '/users/{id}')), 'filtered total is the route total');
  const mine = await getJson(`${base}/debug/metrics?route=${encodeURIComponent('/users/{id}')}`);
  assert(total === String(mine.requests.total), `filtered total ${total}, server ${mine.requests.total}`);
  assert((await page.textContent('#filters')) === 'route: /users/{id}', 'filter shown');
  assert((await page.getAttribute('#json-link', 'href')) === `metrics?route=${encodeURIComponent('/users/{id}')}`, 'JSON link keeps the filter');
  ok('?route= is forwarded to /debug/metrics and shows that route only');
  assertNoErrors(w);
  await page.close();

  // worker= is not a filter in this version: the page does not forward it
  // (or show it), and /debug/metrics refuses it itself. server= is: the
  // page forwards it and shows it.
  const p3 = await context.newPage();
  const w3 = watch(p3, 'unavailable filter page');
  const asked = [];
  p3.on('request', (r) => asked.push(new URL(r.url())));
  await p3.goto(`${base}/debug/?server=0&worker=3&interval_ms=600000&theme=dark`);
  await loaded(p3);
  const poll = asked.find((u) => u.pathname === '/debug/metrics');
  assert(poll && poll.search === '?server=0', `only server= forwarded, asked ${poll && poll.search}`);
  const shownFilters = await p3.$eval('#filters', (e) => (e.hidden ? null : e.textContent));
  assert(shownFilters === 'server: 0', `filters shown: ${shownFilters}`);
  assertNoErrors(w3);
  const res = await fetch(`${base}/debug/metrics?worker=3`);
  const body = await res.json();
  assert(res.status === 400 && /not available in this version/.test(body.error), `worker=3: ${res.status} ${body.error}`);
  ok('server= is forwarded and shown, worker= neither; /debug/metrics refuses worker= with a 400');
  await p3.close();

  // A hostile filter: shown as text, refused by the server, nothing runs.
  const evil = '<img src=x onerror="window.__pwned=1">"\'</script><script>window.__pwned=2</script>';
  const p2 = await context.newPage();
  const w2 = watch(p2, 'hostile filter page');
  await p2.goto(`${base}/debug/?route=${encodeURIComponent(evil)}&interval_ms=600000`);
  await p2.waitForSelector('#error-banner:not([hidden])', { timeout: 5000 });
  assert((await p2.textContent('#filters')) === `route: ${evil}`, 'hostile filter shown as text');
  const banner = await p2.textContent('#error-banner');
  assert(banner.includes('400') && banner.includes('unknown route'), `banner: ${banner}`);
  assert(await p2.evaluate(() => window.__pwned === undefined && !document.querySelector('img[src="x"]')), 'no markup from the filter ran');
  // The refused /debug/metrics is the browser's own network log line, nothing else.
  assertNoErrors(w2, (e) => /status of 400/.test(e.text) && new URL(e.url).pathname === '/debug/metrics');
  ok('a hostile ?route= shows as text, the 400 shows in the banner, no script runs');
  await p2.close();
}

async function checkLive(context, base, liveExpected) {
  const page = await context.newPage();
  const w = watch(page, 'live page');
  await page.goto(`${base}/debug/?live=1`);
  await loaded(page);
  if (!liveExpected) {
    await page.waitForFunction(() => /live unavailable/.test(document.querySelector('#status').textContent), null, { timeout: 5000 });
    ok('live mode reports that this server has no /debug/events');
    assertNoErrors(w);
    return { page, w };
  }
  await page.waitForFunction(() => document.querySelector('#status').dataset.mode === 'live', null, { timeout: 5000 });
  const samples = [];
  for (let i = 0; i < 10; i += 1) {
    samples.push(await liveSample(page, base, 1000 + i));
    await sleep(50);
  }
  const worst = Math.max(...samples);
  assert(worst < 1000, `live mode showed every request within 1 s (worst ${worst.toFixed(1)} ms)`);
  ok(`live mode shows each request within 1 s (10 requests, worst ${worst.toFixed(1)} ms)`);
  await page.waitForFunction(() => document.querySelectorAll('#recent-events li').length > 0);
  ok('live mode lists recent events');
  // Client text on the bus (a custom event) shows as text, and runs nothing.
  const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
  assert(await get(`${base}/note?text=${encodeURIComponent(evil)}`) === 204, 'note');
  await page.waitForFunction((t) => [...document.querySelectorAll('#recent-events li')]
    .some((li) => li.textContent.includes(`custom name=${t}`)), evil, { timeout: 2000 });
  assert(await page.evaluate(() => window.__pwned === undefined
    && !document.querySelector('#recent-events img, #recent-events b')), 'event text ran as markup');
  ok('hostile text in an event shows as text in live mode');
  assertNoErrors(w);
  return { page, w };
}

async function checkOldServer(context, old) {
  const page = await context.newPage();
  const w = watch(page, 'older-server page');
  await page.goto(`${old}/debug/?live=1`);
  await loaded(page);
  await page.waitForFunction(() => /live unavailable/.test(document.querySelector('#status').textContent), null, { timeout: 5000 });
  await page.waitForFunction(() => !document.querySelector('#history-note').hidden, null, { timeout: 5000 });
  await page.waitForTimeout(2000); // a few polls more
  assert(await page.$eval('#error-banner', (e) => e.hidden), 'no banner on an older server');
  // Only the browser's own network lines for the two 404s; no script error.
  assertNoErrors(w, (e) => /status of 404/.test(e.text)
    && ['/debug/history', '/debug/events'].includes(new URL(e.url).pathname));
  ok('a server answering 404 on /debug/history and /debug/events: polling works, no script error');
  await page.close();
}

async function checkBanner(pages, base) {
  for (const { w } of pages) w.stopped = w.errors.length;
  await control('stop');
  const t0 = Date.now();
  for (const { page } of pages) await page.waitForSelector('#error-banner:not([hidden])', { timeout: 6000 });
  const text = await pages[0].page.textContent('#error-banner');
  assert(/unreachable/i.test(text), `banner says ${text}`);
  ok(`error banner appears when the server stops (${Date.now() - t0} ms)`);
  await control('start');
  const t1 = Date.now();
  for (const { page } of pages) await page.waitForSelector('#error-banner', { state: 'hidden', timeout: 8000 });
  ok(`error banner goes away when a server is back on the port (${Date.now() - t1} ms)`);
  for (const { w } of pages) {
    // While the port was closed, only refused connections were logged.
    assertNoErrors({ label: w.label, errors: w.errors.slice(w.stopped) },
      (e) => /ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING/.test(e.text));
    assertNoErrors({ label: w.label, errors: w.errors.slice(0, w.stopped) });
  }
  // The new server's figures replace the old ones.
  const uptime = await pages[0].page.$eval('[data-field="uptime_seconds"]', (e) => Number(e.dataset.value));
  assert(uptime < 10, `uptime of the new server shown (${uptime})`);
  ok('figures come from the new server after it is back');
}

async function checkLiveAfterRestart(live, base) {
  await live.page.waitForFunction(() => document.querySelector('#status').dataset.mode === 'live', null, { timeout: 10000 });
  const ms = await liveSample(live.page, base, 5000);
  assert(ms < 1000, `live update after restart took ${ms} ms`);
  ok(`live mode reconnects after the restart (next request shown in ${ms.toFixed(1)} ms)`);
}

async function checkDark(context, base, shots) {
  const page = await context.newPage();
  const w = watch(page, 'dark page');
  await page.setViewportSize({ width: 1280, height: 1000 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${base}/debug/`);
  await loaded(page);
  const lum = (css) => {
    const m = css.match(/\d+(\.\d+)?/g).map(Number);
    return (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255;
  };
  const colours = () => page.evaluate(() => ({
    bg: getComputedStyle(document.body).backgroundColor,
    fg: getComputedStyle(document.body).color,
    panel: getComputedStyle(document.querySelector('.panel')).backgroundColor,
  }));
  let c = await colours();
  assert(lum(c.bg) < 0.2 && lum(c.panel) < 0.2 && lum(c.fg) > 0.7, `dark colours: ${JSON.stringify(c)}`);
  const dark = path.join(shots, 'dashboard-dark.png');
  await page.waitForTimeout(1600); // a second poll, so the charts have lines
  await page.screenshot({ path: dark, fullPage: true });
  console.log(`screenshot: ${dark}`);
  ok('dark mode (prefers-color-scheme) renders light text on dark panels');
  // The toggle overrides the system: auto -> light -> dark.
  await page.click('#theme-toggle');
  c = await colours();
  assert(lum(c.bg) > 0.8 && lum(c.fg) < 0.3, `toggle to light: ${JSON.stringify(c)}`);
  await page.click('#theme-toggle');
  await page.emulateMedia({ colorScheme: 'light' });
  c = await colours();
  assert(lum(c.bg) < 0.2 && lum(c.fg) > 0.7, `toggle to dark: ${JSON.stringify(c)}`);
  ok('theme toggle switches light and dark over the system setting');
  await page.click('#theme-toggle'); // back to auto for later pages
  assertNoErrors(w);
  await page.close();
}

async function bench(context, base, n, mode) {
  const page = await context.newPage();
  await page.goto(`${base}/debug/${mode === 'poll' ? '' : '?live=1'}`);
  await loaded(page);
  const want = mode === 'poll' ? 'poll' : 'live';
  await page.waitForFunction((m) => document.querySelector('#status').dataset.mode === m, want, { timeout: 5000 });
  for (let i = 0; i < 5; i += 1) await liveSample(page, base, i); // warm-up
  const samples = [];
  // A random pause before each request, so samples do not lock onto the
  // polling phase (back to back, each would land just after a poll).
  const pause = want === 'poll' ? 1500 : 50;
  for (let i = 0; i < n; i += 1) {
    await sleep(Math.random() * pause);
    samples.push(await liveSample(page, base, i));
  }
  samples.sort((a, b) => a - b);
  const f = (x) => x.toFixed(1);
  console.log(`${want}-mode latency, request sent -> DOM shows it (next frame), ${n} samples: `
    + `median ${f(percentile(samples, 0.5))} ms, p95 ${f(percentile(samples, 0.95))} ms, `
    + `p99 ${f(percentile(samples, 0.99))} ms, min ${f(samples[0])} ms, max ${f(samples[samples.length - 1])} ms`);
}

/** A server with basic auth: the browser's own credentials reach every endpoint. */
async function checkAuth(authUrl) {
  const u = new URL(authUrl);
  const base = `${u.protocol}//${u.host}`;
  const plain = await fetch(`${base}/debug/`);
  assert(plain.status === 401, `/debug/ without credentials answered ${plain.status}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitals-chromium-'));
  const context = await chromium.launchPersistentContext(dataDir, {
    executablePath: CHROMIUM, headless: true, args: ARGS,
    httpCredentials: { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
  });
  try {
    const page = await context.newPage();
    const w = watch(page, 'basic-auth page');
    await page.goto(`${base}/debug/?live=1`);
    await loaded(page);
    await page.waitForFunction(() => document.querySelector('#status').dataset.mode === 'live', null, { timeout: 5000 });
    const ms = await liveSample(page, base, 7);
    assert(ms < 1000, `live update behind basic auth took ${ms} ms`);
    assert(await page.$eval('#error-banner', (e) => e.hidden), 'no banner behind basic auth');
    assertNoErrors(w);
    ok('behind basic auth the page, its JSON and live mode work with the browser\'s credentials');
  } finally {
    await context.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Endpoints nested under a prefix: the page's relative URLs follow it. */
async function checkPrefixed(context, prefixed) {
  const root = new URL(prefixed).origin;
  const page = await context.newPage();
  const w = watch(page, 'prefixed page');
  const seen = new Set();
  page.on('request', (r) => seen.add(new URL(r.url()).pathname));
  await page.goto(`${prefixed}/debug?live=1`);
  assert(new URL(page.url()).pathname === '/ops/debug/', `redirected to ${page.url()}`);
  await loaded(page);
  await page.waitForFunction(() => document.querySelector('#status').dataset.mode === 'live', null, { timeout: 5000 });
  const ms = await liveSample(page, root, 3);
  assert(ms < 1000, `live update under a prefix took ${ms} ms`);
  for (const p of ['/ops/debug/metrics', '/ops/debug/history', '/ops/debug/events', '/ops/debug/dashboard.js', '/ops/debug/dashboard.css']) {
    assert(seen.has(p), `the page asked for ${p} (asked: ${[...seen].join(' ')})`);
  }
  assert([...seen].every((p) => p.startsWith('/ops/') || p.startsWith('/users/')), `a request outside the prefix: ${[...seen].join(' ')}`);
  assertNoErrors(w);
  ok('under a path prefix (/ops/debug/) the page, its JSON and live mode follow the prefix');
  await page.close();
}

/**
 * A process with two servers and an outbound client: the Clients panel
 * shows the client's calls as /debug/metrics has them, and the server
 * switch shows one server's figures, then all of them again.
 */
async function checkServersAndClients(context, multi) {
  const page = await context.newPage();
  const w = watch(page, 'servers page');
  await page.goto(`${multi}/debug/?interval_ms=600000`);
  await loaded(page);
  await page.waitForFunction(() => document.querySelector('#updated').textContent !== '–');
  const mine = await getJson(`${multi}/debug/metrics`);
  const backend = mine.clients.find((c) => c.client === 'backend');
  assert(backend && backend.requests === 4 && backend.errors === 1, `backend client in the JSON: ${JSON.stringify(mine.clients)}`);
  const host = backend.hosts[0];
  const row = await page.$eval(`#clients tbody tr[data-client="backend"]`, (tr) => ({
    host: tr.dataset.host,
    cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
  }));
  assert(row.host === host.host && row.cells[1] === host.host, `client row host ${JSON.stringify(row)}`);
  assert(row.cells[2] === '4' && row.cells[3] === '1', `client row counts ${JSON.stringify(row)}`);
  const summary = await page.$eval('#client-summary [data-client="backend"]', (li) => li.textContent);
  assert(/1 connections opened, 3 reused/.test(summary), `client summary: ${summary}`);
  assert(await page.$eval('#clients-empty', (p) => p.hidden), 'no "no client" note with a client');
  ok('the Clients panel shows the client\'s calls per host as /debug/metrics has them');

  assert(!(await page.$eval('#server-switch', (l) => l.hidden)), 'the server switch is shown for two servers');
  const options = await page.$$eval('#server-select option', (os) => os.map((o) => [o.value, o.textContent]));
  assert(JSON.stringify(options) === JSON.stringify([['all', 'All servers'], ['0', 'public'], ['1', 'admin']]),
    `server options ${JSON.stringify(options)}`);
  await Promise.all([page.waitForNavigation(), page.selectOption('#server-select', '1')]);
  assert(new URL(page.url()).searchParams.get('server') === '1', `switched to ${page.url()}`);
  await loaded(page);
  await page.waitForFunction(() => document.querySelector('#updated').textContent !== '–');
  const admin = await getJson(`${multi}/debug/metrics?server=1`);
  const shown = Object.fromEntries((await fieldValues(page)).map((f) => [f.field, f.value]));
  assert(admin.requests.total === 2 && shown['requests.total'] === '2', `admin requests: page ${shown['requests.total']}, JSON ${admin.requests.total}`);
  assert(shown['connections.total'] === String(admin.connections.total), `admin connections: page ${shown['connections.total']}, JSON ${admin.connections.total}`);
  assert(await page.$eval('#server-select', (s) => s.value) === '1', 'the switch shows the chosen server');
  const routes = await page.$$eval('#routes tbody tr', (trs) => trs.map((tr) => tr.dataset.route));
  assert(JSON.stringify(routes) === JSON.stringify(['/users/{id}']), `admin routes ${JSON.stringify(routes)}`);
  await Promise.all([page.waitForNavigation(), page.selectOption('#server-select', 'all')]);
  assert(!new URL(page.url()).searchParams.has('server'), `back to all servers: ${page.url()}`);
  await loaded(page);
  await page.waitForFunction(() => document.querySelector('#updated').textContent !== '–');
  const all = Object.fromEntries((await fieldValues(page)).map((f) => [f.field, f.value]));
  assert(Number(all['requests.total']) > 2, `all servers: ${all['requests.total']} requests`);
  assertNoErrors(w);
  ok('the server switch shows one server\'s figures, then all servers summed');
  await page.close();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitals-chromium-'));
  const context = await chromium.launchPersistentContext(dataDir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, colorScheme: 'light',
  });
  try {
    if (args.bench > 0) {
      await bench(context, args.base, args.bench, args.mode);
      return;
    }
    const endpoints = (await (await fetch(`${args.base}/debug/`)).text())
      .match(/name="vitals-endpoints" content="([^"]*)"/)[1].split(' ');
    await traffic(context, args.base);
    await checkPanels(context, args.base);
    const polling = await checkUpdatesAndSort(context, args.base, args.shots);
    await checkFilterAndEscaping(context, args.base);
    await checkDark(context, args.base, args.shots);
    const live = await checkLive(context, args.base, endpoints.includes('events'));
    if (args.old) await checkOldServer(context, args.old);
    if (args.prefixed) await checkPrefixed(context, args.prefixed);
    if (args.multi) await checkServersAndClients(context, args.multi);
    await checkBanner([polling, live], args.base);
    if (endpoints.includes('events')) await checkLiveAfterRestart(live, args.base);
    if (args.auth) await checkAuth(args.auth);
    console.log('all dashboard checks passed');
  } finally {
    await context.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const deadline = setTimeout(() => {
  console.error('drive.js: gave up after 150 s');
  process.exit(2);
}, 150000);
main().then(() => { clearTimeout(deadline); process.exit(0); }, (e) => {
  console.error(`not ok - ${e.message}`);
  process.exit(1);
});
