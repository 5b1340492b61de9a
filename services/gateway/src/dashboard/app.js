// The live dashboard: the pipeline's state from GET /api/v1/status (every 2 s), the latest
// closed minute's top products from GET /api/v1/analytics/top (again whenever the live stream
// says a window fired), a product's last hour from its windows, and the connection state of
// the live stream, which reconnects by itself. Plain DOM and SVG; no dependencies.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'ecom-token';
const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  selected: null,
  names: new Map(), // product id -> [name or null, when asked]
  topTimer: null,
  topSignature: null,
  windowStart: null,
};

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (response.status === 401 || response.status === 403) {
    throw new Unauthorized(String(response.status));
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function number(n, digits = 0) {
  return n == null ? '–' : Number(n).toLocaleString('en', { maximumFractionDigits: digits });
}

// Signing in: only when a route asks for a token.
function askToSignIn(message) {
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
}

$('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = new URLSearchParams({
    grant_type: 'password',
    username: $('username').value,
    password: $('password').value,
  });
  const response = await fetch('/api/v1/auth/token', { method: 'POST', body });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    askToSignIn(answer.error ? answer.error.message : `sign-in failed (${response.status})`);
    return;
  }
  state.token = answer.access_token;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $('password').value = '';
  $('sign-in').hidden = true;
  $('sign-out').hidden = false;
  refresh();
});

$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $('sign-out').hidden = true;
  refresh();
});

function failed(error) {
  if (error instanceof Unauthorized) {
    askToSignIn(error.message === '403' ? 'This account may not read analytics.' : '');
  }
}

// The pipeline and the operator's numbers.
async function refreshStatus() {
  let status;
  try {
    status = await api('/api/v1/status');
  } catch (error) {
    failed(error);
    return;
  }
  const list = $('pipeline');
  list.replaceChildren(...status.parts.map((part) => {
    const rate = part.rate == null ? ''
      : part.name === 'store' ? `${number(part.rate, 1)} windows/s` : `${number(part.rate, 1)} events/s`;
    const item = el('li', { 'data-ready': String(part.ready), 'data-part': part.name },
      el('span', { class: 'name' }, part.name),
      el('span', { class: 'rate' }, part.ready == null ? 'not seen from here' : (part.ready ? rate || 'ready' : 'not ready')));
    if (part.detail) item.append(el('span', { class: 'detail' }, part.detail));
    return item;
  }));
  const rows = [];
  const gauge = (title, map, unit) => {
    for (const [partition, g] of Object.entries(map)) {
      const over = g.threshold != null && g.value > g.threshold;
      const dd = el('dd', over ? { class: 'over' } : {},
        `${number(g.value, 1)} ${unit}` + (g.threshold != null ? ` (alert over ${number(g.threshold)})` : ''));
      rows.push(el('dt', {}, `${title}, partition ${partition}`), dd);
    }
  };
  rows.push(el('dt', {}, 'Ingested, last minute'), el('dd', {}, `${number(status.ingest_last_minute)} events`));
  gauge('Watermark lag', status.watermark_lag_seconds, 's');
  gauge('Consumer lag', status.consumer_lag_records, 'records');
  gauge('Checkpoint age', status.checkpoint_age_seconds, 's');
  rows.push(el('dt', {}, 'Late events'), el('dd', {}, number(status.late_events)));
  const reasons = (map) => Object.entries(map).map(([r, n]) => `${r}: ${number(n)}`).join(', ') || 'none';
  rows.push(el('dt', {}, 'Rejected by ingest'), el('dd', {}, reasons(status.ingest_rejected)));
  rows.push(el('dt', {}, 'Rejected by the engine'), el('dd', {}, reasons(status.engine_rejected)));
  $('numbers').replaceChildren(...rows);
}

// Product names from the catalog (the id when it does not know the product). Only ids the
// catalog could have made (32 hex digits) are asked for: activity may name products that were
// never in the catalog, such as the demo's.
const CATALOG_ID = /^[0-9a-f]{32}$/;

async function names(ids) {
  const now = Date.now();
  await Promise.all(ids.filter((id) => CATALOG_ID.test(id)).map(async (id) => {
    const known = state.names.get(id);
    if (known && (known[0] !== null || now - known[1] < 60000)) return;
    let name = null;
    try {
      const response = await fetch(`/api/v1/products/${encodeURIComponent(id)}`);
      if (response.ok) name = (await response.json()).name || null;
    } catch (_) { /* the id stands in */ }
    state.names.set(id, [name, now]);
  }));
}

function nameOf(id) {
  const known = state.names.get(id);
  return known && known[0] ? known[0] : id;
}

// The latest closed minute.
async function refreshTop() {
  let top;
  try {
    top = await api('/api/v1/analytics/top?limit=10');
  } catch (error) {
    failed(error);
    return;
  }
  // Unchanged: leave the bars (and the keyboard's focus) alone.
  const signature = JSON.stringify(top);
  if (signature === state.topSignature) return;
  state.topSignature = signature;
  const empty = !top.window_start || top.products.length === 0;
  $('empty').hidden = !empty;
  $('window').textContent = empty ? '' : `${top.window_start.slice(11, 16)}–${top.window_end.slice(11, 16)} UTC`;
  state.windowStart = top.window_start;
  await names(top.products.map((p) => p.product_id));
  const max = Math.max(1, ...top.products.map((p) => p.unique_user_count));
  const list = $('top');
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.product : null;
  list.replaceChildren(...top.products.map((p) => {
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${(100 * p.unique_user_count) / max}%`;
    const item = el('li', {
      tabindex: '0',
      role: 'button',
      'data-product': p.product_id,
      'data-users': String(p.unique_user_count),
      'aria-pressed': String(p.product_id === state.selected),
      'aria-label': `${nameOf(p.product_id)}: ${p.unique_user_count} unique users, ${p.event_count} events`,
    },
    el('span', { class: 'label', title: p.product_id }, nameOf(p.product_id)),
    el('span', { class: 'track' }, bar),
    el('span', { class: 'value' }, `${number(p.unique_user_count)} users · ${number(p.event_count)} events`));
    const choose = () => select(p.product_id);
    item.addEventListener('click', choose);
    item.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); choose(); }
    });
    return item;
  }));
  if (focused) {
    const again = [...list.children].find((item) => item.dataset.product === focused);
    if (again) again.focus();
  }
  if (!state.selected && top.products.length > 0) select(top.products[0].product_id);
  else if (state.selected) refreshChart();
}

function select(id) {
  state.selected = id;
  for (const item of $('top').children) {
    item.setAttribute('aria-pressed', String(item.dataset.product === id));
  }
  refreshChart();
}

// A product's last hour, as two lines.
async function refreshChart() {
  const id = state.selected;
  if (!id) return;
  let answer;
  try {
    answer = await api(`/api/v1/analytics/products/${encodeURIComponent(id)}/windows?limit=60`);
  } catch (error) {
    failed(error);
    return;
  }
  if (id !== state.selected) return;
  await names([id]);
  $('chosen').textContent = nameOf(id);
  const windows = answer.windows.slice().reverse();
  const width = 640;
  const height = 220;
  const pad = { left: 40, right: 10, top: 10, bottom: 24 };
  const chart = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Unique users and events per minute of ${nameOf(id)}, last ${windows.length} windows`,
    'data-windows': windows.length,
  });
  const max = Math.max(1, ...windows.map((w) => Math.max(w.unique_user_count, w.event_count)));
  const x = (i) => pad.left + (windows.length < 2 ? 0 : (i * (width - pad.left - pad.right)) / (windows.length - 1));
  const y = (v) => height - pad.bottom - (v * (height - pad.top - pad.bottom)) / max;
  chart.append(svg('line', { class: 'axis', x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0) }));
  chart.append(svg('line', { class: 'axis', x1: pad.left, y1: pad.top, x2: pad.left, y2: y(0) }));
  const label = (text, attrs) => { const t = svg('text', attrs); t.textContent = text; chart.append(t); };
  label(number(max), { x: 4, y: pad.top + 10 });
  label('0', { x: 4, y: y(0) });
  if (windows.length > 0) {
    label(windows[0].window_start.slice(11, 16), { x: pad.left, y: height - 6 });
    label(windows[windows.length - 1].window_start.slice(11, 16), { x: width - pad.right - 34, y: height - 6 });
  }
  for (const [field, cls] of [['event_count', 'events'], ['unique_user_count', 'users']]) {
    const points = windows.map((w, i) => `${x(i).toFixed(1)},${y(w[field]).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { class: cls, points, 'data-values': windows.map((w) => w[field]).join(',') }));
    windows.forEach((w, i) => {
      const dot = svg('circle', { class: cls, cx: x(i).toFixed(1), cy: y(w[field]).toFixed(1), r: 3 });
      const title = svg('title');
      title.textContent = `${w.window_start.slice(11, 16)}: ${w[field]} ${cls}`;
      dot.append(title);
      chart.append(dot);
    });
  }
  $('chart').replaceChildren(chart);
}

// The live stream of results: read with fetch (a token can go with it), reconnected by itself.
function connected(live) {
  const pill = $('connection');
  pill.dataset.state = live ? 'live' : 'disconnected';
  pill.textContent = live ? 'live' : 'disconnected';
  $('disconnected').hidden = live;
}

async function stream() {
  for (;;) {
    try {
      const response = await fetch('/api/v1/analytics/stream', { headers: headers(), cache: 'no-store' });
      if (response.status === 401 || response.status === 403) {
        failed(new Unauthorized(String(response.status)));
        throw new Error('not signed in');
      }
      if (!response.ok || !response.body) throw new Error(`stream: ${response.status}`);
      connected(true);
      refresh();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: ?window$/m.test(message)) topSoon();
        }
      }
    } catch (_) {
      // Falls through to the disconnected state and a new attempt.
    }
    connected(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function topSoon() {
  if (state.topTimer) return;
  state.topTimer = setTimeout(() => {
    state.topTimer = null;
    refreshTop();
  }, 500);
}

function refresh() {
  refreshStatus();
  refreshTop();
}

// The empty state's example, for this address.
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
$('curl').textContent = `curl -H 'content-type: application/json' ${location.origin}/api/v1/events \\\n  -d '{"user_id":"u1","product_id":"42","event_type":"VIEW_PRODUCT","timestamp":"${now()}"}'`;
$('copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('curl').textContent));
$('sign-out').hidden = !state.token;

refresh();
setInterval(refreshStatus, 2000);
setInterval(refreshTop, 10000);
stream();
