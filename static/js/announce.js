/*
 * One aria-live region for what happens on the board (moves, sign-in, connection), so people
 * using a screen reader hear it; and the toast, for what a person must read.
 */
import { $ } from './dom.js';

/** Says `message` to screen readers (visually hidden). */
export function announce(message) {
  const region = $('announcer');
  if (!region) return;
  // A change of text is what gets read: clear first so the same sentence twice is read twice.
  region.textContent = '';
  requestAnimationFrame(() => {
    region.textContent = message;
  });
}

let toastTimer = 0;

export function showToast(message, kind = 'error') {
  const toast = $('toast');
  $('toast-text').textContent = message;
  toast.dataset.kind = kind;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, kind === 'error' ? 8000 : 4000);
}

export function hideToast() {
  clearTimeout(toastTimer);
  $('toast').hidden = true;
}
