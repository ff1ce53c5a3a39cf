/*
 * Signing in with the server's API token: a panel that says why it opened (no token, or a
 * token the server refused), checks a pasted token before keeping it, and a sign-out that
 * forgets it. Dismissing the panel leaves the board "not signed in" until the person asks to
 * sign in again: it never re-opens by itself in a loop.
 *
 * The sign-in URL the server prints carries the token in the fragment (`#token=...`), which
 * browsers never send to a server: it is kept like a typed-in token, then taken out of the
 * address bar and the history entry, so it is not shown, bookmarked or shared by accident.
 */
import { TOKEN_KEY } from './constants.js';
import { ApiError, onUnauthorized, requestHeaders } from './api.js';
import { announce } from './announce.js';
import { $, store } from './dom.js';
import { notify, state } from './store.js';
import { closeSocket, setConnection } from './socket.js';

const prompt = { waiting: null, resolve: null, reject: null, dismissed: false };

export function takeTokenFromAddress() {
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
  store(TOKEN_KEY, token || null);
}

function notSignedIn() {
  return new ApiError(401, 'unauthorized', 'You are not signed in.');
}

/** A request met 401: the token is missing or refused. */
function handleUnauthorized() {
  setConnection('signed-out');
  if (prompt.waiting) return prompt.waiting;
  if (prompt.dismissed) return Promise.reject(notSignedIn());
  const refused = Boolean(state.token);
  return openSignIn(refused ? 'The server did not accept the saved token: it may have been changed. Paste the current one.' : '');
}

/** Opens the panel (with `error` shown, if any); resolves once signed in. */
export function openSignIn(error = '') {
  prompt.dismissed = false;
  if (!prompt.waiting) {
    prompt.waiting = new Promise((resolve, reject) => {
      prompt.resolve = resolve;
      prompt.reject = reject;
    });
    // Nobody may be waiting (the person opened it): an unhandled rejection is not an error.
    prompt.waiting.catch(() => {});
  }
  $('token-form').reset();
  showError(error);
  const dialog = $('token-dialog');
  if (!dialog.open) dialog.showModal();
  return prompt.waiting;
}

function showError(text) {
  const box = $('token-error');
  box.textContent = text;
  box.hidden = !text;
}

function settle(ok) {
  const { resolve, reject } = prompt;
  prompt.waiting = null;
  prompt.resolve = null;
  prompt.reject = null;
  if (ok && resolve) resolve();
  if (!ok && reject) reject(notSignedIn());
}

/** Checks the token with the server before keeping it: a wrong one is said at once. */
async function submitToken(event) {
  event.preventDefault();
  const value = String(new FormData(event.target).get('token') || '').trim();
  if (!value) {
    showError('Paste the token first: it is in the file “token” in the server’s data folder.');
    return;
  }
  const save = event.target.querySelector('button[type="submit"]');
  save.disabled = true;
  try {
    const headers = { ...requestHeaders(false), Authorization: `Bearer ${value}` };
    const res = await fetch('/api/status', { headers, cache: 'no-store' });
    if (res.status === 401) {
      showError('That token was not accepted: check it against the file “token” in the server’s data folder.');
      return;
    }
  } catch {
    showError('The server cannot be reached to check the token: is it running?');
    return;
  } finally {
    save.disabled = false;
  }
  storeToken(value);
  $('token-dialog').close();
  settle(true);
  announce('Signed in.');
  renderAccount();
  setConnection('down');
  notify('signed-in');
}

function panelClosed() {
  if (!prompt.waiting) return;
  prompt.dismissed = true;
  settle(false);
  setConnection('signed-out');
}

export function signOut() {
  storeToken('');
  closeSocket();
  setConnection('signed-out');
  renderAccount();
  announce('Signed out.');
  openSignIn();
}

export function renderAccount() {
  const button = $('account');
  const signedIn = state.connection !== 'signed-out';
  button.textContent = signedIn ? 'Sign out' : 'Sign in';
  button.dataset.action = signedIn ? 'sign-out' : 'sign-in';
  button.hidden = signedIn && !state.token;
}

function onAccountClick() {
  if ($('account').dataset.action === 'sign-out') signOut();
  else openSignIn();
}

export function wireSignIn() {
  onUnauthorized(handleUnauthorized);
  $('token-form').addEventListener('submit', submitToken);
  $('token-dialog').addEventListener('close', panelClosed);
  $('account').addEventListener('click', onAccountClick);
  $('token-cancel').addEventListener('click', () => $('token-dialog').close());
}
