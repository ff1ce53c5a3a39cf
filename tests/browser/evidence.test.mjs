// The evidence a reviewer decides on, from a real agent's real work (issue 11): a git worktree
// the fixture agent (tests/fixtures/agents/review-work.sh) edits and adds to, shown in the
// drawer as a diff per file with +/- counts, unified and side by side, the agent's text as
// text; its artifacts previewed in place (a log with line numbers, an image) and grouped by
// attempt after a rejection sends it round again. Real server, real git, Chromium.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeWorkspace, startServer } from './server.mjs';
import { projectRepo, reviewWorkConfig } from './project.mjs';
import { WAIT_MS, anyCard, browserTest, launch, makeReady, openPage, waitForCardIn } from './harness.mjs';

let browser;
let repoDir;
let workspace;
let server;
let page;
const errors = [];
const pages = () => (page ? [page] : []);

before(async () => {
  browser = await launch();
  repoDir = mkdtempSync(path.join(tmpdir(), 'flightdeck-project-'));
  workspace = makeWorkspace(0, { rest: reviewWorkConfig(projectRepo(repoDir)) });
  server = await startServer(workspace);
  page = await openPage(browser, server.signInUrl, { errors });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
  if (repoDir) rmSync(repoDir, { recursive: true, force: true });
});

let item;

async function openItem(id) {
  await page.locator(`${anyCard(id)} .card-title`).click();
  await page.locator(`#drawer[data-id="${id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
}

async function closeDrawer() {
  await page.locator('#drawer-close').click();
  await page.locator('#drawer').waitFor({ state: 'hidden', timeout: WAIT_MS });
}

browserTest('the diff lists each changed file with its +/- counts', pages, async () => {
  item = await server.api('POST', '/api/items', { title: 'Write the greeting', acceptanceCriteria: ['the greeting is written'] });
  await makeReady(server, item.id);
  await waitForCardIn(page, 'review', item.id, 30_000);
  await openItem(item.id);
  const files = page.locator('#drawer-diff details.diff-file');
  await files.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  const rows = await files.evaluateAll((nodes) =>
    nodes.map((n) => [n.querySelector('.diff-path').textContent, n.querySelector('.diff-status').textContent, n.querySelector('.diff-counts').textContent]),
  );
  assert.deepEqual(rows, [
    ['README', 'modified', '+2 −1'],
    ['src/greet.js', 'added', '+2 −0'],
  ]);
  assert.equal(await page.locator('#drawer-diff .diff-head > span').textContent(), '2 files changed, +4 −1');
  assert.doesNotMatch(await page.locator('#drawer-diff').innerText(), /\bnull\b/, 'nothing but the changes');
});

browserTest('unified view numbers old and new lines and shows the agent’s markup as text', pages, async () => {
  await page.locator('#drawer-diff details[data-path="src/greet.js"] summary').click();
  const added = page.locator('#drawer-diff details[data-path="src/greet.js"] table.unified tr.add td.code');
  await added.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.deepEqual(await added.allTextContents(), [
    '+// <img src=x onerror="window.__injected=1"> stays text',
    '+export const greet = (name) => `hello ${name}`;',
  ]);
  assert.equal(await page.locator('#drawer-diff img').count(), 0, 'no element made from the agent’s text');
  assert.equal(await page.evaluate(() => window.__injected), undefined);

  await page.locator('#drawer-diff details[data-path="README"] summary').click();
  const readme = page.locator('#drawer-diff details[data-path="README"] table.unified tr:not(.hunk)');
  await readme.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  const lines = await readme.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(lines, [
    ['1', '', '-the project'],
    ['', '1', '+the project, greeted'],
    ['', '2', '+attempt 1'],
  ]);
});

browserTest('side by side puts the old line beside the new one, for every open file', pages, async () => {
  await page.getByRole('button', { name: 'Side by side' }).click();
  assert.equal(await page.getByRole('button', { name: 'Side by side' }).getAttribute('aria-pressed'), 'true');
  const rows = page.locator('#drawer-diff details[data-path="README"] table.split tr:not(.hunk)');
  await rows.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  const cells = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(cells, [
    ['1', 'the project', '1', 'the project, greeted'],
    ['', '', '2', 'attempt 1'],
  ]);
  assert.equal(await page.locator('#drawer-diff details[data-path="src/greet.js"] table.split').count(), 1);
  assert.equal(await page.locator('#drawer-diff table.unified').count(), 0, 'the unified tables are replaced');
  await page.getByRole('button', { name: 'Unified' }).click();
  await page.locator('#drawer-diff details[data-path="README"] table.unified').waitFor({ state: 'visible', timeout: WAIT_MS });
});

browserTest('a text artifact is previewed with line numbers, an image as an image', pages, async () => {
  await page.locator('#drawer-artifacts .artifact-file', { hasText: 'build.log' }).click();
  const rows = page.locator('#artifact-preview table.text-lines tr');
  await rows.first().waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await rows.count(), 12);
  assert.deepEqual(await rows.nth(0).locator('td').allTextContents(), ['1', 'build step 1 of 12: ok (attempt 1)']);
  assert.deepEqual(await rows.nth(11).locator('td').allTextContents(), ['12', 'build step 12 of 12: ok (attempt 1)']);
  assert.equal(await page.locator('#artifact-preview h4').textContent(), 'build.log');
  assert.doesNotMatch(await page.locator('#artifact-preview').innerText(), /\bnull\b/, 'nothing but the file');

  await page.locator('#drawer-artifacts .artifact-file', { hasText: 'shot.png' }).click();
  const image = page.locator('#artifact-preview img.preview-image');
  await image.waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.waitForFunction(() => document.querySelector('#artifact-preview img.preview-image')?.naturalWidth === 8, null, { timeout: WAIT_MS });
  assert.equal(await image.getAttribute('alt'), 'shot.png, made by the agent');
});

browserTest('after a rejection and a second attempt, artifacts are grouped by attempt', pages, async () => {
  await closeDrawer();
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'ready', reason: 'Greet by first name' });
  await page.waitForFunction(
    (id) => {
      const card = document.querySelector(`#board section[data-status="review"] article.card[data-id="${id}"]`);
      return card && /2 attempts/.test(card.textContent);
    },
    item.id,
    { timeout: 30_000 },
  );
  await openItem(item.id);
  const groups = page.locator('#drawer-artifacts section.attempt');
  await page.waitForFunction(() => document.querySelectorAll('#drawer-artifacts section.attempt').length === 2, null, { timeout: WAIT_MS });
  assert.deepEqual(await groups.locator('h4').allTextContents(), ['Attempt 1', 'Attempt 2 (latest)']);
  // The branch flightdeck handed back came in with the first attempt, and stays with it.
  assert.match(await groups.nth(0).locator('.artifact-ref').textContent(), /^flightdeck\/[0-9a-f]{8}$/);
  for (let i = 0; i < 2; i += 1) {
    const names = await groups.nth(i).locator('.artifact-file').allTextContents();
    for (const name of ['build.log', 'shot.png']) assert.ok(names.includes(name), `attempt ${i + 1} has ${name}: ${names}`);
  }
  await groups.nth(1).locator('.artifact-file', { hasText: 'build.log' }).click();
  const first = page.locator('#artifact-preview table.text-lines tr').first();
  await page.waitForFunction(() => /attempt 2/.test(document.querySelector('#artifact-preview table.text-lines td.code')?.textContent || ''), null, { timeout: WAIT_MS });
  assert.deepEqual(await first.locator('td').allTextContents(), ['1', 'build step 1 of 12: ok (attempt 2)']);
  // The diff now counts both attempts against the first hand-over.
  await page.waitForFunction(() => document.querySelector('#drawer-diff .diff-head > span')?.textContent === '2 files changed, +5 −1', null, { timeout: WAIT_MS });
});

browserTest('no page raised an uncaught error', pages, async () => {
  assert.deepEqual(errors, []);
});
