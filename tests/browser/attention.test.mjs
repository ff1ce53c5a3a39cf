// What the board tells a person who is not looking at it, and what it does when it cannot
// reach the server (issue 11): the tab title and favicon count items waiting on a person
// (Review and Blocked), live; a browser
// notification when an item reaches Review or Blocked, for a person who turned them on; and,
// with the server stopped, a banner, a board marked stale and actions off, all undone on
// reconnect without duplicating a card. Real server (killed and restarted), Chromium.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, browserTest, column, launch, openPage, waitForCardIn } from './harness.mjs';

const QUIET = '[pool]\nsize = 0\n';

let browser;
let workspace;
let server;
const open = [];
const errors = [];
const pages = () => open;

before(async () => {
  browser = await launch();
  workspace = makeWorkspace(await freePort(), { rest: QUIET });
  server = await startServer(workspace);
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

const titleIs = (page, title) => page.waitForFunction((t) => document.title === t, title, { timeout: WAIT_MS });
const favicon = (page) => page.locator('#favicon').getAttribute('href');

browserTest('the tab title and favicon count what waits on a person, live', pages, async () => {
  const first = await server.api('POST', '/api/items', { title: 'Needs a decision' });
  const second = await server.api('POST', '/api/items', { title: 'Needs a key' });
  await server.api('POST', `/api/items/${first.id}/move`, { status: 'blocked', reason: 'which database?' });
  const page = await openPage(browser, server.signInUrl, { viewport: { width: 1280, height: 800 }, errors });
  open.push(page);
  await titleIs(page, '(1) flightdeck');
  const one = await favicon(page);
  assert.match(one, /^data:image\/png;base64,/);

  await server.api('POST', `/api/items/${second.id}/move`, { status: 'blocked', reason: 'no API key' });
  await titleIs(page, '(2) flightdeck');
  const two = await favicon(page);
  assert.notEqual(two, one, 'the badge shows the new count');

  await server.api('POST', `/api/items/${second.id}/move`, { status: 'inbox' });
  await titleIs(page, '(1) flightdeck');
  assert.equal(await favicon(page), one);
  await server.api('DELETE', `/api/items/${first.id}`);
  await titleIs(page, 'flightdeck');
  assert.notEqual(await favicon(page), one, 'no badge when nothing waits');
  await server.api('DELETE', `/api/items/${second.id}`);
  await page.close();
  open.length = 0;
});

browserTest('a person who turned notifications on gets one when an item reaches Blocked', pages, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.grantPermissions(['notifications'], { origin: server.url });
  // The tab is in the background (notifications are for when the board is not in view), and
  // each notification the page makes is recorded.
  await ctx.addInitScript(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    window.__notifications = [];
    const Real = window.Notification;
    window.Notification = class extends Real {
      constructor(title, options = {}) {
        window.__notifications.push({ title, body: options.body });
        super(title, options);
      }
    };
  });
  const page = await ctx.newPage();
  open.push(page);
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(server.signInUrl);
  await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });

  const before = await server.api('POST', '/api/items', { title: 'Blocked before opting in' });
  await waitForCardIn(page, 'inbox', before.id);
  await server.api('POST', `/api/items/${before.id}/move`, { status: 'blocked', reason: 'not yet' });
  await waitForCardIn(page, 'blocked', before.id);
  assert.deepEqual(await page.evaluate(() => window.__notifications), [], 'nothing until the person opts in');

  const button = page.locator('#notify');
  assert.equal(await button.textContent(), 'Notify me');
  await button.click();
  await page.waitForFunction(() => document.getElementById('notify').getAttribute('aria-pressed') === 'true', null, { timeout: WAIT_MS });
  assert.equal(await button.textContent(), 'Notifications on');

  const item = await server.api('POST', '/api/items', { title: 'Pick the database' });
  await waitForCardIn(page, 'inbox', item.id);
  assert.deepEqual(await page.evaluate(() => window.__notifications), [], 'none for Inbox');
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'blocked', reason: 'Postgres or SQLite?' });
  await page.waitForFunction(() => window.__notifications.length > 0, null, { timeout: WAIT_MS });
  assert.deepEqual(await page.evaluate(() => window.__notifications), [{ title: 'Pick the database: Blocked', body: 'Postgres or SQLite?' }]);

  await button.click();
  await page.waitForFunction(() => document.getElementById('notify').getAttribute('aria-pressed') === 'false', null, { timeout: WAIT_MS });
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'inbox' });
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'blocked', reason: 'again' });
  await page.waitForFunction(() => /1 item wait|Blocked/.test(document.body.textContent), null, { timeout: WAIT_MS });
  await waitForCardIn(page, 'blocked', item.id);
  assert.equal((await page.evaluate(() => window.__notifications)).length, 1, 'turned off: no more');
  for (const id of [before.id, item.id]) await server.api('DELETE', `/api/items/${id}`);
  await ctx.close();
  open.length = 0;
});

browserTest('with the server stopped: a banner, a stale board, actions off; back on reconnect, no duplicates', pages, async () => {
  const kept = await server.api('POST', '/api/items', { title: 'Survives the outage' });
  const page = await openPage(browser, server.signInUrl, { viewport: { width: 1280, height: 800 }, errors });
  open.push(page);
  await waitForCardIn(page, 'inbox', kept.id);
  await page.locator(`${anyCard(kept.id)} .card-title`).click();
  await page.locator(`#drawer[data-id="${kept.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  const banner = page.locator('#offline-banner');
  assert.equal(await banner.isVisible(), false);

  await server.kill();
  await banner.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.match(await banner.textContent(), /^Offline: the server cannot be reached\./);
  assert.equal(await page.locator('#conn').textContent(), 'reconnecting…');
  assert.equal(await page.locator('body').evaluate((b) => b.classList.contains('offline')), true);
  assert.equal(await page.locator('#board').getAttribute('aria-busy'), 'true');
  assert.ok(Number(await page.locator('#board').evaluate((n) => getComputedStyle(n).opacity)) < 1, 'the board is dimmed: stale');
  for (const id of ['new-item', 'edit', 'delete', 'move-button', 'pool-size']) {
    assert.equal(await page.locator(`#${id}`).isDisabled(), true, `#${id} is off while offline`);
  }
  await page.locator('#drawer-close').click();
  await page.locator(`${anyCard(kept.id)} .card-menu`).click();
  const menu = page.locator('.menu[role="menu"]');
  await menu.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await menu.getByRole('menuitem', { name: 'Open details' }).isDisabled(), false);
  assert.equal(await menu.getByRole('menuitem', { name: 'Move to Planning' }).isDisabled(), true, 'moves are off in the card menu');
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'detached', timeout: WAIT_MS });

  server = await startServer(workspace);
  const made = await server.api('POST', '/api/items', { title: 'Made after the restart' });
  await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: 20_000 });
  await banner.waitFor({ state: 'hidden', timeout: WAIT_MS });
  assert.equal(await page.locator('body').evaluate((b) => b.classList.contains('offline')), false);
  assert.equal(await page.locator('#new-item').isDisabled(), false);
  await waitForCardIn(page, 'inbox', made.id, 20_000);
  assert.equal(await page.locator(anyCard(kept.id)).count(), 1, 'no duplicate of the old card');
  assert.equal(await page.locator(anyCard(made.id)).count(), 1, 'no duplicate of the new card');
  assert.equal(await page.locator(`${column('inbox')} .column-head .count`).textContent(), '2');
  await page.locator(`${anyCard(kept.id)} .card-menu`).click();
  await page.getByRole('menuitem', { name: 'Move to Planning' }).click();
  await waitForCardIn(page, 'planning', kept.id);
});

browserTest('no page raised an uncaught error', pages, async () => {
  assert.deepEqual(errors, []);
});
