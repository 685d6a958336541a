// The frame of the collector's web UI: sign-in, the nav (from the page
// registry in views/index.js), the router (the URL's fragment, router.js),
// live updates (live.js), the staleness indicator and the theme. Each page
// is an ES module under views/ whose default export is a preact component
// taking {place, version, theme, now}: `version` grows on every live update,
// so a page reloads its data by listing it in its effects' dependencies.
import { html, render, useState, useEffect, useRef } from './html.js';
import { PAGES } from './views/index.js';
import { current, onPlace, href } from './router.js';
import { get, getKey, setKey, clearKey, freshness, onFreshness } from './api.js';
import { follow, POLL_MS } from './live.js';
import { ago, time } from './format.js';

const THEME_KEY = 'vitals.collector.theme';
const KEY_FORMAT = /^vk_[0-9a-f]{64}$/;
/** Data older than this (with no stream keeping it fresh) is marked stale. */
const STALE_MS = 35000;

function initialTheme() {
  let saved = null;
  try { saved = localStorage.getItem(THEME_KEY); } catch { saved = null; }
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function SignIn({ note, onSignedIn }) {
  const [message, setMessage] = useState(note || '');
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => { if (input.current) input.current.focus(); }, []);
  const submit = async (e) => {
    e.preventDefault();
    const key = input.current.value.trim();
    if (!KEY_FORMAT.test(key)) {
      setMessage('That is not a key: a key is vk_ followed by 64 hexadecimal digits, '
        + 'as printed by `vitals collector keys create --tenant T --role read`.');
      return;
    }
    setBusy(true);
    try {
      await get('v1/services?window=15m', { key });
      setKey(key);
      onSignedIn(key);
    } catch (error) {
      setMessage(error.isAuth
        ? `The collector refused this key: ${error.message}. Use a read key of your tenant.`
        : `Could not check the key: ${error.message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <form id="signin" onSubmit=${submit} autocomplete="off">
      <h1>Vitals collector</h1>
      <p>Sign in with a <strong>read</strong> key. It is kept in this browser tab only (sessionStorage) and sent in the Authorization header; it is never put in the page's URL.</p>
      <label for="key">Read key</label>
      <input id="key" name="key" type="password" ref=${input} placeholder="vk_…" spellcheck="false" autocomplete="off" />
      <button type="submit" disabled=${busy}>${busy ? 'Checking…' : 'Sign in'}</button>
      ${message ? html`<p id="signin-error" class="problem" role="alert">${message}</p>` : null}
    </form>
  </main>`;
}

function Status({ mode, lastBatchMs, lastAliveMs, now }) {
  const lastGood = Math.max(freshness.lastOkMs, mode === 'live' ? lastAliveMs : 0);
  const failing = freshness.lastErrorMs > freshness.lastOkMs;
  const stale = failing || (lastGood > 0 && now - lastGood > STALE_MS);
  const label = { live: 'Live', polling: `Polling every ${POLL_MS / 1000} s`, connecting: 'Connecting…' }[mode] || mode;
  const title = [
    mode === 'live' ? 'Following v1/live: the page updates as batches arrive.' : '',
    mode === 'polling' ? 'The live stream is not available: the page reloads its data every 5 s.' : '',
    lastBatchMs ? `Last batch committed at ${time(lastBatchMs)}.` : '',
    freshness.lastOkMs ? `Data loaded at ${time(freshness.lastOkMs)}.` : '',
    failing ? `Last call failed: ${freshness.lastError}.` : '',
  ].filter(Boolean).join(' ');
  return html`<div id="status" class=${`status ${mode}${stale ? ' stale' : ''}`} data-mode=${mode} data-stale=${stale ? '1' : '0'} title=${title}>
    <span class="dot"></span>
    <span>${label}</span>
    ${stale ? html`<strong class="stale-note">Stale: data from ${ago(lastGood, now)}</strong>`
      : html`<span class="muted">${freshness.lastOkMs ? `updated ${ago(freshness.lastOkMs, now)}` : ''}</span>`}
  </div>`;
}

function Page({ place, version, theme, now }) {
  const entry = PAGES.find((p) => p.id === place.page);
  const [loaded, setLoaded] = useState({});
  useEffect(() => {
    if (!entry || loaded[entry.id]) return;
    import(new URL(entry.module, new URL('./views/index.js', import.meta.url)).href).then(
      (m) => setLoaded((l) => ({ ...l, [entry.id]: m.default })),
      (e) => setLoaded((l) => ({ ...l, [entry.id]: () => html`<p class="problem">Could not load this page: ${e.message}</p>` })),
    );
  }, [entry && entry.id]);
  if (!entry) {
    return html`<p class="problem">No page called “${place.page}”. <a href=${href('services')}>Services</a></p>`;
  }
  const View = loaded[entry.id];
  return View ? html`<${View} place=${place} version=${version} theme=${theme} now=${now} />`
    : html`<p class="muted">Loading…</p>`;
}

function App() {
  const [key, setKeyState] = useState(getKey());
  const [note, setNote] = useState('');
  const [place, setPlace] = useState(current());
  const [version, setVersion] = useState(0);
  const [mode, setMode] = useState('connecting');
  const [lastBatchMs, setLastBatchMs] = useState(0);
  const [lastAliveMs, setLastAliveMs] = useState(0);
  const [theme, setTheme] = useState(initialTheme());
  const [now, setNow] = useState(Date.now());
  const pending = useRef(null);

  useEffect(() => onPlace(setPlace), []);
  // Set while rendering, not in an effect: the pages' charts read the
  // theme's colours in their own effects, which run before this one's.
  document.documentElement.dataset.theme = theme;
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => onFreshness((event) => {
    if (event.kind === 'auth') {
      clearKey();
      setKeyState(null);
      setNote(`The collector refused the key: ${event.error.message}. Sign in again.`);
    }
  }), []);
  useEffect(() => {
    if (!key) return undefined;
    // Batches arrive in bursts: one reload per burst, at most every 250 ms.
    const refresh = () => {
      if (pending.current) return;
      pending.current = setTimeout(() => { pending.current = null; setVersion((v) => v + 1); }, 100);
    };
    return follow({
      onChange: setMode,
      onAlive: () => setLastAliveMs(Date.now()),
      onUpdate: (event) => {
        if (event && Number.isFinite(event.at_ms)) setLastBatchMs(event.at_ms);
        refresh();
      },
    });
  }, [key]);

  if (!key) {
    return html`<${SignIn} note=${note} onSignedIn=${(k) => { setNote(''); setKeyState(k); }} />`;
  }
  const signOut = () => { clearKey(); setNote('Signed out.'); setKeyState(null); };
  const toggleTheme = () => {
    const next = theme === 'dark' ? 'light' : 'dark';
    try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode */ }
    setTheme(next);
  };
  const windowParam = place.params.get('window');
  return html`<div class="frame">
    <header class="top">
      <a class="brand" href=${href('services', null, windowParam ? { window: windowParam } : {})}>Vitals collector</a>
      <nav>${PAGES.filter((p) => p.nav !== false).map((p) => html`<a href=${href(p.id, null, windowParam ? { window: windowParam } : {})}
          data-page=${p.id} class=${p.id === place.page ? 'on' : ''}>${p.title}</a>`)}</nav>
      <${Status} mode=${mode} lastBatchMs=${lastBatchMs} lastAliveMs=${lastAliveMs} now=${now} />
      <button type="button" id="theme" onClick=${toggleTheme} title="Light or dark">${theme === 'dark' ? '☀ Light' : '☾ Dark'}</button>
      <button type="button" id="signout" onClick=${signOut}>Sign out</button>
    </header>
    <main id="page" data-page=${place.page}>
      <${Page} place=${place} version=${version} theme=${theme} now=${now} />
    </main>
  </div>`;
}

const root = document.getElementById('app');
root.replaceChildren();
render(html`<${App} />`, root);
