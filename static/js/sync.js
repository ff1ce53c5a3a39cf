/*
 * Keeping the board's store in step with the server: one snapshot, then the event stream.
 *
 * Page load: the items come in pages (`GET /api/items`, then `?cursor=` from X-Next-Cursor)
 * and the first page's X-Event-Seq names the last event the snapshot includes; the socket then
 * opens from that seq, so nothing is replayed and nothing is missed. A server that sends no
 * X-Event-Seq gets the older way: the socket from the last seq seen, events buffered while the
 * snapshot loads and replayed over it (safe: handlers set state and skip older changes).
 * A `monitor:gap` (the server dropped events for this page) loads a fresh snapshot.
 */
import { ITEM_REFETCH_MS, RESYNC_RETRY_MS } from './constants.js';
import { api, describeError, request } from './api.js';
import { showToast } from './announce.js';
import { enc } from './dom.js';
import { schedulePoolRefresh, rememberAgent, renderPool, setPoolSize } from './pool.js';
import { updateActivity } from './render.js';
import { isOlder, notify, removeItem, replaceItems, setItem, state, upsertItem } from './store.js';
import { connectSocket, handleSocket, reconnectNow } from './socket.js';

const sync = { gen: 0, loading: false, buffer: [], retry: 0, socketStarted: false, synced: false };

/** Live events for the drawer (log lines, status changes of the item it shows). */
const itemEventListeners = new Set();
export function onItemEvent(fn) {
  itemEventListeners.add(fn);
}

const EVENT_HANDLERS = {
  'work:added': (data) => upsertItem(data.item),
  'work:updated': (data) => upsertItem(data.item),
  'work:completed': (data) => {
    upsertItem(data.item);
    schedulePoolRefresh();
  },
  'work:status_changed': (data, event, live) => applyStatusChange(data, event, live),
  'work:assigned': (data, event, live) => applyAssignment(data, event.at, live),
  'work:progress': (data, event) => applyProgress(data, event),
  'work:deleted': (data) => removeItem(data.itemId),
  // The item's waitingOnPerson comes with work:updated; these tell the drawer to reload.
  'approval:requested': (data, event) => tellItemListeners(data.itemId, event),
  'approval:resolved': (data, event) => tellItemListeners(data.itemId, event),
  'agent:spawned': (data) => {
    rememberAgent(data.agent);
    schedulePoolRefresh();
  },
  'agent:status_changed': () => schedulePoolRefresh(),
  'pool:resized': (data) => {
    if (typeof data.size === 'number') setPoolSize(data.size);
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

function tellItemListeners(itemId, event) {
  for (const fn of itemEventListeners) fn(itemId, event);
}

function applyStatusChange({ itemId, from, to, reason, item }, event, live) {
  const at = event.at;
  const current = state.items.get(itemId);
  if (!current) {
    if (item) upsertItem(item);
    else if (live) refetchItemSoon(itemId);
    return;
  }
  if (isOlder(at, current.updatedAt) || current.status === to) return;
  if (item) {
    // The event carries the whole item after the change (attempts, retryAt, reason included).
    setItem(item, current);
  } else {
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
    setItem(next, current);
    // Claims and agent outcomes change more than the event says (attempts, retryAt, report):
    // fetch the item. They are paced by the pool size, so this stays cheap on a busy board.
    if (from === 'in_flight' || to === 'in_flight') refetchItemSoon(itemId);
  }
  if (live) notify('moved', itemId, from, to);
  tellItemListeners(itemId, event);
}

function applyAssignment({ itemId, agentId, sessionKey }, at, live) {
  schedulePoolRefresh();
  const current = state.items.get(itemId);
  if (!current) {
    if (live) refetchItemSoon(itemId);
    return;
  }
  if (isOlder(at, current.updatedAt) || current.assignedAgentId === agentId) return;
  setItem({ ...current, assignedAgentId: agentId, assignedSessionKey: sessionKey }, current);
}

function applyProgress(data, event) {
  const { itemId, sessionId, message, tokensUsed, costUsd } = data;
  state.progress.set(itemId, { message, tokensUsed, sessionId });
  const item = state.items.get(itemId);
  if (item && typeof costUsd === 'number' && costUsd !== item.costUsd) setItem({ ...item, costUsd }, item);
  if (sessionId && typeof tokensUsed === 'number') {
    state.sessionTokens.set(sessionId, tokensUsed);
    notify('tokens', sessionId);
  }
  updateActivity(itemId);
  tellItemListeners(itemId, event);
}

const refetch = { ids: new Set(), timer: 0 };

/** Fetches items whose events told only part of the story, a few at a time. */
export function refetchItemSoon(id) {
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

/** Every item, page by page, and the seq the first page was read at (null: not said). */
async function loadItems() {
  let res = await request('GET', '/api/items');
  const seqHeader = res.headers.get('X-Event-Seq');
  const items = await res.json();
  let cursor = res.headers.get('X-Next-Cursor');
  while (cursor) {
    res = await request('GET', `/api/items?cursor=${enc(cursor)}`);
    items.push(...(await res.json()));
    cursor = res.headers.get('X-Next-Cursor');
  }
  const seq = seqHeader === null ? NaN : Number(seqHeader);
  return { items, seq: Number.isSafeInteger(seq) && seq >= 0 ? seq : null };
}

/**
 * Loads the snapshot (items, pool, agents) and connects the socket after it. Used at start,
 * after a `monitor:gap`, and after signing in.
 */
export async function resync() {
  const gen = ++sync.gen;
  clearTimeout(sync.retry);
  sync.loading = true;
  state.stale = true;
  try {
    const [snapshot, pool, agents] = await Promise.all([loadItems(), api('GET', '/api/pool'), api('GET', '/api/agents')]);
    if (gen !== sync.gen) return;
    replaceItems(snapshot.items);
    state.pool = pool;
    state.agents = agents;
    const buffered = sync.buffer;
    sync.buffer = [];
    sync.loading = false;
    if (snapshot.seq !== null) {
      // The snapshot includes everything up to its seq: the stream goes on after it.
      state.lastSeq = Math.max(state.lastSeq, snapshot.seq);
      for (const event of buffered) if (event.seq > snapshot.seq) applyEvent(event, true);
    } else {
      for (const event of buffered) applyEvent(event, false);
    }
    if (!sync.socketStarted) {
      sync.socketStarted = true;
      connectSocket();
    }
    sync.synced = true;
    state.stale = false;
    renderPool();
    notify('synced');
  } catch (err) {
    if (gen !== sync.gen) return;
    sync.loading = false;
    if (err && err.status === 401) return; // signing in starts a new resync
    showToast(`The board could not load: ${describeError(err)}`);
    sync.retry = setTimeout(() => {
      if (gen === sync.gen) resync();
    }, RESYNC_RETRY_MS);
  }
}

/** After signing in: a board that never loaded loads now; one that did reconnects. */
export function afterSignIn() {
  if (sync.synced) reconnectNow();
  else if (!sync.loading) resync();
}

export function wireSync() {
  handleSocket({ onMessage: onSocketMessage, onOpen: () => {} });
}
