// Starts and stops real gateway processes for the end-to-end tests.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const GATEWAY_BIN = process.env.GATEWAY_BIN || path.join(root, 'bin', 'gateway');

/** Returns a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls cond (which may be async) every stepMs until it is truthy; throws
 * naming what was awaited after timeoutMs.
 */
export async function waitUntil(what, cond, timeoutMs = 15000, stepMs = 25) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(stepMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * A running gateway process.
 * env: extra environment; args: extra flags.
 */
export class Gateway {
  constructor({ env = {}, args = [], port } = {}) {
    this.env = env;
    this.args = args;
    this.port = port;
    this.logs = '';
    this.exit = null;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start({ ready = true, timeoutMs = 15000 } = {}) {
    this.port ??= await freePort();
    this.proc = spawn(GATEWAY_BIN, this.args, {
      env: {
        PATH: process.env.PATH,
        GATEWAY_ENV: 'development',
        GATEWAY_HOST: '127.0.0.1',
        GATEWAY_LOG_LEVEL: 'info',
        GATEWAY_DRAIN_WINDOW: '500ms',
        GATEWAY_SHUTDOWN_TIMEOUT: '10s',
        PORT: String(this.port),
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => { this.exit = { code, signal }; resolve(this.exit); });
    });
    const collect = (d) => { this.logs += d.toString(); };
    this.proc.stdout.on('data', collect);
    this.proc.stderr.on('data', collect);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`gateway exited during start-up (${JSON.stringify(this.exit)}):\n${this.logs}`);
      try {
        const res = await fetch(`${this.url}${ready ? '/readyz' : '/livez'}`);
        if (res.status === 200) return this;
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    throw new Error(`gateway not ready within ${timeoutMs} ms:\n${this.logs}`);
  }

  /** Sends SIGTERM and waits for the exit; returns {code, signal}. */
  async stop(timeoutMs = 20000) {
    if (!this.proc || this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.proc.kill('SIGKILL');
      throw new Error(`gateway did not exit within ${timeoutMs} ms of SIGTERM`);
    }
    return result;
  }

  kill() { if (this.proc && !this.exit) this.proc.kill('SIGKILL'); }
}

/** Runs the binary to completion (for config errors, --help, --version). */
export function runOnce(args, env = {}) {
  return new Promise((resolve) => {
    const proc = spawn(GATEWAY_BIN, args, { env: { PATH: process.env.PATH, ...env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** sha256=<hex> of body under secret, as Modal signs. */
export function sign(secret, body) {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * The Standard Webhooks headers signing body with secret: webhook-id (a new
 * random one unless given), webhook-timestamp (now unless given, in Unix
 * seconds), webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
 */
export function standardHeaders(secret, body, { id = `msg_${randomBytes(16).toString('hex')}`, timestamp = Math.floor(Date.now() / 1000) } = {}) {
  const sig = createHmac('sha256', secret).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${sig}` };
}

/** POSTs body (a string) to path with headers; returns {status, body, text, headers}. */
export async function post(baseUrl, path, body, headers = {}) {
  const res = await fetch(`${baseUrl}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, body: json, text, headers: res.headers };
}

/** POSTs a webhook (an object, a string or raw bytes); returns {status, body, headers}. */
export async function postWebhook(baseUrl, payload, { secret, signature, headers = {} } = {}) {
  const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
  const h = { 'content-type': 'application/json', ...headers };
  if (signature !== undefined) h['x-modal-signature'] = signature;
  else if (secret) h['x-modal-signature'] = sign(secret, body);
  const res = await fetch(`${baseUrl}/api/webhooks/modal`, { method: 'POST', body, headers: h });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, body: json, text, headers: res.headers };
}
