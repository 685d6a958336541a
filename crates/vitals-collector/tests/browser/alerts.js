// Drives the collector UI's alerts page in Debian's headless Chromium.
// Started by tests/alerts_ui.rs with a real collector (evaluating rules
// every second) and its keys; adds a rule in the page's form (refused
// without an admin key, accepted with one), pushes failing requests, and
// checks that the rule fires on the page and shows in its history, as the
// API says. Prints one line per check ("ok - …") and exits non-zero on the
// first failed one.
//
//   node alerts.js --base http://127.0.0.1:PORT --ingest vk_… --read vk_… \
//       --admin vk_… --shots DIR
'use strict';

const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');
const { assert, ok, sleep, client, watch, assertNoErrors } = require('./helpers');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run',
];
const HOSTILE_SERVICE = '<img src=x onerror="window.__pwned=1">';

function parseArgs(argv) {
  const out = { shots: os.tmpdir() };
  for (let i = 0; i < argv.length; i += 2) {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const k of ['base', 'ingest', 'read', 'admin']) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

/** Waits until `probe()` is truthy (polling), or fails saying `what`. */
async function until(what, probe, timeoutMs = 30000) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await probe();
    if (last) return last;
    await sleep(250);
  }
  throw new Error(`check failed: ${what} within ${timeoutMs} ms`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ingest = client(args.base, args.ingest);
  const read = client(args.base, args.read);
  const admin = client(args.base, args.admin);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const w = watch(page, 'alerts page');
    await page.goto(`${args.base}/`);
    await page.waitForSelector('#signin');
    await page.fill('#key', args.read);
    await page.click('#signin button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('#signin'));
    await page.goto(`${args.base}/#/alerts`);
    await page.waitForSelector('#rule-form');
    assert(await page.$('nav a[href*="alerts"]') !== null, 'the nav links the alerts page');
    ok('the alerts page opens from the nav, with its form');

    // A rule on a hostile service name, through the API: shown as text.
    await admin.post('v1/alert-rules', {
      name: 'hostile', service: HOSTILE_SERVICE, signal: 'rate', op: '<', threshold: 1,
    });

    // The form: refused with the signed-in read key, accepted with an admin key.
    await page.fill('#rule-form input[name=name]', 'checkout_errors');
    await page.fill('#rule-form input[name=service]', 'checkout');
    await page.selectOption('#rule-form select[name=signal]', 'error_rate');
    await page.selectOption('#rule-form select[name=op]', '>');
    await page.fill('#rule-form input[name=threshold]', '0.1');
    await page.fill('#rule-form input[name=window]', '5m');
    await page.fill('#rule-form input[name=for]', '0s');
    await page.fill('#rule-form input[name=severity]', 'page');
    await page.fill('#rule-form input[name=summary]', 'error rate {{ $value }}');
    await page.click('#rule-form button[type=submit]');
    await page.waitForSelector('#rule-form .problem');
    const refused = await page.textContent('#rule-form .problem');
    assert(refused.includes('admin'), `a read key is refused, naming the role: ${refused}`);
    ok('the form says a read key cannot write rules');
    await page.fill('#rule-form input[name=admin_key]', args.admin);
    await page.click('#rule-form button[type=submit]');
    await page.waitForSelector('#alert-rules tr[data-rule="checkout_errors"]');
    const listed = await read.get('v1/alert-rules');
    const rule = listed.rules.find((r) => r.name === 'checkout_errors');
    assert(rule && rule.source === 'api' && rule.threshold === 0.1 && rule.labels.severity === 'page',
      `the API has the rule as the form wrote it: ${JSON.stringify(rule)}`);
    assert(await page.evaluate(() => sessionStorage.getItem('vitals.collector.adminKey')) === args.admin,
      'the admin key is kept for this tab');
    assert(await page.evaluate(() => localStorage.length) === 0, 'nothing in localStorage');
    ok('a rule added in the form is stored, as the API lists it');

    // Bad traffic: 50 % errors.
    const now = Date.now();
    const requests = [];
    for (let i = 0; i < 20; i += 1) {
      requests.push({ method: 'POST', route: '/pay', path: '/pay', status: i % 2 ? 503 : 200, duration_ms: 10, timestamp_ms: now - 1000 });
    }
    await ingest.post('v1/requests', { service: 'checkout', instance: 'c-1', requests });
    await until('the rule fires on the page', async () => {
      await page.reload();
      await page.waitForSelector('#alert-rules');
      return page.$('#alert-rules tr[data-rule="checkout_errors"][data-state="firing"]');
    });
    const firing = (await read.get('v1/alert-rules')).rules[0];
    assert(firing.name === 'checkout_errors' && firing.state === 'firing', `firing first in the API: ${JSON.stringify(firing)}`);
    const first = await page.$eval('#alert-rules tbody tr', (tr) => tr.dataset.rule);
    assert(first === 'checkout_errors', `firing first on the page, got ${first}`);
    const shown = await page.$eval('#alert-rules tr[data-rule="checkout_errors"] td[data-value]', (td) => td.dataset.value);
    assert(Number(shown) === firing.value, `the page's value ${shown} is the API's ${firing.value}`);
    ok('after bad traffic the rule fires, first in the list, with the API\'s value');
    await page.waitForSelector('#alert-history tr[data-rule="checkout_errors"][data-to="firing"]');
    const history = await read.get('v1/alerts?state=firing');
    assert(history.alerts.some((e) => e.rule === 'checkout_errors'), 'the API has the change too');
    ok('the firing shows in the history');

    const hostileRow = await page.$eval('#alert-rules tr[data-rule="hostile"]', (tr) => tr.textContent);
    assert(hostileRow.includes(HOSTILE_SERVICE), 'a hostile service name is shown as text');
    assert(await page.evaluate(() => window.__pwned === undefined), 'no markup from a service name ran');
    ok('hostile names stay text');

    await page.screenshot({ path: path.join(args.shots, 'collector-alerts.png'), fullPage: true });
    // The refused write is a 403 the browser logs; nothing else may be.
    assertNoErrors(w, (e) => e.text.includes('403'));
    ok('no console errors');
    console.log('all alerts UI checks passed');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.log(`not ok - ${e.message}`);
  process.exit(1);
});
