/*
 * The board: seven columns of cards, redrawn only where something changed. It keeps a Map
 * id -> card element, marks changed cards and columns dirty, and redraws them once per
 * animation frame; cards are re-filled only when what they show changed, so thousands of
 * items and a steady stream of events stay cheap.
 *
 * Done and Blocked fold to a strip (remembered in this browser); on a phone one column shows at
 * a time, picked in the column switcher.
 */
import {
  DONE_LIMIT, FOLDABLE, FOLDED_KEY, PRIORITY_RANK, RENDER_FALLBACK_MS, STATUSES, STATUS_LABEL, STATUS_ORDER,
} from './constants.js';
import { $, compareText, el, lastLine, plural, store, stored, timeKey } from './dom.js';
import { waitingBadge } from './approvals.js';
import {
  displayStatus, filterActive, matchesFilter, runnable, state, subscribe, waitingOnText,
} from './store.js';

const view = {
  cards: new Map(), // id -> <article class="card">
  signatures: new Map(), // id -> what the card shows, to skip refills that change nothing
  columnOf: new Map(), // id -> column the card belongs to
  columnIds: new Map(STATUS_ORDER.map((status) => [status, new Set()])),
  columns: new Map(), // status -> { root, list, count, more, fold }
  tabs: new Map(), // status -> the phone switcher's button
  dirtyCards: new Set(),
  dirtyColumns: new Set(),
  frame: 0,
  timer: 0,
  afterRender: new Set(),
  folded: new Set(parseFolded(stored(FOLDED_KEY))),
  phoneColumn: 'ready',
};

function parseFolded(text) {
  try {
    const list = JSON.parse(text || '[]');
    return Array.isArray(list) ? list.filter((s) => FOLDABLE.includes(s)) : [];
  } catch {
    return [];
  }
}

export function cardNode(id) {
  return view.cards.get(id);
}

/** `fn` runs after each redraw (the drawer, the tab title). */
export function afterRender(fn) {
  view.afterRender.add(fn);
}

/* ------------------------------------------------------------------ scheduling */

/**
 * One redraw for any number of changes: on the next animation frame, or after a short timer
 * when frames are throttled (a board in a window that is visible but not in front).
 */
export function scheduleRender() {
  if (view.frame) return;
  view.frame = requestAnimationFrame(flushRender);
  view.timer = setTimeout(flushRender, RENDER_FALLBACK_MS);
}

export function markCard(id) {
  view.dirtyCards.add(id);
  scheduleRender();
}

export function markColumn(status) {
  view.dirtyColumns.add(status);
  scheduleRender();
}

export function markAllColumns() {
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
  for (const fn of view.afterRender) fn();
}

/* ------------------------------------------------------------------ store changes */

function itemChanged(before, after) {
  const item = after || before;
  placeCard(item.id);
  const doneChanged = (before && before.status === 'done') !== (after && after.status === 'done');
  // The cards waiting on it name it ("waiting on <title>").
  if (doneChanged || !before || !after || before.title !== after.title) {
    for (const id of new Set([...(before ? before.blocks : []), ...(after ? after.blocks : [])])) {
      markCard(id);
      // A dependency done or undone changes where a ready item sorts.
      if (state.items.get(id)?.status === 'ready') view.dirtyColumns.add('ready');
    }
  }
}

subscribe('item', itemChanged);
subscribe('removed', (id, before) => {
  placeCard(id);
  view.cards.get(id)?.remove();
  view.cards.delete(id);
  view.signatures.delete(id);
  itemChanged(before, null);
});

/* ------------------------------------------------------------------ columns */

export function buildBoard() {
  const board = $('board');
  const switcher = $('column-switcher');
  for (const [status, label] of STATUSES) {
    const count = el('span', { className: 'count', text: '0' });
    const list = el('div', { className: 'cards', role: 'list', 'aria-label': `${label} items` });
    const more = el('button', { type: 'button', className: 'show-all', hidden: true });
    const fold = FOLDABLE.includes(status)
      ? el('button', { type: 'button', className: 'fold', 'data-fold': status, 'aria-label': `Fold ${label}`, 'aria-expanded': 'true' })
      : null;
    const root = el(
      'section',
      { className: 'column', 'data-status': status, 'aria-label': label },
      el('header', { className: 'column-head' }, el('h2', { text: label }), count, fold),
      list,
      more,
    );
    board.append(root);
    view.columns.set(status, { root, list, count, more, fold });
    const tab = el('button', { type: 'button', 'data-column': status, 'aria-pressed': 'false' }, label, ' ', el('span', { className: 'count', text: '0' }));
    switcher.append(tab);
    view.tabs.set(status, tab);
    applyFold(status);
  }
  showPhoneColumn(view.phoneColumn);
}

function applyFold(status) {
  const column = view.columns.get(status);
  if (!column.fold) return;
  const folded = view.folded.has(status);
  column.root.classList.toggle('folded', folded);
  column.fold.setAttribute('aria-expanded', String(!folded));
  column.fold.setAttribute('aria-label', `${folded ? 'Unfold' : 'Fold'} ${STATUS_LABEL[status]}`);
}

export function toggleFold(status) {
  if (view.folded.has(status)) view.folded.delete(status);
  else view.folded.add(status);
  store(FOLDED_KEY, JSON.stringify([...view.folded]));
  applyFold(status);
}

/** The phone layout shows one column: this one. */
export function showPhoneColumn(status) {
  view.phoneColumn = status;
  $('board').dataset.column = status;
  for (const [s, tab] of view.tabs) tab.setAttribute('aria-pressed', String(s === status));
}

function claimOrder(a, b) {
  return (
    (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) ||
    compareText(timeKey(a.createdAt), timeKey(b.createdAt)) ||
    compareText(a.id, b.id)
  );
}

/** Ready: what an agent can take now first, then what waits on dependencies or a retry. */
function readyOrder(a, b) {
  return runnable(b) - runnable(a) || claimOrder(a, b);
}

/** Done, newest first; a card still on its way there counts as the newest. */
function newestFirst(a, b) {
  return compareText(doneKey(b), doneKey(a)) || compareText(a.id, b.id);
}

function doneKey(item) {
  return state.pending.has(item.id) ? '~' : timeKey(item.completedAt || item.updatedAt);
}

const ORDER = { done: newestFirst, ready: readyOrder };

function renderColumn(status) {
  const column = view.columns.get(status);
  const all = [...view.columnIds.get(status)].map((id) => state.items.get(id)).filter(Boolean);
  const matching = all.filter(matchesFilter).sort(ORDER[status] || claimOrder);
  const limited = status === 'done' && !state.showAllDone && matching.length > DONE_LIMIT;
  const shown = limited ? matching.slice(0, DONE_LIMIT) : matching;
  reconcileChildren(column.list, shown.map(cardFor));
  const count = filterActive() ? `${matching.length} / ${all.length}` : String(all.length);
  column.count.textContent = count;
  view.tabs.get(status).querySelector('.count').textContent = count;
  renderShowAll(column, status, matching.length);
}

function renderShowAll(column, status, total) {
  const button = column.more;
  button.hidden = !(status === 'done' && total > DONE_LIMIT);
  button.textContent = state.showAllDone ? `Show the newest ${DONE_LIMIT}` : `Show all ${total}`;
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

/* ------------------------------------------------------------------ cards */

function cardFor(item) {
  let node = view.cards.get(item.id);
  if (!node) {
    node = el('article', { className: 'card', 'data-id': item.id, draggable: 'true', tabindex: '0', role: 'listitem' });
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
    waitingOnText(item),
    item.attempts,
    item.assignedAgentId,
    item.statusReason,
    item.costUsd,
    item.waitingOnPerson,
    item.report ? item.report.criteria.filter((c) => c.met).length : -1,
    state.pending.get(item.id),
  ]);
}

function fillCard(node, item) {
  node.dataset.priority = item.priority;
  node.dataset.status = item.status;
  node.classList.toggle('pending', state.pending.has(item.id));
  node.setAttribute('aria-label', `${item.title}, ${STATUS_LABEL[item.status] || item.status}, ${item.priority} priority`);
  const waiting = waitingOnText(item);
  const parts = [
    el(
      'div',
      { className: 'card-top' },
      el('h3', { className: 'card-title', text: item.title }),
      el('span', { className: 'badges' }, waitingBadge(item), priorityBadge(item.priority), complexityBadge(item.complexity)),
      el('button', { type: 'button', className: 'card-menu', 'data-menu': item.id, 'aria-haspopup': 'menu', 'aria-label': `Actions for ${item.title}`, title: 'Actions' }),
    ),
    waiting ? el('p', { className: 'deps', text: waiting }) : null,
    reportLine(item),
    cardMeta(item),
    item.status === 'in_flight' ? el('p', { className: 'activity', text: activityText(item.id) }) : null,
    item.statusReason ? el('p', { className: 'reason', text: item.statusReason }) : null,
  ];
  node.replaceChildren(...parts.filter(Boolean));
}

function reportLine(item) {
  if (!item.report || !item.report.criteria.length || !['review', 'blocked'].includes(item.status)) return null;
  const met = item.report.criteria.filter((c) => c.met).length;
  const all = item.report.criteria.length;
  return el('p', { className: `report-line ${met === all ? 'met' : 'unmet'}`, text: `${met} of ${all} criteria met` });
}

export function priorityBadge(priority) {
  return el('span', { className: `badge priority priority-${priority}`, title: 'priority', text: priority });
}

export function complexityBadge(complexity) {
  return el('span', { className: 'badge complexity', title: 'complexity', text: complexity });
}

function cardMeta(item) {
  const bits = [];
  if (item.attempts > 0) bits.push(el('span', { className: 'attempts', text: plural(item.attempts, 'attempt') }));
  if (item.costUsd > 0) {
    const title = `estimated cost of ${(item.tokensUsed || 0).toLocaleString('en-US')} tokens`;
    bits.push(el('span', { className: 'cost', title, text: `$${item.costUsd.toFixed(2)}` }));
  }
  if (item.status === 'in_flight' && item.assignedAgentId) {
    bits.push(el('span', { className: 'agent', title: item.assignedAgentId, text: 'an agent is on it' }));
  }
  return bits.length ? el('p', { className: 'meta' }, ...bits) : null;
}

function activityText(itemId) {
  const progress = state.progress.get(itemId);
  return (progress && lastLine(progress.message)) || 'starting…';
}

export function updateActivity(itemId) {
  const node = view.cards.get(itemId);
  const line = node && node.querySelector('.activity');
  if (line) line.textContent = activityText(itemId);
}

/* ------------------------------------------------------------------ drop targets */

/** While a card is dragged, every column says whether it takes it. */
export function showDropTargets(allowed) {
  for (const [status, column] of view.columns) {
    column.root.classList.toggle('accepts', Boolean(allowed) && allowed.includes(status));
    column.root.classList.toggle('refuses', Boolean(allowed) && !allowed.includes(status));
  }
}
