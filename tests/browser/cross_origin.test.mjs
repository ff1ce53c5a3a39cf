// A page of another site, open in the same real Chromium as the board, tries what the first
// attacker did: read the queue through an encoded path (/%61pi/items), create an item, resize
// the pool, dispatch with a bodiless cross-site form post, and read the event stream through
// /%77s and /ws. It must get nothing, against the default server (a generated token) and
// against one with server.token = "none" (where only the CSRF rule and the Origin check
// stand). Also: the printed sign-in URL signs the board in and leaves no token behind.
//
//   FLIGHTDECK_BIN=$PWD/target/debug/flightdeck node --test tests/browser/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { makeWorkspace, startServer } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT_MS = 15_000;
const TEST_TIMEOUT_MS = 60_000;

let browser;
let elsewhere; // the other site: a plain page on another port of this machine
let elsewhereUrl;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  elsewhere = createServer((_, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>another site</title><p>Nothing to see here.</p>');
  });
  await new Promise((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
  elsewhereUrl = `http://localhost:${elsewhere.address().port}/`;
});

after(async () => {
  await browser?.close().catch(() => {});
  await new Promise((resolve) => (elsewhere ? elsewhere.close(resolve) : resolve()));
});

/**
 * Runs in the other site's page: every attack on `target`, and what the page could see.
 * A socket that opens gets the replay of `since=0` at once, so each attempt ends with its
 * first event or its close.
 */
async function attack(target) {
  const seen = { fetches: [], sockets: [] };
  const tryFetch = async (label, path, init = {}) => {
    try {
      const res = await fetch(`${target}${path}`, init);
      const text = await res.text().catch(() => '');
      seen.fetches.push({ label, type: res.type, status: res.status, text: text.slice(0, 200) });
    } catch (err) {
      seen.fetches.push({ label, error: String(err) });
    }
  };
  const form = (body) => ({ method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body });
  const json = (method, body) => ({ method, headers: { 'Content-Type': 'application/json' }, body });
  const planted = JSON.stringify({ title: 'planted from another site', status: 'ready' });
  await tryFetch('read the queue, encoded path', '/%61pi/items');
  await tryFetch('read the queue', '/api/items');
  await tryFetch('create an item as a form, encoded path', '/%61pi/items', form(planted));
  await tryFetch('create an item as a form', '/api/items', form(planted));
  await tryFetch('create an item as JSON', '/api/items', json('POST', planted));
  await tryFetch('resize the pool, encoded path', '/%61pi/pool', json('PUT', '{"size":0}'));
  await tryFetch('resize the pool', '/api/pool', json('PUT', '{"size":0}'));
  await tryFetch('dispatch as an empty form', '/api/dispatch', form(undefined));
  await tryFetch('dispatch as an empty form, encoded path', '/%61pi/dispatch', form(undefined));
  const socketBase = target.replace('http://', 'ws://');
  for (const path of ['/%77s?since=0', '/ws?since=0']) {
    await new Promise((resolve) => {
      const entry = { path, opened: false, events: 0 };
      const ws = new WebSocket(`${socketBase}${path}`);
      ws.onopen = () => {
        entry.opened = true;
      };
      ws.onmessage = () => {
        entry.events += 1;
        ws.close();
      };
      ws.onclose = () => {
        seen.sockets.push(entry);
        resolve();
      };
    });
  }
  return seen;
}

/** What the server holds, read with the token (when there is one). */
async function snapshot(srv) {
  return {
    items: (await srv.api('GET', '/api/items')).map((item) => [item.id, item.title, item.status]),
    pool: (await srv.api('GET', '/api/pool')).size,
    agents: (await srv.api('GET', '/api/agents')).length,
  };
}

async function attackFromElsewhere(srv) {
  const ctx = await browser.newContext();
  try {
    const page = await ctx.newPage();
    await page.goto(elsewhereUrl);
    return await page.evaluate(attack, srv.url);
  } finally {
    await ctx.close();
  }
}

function assertNothingSeen(seen) {
  for (const f of seen.fetches) {
    const readable = !f.error && f.type !== 'opaque';
    assert.ok(!readable || f.status >= 400, `${f.label}: the page read an answer: ${JSON.stringify(f)}`);
  }
  assert.equal(seen.sockets.length, 2);
  for (const s of seen.sockets) {
    assert.equal(s.events, 0, `${s.path}: the page read ${s.events} event(s)`);
    assert.equal(s.opened, false, `${s.path}: the socket opened`);
  }
}

for (const [name, server] of [
  ['the default server (a generated token)', ''],
  ['a server with server.token = "none"', 'token = "none"'],
]) {
  test(`a page of another site gets nothing from ${name}`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const ws = makeWorkspace(0, { server, rest: '[pool]\nsize = 1\nauto_dispatch = false\n' });
    const srv = await startServer(ws);
    try {
      assert.equal(srv.token === null, server !== '', 'a token exactly when none was configured');
      await srv.api('POST', '/api/items', { title: 'waiting to be dispatched', status: 'ready' });
      const before = await snapshot(srv);
      const seen = await attackFromElsewhere(srv);
      assertNothingSeen(seen);
      assert.deepEqual(await snapshot(srv), before, 'no item created, the pool unchanged, nothing dispatched');
    } finally {
      await srv.stop().catch(() => {});
      ws.remove();
    }
  });
}

test('the sign-in URL signs the board in and leaves no token in the address bar or the log', { timeout: TEST_TIMEOUT_MS }, async () => {
  const ws = makeWorkspace(0);
  const srv = await startServer(ws);
  const ctx = await browser.newContext();
  try {
    assert.match(srv.signInUrl, /^http:\/\/127\.0\.0\.1:\d+\/#token=[0-9a-f]{64}$/);
    const page = await ctx.newPage();
    await page.goto(srv.signInUrl);
    await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
    const item = await srv.api('POST', '/api/items', { title: 'seen live', status: 'inbox' });
    await page.locator(`#board article.card[data-id="${item.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.equal(page.url(), `${srv.url}/`, 'the token left the address bar');
    assert.equal(await page.evaluate(() => localStorage.getItem('flightdeck.token')), srv.token);
    assert.equal(await page.locator('#token-dialog').isVisible(), false, 'no token asked for');
    await ctx.close();
    // The access log gets the socket's line when the socket closes.
    const deadline = Date.now() + WAIT_MS;
    let log = '';
    while (Date.now() < deadline && !/GET \/ws/.test(log)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      log = readFileSync(srv.logPath, 'utf8');
    }
    assert.match(log, /GET \/ws\?since=\d+ HTTP\/1\.1 101/, 'the board used the socket');
    assert.ok(!log.includes(srv.token), 'the token is not in the log');
  } finally {
    await ctx.close().catch(() => {});
    await srv.stop().catch(() => {});
    ws.remove();
  }
});
