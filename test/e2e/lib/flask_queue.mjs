// Publishing on the Flask-SocketIO message queue from the e2e tests: the
// real Flask-SocketIO (lib/flask_emit.py, pickles), and the JSON that
// python-socketio >= 5.14 publishes, sent by a tiny RESP client.
import { spawn, spawnSync } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FLASK_EMIT = path.join(here, 'flask_emit.py');
export const FLASK_CHANNEL = 'flask-socketio';
/** Debian's interpreter: the one with python3-flask-socketio. */
export const PYTHON = '/usr/bin/python3';

/**
 * Whether the real Flask-SocketIO can be run; a reason string when not.
 * Under CI a missing Flask-SocketIO is an error, not a skip.
 */
export function flaskUnavailable() {
  const r = spawnSync(PYTHON, ['-c', 'import flask_socketio, socketio, redis'], { encoding: 'utf8', timeout: 20000 });
  if (r.status === 0) return false;
  const why = `${PYTHON} cannot import Flask-SocketIO (${(r.error?.message || r.stderr || '').trim()}); apt-get install -y python3-flask-socketio python3-redis`;
  if (process.env.CI) throw new Error(why);
  return why;
}

/**
 * Runs flask_emit.py (a write-only SocketIO(message_queue=...)) with the
 * instructions on stdin, once `subscribers` clients are on the channel.
 * Resolves when every instruction was published; rejects on failure or
 * after timeoutMs.
 */
export function flaskEmit(redisUrl, instructions, { subscribers = 0, channel, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const args = [FLASK_EMIT, '--redis', redisUrl, '--wait-subscribers', String(subscribers)];
    if (channel) args.push('--channel', channel);
    const proc = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`flask_emit.py timed out after ${timeoutMs} ms:\n${stderr}`)); }, timeoutMs);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      const ok = stdout.split('\n').filter((l) => l.includes('"ok": true')).length;
      if (code !== 0 || ok !== instructions.length) {
        reject(new Error(`flask_emit.py exited ${code}, ${ok}/${instructions.length} published:\n${stdout}\n${stderr}`));
      } else resolve(ok);
    });
    proc.stdin.end(instructions.map((i) => JSON.stringify(i)).join('\n') + '\n');
  });
}

// --- JSON as python-socketio >= 5.14 publishes it ---------------------------

const pyString = (s) => JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));

/**
 * Python's json.dumps(v) with its defaults (", " and ": " separators,
 * ensure_ascii): the bytes RedisManager._publish sends since 5.14. Numbers
 * must be integers or floats that are not whole (Python writes 1.0 as 1.0).
 */
export function pyDumps(v) {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return '[' + v.map(pyDumps).join(', ') + ']';
  if (typeof v === 'string') return pyString(v);
  if (typeof v === 'object') return '{' + Object.entries(v).map(([k, x]) => `${pyString(k)}: ${pyDumps(x)}`).join(', ') + '}';
  return JSON.stringify(v);
}

/**
 * The message PubSubManager.emit publishes in python-socketio >= 5.14 for
 * socketio.emit(event, data, to=to, skip_sid=skip) (no binary data): the
 * argument list, the "binary" flag, then the same keys as before.
 */
export function json514(event, data, { to = null, skipSid = null, namespace = '/', hostId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90' } = {}) {
  return pyDumps({
    method: 'emit', event, data: [data], binary: false, namespace,
    room: to, skip_sid: skipSid, callback: null, host_id: hostId,
  });
}

// --- a tiny RESP client -------------------------------------------------------

function resp(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends one command and resolves with the raw reply text. */
export function redisCommand(port, args, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const sock = netConnect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: no reply in ${timeoutMs} ms`)); }, timeoutMs);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('connect', () => sock.write(resp(args)));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (complete(buf)) { clearTimeout(timer); sock.end(); resolve(buf); }
    });
  });
}

// Whether buf holds one whole reply (integer, status, error, or a flat
// array of bulk strings and integers: all this file needs).
function complete(buf) {
  const end = buf.indexOf('\r\n');
  if (end < 0) return false;
  if (buf[0] !== '*') return true;
  let n = Number(buf.slice(1, end));
  let i = end + 2;
  while (n-- > 0) {
    const e = buf.indexOf('\r\n', i);
    if (e < 0) return false;
    if (buf[i] === '$') {
      const len = Number(buf.slice(i + 1, e));
      if (buf.length < e + 2 + len + 2) return false;
      i = e + 2 + len + 2;
    } else i = e + 2;
  }
  return true;
}

/** PUBLISH; resolves with the number of subscribers that got it. */
export async function publish(port, channel, payload) {
  const reply = await redisCommand(port, ['PUBLISH', channel, payload]);
  if (reply[0] !== ':') throw new Error(`PUBLISH: ${reply}`);
  return Number(reply.slice(1, reply.indexOf('\r\n')));
}

/** PUBSUB NUMSUB channel. */
export async function numsub(port, channel) {
  const reply = await redisCommand(port, ['PUBSUB', 'NUMSUB', channel]);
  const m = /:(\d+)\r\n$/.exec(reply);
  if (!m) throw new Error(`PUBSUB NUMSUB: ${JSON.stringify(reply)}`);
  return Number(m[1]);
}
