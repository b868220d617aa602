// Real redis-server processes for the cluster tests, each on a free port in
// its own temporary directory.
import { spawn, spawnSync, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './gateway.mjs';

/**
 * False when redis-server and redis-cli can run here; otherwise the reason,
 * for a suite's { skip }. Under CI (CI set) a missing Redis is an error:
 * .ci/run installs it.
 */
export function redisUnavailable() {
  for (const bin of ['redis-server', 'redis-cli']) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10000 });
    if (r.status !== 0) {
      const why = `${bin} cannot run (${(r.error?.message || r.stderr || '').trim()}); apt-get install -y redis-server`;
      if (process.env.CI) throw new Error(why);
      return why;
    }
  }
  return false;
}

/** redisUnavailable(), checked once per test file. */
export const redisSkip = redisUnavailable();

function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(port), ...args], { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

export class Redis {
  /** aof: appendonly with fsync always; args: extra redis-server arguments. */
  constructor({ aof = false, args = [] } = {}) {
    this.aof = aof;
    this.args = args;
    this.dir = mkdtempSync(path.join(tmpdir(), 'gw-redis-'));
  }

  get url() { return `redis://127.0.0.1:${this.port}/0`; }

  async start() {
    this.port ??= await freePort();
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--loglevel', 'warning'];
    if (this.aof) args.push('--appendonly', 'yes', '--appendfsync', 'always');
    args.push(...this.args);
    this.proc = spawn('redis-server', args, { stdio: 'ignore' });
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    for (let i = 0; i < 200; i++) {
      try { if ((await cli(this.port, 'PING')) === 'PONG') return this; } catch { /* starting */ }
      await sleep(25);
    }
    throw new Error(`redis-server on ${this.port} did not start`);
  }

  /** SIGTERM (an AOF is flushed) and wait. */
  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    await this.exited;
    this.proc = undefined;
  }

  async restart() { await this.stop(); await this.start(); }

  /** SIGKILL (nothing flushed, no goodbye to clients or replicas) and wait. */
  async kill() {
    if (!this.proc) return;
    this.proc.kill('SIGKILL');
    await this.exited;
    this.proc = undefined;
  }

  /** SIGSTOP: the process holds its connections and answers nothing. */
  pause() { this.proc?.kill('SIGSTOP'); }

  /** SIGCONT after pause(). */
  resume() { this.proc?.kill('SIGCONT'); }

  /** CLIENT KILL TYPE normal: drops every ordinary client connection. */
  killNormalClients() { return cli(this.port, 'CLIENT', 'KILL', 'TYPE', 'normal'); }

  command(...args) { return cli(this.port, ...args); }

  async destroy() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); }
}
