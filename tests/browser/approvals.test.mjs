// A person in the loop from the board (issue 13): an ACP agent (the fixture agent
// tests/fixtures/agents/acp-fixture.mjs in mode `ask`, run by the `acp` preset through the
// real bridge and sandbox) asks to run a shell command; the card gets a "needs you" badge and
// the tab title counts it, live; the drawer shows the tool call, its command and the options;
// a follow-up message typed in the drawer reaches the agent as its next turn; clicking Allow
// lets the agent finish, and the item reaches Review. axe finds no serious violation in the
// panel, light or dark. (The real claude-agent-acp adapter is covered by tests/acp.rs.)
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, browserTest, cardIn, launch, openPage, waitForCardIn } from './harness.mjs';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'agents', 'acp-fixture.mjs');
const AGENT = `[pool]\nsize = 1\nmax_attempts = 1\n[agent]\npreset = "acp"\ncommand = ${JSON.stringify([process.execPath, FIXTURE, 'ask'])}\n[approvals]\ntimeout_secs = 600\n`;

let browser;
let workspace;
let server;
const open = [];
const errors = [];
const pages = () => open;

before(async () => {
  browser = await launch();
  workspace = makeWorkspace(await freePort(), { rest: AGENT });
  server = await startServer(workspace);
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  workspace?.remove();
});

/** Serious and critical axe violations inside `selector`, as "rule: target" lines. */
async function violations(page, selector) {
  await page.evaluate(AXE);
  const result = await page.evaluate((s) => window.axe.run(s, { resultTypes: ['violations'] }), selector);
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(' ')}`));
}

browserTest('an agent asking permission shows on its card and in the drawer; Allow from the drawer lets it reach Review', pages, async () => {
  const page = await openPage(browser, server.signInUrl, { viewport: { width: 1280, height: 800 }, errors });
  open.push(page);
  const item = await server.api('POST', '/api/items', { title: 'Touch the file', description: 'Run touch allowed.txt', status: 'ready' });

  // The card says the agent waits on a person, and the tab title counts it.
  const badge = page.locator(`${cardIn('in_flight', item.id)} .badge.waiting-on-person`);
  await badge.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await badge.textContent(), 'needs you');
  await page.waitForFunction(() => document.title === '(1) flightdeck', null, { timeout: WAIT_MS });

  // The drawer shows the tool call, its command and one button per option.
  await page.locator(`${anyCard(item.id)} .card-title`).click();
  const panel = page.locator('#drawer-people');
  await panel.waitFor({ state: 'visible', timeout: WAIT_MS });
  const request = panel.locator('.approval');
  await request.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal(await request.locator('h4').textContent(), 'The agent asks to execute: Run touch allowed.txt');
  assert.equal(await request.locator('pre.approval-detail').first().textContent(), 'touch allowed.txt');
  assert.deepEqual(await request.locator('.approval-options button').allTextContents(), ['Allow', 'Reject']);

  for (const colorScheme of ['light', 'dark']) {
    // Transitions off: axe must see the scheme's settled colours, not a fade between them.
    await page.emulateMedia({ colorScheme, reducedMotion: 'reduce' });
    assert.deepEqual(await violations(page, '#drawer-people'), [], `${colorScheme}: the approvals panel`);
  }
  await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'no-preference' });

  // A message while the turn runs is queued for the agent's next turn.
  await panel.getByLabel('Message to the agent').fill('Please also say thanks');
  await panel.getByRole('button', { name: 'Send' }).click();
  await panel.locator('.approvals-status', { hasText: 'Queued: the agent reads it when its current turn ends.' }).waitFor({ timeout: WAIT_MS });

  await request.getByRole('button', { name: 'Allow' }).click();
  await panel.locator('.approvals-status', { hasText: '"Run touch allowed.txt" on "Touch the file": Allow (a person chose it)' }).waitFor({ timeout: WAIT_MS });
  await waitForCardIn(page, 'review', item.id);
  assert.equal(await page.locator(`${anyCard(item.id)} .badge.waiting-on-person`).count(), 0, 'the badge goes with the request');
  await panel.waitFor({ state: 'hidden', timeout: WAIT_MS });

  // The agent heard the message as its next turn: its answer is in the item's log.
  const res = await fetch(new URL(`/api/items/${item.id}/log`, server.url), { headers: { Authorization: `Bearer ${server.token}` } });
  assert.match(await res.text(), /Heard: Please also say thanks/);
  assert.deepEqual(errors, []);
});
