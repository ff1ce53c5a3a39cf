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

/**
 * A fresh folder with a config.toml that binds `port` (0: any) and keeps data in ./data.
 * `server` is more of the [server] table (say `token = "none"`), `rest` more tables (the
 * default is a pool of 2). With no token configured the server generates one and prints the
 * board's sign-in URL.
 */
export function makeWorkspace(port = 0, { server = '', rest = '[pool]\nsize = 2\n' } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'flightdeck-browser-'));
  const dataDir = path.join(dir, 'data');
  writeFileSync(
    path.join(dir, 'config.toml'),
    `[server]\nbind = "127.0.0.1:${port}"\ndata_dir = ${JSON.stringify(dataDir)}\n${server}\n\n${rest}`,
  );
  return {
    dir,
    dataDir,
    config: path.join(dir, 'config.toml'),
    signsIn: !/^\s*token\s*=/m.test(server),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Spawns `flightdeck serve --config <dir>/config.toml` in `dir` and resolves once it printed
 * `flightdeck listening on http://HOST:PORT` (and, with a generated token, the line
 * `sign in: http://HOST:PORT/#token=...` after it). Its stderr goes to <dir>/server-N.log.
 * The server's `token` and `signInUrl` (the board's address, signed in) come from that line.
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

  const { url, signInUrl, token } = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`flightdeck did not start within ${START_TIMEOUT_MS} ms; stdout: ${out}\nstderr: ${tail(logPath)}`));
    }, START_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const listening = /flightdeck listening on (http:\/\/[^\s]+)/.exec(out);
      const signIn = /\nsign in: (http:\/\/[^\s]+#token=([^\s]+))/.exec(out);
      if (listening && (signIn || !workspace.signsIn)) {
        clearTimeout(timer);
        resolve({
          url: listening[1],
          signInUrl: signIn ? signIn[1] : listening[1],
          token: signIn ? signIn[2] : null,
        });
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
    signInUrl,
    token,
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
    api: (method, route, body) => api(url, method, route, body, token),
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

/** One JSON API call (with the token, when given); throws with the server's message on a non-2xx answer. */
export async function api(base, method, route, body, token = null) {
  const headers = { 'X-Flightdeck': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(new URL(route, base), {
    method,
    headers,
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
