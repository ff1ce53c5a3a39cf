// How the columns read and behave (issue 11): Ready lists what an agent can take now above
// what waits on an unfinished dependency, which names it ("waiting on <title>"); while a card
// is dragged each column shows whether it takes it (per the allowed moves); the drawer is
// resized by its handle and closes on a click outside it; Done and Blocked fold to a strip and
// stay folded after a reload. Real server (no agent runs: pool of 0), Chromium.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, browserTest, column, launch, makeReady, openPage, waitForCardIn } from './harness.mjs';
import { MANUAL_MOVES, STATUS_ORDER } from '../../static/js/constants.js';

let browser;
let workspace;
let server;
let page;
const errors = [];
const pages = () => (page ? [page] : []);

before(async () => {
  browser = await launch();
  workspace = makeWorkspace(0, { rest: '[pool]\nsize = 0\n' });
  server = await startServer(workspace);
  page = await openPage(browser, server.signInUrl, { viewport: { width: 1280, height: 800 }, errors });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

const readyTitles = () => page.locator(`${column('ready')} article.card .card-title`).allTextContents();

browserTest('Ready lists runnable items first; a waiting one names what it waits on', pages, async () => {
  const base = await server.api('POST', '/api/items', { title: 'Set up the database' });
  const waiting = await server.api('POST', '/api/items', { title: 'Write the migrations', priority: 'urgent', blockedBy: [base.id] });
  const free = await server.api('POST', '/api/items', { title: 'Tidy the docs', priority: 'low' });
  await makeReady(server, waiting.id);
  await makeReady(server, free.id);
  await waitForCardIn(page, 'ready', waiting.id);
  await waitForCardIn(page, 'ready', free.id);
  assert.deepEqual(await readyTitles(), ['Tidy the docs', 'Write the migrations'], 'the urgent one waits, so it sorts after');
  assert.equal(await page.locator(`${anyCard(waiting.id)} .deps`).textContent(), 'waiting on “Set up the database”');
  assert.equal(await page.locator(`${anyCard(free.id)} .deps`).count(), 0);

  await server.api('PATCH', `/api/items/${base.id}`, { title: 'Set up Postgres' });
  await page.waitForFunction((id) => document.querySelector(`#board article.card[data-id="${id}"] .deps`)?.textContent === 'waiting on “Set up Postgres”', waiting.id, { timeout: WAIT_MS });
  for (const id of [free.id, waiting.id]) await server.api('POST', `/api/items/${id}/move`, { status: 'blocked', reason: 'cleared for the next test' });
});

browserTest('while a card is dragged, each column shows whether it takes the card', pages, async () => {
  const item = await server.api('POST', '/api/items', { title: 'Drag me around' });
  await waitForCardIn(page, 'inbox', item.id);
  // The drag as the browser starts it (dragstart with its DataTransfer), held while the columns
  // are read; then a real drag and drop to Planning.
  const dataTransfer = await page.evaluateHandle(() => new DataTransfer());
  await page.locator(anyCard(item.id)).dispatchEvent('dragstart', { dataTransfer });
  await page.locator(`${column('planning')}.accepts`).waitFor({ state: 'attached', timeout: WAIT_MS });
  const marks = await page.locator('#board section.column').evaluateAll((nodes) =>
    nodes.map((n) => [n.dataset.status, n.classList.contains('accepts') ? 'accepts' : n.classList.contains('refuses') ? 'refuses' : '']),
  );
  const allowed = MANUAL_MOVES.inbox;
  assert.deepEqual(marks, STATUS_ORDER.map((s) => [s, allowed.includes(s) ? 'accepts' : 'refuses']));
  const style = (status) => page.locator(column(status)).evaluate((n) => ({ border: getComputedStyle(n).borderTopStyle, opacity: getComputedStyle(n).opacity }));
  assert.equal((await style('planning')).border, 'dashed', 'an accepting column is outlined');
  assert.ok(Number((await style('done')).opacity) < 1, 'a refusing column is dimmed');
  await page.locator(anyCard(item.id)).dispatchEvent('dragend', { dataTransfer });
  assert.equal(await page.locator('#board section.column.accepts, #board section.column.refuses').count(), 0, 'the marks go when the drag ends');
  await page.locator(anyCard(item.id)).dragTo(page.locator(`${column('planning')} .column-head`));
  await waitForCardIn(page, 'planning', item.id);
  assert.equal(await page.locator('#board section.column.accepts, #board section.column.refuses').count(), 0, 'the marks go when the drag ends');
  await server.api('DELETE', `/api/items/${item.id}`);
});

browserTest('the drawer is resized by its handle and closes on a click outside it', pages, async () => {
  const item = await server.api('POST', '/api/items', { title: 'Read the details' });
  await waitForCardIn(page, 'inbox', item.id);
  await page.locator(`${anyCard(item.id)} .card-title`).click();
  const drawer = page.locator(`#drawer[data-id="${item.id}"]`);
  await drawer.waitFor({ state: 'visible', timeout: WAIT_MS });
  const before = await drawer.boundingBox();
  const handle = await page.locator('#drawer-resize').boundingBox();
  await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
  await page.mouse.down();
  await page.mouse.move(handle.x + handle.width / 2 - 150, handle.y + handle.height / 2, { steps: 5 });
  await page.mouse.up();
  const wider = await drawer.boundingBox();
  assert.ok(Math.abs(wider.width - (before.width + 150)) <= 4, `150 px wider: ${before.width} -> ${wider.width}`);
  assert.equal(Math.round(wider.x + wider.width), 1280, 'still against the right edge');
  assert.equal(await page.locator('#drawer-resize').getAttribute('aria-valuenow'), String(Math.round(wider.width)));

  await page.mouse.click(100, 400);
  await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT_MS });
  await page.locator(`${anyCard(item.id)} .card-title`).click();
  await drawer.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.ok(Math.abs((await drawer.boundingBox()).width - wider.width) <= 1, 'the width is remembered');
  await page.keyboard.press('Escape');
  await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT_MS });
});

browserTest('Done and Blocked fold to a strip, and stay folded after a reload', pages, async () => {
  const blocked = await server.api('POST', '/api/items', { title: 'Folded away' });
  await server.api('POST', `/api/items/${blocked.id}/move`, { status: 'blocked', reason: 'waiting' });
  await waitForCardIn(page, 'blocked', blocked.id);
  const wide = (await page.locator(column('blocked')).boundingBox()).width;
  for (const status of ['done', 'blocked']) await page.locator(`${column(status)} button.fold`).click();
  for (const status of ['done', 'blocked']) {
    assert.equal(await page.locator(`${column(status)} button.fold`).getAttribute('aria-expanded'), 'false');
    assert.ok((await page.locator(column(status)).boundingBox()).width < 60, `${status} is a strip`);
  }
  assert.equal(await page.locator(`${column('blocked')} button.fold`).getAttribute('aria-label'), 'Unfold Blocked');
  assert.equal(await page.locator(anyCard(blocked.id)).isVisible(), false);
  assert.equal(await page.locator(`${column('blocked')} .column-head .count`).textContent(), String(await page.locator(`${column('blocked')} article.card`).count()));
  assert.ok((await page.locator(column('inbox')).boundingBox()).width > wide, 'the other columns get the room');

  await page.reload();
  await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.locator(`${column('blocked')}.folded`).waitFor({ state: 'attached', timeout: WAIT_MS });
  assert.equal(await page.locator(`${column('done')}.folded`).count(), 1);
  await page.locator(`${column('blocked')} button.fold`).click();
  await page.locator(anyCard(blocked.id)).waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await page.locator(`${column('done')}.folded`).count(), 1, 'each column folds on its own');
});

browserTest('no page raised an uncaught error', pages, async () => {
  assert.deepEqual(errors, []);
});
