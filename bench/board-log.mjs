// Figure 8, the board's log viewer in Chromium (issue 11): the real release binary, the real
// board in Debian's Chromium (playwright-core from tests/browser), a real agent
// (bench/fixtures/log-agent.sh).
//
//   live:     an agent printing RATE lines/s for SECS s, each line stamped with the time it was
//             printed; the drawer open and following. Lag: every 50 ms the page reads the
//             newest line it shows; when it is newer than before, now minus its stamp. Input: a click
//             and a key press every 250 ms, timed by the Event Timing API (duration: from the
//             input to the next frame after its handlers), plus the long tasks it saw.
//   finished: an agent that printed LINES lines; from the click on its card to its last line
//             on screen (ms), and the renderer's memory with the log open over the empty board
//             (RSS of the renderer process from /proc, and the JS heap from CDP).
//
// node bench/board-log.mjs --bin target/release/flightdeck [--quick] --out FILE.json [--md FILE.md]
// node bench/board-log.mjs --report FILE.json --md FILE.md   (append an earlier run's figures)
import { readFileSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const QUICK = args.includes('--quick');
const BIN = path.resolve(arg('--bin', path.join(ROOT, 'target/release/flightdeck')));
const OUT = arg('--out', path.join(ROOT, 'bench/out/board-log.json'));
const MD = arg('--md', '');
const RATE = 1000;
const SECS = Number(arg('--secs', QUICK ? 10 : 100));
const LINES = Number(arg('--lines', QUICK ? 100_000 : 1_000_000));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// `--report FILE.json` only appends an earlier run's figures: it needs no browser, so it also
// works where tests/browser has no node_modules (the --memory, --runners and --scale modes).
const REPORT = arg('--report', '');
process.env.FLIGHTDECK_BIN = BIN;
const { makeWorkspace, startServer } = REPORT
  ? {}
  : await import(path.join(ROOT, 'tests/browser/server.mjs'));
const { chromium } = REPORT
  ? {}
  : await import(path.join(ROOT, 'tests/browser/node_modules/playwright-core/index.mjs'));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const pct = (values, p) => {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** Resident memory (KiB) of the browser's renderer processes (pids from CDP SystemInfo). */
async function rendererRssKib(browser) {
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  let total = 0;
  for (const { type, id } of processInfo) {
    if (type !== 'renderer') continue;
    try {
      total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${id}/status`, 'utf8'))[1]);
    } catch {
      /* gone meanwhile */
    }
  }
  return total;
}

async function waitForStatus(server, id, wanted, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const item = await server.api('GET', `/api/items/${id}`);
    if (wanted.includes(item.status)) return item;
    if (Date.now() > deadline) throw new Error(`"${item.title}" is ${item.status} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

async function openBoard(browser, server) {
  const ctx = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await ctx.newPage();
  await page.goto(server.signInUrl);
  await page.locator('#conn[data-state="live"]').waitFor({ state: 'attached', timeout: 30_000 });
  return page;
}

async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--enable-precise-memory-info'] });
}

async function live(server) {
  const browser = await launch();
  try {
    const page = await openBoard(browser, server);
    const item = await server.api('POST', '/api/items', { title: `paced ${RATE} lines/s for ${SECS} s`, status: 'ready' });
    await page.locator(`#board article.card[data-id="${item.id}"]`).click();
    await page.locator('#drawer-log .lv-rows').waitFor({ state: 'attached' });
    await page.evaluate(() => {
      const m = { lags: [], events: [], longTasks: [] };
      window.__bench = m;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) m.events.push({ name: e.name, duration: e.duration, delay: e.processingStart - e.startTime });
      }).observe({ type: 'event', durationThreshold: 16, buffered: true });
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) m.longTasks.push(e.duration);
      }).observe({ type: 'longtask', buffered: true });
      // How far behind: when a newer print stamp first shows on screen, now minus that stamp.
      m.newest = 0;
      m.timer = setInterval(() => {
        let newest = 0;
        for (const row of document.querySelectorAll('#drawer-log .lv-line')) {
          const stamp = /^t=(\d+) /.exec(row.textContent);
          if (stamp) newest = Math.max(newest, Number(stamp[1]));
        }
        if (newest > m.newest) {
          m.newest = newest;
          m.lags.push(Date.now() - newest);
        }
      }, 50);
      // Every input event, even a fast one, so the count says they were all timed.
      m.inputs = 0;
      document.addEventListener('keydown', () => { m.inputs += 1; });
      document.addEventListener('click', () => { m.inputs += 1; });
    });
    const search = page.locator('#drawer-log .lv-search');
    let sent = 0;
    const started = Date.now();
    while (Date.now() - started < SECS * 1000 + 2000) {
      await page.locator('#drawer-title').click();
      await search.press('a');
      sent += 2;
      await sleep(250);
    }
    await waitForStatus(server, item.id, ['review', 'done', 'blocked'], 60_000);
    const m = await page.evaluate(() => {
      clearInterval(window.__bench.timer);
      return window.__bench;
    });
    // Lag counts once lines flow: from the first sample on, including the end of the run.
    const durations = m.events.map((e) => e.duration);
    return {
      rate: RATE,
      secs: SECS,
      lag_samples: m.lags.length,
      lag_p50_ms: pct(m.lags, 50),
      lag_p99_ms: pct(m.lags, 99),
      lag_max_ms: m.lags.length ? Math.max(...m.lags) : null,
      inputs_sent: sent,
      inputs_seen: m.inputs,
      slow_inputs_over_16ms: durations.length,
      input_max_ms: durations.length ? Math.max(...durations) : 0,
      input_p99_ms: durations.length ? pct(durations, 99) : 0,
      long_tasks: m.longTasks.length,
      long_task_max_ms: m.longTasks.length ? Math.max(...m.longTasks) : 0,
    };
  } finally {
    await browser.close();
  }
}

/** Opens the finished item's drawer by a click, timing it to the last line on screen. */
async function measureOpen(server) {
  const item = await server.api('POST', '/api/items', { title: `print ${LINES} lines`, status: 'ready' });
  await waitForStatus(server, item.id, ['review', 'done', 'blocked'], 600_000);
  const browser = await launch();
  try {
    const page = await openBoard(browser, server);
    const card = page.locator(`#board article.card[data-id="${item.id}"]`);
    await card.waitFor({ state: 'visible' });
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    const heap = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const { metrics } = await cdp.send('Performance.getMetrics');
      return metrics.find((x) => x.name === 'JSHeapUsedSize').value;
    };
    await sleep(1000);
    const heapBefore = await heap();
    const rssBefore = await rendererRssKib(browser);
    const lastLine = `line ${LINES}`;
    await page.evaluate(({ id, lastLine: wanted }) => {
      window.__opened = new Promise((resolve) => {
        const card = document.querySelector(`#board article.card[data-id="${id}"]`);
        card.addEventListener('click', () => {
          const t0 = performance.now();
          const check = () => {
            const rows = document.querySelectorAll('#drawer-log .lv-line');
            if ([...rows].some((r) => r.textContent === wanted)) resolve(performance.now() - t0);
            else requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }, { once: true, capture: true });
      });
    }, { id: item.id, lastLine });
    await card.click();
    const openMs = await page.evaluate(() => window.__opened);
    await sleep(1000);
    const rows = await page.locator('#drawer-log .lv-row').count();
    const rssAfter = await rendererRssKib(browser);
    const heapAfter = await heap();
    return {
      lines: LINES,
      open_ms: Math.round(openMs),
      rows_in_dom: rows,
      renderer_rss_mib_over_empty_board: Math.round(((rssAfter - rssBefore) / 1024) * 10) / 10,
      js_heap_mib_over_empty_board: Math.round(((heapAfter - heapBefore) / 1048576) * 10) / 10,
    };
  } finally {
    await browser.close();
  }
}

let result;
if (REPORT) {
  // Only the report: the figures of an earlier run, appended to MD.
  result = JSON.parse(readFileSync(REPORT, 'utf8'));
} else {
  result = await measure();
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
}

async function measure() {
  const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const workspace = makeWorkspace(0, {
    rest: `[pool]\nsize = 2\n[agent]\npreset = "lines"\ncommand = ${JSON.stringify(['/bin/sh', path.join(HERE, 'fixtures', 'log-agent.sh')])}\n`,
  });
  const server = await startServer(workspace);
  try {
    const liveFigures = await live(server);
    const finishedFigures = await measureOpen(server);
    return {
      mode: QUICK ? 'quick' : 'full',
      date: new Date().toISOString(),
      live: liveFigures,
      finished: finishedFigures,
      loadavg_start: loadStart,
      loadavg_end: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    };
  } finally {
    await server.stop();
    workspace.remove();
  }
}
if (MD) {
  const l = result.live;
  const f = result.finished;
  appendFileSync(MD, `
## 8. The board's log viewer (Chromium)

An agent printing ${l.rate.toLocaleString('en')} lines/s for ${l.secs} s with the drawer open and following; then a finished ${f.lines.toLocaleString('en')}-line log opened from its card (bench/board-log.mjs; load average ${result.loadavg_start} at the start, ${result.loadavg_end} at the end).

| measure | value | target |
| --- | ---: | --- |
| live: behind the agent, p50 / p99 / max | ${l.lag_p50_ms} / ${l.lag_p99_ms} / ${l.lag_max_ms} ms | max < 1,000 ms |
| live: input to next frame (Event Timing), max over ${l.inputs_sent} inputs | ${l.input_max_ms} ms (${l.slow_inputs_over_16ms} event entries over 16 ms) | < 100 ms |
| live: long tasks (> 50 ms), longest | ${l.long_tasks}, ${l.long_task_max_ms} ms | |
| finished: click to last line on screen | ${f.open_ms} ms | < 1,000 ms |
| finished: renderer RSS over the empty board | ${f.renderer_rss_mib_over_empty_board} MiB | < 150 MB |
| finished: JS heap over the empty board | ${f.js_heap_mib_over_empty_board} MiB | |
| finished: line rows in the page | ${f.rows_in_dom} | |
`);
}
