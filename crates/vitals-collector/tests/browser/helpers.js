// Tools of the collector UI's browser driver (drive.js): failing a check
// and reporting one, the collector's API from node (pushing batches with an
// ingest key, reading with a read key), watching a page for console errors,
// and reading tables off the page.
'use strict';

function assert(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}
function ok(name) { console.log(`ok - ${name}`); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The collector's API with one key. */
function client(base, key) {
  const headers = { Authorization: `Bearer ${key}` };
  return {
    async get(path) {
      const r = await fetch(`${base}/${path}`, { headers });
      const body = await r.json();
      assert(r.ok, `GET ${path} answered ${r.status}: ${JSON.stringify(body)}`);
      return body;
    },
    async post(path, body) {
      const r = await fetch(`${base}/${path}`, {
        method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      const answer = await r.json();
      assert(r.ok, `POST ${path} answered ${r.status}: ${JSON.stringify(answer)}`);
      return answer;
    },
  };
}

/** Records console errors and page errors of a page. */
function watch(page, label) {
  const w = { label, errors: [] };
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

/** The rows of a DataTable: for each, its attributes and {col: {value, text}}. */
async function tableRows(page, id) {
  return page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => {
    const cells = {};
    for (const td of tr.querySelectorAll('td[data-col]')) {
      cells[td.dataset.col] = { value: td.dataset.value, text: td.textContent.trim() };
    }
    return { attrs: { ...tr.dataset }, cells };
  }));
}

/** The number shown for a value: the page's raw value equals the API's. */
function sameNumber(shown, expected, what, rel = 0) {
  if (expected === null || expected === undefined) {
    assert(shown.value === '', `${what}: page holds ${shown.value} for a missing value`);
    assert(shown.text === '–', `${what}: shows ${shown.text} for a missing value`);
    return;
  }
  const got = Number(shown.value);
  const close = rel === 0 ? got === Number(expected) : Math.abs(got - expected) <= rel * Math.abs(expected);
  assert(close, `${what}: page holds ${shown.value}, API said ${expected}`);
  assert(shown.text !== '' && shown.text !== '–', `${what}: shows nothing for ${expected}`);
}

/** A 32-hex-digit trace id from a seed. */
function traceId(seed) {
  return (seed.toString(16).padStart(8, '0').repeat(4)).slice(0, 32);
}

module.exports = { assert, ok, sleep, client, watch, assertNoErrors, tableRows, sameNumber, traceId };
