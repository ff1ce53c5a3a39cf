// Shared by the board's browser tests: Debian's Chromium through playwright-core, one window
// (browser context) per page so none is a background tab, and waits on what a person sees.
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const WAIT_MS = 15_000;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const column = (status) => `#board section.column[data-status="${status}"]`;
export const cardIn = (status, id) => `${column(status)} article.card[data-id="${id}"]`;
export const anyCard = (id) => `#board article.card[data-id="${id}"]`;

export async function launch() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A board page in a window of its own; `errors` collects uncaught page errors. */
export async function openPage(browser, url, { viewport = { width: 1600, height: 1000 }, colorScheme = 'light', live = true, errors = [] } = {}) {
  const ctx = await browser.newContext({ viewport, colorScheme });
  const page = await ctx.newPage();
  page.on('close', () => ctx.close().catch(() => {}));
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(url);
  if (live) await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: WAIT_MS });
  return page;
}

export async function waitForCardIn(page, status, id, timeout = WAIT_MS) {
  await page.locator(`${cardIn(status, id)}:not(.pending)`).waitFor({ state: 'visible', timeout });
}

/** A test that saves a screenshot of `pages()` to artifacts/ when it fails. */
export function browserTest(name, pages, body) {
  test(name, { timeout: 60_000 }, async (t) => {
    try {
      await body(t);
    } catch (err) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 60);
      let n = 0;
      for (const p of pages()) await p.screenshot({ path: path.join(ARTIFACTS, `failed-${slug}-${n++}.png`) }).catch(() => {});
      throw err;
    }
  });
}

/** Moves an item to Ready through the API (inbox -> planning -> ready). */
export async function makeReady(server, id) {
  await server.api('POST', `/api/items/${id}/move`, { status: 'planning' });
  await server.api('POST', `/api/items/${id}/move`, { status: 'ready' });
}
