// The interactive API docs at /api/docs as a person uses them: Debian's Chromium driven by
// playwright-core against a real `flightdeck serve` with a token. The page and its vendored
// Swagger UI are served without the token (code only); the document and "Try it out" calls
// carry the token the board keeps in localStorage; nothing breaks the page's CSP.
//
//   FLIGHTDECK_BIN=$PWD/target/debug/flightdeck node --test tests/browser/api_docs.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { makeWorkspace, startServer } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT_MS = 15_000;
const TOKEN = 'docs-test-token-7f3a9c';
import { TOKEN_KEY } from '../../static/js/constants.js'; // the board's localStorage key

let browser;
let workspace;
let server;

before(async () => {
  workspace = makeWorkspace(0, { server: `token = "${TOKEN}"`, rest: '[pool]\nsize = 0\n' });
  server = await startServer(workspace);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  workspace?.remove();
});

/** A fresh window on the server's origin, with `token` (if any) stored as the board stores it. */
async function openDocs(token) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(`CSP: ${msg.text()}`);
  });
  if (token) {
    // The board's own page, to reach this origin's localStorage.
    await page.goto(`${server.url}/`);
    await page.evaluate(([key, value]) => localStorage.setItem(key, value), [TOKEN_KEY, token]);
  }
  await page.goto(`${server.url}/api/docs`);
  return { page, problems, close: () => ctx.close() };
}

test('the docs page and its assets are served without the token; the document is not', async () => {
  for (const route of ['/api/docs', '/api/docs/init.js', '/api/docs/swagger-ui-bundle.js', '/api/docs/swagger-ui.css']) {
    const res = await fetch(`${server.url}${route}`);
    assert.equal(res.status, 200, `${route} is served without a token`);
    assert.match(res.headers.get('content-security-policy') || '', /script-src 'self'/, `${route} carries the CSP`);
  }
  const page = await (await fetch(`${server.url}/api/docs`)).text();
  assert.doesNotMatch(page, /<script>|<script [^>]*>[^<]+<\/script>|style=/, 'the page has no inline script or style');
  assert.doesNotMatch(page, new RegExp(TOKEN), 'the page holds no token');
  const doc = await fetch(`${server.url}/api/openapi.json`);
  assert.equal(doc.status, 401, 'the document itself needs the token');
});

test('with the board\'s token, the page lists every operation under the CSP', async () => {
  const { page, problems, close } = await openDocs(TOKEN);
  try {
    await page.locator('.opblock').first().waitFor({ state: 'visible', timeout: WAIT_MS });
    const paths = await page.locator('.opblock .opblock-summary-path').allTextContents();
    const doc = await (await fetch(`${server.url}/api/openapi.json`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
    const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item)).length;
    assert.equal(paths.length, operations, `every operation is listed (${paths.length} of ${operations})`);
    for (const route of ['/api/items', '/api/claim', '/api/items/{id}/complete', '/api/events']) {
      assert.ok(paths.some((p) => p.replace(/\u200b/g, '') === route), `${route} is listed`);
    }
    assert.deepEqual(problems, [], 'no CSP violation and no script error');
  } finally {
    await close();
  }
});

test('"Try it out" sends the stored token and shows the real answer', async () => {
  const { page, problems, close } = await openDocs(TOKEN);
  try {
    const block = page.locator('#operations-status-getStatus');
    await block.waitFor({ state: 'visible', timeout: WAIT_MS });
    await block.locator('.opblock-summary').click();
    await block.getByRole('button', { name: 'Try it out' }).click();
    await block.getByRole('button', { name: 'Execute' }).click();
    const status = block.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal((await status.textContent()).trim(), '200', 'GET /api/status answered 200 with the token');
    assert.match(await block.locator('.live-responses-table .microlight').first().textContent(), /"counts"/);
    assert.deepEqual(problems, [], 'no CSP violation and no script error');
  } finally {
    await close();
  }
});

test('without a token the page says it cannot load the document, and shows no operation', async () => {
  const { page, close } = await openDocs('');
  try {
    await page.getByText(/Failed to load API definition/i).waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal(await page.locator('.opblock').count(), 0);
  } finally {
    await close();
  }
});
