// The Knactor web console (docs/observability.md#web-console): the composition graph with its
// rates, lags and errors, a store's objects as they change, and an object's provenance.
// Everything comes from the API, read with the token the user signs in with; whatever the
// data holds is shown as text, never parsed as markup.

const POLL_MS = 2000;
const TOKEN_KEY = 'knactor-token';
const MAX_ERRORS = 30;
const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The server refused the token. */
class Unauthorized extends Error {}

/** The server refused a request, with its status and message. */
class Refused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The API, read with the signed-in token. */
const api = {
  token: sessionStorage.getItem(TOKEN_KEY),
  async fetch(path, init = {}) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const response = await fetch(path, { ...init, headers });
    if (response.status === 401) throw new Unauthorized('the server refused the token');
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Refused(response.status, body.error || `${response.status} ${response.statusText}`);
    }
    return response;
  },
  async json(path) {
    return (await this.fetch(path)).json();
  },
  async text(path) {
    return (await this.fetch(path)).text();
  },
};

/** A store's path in the API (`knactor/store`, each part encoded). */
const storePath = (store) => store.split('/').map(encodeURIComponent).join('/');

const SVG = 'http://www.w3.org/2000/svg';
const SVG_TAGS = new Set(['svg', 'g', 'rect', 'text', 'path', 'title']);

/** An element with attributes (`onX`: a listener) and children (strings become text). */
function el(tag, attributes = {}, ...children) {
  const node = SVG_TAGS.has(tag) ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** `value` as short JSON, for a cell or a line. */
function short(value, length = 120) {
  const text = JSON.stringify(value) ?? 'null';
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** An object's data in a line: its plain fields first, then what nests (`{…}`, `[n]`). */
function outline(data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return short(data);
  const nested = (v) => v !== null && typeof v === 'object';
  const fields = Object.entries(data).sort(([, a], [, b]) => nested(a) - nested(b));
  const shown = fields.map(([key, value]) => {
    if (Array.isArray(value)) return `${key}: [${value.length}]`;
    return `${key}: ${nested(value) ? '{…}' : short(value, 40)}`;
  });
  return shown.join(', ');
}

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Metrics: the Prometheus text of /metrics, and what changed since the last poll.

/** The samples of a Prometheus text exposition: `[{name, labels, value}]`. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sums the samples named `name` by the key `key(labels)` gives (none: left out). */
function sumBy(samples, name, key) {
  const sums = new Map();
  for (const sample of samples) {
    if (sample.name !== name) continue;
    const k = key(sample.labels);
    if (k !== null) sums.set(k, (sums.get(k) ?? 0) + sample.value);
  }
  return sums;
}

/** What the console shows of one scrape. */
function summarize(samples) {
  const edge = (l) => `${l.spec}/${l.edge}`;
  return {
    at: performance.now(),
    writes: sumBy(samples, 'knactor_cast_edge_evaluations_total', (l) =>
      l.outcome === 'written' ? edge(l) : null),
    errors: sumBy(samples, 'knactor_cast_edge_errors_total', (l) => `${edge(l)}\t${l.kind}`),
    seconds: sumBy(samples, 'knactor_cast_edge_duration_seconds_sum', edge),
    handled: sumBy(samples, 'knactor_cast_edge_duration_seconds_count', edge),
    records: sumBy(samples, 'knactor_sync_flow_records_total', (l) => `${l.spec}/${l.flow}`),
    lag: sumBy(samples, 'knactor_spec_lag_versions', (l) => `${l.spec}\t${l.store}`),
    objects: sumBy(samples, 'knactor_store_objects', (l) => l.store),
    failed: sumBy(samples, 'knactor_reconciles_total', (l) =>
      l.outcome === 'error' ? l.knactor : null),
  };
}

/** Per second, how much `key` of series `series` grew from `before` to `now`. */
function rate(now, before, series, key) {
  if (!before) return 0;
  const grew = (now[series].get(key) ?? 0) - (before[series].get(key) ?? 0);
  return Math.max(0, grew) / Math.max(0.001, (now.at - before.at) / 1000);
}

/** How much each key of `series` grew from `before` to `now`: `[[key, growth]]`, growths only. */
function growth(now, before, series) {
  if (!before) return [];
  const grown = [];
  for (const [key, value] of now[series]) {
    const delta = value - (before[series].get(key) ?? 0);
    if (delta > 0) grown.push([key, delta]);
  }
  return grown;
}

// ---------------------------------------------------------------------------------------------
// The composition graph.

const COLUMN = 250;
const ROW = 56;
const BOX = { width: 200, height: 34 };

/** Each store's column and row: columns follow the links, left to right (a link that closes a
 * cycle is not followed), rows are in name order. */
function layout(stores, links) {
  const next = new Map(stores.map((store) => [store, new Set()]));
  const entering = new Map(stores.map((store) => [store, 0]));
  for (const link of links) {
    for (const from of link.from) {
      if (from === link.to || !next.has(from) || !next.has(link.to)) continue;
      next.get(from).add(link.to);
      entering.set(link.to, entering.get(link.to) + 1);
    }
  }
  // Depth first from the stores nothing leads to, keeping only links that go forward.
  const roots = [...stores].sort((a, b) => entering.get(a) - entering.get(b) || a.localeCompare(b));
  const forward = new Map(stores.map((store) => [store, []]));
  const seen = new Map();
  const visit = (store) => {
    seen.set(store, 'open');
    for (const to of [...next.get(store)].sort()) {
      if (seen.get(to) === 'open') continue;
      forward.get(store).push(to);
      if (!seen.has(to)) visit(to);
    }
    seen.set(store, 'done');
  };
  roots.forEach((store) => seen.has(store) || visit(store));
  // The longest forward path to each store.
  const column = new Map(stores.map((store) => [store, 0]));
  const order = [];
  const placed = new Set();
  const post = (store) => {
    placed.add(store);
    forward.get(store).forEach((to) => placed.has(to) || post(to));
    order.push(store);
  };
  roots.forEach((store) => placed.has(store) || post(store));
  for (const store of order.reverse()) {
    for (const to of forward.get(store)) column.set(to, Math.max(column.get(to), column.get(store) + 1));
  }
  const rows = new Map();
  const position = new Map();
  for (const store of [...stores].sort()) {
    const c = column.get(store);
    const r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    position.set(store, { x: 10 + c * COLUMN, y: 20 + r * ROW });
  }
  return position;
}

/** The colour class of a link: failing, far behind, behind or caught up. */
function health(link, from, now, before) {
  if (link.kind === 'Sync') return 'ok';
  const failing = growth(now, before, 'errors').some(([key]) => key.startsWith(`${link.spec}/${link.name}\t`));
  const lag = now.lag.get(`${link.spec}\t${from}`) ?? 0;
  if (failing || lag >= 10) return 'stuck';
  return lag > 0 ? 'behind' : 'ok';
}

function drawGraph(state) {
  const { stores, links, now, before, selected } = state;
  const names = stores.map((s) => s.store);
  const kinds = new Map(stores.map((s) => [s.store, s.kind]));
  const position = layout(names, links);
  const svg = $('graph');
  const width = Math.max(...[...position.values()].map((p) => p.x)) + BOX.width + 20;
  const height = Math.max(...[...position.values()].map((p) => p.y)) + BOX.height + 30;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const drawn = [];
  for (const link of links) {
    link.from.forEach((from) => {
      const [a, b] = [position.get(from), position.get(link.to)];
      if (!a || !b || from === link.to) return;
      const forward = b.x > a.x;
      const start = forward ? [a.x + BOX.width, a.y + BOX.height / 2] : [a.x + BOX.width / 2, a.y];
      const end = forward ? [b.x, b.y + BOX.height / 2] : [b.x + BOX.width / 2, b.y];
      const bend = forward ? [(start[0] + end[0]) / 2, start[1], (start[0] + end[0]) / 2, end[1]]
        : [start[0], start[1] - 40, end[0], end[1] - 40];
      const d = `M${start} C${bend[0]},${bend[1]} ${bend[2]},${bend[3]} ${end}`;
      const title = `${link.kind} ${link.spec}/${link.name}: ${link.from.join(', ')} → ${link.to}`;
      drawn.push(el('g', {
        class: `link ${link.kind.toLowerCase()} ${health(link, from, now, before)}`,
        'data-link': `${link.spec}/${link.name}`,
      }, el('title', {}, title), el('path', { d })));
    });
  }
  for (const [store, p] of position) {
    const count = now.objects.get(store);
    const text = count === undefined ? store : `${store} (${count})`;
    const classes = ['store', kinds.get(store) === 'Log' ? 'log' : 'object'];
    if (store === selected) classes.push('selected');
    const pick = kinds.get(store) === 'Log' ? undefined : () => selectStore(store);
    drawn.push(el('g', { class: classes.join(' '), 'data-store': store, onclick: pick },
      el('title', {}, `${kinds.get(store)} store ${store}`),
      el('rect', { x: p.x, y: p.y, width: BOX.width, height: BOX.height }),
      el('text', { x: p.x + BOX.width / 2, y: p.y + BOX.height / 2 }, text)));
  }
  svg.replaceChildren(...drawn);
  drawLinks(links, now, before);
  const slowest = [...now.handled.keys()]
    .map((edge) => {
      const count = (now.handled.get(edge) ?? 0) - (before?.handled.get(edge) ?? 0);
      const seconds = (now.seconds.get(edge) ?? 0) - (before?.seconds.get(edge) ?? 0);
      return [edge, count > 0 ? seconds / count : 0];
    })
    .sort((a, b) => b[1] - a[1])[0];
  $('slowest').textContent = slowest && slowest[1] > 0
    ? `Slowest edge of the last ${POLL_MS / 1000} s: ${slowest[0]}, ${(slowest[1] * 1000).toFixed(2)} ms a change`
    : '';
}

/** The table of edges and flows: rate, lag, errors, health. */
function drawLinks(links, now, before) {
  const rows = links.map((link) => {
    const key = `${link.spec}/${link.name}`;
    const cast = link.kind === 'Cast';
    const perSecond = rate(now, before, cast ? 'writes' : 'records', key);
    const lag = cast ? Math.max(0, ...link.from.map((from) => now.lag.get(`${link.spec}\t${from}`) ?? 0)) : 0;
    let errors = 0;
    for (const [errorKey, count] of now.errors) if (errorKey.startsWith(`${key}\t`)) errors += count;
    const worst = link.from.map((from) => health(link, from, now, before))
      .sort((a, b) => HEALTH.indexOf(b) - HEALTH.indexOf(a))[0] ?? 'ok';
    const cells = [
      el('td', {}, el('span', { class: `dot ${worst}`, title: worst }, '●'), ` ${key}`),
      el('td', {}, `${link.from.join(', ')} → ${link.to}`),
      el('td', { class: 'rate' }, `${perSecond.toFixed(1)}/s`),
      el('td', {}, cast ? String(lag) : '–'),
      el('td', {}, String(errors)),
    ];
    return el('tr', { 'data-link': key }, ...cells);
  });
  $('links').tBodies[0].replaceChildren(...rows);
}

const HEALTH = ['ok', 'behind', 'stuck'];

// ---------------------------------------------------------------------------------------------
// Recent errors, from the error counters.

const errors = [];

function noteErrors(now, before) {
  const time = new Date().toLocaleTimeString();
  for (const [key, count] of growth(now, before, 'errors')) {
    const [edge, kind] = key.split('\t');
    errors.unshift(`${time} cast ${edge}: ${count} ${kind} error${count > 1 ? 's' : ''}`);
  }
  for (const [knactor, count] of growth(now, before, 'failed')) {
    errors.unshift(`${time} reconcile ${knactor}: ${count} failed (retried)`);
  }
  errors.splice(MAX_ERRORS);
  $('errors').replaceChildren(...errors.map((line) => el('li', {}, line)));
  $('errors-note').hidden = errors.length > 0;
}

// ---------------------------------------------------------------------------------------------
// A store's objects, watched.

let watch = null;

function selectStore(store) {
  if (watch?.store === store) return;
  watch?.abort.abort();
  watch = { store, abort: new AbortController(), version: null, rows: new Map(), names: [] };
  state.selected = store;
  $('objects-title').textContent = `Objects of ${store}`;
  $('objects-note').textContent = 'Loading…';
  $('objects').tBodies[0].replaceChildren();
  if (state.now) drawGraph(state);
  follow(watch);
}

/** Reads the watch of `w.store` until another store is selected, again after each end. */
async function follow(w) {
  while (!w.abort.signal.aborted) {
    try {
      const from = w.version === null ? '' : `&version=${w.version}`;
      const path = `/v1/stores/${storePath(w.store)}/objects?watch=true${from}`;
      const response = await api.fetch(path, { signal: w.abort.signal });
      if (w.version === null) clearRows(w); // A fresh list follows: what it lacks is gone.
      $('objects-note').textContent = `Watching ${w.store}: changes appear as they are made.`;
      const lines = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n')) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 1);
          if (line) applyEvent(w, JSON.parse(line));
        }
      }
    } catch (error) {
      if (w.abort.signal.aborted) return;
      if (error instanceof Unauthorized) return signOut(error.message);
      if (error instanceof Refused && error.status === 403) {
        $('objects-note').textContent = `This token may not read ${w.store}: ${error.message}`;
        return;
      }
      // The server is gone, or the watch cannot resume: list again once it answers.
      w.version = null;
      $('objects-note').textContent = `Not watching ${w.store} (${error.message}); trying again…`;
    }
    await sleep(1000);
  }
}

function clearRows(w) {
  w.rows.clear();
  w.names = [];
  $('objects').tBodies[0].replaceChildren();
}

/** Where `name` goes in the sorted `names`. */
function place(names, name) {
  let [low, high] = [0, names.length];
  while (low < high) {
    const middle = (low + high) >> 1;
    if (names[middle] < name) low = middle + 1;
    else high = middle;
  }
  return low;
}

function applyEvent(w, event) {
  if (event.type === 'Error') {
    w.version = null;
    $('objects-note').textContent = `The watch ended: ${event.error ?? event.reason}`;
    return;
  }
  const object = event.object;
  w.version = Math.max(w.version ?? 0, object.version);
  const body = $('objects').tBodies[0];
  const row = w.rows.get(object.name);
  if (event.type === 'Deleted') {
    row?.remove();
    w.rows.delete(object.name);
    w.names.splice(place(w.names, object.name), 1);
    if (state.why?.store === w.store && state.why?.name === object.name) {
      $('why-note').textContent = `${w.store}/${object.name} was deleted.`;
    }
    return;
  }
  const cells = [object.name, String(object.version), outline(object.data)];
  const fresh = el('tr', { 'data-name': object.name, onclick: () => showWhy(w.store, object.name) },
    ...cells.map((text) => el('td', {}, text)));
  fresh.lastChild.title = short(object.data, 2000);
  fresh.classList.add('changed');
  if (object.name === state.why?.name && w.store === state.why?.store) fresh.classList.add('selected');
  if (row) {
    row.replaceWith(fresh);
  } else {
    const at = place(w.names, object.name);
    body.insertBefore(fresh, at < w.names.length ? w.rows.get(w.names[at]) : null);
    w.names.splice(at, 0, object.name);
  }
  w.rows.set(object.name, fresh);
}

// ---------------------------------------------------------------------------------------------
// An object's provenance (`knactor why`).

async function showWhy(store, name) {
  state.why = { store, name };
  for (const [rowName, row] of watch?.rows ?? []) row.classList.toggle('selected', rowName === name);
  $('why-title').textContent = `Provenance of ${store}/${name}`;
  $('why-note').textContent = 'Loading…';
  try {
    const answer = await api.json(`/v1/stores/${storePath(store)}/objects/${encodeURIComponent(name)}/why`);
    $('why').replaceChildren(...answer.fields.map(trailView));
    $('why-note').textContent = 'Each field: its value, the write that set it, and what that write read.';
  } catch (error) {
    $('why').replaceChildren();
    $('why-note').textContent = error.message;
  }
}

/** Opens `store` and shows `name`'s provenance (a source followed in a trail). */
function visit(store, name) {
  selectStore(store);
  showWhy(store, name);
}

function written(trail) {
  const w = trail.written;
  if (!w) return ' — no write of it on record';
  if (!w.edge) return ` — written by ${w.writer} at version ${w.version}`;
  const set = w.edge.set.map(([path, expression]) => `${path} ← ${expression}`).join('; ');
  return ` — edge ${w.edge.spec}/${w.edge.edge} (spec version ${w.edge.specVersion}) at version ${w.version}: ${set}`;
}

function trailView(trail) {
  const summary = el('summary', {}, el('span', { class: 'field' }, trail.field), ` = ${short(trail.value, 60)}`, written(trail));
  const view = el('details', { open: '', 'data-field': trail.field }, summary);
  if (trail.note) view.append(el('p', { class: 'note' }, trail.note));
  for (const source of trail.written?.edge?.sources ?? []) view.append(sourceView(source));
  return view;
}

function sourceView(source) {
  const readable = source.name && source.name !== '*';
  const label = source.name ? `${source.store}/${source.name}` : `${source.store} (not readable with this token)`;
  const target = readable
    ? el('button', { class: 'link', type: 'button', title: 'open it as it is now', onclick: () => visit(source.store, source.name) }, label)
    : label;
  const read = source.version === undefined ? '' : ` (read at version ${source.version})`;
  const view = el('details', { open: '' }, el('summary', { class: 'source' }, `read ${source.alias}: `, target, read));
  if (source.note) view.append(el('p', { class: 'note' }, source.note));
  view.append(...source.fields.map(trailView));
  return view;
}

// ---------------------------------------------------------------------------------------------
// Polling, signing in and out.

const state = { stores: [], links: [], now: null, before: null, selected: null, why: null };
const NOT_FOR_CONSOLE = "This token's principal may not read the graph and the metrics: the console is for the operator's and the viewer's tokens.";
let polling = null;

async function poll() {
  try {
    const [stores, graph, metrics] = await Promise.all([
      api.json('/v1/stores'), api.json('/v1/graph'), api.text('/metrics'),
    ]);
    setStatus('connected', 'connected');
    state.stores = stores.stores;
    state.links = graph.links;
    state.before = state.now;
    state.now = summarize(parseMetrics(metrics));
    drawGraph(state);
    noteErrors(state.now, state.before);
  } catch (error) {
    if (error instanceof Unauthorized) return signOut(error.message);
    if (error instanceof Refused && error.status === 403) return signOut(NOT_FOR_CONSOLE);
    setStatus('disconnected', 'disconnected — reconnecting…');
  }
  polling = setTimeout(poll, POLL_MS);
}

function start() {
  $('sign-in').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  poll();
}

function signOut(why = '') {
  clearTimeout(polling);
  watch?.abort.abort();
  watch = null;
  // Nothing of the last session stays on the page for the next token.
  Object.assign(state, { stores: [], links: [], now: null, before: null, selected: null, why: null });
  errors.length = 0;
  for (const id of ['graph', 'why', 'errors']) $(id).replaceChildren();
  for (const id of ['objects', 'links']) $(id).tBodies[0].replaceChildren();
  $('objects-title').textContent = 'Objects';
  $('objects-note').textContent = 'Select a store in the graph.';
  $('why-title').textContent = 'Provenance';
  $('why-note').textContent = 'Select an object to see where its fields came from.';
  $('slowest').textContent = '';
  sessionStorage.removeItem(TOKEN_KEY);
  api.token = null;
  setStatus('connecting', 'signed out');
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = why;
}

$('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  api.token = $('token').value.trim();
  try {
    await api.json('/v1/graph');
    sessionStorage.setItem(TOKEN_KEY, api.token);
    $('token').value = '';
    start();
  } catch (error) {
    const why = error instanceof Refused && error.status === 403 ? NOT_FOR_CONSOLE : error.message;
    $('sign-in-error').textContent = `Not signed in: ${why}`;
  }
});
$('sign-out').addEventListener('click', () => signOut());

if (api.token) start();
else signOut();
