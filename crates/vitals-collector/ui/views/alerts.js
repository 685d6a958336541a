// The alerts page: the tenant's rules with their state and current value,
// firing first (as GET /v1/alert-rules orders them); how each receiver
// fares (deliveries, failures, the last error); the history of state
// changes (GET /v1/alerts); and a form that adds or replaces a rule
// (POST / PUT /v1/alert-rules, which need an admin key: the signed-in key
// if it is one, or one typed into the form, kept for this tab only).
import { html, useState } from '../html.js';
import { get, getKey, authHeaders, ApiError } from '../api.js';
import { useData, Problem, Section } from '../widgets.js';
import * as f from '../format.js';

const ADMIN_KEY = 'vitals.collector.adminKey';

function adminKey() {
  try { return sessionStorage.getItem(ADMIN_KEY) || ''; } catch { return ''; }
}

/** POST or PUT a rule with `key`; its JSON, or an ApiError. */
async function send(method, path, body, key) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { ...authHeaders(key), 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The collector did not answer (${e.message}).`);
  }
  let answer = null;
  try { answer = JSON.parse(await response.text()); } catch { answer = null; }
  if (!response.ok) {
    throw new ApiError(response.status,
      (answer && answer.reason) || String(response.status),
      (answer && answer.error) || `${response.status} ${response.statusText}`);
  }
  return answer;
}

/** A signal's value as the page shows it. */
function value(rule) {
  const v = rule.value;
  if (v === null || v === undefined) return '–';
  switch (rule.signal) {
    case 'error_rate': return f.pct(v);
    case 'p95_ms': case 'p99_ms': return f.ms(v);
    case 'rate': return f.rate(v);
    case 'apdex': return f.apdex(v);
    case 'health': return ['healthy', 'degraded', 'down'][v] || String(v);
    default: return String(Math.round(v * 10000) / 10000);
  }
}

function scope(rule) {
  return [rule.service, rule.method, rule.route].filter(Boolean).join(' ');
}

function condition(rule) {
  if (rule.signal === 'no_data') return `no request in ${rule.window}`;
  return `${rule.signal} ${rule.op} ${rule.threshold} over ${rule.window}`;
}

const EMPTY = {
  name: '', service: '', route: '', method: '', signal: 'error_rate', op: '>', threshold: '0.05',
  window: '5m', for: '1m', keep_firing_for: '0s', severity: '', summary: '',
};

/** The form's fields as a rule spec. */
function specOf(form) {
  const spec = {
    name: form.name.trim(),
    service: form.service.trim(),
    signal: form.signal,
    window: form.window.trim() || '5m',
    for: form.for.trim() || '0s',
    keep_firing_for: form.keep_firing_for.trim() || '0s',
    labels: {},
    annotations: {},
  };
  if (form.route.trim()) spec.route = form.route.trim();
  if (form.method.trim()) spec.method = form.method.trim().toUpperCase();
  if (form.signal !== 'no_data') {
    spec.op = form.op;
    spec.threshold = Number(form.threshold);
  }
  if (form.severity.trim()) spec.labels.severity = form.severity.trim();
  if (form.summary.trim()) spec.annotations.summary = form.summary.trim();
  return spec;
}

function RuleForm({ editing, onSaved, onCancel }) {
  const [form, setForm] = useState(editing || EMPTY);
  const [key, setKey] = useState(adminKey());
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const field = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    const useKey = key.trim() || getKey();
    try {
      const spec = specOf(form);
      if (editing) {
        await send('PUT', `v1/alert-rules/${encodeURIComponent(editing.name)}`, spec, useKey);
      } else {
        await send('POST', 'v1/alert-rules', spec, useKey);
      }
      if (key.trim()) sessionStorage.setItem(ADMIN_KEY, key.trim());
      onSaved(spec.name);
    } catch (err) {
      setProblem(err);
    } finally {
      setBusy(false);
    }
  };
  const input = (name, label, attrs = {}) => html`<div class="field"><label>${label}${' '}
    <input name=${name} value=${form[name]} onInput=${field(name)} ...${attrs} /></label></div>`;
  return html`<form class="rule-form" id="rule-form" onSubmit=${submit}>
    <div class="fields">
      ${input('name', 'Name', { required: true, disabled: !!editing, placeholder: 'checkout_errors' })}
      ${input('service', 'Service', { required: true, placeholder: 'checkout' })}
      ${input('route', 'Route (optional)', { placeholder: '/pay' })}
      ${input('method', 'Method (optional)', { placeholder: 'POST' })}
      <div class="field"><label>Signal${' '}
        <select name="signal" value=${form.signal} onChange=${field('signal')}>
          ${['error_rate', 'p95_ms', 'p99_ms', 'rate', 'apdex', 'no_data', 'health'].map(
            (s) => html`<option value=${s}>${s}</option>`)}
        </select></label></div>
      <div class="field"><label>Op${' '}
        <select name="op" value=${form.op} onChange=${field('op')} disabled=${form.signal === 'no_data'}>
          ${['>', '>=', '<', '<='].map((o) => html`<option value=${o}>${o}</option>`)}
        </select></label></div>
      ${input('threshold', 'Threshold', { type: 'number', step: 'any', disabled: form.signal === 'no_data' })}
      ${input('window', 'Window')}
      ${input('for', 'For')}
      ${input('keep_firing_for', 'Keep firing for')}
      ${input('severity', 'Label severity (optional)')}
      ${input('summary', 'Summary (optional; {{ $value }} is the value)')}
      <div class="field"><label>Admin key (if the signed-in key is not one)${' '}
        <input name="admin_key" type="password" autocomplete="off" value=${key}
          onInput=${(e) => setKey(e.target.value)} /></label></div>
    </div>
    <${Problem} error=${problem} />
    <button type="submit" disabled=${busy}>${editing ? 'Save rule' : 'Add rule'}</button>
    ${editing ? html` <button type="button" onClick=${onCancel}>Cancel</button>` : null}
  </form>`;
}

function editable(rule) {
  return {
    ...EMPTY,
    name: rule.name,
    service: rule.service,
    route: rule.route || '',
    method: rule.method || '',
    signal: rule.signal,
    op: rule.op || '>',
    threshold: String(rule.threshold ?? ''),
    window: rule.window,
    for: rule.for,
    keep_firing_for: rule.keep_firing_for,
    severity: (rule.labels && rule.labels.severity) || '',
    summary: (rule.annotations && rule.annotations.summary) || '',
  };
}

export default function Alerts({ version, now }) {
  const [saved, setSaved] = useState(0);
  const [editing, setEditing] = useState(null);
  const rules = useData(() => get('v1/alert-rules'), [version, saved]);
  const changes = useData(() => get('v1/alerts?limit=100'), [version, saved]);
  const list = (rules.data && rules.data.rules) || [];
  const receivers = (rules.data && rules.data.receivers) || [];
  const history = (changes.data && changes.data.alerts) || [];
  const done = () => { setEditing(null); setSaved(saved + 1); };
  return html`<div class="page alerts">
    <div class="page-head"><h1>Alerts</h1></div>
    <${Problem} error=${rules.error || changes.error} />
    <${Section} title="Rules" id="rules">
      ${list.length === 0 ? html`<p class="muted">No rule yet.</p>` : html`<table class="data" id="alert-rules">
        <thead><tr><th>State</th><th>Rule</th><th>Scope</th><th>Condition</th><th class="num">Value</th><th>Since</th><th>Source</th><th></th></tr></thead>
        <tbody>${list.map((r) => html`<tr data-rule=${r.name} data-service=${r.service} data-state=${r.state}>
          <td><span class=${`alert-state ${r.state}`}>${r.state}</span></td>
          <td title=${(r.current_annotations && r.current_annotations.summary) || ''}>${r.name}</td>
          <td>${scope(r)}</td>
          <td>${condition(r)}${r.for !== '0s' ? ` for ${r.for}` : ''}</td>
          <td class="num" data-value=${r.value ?? ''}>${value(r)}</td>
          <td>${r.since_ms ? f.ago(r.since_ms, now) : '–'}</td>
          <td>${r.source}</td>
          <td>${r.source === 'api' ? html`<button type="button" class="edit" onClick=${() => setEditing(editable(r))}>Edit</button>` : null}</td>
        </tr>`)}</tbody>
      </table>`}
    <//>
    <${Section} title="Receivers" id="receivers">
      ${receivers.length === 0 ? html`<p class="muted">No receiver is configured ([[alerting.webhook]], [alerting.alertmanager]).</p>`
        : html`<table class="data" id="alert-receivers">
        <thead><tr><th>Receiver</th><th>Kind</th><th class="num">Delivered</th><th class="num">Failed</th><th>Last error</th></tr></thead>
        <tbody>${receivers.map((r) => html`<tr data-receiver=${r.name} data-failed=${r.failed}>
          <td>${r.name}</td><td>${r.kind}</td><td class="num">${f.int(r.delivered)}</td>
          <td class=${r.failed ? 'num problem-text' : 'num'}>${f.int(r.failed)}</td>
          <td>${r.last_error ? `${r.last_error} (${f.ago(r.last_error_ms, now)})` : '–'}</td>
        </tr>`)}</tbody>
      </table>`}
    <//>
    <${Section} title=${editing ? `Edit ${editing.name}` : 'Add a rule'} id="add-rule">
      <${RuleForm} key=${editing ? `edit-${editing.name}` : 'new'} editing=${editing} onSaved=${done} onCancel=${() => setEditing(null)} />
    <//>
    <${Section} title="History" id="history">
      ${history.length === 0 ? html`<p class="muted">No state change yet.</p>` : html`<table class="data" id="alert-history">
        <thead><tr><th>When</th><th>Rule</th><th>Service</th><th>Change</th><th class="num">Value</th></tr></thead>
        <tbody>${history.map((e) => html`<tr data-rule=${e.rule} data-to=${e.to}>
          <td>${f.time(e.at_ms)}</td><td>${e.rule}</td><td>${e.service}</td>
          <td>${e.from} → ${e.to}</td><td class="num">${e.value ?? '–'}</td>
        </tr>`)}</tbody>
      </table>`}
    <//>
  </div>`;
}
