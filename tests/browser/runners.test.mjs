// Runners on the board (issue 12): real `flightdeck runner` processes register and show in the
// runners panel (name, labels, slots used and free, version, last heartbeat, online); a ready
// item that needs a label no online runner has says so on its card, and stops saying so once a
// runner with the label takes it; a runner killed -9 goes offline in the panel and its item
// comes back saying again that no runner can take it. Real server, real runners, Chromium.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { binary, freePort, makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, browserTest, launch, openPage, waitForCardIn } from './harness.mjs';

let browser;
let workspace;
let server;
const open = [];
const runners = [];
const errors = [];
const pages = () => open;

before(async () => {
  browser = await launch();
  workspace = makeWorkspace(await freePort(), { rest: '[pool]\nsize = 0\nretry_backoff_secs = 0\n[runners]\nlease_secs = 3\n' });
  server = await startServer(workspace);
});

after(async () => {
  for (const r of runners) r.kill('SIGKILL');
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

/** A real runner on "another machine": its own state dir and config; its agent waits for `gate`. */
function startRunner(token, name, labels, gate) {
  const dir = path.join(workspace.dir, `runner-${name}`);
  mkdirSync(dir, { recursive: true });
  const agent = path.join(dir, 'agent.sh');
  writeFileSync(agent, `#!/bin/sh\necho "working"\nwhile [ ! -e '${gate}' ]; do sleep 0.1; done\necho done > "$FLIGHTDECK_WORKSPACE/result.txt"\n`);
  const config = path.join(dir, 'runner.toml');
  writeFileSync(config, `[server]\ndata_dir = ${JSON.stringify(path.join(dir, 'state'))}\n[agent]\npreset = "lines"\ncommand = ["sh", ${JSON.stringify(agent)}]\n`);
  const proc = spawn(binary(), ['runner', '--config', config, '--server', server.url, '--name', name, '--slots', '2', '--labels', labels], {
    env: { ...process.env, FLIGHTDECK_RUNNER_TOKEN: token, RUST_LOG: 'warn' },
    stdio: 'ignore',
  });
  runners.push(proc);
  return proc;
}

browserTest('runners show in their panel, and a card says when no online runner has its label', pages, async () => {
  const page = await openPage(browser, server.signInUrl, { errors });
  open.push(page);
  const { token } = await server.api('POST', '/api/runner-tokens', { name: 'lab' });
  const item = await server.api('POST', '/api/items', { title: 'Train the model', status: 'ready', requires: ['gpu'] });
  await waitForCardIn(page, 'ready', item.id);
  const card = page.locator(anyCard(item.id));
  await card.locator('.unroutable', { hasText: 'no online runner has label gpu' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator('#runners').isVisible(), false, 'no runner yet: no panel');

  const runner = startRunner(token, 'gpu-box', 'gpu,linux', path.join(workspace.dir, 'gate'));
  const row = page.locator('#runner-list li.runner', { hasText: 'gpu-box' });
  await row.locator('.runner-slots', { hasText: '1 of 2 slots used, 1 free' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await row.getAttribute('data-state'), 'online');
  assert.equal(await row.locator('.runner-labels').textContent(), 'gpu, linux');
  assert.match(await row.locator('.runner-version').textContent(), /^version \d+\.\d+\.\d+/);
  assert.match(await row.locator('.runner-heartbeat').textContent(), /^last heartbeat (just now|\d+ seconds ago)$/);
  await waitForCardIn(page, 'in_flight', item.id);
  assert.equal(await page.locator(`${anyCard(item.id)} .unroutable`).count(), 0, 'a runner took it');

  runner.kill('SIGKILL');
  await page.locator('#runner-list li.runner[data-state="offline"]', { hasText: 'gpu-box' }).waitFor({ timeout: WAIT_MS });
  await waitForCardIn(page, 'ready', item.id);
  await page.locator(`${anyCard(item.id)} .unroutable`, { hasText: 'no online runner has label gpu' }).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(errors, []);
});
