/*
 * Moving items: the moves a person may make from each column, the actions named for review
 * (approve, reject with feedback, retry, unblock, cancel the agent), drag and drop (each
 * column says whether it takes the card), the card's menu (also how a phone moves a card: tap
 * the menu, pick the column) and the keyboard steps. A move shows at once and snaps back with
 * the server's reason, in words, if refused; every settled move is announced.
 */
import { CANCEL_REASON, MANUAL_MOVES, STATUS_LABEL, STATUS_ORDER } from './constants.js';
import { api, describeError } from './api.js';
import { announce, showToast } from './announce.js';
import { askReason } from './dialogs.js';
import { el, enc } from './dom.js';
import { showDropTargets } from './render.js';
import { setPending, state, upsertItem } from './store.js';

/** Where a person may move this item (never in flight: only a claim puts it there). */
export function allowedMoves(item) {
  return item ? MANUAL_MOVES[item.status] || [] : [];
}

/** Actions are off while the board cannot reach the server. */
export function canAct() {
  if (state.connection === 'live') return true;
  showToast(
    state.connection === 'signed-out'
      ? 'You are not signed in: sign in to change anything.'
      : 'The board is offline: it shows what it last knew, and you can act again once it reconnects.',
  );
  return false;
}

export async function requestMove(id, to, options = {}) {
  const item = state.items.get(id);
  if (!item || state.pending.has(id) || item.status === to || !canAct()) return false;
  if (!allowedMoves(item).includes(to)) {
    const allowed = allowedMoves(item).map((s) => STATUS_LABEL[s]);
    showToast(
      allowed.length
        ? `“${item.title}” cannot go from ${STATUS_LABEL[item.status]} to ${STATUS_LABEL[to]}: the allowed moves are to ${allowed.join(' or ')}.`
        : `“${item.title}” is ${STATUS_LABEL[item.status]}: it cannot be moved any more.`,
    );
    return false;
  }
  let reason = options.reason;
  if (reason === undefined && item.status === 'review' && to === 'ready') {
    reason = await askReason(`Reject “${item.title}”`, 'Reject', 'What should the agent do differently?');
    if (reason === null) return false;
  }
  setPending(id, to);
  try {
    const updated = await api('POST', `/api/items/${enc(id)}/move`, { status: to, reason: reason || undefined });
    setPending(id, null);
    upsertItem(updated);
    announce(`“${item.title}” moved to ${STATUS_LABEL[to]}.`);
    return true;
  } catch (err) {
    setPending(id, null);
    showToast(describeError(err));
    announce(`“${item.title}” stays in ${STATUS_LABEL[item.status]}.`);
    return false;
  }
}

/** The named actions a person takes on an item, as shown in the drawer and the card menu. */
export const ACTIONS = {
  approve: { label: 'Approve', when: (item) => item.status === 'review', run: (item) => requestMove(item.id, 'done') },
  reject: {
    label: 'Reject…',
    when: (item) => item.status === 'review',
    run: async (item) => {
      const reason = await askReason(`Reject “${item.title}”`, 'Reject', 'What should the agent do differently?');
      if (reason !== null) await requestMove(item.id, 'ready', { reason });
    },
  },
  retry: { label: 'Retry', when: (item) => item.status === 'blocked', run: (item) => requestMove(item.id, 'ready', { reason: 'retried by a person from the board' }) },
  unblock: { label: 'Unblock (back to Inbox)', when: (item) => item.status === 'blocked', run: (item) => requestMove(item.id, 'inbox', { reason: 'unblocked by a person from the board' }) },
  cancel: { label: 'Cancel the agent', when: (item) => item.status === 'in_flight', run: (item) => requestMove(item.id, 'blocked', { reason: CANCEL_REASON }) },
};

export function runAction(name, id) {
  const item = state.items.get(id);
  const action = ACTIONS[name];
  if (item && action && action.when(item)) return action.run(item);
  return null;
}

/** Moves a card one column left or right, skipping to the nearest column it may go to. */
export function moveByStep(id, step) {
  const item = state.items.get(id);
  if (!item || state.pending.has(id)) return;
  const allowed = allowedMoves(item);
  for (let i = STATUS_ORDER.indexOf(item.status) + step; i >= 0 && i < STATUS_ORDER.length; i += step) {
    if (allowed.includes(STATUS_ORDER[i])) {
      requestMove(id, STATUS_ORDER[i]);
      return;
    }
  }
  announce(`“${item.title}” cannot move further ${step < 0 ? 'left' : 'right'}.`);
}

/* ------------------------------------------------------------------ drag and drop */

const drag = { id: null, over: null };

function onDragStart(event) {
  const card = event.target.closest && event.target.closest('.card');
  if (!card) return;
  drag.id = card.dataset.id;
  event.dataTransfer.setData('text/plain', drag.id);
  event.dataTransfer.effectAllowed = 'move';
  card.classList.add('dragging');
  showDropTargets(allowedMoves(state.items.get(drag.id)));
}

function onDragEnd(event) {
  const card = event.target.closest && event.target.closest('.card');
  if (card) card.classList.remove('dragging');
  drag.id = null;
  highlight(null);
  showDropTargets(null);
}

function onDragOver(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (!column || !drag.id) return;
  // Every column takes the drop (a refused one answers with the reason); only the ones that
  // accept light up.
  event.preventDefault();
  const accepts = column.classList.contains('accepts');
  event.dataTransfer.dropEffect = 'move';
  highlight(accepts ? column : null);
}

function onDragLeave(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (column && column === drag.over && !column.contains(event.relatedTarget)) highlight(null);
}

function onDrop(event) {
  const column = event.target.closest && event.target.closest('.column');
  if (!column) return;
  event.preventDefault();
  const id = event.dataTransfer.getData('text/plain') || drag.id;
  highlight(null);
  showDropTargets(null);
  drag.id = null;
  if (id && state.items.has(id)) requestMove(id, column.dataset.status);
}

function highlight(column) {
  if (drag.over && drag.over !== column) drag.over.classList.remove('drop-target');
  if (column) column.classList.add('drop-target');
  drag.over = column;
}

export function wireDrag(board) {
  board.addEventListener('dragstart', onDragStart);
  board.addEventListener('dragend', onDragEnd);
  board.addEventListener('dragover', onDragOver);
  board.addEventListener('dragleave', onDragLeave);
  board.addEventListener('drop', onDrop);
}

/* ------------------------------------------------------------------ the card menu */

const menu = { node: null, opener: null };

/** The menu of a card: its actions and the columns it may go to (tap-to-move on a phone). */
export function openCardMenu(id, opener, openDrawer) {
  closeCardMenu();
  const item = state.items.get(id);
  if (!item) return;
  // Offline or signed out, what needs the server is shown but off (the drawer's buttons too).
  const off = state.connection !== 'live';
  const entries = [el('button', { type: 'button', role: 'menuitem', 'data-do': 'open', text: 'Open details' })];
  for (const [name, action] of Object.entries(ACTIONS)) {
    if (action.when(item)) entries.push(el('button', { type: 'button', role: 'menuitem', 'data-do': name, disabled: off, text: action.label }));
  }
  for (const status of allowedMoves(item)) {
    entries.push(el('button', { type: 'button', role: 'menuitem', 'data-move': status, disabled: off, text: `Move to ${STATUS_LABEL[status]}` }));
  }
  const node = el('div', { className: 'menu', role: 'menu', 'aria-label': `Actions for ${item.title}` }, ...entries);
  document.body.append(node);
  const box = opener.getBoundingClientRect();
  const width = Math.min(240, window.innerWidth - 16);
  node.style.left = `${Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8))}px`;
  node.style.top = `${Math.min(box.bottom + 4, window.innerHeight - node.offsetHeight - 8)}px`;
  menu.node = node;
  menu.opener = opener;
  node.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button) return;
    closeCardMenu(false);
    if (button.dataset.do === 'open') openDrawer(id);
    else if (button.dataset.do) runAction(button.dataset.do, id);
    else if (button.dataset.move) requestMove(id, button.dataset.move);
  });
  node.addEventListener('keydown', (event) => {
    const items = [...node.querySelectorAll('button')];
    const at = items.indexOf(document.activeElement);
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      items[(at + (event.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
    } else if (event.key === 'Escape' || event.key === 'Tab') {
      event.preventDefault();
      closeCardMenu();
    }
  });
  opener.setAttribute('aria-expanded', 'true');
  entries[0].focus();
}

export function closeCardMenu(refocus = true) {
  if (!menu.node) return;
  menu.node.remove();
  menu.opener.removeAttribute('aria-expanded');
  if (refocus && menu.opener.isConnected) menu.opener.focus({ preventScroll: true });
  menu.node = null;
  menu.opener = null;
}

export function menuOpen() {
  return menu.node;
}
