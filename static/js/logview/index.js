/*
 * The drawer's agent log, behind the contract the drawer mounts it with:
 * `mountLog(container, { itemId, api, onClose })` returns `{ appendLive(event), destroy() }`.
 * This plain version loads `GET /api/items/{id}/log` into a <pre> and appends live progress
 * lines; a status change into or out of In flight (an attempt starting or ending) reloads it.
 */

export function mountLog(container, { itemId, api }) {
  const pre = document.createElement('pre');
  pre.id = 'log';
  pre.tabIndex = 0;
  pre.setAttribute('role', 'log');
  pre.setAttribute('aria-label', 'Agent log');
  container.replaceChildren(pre);
  let gen = 0;
  let loading = false;
  let held = [];

  function appendLine(message) {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
    const text = String(message);
    pre.append(document.createTextNode(text.endsWith('\n') ? text : `${text}\n`));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function load() {
    const mine = ++gen;
    loading = true;
    held = [];
    pre.textContent = '';
    pre.dataset.state = 'loading';
    let text;
    try {
      text = await api('GET', `/api/items/${encodeURIComponent(itemId)}/log`, undefined, { text: true });
    } catch (err) {
      text = `(the log could not be loaded: ${err.message})\n`;
    }
    if (mine !== gen) return;
    pre.textContent = text;
    delete pre.dataset.state;
    const tail = text.slice(-65536);
    const waiting = held;
    loading = false;
    held = [];
    for (const message of waiting) if (!tail.includes(message)) appendLine(message);
    pre.scrollTop = pre.scrollHeight;
  }

  load();
  return {
    appendLive(event) {
      const data = (event && event.data) || {};
      if (event.type === 'work:progress' && typeof data.message === 'string') {
        if (loading) held.push(data.message);
        else appendLine(data.message);
      } else if (event.type === 'work:status_changed' && (data.from === 'in_flight' || data.to === 'in_flight')) {
        load();
      }
    },
    destroy() {
      gen += 1;
      pre.remove();
    },
  };
}
