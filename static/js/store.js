/*
 * The board's one copy of what the server said: items, in-flight moves, agents, the pool,
 * the last event seq, filters and what the drawer shows. Every module reads it here; only the
 * functions below change items, and they tell subscribers (render, drawer) what changed.
 *
 * Changes older than the item the page already has (by the server's own timestamps) are
 * skipped, so replaying events over a fresh snapshot is safe.
 */
import { STATUS_ORDER, TOKEN_KEY, WAITING_STATUSES } from './constants.js';
import { stored, timeKey } from './dom.js';

export const state = {
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
  token: stored(TOKEN_KEY) || '',
  /** 'live' | 'down' | 'signed-out' */
  connection: 'down',
  /** The board shows what it last knew: the socket is down or the snapshot is loading. */
  stale: true,
};

const listeners = new Map();

/**
 * `kind`: 'item' (before, after), 'removed' (id, before), 'connection' (state), 'moved'
 * (id, from, to: a live status change), 'tokens' (sessionId), 'synced', 'signed-in'.
 */
export function subscribe(kind, fn) {
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(fn);
}

export function notify(kind, ...args) {
  for (const fn of listeners.get(kind) || []) {
    try {
      fn(...args);
    } catch (err) {
      console.error(`flightdeck: a ${kind} listener failed`, err);
    }
  }
}

export function isOlder(candidateTime, knownTime) {
  return Boolean(candidateTime && knownTime) && timeKey(candidateTime) < timeKey(knownTime);
}

/** Stores an item unless the page already has a newer version of it. */
export function upsertItem(incoming) {
  if (!incoming || !incoming.id) return;
  const current = state.items.get(incoming.id);
  if (current && isOlder(incoming.updatedAt, current.updatedAt)) return;
  setItem(incoming, current);
}

/** Stores `next` over `current` without the age check (the caller made `next` from `current`). */
export function setItem(next, current = state.items.get(next.id)) {
  state.items.set(next.id, next);
  notify('item', current || null, next);
}

export function removeItem(id) {
  const before = state.items.get(id);
  if (!before) return;
  state.items.delete(id);
  state.pending.delete(id);
  state.progress.delete(id);
  notify('removed', id, before);
}

/** Replaces every item with a snapshot, keeping versions newer than it. */
export function replaceItems(list) {
  const seen = new Set();
  for (const item of list) {
    seen.add(item.id);
    upsertItem(item);
  }
  for (const id of [...state.items.keys()]) {
    if (!seen.has(id)) removeItem(id);
  }
}

export function setPending(id, status) {
  const item = state.items.get(id);
  if (status) state.pending.set(id, status);
  else state.pending.delete(id);
  if (item) notify('item', item, item);
}

/** The column a card shows in: where it is, or where a move the server has not answered takes it. */
export function displayStatus(id) {
  const item = state.items.get(id);
  if (!item) return null;
  const status = state.pending.get(id) || item.status;
  return STATUS_ORDER.includes(status) ? status : null;
}

/** The ids of the item's dependencies that are not done yet. */
export function openBlockers(item) {
  return (item.blockedBy || []).filter((id) => {
    const blocker = state.items.get(id);
    return !blocker || blocker.status !== 'done';
  });
}

export function openBlockerCount(item) {
  return openBlockers(item).length;
}

/** "waiting on <title>" (and how many more) for an item with open dependencies, or ''. */
export function waitingOnText(item) {
  const open = openBlockers(item);
  if (!open.length) return '';
  const first = state.items.get(open[0]);
  const name = first ? `“${first.title}”` : 'an item no longer on the board';
  return open.length === 1 ? `waiting on ${name}` : `waiting on ${name} and ${open.length - 1} more`;
}

/** A ready item an agent could take now: no open dependency, no retry wait. */
export function runnable(item) {
  if (openBlockerCount(item) > 0) return false;
  return !item.retryAt || new Date(item.retryAt).getTime() <= Date.now();
}

export function matchesFilter(item) {
  const { text, priority } = state.filter;
  if (priority && item.priority !== priority) return false;
  return !text || String(item.title).toLowerCase().includes(text);
}

export function filterActive() {
  return Boolean(state.filter.text || state.filter.priority);
}

/** Items waiting on a person: in Review or Blocked, or flagged by the server. */
export function waitingOnPerson() {
  let n = 0;
  for (const item of state.items.values()) {
    if (WAITING_STATUSES.includes(item.status) || item.waitingOnPerson) n += 1;
  }
  return n;
}

/** An item's title for a sentence, or a word for an item the page does not have. */
export function titleOf(id) {
  const item = state.items.get(id);
  return item ? `“${item.title}”` : 'an item not on this board';
}

export function sessionTokens(agent) {
  return Math.max(agent.tokensUsed || 0, state.sessionTokens.get(agent.id) || 0);
}

/**
 * Tokens spent on an item over all its sessions: each session's tokensUsed from
 * GET /api/agents, raised by the latest work:progress figure seen for that session.
 */
export function itemTokens(itemId) {
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
