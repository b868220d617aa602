// Several real gateway processes over one real Redis: every node delivers
// every event to its own clients, exactly once and in order, across Redis
// blips and restarts; duplicates are dropped cluster-wide; readiness tells
// the truth; roles split receivers from Socket.IO nodes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, connected, request, recorder, withoutOffset } from './lib/client.mjs';

const SECRET = 'cluster-secret-of-at-least-32-bytes-for-e2e';

async function subscribed(gw, projectId, sockets) {
  const s = connect(gw.url);
  sockets.push(s);
  await connected(s);
  await request(s, 'subscribe_project', { project_id: projectId }, 'subscribed_project');
  return s;
}

const ready = async (gw) => (await fetch(`${gw.url}/readyz`)).status === 200;

/** Posts until answered 200, retrying 503s as Modal does; returns the answers seen. */
async function postUntilAccepted(gw, payload) {
  const answers = [];
  for (let attempt = 0; attempt < 400; attempt++) {
    let status;
    try {
      status = (await postWebhook(gw.url, payload, { secret: SECRET })).status;
    } catch { status = 'network'; }
    answers.push(status);
    if (status === 200) return answers;
    assert.ok(status === 503 || status === 'network', `unexpected answer ${status}`);
    await sleep(50);
  }
  throw new Error(`never accepted: ${answers.slice(-5)}`);
}

function seqsOf(events, name = 'job_completed') {
  return events.filter((e) => e.event === name).map((e) => e.args[0].result.seq);
}

describe('cluster of three nodes over Redis', { skip: redisSkip }, () => {
  const redis = new Redis({ aof: true });
  const env = () => ({ REDIS_URL: redis.url, MODAL_WEBHOOK_SECRET: SECRET, GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', GATEWAY_CANARY_INTERVAL: '200ms', GATEWAY_CANARY_TIMEOUT: '2s' });
  let nodes = [];
  const sockets = [];

  before(async () => {
    await redis.start();
    nodes = [new Gateway({ env: env() }), new Gateway({ env: env() }), new Gateway({ env: env() })];
    await Promise.all(nodes.map((n) => n.start()));
  });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    for (const n of nodes) assert.equal((await n.stop()).code, 0, n.logs);
    await redis.destroy();
  });

  it('a webhook posted to node 1 reaches every client of the room on every node exactly once, and no one else', async () => {
    const inRoom = [];
    const outside = [];
    for (const n of nodes) {
      for (let i = 0; i < 3; i++) inRoom.push(recorder(await subscribed(n, 'fanout', sockets)));
      outside.push(recorder(await subscribed(n, 'elsewhere', sockets)));
    }
    const res = await postWebhook(nodes[0].url, { job_id: 'fan-1', status: 'completed', result: { seq: 1 }, project_id: 'fanout' }, { secret: SECRET });
    assert.equal(res.status, 200);
    await waitUntil('all 9 clients', () => inRoom.every((ev) => ev.length >= 1));
    await sleep(300);
    for (const ev of inRoom) {
      assert.deepEqual(ev.map(withoutOffset), [{ event: 'job_completed', args: [{ project_id: 'fanout', job_id: 'fan-1', status: 'completed', result: { seq: 1 } }] }]);
    }
    for (const ev of outside) assert.deepEqual(ev, []);
  });

  it('duplicate deliveries of one (job_id, status) to different nodes reach clients once; each answered 200', async () => {
    const clients = [];
    for (const n of nodes) clients.push(recorder(await subscribed(n, 'dups', sockets)));
    const payload = { job_id: 'dup-1', status: 'completed', result: { seq: 7 }, project_id: 'dups' };
    for (const n of [nodes[0], nodes[1], nodes[2], nodes[0]]) {
      const r = await postWebhook(n.url, payload, { secret: SECRET });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { status: 'ok', job_id: 'dup-1' });
    }
    const failed = await postWebhook(nodes[1].url, { ...payload, status: 'failed', error: 'later failure' }, { secret: SECRET });
    assert.equal(failed.status, 200);
    await waitUntil('failure delivered', () => clients.every((ev) => ev.some((e) => e.event === 'job_failed')));
    await sleep(300);
    for (const ev of clients) {
      assert.equal(ev.filter((e) => e.event === 'job_completed').length, 1, 'completed delivered once');
      assert.equal(ev.filter((e) => e.event === 'job_failed').length, 1, '(job, failed) is a different delivery');
    }
  });

  for (const fault of ['CLIENT KILL TYPE normal', 'Redis restart (AOF on)']) {
    it(`${fault} while a producer posts numbered webhooks: every accepted webhook is delivered exactly once, in order`, async () => {
      const room = `blip-${fault.length}`;
      const clients = [];
      for (const n of nodes) clients.push(recorder(await subscribed(n, room, sockets)));
      const total = 150;
      let refused = 0;
      let faultDone;
      for (let seq = 0; seq < total; seq++) {
        if (seq === 40) {
          // The fault runs while the producer keeps posting.
          faultDone = fault.startsWith('CLIENT')
            ? (async () => { for (let k = 0; k < 15; k++) { await redis.killNormalClients(); await sleep(20); } })()
            : (async () => { await redis.stop(); await sleep(800); await redis.start(); })();
        }
        const answers = await postUntilAccepted(nodes[seq % 3], { job_id: `${room}-${seq}`, status: 'completed', result: { seq }, project_id: room });
        refused += answers.length - 1;
      }
      await faultDone;
      if (fault.startsWith('Redis')) assert.ok(refused > 0, 'the producer never saw Redis down: the test did not exercise the fault');
      const want = Array.from({ length: total }, (_, i) => i);
      await waitUntil('every client has every event', () => clients.every((ev) => seqsOf(ev).length >= total), 30000);
      await sleep(300);
      for (const ev of clients) assert.deepEqual(seqsOf(ev), want);
      for (const n of nodes) await waitUntil('ready again', () => ready(n));
      console.log(`# ${fault}: ${refused} answers were 503/refused and retried; all ${total} delivered once in order on 3 nodes`);
    });
  }

  it('readiness fails when Redis goes away and comes back after; liveness does not depend on Redis', async () => {
    for (const n of nodes) assert.ok(await ready(n));
    await redis.stop();
    for (const n of nodes) {
      await waitUntil('not ready', async () => !(await ready(n)), 10000);
      const body = await (await fetch(`${n.url}/readyz`)).json();
      assert.equal(body.status, 'not ready');
      assert.match(body.failures.bus, /redis unreachable|consumer/);
      assert.equal((await fetch(`${n.url}/livez`)).status, 200);
      const r = await postWebhook(n.url, { job_id: 'while-down', status: 'completed', result: {}, project_id: 'x' }, { secret: SECRET });
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.deepEqual(r.body, { error: 'Event bus unavailable, retry later' });
    }
    await redis.start();
    for (const n of nodes) await waitUntil('ready again', () => ready(n), 15000);
    assert.match(nodes[0].logs, /redis lost while consuming/);
    assert.match(nodes[0].logs, /redis back: consumer resumed/);
  });
});

describe('a node that starts while Redis is down', { skip: redisSkip }, () => {
  it('starts, is not ready, and becomes ready by itself when Redis comes up', async () => {
    const redis = new Redis();
    await redis.start();
    await redis.stop();
    const gw = new Gateway({ env: { REDIS_URL: redis.url, GATEWAY_CANARY_INTERVAL: '200ms', GATEWAY_CANARY_TIMEOUT: '2s' } });
    await gw.start({ ready: false });
    await sleep(500);
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 503);
    assert.match(gw.logs, /redis unreachable at start-up/);
    await redis.start();
    await waitUntil('ready', () => ready(gw));
    assert.equal((await gw.stop()).code, 0);
    await redis.destroy();
  });
});

describe('roles: a webhook-only node and a socket-only node', { skip: redisSkip }, () => {
  const redis = new Redis();
  let receiver;
  let socketNode;
  before(async () => {
    await redis.start();
    receiver = new Gateway({ env: { REDIS_URL: redis.url, GATEWAY_ROLE: 'webhook' } });
    socketNode = new Gateway({ env: { REDIS_URL: redis.url, GATEWAY_ROLE: 'socket' } });
    await Promise.all([receiver.start(), socketNode.start()]);
  });
  after(async () => {
    assert.equal((await receiver.stop()).code, 0);
    assert.equal((await socketNode.stop()).code, 0);
    await redis.destroy();
  });

  it('the receiver serves no /socket.io/, the socket node no webhook; together they deliver', async () => {
    assert.equal((await fetch(`${receiver.url}/socket.io/?EIO=4&transport=polling`)).status, 404);
    assert.equal((await postWebhook(socketNode.url, { job_id: 'x', project_id: 'p' })).status, 404);
    const sockets = [];
    const s = await subscribed(socketNode, 'roles', sockets);
    const ev = recorder(s);
    const r = await postWebhook(receiver.url, { job_id: 'role-1', status: 'failed', error: 'boom', project_id: 'roles' });
    assert.equal(r.status, 200);
    await waitUntil('delivery', () => ev.length === 1);
    assert.deepEqual(withoutOffset(ev[0]), { event: 'job_failed', args: [{ project_id: 'roles', job_id: 'role-1', error: 'boom' }] });
    s.disconnect();
  });
});
