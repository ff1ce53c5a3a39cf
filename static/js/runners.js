/*
 * The runners panel beside the pool bar: every registered `flightdeck runner` with its name,
 * labels, slots used and free, version, last heartbeat in words, online or offline, and
 * draining; and, on the cards, why a ready item with required labels waits ("no online
 * runner has label gpu"). Refreshed from GET /api/runners on every runner:* event, on item
 * changes that can make an item routable or not, and every few seconds so "seconds ago" and
 * "offline" stay true. Runner names and labels are text only.
 */
import { api } from './api.js';
import { $, el, plural } from './dom.js';
import { markCard } from './render.js';
import { state } from './store.js';

const REFRESH_MS = 5000;
const SOON_MS = 300;
let timer = 0;
let ticking = 0;

/** Why each unroutable ready item waits, by item id. */
const unroutable = new Map();

/** The card's line for an item no online runner can take, or ''. */
export function unroutableText(item) {
  if (item.status !== 'ready') return '';
  const requires = unroutable.get(item.id);
  if (!requires) return '';
  return `no online runner has ${requires.length === 1 ? 'label' : 'labels'} ${requires.join(', ')}`;
}

/** "3 seconds ago", "2 minutes ago": when `iso` was, in words. */
export function agoText(iso, now = Date.now()) {
  const secs = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (!Number.isFinite(secs)) return 'never';
  if (secs < 5) return 'just now';
  if (secs < 60) return `${secs} seconds ago`;
  const mins = Math.round(secs / 60);
  if (mins < 60) return `${plural(mins, 'minute')} ago`;
  const hours = Math.round(mins / 60);
  if (hours < 48) return `${plural(hours, 'hour')} ago`;
  return `${plural(Math.round(hours / 24), 'day')} ago`;
}

/** Renders one row per runner into `container` (a list). */
export function renderRunners(container, runners) {
  const rows = runners.map((r) => {
    const state = r.draining ? 'draining' : r.online ? 'online' : 'offline';
    const labels = r.labels.length ? r.labels.join(', ') : 'no labels';
    return el(
      'li',
      { className: `runner ${state}`, 'data-runner': r.id, 'data-state': state },
      el('strong', { className: 'runner-name', text: r.name }),
      el('span', { className: 'runner-state', text: r.online ? (r.draining ? 'online, draining' : 'online') : r.draining ? 'offline, draining' : 'offline' }),
      el('span', { className: 'runner-labels', text: labels }),
      el('span', { className: 'runner-slots', text: `${r.slotsUsed} of ${plural(r.slots, 'slot')} used, ${r.slotsFree} free` }),
      el('span', { className: 'runner-version', text: `version ${r.version}` }),
      el('span', { className: 'runner-heartbeat', text: `last heartbeat ${agoText(r.lastHeartbeat)}` }),
    );
  });
  container.replaceChildren(...rows);
}

async function refreshRunners() {
  timer = 0;
  let overview;
  try {
    overview = await api('GET', '/api/runners');
  } catch {
    return; /* offline: the next event or tick refreshes the panel */
  }
  const section = $('runners');
  section.hidden = overview.runners.length === 0;
  renderRunners($('runner-list'), overview.runners);
  const before = new Set(unroutable.keys());
  unroutable.clear();
  for (const u of overview.unroutable) unroutable.set(u.itemId, u.requires);
  for (const id of new Set([...before, ...unroutable.keys()])) if (state.items.has(id)) markCard(id);
}

/** Refreshes the panel soon (many events in a burst make one request). */
export function scheduleRunnersRefresh() {
  if (!timer) timer = setTimeout(refreshRunners, SOON_MS);
}

export function wireRunners() {
  scheduleRunnersRefresh();
  if (!ticking) ticking = setInterval(scheduleRunnersRefresh, REFRESH_MS);
}
