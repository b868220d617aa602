// PROTOCOL.md "Transport": websocket, long-polling, the polling -> websocket
// upgrade, the message size limit, CORS, probes and the process lifecycle.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, runOnce, sleep } from './lib/gateway.mjs';
import { gatewaySuite, connect as connectClient, connected, next, request } from './lib/client.mjs';

async function deliversTo(gw, socket, projectId) {
  await request(socket, 'subscribe_project', { project_id: projectId }, 'subscribed_project');
  const got = next(socket, 'job_completed');
  const res = await postWebhook(gw.url, { job_id: `j-${projectId}`, status: 'completed', result: { ok: 1 }, project_id: projectId });
  assert.equal(res.status, 200);
  assert.deepEqual(await got, { project_id: projectId, job_id: `j-${projectId}`, status: 'completed', result: { ok: 1 } });
}

describe('transports', () => {
  const gw = new Gateway({ env: { GATEWAY_SOCKET_MAX_MESSAGE_BYTES: '2000' } });
  const { connect } = gatewaySuite(gw);

  it('websocket only', async () => {
    const s = await connected(connect(gw.url, { transports: ['websocket'] }));
    assert.equal(s.io.engine.transport.name, 'websocket');
    await deliversTo(gw, s, 'ws-only');
    s.disconnect();
  });

  it('long-polling only', async () => {
    const s = await connected(connect(gw.url, { transports: ['polling'] }));
    assert.equal(s.io.engine.transport.name, 'polling');
    await deliversTo(gw, s, 'polling-only');
    s.disconnect();
  });

  it('upgrades from polling to websocket and keeps its rooms', async () => {
    const s = connect(gw.url, { transports: ['polling', 'websocket'], autoConnect: false });
    let opened;
    const upgraded = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no upgrade within 5 s')), 5000);
      s.io.on('open', () => {
        opened = s.io.engine.transport.name;
        s.io.engine.once('upgrade', (t) => { clearTimeout(timer); resolve(t.name); });
      });
    });
    s.connect();
    await connected(s);
    await request(s, 'subscribe_project', { project_id: 'upgrader' }, 'subscribed_project');
    assert.equal(opened, 'polling', 'the session opened over polling');
    assert.equal(await upgraded, 'websocket');
    assert.equal(s.io.engine.transport.name, 'websocket');
    const got = next(s, 'job_failed');
    await postWebhook(gw.url, { job_id: 'j-up', status: 'failed', error: 'x', project_id: 'upgrader' });
    assert.deepEqual(await got, { project_id: 'upgrader', job_id: 'j-up', error: 'x' });
    s.disconnect();
  });

  for (const transport of ['websocket', 'polling']) {
    it(`a ${transport} message over the limit closes only that client`, async () => {
      const bystander = await connected(connect(gw.url));
      const offender = await connected(connect(gw.url, { transports: [transport], reconnection: false }));
      const closed = next(offender, 'disconnect', 5000);
      offender.emit('subscribe_project', { project_id: 'p', padding: 'x'.repeat(5000) });
      assert.ok(['transport close', 'transport error'].includes(await closed), 'closed at the transport level');
      assert.ok(bystander.connected, 'the other client was affected');
      await deliversTo(gw, bystander, `bystander-${transport}`);
      bystander.disconnect();
    });
  }

  it('CORS: an allowed dev origin gets CORS headers on polling and the API; others get none and cannot handshake', async () => {
    const allowed = 'http://localhost:5173';
    const poll = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: allowed } });
    assert.equal(poll.status, 200);
    assert.equal(poll.headers.get('access-control-allow-origin'), allowed);
    const preflight = await fetch(`${gw.url}/api/webhooks/modal`, {
      method: 'OPTIONS',
      headers: { origin: allowed, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.ok(preflight.status === 204 || preflight.status === 200, `preflight ${preflight.status}`);
    assert.equal(preflight.headers.get('access-control-allow-origin'), allowed);

    const evil = 'https://evil.example.com';
    const refused = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: evil } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const s = connect(gw.url, { transports: ['websocket'], reconnection: false, extraHeaders: { origin: evil } });
    const err = await next(s, 'connect_error');
    assert.ok(err instanceof Error);
    s.close();
  });

  it('probes: /livez, /healthz and /readyz answer 200 with JSON', async () => {
    for (const p of ['/livez', '/healthz', '/readyz']) {
      const res = await fetch(gw.url + p);
      assert.equal(res.status, 200, p);
      assert.ok((await res.json()).status);
    }
    const nf = await fetch(gw.url + '/api/nope');
    assert.equal(nf.status, 404);
    assert.deepEqual(await nf.json(), { error: 'Not Found' });
  });
});

describe('process lifecycle', () => {
  it('SIGTERM with clients connected: clients are closed at the transport level and the process exits 0', async () => {
    const gw = new Gateway();
    await gw.start();
    const clients = await Promise.all(Array.from({ length: 20 }, () => connected(connectClient(gw.url, { reconnection: false }))));
    const reasons = clients.map((c) => next(c, 'disconnect', 10000));
    const exit = await gw.stop(15000);
    assert.equal(exit.code, 0, gw.logs);
    for (const r of await Promise.all(reasons)) {
      assert.notEqual(r, 'io server disconnect', 'a server-side disconnect makes socket.io-client give up');
    }
  });

  it('production without a secret refuses to start: exit 2, one line naming the key', async () => {
    const r = await runOnce([], { GATEWAY_ENV: 'production' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /MODAL_WEBHOOK_SECRET/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('an invalid value exits 2 naming key and value', async () => {
    const r = await runOnce(['--port', '99999'], { GATEWAY_ENV: 'development' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /port \(PORT\) = "99999"/);
  });

  it('--help lists every key with its default and env name; --version prints the version', async () => {
    const help = await runOnce(['--help']);
    assert.equal(help.code, 0);
    for (const env of ['PORT', 'MODAL_WEBHOOK_SECRET', 'CORS_ORIGINS', 'REDIS_URL', 'GATEWAY_ENV']) assert.match(help.stdout, new RegExp(`\\(env ${env}\\)`));
    assert.match(help.stdout, /default 5000/);
    const version = await runOnce(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^gateway \S+/);
  });
});
