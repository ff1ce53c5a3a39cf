/*
 * The drawer: one item in a side panel beside the board (a backdrop behind it, click outside
 * or Escape to close, its width dragged or set with the arrow keys and remembered). Its header
 * stays in view with the actions that fit the item's column (Approve, Reject with feedback,
 * Retry, Unblock, Cancel the agent, and "Move to" offering only allowed moves); below are the
 * permission requests of an agent waiting on a person and the follow-up message box while it
 * works (approvals.js), the review evidence (review.js), the facts, the dependencies, the history and the agent log
 * (mounted from ./logview/ through `mountLog`).
 */
import { DRAWER_WIDTH_KEY, STATUS_LABEL } from './constants.js';
import { api, describeError } from './api.js';
import { renderApprovals } from './approvals.js';
import { showToast } from './announce.js';
import { confirmAction, openItemDialog } from './dialogs.js';
import { $, el, enc, formatNumber, formatTime, store, stored } from './dom.js';
import { mountLog } from './logview/index.js';
import { ACTIONS, allowedMoves, canAct, requestMove, runAction } from './moves.js';
import { cardNode, complexityBadge, priorityBadge } from './render.js';
import { closePreview, loadDiff, renderArtifacts, renderChecks } from './review.js';
import { itemTokens, removeItem, state, subscribe } from './store.js';
import { onItemEvent } from './sync.js';

const drawer = { returnFocus: null, log: null, dirty: false, frame: 0, reportKey: null, peopleKey: null, refreshPeople: null };

export function openDrawer(id) {
  if (!state.items.has(id)) return;
  const node = $('drawer');
  if (state.drawerId !== id) {
    if (!state.drawerId) drawer.returnFocus = document.activeElement;
    state.drawerId = id;
    closePreview();
    node.querySelector('.drawer-scroll').scrollTop = 0;
    reloadDrawerData(id);
  }
  node.dataset.id = id;
  node.hidden = false;
  $('drawer-backdrop').hidden = false;
  document.body.classList.add('drawer-open');
  renderDrawer();
  $('drawer-close').focus({ preventScroll: true });
}

export function closeDrawer() {
  const id = state.drawerId;
  if (!id) return;
  state.drawerId = null;
  drawer.log?.destroy();
  drawer.log = null;
  drawer.reportKey = null;
  drawer.peopleKey = null;
  drawer.refreshPeople = null;
  closePreview();
  const node = $('drawer');
  node.hidden = true;
  delete node.dataset.id;
  $('drawer-backdrop').hidden = true;
  document.body.classList.remove('drawer-open');
  const card = cardNode(id);
  const target = card && card.isConnected ? card : drawer.returnFocus;
  if (target && target.isConnected && typeof target.focus === 'function') target.focus({ preventScroll: true });
  drawer.returnFocus = null;
}

function reloadDrawerData(id) {
  drawer.log?.destroy();
  drawer.log = mountLog($('drawer-log'), { itemId: id, api, onClose: closeDrawer });
  loadHistory(id);
  const item = state.items.get(id);
  if (item) loadDiff(item);
}

/** Redraws on the next frame: many events about one item make one redraw. */
function markDrawer() {
  if (drawer.frame) return;
  drawer.frame = requestAnimationFrame(() => {
    drawer.frame = 0;
    renderDrawer();
  });
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
  renderActions(item);
  renderFacts(item);
  const description = $('drawer-description');
  description.textContent = item.description || 'No description.';
  description.classList.toggle('muted', !item.description);
  renderPeople(item);
  renderChecks(item);
  fillList($('drawer-blocked-by'), item.blockedBy, dependencyEntry, 'Nothing: it can start any time.');
  fillList($('drawer-blocks'), item.blocks, dependencyEntry, 'No item waits on this one.');
  const key = JSON.stringify([item.artifacts.length, item.attempts, item.status]);
  if (drawer.reportKey !== key) {
    // New artifacts or a finished attempt: the evidence changed.
    if (drawer.reportKey !== null) loadDiff(item);
    drawer.reportKey = key;
    renderArtifacts(item);
  }
}

/** The agent's waiting permission requests and the message box, while a person can reach it. */
function renderPeople(item) {
  const section = $('drawer-people');
  const show = item.status === 'in_flight' || item.waitingOnPerson;
  const key = show ? JSON.stringify([item.id, item.status]) : null;
  section.hidden = !show;
  if (drawer.peopleKey === key) {
    if (show && item.waitingOnPerson) drawer.refreshPeople?.();
    return;
  }
  drawer.peopleKey = key;
  drawer.refreshPeople = show ? renderApprovals($('drawer-approvals'), item, api) : null;
  if (!show) $('drawer-approvals').replaceChildren();
}

function renderActions(item) {
  for (const [name, action] of Object.entries(ACTIONS)) {
    const button = $(actionButtonId(name));
    button.hidden = !action.when(item);
  }
  const select = $('move-to');
  const targets = allowedMoves(item);
  const signature = `${item.status}:${targets.join(',')}`;
  if (select.dataset.signature !== signature) {
    select.dataset.signature = signature;
    select.replaceChildren(
      ...(targets.length
        ? targets.map((status) => el('option', { value: status, text: STATUS_LABEL[status] }))
        : [el('option', { value: '', text: 'No move allowed' })]),
    );
  }
  select.disabled = !targets.length || state.connection !== 'live';
  $('move-button').disabled = !targets.length || state.connection !== 'live';
  $('move-to-wrap').hidden = !targets.length;
}

function fillList(list, values, render, emptyText) {
  const entries = (values || []).map(render);
  list.replaceChildren(...(entries.length ? entries : [el('li', { className: 'muted', text: emptyText })]));
}

function renderFacts(item) {
  const facts = [
    ['Status', STATUS_LABEL[item.status] || item.status],
    ['Attempts', String(item.attempts ?? 0)],
    ['Agent', item.assignedAgentId ? `session ${item.assignedSessionKey || item.assignedAgentId}` : null],
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

function dependencyEntry(id) {
  const other = state.items.get(id);
  if (!other) return el('li', { className: 'muted', text: 'an item not on this board' });
  return el(
    'li',
    { className: 'dependency' },
    el('button', { type: 'button', className: 'link', 'data-open-item': id, text: other.title }),
    ' ',
    el('span', { className: `badge status status-${other.status}`, text: STATUS_LABEL[other.status] || other.status }),
  );
}

async function loadHistory(id) {
  try {
    const history = await api('GET', `/api/items/${enc(id)}/history`);
    if (state.drawerId !== id) return;
    fillList($('history'), history, historyEntry, 'No history.');
  } catch (err) {
    if (state.drawerId === id) fillList($('history'), [], null, `The history could not be loaded: ${describeError(err)}`);
  }
}

function historyEntry(change) {
  const label = (s) => STATUS_LABEL[s] || s;
  const move = change.from ? `${label(change.from)} → ${label(change.to)}` : `created in ${label(change.to)}`;
  return el(
    'li',
    { className: 'history-entry' },
    el('time', { datetime: change.at, text: formatTime(change.at) }),
    ' ',
    el('strong', { text: move }),
    change.reason ? el('span', { className: 'muted', text: ` — ${change.reason}` }) : null,
  );
}

async function deleteDrawerItem() {
  const item = state.items.get(state.drawerId);
  if (!item || !canAct()) return;
  if (!(await confirmAction(`Delete “${item.title}”? This cannot be undone.`, 'Delete'))) return;
  try {
    await api('DELETE', `/api/items/${enc(item.id)}`);
    removeItem(item.id);
  } catch (err) {
    showToast(describeError(err));
  }
}

/* ------------------------------------------------------------------ width */

const WIDTH_MIN = 360;

function setWidth(px) {
  const max = Math.max(WIDTH_MIN, window.innerWidth - 120);
  const width = Math.round(Math.min(max, Math.max(WIDTH_MIN, px)));
  document.documentElement.style.setProperty('--drawer-width', `${width}px`);
  $('drawer-resize').setAttribute('aria-valuenow', String(width));
  return width;
}

function wireResize() {
  const handle = $('drawer-resize');
  const saved = Number(stored(DRAWER_WIDTH_KEY));
  if (saved > 0) setWidth(saved);
  handle.addEventListener('pointerdown', (event) => {
    event.preventDefault();
    handle.setPointerCapture(event.pointerId);
    const move = (e) => setWidth(window.innerWidth - e.clientX);
    const up = (e) => {
      handle.removeEventListener('pointermove', move);
      handle.removeEventListener('pointerup', up);
      store(DRAWER_WIDTH_KEY, String(setWidth(window.innerWidth - e.clientX)));
    };
    handle.addEventListener('pointermove', move);
    handle.addEventListener('pointerup', up);
  });
  handle.addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowLeft' ? 40 : event.key === 'ArrowRight' ? -40 : 0;
    if (!step) return;
    event.preventDefault();
    store(DRAWER_WIDTH_KEY, String(setWidth($('drawer').getBoundingClientRect().width + step)));
  });
}

/* ------------------------------------------------------------------ wiring */

export function wireDrawer() {
  $('drawer-close').addEventListener('click', closeDrawer);
  $('drawer-backdrop').addEventListener('click', closeDrawer);
  for (const name of Object.keys(ACTIONS)) {
    $(actionButtonId(name)).addEventListener('click', () => {
      if (state.drawerId) runAction(name, state.drawerId);
    });
  }
  $('edit').addEventListener('click', () => {
    const item = state.items.get(state.drawerId);
    if (item) openItemDialog(item);
  });
  $('delete').addEventListener('click', deleteDrawerItem);
  $('move-button').addEventListener('click', () => {
    const to = $('move-to').value;
    if (state.drawerId && to) requestMove(state.drawerId, to);
  });
  wireResize();
  subscribe('item', (before, after) => {
    const item = after || before;
    if (!state.drawerId) return;
    const shown = state.items.get(state.drawerId);
    if (item.id === state.drawerId || (shown && (shown.blockedBy.includes(item.id) || shown.blocks.includes(item.id)))) markDrawer();
  });
  subscribe('removed', (id) => {
    if (state.drawerId === id) closeDrawer();
  });
  subscribe('tokens', () => renderTokensFact());
  subscribe('connection', () => {
    if (state.drawerId) markDrawer();
  });
  onItemEvent((itemId, event) => {
    if (itemId !== state.drawerId) return;
    drawer.log?.appendLive(event);
    if (event.type === 'work:status_changed') loadHistory(itemId);
    if (event.type.startsWith('approval:')) drawer.refreshPeople?.();
    if (event.type === 'work:progress') renderTokensFact();
  });
}

/** The drawer's button for an action (ids kept from the first board: #approve, #reject, ...). */
function actionButtonId(name) {
  return name === 'cancel' ? 'cancel-agent' : name;
}
