/*
 * The event stream and what the page says about the connection. A browser cannot set headers
 * on a WebSocket, and a token in its URL would land in logs: the token travels as a second
 * subprotocol, `bearer.<base64url>`, and the server answers with the first, `flightdeck`.
 *
 * While the socket is down the board is marked stale (a banner, dimmed columns) and actions
 * are off; it reconnects with backoff from the last seq it saw, at once when the browser says
 * it is back online or the tab becomes visible. Signed out, it does not reconnect at all.
 */
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS } from './constants.js';
import { announce } from './announce.js';
import { $ } from './dom.js';
import { notify, state } from './store.js';

const socket = { ws: null, attempt: 0, timer: 0, failed: false, onMessage: () => {}, onOpen: () => {} };

/** `onMessage(text)` for each message, `onOpen()` once connected. */
export function handleSocket({ onMessage, onOpen }) {
  socket.onMessage = onMessage;
  socket.onOpen = onOpen;
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws?since=${state.lastSeq}`;
}

function socketProtocols() {
  if (!state.token) return ['flightdeck'];
  let binary = '';
  for (const byte of new TextEncoder().encode(state.token)) binary += String.fromCharCode(byte);
  const encoded = btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return ['flightdeck', `bearer.${encoded}`];
}

export function connectSocket() {
  clearTimeout(socket.timer);
  socket.timer = 0;
  if (state.connection === 'signed-out') return;
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
    setConnection('live');
    socket.onOpen();
  });
  ws.addEventListener('message', (message) => {
    if (socket.ws === ws && typeof message.data === 'string') socket.onMessage(message.data);
  });
  ws.addEventListener('close', () => {
    if (socket.ws !== ws) return;
    socket.ws = null;
    socket.failed = true;
    if (state.connection !== 'signed-out') setConnection('down');
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  clearTimeout(socket.timer);
  if (state.connection === 'signed-out') return;
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** socket.attempt);
  socket.attempt = Math.min(socket.attempt + 1, 10);
  socket.timer = setTimeout(connectSocket, delay);
}

/** Skips the backoff wait: the token changed, or the browser says it is back online. */
export function reconnectNow() {
  const current = socket.ws;
  if (current && current.readyState === WebSocket.OPEN) return;
  closeSocket();
  socket.attempt = 0;
  connectSocket();
}

/** Drops the socket (its close event is ignored from now on). */
export function closeSocket() {
  clearTimeout(socket.timer);
  const current = socket.ws;
  socket.ws = null;
  if (current) current.close();
}

const PILL = { live: 'live', down: 'reconnecting…', 'signed-out': 'not signed in' };

/** 'live' | 'down' | 'signed-out': the pill, the offline banner, the stale mark. */
export function setConnection(connection) {
  const before = state.connection;
  state.connection = connection;
  const conn = $('conn');
  conn.dataset.state = connection;
  conn.textContent = PILL[connection];
  const offline = connection !== 'live';
  document.body.classList.toggle('offline', offline);
  $('board').setAttribute('aria-busy', String(offline));
  const banner = $('offline-banner');
  // While the page first connects it is not offline yet: only say so once an attempt failed.
  banner.hidden = !offline || (connection === 'down' && !socket.failed);
  banner.textContent =
    connection === 'signed-out'
      ? 'Not signed in: the board cannot show or change anything until you sign in.'
      : 'Offline: the server cannot be reached. The board shows what it last knew, and actions come back when it reconnects.';
  for (const node of document.querySelectorAll('[data-needs-server]')) node.disabled = offline;
  if (before !== connection) {
    if (before === 'live' && connection === 'down') announce('Connection lost: the board is offline.');
    if (before !== 'live' && connection === 'live' && before !== undefined) announce('Connected: the board is live.');
    notify('connection', connection);
  }
}
