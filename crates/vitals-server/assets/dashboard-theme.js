// Vitals dashboard: the colour theme. `auto` follows the system; the
// button cycles auto, light, dark, kept in localStorage; `?theme=` wins.
import { params } from './dashboard-state.js';

const $ = (sel) => document.querySelector(sel);

const THEMES = ['auto', 'light', 'dark'];
function storedTheme() {
  const p = params.get('theme');
  if (THEMES.includes(p)) return p;
  try {
    const t = localStorage.getItem('vitals-theme');
    return THEMES.includes(t) ? t : 'auto';
  } catch (_) {
    return 'auto';
  }
}
function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $('#theme-toggle').textContent = `Theme: ${theme}`;
  $('#theme-toggle').dataset.theme = theme;
}
function cycleTheme() {
  const now = $('#theme-toggle').dataset.theme || 'auto';
  const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
  try { localStorage.setItem('vitals-theme', next); } catch (_) { /* private mode: not kept */ }
  applyTheme(next);
}

/** Applies the stored theme and makes the button cycle it. */
export function startTheme() {
  applyTheme(storedTheme());
  $('#theme-toggle').addEventListener('click', cycleTheme);
}
