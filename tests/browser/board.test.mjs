// The board as a person uses it: Debian's Chromium driven by playwright-core against a real
// `flightdeck serve` (demo agent, pool of 2) in a temporary folder.
//
//   FLIGHTDECK_BIN=$PWD/target/debug/flightdeck node --test tests/browser/
//
// Tests run in order and share one server (the restart test has its own): an item created in
// one test is moved on in the next, as a person would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, makeWorkspace, startServer } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT_MS = 15_000;
const TEST_TIMEOUT_MS = 60_000;

let browser;
const contexts = new Set();
let workspace;
let server;
let page;
const pageErrors = [];

/* ------------------------------------------------------------------ helpers */

const column = (status) => `#board section.column[data-status="${status}"]`;
const cardIn = (status, id) => `${column(status)} article.card[data-id="${id}"]`;
const anyCard = (id) => `#board article.card[data-id="${id}"]`;

/** Waits until the card is shown in `status`'s column, settled (the server agreed). */
async function waitForCardIn(p, status, id, timeout = WAIT_MS) {
  await p.locator(`${cardIn(status, id)}:not(.pending)`).waitFor({ state: 'visible', timeout });
}

/**
 * Opens the board in a window of its own (a fresh browser context): tabs of one window would
 * be backgrounded, and a background tab draws no frames.
 */
async function openBoard(url, { watch } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  contexts.add(ctx);
  ctx.on('close', () => contexts.delete(ctx));
  const p = await ctx.newPage();
  p.on('close', () => ctx.close().catch(() => {}));
  p.on('pageerror', (err) => pageErrors.push(`${p.url()}: ${err.message}`));
  if (watch) watch(p);
  await p.goto(url);
  await p.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
  return p;
}

async function createItem(srv, fields) {
  const item = await srv.api('POST', '/api/items', { status: 'inbox', ...fields });
  assert.ok(item && item.id, 'POST /api/items returned an id');
  return item;
}

async function closeDrawer(p) {
  if (await p.locator('#drawer').isVisible()) {
    await p.locator('#drawer-close').click();
    await p.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT_MS });
  }
}

/** Drags a card with the real mouse onto a column's header (HTML5 drag and drop). */
async function dragCard(p, id, toStatus) {
  await p.locator(anyCard(id)).dragTo(p.locator(`${column(toStatus)} .column-head`));
}

/** Runs a test body; on failure saves a screenshot of every open page to artifacts/. */
function browserTest(name, body) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    try {
      await body(t);
    } catch (err) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 60);
      let n = 0;
      for (const p of [...contexts].flatMap((ctx) => ctx.pages())) {
        await p.screenshot({ path: path.join(ARTIFACTS, `failed-${slug}-${n++}.png`) }).catch(() => {});
      }
      throw err;
    }
  });
}

/* ------------------------------------------------------------------ setup */

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  workspace = makeWorkspace(0);
  server = await startServer(workspace);
  page = await openBoard(server.signInUrl);
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

/* ------------------------------------------------------------------ tests */

browserTest('the board loads with seven columns in order and a live connection', async () => {
  const columns = await page.$$eval('#board section.column', (nodes) =>
    nodes.map((node) => [node.dataset.status, node.querySelector('.column-head h2').textContent.trim()]),
  );
  assert.deepEqual(columns, [
    ['inbox', 'Inbox'],
    ['planning', 'Planning'],
    ['ready', 'Ready'],
    ['in_flight', 'In flight'],
    ['review', 'Review'],
    ['done', 'Done'],
    ['blocked', 'Blocked'],
  ]);
  for (const status of ['inbox', 'planning', 'ready', 'in_flight', 'review', 'done', 'blocked']) {
    assert.ok(await page.locator(column(status)).isVisible(), `${status} column is visible`);
  }
  await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
  assert.equal(await page.locator('#conn').textContent(), 'live');
});

let flowId = null;

browserTest('an item created through the dialog appears in Inbox', async () => {
  await page.locator('#new-item').click();
  const dialog = page.locator('dialog#item-dialog');
  await dialog.waitFor({ state: 'visible', timeout: WAIT_MS });
  await dialog.locator('[name="title"]').fill('Write the release notes');
  await dialog.locator('[name="description"]').fill('Summarise what changed since the last release.');
  await dialog.locator('[name="criterion"]').first().fill('Every merged change is listed');
  await dialog.locator('[name="priority"]').selectOption('high');
  await dialog.locator('[name="status"]').selectOption('inbox');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden', timeout: WAIT_MS });

  const card = page.locator(`${column('inbox')} article.card`, { hasText: 'Write the release notes' });
  await card.waitFor({ state: 'visible', timeout: WAIT_MS });
  flowId = await card.getAttribute('data-id');
  assert.ok(flowId, 'the card carries its item id');
  assert.equal(await card.getAttribute('data-priority'), 'high');
  assert.equal(await card.getAttribute('draggable'), 'true');

  const stored = await server.api('GET', `/api/items/${flowId}`);
  assert.equal(stored.status, 'inbox');
  assert.equal(stored.priority, 'high');
  assert.deepEqual(stored.acceptanceCriteria, ['Every merged change is listed']);
});

browserTest('dragging to Ready hands the item to the demo agent: live log, then Review', async () => {
  if (!flowId) flowId = (await createItem(server, { title: 'Write the release notes', priority: 'high' })).id;
  await waitForCardIn(page, 'inbox', flowId);

  await dragCard(page, flowId, 'planning');
  await waitForCardIn(page, 'planning', flowId);
  assert.equal((await server.api('GET', `/api/items/${flowId}`)).status, 'planning');

  await dragCard(page, flowId, 'ready');
  // The pool has free slots, so the agent claims it at once: it shows In flight, live.
  await page.locator(cardIn('in_flight', flowId)).waitFor({ state: 'visible', timeout: WAIT_MS });
  // The card shows the agent's latest progress line, and the pool panel the running session.
  await page.waitForFunction(
    (id) => {
      const line = document.querySelector(`article.card[data-id="${id}"] .activity`);
      return Boolean(line && line.textContent.trim() && line.textContent !== 'starting…');
    },
    flowId,
    { timeout: WAIT_MS, polling: 50 },
  );
  await page.locator(`#sessions li.session button[data-open-item="${flowId}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.screenshot({ path: path.join(ARTIFACTS, 'board-mid-run.png') });

  // Open the drawer while it runs and watch the log grow.
  await page.locator(anyCard(flowId)).click();
  await page.locator(`#drawer[data-id="${flowId}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  // The log viewer's line rows (its section header counts the lines, so it changes as they come).
  // Rows still loading show a placeholder; only lines read so far count.
  const logLines = () => [...document.querySelectorAll('#drawer-log .lv-line:not(.lv-loading)')].map((row) => row.textContent).join('\n');
  await page.locator('#drawer-log .lv-line:not(.lv-loading)').first().waitFor({ timeout: WAIT_MS });
  const first = await page.evaluate(logLines);
  await page.waitForFunction(
    (before) => {
      const text = [...document.querySelectorAll('#drawer-log .lv-line:not(.lv-loading)')].map((row) => row.textContent).join('\n');
      return text.length > before.length && text.startsWith(before);
    },
    first,
    { timeout: WAIT_MS, polling: 50 },
  );
  await page.waitForFunction(
    () => document.querySelector('#drawer-log .lv-rows').textContent.includes('done: plan and acceptance report written'),
    null,
    { timeout: WAIT_MS },
  );
  assert.ok(!first.includes('done: plan and acceptance report written'), 'the drawer opened before the run ended');

  await waitForCardIn(page, 'review', flowId);
  await page.locator('#approve').waitFor({ state: 'visible', timeout: WAIT_MS });
  const stored = await server.api('GET', `/api/items/${flowId}`);
  assert.equal(stored.status, 'review');
  assert.ok(stored.artifacts.length > 0, 'the demo agent left artifacts');
});

browserTest('approving from the drawer moves the card to Done', async () => {
  if (!(await page.locator(`#drawer[data-id="${flowId}"]`).isVisible())) {
    await page.locator(anyCard(flowId)).click();
  }
  await page.locator('#approve').click();
  await waitForCardIn(page, 'done', flowId);
  await page.locator('#approve').waitFor({ state: 'hidden', timeout: WAIT_MS });
  assert.equal((await server.api('GET', `/api/items/${flowId}`)).status, 'done');
  await closeDrawer(page);
});

browserTest('an illegal drag snaps back and shows the server message', async () => {
  const item = await createItem(server, { title: 'Not ready for Done' });
  await waitForCardIn(page, 'inbox', item.id);

  await dragCard(page, item.id, 'done');
  const toast = page.locator('#toast');
  await toast.waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.waitForFunction(
    () => document.getElementById('toast-text').textContent.includes('allowed moves'),
    null,
    { timeout: WAIT_MS },
  );
  await waitForCardIn(page, 'inbox', item.id);
  assert.equal(await page.locator(cardIn('done', item.id)).count(), 0);
  assert.equal(await page.locator(anyCard(item.id)).count(), 1);
  assert.equal((await server.api('GET', `/api/items/${item.id}`)).status, 'inbox');

  await page.locator('#toast-close').click();
  await toast.waitFor({ state: 'hidden', timeout: WAIT_MS });
});

browserTest('item text is shown as text, never run as HTML', async () => {
  const title = '<img src=x onerror="window.__pwned=1">';
  const item = await createItem(server, { title, description: '<script>window.__pwned=2</script>' });
  await waitForCardIn(page, 'inbox', item.id);
  const card = page.locator(anyCard(item.id));
  assert.equal((await card.locator('.card-title').textContent()).trim(), title);
  assert.equal(await card.locator('img').count(), 0);

  await card.click();
  await page.locator(`#drawer[data-id="${item.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await page.locator('#drawer-title').textContent(), title);
  assert.equal(await page.locator('#drawer img, #drawer script').count(), 0);
  await closeDrawer(page);

  assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined');
  assert.equal(await page.locator('#board img').count(), 0);
});

browserTest('two pages stay in sync without a reload', async () => {
  const other = await openBoard(server.signInUrl);
  try {
    const item = await createItem(server, { title: 'Seen from both pages' });
    await waitForCardIn(page, 'inbox', item.id);
    await waitForCardIn(other, 'inbox', item.id);

    // A moves it; B follows.
    await dragCard(page, item.id, 'planning');
    await waitForCardIn(page, 'planning', item.id);
    await waitForCardIn(other, 'planning', item.id);
    assert.equal(await other.locator(anyCard(item.id)).count(), 1);

    // B creates one through its dialog; A shows it.
    await other.locator('#new-item').click();
    const dialog = other.locator('dialog#item-dialog');
    await dialog.locator('[name="title"]').fill('Made in page B');
    await dialog.locator('[name="status"]').selectOption('planning');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden', timeout: WAIT_MS });
    const inA = page.locator(`${column('planning')} article.card`, { hasText: 'Made in page B' });
    await inA.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal(await inA.count(), 1);
  } finally {
    await other.close();
  }
});

browserTest('after the server is killed and restarted the board catches up', async () => {
  // Its own server on a fixed port, so the page can reconnect to the same address.
  const port = await freePort();
  const ws = makeWorkspace(port);
  let srv = await startServer(ws);
  let board;
  try {
    assert.equal(srv.url, `http://127.0.0.1:${port}`);
    const before = await createItem(srv, { title: 'Made before the crash' });
    board = await openBoard(srv.signInUrl);
    await waitForCardIn(board, 'inbox', before.id);

    await srv.kill();
    await board.locator('#conn[data-state="down"]').waitFor({ state: 'attached', timeout: WAIT_MS });

    srv = await startServer(ws);
    assert.equal(srv.url, `http://127.0.0.1:${port}`);
    const afterRestart = await createItem(srv, { title: 'Made after the restart' });

    await board.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: 20_000 });
    await waitForCardIn(board, 'inbox', afterRestart.id, 20_000);
    assert.equal(await board.locator(anyCard(afterRestart.id)).count(), 1, 'no duplicate of the new card');
    assert.equal(await board.locator(anyCard(before.id)).count(), 1, 'no duplicate of the old card');
    assert.equal(await board.locator('#board article.card').count(), 2);
    assert.equal(await board.locator(`${column('inbox')} .column-head .count`).textContent(), '2');
  } finally {
    await board?.close().catch(() => {});
    await srv.stop().catch(() => {});
    ws.remove();
  }
});

browserTest('a board of 2,000 items loads them page by page, shows every one in its column, follows from the snapshot\'s seq, and filters them', async () => {
  const ws = makeWorkspace(0);
  const srv = await startServer(ws);
  let board;
  try {
    const plan = [
      ...Array.from({ length: 1500 }, (_, i) => ({ title: `Bulk inbox item ${i}`, status: 'inbox' })),
      ...Array.from({ length: 500 }, (_, i) => ({ title: `Bulk planning item ${i}`, status: 'planning' })),
    ];
    // 32 writers at once: the queue commits them in groups.
    for (let i = 0; i < plan.length; i += 32) {
      await Promise.all(plan.slice(i, i + 32).map((fields) => createItem(srv, fields)));
    }
    // What the page asks for: the item pages (their X-Event-Seq and X-Next-Cursor), the
    // socket's address and every event it is sent.
    const pages = [];
    const sockets = [];
    const frames = [];
    board = await openBoard(srv.signInUrl, {
      watch: (p) => {
        p.on('response', (res) => {
          const url = new URL(res.url());
          if (url.pathname !== '/api/items' || res.request().method() !== 'GET') return;
          const headers = res.headers();
          pages.push({ cursor: url.searchParams.get('cursor'), seq: headers['x-event-seq'], next: headers['x-next-cursor'] });
        });
        p.on('websocket', (ws) => {
          sockets.push(ws.url());
          ws.on('framereceived', (frame) => {
            try {
              const event = JSON.parse(String(frame.payload));
              if (typeof event.seq === 'number') frames.push(event);
            } catch {
              /* not an event */
            }
          });
        });
      },
    });
    await board.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
    const counts = () =>
      board.evaluate(() => ({
        inbox: document.querySelectorAll('section.column[data-status="inbox"] article.card').length,
        planning: document.querySelectorAll('section.column[data-status="planning"] article.card').length,
      }));
    await board.waitForFunction(
      () => document.querySelectorAll('#board article.card').length === 2000,
      null,
      { timeout: 30_000 },
    );
    assert.deepEqual(await counts(), { inbox: 1500, planning: 500 });
    assert.equal(await board.locator(`${column('inbox')} .column-head .count`).textContent(), '1500');
    assert.equal(await board.locator(`${column('planning')} .column-head .count`).textContent(), '500');

    // 2,000 items came in pages of 500, each asked for with the cursor the page before named.
    assert.equal(pages.length, 4, `four pages of items: ${JSON.stringify(pages)}`);
    assert.equal(pages[0].cursor, null, 'the first page is asked for without a cursor');
    for (let i = 1; i < pages.length; i++) assert.equal(pages[i].cursor, pages[i - 1].next, `page ${i + 1} follows page ${i}`);
    assert.equal(pages[3].next, undefined, 'the last page names no next one');
    // The socket opened at the seq the first page was read at: none of the 2,000 creations
    // already in the snapshot is sent again, and a new item still arrives live.
    const snapshotSeq = Number(pages[0].seq);
    assert.ok(snapshotSeq >= 2000, `the first page names the seq it was read at: ${pages[0].seq}`);
    assert.equal(sockets.length, 1, 'one socket');
    assert.equal(new URL(sockets[0]).searchParams.get('since'), String(snapshotSeq));
    const late = await createItem(srv, { title: 'Made after the board loaded', status: 'inbox' });
    await waitForCardIn(board, 'inbox', late.id);
    assert.ok(frames.length >= 1, 'the new item came over the socket');
    assert.deepEqual(frames.filter((e) => e.seq <= snapshotSeq).map((e) => e.seq), [], 'no event of the snapshot was replayed');
    assert.ok(frames.some((e) => e.type === 'work:added' && e.data.item.id === late.id));

    // The text filter narrows 2,000 cards to the matching ones.
    await board.locator('#filter-text').fill('Bulk planning item 42');
    await board.waitForFunction(
      () =>
        [...document.querySelectorAll('#board article.card')].filter((c) => c.offsetParent !== null).length <= 12,
      null,
      { timeout: WAIT_MS },
    );
    const shown = await board.$$eval('#board article.card', (cards) =>
      cards.filter((c) => c.offsetParent !== null).map((c) => c.querySelector('h3, .card-title, .title')?.textContent || c.textContent),
    );
    assert.ok(shown.length >= 1, 'the matching card stays visible');
    assert.ok(shown.every((t) => t.includes('Bulk planning item 42')), `only matches are shown: ${shown}`);
  } finally {
    await board?.close().catch(() => {});
    await srv.stop().catch(() => {});
    ws.remove();
  }
});

browserTest('no page raised an uncaught error', async () => {
  assert.deepEqual(pageErrors, []);
});
