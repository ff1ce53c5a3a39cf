/*
 * What waits on a person, seen from another tab: the count in the tab title and as a badge
 * on the favicon (drawn on a canvas, served as a data: URL the CSP allows), and, if the person
 * turned them on, a browser notification when an item reaches Review or Blocked.
 */
import { NOTIFY_KEY, STATUS_LABEL, WAITING_STATUSES } from './constants.js';
import { $, store, stored } from './dom.js';
import { state, subscribe, waitingOnPerson } from './store.js';

const attention = { shown: -1, frame: 0 };
const BASE_TITLE = 'flightdeck';

function scheduleUpdate() {
  if (attention.frame) return;
  attention.frame = setTimeout(update, 100);
}

function update() {
  attention.frame = 0;
  const n = waitingOnPerson();
  if (n === attention.shown) return;
  attention.shown = n;
  document.title = n > 0 ? `(${n}) ${BASE_TITLE}` : BASE_TITLE;
  $('favicon').href = favicon(n);
}

function favicon(n) {
  const canvas = document.createElement('canvas');
  canvas.width = 32;
  canvas.height = 32;
  const g = canvas.getContext('2d');
  if (!g) return 'data:,';
  g.fillStyle = '#2f6feb';
  g.beginPath();
  g.moveTo(4, 26);
  g.lineTo(28, 16);
  g.lineTo(4, 6);
  g.lineTo(9, 16);
  g.closePath();
  g.fill();
  if (n > 0) {
    g.fillStyle = '#cf222e';
    g.beginPath();
    g.arc(23, 9, 9, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = '#fff';
    g.font = 'bold 13px sans-serif';
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(n > 9 ? '9+' : String(n), 23, 10);
  }
  return canvas.toDataURL('image/png');
}

function notificationsOn() {
  return stored(NOTIFY_KEY) === 'on' && 'Notification' in window && Notification.permission === 'granted';
}

function renderNotifyButton() {
  const button = $('notify');
  if (!('Notification' in window)) {
    button.hidden = true;
    return;
  }
  const on = notificationsOn();
  button.setAttribute('aria-pressed', String(on));
  button.textContent = on ? 'Notifications on' : 'Notify me';
  button.title = on ? 'Turn off notifications for items reaching Review or Blocked' : 'Get a notification when an item reaches Review or Blocked';
}

async function toggleNotifications() {
  if (notificationsOn()) {
    store(NOTIFY_KEY, null);
  } else {
    const permission = await Notification.requestPermission();
    store(NOTIFY_KEY, permission === 'granted' ? 'on' : null);
  }
  renderNotifyButton();
}

function onMoved(id, from, to) {
  if (!WAITING_STATUSES.includes(to) || !notificationsOn() || document.visibilityState === 'visible') return;
  const item = state.items.get(id);
  if (!item) return;
  try {
    const note = new Notification(`${item.title}: ${STATUS_LABEL[to]}`, {
      body: to === 'review' ? 'Ready for your review.' : item.statusReason || 'Blocked: it needs you.',
      tag: `flightdeck-${id}`,
    });
    note.onclick = () => window.focus();
  } catch {
    /* notifications not allowed here after all */
  }
}

export function wireAttention() {
  subscribe('item', scheduleUpdate);
  subscribe('removed', scheduleUpdate);
  subscribe('moved', onMoved);
  $('notify').addEventListener('click', toggleNotifications);
  renderNotifyButton();
  update();
}
