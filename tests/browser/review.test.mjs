// Review in the drawer (issue 11): the acceptance report as checks, the artifacts by file
// name previewed in place (Markdown rendered as elements, never as HTML), the actions in a
// header that stays in view, Retry and Unblock for a blocked item, and "Move to" offering
// only allowed moves. The real server with the demo agent, in Chromium.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, browserTest, launch, makeReady, openPage, waitForCardIn } from './harness.mjs';

let browser;
let workspace;
let server;
let page;
const errors = [];
const pages = () => (page ? [page] : []);

before(async () => {
  browser = await launch();
  workspace = makeWorkspace(0);
  server = await startServer(workspace);
  page = await openPage(browser, server.signInUrl, { errors });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

let reviewed;

browserTest('an item in Review shows each criterion checked with the agent’s evidence', pages, async () => {
  reviewed = await server.api('POST', '/api/items', {
    title: 'Plan the export',
    acceptanceCriteria: ['The plan lists every step', 'The plan names the tests'],
  });
  await makeReady(server, reviewed.id);
  await waitForCardIn(page, 'review', reviewed.id, 30_000);
  await page.locator(`${anyCard(reviewed.id)} .report-line`).waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal((await page.locator(`${anyCard(reviewed.id)} .report-line`).textContent()).trim(), '2 of 2 criteria met');

  await page.locator(`${anyCard(reviewed.id)} .card-title`).click();
  await page.locator(`#drawer[data-id="${reviewed.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  const checks = page.locator('#drawer-criteria li.check');
  await page.waitForFunction(() => document.querySelectorAll('#drawer-criteria li[data-check="met"]').length === 2, null, { timeout: WAIT_MS });
  assert.deepEqual(await checks.locator('.check-criterion').allTextContents(), ['The plan lists every step', 'The plan names the tests']);
  assert.deepEqual(await checks.locator('.check-state').allTextContents(), ['Met', 'Met']);
  assert.deepEqual(await checks.locator('.check-evidence').allTextContents(), ['covered in plan.md', 'covered in plan.md']);
  assert.match(await page.locator('#drawer-report-summary').textContent(), /2 of 2 criteria met/);
});

browserTest('artifacts are named by file name, grouped by attempt, and previewed in the drawer', pages, async () => {
  const files = page.locator('#drawer-artifacts .artifact-file');
  await files.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  const names = await files.allTextContents();
  assert.ok(names.includes('plan.md'), `artifacts by file name: ${names}`);
  assert.ok(names.every((n) => !n.includes('/')), `no paths: ${names}`);
  assert.equal(await page.locator('#drawer-artifacts .attempt h4').first().textContent(), 'Latest attempt');

  const url = page.url();
  await page.locator('#drawer-artifacts .artifact-file', { hasText: 'plan.md' }).click();
  const preview = page.locator('#artifact-preview');
  await preview.locator('.markdown h4').first().waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await preview.locator('.markdown h4').first().textContent(), 'Plan: Plan the export');
  assert.equal(await preview.locator('.markdown ol li').count(), 4, 'the plan’s steps are a list');
  assert.equal(page.url(), url, 'the board stays: the preview is inside the drawer');
  assert.ok(await page.locator('#board').isVisible());

});

browserTest('the actions stay in view while the drawer scrolls, and Move to offers only allowed moves', pages, async () => {
  await page.locator('.drawer-scroll').evaluate((node) => node.scrollTo(0, node.scrollHeight));
  const approve = page.locator('#approve');
  assert.ok(await approve.isVisible());
  const box = await approve.boundingBox();
  assert.ok(box && box.y >= 0 && box.y < 300, `Approve is at the top of the drawer: ${JSON.stringify(box)}`);
  const options = await page.locator('#move-to option').allTextContents();
  assert.deepEqual(options, ['Done', 'Ready', 'Blocked']);
});

browserTest('the card menu rejects with feedback; the item goes back to Ready with the reason', pages, async () => {
  await page.locator('#drawer-backdrop').click({ position: { x: 20, y: 300 } });
  await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT_MS });
  await server.api('PUT', '/api/pool', { size: 0 });
  await page.locator(`${anyCard(reviewed.id)} .card-menu`).click();
  const menu = page.locator('.menu[role="menu"]');
  await menu.waitFor({ state: 'visible', timeout: WAIT_MS });
  const entries = await menu.locator('button').allTextContents();
  assert.deepEqual(entries, ['Open details', 'Approve', 'Reject…', 'Move to Done', 'Move to Ready', 'Move to Blocked']);
  await menu.getByRole('menuitem', { name: 'Reject…' }).click();
  const dialog = page.locator('#reason-dialog');
  await dialog.waitFor({ state: 'visible', timeout: WAIT_MS });
  await dialog.locator('textarea').fill('Also list the rollback steps');
  await dialog.getByRole('button', { name: 'Reject' }).click();
  await waitForCardIn(page, 'ready', reviewed.id);
  const history = await server.api('GET', `/api/items/${reviewed.id}/history`);
  assert.equal(history.at(-1).reason, 'Also list the rollback steps');
  await page.waitForFunction(() => document.getElementById('announcer').textContent.includes('moved to Ready'), null, { timeout: WAIT_MS });
});

browserTest('a blocked item has Retry and Unblock, in the drawer and by keyboard', pages, async () => {
  const item = await server.api('POST', '/api/items', { title: 'Stuck on a question' });
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'blocked', reason: 'needs a decision' });
  await waitForCardIn(page, 'blocked', item.id);
  await page.locator(`${anyCard(item.id)} .card-title`).click();
  await page.locator(`#drawer[data-id="${item.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.ok(await page.locator('#retry').isVisible());
  assert.ok(await page.locator('#unblock').isVisible());
  assert.equal(await page.locator('#approve').isVisible(), false);
  await page.locator('#drawer-close').focus();
  await page.keyboard.press('u');
  await waitForCardIn(page, 'inbox', item.id);
  assert.equal((await server.api('GET', `/api/items/${item.id}`)).status, 'inbox');

  await page.keyboard.press('?');
  await page.locator('#help-dialog').waitFor({ state: 'visible', timeout: WAIT_MS });
  const keys = await page.locator('#shortcut-list kbd').allTextContents();
  for (const key of ['a', 'r', 't', 'u', '?']) assert.ok(keys.includes(key), `${key} is listed: ${keys}`);
  await page.keyboard.press('Escape');
});

browserTest('no page raised an uncaught error', pages, async () => {
  assert.deepEqual(errors, []);
});
