// Connection state recovery with the unchanged socket.io-client v4: a
// client that reconnects (a network blip, a drained or killed node) gets
// its rooms back and every event it missed, exactly once and in order,
// on any node; when it cannot (window passed, stream trimmed, an offset
// the gateway did not issue, too much missed) it starts afresh and the
// app's own rejoin in on('connect') works as before. Clients here behave
// like the React app: they (re)join in on('connect') whatever
// socket.recovered says.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, sign, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, OFFSET } from './lib/client.mjs';
import { stickyBalancer } from './lib/lb.mjs';
import { hs256 } from './lib/jwt.mjs';

const EVENTS = 'events-e2e-secret-for-recovery-32-bytes-or-more';
const JOBS = 'jobs-e2e-secret-for-recovery-of-32-bytes-or-more';
const JWT_SECRET = 'jwt-e2e-secret-for-recovery-of-32-bytes-or-more';

/** POSTs a signed publish API batch; resolves true when accepted (200). */
async function publish(url, events) {
  const body = JSON.stringify({ events });
  try {
    const res = await fetch(`${url}/api/events`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-gateway-signature': sign(EVENTS, body) } });
    await res.text();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** A log line to project p whose message is seq. */
const line = (p, seq) => ({ event: 'log_line', project_id: p, data: { job_id: `job-${p}`, message: String(seq) } });

/**
 * A React-style client of project: it subscribes in on('connect') (every
 * connect, recovered or not) and records the log lines it receives (their
 * sequence numbers and offsets) and, per connect, socket.recovered.
 */
function appClient(url, project, opts = {}) {
  const socket = connect(url, { reconnectionDelay: 200, reconnectionDelayMax: 1000, ...opts });
  const c = { socket, project, seqs: [], offsets: [], recovered: [], subscribed: 0, other: [] };
  socket.on('connect', () => {
    c.recovered.push(socket.recovered);
    socket.emit('subscribe_project', { project_id: project });
  });
  socket.on('subscribed_project', (...args) => { c.subscribed++; assert.equal(args.length, 1, 'a direct reply carries no offset'); });
  socket.on('log_line', (data, offset, ...rest) => {
    c.seqs.push(Number(data.message));
    c.offsets.push(offset);
    if (rest.length) c.other.push(rest);
  });
  return c;
}

/** Waits until c is connected and subscribed n times. */
const subscribedTimes = (c, n = 1) => waitUntil(`client of ${c.project} subscribed ${n}x`, () => c.socket.connected && c.subscribed >= n);

/** Closes c's transport as a network blip would (the client reconnects). */
const blip = (c) => c.socket.io.engine.close();

/** Reads a counter of a gateway's /metrics (0 when absent). */
async function metric(gw, name, labels = '') {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('recovery on one node (in-process bus)', () => {
  const env = { GATEWAY_EVENTS_SECRET: EVENTS, GATEWAY_RECOVERY_MAX_EVENTS: '20' };
  const gw = new Gateway({ env });
  const clients = [];
  const client = (project, opts) => { const c = appClient(gw.url, project, opts); clients.push(c); return c; };
  before(async () => { await gw.start(); });
  after(async () => {
    clients.forEach((c) => c.socket.disconnect());
    assert.equal((await gw.stop()).code, 0, gw.logs);
  });

  it('room broadcasts carry the event id as their last argument; the events missed during a blip are replayed once, in order, then live ones follow', async () => {
    const c = client('solo');
    await subscribedTimes(c);
    assert.ok(await publish(gw.url, [line('solo', 1)]));
    await waitUntil('first line', () => c.seqs.length === 1);
    assert.match(c.offsets[0], /^\d+$/, 'a sequence number with the in-process bus');
    blip(c);
    await waitUntil('disconnected', () => !c.socket.connected, 2000, 2);
    assert.ok(await publish(gw.url, [2, 3, 4].map((n) => line('solo', n))));
    await subscribedTimes(c, 2);
    assert.deepEqual(c.recovered, [false, true]);
    assert.ok(await publish(gw.url, [line('solo', 5)]));
    await waitUntil('all five', () => c.seqs.length >= 5);
    await sleep(200);
    assert.deepEqual(c.seqs, [1, 2, 3, 4, 5]);
    const ids = c.offsets.map(Number);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'offsets increase');
    assert.deepEqual(c.other, []);
  });

  it('an offset the gateway did not issue (say, the string argument of a Flask emit) is unknown: a fresh session, nothing replayed', async () => {
    const c = client('forged');
    await subscribedTimes(c);
    const before = await metric(gw, 'gateway_recoveries_total', '{outcome="unknown"}');
    c.socket._lastOffset = 'a string from elsewhere';
    blip(c);
    await subscribedTimes(c, 2);
    assert.deepEqual(c.recovered, [false, false]);
    assert.equal(await metric(gw, 'gateway_recoveries_total', '{outcome="unknown"}'), before + 1);
    assert.ok(await publish(gw.url, [line('forged', 1)]));
    await waitUntil('live after rejoin', () => c.seqs.length === 1);
  });

  it('more missed events than recovery-max-events: not recovered, nothing replayed, the rejoin works', async () => {
    const c = client('flood');
    await subscribedTimes(c);
    assert.ok(await publish(gw.url, [line('flood', 0)]));
    await waitUntil('first', () => c.seqs.length === 1);
    blip(c);
    await waitUntil('disconnected', () => !c.socket.connected, 2000, 2);
    assert.ok(await publish(gw.url, Array.from({ length: 21 }, (_, i) => line('flood', i + 1))));
    await subscribedTimes(c, 2);
    assert.deepEqual(c.recovered, [false, false]);
    assert.ok(await publish(gw.url, [line('flood', 99)]));
    await waitUntil('live', () => c.seqs.includes(99));
    assert.deepEqual(c.seqs, [0, 99]);
    assert.ok(await metric(gw, 'gateway_recoveries_total', '{outcome="too_many"}') >= 1);
  });

  it('a client that disconnects on purpose ends its session', async () => {
    const c = client('leaving');
    await subscribedTimes(c);
    c.socket.disconnect();
    c.socket.connect();
    await subscribedTimes(c, 2);
    assert.deepEqual(c.recovered, [false, false]);
  });
});

describe('recovery window', () => {
  const gw = new Gateway({ env: { GATEWAY_EVENTS_SECRET: EVENTS, GATEWAY_RECOVERY_MAX_DISCONNECTION: '1s' } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0, gw.logs); });

  it('past the window: recovered false, nothing replayed, counted as expired; the rejoin gets live events', async () => {
    const c = appClient(gw.url, 'late', { reconnectionDelay: 2000, reconnectionDelayMax: 2000, randomizationFactor: 0 });
    try {
      await subscribedTimes(c);
      assert.ok(await publish(gw.url, [line('late', 1)]));
      await waitUntil('first', () => c.seqs.length === 1);
      blip(c);
      await waitUntil('disconnected', () => !c.socket.connected, 2000, 2);
      assert.ok(await publish(gw.url, [line('late', 2)]));
      await subscribedTimes(c, 2);
      assert.deepEqual(c.recovered, [false, false]);
      assert.ok(await publish(gw.url, [line('late', 3)]));
      await waitUntil('live', () => c.seqs.includes(3));
      assert.deepEqual(c.seqs, [1, 3]);
      assert.equal(await metric(gw, 'gateway_recoveries_total', '{outcome="expired"}'), 1);
    } finally {
      c.socket.disconnect();
    }
  });
});

describe('recovery and authorization', () => {
  const gw = new Gateway({ env: { GATEWAY_AUTH: 'jwt', GATEWAY_JWT_SECRETS: JWT_SECRET, GATEWAY_EVENTS_SECRET: EVENTS } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0, gw.logs); });

  it('a recovered session is authorized again: a project the user lost is neither rejoined nor replayed', async () => {
    let projects = ['p1', 'p2'];
    const socket = connect(gw.url, { reconnectionDelay: 200, auth: (cb) => cb({ token: hs256(JWT_SECRET, { sub: 'ana', projects }) }) });
    const got = [];
    const recovered = [];
    socket.on('connect', () => recovered.push(socket.recovered));
    socket.on('log_line', (d) => got.push(d.message));
    try {
      await waitUntil('connected', () => socket.connected);
      for (const p of ['p1', 'p2']) {
        const reply = await socket.timeout(3000).emitWithAck('subscribe_project', { project_id: p });
        assert.deepEqual(reply, { project_id: p });
      }
      assert.ok(await publish(gw.url, [line('p1', 'a1'), line('p2', 'b1')]));
      await waitUntil('both', () => got.length === 2);
      projects = ['p2'];
      blip({ socket });
      await waitUntil('disconnected', () => !socket.connected, 2000, 2);
      assert.ok(await publish(gw.url, [line('p1', 'a2'), line('p2', 'b2')]));
      await waitUntil('recovered', () => recovered.length === 2);
      assert.deepEqual(recovered, [false, true]);
      assert.ok(await publish(gw.url, [line('p1', 'a3'), line('p2', 'b3')]));
      await waitUntil('b3', () => got.includes('b3'));
      await sleep(200);
      assert.deepEqual(got, ['a1', 'b1', 'b2', 'b3']);
    } finally {
      socket.disconnect();
    }
  });

  it("another user's session id is not recovered: the connection is closed and the next one starts afresh", async () => {
    const alice = connect(gw.url, { auth: { token: hs256(JWT_SECRET, { sub: 'alice', projects: ['secret'] }) } });
    const mallory = connect(gw.url, { reconnectionDelay: 200, auth: { token: hs256(JWT_SECRET, { sub: 'mallory', projects: '*' }) } });
    const seen = [];
    const recovered = [];
    mallory.on('connect', () => recovered.push(mallory.recovered));
    mallory.on('log_line', (d) => seen.push(d.message));
    try {
      await waitUntil('both connected', () => alice.connected && mallory.connected);
      assert.deepEqual(await alice.timeout(3000).emitWithAck('subscribe_project', { project_id: 'secret' }), { project_id: 'secret' });
      assert.ok(await publish(gw.url, [line('secret', 's1')]));
      await waitUntil('alice has an offset', () => typeof alice._lastOffset === 'string');
      mallory._pid = alice._pid;
      mallory._lastOffset = alice._lastOffset;
      mallory.io.engine.close();
      await waitUntil('mallory reconnected afresh', () => recovered.length >= 2 && recovered.at(-1) === false && mallory.connected, 10000);
      assert.ok(await publish(gw.url, [line('secret', 's2')]));
      await sleep(300);
      assert.deepEqual(seen, [], 'nothing of alice reached mallory');
      assert.ok(await metric(gw, 'gateway_recoveries_total', '{outcome="unknown"}') >= 1);
    } finally {
      alice.disconnect();
      mallory.disconnect();
    }
  });
});

describe('recovery over Redis', { skip: redisSkip }, () => {
  const redis = new Redis();
  const nodes = [];
  let lb;
  const env = () => ({
    REDIS_URL: redis.url, GATEWAY_EVENTS_SECRET: EVENTS, GATEWAY_JOBS_SECRET: JOBS, GATEWAY_LOG_LEVEL: 'warn',
    GATEWAY_HANDSHAKE_RATE_PER_IP: '0', GATEWAY_DRAIN_WINDOW: '1s', GATEWAY_CANARY_INTERVAL: '200ms',
  });
  before(async () => {
    await redis.start();
    for (let i = 0; i < 3; i++) nodes.push(new Gateway({ env: env() }));
    await Promise.all(nodes.map((n) => n.start()));
    lb = await stickyBalancer(nodes);
  });
  after(async () => {
    lb?.close();
    for (const n of nodes) if (!n.exit) assert.equal((await n.stop()).code, 0, n.logs);
    await redis.destroy();
  });

  it('three nodes, a producer every 10 ms: a drained node (SIGTERM) then a killed one (SIGKILL): every acknowledged event reaches every client exactly once, in order, and each reconnect is recovered; websocket, polling and upgrading clients', async () => {
    const [drained, killed, producerNode] = nodes;
    // Clients spread over the nodes by the balancer, none starting on the
    // producer's node: each is moved by the drain, the kill or both.
    const transports = [['websocket'], ['polling'], ['polling', 'websocket']];
    const clients = [];
    for (let i = 0; clients.length < 18 && i < 1000; i++) {
      const key = `c${i}`;
      const [first, second] = lb.order(key);
      if (first === producerNode) continue;
      const n = clients.length;
      const c = appClient(lb.url, `r${n % 3}`, { transports: transports[n % 3], query: { lb: key } });
      const afterDrain = first === drained ? second : first;
      c.moves = (first === drained ? 1 : 0) + (afterDrain === killed ? 1 : 0);
      c.byDrain = first === drained;
      clients.push(c);
    }
    try {
      assert.ok(clients.some((c) => c.moves === 2) && clients.some((c) => !c.byDrain), 'clients on both nodes, some moved twice');
      await Promise.all(clients.map((c) => subscribedTimes(c)));
      const acked = { r0: [], r1: [], r2: [] };
      let running = true;
      const producer = (async () => {
        let seq = 0;
        while (running) {
          const project = `r${seq % 3}`;
          const n = seq++;
          if (await publish(producerNode.url, [line(project, n)])) acked[project].push(n);
          await sleep(10);
        }
      })();
      await sleep(500);
      assert.equal((await drained.stop()).code, 0, drained.logs);
      await waitUntil('every client back after the drain', () => clients.every((c) => c.socket.connected && c.recovered.length >= 1 + (c.byDrain ? 1 : 0)), 15000);
      await sleep(700);
      killed.kill();
      await killed.exited;
      await waitUntil('every client back after the kill', () => clients.every((c) => c.socket.connected && c.recovered.length >= 1 + c.moves), 15000);
      await sleep(700);
      running = false;
      await producer;
      for (const p of Object.keys(acked)) assert.ok(acked[p].length > 50, `producer acknowledged only ${acked[p].length} events for ${p}`);
      await waitUntil('every client has every acknowledged event', () => clients.every((c) => c.seqs.length >= acked[c.project].length), 15000);
      await sleep(300);
      for (const c of clients) {
        const want = acked[c.project];
        assert.deepEqual(c.seqs, want, `client of ${c.project} over ${c.socket.io.engine?.transport?.name}: ${c.seqs.length} received, ${want.length} acknowledged`);
        assert.ok(c.offsets.every((o) => OFFSET.test(o) && o.includes('-')), 'stream ids as offsets');
        assert.deepEqual(c.recovered, [false, ...Array(c.moves).fill(true)], `recovered flags of a client of ${c.project}`);
      }
      assert.ok(await metric(producerNode, 'gateway_recoveries_total', '{outcome="recovered"}') >= 1);
    } finally {
      clients.forEach((c) => c.socket.disconnect());
    }
  });

  /**
   * Moves c, connected to node, to a new process on the same port (whose
   * backlog is empty, so what c missed comes from the stream) while
   * missed is published; trim first empties the stream.
   */
  async function toFreshNode(node, c, missed, { trim = false } = {}) {
    assert.equal((await node.stop()).code, 0, node.logs);
    if (trim) await redis.command('XTRIM', 'gateway:events', 'MAXLEN', '0');
    assert.ok(await publish(nodes[2].url, missed));
    const fresh = new Gateway({ env: env(), port: node.port });
    await fresh.start();
    return fresh;
  }

  it('a node that never saw the offset reads what the client missed from the stream; past stream retention (trimmed) the client starts afresh', async () => {
    let node = new Gateway({ env: env() });
    await node.start();
    const c = appClient(node.url, 'moved', { reconnectionDelay: 300, reconnectionDelayMax: 300 });
    try {
      await subscribedTimes(c);
      assert.ok(await publish(node.url, [line('moved', 1)]));
      await waitUntil('first', () => c.seqs.length === 1);
      node = await toFreshNode(node, c, [line('moved', 2), line('moved', 3)]);
      await subscribedTimes(c, 2);
      await waitUntil('replayed from the stream', () => c.seqs.length === 3);
      assert.deepEqual(c.recovered, [false, true]);
      assert.deepEqual(c.seqs, [1, 2, 3]);

      node = await toFreshNode(node, c, [line('moved', 4)], { trim: true });
      await subscribedTimes(c, 3);
      assert.deepEqual(c.recovered, [false, true, false]);
      assert.equal(await metric(node, 'gateway_recoveries_total', '{outcome="expired"}'), 1);
      assert.ok(await publish(node.url, [line('moved', 5)]));
      await waitUntil('live after the rejoin', () => c.seqs.includes(5));
      assert.deepEqual(c.seqs, [1, 2, 3, 5]);
    } finally {
      c.socket.disconnect();
      assert.equal((await node.stop()).code, 0, node.logs);
    }
  });
});
