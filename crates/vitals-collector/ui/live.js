// Live updates: `GET v1/live` (Server-Sent Events) read with fetch() and a
// ReadableStream, so the key travels in the Authorization header, not in
// the URL as EventSource would need. Each `batch` event (a batch of this
// tenant was committed) asks the page to refresh; `lagged` too (some were
// missed). If the stream cannot be opened or breaks, the page polls every
// 5 s instead and tries the stream again every 30 s.

import { authHeaders, getKey } from './api.js';

export const POLL_MS = 5000;
const RETRY_MS = 30000;

/**
 * Starts following the collector. `onChange(mode)` gets 'connecting',
 * 'live' or 'polling'; `onUpdate(event)` is called for every batch (event
 * = {service, at_ms}) and every poll (event = null); `onAlive()` whenever
 * the stream shows it is still open (any bytes, keepalives too). Returns stop().
 */
export function follow({ onChange, onUpdate, onAlive = () => {} }) {
  let stopped = false;
  let controller = null;
  let pollTimer = null;
  let retryTimer = null;

  const poll = () => {
    if (pollTimer || stopped) return;
    onChange('polling');
    pollTimer = setInterval(() => onUpdate(null), POLL_MS);
    retryTimer = setTimeout(() => { stopPolling(); connect(); }, RETRY_MS);
  };
  const stopPolling = () => {
    clearInterval(pollTimer); pollTimer = null;
    clearTimeout(retryTimer); retryTimer = null;
  };

  async function connect() {
    if (stopped) return;
    onChange('connecting');
    controller = new AbortController();
    try {
      const response = await fetch('v1/live', {
        headers: { ...authHeaders(getKey()), Accept: 'text/event-stream' },
        signal: controller.signal,
        cache: 'no-store',
      });
      const type = response.headers.get('content-type') || '';
      if (!response.ok || !response.body || !type.startsWith('text/event-stream')) {
        await response.body?.cancel();
        throw new Error(`v1/live answered ${response.status}`);
      }
      onChange('live');
      onAlive();
      // Whatever happened while the stream was down: refresh once.
      onUpdate(null);
      await read(response.body, onAlive, (event, data) => {
        if (event === 'batch') {
          let parsed = null;
          try { parsed = JSON.parse(data); } catch { parsed = null; }
          onUpdate(parsed);
        } else if (event === 'lagged') {
          onUpdate(null);
        }
      });
      throw new Error('v1/live ended');
    } catch (e) {
      if (stopped) return;
      poll();
    }
  }

  connect();
  return () => {
    stopped = true;
    stopPolling();
    if (controller) controller.abort();
  };
}

/** Reads an SSE body, calling onEvent(name, data) for each event. */
async function read(body, onAlive, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onAlive();
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(buffer[nl] === '\r' ? nl + 2 : nl + 1);
      if (line === '') {
        if (data.length) onEvent(event, data.join('\n'));
        event = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // a keepalive comment
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
}
