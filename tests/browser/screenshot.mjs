// Refreshes docs/board.png: a 1280x800 board with items in several columns and the drawer open
// on a Review item with its evidence (criteria met, the diff of a real agent's work, its
// artifacts). Not a test and not run in CI:
//   FLIGHTDECK_BIN=target/debug/flightdeck node tests/browser/screenshot.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeWorkspace, startServer } from './server.mjs';
import { WAIT_MS, anyCard, launch, makeReady, openPage, waitForCardIn } from './harness.mjs';
import { projectRepo, reviewWorkConfig } from './project.mjs';

const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/board.png');

const repoDir = mkdtempSync(path.join(tmpdir(), 'flightdeck-project-'));
const workspace = makeWorkspace(0, { rest: reviewWorkConfig(projectRepo(repoDir)) });
const server = await startServer(workspace);
const browser = await launch();
try {
  const add = (title, more = {}) => server.api('POST', '/api/items', { title, ...more });
  const reviewed = await add('Write the greeting', {
    description: 'Greet the user by name on the start page.',
    acceptanceCriteria: ['the greeting is written'],
    priority: 'high',
  });
  await makeReady(server, reviewed.id);
  const page = await openPage(browser, server.signInUrl, { viewport: { width: 1280, height: 800 } });
  await waitForCardIn(page, 'review', reviewed.id, 30_000);
  await server.api('PUT', '/api/pool', { size: 0 });

  const schema = await add('Design the export format', { priority: 'medium' });
  await add('Collect feedback from the beta', { priority: 'low' });
  await add('Fix the login redirect', { priority: 'urgent' });
  await server.api('POST', `/api/items/${schema.id}/move`, { status: 'planning' });
  const csv = await add('Export to CSV', { blockedBy: [schema.id] });
  await makeReady(server, csv.id);
  const docs = await add('Document the CLI flags', { priority: 'low' });
  await makeReady(server, docs.id);
  const key = await add('Rotate the API keys');
  await server.api('POST', `/api/items/${key.id}/move`, { status: 'blocked', reason: 'needs the admin password' });
  await waitForCardIn(page, 'blocked', key.id);

  await page.locator(`${anyCard(reviewed.id)} .card-title`).click();
  await page.locator(`#drawer[data-id="${reviewed.id}"]`).waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.locator('#drawer-criteria li[data-check="met"]').first().waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.locator('#drawer-diff details[data-path="README"] summary').click();
  await page.locator('#drawer-diff details[data-path="README"] table').waitFor({ state: 'visible', timeout: WAIT_MS });
  await page.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await browser.close().catch(() => {});
  await server.stop().catch(() => {});
  workspace.remove();
  rmSync(repoDir, { recursive: true, force: true });
}
