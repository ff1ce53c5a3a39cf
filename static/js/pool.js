/*
 * The agent pool panel: its size (validated here: an empty field is not a size, and 0 is
 * asked about, since it stops all dispatch), how many items are running (agents of this
 * server and outside runners' claims alike), free slots, pauses, the person on call, and one
 * row per working session.
 */
import { POOL_REFRESH_MS } from './constants.js';
import { api, describeError } from './api.js';
import { showToast } from './announce.js';
import { confirmAction } from './dialogs.js';
import { $, el, enc, formatDuration, formatNumber, plural, waitText } from './dom.js';
import { canAct } from './moves.js';
import { sessionTokens, state, subscribe } from './store.js';

let poolTimer = 0;

export function schedulePoolRefresh() {
  if (!poolTimer) poolTimer = setTimeout(refreshPool, POOL_REFRESH_MS);
}

async function refreshPool() {
  poolTimer = 0;
  try {
    const [pool, agents, status] = await Promise.all([api('GET', '/api/pool'), api('GET', '/api/agents'), api('GET', '/api/status')]);
    state.pool = pool;
    renderOnCall(status.onCall);
    state.agents = agents;
    renderPool();
  } catch {
    /* offline: the next event or resync refreshes the panel */
  }
}

export function setPoolSize(size) {
  if (!state.pool) return;
  state.pool.size = size;
  renderPool();
}

export function rememberAgent(agent) {
  if (!agent || !agent.id) return;
  state.agents = [agent, ...state.agents.filter((a) => a.id !== agent.id)];
  renderSessions();
}

function inFlightCount() {
  let n = 0;
  for (const item of state.items.values()) if (item.status === 'in_flight') n += 1;
  return n;
}

export function renderPool() {
  const pool = state.pool;
  if (!pool) return;
  const size = $('pool-size');
  if (document.activeElement !== size) size.value = String(pool.size);
  renderRunning();
  $('dispatch').hidden = pool.autoDispatch !== false;
  const held = $('pool-held');
  const pause = pool.pause ? pauseText(pool.pause) : '';
  held.hidden = !pool.held && !pause;
  held.textContent = pause ? `Dispatch paused: ${pause}` : pool.held ? `Dispatch paused: ${pool.held}` : '';
  renderSessions();
}

/** Running: every item in flight, whoever claimed it; free: this server's open slots. */
function renderRunning() {
  const pool = state.pool;
  if (!pool) return;
  const own = pool.running ?? 0;
  const running = Math.max(own, inFlightCount());
  const outside = running - own;
  const count = $('pool-running');
  count.textContent = String(running);
  $('pool-outside').hidden = outside <= 0;
  $('pool-outside').textContent = outside > 0 ? ` (${outside} by outside runners)` : '';
  $('pool-free').textContent = String(pool.free ?? 0);
}

subscribe('item', (before, after) => {
  if ((before && before.status === 'in_flight') !== (after && after.status === 'in_flight')) renderRunning();
});
subscribe('removed', () => renderRunning());
subscribe('tokens', (sessionId) => updateSessionTokens(sessionId));

/** One line for the person on call: what waits on them, the longest wait, recent failures. */
function renderOnCall(onCall) {
  const line = $('on-call');
  if (!line || !onCall) return;
  const bits = [];
  if (onCall.waitingOnPerson > 0) bits.push(`${plural(onCall.waitingOnPerson, 'item')} wait on you`);
  for (const [key, what] of [['oldestReview', 'in review'], ['oldestBlocked', 'blocked']]) {
    const item = onCall[key];
    if (item) bits.push(`oldest ${what}: ${item.title}, ${waitText(item.waitingSecs)}`);
  }
  if (onCall.failuresLastHour > 0) bits.push(`${plural(onCall.failuresLastHour, 'failure')} in the last hour`);
  line.hidden = bits.length === 0;
  line.textContent = bits.join(' · ');
}

/** "rate limited until 14:05 (message)"; the panel refreshes when the pause ends by itself. */
function pauseText(pause) {
  const until = new Date(pause.until);
  const left = until.getTime() - Date.now();
  if (Number.isFinite(left)) setTimeout(schedulePoolRefresh, Math.max(0, left) + 500);
  const time = Number.isFinite(left) ? ` until ${until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` : '';
  return `${pause.reason}${time}${pause.message ? ` (${pause.message})` : ''}`;
}

function renderSessions() {
  const working = state.agents.filter((agent) => agent.status === 'working');
  $('sessions').replaceChildren(...working.map(sessionRow));
  $('sessions-empty').hidden = working.length > 0;
}

function sessionRow(agent) {
  const itemId = agent.currentWorkItemId || agent.workItemId;
  const item = state.items.get(itemId);
  return el(
    'li',
    { className: 'session', 'data-agent-id': agent.id },
    el('button', { type: 'button', className: 'link session-item', 'data-open-item': itemId, text: item ? item.title : 'an item not on this board' }),
    el('span', { className: 'session-status', text: agent.status }),
    el('span', { className: 'runtime', 'data-started': agent.startedAt, text: runtimeText(agent.startedAt) }),
    el('span', { className: 'tokens', text: `${formatNumber(sessionTokens(agent))} tokens` }),
    el('button', {
      type: 'button',
      className: 'small cancel-session',
      'data-agent-id': agent.id,
      'data-needs-server': true,
      'aria-label': `Cancel the agent on ${item ? item.title : 'this item'}`,
      text: 'Cancel',
    }),
  );
}

function runtimeText(startedAt) {
  const started = new Date(startedAt).getTime();
  return Number.isNaN(started) ? '' : formatDuration(Date.now() - started);
}

export function tickRuntimes() {
  for (const node of document.querySelectorAll('#sessions .runtime')) {
    node.textContent = runtimeText(node.dataset.started);
  }
}

function updateSessionTokens(sessionId) {
  const agent = state.agents.find((a) => a.id === sessionId);
  const row = agent && document.querySelector(`#sessions li[data-agent-id="${CSS.escape(sessionId)}"] .tokens`);
  if (row) row.textContent = `${formatNumber(sessionTokens(agent))} tokens`;
}

/** What is wrong with the typed pool size, or null: never sends a size nobody meant. */
export function poolSizeProblem(text) {
  const trimmed = String(text).trim();
  if (trimmed === '') return 'The pool size cannot be empty: type how many agents may run at once.';
  const size = Number(trimmed);
  if (!Number.isInteger(size) || size < 0) return `The pool size must be a whole number, 0 or more (not “${trimmed}”).`;
  return null;
}

function restoreSize(message) {
  const input = $('pool-size');
  if (state.pool) input.value = String(state.pool.size);
  const hint = $('pool-error');
  hint.textContent = message || '';
  hint.hidden = !message;
  input.setAttribute('aria-invalid', String(Boolean(message)));
}

async function resizePool() {
  const input = $('pool-size');
  const problem = poolSizeProblem(input.value);
  if (problem) {
    restoreSize(problem);
    return;
  }
  const size = Number(input.value.trim());
  if (state.pool && size === state.pool.size) {
    restoreSize('');
    return;
  }
  if (!canAct()) {
    restoreSize('');
    return;
  }
  if (size === 0 && !(await confirmAction('A pool of 0 stops all dispatch: no agent starts until you raise it again. Set it to 0?', 'Stop dispatch'))) {
    restoreSize('');
    return;
  }
  try {
    state.pool = await api('PUT', '/api/pool', { size });
    restoreSize('');
    renderPool();
  } catch (err) {
    restoreSize(describeError(err));
  }
}

async function dispatchNow() {
  if (!canAct()) return;
  const button = $('dispatch');
  button.disabled = true;
  try {
    const result = await api('POST', '/api/dispatch');
    const started = (result && result.started) || [];
    showToast(started.length ? `Started ${plural(started.length, 'agent')}.` : 'Nothing to dispatch: no free slot or no item ready to run.', 'info');
    schedulePoolRefresh();
  } catch (err) {
    showToast(describeError(err));
  } finally {
    button.disabled = false;
  }
}

async function cancelSession(agentId, button) {
  if (!canAct()) return;
  button.disabled = true;
  try {
    await api('POST', `/api/agents/${enc(agentId)}/cancel`);
    schedulePoolRefresh();
  } catch (err) {
    showToast(describeError(err));
    button.disabled = false;
  }
}

export function wirePool() {
  $('pool-size').addEventListener('change', resizePool);
  $('dispatch').addEventListener('click', dispatchNow);
  $('pool').addEventListener('click', (event) => {
    const cancel = event.target.closest('.cancel-session');
    if (cancel) cancelSession(cancel.dataset.agentId, cancel);
  });
}
