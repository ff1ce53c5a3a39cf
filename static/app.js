/*
 * flightdeck board.
 *
 * Why it is built this way:
 * - Plain ES2020 and the DOM, no framework and no build step: the Rust binary serves these
 *   files as they are, and the page must work on a machine without internet.
 * - The server's Content-Security-Policy allows only scripts and styles from this origin, so
 *   there is no inline script, no inline handler, no style attribute and no eval; every
 *   handler is attached here. Item text is user (and agent) input: it only ever reaches the
 *   page through textContent / text nodes, never as HTML.
 * - The board has to stay fast with thousands of items and a steady stream of events, so it
 *   keeps a Map id -> card element, marks changed cards and columns dirty, and redraws only
 *   those, once per animation frame. Cards are re-filled only when what they show changed.
 * - State comes from one HTTP snapshot plus the event stream. Events carry a `seq`; the page
 *   remembers the last one, ignores anything at or below it, and resumes from it after a
 *   reconnect. Every event handler sets state (never increments), and changes older than the
 *   item the page already has (by the server's own timestamps) are skipped, so replaying the
 *   stream over a fresh snapshot is safe.
 */
'use strict';

/* ------------------------------------------------------------------ constants */

const STATUSES = [
  ['inbox', 'Inbox'],
  ['planning', 'Planning'],
  ['ready', 'Ready'],
  ['in_flight', 'In flight'],
  ['review', 'Review'],
  ['done', 'Done'],
  ['blocked', 'Blocked'],
];
const STATUS_ORDER = STATUSES.map(([status]) => status);
const STATUS_LABEL = Object.fromEntries(STATUSES);
const PRIORITY_RANK = { urgent: 0, high: 1, medium: 2, low: 3 };
const DONE_LIMIT = 50;
const TOKEN_KEY = 'flightdeck.token';
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const POOL_REFRESH_MS = 200;
const ITEM_REFETCH_MS = 250;
const RESYNC_RETRY_MS = 3000;
const RENDER_FALLBACK_MS = 100;
const CANCEL_REASON = 'cancelled by a person from the board';

/* ------------------------------------------------------------------ state */

const state = {
  items: new Map(), // id -> WorkItem, as last known
  pending: new Map(), // id -> status of a move the server has not answered yet
  progress: new Map(), // itemId -> { message, tokensUsed, sessionId }
  sessionTokens: new Map(), // sessionId -> latest tokensUsed seen in work:progress
  agents: [],
  pool: null,
  lastSeq: 0,
  filter: { text: '', priority: '' },
  showAllDone: false,
  drawerId: null,
  token: readStoredToken(),
};

const view = {
  cards: new Map(), // id -> <article class="card">
  signatures: new Map(), // id -> what the card shows, to skip refills that change nothing
  columnOf: new Map(), // id -> column the card belongs to
  columnIds: new Map(STATUS_ORDER.map((status) => [status, new Set()])),
  columns: new Map(), // status -> { root, list, count, more }
  dirtyCards: new Set(),
  dirtyColumns: new Set(),
  drawerDirty: false,
  frame: 0,
  timer: 0,
};

const sync = { gen: 0, loading: false, buffer: [] };
const socket = { ws: null, attempt: 0, timer: 0 };

/* ------------------------------------------------------------------ small helpers */

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

/** Builds an element. Strings among the children become text nodes, never HTML. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

function shortId(id) {
  return id ? String(id).slice(0, 8) : '';
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function formatNumber(n) {
  return Number(n || 0).toLocaleString();
}

function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (h) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

const timeKeyCache = new Map();

/**
 * A string that sorts like the instant `iso` names, to the nanosecond. The server writes
 * RFC 3339 with a varying number of fraction digits, so plain string comparison is not enough
 * and Date keeps only milliseconds.
 */
function timeKey(iso) {
  if (!iso) return '';
  let key = timeKeyCache.get(iso);
  if (key !== undefined) return key;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d:?\d\d)$/i.exec(iso);
  const fraction = ((m && m[2]) || '').padEnd(9, '0').slice(0, 9);
  if (m && m[3].toUpperCase() === 'Z') {
    key = `${m[1]}.${fraction}`;
  } else {
    const date = new Date(iso);
    key = Number.isNaN(date.getTime()) ? String(iso) : `${date.toISOString().slice(0, 19)}.${fraction}`;
  }
  if (timeKeyCache.size > 50000) timeKeyCache.clear();
  timeKeyCache.set(iso, key);
  return key;
}

function compareText(a, b) {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function lastLine(text) {
  const lines = String(text || '').split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : '';
}

/* ------------------------------------------------------------------ auth token */

function readStoredToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

/**
 * The sign-in URL the server prints carries the token in the fragment (`#token=...`), which
 * browsers never send to a server. Keep it like a typed-in token, then take it out of the
 * address bar and the history entry, so it is not shown, bookmarked or shared by accident.
 */
function takeTokenFromAddress() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!match) return;
  let token = '';
  try {
    token = decodeURIComponent(match[1]).trim();
  } catch {
    /* not percent-encoded properly: ignore it */
  }
  if (token) storeToken(token);
  history.replaceState(null, '', `${location.pathname}${location.search}`);
}

function storeToken(token) {
  state.token = token;
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* private mode: the token lives for this page only */
  }
}

const tokenPrompt = { waiting: null, resolve: null, reject: null };

/** Shows the token dialog once, however many requests are waiting for it. */
function askForToken() {
  if (tokenPrompt.waiting) return tokenPrompt.waiting;
  tokenPrompt.waiting = new Promise((resolve, reject) => {
    tokenPrompt.resolve = resolve;
    tokenPrompt.reject = reject;
  });
  const dialog = $('token-dialog');
  $('token-form').reset();
  if (!dialog.open) dialog.showModal();
  return tokenPrompt.waiting;
}

function settleTokenPrompt(ok) {
  const { resolve, reject } = tokenPrompt;
  tokenPrompt.waiting = null;
  tokenPrompt.resolve = null;
  tokenPrompt.reject = null;
  if (ok && resolve) resolve();
  if (!ok && reject) reject(new ApiError(401, 'unauthorized', 'this server needs its API token'));
}

function submitToken(event) {
  event.preventDefault();
  const value = String(new FormData(event.target).get('token') || '').trim();
  if (!value) return;
  storeToken(value);
  settleTokenPrompt(true);
  $('token-dialog').close();
  reconnectNow();
}

function tokenDialogClosed() {
  if (tokenPrompt.waiting) settleTokenPrompt(false);
}

/* ------------------------------------------------------------------ HTTP */

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

async function errorFromResponse(res) {
  let code = `http_${res.status}`;
  let message = `${res.status} ${res.statusText || 'error'}`.trim();
  let field = null;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field || null;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message, field);
}

/**
 * X-Flightdeck marks requests as the board's own: the server refuses state changes that
 * carry neither it nor a JSON body, which is all a page of another site could send.
 */
function requestHeaders(hasBody) {
  const headers = { Accept: 'application/json', 'X-Flightdeck': '1' };
  if (hasBody) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  return headers;
}

/**
 * One API call. A 401 asks for the token and tries again; other errors throw ApiError with
 * the server's message and field.
 */
async function api(method, path, body, { text = false } = {}) {
  for (;;) {
    const hasBody = body !== undefined;
    const res = await fetch(path, {
      method,
      headers: requestHeaders(hasBody),
      body: hasBody ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    if (res.status === 401) {
      await askForToken();
      continue;
    }
    if (!res.ok) throw await errorFromResponse(res);
    if (res.status === 204) return null;
    return text ? res.text() : res.json();
  }
}

/* ------------------------------------------------------------------ toast */

let toastTimer = 0;

function showToast(message, kind = 'error') {
  const toast = $('toast');
  $('toast-text').textContent = message;
  toast.dataset.kind = kind;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, kind === 'error' ? 8000 : 4000);
}

function hideToast() {
  clearTimeout(toastTimer);
  $('toast').hidden = true;
}

/* ------------------------------------------------------------------ item state */

function isOlder(candidateTime, knownTime) {
  return Boolean(candidateTime && knownTime) && timeKey(candidateTime) < timeKey(knownTime);
}

/** Stores an item unless the page already has a newer version of it. */
function upsertItem(incoming) {
  if (!incoming || !incoming.id) return;
  const current = state.items.get(incoming.id);
  if (current && isOlder(incoming.updatedAt, current.updatedAt)) return;
  state.items.set(incoming.id, incoming);
  itemChanged(current, incoming);
}

function removeItem(id) {
  const before = state.items.get(id);
  if (!before) return;
  state.items.delete(id);
  state.pending.delete(id);
  state.progress.delete(id);
  placeCard(id);
  view.cards.delete(id);
  view.signatures.delete(id);
  itemChanged(before, null);
  if (state.drawerId === id) closeDrawer();
}

/** Replaces every item with a snapshot, keeping versions newer than it. */
function replaceItems(list) {
  const seen = new Set();
  for (const item of list) {
    seen.add(item.id);
    upsertItem(item);
  }
  for (const id of [...state.items.keys()]) {
    if (!seen.has(id)) removeItem(id);
  }
}

/** Marks what depends on an item as needing a redraw. */
function itemChanged(before, after) {
  const item = after || before;
  placeCard(item.id);
  const doneChanged = (before && before.status === 'done') !== (after && after.status === 'done');
  if (doneChanged || !before || !after) {
    for (const id of new Set([...(before ? before.blocks : []), ...(after ? after.blocks : [])])) {
      markCard(id);
    }
  }
  if (state.drawerId && drawerShows(item.id)) {
    view.drawerDirty = true;
    scheduleRender();
  }
}

function drawerShows(id) {
  if (state.drawerId === id) return true;
  const shown = state.items.get(state.drawerId);
  return Boolean(shown && (shown.blockedBy.includes(id) || shown.blocks.includes(id)));
}

function displayStatus(id) {
  const item = state.items.get(id);
  if (!item) return null;
  const status = state.pending.get(id) || item.status;
  return view.columnIds.has(status) ? status : null;
}

function openBlockerCount(item) {
  return (item.blockedBy || []).filter((id) => {
    const blocker = state.items.get(id);
    return !blocker || blocker.status !== 'done';
  }).length;
}

function matchesFilter(item) {
  const { text, priority } = state.filter;
  if (priority && item.priority !== priority) return false;
  return !text || String(item.title).toLowerCase().includes(text);
}

function filterActive() {
  return Boolean(state.filter.text || state.filter.priority);
}

/* ------------------------------------------------------------------ rendering: scheduling */

/**
 * One redraw for any number of changes: on the next animation frame, or after a short timer
 * when frames are throttled (a board in a window that is visible but not in front).
 */
function scheduleRender() {
  if (view.frame) return;
  view.frame = requestAnimationFrame(flushRender);
  view.timer = setTimeout(flushRender, RENDER_FALLBACK_MS);
}

function markCard(id) {
  view.dirtyCards.add(id);
  scheduleRender();
}

function markAllColumns() {
  for (const status of STATUS_ORDER) view.dirtyColumns.add(status);
  scheduleRender();
}

/** Moves an id between column sets when its status changed, and marks both columns. */
function placeCard(id) {
  const want = displayStatus(id);
  const had = view.columnOf.get(id) || null;
  if (had !== want) {
    if (had) {
      view.columnIds.get(had).delete(id);
      view.dirtyColumns.add(had);
    }
    if (want) {
      view.columnIds.get(want).add(id);
      view.columnOf.set(id, want);
    } else {
      view.columnOf.delete(id);
    }
  }
  if (want) view.dirtyColumns.add(want);
  markCard(id);
}

function flushRender() {
  cancelAnimationFrame(view.frame);
  clearTimeout(view.timer);
  view.frame = 0;
  view.timer = 0;
  const focused = document.activeElement;
  for (const id of view.dirtyCards) refreshCard(id);
  view.dirtyCards.clear();
  for (const status of view.dirtyColumns) renderColumn(status);
  view.dirtyColumns.clear();
  if (focused && focused !== document.body && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  }
  if (view.drawerDirty) {
    view.drawerDirty = false;
    renderDrawer();
  }
}

/* ------------------------------------------------------------------ rendering: board */

function buildBoard() {
  const board = $('board');
  for (const [status, label] of STATUSES) {
    const count = el('span', { className: 'count', text: '0' });
    const list = el('div', { className: 'cards', 'aria-label': `${label} items` });
    const more = el('button', { type: 'button', className: 'show-all', hidden: true });
    const root = el(
      'section',
      { className: 'column', 'data-status': status, 'aria-label': label },
      el('header', { className: 'column-head' }, el('h2', { text: label }), count),
      list,
      more,
    );
    board.append(root);
    view.columns.set(status, { root, list, count, more });
  }
}

function claimOrder(a, b) {
  return (
    (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) ||
    compareText(timeKey(a.createdAt), timeKey(b.createdAt)) ||
    compareText(a.id, b.id)
  );
}

/** Done, newest first; a card still on its way there counts as the newest. */
function newestFirst(a, b) {
  return compareText(doneKey(b), doneKey(a)) || compareText(a.id, b.id);
}

function doneKey(item) {
  return state.pending.has(item.id) ? '~' : timeKey(item.completedAt || item.updatedAt);
}

function renderColumn(status) {
  const column = view.columns.get(status);
  const all = [...view.columnIds.get(status)].map((id) => state.items.get(id)).filter(Boolean);
  const matching = all.filter(matchesFilter).sort(status === 'done' ? newestFirst : claimOrder);
  const limited = status === 'done' && !state.showAllDone && matching.length > DONE_LIMIT;
  const shown = limited ? matching.slice(0, DONE_LIMIT) : matching;
  reconcileChildren(column.list, shown.map(cardFor));
  column.count.textContent = filterActive() ? `${matching.length} / ${all.length}` : String(all.length);
  renderShowAll(column, status, matching.length);
}

function renderShowAll(column, status, total) {
  const button = column.more;
  button.hidden = !(status === 'done' && total > DONE_LIMIT);
  button.textContent = state.showAllDone ? `show newest ${DONE_LIMIT}` : `show all ${total}`;
  button.setAttribute('aria-expanded', String(state.showAllDone));
}

/** Makes `container`'s children exactly `wanted`, in order, moving as few nodes as it can. */
function reconcileChildren(container, wanted) {
  const keep = new Set(wanted);
  for (const child of [...container.children]) {
    if (!keep.has(child)) child.remove();
  }
  let cursor = container.firstElementChild;
  for (const node of wanted) {
    if (node === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      container.insertBefore(node, cursor);
    }
  }
}

function cardFor(item) {
  let node = view.cards.get(item.id);
  if (!node) {
    node = el('article', { className: 'card', 'data-id': item.id, draggable: 'true', tabindex: '0' });
    view.cards.set(item.id, node);
  }
  refreshCard(item.id);
  return node;
}

function refreshCard(id) {
  const node = view.cards.get(id);
  const item = state.items.get(id);
  if (!node || !item) return;
  const signature = cardSignature(item);
  if (view.signatures.get(id) === signature) return;
  view.signatures.set(id, signature);
  fillCard(node, item);
}

function cardSignature(item) {
  return JSON.stringify([
    item.title,
    item.status,
    item.priority,
    item.complexity,
    openBlockerCount(item),
    item.attempts,
    item.assignedAgentId,
    item.statusReason,
    item.costUsd,
    state.pending.get(item.id),
  ]);
}

function fillCard(node, item) {
  node.dataset.priority = item.priority;
  node.dataset.status = item.status;
  node.classList.toggle('pending', state.pending.has(item.id));
  const open = openBlockerCount(item);
  const parts = [
    el(
      'div',
      { className: 'card-top' },
      el('h3', { className: 'card-title', text: item.title }),
      el('span', { className: 'badges' }, priorityBadge(item.priority), complexityBadge(item.complexity)),
    ),
    open > 0 ? el('p', { className: 'deps', text: `blocked by ${open} open` }) : null,
    cardMeta(item),
    item.status === 'in_flight' ? el('p', { className: 'activity', text: activityText(item.id) }) : null,
    item.statusReason ? el('p', { className: 'reason', text: item.statusReason }) : null,
  ];
  node.replaceChildren(...parts.filter(Boolean));
}

function priorityBadge(priority) {
  return el('span', { className: `badge priority priority-${priority}`, title: 'priority', text: priority });
}

function complexityBadge(complexity) {
  return el('span', { className: 'badge complexity', title: 'complexity', text: complexity });
}

function cardMeta(item) {
  const bits = [];
  if (item.attempts > 0) bits.push(el('span', { className: 'attempts', text: plural(item.attempts, 'attempt') }));
  if (item.costUsd > 0) {
    const title = `estimated cost of ${(item.tokensUsed || 0).toLocaleString('en-US')} tokens`;
    bits.push(el('span', { className: 'cost', title, text: `$${item.costUsd.toFixed(2)}` }));
  }
  if (item.assignedAgentId) {
    bits.push(el('span', { className: 'agent', title: item.assignedAgentId, text: `agent ${shortId(item.assignedAgentId)}` }));
  }
  return bits.length ? el('p', { className: 'meta' }, ...bits) : null;
}

function activityText(itemId) {
  const progress = state.progress.get(itemId);
  return (progress && lastLine(progress.message)) || 'starting…';
}

function updateActivity(itemId) {
  const node = view.cards.get(itemId);
  const line = node && node.querySelector('.activity');
  if (line) line.textContent = activityText(itemId);
}

/* ------------------------------------------------------------------ events */

const EVENT_HANDLERS = {
  'work:added': (data) => upsertItem(data.item),
  'work:updated': (data) => upsertItem(data.item),
  'work:completed': (data) => {
    upsertItem(data.item);
    schedulePoolRefresh();
  },
  'work:status_changed': (data, event, live) => applyStatusChange(data, event.at, live),
  'work:assigned': (data, event, live) => applyAssignment(data, event.at, live),
  'work:progress': (data) => applyProgress(data),
  'work:deleted': (data) => removeItem(data.itemId),
  'agent:spawned': (data) => {
    rememberAgent(data.agent);
    schedulePoolRefresh();
  },
  'agent:status_changed': () => schedulePoolRefresh(),
  'pool:resized': (data) => {
    if (state.pool && typeof data.size === 'number') {
      state.pool.size = data.size;
      renderPool();
    }
    schedulePoolRefresh();
  },
};

function onSocketMessage(text) {
  let event;
  try {
    event = JSON.parse(text);
  } catch {
    return;
  }
  if (!event || typeof event !== 'object') return;
  if (event.type === 'monitor:gap') {
    resync();
    return;
  }
  if (typeof event.seq !== 'number' || event.seq <= state.lastSeq) return;
  state.lastSeq = event.seq;
  if (sync.loading) sync.buffer.push(event);
  else applyEvent(event, true);
}

/** `live`: the event came after the snapshot (not replayed over it while loading). */
function applyEvent(event, live) {
  const handler = EVENT_HANDLERS[event.type];
  if (!handler) return;
  try {
    handler(event.data || {}, event, live);
  } catch (err) {
    console.error('flightdeck: could not apply event', event, err);
  }
}

function applyStatusChange({ itemId, from, to, reason, item }, at, live) {
  const current = state.items.get(itemId);
  if (!current) {
    if (item) upsertItem(item);
    else if (live) refetchItemSoon(itemId);
    return;
  }
  if (isOlder(at, current.updatedAt) || current.status === to) return;
  if (item) {
    // The event carries the whole item after the change (attempts, retryAt, reason included).
    state.items.set(itemId, item);
    itemChanged(current, item);
    if (state.drawerId === itemId) {
      loadHistory(itemId);
      logLive('work:status_changed', { itemId, from, to });
    }
    return;
  }
  const next = { ...current, status: to, updatedAt: at || current.updatedAt };
  if (to !== 'in_flight') {
    // Every way out of in_flight releases the agent and records the reason as statusReason.
    delete next.assignedAgentId;
    delete next.assignedSessionKey;
    if (reason) next.statusReason = reason;
    else delete next.statusReason;
  }
  if (to !== 'ready') delete next.retryAt;
  if (to === 'done' && !next.completedAt) next.completedAt = at;
  state.items.set(itemId, next);
  itemChanged(current, next);
  // Claims and agent outcomes change more than the event says (attempts, retryAt): fetch the
  // item. They are paced by the pool size, so this stays cheap even on a busy board.
  if (from === 'in_flight' || to === 'in_flight') refetchItemSoon(itemId);
  if (state.drawerId === itemId) {
    loadHistory(itemId);
    // A new attempt or its end adds a section to the log / ends one.
    logLive('work:status_changed', { itemId, from, to });
  }
}

function applyAssignment({ itemId, agentId, sessionKey }, at, live) {
  schedulePoolRefresh();
  const current = state.items.get(itemId);
  if (!current) {
    if (live) refetchItemSoon(itemId);
    return;
  }
  if (isOlder(at, current.updatedAt) || current.assignedAgentId === agentId) return;
  const next = { ...current, assignedAgentId: agentId, assignedSessionKey: sessionKey };
  state.items.set(itemId, next);
  itemChanged(current, next);
}

function applyProgress({ itemId, sessionId, message, tokensUsed, costUsd }) {
  state.progress.set(itemId, { message, tokensUsed, sessionId });
  const item = state.items.get(itemId);
  if (item && typeof costUsd === 'number' && costUsd !== item.costUsd) {
    state.items.set(itemId, { ...item, costUsd });
    refreshCard(itemId);
  }
  if (sessionId && typeof tokensUsed === 'number') {
    state.sessionTokens.set(sessionId, tokensUsed);
    updateSessionTokens(sessionId);
  }
  updateActivity(itemId);
  if (state.drawerId === itemId) {
    logLive('work:progress', { itemId, sessionId, message, tokensUsed, costUsd });
    renderTokensFact();
  }
}

const refetch = { ids: new Set(), timer: 0 };

/** Fetches items whose events told only part of the story, a few at a time. */
function refetchItemSoon(id) {
  refetch.ids.add(id);
  if (!refetch.timer) refetch.timer = setTimeout(refetchItems, ITEM_REFETCH_MS);
}

function refetchItems() {
  const ids = [...refetch.ids];
  refetch.ids.clear();
  refetch.timer = 0;
  for (const id of ids) {
    api('GET', `/api/items/${enc(id)}`)
      .then(upsertItem)
      .catch(() => {
        /* deleted meanwhile, or offline: a later event or resync brings the truth */
      });
  }
}

/* ------------------------------------------------------------------ snapshot + socket */

/**
 * Loads items, pool and agents over HTTP while events keep arriving into a buffer, then
 * replays the buffer over the snapshot. Used at startup and after a `monitor:gap`.
 */
async function resync() {
  const gen = ++sync.gen;
  sync.loading = true;
  try {
    const [items, pool, agents] = await Promise.all([
      api('GET', '/api/items'),
      api('GET', '/api/pool'),
      api('GET', '/api/agents'),
    ]);
    if (gen !== sync.gen) return;
    replaceItems(items);
    state.pool = pool;
    state.agents = agents;
    const buffered = sync.buffer;
    sync.buffer = [];
    sync.loading = false;
    for (const event of buffered) applyEvent(event, false);
    renderPool();
    if (state.drawerId) reloadDrawerData(state.drawerId);
  } catch (err) {
    if (gen !== sync.gen) return;
    showToast(`Could not load the board: ${err.message}`);
    setTimeout(() => {
      if (gen === sync.gen) resync();
    }, RESYNC_RETRY_MS);
  }
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws?since=${state.lastSeq}`;
}

/**
 * A browser cannot set headers on a WebSocket, and a token in its URL would land in logs:
 * the token travels as a second subprotocol, `bearer.<base64url>`, and the server answers
 * with the first, `flightdeck`.
 */
function socketProtocols() {
  if (!state.token) return ['flightdeck'];
  let binary = '';
  for (const byte of new TextEncoder().encode(state.token)) binary += String.fromCharCode(byte);
  const encoded = btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return ['flightdeck', `bearer.${encoded}`];
}

function connectSocket() {
  clearTimeout(socket.timer);
  socket.timer = 0;
  let ws;
  try {
    ws = new WebSocket(socketUrl(), socketProtocols());
  } catch {
    scheduleReconnect();
    return;
  }
  socket.ws = ws;
  ws.addEventListener('open', () => {
    if (socket.ws !== ws) return;
    socket.attempt = 0;
    setConnection(true);
  });
  ws.addEventListener('message', (message) => {
    if (socket.ws === ws && typeof message.data === 'string') onSocketMessage(message.data);
  });
  ws.addEventListener('close', () => {
    if (socket.ws !== ws) return;
    socket.ws = null;
    setConnection(false);
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  clearTimeout(socket.timer);
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** socket.attempt);
  socket.attempt = Math.min(socket.attempt + 1, 10);
  socket.timer = setTimeout(connectSocket, delay);
}

/** Skips the backoff wait: the token changed, or the browser says it is back online. */
function reconnectNow() {
  const current = socket.ws;
  if (current && current.readyState === WebSocket.OPEN) return;
  if (current) {
    socket.ws = null; // its close event is ignored from now on
    current.close();
  }
  socket.attempt = 0;
  connectSocket();
}

function setConnection(live) {
  const conn = $('conn');
  conn.dataset.state = live ? 'live' : 'down';
  conn.textContent = live ? 'live' : 'reconnecting…';
}

/* ------------------------------------------------------------------ moves */

async function requestMove(id, to, options = {}) {
  const item = state.items.get(id);
  if (!item || state.pending.has(id) || item.status === to) return;
  let reason = options.reason;
  if (reason === undefined && item.status === 'review' && to === 'ready') {
    reason = await askReason(`Reject “${item.title}”`, 'Reject');
    if (reason === null) return;
  }
  setPending(id, to);
  try {
    const updated = await api('POST', `/api/items/${enc(id)}/move`, { status: to, reason: reason || undefined });
    setPending(id, null);
    upsertItem(updated);
  } catch (err) {
    setPending(id, null);
    showToast(err.message);
  }
}

function setPending(id, status) {
  if (status) state.pending.set(id, status);
  else state.pending.delete(id);
  placeCard(id);
}

function moveByStep(id, step) {
  const item = state.items.get(id);
  if (!item || state.pending.has(id)) return;
  const index = STATUS_ORDER.indexOf(item.status) + step;
  if (index < 0 || index >= STATUS_ORDER.length) return;
  requestMove(id, STATUS_ORDER[index]);
}

/* ------------------------------------------------------------------ board interaction */

const drag = { id: null, over: null };

function onCardDragStart(event) {
  const card = event.target.closest && event.target.closest('.card');
  if (!card) return;
  drag.id = card.dataset.id;
  event.dataTransfer.setData('text/plain', drag.id);
  event.dataTransfer.effectAllowed = 'move';
  card.classList.add('dragging');
}

function onCardDragEnd(event) {
  const card = event.target.closest && event.target.closest('.card');
  if (card) card.classList.remove('dragging');
  drag.id = null;
  highlightDropTarget(null);
}

function onColumnDragOver(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (!column || !drag.id) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = 'move';
  highlightDropTarget(column);
}

function onColumnDragLeave(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (column && column === drag.over && !column.contains(event.relatedTarget)) highlightDropTarget(null);
}

function onColumnDrop(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (!column) return;
  event.preventDefault();
  const id = event.dataTransfer.getData('text/plain') || drag.id;
  highlightDropTarget(null);
  drag.id = null;
  if (id && state.items.has(id)) requestMove(id, column.dataset.status);
}

function highlightDropTarget(column) {
  if (drag.over && drag.over !== column) drag.over.classList.remove('drop-target');
  if (column) column.classList.add('drop-target');
  drag.over = column;
}

function onBoardClick(event) {
  const more = event.target.closest('.show-all');
  if (more) {
    state.showAllDone = !state.showAllDone;
    view.dirtyColumns.add('done');
    scheduleRender();
    return;
  }
  const card = event.target.closest('.card');
  if (card) openDrawer(card.dataset.id);
}

function onBoardKeydown(event) {
  const card = event.target;
  if (!card.classList || !card.classList.contains('card')) return;
  const id = card.dataset.id;
  const key = event.key;
  if (key === '[' || (event.altKey && key === 'ArrowLeft')) {
    event.preventDefault();
    moveByStep(id, -1);
  } else if (key === ']' || (event.altKey && key === 'ArrowRight')) {
    event.preventDefault();
    moveByStep(id, 1);
  } else if (key === 'Enter') {
    event.preventDefault();
    openDrawer(id);
  } else if (key === 'ArrowDown' || key === 'ArrowUp') {
    const next = key === 'ArrowDown' ? card.nextElementSibling : card.previousElementSibling;
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }
}

function onFilterChange() {
  state.filter.text = $('filter-text').value.trim().toLowerCase();
  state.filter.priority = $('filter-priority').value;
  markAllColumns();
}

/* ------------------------------------------------------------------ pool panel */

let poolTimer = 0;

function schedulePoolRefresh() {
  if (!poolTimer) poolTimer = setTimeout(refreshPool, POOL_REFRESH_MS);
}

async function refreshPool() {
  poolTimer = 0;
  try {
    const [pool, agents, status] = await Promise.all([
      api('GET', '/api/pool'),
      api('GET', '/api/agents'),
      api('GET', '/api/status'),
    ]);
    state.pool = pool;
    renderOnCall(status.onCall);
    state.agents = agents;
    renderPool();
    if (state.drawerId) renderTokensFact();
  } catch {
    /* offline: the next event or resync refreshes the panel */
  }
}

function rememberAgent(agent) {
  if (!agent || !agent.id) return;
  state.agents = [agent, ...state.agents.filter((a) => a.id !== agent.id)];
  renderSessions();
}

function renderPool() {
  const pool = state.pool;
  if (!pool) return;
  const size = $('pool-size');
  if (document.activeElement !== size) size.value = String(pool.size);
  $('pool-running').textContent = String(pool.running ?? 0);
  $('pool-free').textContent = String(pool.free ?? 0);
  $('dispatch').hidden = pool.autoDispatch !== false;
  const held = $('pool-held');
  const pause = pool.pause ? pauseText(pool.pause) : '';
  held.hidden = !pool.held && !pause;
  held.textContent = pause ? `Dispatch paused: ${pause}` : pool.held ? `Dispatch paused: ${pool.held}` : '';
  renderSessions();
}

/** One line for the person on call: what waits on them, the longest wait, recent failures. */
function renderOnCall(onCall) {
  const line = $('on-call');
  if (!line || !onCall) return;
  const bits = [];
  if (onCall.waitingOnPerson > 0) bits.push(`${plural(onCall.waitingOnPerson, 'item')} wait on you`);
  for (const [key, what] of [['oldestReview', 'in review'], ['oldestBlocked', 'blocked']]) {
    const item = onCall[key];
    if (item) bits.push(`oldest ${what}: ${item.title}, ${waitText(item.waitingSecs)}`);
  }
  if (onCall.failuresLastHour > 0) bits.push(`${plural(onCall.failuresLastHour, 'failure')} in the last hour`);
  line.hidden = bits.length === 0;
  line.textContent = bits.join(' · ');
}

function waitText(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  return `${Math.floor(secs / 86400)} d`;
}

/** "rate limited until 14:05 (message)"; the panel refreshes when the pause ends by itself. */
function pauseText(pause) {
  const until = new Date(pause.until);
  const left = until.getTime() - Date.now();
  if (Number.isFinite(left)) setTimeout(schedulePoolRefresh, Math.max(0, left) + 500);
  const time = Number.isFinite(left) ? ` until ${until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` : '';
  return `${pause.reason}${time}${pause.message ? ` (${pause.message})` : ''}`;
}

function renderSessions() {
  const working = state.agents.filter((agent) => agent.status === 'working');
  $('sessions').replaceChildren(...working.map(sessionRow));
  $('sessions-empty').hidden = working.length > 0;
}

function sessionTokens(agent) {
  return Math.max(agent.tokensUsed || 0, state.sessionTokens.get(agent.id) || 0);
}

function sessionRow(agent) {
  const itemId = agent.currentWorkItemId || agent.workItemId;
  const item = state.items.get(itemId);
  return el(
    'li',
    { className: 'session', 'data-agent-id': agent.id },
    el('button', {
      type: 'button',
      className: 'link session-item',
      'data-open-item': itemId,
      text: item ? item.title : `item ${shortId(itemId)}`,
    }),
    el('span', { className: 'session-status', text: agent.status }),
    el('span', { className: 'runtime', 'data-started': agent.startedAt, text: runtimeText(agent.startedAt) }),
    el('span', { className: 'tokens', text: `${formatNumber(sessionTokens(agent))} tokens` }),
    el('button', { type: 'button', className: 'small cancel-session', 'data-agent-id': agent.id, text: 'Cancel' }),
  );
}

function runtimeText(startedAt) {
  const started = new Date(startedAt).getTime();
  return Number.isNaN(started) ? '' : formatDuration(Date.now() - started);
}

function tickRuntimes() {
  for (const node of document.querySelectorAll('#sessions .runtime')) {
    node.textContent = runtimeText(node.dataset.started);
  }
}

function updateSessionTokens(sessionId) {
  const agent = state.agents.find((a) => a.id === sessionId);
  const row = agent && document.querySelector(`#sessions li[data-agent-id="${CSS.escape(sessionId)}"] .tokens`);
  if (row) row.textContent = `${formatNumber(sessionTokens(agent))} tokens`;
}

async function resizePool() {
  const input = $('pool-size');
  const size = Number(input.value);
  if (!Number.isInteger(size) || size < 0) {
    showToast('Pool size must be a whole number, 0 or more.');
    if (state.pool) input.value = String(state.pool.size);
    return;
  }
  try {
    state.pool = await api('PUT', '/api/pool', { size });
    renderPool();
  } catch (err) {
    showToast(err.message);
    if (state.pool) input.value = String(state.pool.size);
  }
}

async function dispatchNow() {
  const button = $('dispatch');
  button.disabled = true;
  try {
    const result = await api('POST', '/api/dispatch');
    const started = (result && result.started) || [];
    showToast(started.length ? `Started ${plural(started.length, 'agent')}.` : 'Nothing to dispatch: no free slot or no claimable item.', 'info');
    schedulePoolRefresh();
  } catch (err) {
    showToast(err.message);
  } finally {
    button.disabled = false;
  }
}

async function cancelSession(agentId, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/agents/${enc(agentId)}/cancel`);
    schedulePoolRefresh();
  } catch (err) {
    showToast(err.message);
    button.disabled = false;
  }
}

function onPoolClick(event) {
  const cancel = event.target.closest('.cancel-session');
  if (cancel) cancelSession(cancel.dataset.agentId, cancel);
}

/* ------------------------------------------------------------------ drawer */

/** The drawer's log viewer (static/js/logview/), mounted for the item the drawer shows. */
const logState = { gen: 0, view: null };
let drawerReturnFocus = null;

function openDrawer(id) {
  if (!state.items.has(id)) return;
  if (state.drawerId !== id) {
    drawerReturnFocus = document.activeElement;
    state.drawerId = id;
    reloadDrawerData(id);
  }
  const drawer = $('drawer');
  drawer.dataset.id = id;
  drawer.hidden = false;
  renderDrawer();
  $('drawer-close').focus({ preventScroll: true });
}

function closeDrawer() {
  const id = state.drawerId;
  state.drawerId = null;
  unmountLog();
  const drawer = $('drawer');
  drawer.hidden = true;
  delete drawer.dataset.id;
  const card = id && view.cards.get(id);
  const target = card && card.isConnected ? card : drawerReturnFocus;
  if (target && target.isConnected && typeof target.focus === 'function') target.focus({ preventScroll: true });
  drawerReturnFocus = null;
}

function reloadDrawerData(id) {
  loadLog(id);
  loadHistory(id);
}

function renderDrawer() {
  const item = state.items.get(state.drawerId);
  if (!item) return;
  $('drawer-title').textContent = item.title;
  $('drawer-badges').replaceChildren(
    el('span', { className: `badge status status-${item.status}`, text: STATUS_LABEL[item.status] || item.status }),
    priorityBadge(item.priority),
    complexityBadge(item.complexity),
  );
  renderDrawerActions(item);
  renderFacts(item);
  const description = $('drawer-description');
  description.textContent = item.description || 'No description.';
  description.classList.toggle('muted', !item.description);
  fillList($('drawer-criteria'), item.acceptanceCriteria, (text) => el('li', { className: 'criterion', text }), 'No acceptance criteria.');
  fillList($('drawer-blocked-by'), item.blockedBy, dependencyEntry, 'Nothing: it can start any time.');
  fillList($('drawer-blocks'), item.blocks, dependencyEntry, 'No item waits on this one.');
  fillList($('drawer-artifacts'), item.artifacts, (a) => artifactEntry(item, a), 'No artifacts yet.');
}

function renderDrawerActions(item) {
  $('approve').hidden = item.status !== 'review';
  $('reject').hidden = item.status !== 'review';
  $('cancel-agent').hidden = item.status !== 'in_flight';
  renderMoveTargets(item);
}

/** Every other column; the server decides which moves are allowed and says so when not. */
function renderMoveTargets(item) {
  const select = $('move-to');
  const targets = STATUS_ORDER.filter((status) => status !== item.status && status !== 'in_flight');
  if (select.dataset.from === item.status && select.options.length === targets.length) return;
  select.dataset.from = item.status;
  select.replaceChildren(...targets.map((status) => el('option', { value: status, text: `Move to ${STATUS_LABEL[status]}` })));
}

async function moveDrawerItem() {
  if (state.drawerId) await requestMove(state.drawerId, $('move-to').value);
}

function fillList(list, values, render, emptyText) {
  const entries = (values || []).map(render);
  list.replaceChildren(...(entries.length ? entries : [el('li', { className: 'muted', text: emptyText })]));
}

function renderFacts(item) {
  const facts = [
    ['Status', STATUS_LABEL[item.status] || item.status],
    ['Priority', item.priority],
    ['Complexity', String(item.complexity).toUpperCase()],
    ['Attempts', String(item.attempts ?? 0)],
    ['Agent', item.assignedAgentId ? `${shortId(item.assignedAgentId)} (${item.assignedSessionKey || 'session'})` : null],
    ['Tokens used', formatNumber(itemTokens(item.id))],
    ['Status reason', item.statusReason],
    ['Retry after', item.retryAt ? formatTime(item.retryAt) : null],
    ['Created', `${formatTime(item.createdAt)}${item.createdBy ? ` by ${item.createdBy}` : ''}`],
    ['Updated', formatTime(item.updatedAt)],
    ['Completed', item.completedAt ? formatTime(item.completedAt) : null],
    ['ID', item.id],
  ];
  const nodes = [];
  for (const [label, value] of facts) {
    if (value === null || value === undefined || value === '') continue;
    nodes.push(el('dt', { text: label }), el('dd', { 'data-fact': label, text: value }));
  }
  $('drawer-facts').replaceChildren(...nodes);
}

function renderTokensFact() {
  const dd = document.querySelector('#drawer-facts dd[data-fact="Tokens used"]');
  if (dd && state.drawerId) dd.textContent = formatNumber(itemTokens(state.drawerId));
}

/**
 * Tokens spent on an item over all its sessions: each session's tokensUsed from
 * GET /api/agents, raised by the latest work:progress figure seen for that session.
 */
function itemTokens(itemId) {
  let total = 0;
  const counted = new Set();
  for (const agent of state.agents) {
    if (agent.workItemId !== itemId && agent.currentWorkItemId !== itemId) continue;
    counted.add(agent.id);
    total += sessionTokens(agent);
  }
  const progress = state.progress.get(itemId);
  if (progress && progress.sessionId && !counted.has(progress.sessionId)) total += progress.tokensUsed || 0;
  return total;
}

function dependencyEntry(id) {
  const other = state.items.get(id);
  if (!other) return el('li', { className: 'muted', text: `${shortId(id)} (not loaded)` });
  return el(
    'li',
    { className: 'dependency' },
    el('button', { type: 'button', className: 'link', 'data-open-item': id, text: other.title }),
    ' ',
    el('span', { className: `badge status status-${other.status}`, text: STATUS_LABEL[other.status] || other.status }),
  );
}

function artifactEntry(item, artifact) {
  let target;
  if (artifact.type === 'file') {
    target = el('a', {
      href: `/api/items/${enc(item.id)}/artifacts/${enc(artifact.id)}`,
      className: 'artifact-file',
      'data-download': artifact.path.split('/').pop() || 'artifact',
      text: artifact.path,
    });
  } else if (/^https?:\/\//i.test(artifact.path)) {
    target = el('a', { href: artifact.path, target: '_blank', rel: 'noopener noreferrer', text: artifact.path });
  } else {
    target = el('span', { className: 'artifact-ref', text: artifact.path });
  }
  return el(
    'li',
    { className: 'artifact' },
    el('span', { className: 'badge kind', text: artifact.type }),
    ' ',
    target,
    artifact.description ? el('span', { className: 'muted', text: ` — ${artifact.description}` }) : null,
  );
}

/** With a token, a plain link would get 401: fetch the file with the header instead. */
async function downloadArtifact(event) {
  const link = event.target.closest('a[data-download]');
  if (!link || !state.token) return;
  event.preventDefault();
  try {
    const res = await fetch(link.href, { headers: requestHeaders(false) });
    if (!res.ok) throw await errorFromResponse(res);
    const url = URL.createObjectURL(await res.blob());
    const save = el('a', { href: url, download: link.dataset.download });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    showToast(err.message);
  }
}

async function loadHistory(id) {
  try {
    const history = await api('GET', `/api/items/${enc(id)}/history`);
    if (state.drawerId !== id) return;
    fillList($('history'), history, historyEntry, 'No history.');
  } catch (err) {
    if (state.drawerId === id) fillList($('history'), [], null, `Could not load the history: ${err.message}`);
  }
}

function historyEntry(change) {
  const move = change.from ? `${STATUS_LABEL[change.from] || change.from} → ${STATUS_LABEL[change.to] || change.to}` : `created in ${STATUS_LABEL[change.to] || change.to}`;
  return el(
    'li',
    { className: 'history-entry' },
    el('time', { datetime: change.at, text: formatTime(change.at) }),
    ' ',
    el('strong', { text: move }),
    change.reason ? el('span', { className: 'muted', text: ` — ${change.reason}` }) : null,
  );
}

/**
 * Mounts the log viewer for item `id` in #log. The viewer is an ES module, loaded on first use;
 * it fetches the log itself and reads on when told of live events.
 */
async function loadLog(id) {
  unmountLog();
  const gen = logState.gen;
  let logview;
  try {
    logview = await import('./js/logview/index.js');
  } catch (err) {
    $('log').textContent = `The log viewer could not be loaded: ${err.message}`;
    return;
  }
  if (gen !== logState.gen || state.drawerId !== id) return;
  logState.view = logview.mountLog($('log'), { itemId: id, api, onClose: closeDrawer });
}

function unmountLog() {
  logState.gen += 1;
  if (logState.view) logState.view.destroy();
  logState.view = null;
}

/** Hands a live event of the drawer's item to its log viewer. */
function logLive(type, data) {
  if (logState.view) logState.view.appendLive({ type, data });
}

async function approveDrawerItem() {
  if (state.drawerId) await requestMove(state.drawerId, 'done');
}

async function rejectDrawerItem() {
  const item = state.items.get(state.drawerId);
  if (!item) return;
  const reason = await askReason(`Reject “${item.title}”`, 'Reject');
  if (reason !== null) await requestMove(item.id, 'ready', { reason });
}

async function cancelDrawerAgent() {
  if (state.drawerId) await requestMove(state.drawerId, 'blocked', { reason: CANCEL_REASON });
}

async function deleteDrawerItem() {
  const item = state.items.get(state.drawerId);
  if (!item) return;
  if (!(await confirmAction(`Delete “${item.title}”? This cannot be undone.`, 'Delete'))) return;
  try {
    await api('DELETE', `/api/items/${enc(item.id)}`);
    removeItem(item.id);
  } catch (err) {
    showToast(err.message);
  }
}

function editDrawerItem() {
  const item = state.items.get(state.drawerId);
  if (item) openItemDialog(item);
}

/* ------------------------------------------------------------------ small dialogs */

/** Asks for a reason; resolves with the text ('' allowed) or null when cancelled. */
function askReason(heading, okLabel) {
  const dialog = $('reason-dialog');
  const form = $('reason-form');
  form.reset();
  $('reason-title').textContent = heading;
  $('reason-ok').textContent = okLabel;
  return showDialogForAnswer(dialog).then((answer) =>
    answer === 'ok' ? String(form.elements.namedItem('reason').value).trim() : null,
  );
}

function confirmAction(text, okLabel) {
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  return showDialogForAnswer($('confirm-dialog')).then((answer) => answer === 'ok');
}

function showDialogForAnswer(dialog) {
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true });
  });
}

/* ------------------------------------------------------------------ item dialog */

const itemForm = { editing: null, criteriaSent: [] };

function openItemDialog(item) {
  const form = $('item-form');
  form.reset();
  clearFormError();
  itemForm.editing = item ? item.id : null;
  $('item-dialog-title').textContent = item ? 'Edit item' : 'New item';
  const fields = form.elements;
  fields.namedItem('title').value = item ? item.title : '';
  fields.namedItem('description').value = item ? item.description : '';
  fields.namedItem('priority').value = item ? item.priority : 'medium';
  fields.namedItem('complexity').value = item ? item.complexity : 'm';
  fields.namedItem('status').value = 'inbox';
  fields.namedItem('status').disabled = Boolean(item);
  $('status-field').hidden = Boolean(item);
  setCriteriaRows(item && item.acceptanceCriteria.length ? item.acceptanceCriteria : ['']);
  fillDependencyOptions(item);
  $('item-dialog').showModal();
  fields.namedItem('title').focus();
}

function setCriteriaRows(values) {
  $('criteria').replaceChildren(...values.map(criterionRow));
}

function criterionRow(value = '') {
  const input = el('input', { type: 'text', name: 'criterion', 'aria-label': 'Acceptance criterion', autocomplete: 'off' });
  input.value = value;
  const remove = el('button', { type: 'button', className: 'icon remove-criterion', 'aria-label': 'Remove criterion', title: 'Remove criterion' });
  return el('li', { className: 'criterion-row' }, input, remove);
}

function addCriterionRow() {
  const row = criterionRow();
  $('criteria').append(row);
  row.querySelector('input').focus();
}

function onCriteriaClick(event) {
  const remove = event.target.closest('.remove-criterion');
  if (remove) remove.closest('li').remove();
}

function fillDependencyOptions(item) {
  const select = $('blocked-by');
  const chosen = new Set(item ? item.blockedBy : []);
  const candidates = [...state.items.values()]
    .filter((other) => !item || other.id !== item.id)
    .sort((a, b) => (a.status === 'done') - (b.status === 'done') || String(a.title).localeCompare(String(b.title)));
  select.replaceChildren(
    ...candidates.map((other) => {
      const option = el('option', { value: other.id, text: `${other.title} · ${STATUS_LABEL[other.status] || other.status}` });
      option.selected = chosen.has(other.id);
      return option;
    }),
  );
  $('dep-filter').value = '';
}

function filterDependencyOptions() {
  const text = $('dep-filter').value.trim().toLowerCase();
  for (const option of $('blocked-by').options) {
    option.hidden = Boolean(text) && !option.selected && !option.textContent.toLowerCase().includes(text);
  }
}

function readItemForm(form) {
  const fields = form.elements;
  const criteriaInputs = [...form.querySelectorAll('input[name="criterion"]')].filter((input) => input.value.trim() !== '');
  const body = {
    title: fields.namedItem('title').value,
    description: fields.namedItem('description').value,
    acceptanceCriteria: criteriaInputs.map((input) => input.value),
    priority: fields.namedItem('priority').value,
    complexity: fields.namedItem('complexity').value,
    blockedBy: [...$('blocked-by').selectedOptions].map((option) => option.value),
  };
  if (!itemForm.editing) body.status = fields.namedItem('status').value;
  return { body, criteriaInputs };
}

async function submitItemForm(event) {
  event.preventDefault();
  const form = event.target;
  clearFormError();
  const { body, criteriaInputs } = readItemForm(form);
  itemForm.criteriaSent = criteriaInputs;
  const save = form.querySelector('button[type="submit"]');
  save.disabled = true;
  try {
    const editing = itemForm.editing;
    const item = editing
      ? await api('PATCH', `/api/items/${enc(editing)}`, body)
      : await api('POST', '/api/items', body);
    upsertItem(item);
    $('item-dialog').close();
  } catch (err) {
    showFormError(err);
  } finally {
    save.disabled = false;
  }
}

function showFormError(err) {
  const box = $('item-error');
  box.textContent = err.message;
  box.hidden = false;
  const field = fieldElement(err.field);
  if (field) {
    field.classList.add('invalid');
    field.setAttribute('aria-invalid', 'true');
    if (typeof field.focus === 'function' && field.tagName !== 'FIELDSET') field.focus();
  }
}

/** The form control a server error's `field` ("title", "acceptanceCriteria[2]", ...) names. */
function fieldElement(field) {
  if (!field) return null;
  const criterion = /^acceptanceCriteria(?:\[(\d+)\])?/.exec(field);
  if (criterion) {
    return (criterion[1] !== undefined && itemForm.criteriaSent[Number(criterion[1])]) || $('criteria-field');
  }
  const name = field.replace(/[[.].*$/, '');
  if (name === 'blockedBy') return $('blocked-by');
  const control = $('item-form').elements.namedItem(name);
  return control instanceof Element ? control : null;
}

function clearFormError() {
  const box = $('item-error');
  box.hidden = true;
  box.textContent = '';
  for (const node of $('item-form').querySelectorAll('.invalid')) {
    node.classList.remove('invalid');
    node.removeAttribute('aria-invalid');
  }
}

function onItemFormInput(event) {
  const node = event.target;
  if (node.classList && node.classList.contains('invalid')) {
    node.classList.remove('invalid');
    node.removeAttribute('aria-invalid');
  }
}

/* ------------------------------------------------------------------ wiring */

function onDocumentClick(event) {
  const opener = event.target.closest && event.target.closest('[data-open-item]');
  if (opener) openDrawer(opener.dataset.openItem);
}

function onDocumentKeydown(event) {
  if (event.key === 'Escape' && state.drawerId && !document.querySelector('dialog[open]')) closeDrawer();
}

function wireBoard() {
  const board = $('board');
  board.addEventListener('click', onBoardClick);
  board.addEventListener('keydown', onBoardKeydown);
  board.addEventListener('dragstart', onCardDragStart);
  board.addEventListener('dragend', onCardDragEnd);
  board.addEventListener('dragover', onColumnDragOver);
  board.addEventListener('dragleave', onColumnDragLeave);
  board.addEventListener('drop', onColumnDrop);
  $('filter-text').addEventListener('input', onFilterChange);
  $('filter-priority').addEventListener('change', onFilterChange);
}

function wirePanels() {
  $('new-item').addEventListener('click', () => openItemDialog(null));
  $('pool-size').addEventListener('change', resizePool);
  $('dispatch').addEventListener('click', dispatchNow);
  $('pool').addEventListener('click', onPoolClick);
  $('toast-close').addEventListener('click', hideToast);
  $('drawer-close').addEventListener('click', closeDrawer);
  $('approve').addEventListener('click', approveDrawerItem);
  $('reject').addEventListener('click', rejectDrawerItem);
  $('cancel-agent').addEventListener('click', cancelDrawerAgent);
  $('edit').addEventListener('click', editDrawerItem);
  $('delete').addEventListener('click', deleteDrawerItem);
  $('move-button').addEventListener('click', moveDrawerItem);
  $('drawer-artifacts').addEventListener('click', downloadArtifact);
  document.addEventListener('click', onDocumentClick);
  document.addEventListener('keydown', onDocumentKeydown);
}

function wireDialogs() {
  const form = $('item-form');
  form.addEventListener('submit', submitItemForm);
  form.addEventListener('input', onItemFormInput);
  $('item-cancel').addEventListener('click', () => $('item-dialog').close());
  $('add-criterion').addEventListener('click', addCriterionRow);
  $('criteria').addEventListener('click', onCriteriaClick);
  $('dep-filter').addEventListener('input', filterDependencyOptions);
  $('token-form').addEventListener('submit', submitToken);
  $('token-dialog').addEventListener('close', tokenDialogClosed);
}

function wireConnectivity() {
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconnectNow();
  });
  setInterval(tickRuntimes, 1000);
}

function start() {
  takeTokenFromAddress();
  buildBoard();
  wireBoard();
  wirePanels();
  wireDialogs();
  wireConnectivity();
  setConnection(false);
  // Socket first, from seq 0: events arriving while the snapshot loads are buffered and
  // replayed over it, so nothing between the snapshot and the stream is lost.
  sync.loading = true;
  connectSocket();
  resync();
}

start();
