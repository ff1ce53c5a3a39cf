// The drawer's log viewer in a real Chromium against the real server and a real agent
// (tests/browser/fixtures/log-agent.sh): live lines in the parsed view, follow and pause, one
// section per attempt, the raw view one click away, ANSI colours as styles and never as codes,
// agent HTML as text, search beyond what is drawn, and a 200,000-line log with only a window of
// rows in the page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { makeWorkspace, startServer } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT_MS = 30_000;
const TEST_TIMEOUT_MS = 120_000;

let browser;
let workspace;
let server;
let gates;
const pageErrors = [];

const rows = '#drawer-log .lv-rows';

async function openBoard() {
  const ctx = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const p = await ctx.newPage();
  p.on('pageerror', (err) => pageErrors.push(err.message));
  await p.goto(server.signInUrl);
  await p.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
  return p;
}

async function openDrawer(p, id) {
  await p.locator(`#board article.card[data-id="${id}"]`).click();
  await p.locator(`#drawer[data-id="${id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
}

async function waitForStatus(id, status) {
  const deadline = Date.now() + WAIT_MS * 3;
  for (;;) {
    const item = await server.api('GET', `/api/items/${id}`);
    if (item.status === status) return item;
    if (Date.now() > deadline) throw new Error(`"${item.title}" stayed ${item.status}, not ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const rowsText = (p) => p.locator(rows).textContent();

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
  workspace = makeWorkspace(0, {
    rest: `[pool]\nsize = 2\n[agent]\npreset = "lines"\ncommand = ${JSON.stringify([
      '/bin/sh',
      path.join(HERE, 'fixtures', 'log-agent.sh'),
      '__GATES__',
      '{item_id}',
    ])}\n`,
  });
  gates = path.join(workspace.dir, 'gates');
  mkdirSync(gates);
  const { readFileSync } = await import('node:fs');
  writeFileSync(workspace.config, readFileSync(workspace.config, 'utf8').replace('__GATES__', gates));
  server = await startServer(workspace);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (workspace && !process.exitCode) workspace.remove();
});

test('a live log: parsed lines, follow and pause, raw one click away, colours and HTML as text, a section per attempt', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = await openBoard();
  const item = await server.api('POST', '/api/items', { title: 'print 300 lines then tick until told', status: 'ready' });
  await p.locator(`#board article.card[data-id="${item.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  await openDrawer(p, item.id);

  // Live lines arrive in the parsed view, and the view follows them.
  await p.waitForFunction((sel) => /tick \d+/.test(document.querySelector(sel).textContent), rows, { timeout: WAIT_MS, polling: 50 });
  const atEnd = () => p.evaluate(() => {
    const s = document.querySelector('#drawer-log .lv-scroller');
    return s.scrollTop + s.clientHeight >= s.scrollHeight - 20;
  });
  assert.ok(await atEnd(), 'following: the newest line is in view');

  // Scrolling up pauses: new lines arrive, the view stays where the reader is.
  await p.locator('#drawer-log .lv-scroller').hover();
  await p.mouse.wheel(0, -600);
  await p.waitForFunction(() => /Paused/.test(document.querySelector('#drawer-log .lv-status').textContent), null, { timeout: WAIT_MS });
  const pausedAt = await p.evaluate(() => document.querySelector('#drawer-log .lv-scroller').scrollTop);
  const lines = async () => (await server.api('GET', `/api/items/${item.id}/transcript`)).attempts[0].lines;
  const before = await lines();
  while ((await lines()) < before + 5) await new Promise((resolve) => setTimeout(resolve, 100));
  await p.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  assert.equal(await p.evaluate(() => document.querySelector('#drawer-log .lv-scroller').scrollTop), pausedAt, 'paused: no jump');
  assert.equal(await atEnd(), false);
  await p.locator('#drawer-log .lv-follow').click();
  await p.waitForFunction(() => {
    const s = document.querySelector('#drawer-log .lv-scroller');
    return s.scrollTop + s.clientHeight >= s.scrollHeight - 20;
  }, null, { timeout: WAIT_MS });

  // The first lines: parsed messages, a coloured line, agent HTML as text.
  await p.evaluate(() => {
    document.querySelector('#drawer-log .lv-scroller').scrollTop = 0;
  });
  await p.waitForFunction((sel) => document.querySelector(sel).textContent.includes('Reading the task'), rows, { timeout: WAIT_MS });
  const top = await rowsText(p);
  assert.ok(top.includes('tokens: 120 in, 30 out'), top);
  assert.ok(top.includes('the model API answered 500'), top);
  assert.ok(!top.includes('{"type"'), 'the parsed view shows no protocol JSON');
  const red = p.locator(`${rows} span.ansi-1`, { hasText: 'red alert' });
  await red.waitFor({ timeout: WAIT_MS });
  const orange = await p.locator(`${rows} span[style]`, { hasText: 'orange' }).first().evaluate((s) => getComputedStyle(s).color);
  assert.equal(orange, 'rgb(255, 135, 0)', '256-colour 208');
  const pageText = await p.evaluate(() => document.body.innerText);
  assert.ok(!pageText.includes('\u001b') && !pageText.includes('[31m') && !pageText.includes('[2K'), 'no escape code shown');
  assert.ok(top.includes('<img src=x onerror="window.pwned=1"></script><b>not bold</b>'), 'agent HTML shown as text');
  assert.equal(await p.locator('#drawer-log img, #drawer-log b').count(), 0);
  assert.equal(await p.evaluate(() => window.pwned), undefined);

  // Raw is one click away, and back.
  await p.locator('#drawer-log .lv-mode').click();
  await p.waitForFunction((sel) => document.querySelector(sel).textContent.includes('{"type":"progress","message":"Reading the task"}'), rows, { timeout: WAIT_MS });
  assert.equal(await p.locator(`${rows} span.ansi-1`, { hasText: 'red alert' }).count(), 1, 'colours in the raw view too');
  await p.locator('#drawer-log .lv-mode').click();
  await p.waitForFunction((sel) => !document.querySelector(sel).textContent.includes('{"type"'), rows, { timeout: WAIT_MS });

  // The run ends; the lines stay parsed. A rejection runs a second attempt: a second section.
  writeFileSync(path.join(gates, item.id), '');
  await waitForStatus(item.id, 'review');
  await server.api('POST', `/api/items/${item.id}/move`, { status: 'ready', reason: 'Once more, please.' });
  for (;;) {
    const { attempts } = await server.api('GET', `/api/items/${item.id}/transcript`);
    if (attempts.length === 2 && !attempts[1].running) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await p.evaluate(() => {
    document.querySelector('#drawer-log .lv-scroller').scrollTop = 0;
  });
  const header = p.locator('#drawer-log .lv-header').first();
  await header.waitFor({ timeout: WAIT_MS });
  assert.match(await header.textContent(), /Attempt 1/);
  assert.ok(!(await rowsText(p)).includes('{"type"'), 'still parsed after the status changed');
  await header.click();
  await p.waitForFunction(() => {
    const headers = document.querySelectorAll('#drawer-log .lv-header');
    return headers.length === 2 && headers[0].getAttribute('aria-expanded') === 'false' && headers[0].nextElementSibling === headers[1];
  }, null, { timeout: WAIT_MS });
  await p.context().close();
});

test('a 200,000-line log: a window of rows in the page, and search finds a line far outside it', { timeout: TEST_TIMEOUT_MS }, async () => {
  const p = await openBoard();
  const item = await server.api('POST', '/api/items', { title: 'print 200000 lines', status: 'ready' });
  await waitForStatus(item.id, 'review');
  await p.locator(`#board article.card[data-id="${item.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  await openDrawer(p, item.id);
  await p.waitForFunction((sel) => document.querySelector(sel).textContent.includes('line 200000'), rows, { timeout: WAIT_MS });
  const drawn = await p.locator('#drawer-log .lv-row').count();
  assert.ok(drawn > 10 && drawn < 200, `${drawn} rows in the page`);

  await p.locator('#drawer-log .lv-search').fill('line 123456');
  await p.locator('#drawer-log .lv-search').press('Enter');
  await p.waitForFunction(() => document.querySelector('#drawer-log .lv-count').textContent === '1 of 1', null, { timeout: WAIT_MS });
  const hit = p.locator(`${rows} .lv-current mark`);
  await hit.waitFor({ timeout: WAIT_MS });
  assert.equal((await hit.textContent()).toLowerCase(), 'line 123456');
  assert.ok((await p.locator('#drawer-log .lv-row').count()) < 200);
  await p.context().close();
});

test('no page error', () => {
  assert.deepEqual(pageErrors, []);
});
