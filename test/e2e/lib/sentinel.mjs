// Real redis-sentinel processes (Debian's redis-sentinel) for the failover
// tests, each on a free port with its own writable config file.
import { spawn, spawnSync, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, sleep } from './gateway.mjs';
import { redisUnavailable } from './redis.mjs';

/**
 * False when redis-server, redis-cli and redis-sentinel can run here;
 * otherwise the reason, for a suite's { skip }. Under CI a missing one is
 * an error: .ci/run installs them.
 */
export function sentinelUnavailable() {
  const redis = redisUnavailable();
  if (redis) return redis;
  const r = spawnSync('redis-sentinel', ['--version'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) {
    const why = `redis-sentinel cannot run (${(r.error?.message || r.stderr || '').trim()}); apt-get install -y redis-sentinel`;
    if (process.env.CI) throw new Error(why);
    return why;
  }
  return false;
}

function cli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-p', String(port), ...args], { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

/** One sentinel monitoring master `name` at 127.0.0.1:masterPort. */
export class Sentinel {
  constructor({ name = 'mymaster', masterPort, quorum = 2, downAfterMs = 1000, failoverTimeoutMs = 3000 }) {
    Object.assign(this, { name, masterPort, quorum, downAfterMs, failoverTimeoutMs });
    this.dir = mkdtempSync(path.join(tmpdir(), 'gw-sentinel-'));
  }

  get addr() { return `127.0.0.1:${this.port}`; }

  async start() {
    this.port ??= await freePort();
    const conf = path.join(this.dir, 'sentinel.conf');
    writeFileSync(conf, [
      `port ${this.port}`,
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      'loglevel warning',
      `sentinel monitor ${this.name} 127.0.0.1 ${this.masterPort} ${this.quorum}`,
      `sentinel down-after-milliseconds ${this.name} ${this.downAfterMs}`,
      `sentinel failover-timeout ${this.name} ${this.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${this.name} 1`,
      '',
    ].join('\n'));
    this.proc = spawn('redis-sentinel', [conf], { stdio: 'ignore' });
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    for (let i = 0; i < 200; i++) {
      try { if ((await cli(this.port, 'PING')) === 'PONG') return this; } catch { /* starting */ }
      await sleep(25);
    }
    throw new Error(`redis-sentinel on ${this.port} did not start`);
  }

  /** SENTINEL MASTER <name> as an object (num-other-sentinels, num-slaves, ...). */
  async master() {
    const lines = (await cli(this.port, 'SENTINEL', 'MASTER', this.name)).split('\n');
    const out = {};
    for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = lines[i + 1];
    return out;
  }

  /** The port of the master this sentinel currently names. */
  async masterPortNow() {
    const [, port] = (await cli(this.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)).split('\n');
    return Number(port);
  }

  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    await this.exited;
    this.proc = undefined;
  }

  async destroy() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); }
}
