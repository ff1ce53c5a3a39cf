// The agent log viewer of an item's drawer: one section per attempt, a parsed view by default
// (messages, tool calls, errors, tokens; raw lines one click away), search, follow, download.
//
// It stays fast on a log of any length: only the rows on screen (plus a few) are in the page,
// one fixed-height row per line, over a spacer as tall as the whole log; lines are fetched a
// page at a time from the server as they scroll into view (see store.js); whatever changes
// (live lines, scrolling, fetched pages) is drawn at most once per animation frame. Everything
// an agent printed is shown as text (ansi.js), never parsed as HTML.
//
// Contract with the drawer: mountLog(container, { itemId, api, onClose }) returns
// { appendLive(event), destroy() }; appendLive gets every live WebSocket event of the item.

import { appendAnsi, visibleText } from './ansi.js';
import { LogStore } from './store.js';

const ROW_HEIGHT = 18;
const OVERSCAN = 20;
/** Characters of a line drawn; the server already cut it at 2,000 (the raw download has all). */
const DRAWN_MAX = 1000;
const KIND_LABEL = { tokens: 'tokens', artifact: 'artifact', report: 'report', verdict: 'verdict', error: 'error', retry: 'retry' };

let stylesheetAdded = false;

function addStylesheet() {
  if (stylesheetAdded) return;
  stylesheetAdded = true;
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('./logview.css', import.meta.url).href;
  document.head.append(link);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (/^aria[A-Z]/.test(key)) node.setAttribute(`aria-${key.slice(4).toLowerCase()}`, value);
    else if (key === 'role' || key === 'type' || key === 'title') node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter(Boolean));
  return node;
}

// `onClose` is part of the drawer's contract; the drawer closes itself (Escape, its button), so
// the viewer has no use for it yet.
export function mountLog(container, { itemId, api } = {}) {
  addStylesheet();
  const view = new LogView(container, itemId, api);
  view.start();
  return { appendLive: (event) => view.appendLive(event), destroy: () => view.destroy() };
}

class LogView {
  constructor(container, itemId, api) {
    this.container = container;
    this.itemId = itemId;
    this.store = new LogStore(itemId, api, () => this.schedule());
    this.mode = 'parsed';
    this.follow = true;
    this.collapsed = new Set();
    this.search = { q: '', needle: '', matches: [], at: -1, busy: false };
    this.frame = 0;
    this.liveTimer = 0;
    this.lastScrollTop = 0;
    this.build();
  }

  build() {
    this.modeButton = el('button', { type: 'button', className: 'lv-mode', text: 'Show raw', title: 'Switch between the parsed view and the raw lines' });
    this.searchInput = el('input', { type: 'search', className: 'lv-search', placeholder: 'Search the log', ariaLabel: 'Search the log' });
    this.prevButton = el('button', { type: 'button', className: 'lv-prev', text: '↑', title: 'Previous match', ariaLabel: 'Previous match' });
    this.nextButton = el('button', { type: 'button', className: 'lv-next', text: '↓', title: 'Next match', ariaLabel: 'Next match' });
    this.countText = el('span', { className: 'lv-count', ariaLive: 'polite' });
    this.followButton = el('button', { type: 'button', className: 'lv-follow', text: 'Following', title: 'Keep the newest line in view' });
    this.downloadButton = el('button', { type: 'button', className: 'lv-download', text: 'Download raw' });
    const toolbar = el('div', { className: 'lv-toolbar' }, this.modeButton, this.searchInput, this.prevButton, this.nextButton, this.countText, this.followButton, this.downloadButton);
    this.rows = el('div', { className: 'lv-rows' });
    this.spacer = el('div', { className: 'lv-spacer' }, this.rows);
    this.scroller = el('div', { className: 'lv-scroller', tabIndex: 0, role: 'log', ariaLabel: 'Agent log' }, this.spacer);
    this.status = el('div', { className: 'lv-status', ariaLive: 'polite' });
    this.root = el('div', { className: 'logview', dataset: { mode: this.mode } }, toolbar, this.scroller, this.status);
    this.container.replaceChildren(this.root);

    this.modeButton.addEventListener('click', () => this.toggleMode());
    this.searchInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        if (this.searchInput.value.trim() === this.search.q) this.step(e.shiftKey ? -1 : 1);
        else this.runSearch();
      }
    });
    this.searchInput.addEventListener('search', () => {
      if (!this.searchInput.value) this.clearSearch();
    });
    this.prevButton.addEventListener('click', () => this.step(-1));
    this.nextButton.addEventListener('click', () => this.step(1));
    this.followButton.addEventListener('click', () => this.setFollow(!this.follow));
    this.downloadButton.addEventListener('click', () => this.download());
    this.scroller.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.scroller.addEventListener('wheel', (e) => {
      if (e.deltaY < 0) this.setFollow(false);
    }, { passive: true });
    this.scroller.addEventListener('keydown', (e) => {
      if (e.key === 'End') this.setFollow(true);
      else if (['ArrowUp', 'PageUp', 'Home'].includes(e.key)) this.setFollow(false);
    });
    this.rows.addEventListener('click', (e) => {
      const header = e.target.closest('.lv-header');
      if (header) this.toggleSection(header.dataset.session);
    });
  }

  start() {
    this.store.open();
    this.schedule();
  }

  destroy() {
    this.store.close();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.liveTimer);
    this.container.replaceChildren();
  }

  /** A live event of this item: the agent printed (progress) or an attempt began or ended. */
  appendLive(event) {
    if (!event) return;
    // Progress arrives up to 5 times a second per agent; one read of the new lines per frame's
    // worth of events is enough.
    if (this.liveTimer) return;
    this.liveTimer = setTimeout(() => {
      this.liveTimer = 0;
      this.store.refresh();
    }, 50);
  }

  /* ------------------------------------------------------------ layout */

  /** The rows: for each attempt a header, then its lines unless folded. */
  sections() {
    let row = 0;
    return this.store.attempts.map((a) => {
      const shown = this.collapsed.has(a.sessionId) ? 0 : Math.max(a.lines, 1);
      const section = { attempt: a, start: row, count: 1 + shown };
      row += section.count;
      return section;
    });
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const sections = this.sections();
    const total = sections.reduce((n, s) => n + s.count, 0);
    const height = total * ROW_HEIGHT;
    if (this.spacer.style.height !== `${height}px`) this.spacer.style.height = `${height}px`;
    if (this.follow) this.scrollTo(height);
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + this.scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    this.rows.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    const wanted = [];
    let s = 0;
    for (let row = first; row < last; row += 1) {
      while (s < sections.length - 1 && row >= sections[s].start + sections[s].count) s += 1;
      wanted.push(this.rowAt(sections[s], row));
    }
    this.drawRows(wanted);
    this.renderStatus(total);
  }

  /** What row `row` of a section shows: its header or one of its lines. */
  rowAt(section, row) {
    const a = section.attempt;
    if (row === section.start) return { key: `h:${a.sessionId}:${a.lines}:${a.outcome || ''}:${this.collapsed.has(a.sessionId)}`, header: a };
    const n = row - section.start - 1;
    if (a.lines === 0) return { key: `e:${a.sessionId}:${a.problem || ''}`, empty: a };
    const line = this.store.line(a.sessionId, n);
    const current = this.currentMatch();
    const isCurrent = current && current.sessionId === a.sessionId && current.line === n;
    return { key: `l:${a.sessionId}:${n}:${line ? 1 : 0}:${this.mode}:${this.search.needle}:${isCurrent}`, line, n, attempt: a, isCurrent };
  }

  drawRows(wanted) {
    const have = this.rows.children;
    while (have.length > wanted.length) this.rows.lastChild.remove();
    for (let i = 0; i < wanted.length; i += 1) {
      let node = have[i];
      if (!node) {
        node = document.createElement('div');
        this.rows.append(node);
      }
      if (node.dataset.key === wanted[i].key) continue;
      node.dataset.key = wanted[i].key;
      this.fillRow(node, wanted[i]);
    }
  }

  fillRow(node, row) {
    node.replaceChildren();
    node.removeAttribute('data-session');
    node.removeAttribute('data-line');
    if (row.header) {
      const a = row.header;
      node.className = 'lv-row lv-header';
      node.dataset.session = a.sessionId;
      const folded = this.collapsed.has(a.sessionId);
      const started = new Date(a.startedAt);
      const when = Number.isNaN(started.getTime()) ? '' : ` · started ${started.toLocaleString()}`;
      const end = a.running ? 'running' : a.outcome || 'ended';
      node.setAttribute('role', 'button');
      node.setAttribute('aria-expanded', String(!folded));
      node.title = folded ? 'Show this attempt' : 'Fold this attempt';
      node.append(`${folded ? '▸' : '▾'} Attempt ${a.attempt}${when} · ${end} · ${a.lines.toLocaleString()} lines`);
      return;
    }
    node.removeAttribute('role');
    node.removeAttribute('aria-expanded');
    node.removeAttribute('title');
    if (row.empty) {
      node.className = 'lv-row lv-muted';
      node.textContent = row.empty.problem || (row.empty.running ? 'No output yet.' : 'No output recorded.');
      return;
    }
    node.className = `lv-row lv-line${row.isCurrent ? ' lv-current' : ''}`;
    node.dataset.session = row.attempt.sessionId;
    node.dataset.line = String(row.n);
    const line = row.line;
    if (!line) {
      // Not read yet: a page of it is on its way.
      node.classList.add('lv-muted', 'lv-loading');
      node.textContent = '…';
      return;
    }
    const needle = this.search.needle;
    if (this.mode === 'raw') {
      appendAnsi(node, clipText(line.raw), needle);
      if (line.clipped || line.raw.length > DRAWN_MAX) node.append(el('span', { className: 'lv-clipped', text: '… (cut; the whole line is in the raw download)' }));
      return;
    }
    if (!line.entries.length) {
      node.classList.add('lv-muted');
      node.textContent = '·';
      return;
    }
    line.entries.forEach((entry, i) => {
      if (i) node.append(el('span', { className: 'lv-sep', text: ' · ' }));
      const part = el('span', { className: `lv-entry lv-${entry.kind}` });
      if (KIND_LABEL[entry.kind]) part.append(el('span', { className: 'lv-kind', text: KIND_LABEL[entry.kind] }));
      appendAnsi(part, clipText(entry.text), needle);
      node.append(part);
    });
  }

  renderStatus(total) {
    const running = this.store.attempts.some((a) => a.running);
    let text = '';
    if (this.store.error) text = this.store.error;
    else if (!this.store.attempts.length) text = 'No agent has worked on this item yet.';
    else if (!this.follow && running) text = 'Paused: scroll to the end or press Following to see new lines.';
    else text = `${(total - this.store.attempts.length).toLocaleString()} lines${running ? ' · live' : ''}`;
    if (this.status.textContent !== text) this.status.textContent = text;
    this.root.dataset.follow = String(this.follow);
    this.followButton.textContent = this.follow ? 'Following' : 'Follow';
    this.followButton.setAttribute('aria-pressed', String(this.follow));
  }

  /* ------------------------------------------------------------ scrolling */

  scrollTo(top) {
    const max = Math.max(0, top - this.scroller.clientHeight);
    if (Math.abs(this.scroller.scrollTop - max) > 1) {
      this.scroller.scrollTop = max;
    }
    this.lastScrollTop = this.scroller.scrollTop;
  }

  onScroll() {
    const top = this.scroller.scrollTop;
    const atEnd = top + this.scroller.clientHeight >= this.scroller.scrollHeight - ROW_HEIGHT;
    if (top < this.lastScrollTop - 2 && !atEnd) this.setFollow(false);
    else if (atEnd && !this.follow && top > this.lastScrollTop) this.setFollow(true);
    this.lastScrollTop = top;
    this.schedule();
  }

  setFollow(on) {
    if (this.follow === on) return;
    this.follow = on;
    this.schedule();
  }

  toggleSection(sessionId) {
    if (this.collapsed.has(sessionId)) this.collapsed.delete(sessionId);
    else this.collapsed.add(sessionId);
    this.schedule();
  }

  toggleMode() {
    this.mode = this.mode === 'parsed' ? 'raw' : 'parsed';
    this.root.dataset.mode = this.mode;
    this.modeButton.textContent = this.mode === 'parsed' ? 'Show raw' : 'Show parsed';
    if (this.search.q) this.runSearch();
    this.schedule();
  }

  /* ------------------------------------------------------------ search */

  currentMatch() {
    return this.search.at >= 0 ? this.search.matches[this.search.at] : null;
  }

  async runSearch() {
    const q = this.searchInput.value.trim();
    if (!q) return this.clearSearch();
    this.search = { q, needle: visibleText(q).toLowerCase(), matches: [], at: -1, busy: true };
    this.countText.textContent = 'Searching…';
    try {
      const found = await this.store.search(q, this.mode);
      if (this.search.q !== q) return undefined;
      this.search.matches = found.matches;
      this.search.truncated = found.truncated;
      this.search.busy = false;
      if (found.matches.length) this.step(1);
      else this.countText.textContent = 'No matches';
    } catch (err) {
      this.countText.textContent = err.message;
    }
    this.schedule();
    return undefined;
  }

  clearSearch() {
    this.search = { q: '', needle: '', matches: [], at: -1, busy: false };
    this.countText.textContent = '';
    this.schedule();
  }

  step(direction) {
    const { matches } = this.search;
    if (!matches.length) return;
    this.search.at = (this.search.at + direction + matches.length) % matches.length;
    const more = this.search.truncated ? '+' : '';
    this.countText.textContent = `${this.search.at + 1} of ${matches.length.toLocaleString()}${more}`;
    this.reveal(this.currentMatch());
  }

  /** Scrolls line `line` of a session into the middle of the view, unfolding its section. */
  reveal({ sessionId, line }) {
    this.setFollow(false);
    this.collapsed.delete(sessionId);
    const section = this.sections().find((s) => s.attempt.sessionId === sessionId);
    if (!section) return;
    const row = section.start + 1 + line;
    const top = Math.max(0, row * ROW_HEIGHT - this.scroller.clientHeight / 2);
    this.spacer.style.height = `${this.sections().reduce((n, s) => n + s.count, 0) * ROW_HEIGHT}px`;
    this.scroller.scrollTop = top;
    this.lastScrollTop = this.scroller.scrollTop;
    this.schedule();
  }

  /* ------------------------------------------------------------ download */

  async download() {
    this.downloadButton.disabled = true;
    try {
      const text = await this.store.api('GET', `/api/items/${encodeURIComponent(this.itemId)}/log`, undefined, { text: true });
      const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
      const link = el('a', { href: url, download: `flightdeck-${this.itemId.slice(0, 8)}-log.txt` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      this.status.textContent = `The log could not be downloaded: ${err.message}`;
    } finally {
      this.downloadButton.disabled = false;
    }
  }
}

function clipText(text) {
  return text.length > DRAWN_MAX ? text.slice(0, DRAWN_MAX) : text;
}
