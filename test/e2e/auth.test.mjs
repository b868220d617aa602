// Only those allowed see a project: authentication on connect, authorization
// on every join, with the real socket.io-client; replay-proof producer
// signatures; the DNS-rebinding origin. The backend mode is decided by a
// real Flask app with its own session cookie (lib/flask_auth.py).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gateway, freePort, post, postWebhook, sleep, standardHeaders, waitUntil } from './lib/gateway.mjs';
import { clientTracker, connected, emitWithAck, next, recorder, request } from './lib/client.mjs';
import { hs256, jwksServer, rs256, rsaKey } from './lib/jwt.mjs';

const JWT_SECRET = 'jwt-e2e-secret-current-of-32-bytes-or-more';
const JWT_OLD = 'jwt-e2e-secret-previous-of-32-bytes-or-more';
const MODAL = 'modal-e2e-secret-for-auth-of-32-bytes-or-more';
const JOBS = 'jobs-e2e-secret-for-auth-of-32-bytes-or-more';
const EVENTS = 'events-e2e-secret-for-auth-of-32-bytes-or-more';

/** Resolves with the connect_error a socket gets (rejects if it connects). */
function connectError(socket, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('neither connect nor connect_error')), timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); reject(new Error('connected although it should not')); });
    socket.once('connect_error', (err) => { clearTimeout(timer); resolve(err); });
  });
}

/** A webhook to project p, Standard-signed. */
async function webhook(gw, jobId, projectId) {
  const body = JSON.stringify({ job_id: jobId, status: 'completed', result: { for: projectId }, project_id: projectId });
  const res = await post(gw.url, '/api/webhooks/modal', body, standardHeaders(MODAL, body));
  assert.equal(res.status, 200, res.text);
}

async function metric(gw, name, labels) {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('jwt: authentication on connect, authorization on every join', () => {
  const gw = new Gateway({ env: {
    GATEWAY_ENV: 'production', GATEWAY_AUTH: 'jwt', GATEWAY_JWT_SECRETS: `${JWT_SECRET},${JWT_OLD}`, GATEWAY_AUTH_COOKIE: 'gw_token',
    MODAL_WEBHOOK_SECRET: MODAL, GATEWAY_JOBS_SECRET: JOBS, GATEWAY_JWT_LEEWAY: '1s',
  } });
  const tracker = clientTracker();
  const connect = (opts) => tracker.connect(gw.url, { transports: ['websocket'], ...opts });
  before(async () => { await gw.start(); });
  after(async () => {
    tracker.closeAll();
    assert.equal((await gw.stop()).code, 0);
  });

  it('an anonymous client, a forged and a garbled token are refused: connect_error Unauthorized', async () => {
    for (const auth of [undefined, { token: hs256('not-the-secret-of-this-gateway-000000', { sub: 'eve', projects: '*' }) }, { token: 'garbage' }]) {
      const err = await connectError(connect({ auth, reconnection: false }));
      assert.equal(err.message, 'Unauthorized');
    }
    assert.ok(!gw.logs.includes(JWT_SECRET), 'a secret reached the logs');
  });

  it('a token listing project 42 joins 42, is refused 77 (error Forbidden, and the ack), and never gets an event of 77', async () => {
    const token = hs256(JWT_SECRET, { sub: 'alice', projects: ['42'] });
    const s = await connected(connect({ auth: { token } }));
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 42 }, 'subscribed_project'), { project_id: 42 });
    const refused = next(s, 'error');
    const ack = await emitWithAck(s, 'subscribe_project', { project_id: 77 });
    assert.deepEqual(ack, { message: 'Forbidden' });
    assert.deepEqual(await refused, { message: 'Forbidden' });
    const events = recorder(s);
    await webhook(gw, 'j-77', '77');
    await webhook(gw, 'j-42', '42');
    await waitUntil('the event of 42', () => events.some((e) => e.event === 'job_completed'));
    await sleep(200);
    assert.deepEqual(events.filter((e) => e.event === 'job_completed').map((e) => e.args[0].project_id), ['42']);
    assert.ok(s.connected, 'a refused join disconnected the socket');
    assert.match(gw.logs, /"msg":"join refused".*"user":"alice"/);
    assert.ok(!gw.logs.includes(token), 'a token reached the logs');
  });

  it('"*" allows every project; a token signed with the previous secret (rotation) is accepted', async () => {
    const s = await connected(connect({ auth: { token: hs256(JWT_OLD, { sub: 'ops', projects: '*' }) } }));
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 77 }, 'subscribed_project'), { project_id: 77 });
    const got = next(s, 'job_completed');
    await webhook(gw, 'j-77-star', '77');
    assert.equal((await got).job_id, 'j-77-star');
  });

  it('the token in a cookie (auth-cookie) is read: a same-site front end needs no code change', async () => {
    const token = hs256(JWT_SECRET, { sub: 'cookie-user', projects: ['42'] });
    const s = await connected(connect({ extraHeaders: { cookie: `other=1; gw_token=${token}` } }));
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: '42' }, 'subscribed_project'), { project_id: '42' });
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: '77' }, 'error'), { message: 'Forbidden' });
  });

  it('a batch of another project is refused; a batch of an allowed project is joined', async () => {
    const body = JSON.stringify({ jobs: [{ job_id: 'bj-42', project_id: '42', batch_id: 'b42' }, { job_id: 'bj-77', project_id: '77', batch_id: 'b77' }] });
    assert.equal((await post(gw.url, '/api/jobs', body, standardHeaders(JOBS, body))).status, 200);
    const s = await connected(connect({ auth: { token: hs256(JWT_SECRET, { sub: 'alice', projects: ['42'] }) } }));
    assert.deepEqual(await request(s, 'join_batch', { batch_id: 'b42' }, 'joined_batch'), { batch_id: 'b42' });
    assert.deepEqual(await request(s, 'join_batch', { batch_id: 'b77' }, 'error'), { message: 'Forbidden' });
    assert.deepEqual(await request(s, 'join_batch', { batch_id: 'unregistered' }, 'error'), { message: 'Forbidden' });
    assert.deepEqual(await request(s, 'subscribe_logs', { job_id: 'bj-77' }, 'error'), { message: 'Forbidden' });
    assert.equal((await request(s, 'subscribe_logs', { job_id: 'bj-42' }, 'subscribed')).status, 'started');
  });

  it('an expired token is disconnected at expiry; a client whose auth is a function reconnects with a fresh one', async () => {
    let issued = 0;
    const s = connect({ auth: (cb) => { issued++; cb({ token: hs256(JWT_SECRET, { sub: 'short', projects: ['42'], exp: Math.floor(Date.now() / 1000) + 2 }) }); } });
    await connected(s);
    const firstSid = s.id;
    const reason = await new Promise((resolve) => s.once('disconnect', resolve));
    assert.equal(reason, 'transport close');
    await waitUntil('reconnected with a fresh token', () => s.connected && s.id !== firstSid, 15000);
    assert.ok(issued >= 2, `auth called ${issued} times`);
    assert.ok(await metric(gw, 'gateway_auth_expired_total', '') >= 1);

    const fixed = connect({ auth: { token: hs256(JWT_SECRET, { sub: 'fixed', projects: ['42'], exp: Math.floor(Date.now() / 1000) + 2 }) } });
    await connected(fixed);
    const err = await connectError(fixed, 15000); // after the expiry, the reconnection is refused
    assert.equal(err.message, 'Unauthorized');
  });
});

describe('jwt with a JWKS: a key rotation', () => {
  const k1 = rsaKey('k1');
  const k2 = rsaKey('k2');
  let jwks;
  let gw;
  const tracker = clientTracker();
  const connect = (key, opts = {}) => tracker.connect(gw.url, { transports: ['websocket'], reconnection: false, auth: { token: rs256(key, { sub: 'a', projects: ['1'] }) }, ...opts });
  before(async () => {
    jwks = await jwksServer([k1]);
    gw = new Gateway({ env: { GATEWAY_AUTH: 'jwt', GATEWAY_JWKS_URL: jwks.url, GATEWAY_JWKS_REFRESH: '1h' } });
    await gw.start();
  });
  after(async () => {
    tracker.closeAll();
    assert.equal((await gw.stop()).code, 0);
    await jwks.close();
  });

  it('a token of a key published after start is accepted (the set is fetched again for its unknown kid); an unpublished key is refused without another fetch', async () => {
    await connected(connect(k1));
    const before = jwks.fetches;
    jwks.add(k2);
    await connected(connect(k2));
    assert.equal(jwks.fetches, before + 1, 'one fetch for the unknown kid');
    const err = await connectError(connect(rsaKey('k9')));
    assert.equal(err.message, 'Unauthorized');
    assert.equal(jwks.fetches, before + 1, 'an unknown kid within jwks-refresh fetches nothing more');
  });
});

const PYTHON = '/usr/bin/python3';
const flaskSkip = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import flask'], { encoding: 'utf8', timeout: 20000 });
  if (r.status === 0) return false;
  const why = `${PYTHON} cannot import flask (${(r.error?.message || r.stderr || '').trim()}); apt-get install -y python3-flask`;
  if (process.env.CI) throw new Error(why);
  return why;
})();

describe('backend: a real Flask app with its own session cookie decides', { skip: flaskSkip }, () => {
  const AUTH_SECRET = 'auth-backend-e2e-secret-of-32-bytes-or-more';
  let flask;
  let flaskUrl;
  let gw;
  const tracker = clientTracker();
  const login = async (user) => {
    const res = await fetch(`${flaskUrl}/login?user=${user}`, { method: 'POST' });
    return res.headers.get('set-cookie').split(';')[0];
  };
  const connect = (cookie, opts = {}) => tracker.connect(gw.url, { transports: ['websocket'], extraHeaders: cookie ? { cookie } : {}, ...opts });
  before(async () => {
    const port = await freePort();
    flaskUrl = `http://127.0.0.1:${port}`;
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 'flask_auth.py');
    flask = spawn(PYTHON, [script, String(port)], { env: { PATH: process.env.PATH, AUTH_SECRET }, stdio: 'ignore' });
    await waitUntil('the Flask backend', async () => { try { await fetch(`${flaskUrl}/calls`); return true; } catch { return false; } });
    gw = new Gateway({ env: { GATEWAY_AUTH: 'backend', GATEWAY_AUTH_URL: `${flaskUrl}/auth`, GATEWAY_AUTH_SECRET: AUTH_SECRET, GATEWAY_AUTH_TIMEOUT: '1s' } });
    await gw.start();
  });
  after(async () => {
    tracker.closeAll();
    assert.equal((await gw.stop()).code, 0);
    flask.kill();
  });

  it('without a session the connect is refused; with one the backend allows 42 and denies 77', async () => {
    assert.equal((await connectError(connect(undefined, { reconnection: false }))).message, 'Unauthorized');
    assert.equal((await connectError(connect('session=forged', { reconnection: false }))).message, 'Unauthorized');
    const s = await connected(connect(await login('alice')));
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 42 }, 'subscribed_project'), { project_id: 42 });
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 77 }, 'error'), { message: 'Forbidden' });
    assert.deepEqual(await request(s, 'join_batch', { batch_id: 'b42' }, 'joined_batch'), { batch_id: 'b42' });
    const calls = await (await fetch(`${flaskUrl}/calls`)).json();
    for (let i = 0; i < 3; i++) await request(s, 'subscribe_project', { project_id: 42 }, 'subscribed_project');
    const again = await (await fetch(`${flaskUrl}/calls`)).json();
    assert.equal(again.join, calls.join, 'decisions are cached per user and room');
  });

  it('a backend that times out denies (fail closed), counted as an error', async () => {
    const s = await connected(connect(await login('slowjoin')));
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 42 }, 'error'), { message: 'Forbidden' });
    assert.ok(await metric(gw, 'gateway_auth_backend_duration_seconds_count', '{call="join",outcome="error"}') >= 1);
    assert.equal((await connectError(connect(await login('slowconnect'), { reconnection: false }))).message, 'Unauthorized');
    assert.ok(await metric(gw, 'gateway_auth_connects_total', '{outcome="error"}') >= 1);
  });
});

describe('replay-proof producer signatures (require-timestamp, as the prod overlay sets it)', () => {
  const gw = new Gateway({ env: {
    GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', GATEWAY_REQUIRE_TIMESTAMP: 'true',
    MODAL_WEBHOOK_SECRET: MODAL, GATEWAY_JOBS_SECRET: JOBS, GATEWAY_EVENTS_SECRET: EVENTS,
  } });
  const tracker = clientTracker();
  before(async () => { await gw.start(); });
  after(async () => {
    tracker.closeAll();
    assert.equal((await gw.stop()).code, 0);
  });

  it('a replayed webhook and a publish sent three times are acknowledged without effect: one delivery each', async () => {
    const s = await connected(tracker.connect(gw.url, { transports: ['websocket'] }));
    await request(s, 'subscribe_project', { project_id: 'replay' }, 'subscribed_project');
    const events = recorder(s);
    const hook = JSON.stringify({ job_id: 'rj', status: 'completed', result: {}, project_id: 'replay' });
    const hookHeaders = standardHeaders(MODAL, hook);
    assert.equal((await post(gw.url, '/api/webhooks/modal', hook, hookHeaders)).status, 200);
    const replay = await post(gw.url, '/api/webhooks/modal', hook, hookHeaders);
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.body, { status: 'ok', replayed: true });
    const pub = JSON.stringify({ event: 'job_failed', data: { project_id: 'replay', job_id: 'rj2', error: 'x' } });
    const pubHeaders = standardHeaders(EVENTS, pub);
    for (let i = 0; i < 3; i++) assert.equal((await post(gw.url, '/api/events', pub, pubHeaders)).status, 200);
    await waitUntil('both events', () => events.filter((e) => e.event.startsWith('job_')).length >= 2);
    await sleep(300);
    assert.deepEqual(events.filter((e) => e.event.startsWith('job_')).map((e) => e.event), ['job_completed', 'job_failed']);
    assert.equal(await metric(gw, 'gateway_http_refusals_total', '{reason="replay",route="/api/events"}'), 2);
  });

  it('stale timestamps, body-only signatures and a body replayed to another route are refused (401)', async () => {
    const hook = JSON.stringify({ job_id: 'sj', status: 'completed', result: {}, project_id: 'p' });
    const stale = await post(gw.url, '/api/webhooks/modal', hook, standardHeaders(MODAL, hook, { timestamp: Math.floor(Date.now() / 1000) - 360 }));
    assert.equal(stale.status, 401);
    assert.match(stale.body.error, /webhook-timestamp is more than 5m0s away/);
    const future = await post(gw.url, '/api/webhooks/modal', hook, standardHeaders(MODAL, hook, { timestamp: Math.floor(Date.now() / 1000) + 360 }));
    assert.equal(future.status, 401);
    assert.equal((await postWebhook(gw.url, hook, { secret: MODAL })).status, 401, 'a body-only signature was accepted');
    const jobs = JSON.stringify({ job_id: 'sj', project_id: 'p' });
    const jobsHeaders = standardHeaders(JOBS, jobs);
    assert.equal((await post(gw.url, '/api/jobs', jobs, jobsHeaders)).status, 200);
    assert.equal((await post(gw.url, '/api/webhooks/modal', jobs, jobsHeaders)).status, 401, 'a /api/jobs request was accepted by the webhook');
  });
});

describe('the origin check never trusts the Host header (DNS rebinding)', () => {
  const gw = new Gateway({ env: { CORS_ORIGINS: 'http://app.example' } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0); });

  const handshake = (headers) => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path: '/socket.io/?EIO=4&transport=polling', headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });

  it('Origin: http://evil.test with Host: evil.test is refused; the configured origin and no origin pass', async () => {
    assert.equal(await handshake({ Host: 'evil.test', Origin: 'http://evil.test' }), 403);
    assert.equal(await handshake({ Host: `127.0.0.1:${gw.port}`, Origin: `http://127.0.0.1:${gw.port}` }), 403);
    assert.equal(await handshake({ Origin: 'http://app.example' }), 200);
    assert.equal(await handshake({}), 200);
  });
});
