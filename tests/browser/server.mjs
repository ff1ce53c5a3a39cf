// Starts and stops a real `flightdeck serve` for the browser tests, and talks to its HTTP API.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 8_000;

export function binary() {
  const bin = process.env.FLIGHTDECK_BIN;
  if (!bin) throw new Error('FLIGHTDECK_BIN is not set: point it at target/debug/flightdeck');
  return bin;
}

/** A port nothing listens on right now (bind on 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A fresh folder with a config.toml that binds `port` (0: any) and keeps data in ./data. */
export function makeWorkspace(port = 0) {
  const dir = mkdtempSync(path.join(tmpdir(), 'flightdeck-browser-'));
  const dataDir = path.join(dir, 'data');
  writeFileSync(
    path.join(dir, 'config.toml'),
    `[server]\nbind = "127.0.0.1:${port}"\ndata_dir = ${JSON.stringify(dataDir)}\n\n[pool]\nsize = 2\n`,
  );
  return { dir, dataDir, config: path.join(dir, 'config.toml'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Spawns `flightdeck serve --config <dir>/config.toml` in `dir` and resolves once it printed
 * `flightdeck listening on http://HOST:PORT`. Its stderr goes to <dir>/server-N.log.
 */
export async function startServer(workspace) {
  workspace.starts = (workspace.starts || 0) + 1;
  const logPath = path.join(workspace.dir, `server-${workspace.starts}.log`);
  const logFd = openSync(logPath, 'w');
  const proc = spawn(binary(), ['serve', '--config', workspace.config], {
    cwd: workspace.dir,
    stdio: ['ignore', 'pipe', logFd],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
  });
  closeSync(logFd);
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`flightdeck did not start within ${START_TIMEOUT_MS} ms; stdout: ${out}\nstderr: ${tail(logPath)}`));
    }, START_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /flightdeck listening on (http:\/\/[^\s]+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`flightdeck exited (code ${code}, signal ${signal}) before listening; stderr: ${tail(logPath)}`));
    });
  });
  // Keep draining stdout so the server never blocks on a full pipe.
  proc.stdout.resume();

  const server = {
    url,
    proc,
    logPath,
    exited,
    /** SIGKILL, no goodbye: what a crash looks like. */
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
    /** SIGTERM, then SIGKILL if it takes too long. */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
    api: (method, route, body) => api(url, method, route, body),
  };
  return server;
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/** One JSON API call; throws with the server's message on a non-2xx answer. */
export async function api(base, method, route, body) {
  const res = await fetch(new URL(route, base), {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = new Error(`${method} ${route} -> ${res.status}: ${text}`);
    err.status = res.status;
    err.body = data;
    throw err;
  }
  return data;
}
