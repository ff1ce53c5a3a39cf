/*
 * flightdeck board: where each piece starts and how the page's events reach it.
 *
 * Why it is built this way:
 * - Plain ES modules and the DOM, no framework and no build step: the Rust binary serves these
 *   files as they are, and the page must work on a machine without internet.
 * - The server's Content-Security-Policy allows only scripts and styles from this origin, so
 *   there is no inline script, no inline handler, no style attribute and no eval.
 * - One owner per piece of state: store.js (items), render.js (the columns), socket.js (the
 *   connection), sync.js (snapshot and events), drawer.js, dialogs.js, pool.js, signin.js.
 */
import { hideToast } from './announce.js';
import { wireAttention } from './attention.js';
import { $ } from './dom.js';
import { showShortcuts, openItemDialog, wireDialogs } from './dialogs.js';
import { closeDrawer, openDrawer, wireDrawer } from './drawer.js';
import { closeCardMenu, menuOpen, moveByStep, openCardMenu, runAction, wireDrag } from './moves.js';
import { tickRuntimes, wirePool } from './pool.js';
import { buildBoard, markAllColumns, scheduleRender, showPhoneColumn, toggleFold } from './render.js';
import { wireReview } from './review.js';
import { renderAccount, takeTokenFromAddress, wireSignIn } from './signin.js';
import { reconnectNow, setConnection } from './socket.js';
import { state, subscribe } from './store.js';
import { afterSignIn, resync, wireSync } from './sync.js';
import { wireTheme } from './theme.js';

function onBoardClick(event) {
  const more = event.target.closest('.show-all');
  if (more) {
    state.showAllDone = !state.showAllDone;
    markAllColumns();
    return;
  }
  const fold = event.target.closest('[data-fold]');
  if (fold) {
    toggleFold(fold.dataset.fold);
    return;
  }
  const menuButton = event.target.closest('.card-menu');
  if (menuButton) {
    event.stopPropagation();
    if (menuOpen()) closeCardMenu(false);
    else openCardMenu(menuButton.dataset.menu, menuButton, openDrawer);
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

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

/** The shortcuts listed under `?` (constants.js SHORTCUTS). */
const KEYS = {
  '?': () => showShortcuts(),
  n: () => openItemDialog(null),
  '/': () => $('filter-text').focus(),
  a: () => state.drawerId && runAction('approve', state.drawerId),
  r: () => state.drawerId && runAction('reject', state.drawerId),
  t: () => state.drawerId && runAction('retry', state.drawerId),
  u: () => state.drawerId && runAction('unblock', state.drawerId),
};

function onDocumentKeydown(event) {
  if (event.key === 'Escape') {
    if (menuOpen()) closeCardMenu();
    else if (state.drawerId && !document.querySelector('dialog[open]')) closeDrawer();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || document.querySelector('dialog[open]')) return;
  const run = KEYS[event.key];
  if (run) {
    event.preventDefault();
    run();
  }
}

function onDocumentClick(event) {
  if (menuOpen() && !event.target.closest('.menu')) closeCardMenu(false);
  const opener = event.target.closest && event.target.closest('[data-open-item]');
  if (opener) openDrawer(opener.dataset.openItem);
}

function wire() {
  const board = $('board');
  board.addEventListener('click', onBoardClick);
  board.addEventListener('keydown', onBoardKeydown);
  wireDrag(board);
  $('filter-text').addEventListener('input', onFilterChange);
  $('filter-priority').addEventListener('change', onFilterChange);
  $('column-switcher').addEventListener('click', (event) => {
    const tab = event.target.closest('[data-column]');
    if (tab) showPhoneColumn(tab.dataset.column);
  });
  $('new-item').addEventListener('click', () => openItemDialog(null));
  $('help').addEventListener('click', showShortcuts);
  $('toast-close').addEventListener('click', hideToast);
  document.addEventListener('click', onDocumentClick);
  document.addEventListener('keydown', onDocumentKeydown);
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconnectNow();
  });
  setInterval(tickRuntimes, 1000);
  subscribe('connection', () => {
    renderAccount();
    scheduleRender();
  });
  subscribe('signed-in', afterSignIn);
}

function start() {
  takeTokenFromAddress();
  buildBoard();
  wire();
  wirePool();
  wireDialogs();
  wireDrawer();
  wireReview();
  wireSignIn();
  wireSync();
  wireTheme();
  wireAttention();
  setConnection('down');
  renderAccount();
  resync();
}

start();
