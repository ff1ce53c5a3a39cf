// What the log viewer knows of an item's log: its attempts (one section each, with its line
// count) and the pages of lines fetched so far. A log may hold a million lines, so the store
// never holds it whole: it asks the server (`GET /api/items/{id}/transcript`) for the pages on
// screen, keeps at most PAGES_KEPT of them, and for a running attempt reads on from its last
// known line whenever the agent printed more.

export const PAGE = 500;
const PAGES_KEPT = 60;
const TAIL_MAX = 2000;

export class LogStore {
  constructor(itemId, api, onChange) {
    this.itemId = itemId;
    this.api = api;
    this.onChange = onChange;
    /** Attempts, oldest first: {sessionId, attempt, startedAt, outcome, running, lines, problem}. */
    this.attempts = [];
    /** `${sessionId}:${page}` -> {lines: [{raw, clipped, entries}], full}; in use order. */
    this.pages = new Map();
    this.loading = new Set();
    this.tail = { busy: false, again: false };
    /** sessionId -> the line after the last one read at its end. */
    this.read = new Map();
    this.closed = false;
    this.error = '';
  }

  path(query) {
    return `/api/items/${encodeURIComponent(this.itemId)}/transcript${query}`;
  }

  /** Loads the attempts and, for the last one, its last page (where a follower looks). */
  async open() {
    await this.refresh();
  }

  /** Reads the attempts anew, then any lines the running attempt printed since. */
  async refresh() {
    if (this.tail.busy) {
      this.tail.again = true;
      return;
    }
    this.tail.busy = true;
    try {
      do {
        this.tail.again = false;
        await this.readTail();
      } while (this.tail.again && !this.closed);
    } catch (err) {
      this.error = `The log could not be loaded: ${err.message}`;
      this.onChange();
    } finally {
      this.tail.busy = false;
    }
  }

  async readTail() {
    const last = this.attempts[this.attempts.length - 1];
    let query = '';
    if (last) {
      const from = this.read.has(last.sessionId) ? this.read.get(last.sessionId) : Math.max(0, last.lines - PAGE);
      query = `?session=${encodeURIComponent(last.sessionId)}&from=${from}&limit=${TAIL_MAX}`;
    }
    const answer = await this.api('GET', this.path(query));
    if (this.closed) return;
    this.error = '';
    this.attempts = answer.attempts;
    if (answer.session) {
      this.putLines(answer.session, answer.from, answer.lines);
      this.read.set(answer.session, answer.from + answer.lines.length);
      // More lines than one answer holds: read on.
      if (answer.lines.length === TAIL_MAX) this.tail.again = true;
    }
    const newest = this.attempts[this.attempts.length - 1];
    // A new attempt began (or this was the first look): read its end too.
    if (newest && newest.sessionId !== answer.session) this.tail.again = true;
    this.onChange();
  }

  putLines(sessionId, from, lines) {
    for (let i = 0; i < lines.length; ) {
      const n = from + i;
      const pageNo = Math.floor(n / PAGE);
      const key = `${sessionId}:${pageNo}`;
      let page = this.pages.get(key);
      if (!page) page = { lines: [] };
      this.pages.delete(key);
      this.pages.set(key, page);
      const start = n - pageNo * PAGE;
      const take = Math.min(PAGE - start, lines.length - i);
      if (page.lines.length < start) page.lines.length = start;
      for (let k = 0; k < take; k += 1) page.lines[start + k] = lines[i + k];
      i += take;
    }
    this.trim();
  }

  trim() {
    while (this.pages.size > PAGES_KEPT) {
      const oldest = this.pages.keys().next().value;
      this.pages.delete(oldest);
    }
  }

  /** Line `n` of a session, or undefined (and fetched) when it is not here yet. */
  line(sessionId, n) {
    const pageNo = Math.floor(n / PAGE);
    const page = this.pages.get(`${sessionId}:${pageNo}`);
    const line = page && page.lines[n - pageNo * PAGE];
    if (line === undefined) this.fetchPage(sessionId, pageNo);
    return line;
  }

  async fetchPage(sessionId, pageNo) {
    const key = `${sessionId}:${pageNo}`;
    if (this.loading.has(key) || this.closed) return;
    this.loading.add(key);
    try {
      const from = pageNo * PAGE;
      const answer = await this.api('GET', this.path(`?session=${encodeURIComponent(sessionId)}&from=${from}&limit=${PAGE}`));
      if (this.closed) return;
      // Only the lines: the attempts' counts move on through refresh(), in order.
      this.putLines(sessionId, from, answer.lines);
      this.onChange();
    } catch (err) {
      this.error = `Part of the log could not be loaded: ${err.message}`;
      this.onChange();
    } finally {
      this.loading.delete(key);
    }
  }

  async search(q, view) {
    const query = `?q=${encodeURIComponent(q)}&view=${view}`;
    return this.api('GET', `${this.path('/search')}${query}`);
  }

  close() {
    this.closed = true;
    this.pages.clear();
  }
}
