// A node killed with SIGKILL under load (an OOM kill, a lost machine): no
// drain, no goodbye to Redis. Three nodes on one real redis-server behind
// the sticky balancer, React-style socket.io-client clients (they rejoin
// in on('connect')), a producer posting signed batches to every node
// throughout. The killed node's clients reconnect to the others and
// recover their sessions (rooms and log follows) with every acknowledged
// event exactly once, in order; what the dead node left in Redis (the
// follows and sessions of its clients that do not come back) carries TTLs
// bounded by the configured windows and is gone after them.
//
// recovery.test.mjs ("recovery over Redis") already checks delivery across
// a drain then a kill; this file adds the dead node's keys, a producer
// whose own node dies, clients that never come back, and the figures
// (printed as one JSON line, "kill-figures", for docs/reliability.md).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, sign, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect } from './lib/client.mjs';
import { stickyBalancer } from './lib/lb.mjs';

const EVENTS = 'events-e2e-secret-for-the-kill-test-32-bytes-or-more';
// Short windows so that the dead node's keys expire within the test.
const WINDOW_MS = 3000; // recovery-max-disconnection
const FOLLOW_TTL_MS = 1000; // follow-ttl
// gateway.SessionTTL: two windows and one heartbeat (a quarter window).
const SESSION_TTL_MS = 2 * WINDOW_MS + WINDOW_MS / 4;
const STREAM = 'gateway:events';
const PROJECTS = ['k0', 'k1', 'k2'];
// KILL_CLIENTS=300 for a bigger run than make test's.
const CLIENTS = Number(process.env.KILL_CLIENTS || 24);

/** POSTs a signed publish API batch; true when acknowledged (200). */
async function publish(url, events) {
  const body = JSON.stringify({ events });
  try {
    const res = await fetch(`${url}/api/events`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-gateway-signature': sign(EVENTS, body) }, signal: AbortSignal.timeout(3000) });
    await res.text();
    return res.status === 200;
  } catch {
    return false;
  }
}

const line = (p, seq) => ({ event: 'log_line', project_id: p, data: { job_id: `job-${p}`, message: String(seq) } });

async function metric(gw, name, labels = '') {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const l = text.split('\n').find((x) => x.startsWith(`${name}${labels} `));
  return l ? Number(l.split(' ')[1]) : 0;
}

/**
 * A React-style client: subscribes to its project in on('connect') every
 * time; follows the logs of its own job on a fresh session only (a
 * recovered session brings the follow back by itself).
 */
function appClient(url, key, project, opts = {}) {
  const socket = connect(url, { reconnectionDelay: 200, reconnectionDelayMax: 1000, query: { lb: key }, ...opts });
  const c = { key, socket, project, job: `kjob-${key}`, seqs: [], recovered: [], subscribed: 0, connects: [] };
  socket.on('connect', () => {
    c.recovered.push(socket.recovered);
    c.connects.push(Date.now());
    socket.emit('subscribe_project', { project_id: project });
    if (!socket.recovered) socket.emit('subscribe_logs', { job_id: c.job });
  });
  socket.on('subscribed_project', () => { c.subscribed++; });
  socket.on('subscribed', () => { c.following = true; });
  socket.on('log_line', (data) => { c.seqs.push(Number(data.message)); });
  return c;
}

describe('SIGKILL of a node under load', { skip: redisSkip }, () => {
  const redis = new Redis();
  const nodes = [];
  let lb;
  const clients = [];
  const env = {
    GATEWAY_EVENTS_SECRET: EVENTS, GATEWAY_LOG_LEVEL: 'warn', GATEWAY_HANDSHAKE_RATE_PER_IP: '0',
    GATEWAY_CANARY_INTERVAL: '200ms', GATEWAY_RECOVERY_MAX_DISCONNECTION: `${WINDOW_MS}ms`, GATEWAY_FOLLOW_TTL: `${FOLLOW_TTL_MS}ms`,
  };
  before(async () => {
    await redis.start();
    for (let i = 0; i < 3; i++) nodes.push(new Gateway({ env: { ...env, REDIS_URL: redis.url } }));
    await Promise.all(nodes.map((n) => n.start()));
    lb = await stickyBalancer(nodes);
  });
  after(async () => {
    clients.forEach((c) => c.socket.disconnect());
    lb?.close();
    for (const n of nodes) if (!n.exit) assert.equal((await n.stop()).code, 0, n.logs);
    await redis.destroy();
  });

  it("the killed node's clients recover on the others with every acknowledged event once, in order; its follows and the sessions of clients that do not come back expire", async () => {
    const [victim] = nodes;
    // CLIENTS clients, a third of them on the victim (as the balancer's
    // hashing places them); 4 more on the victim that never reconnect
    // (their tab closed with the node).
    const onVictim = Math.floor(CLIENTS / 3);
    let victimSlots = onVictim;
    let otherSlots = CLIENTS - onVictim;
    for (let i = 0; clients.length < CLIENTS && i < 20 * CLIENTS; i++) {
      const first = lb.order(`s${i}`)[0] === victim;
      if (first ? victimSlots-- <= 0 : otherSlots-- <= 0) continue;
      const c = appClient(lb.url, `s${i}`, PROJECTS[clients.length % 3]);
      c.onVictim = first;
      clients.push(c);
    }
    const gone = [];
    for (let i = 0; gone.length < 4 && i < 1000; i++) {
      if (lb.order(`g${i}`)[0] !== victim) continue;
      gone.push(appClient(lb.url, `g${i}`, PROJECTS[i % 3], { reconnection: false, transports: ['websocket'] }));
    }
    clients.push(...gone);
    const staying = clients.filter((c) => !gone.includes(c));
    const moved = staying.filter((c) => c.onVictim);
    assert.equal(moved.length, onVictim, 'clients on the victim');
    assert.equal(staying.length, CLIENTS);
    await waitUntil('every client subscribed and following', () => clients.every((c) => c.subscribed >= 1 && c.following), 15000);

    // What the victim holds in Redis: the gone clients' sessions and follows.
    const sessionKey = (c) => `${STREAM}:session:${c.socket._pid}`;
    const followKey = (c) => `${STREAM}:follows:${c.job}`;
    assert.ok(gone.every((c) => typeof c.socket._pid === 'string'), 'recovery sessions issued');
    for (const c of gone) {
      assert.equal(await redis.command('EXISTS', sessionKey(c)), '1', 'a session per client');
      assert.equal(await redis.command('ZCARD', followKey(c)), '1', 'a follow per client');
      const pttl = Number(await redis.command('PTTL', followKey(c)));
      assert.ok(pttl > 0 && pttl <= FOLLOW_TTL_MS, `follow of ${c.key}: PTTL ${pttl} ms, want within (0, ${FOLLOW_TTL_MS}]`);
    }
    const victimMembers = new Map();
    for (const c of moved) victimMembers.set(c, (await redis.command('ZRANGE', followKey(c), '0', '-1')).split('\n'));

    // The producer: a batch of one event per project every 15 ms, to each
    // node in turn (so some go to the victim, and fail, while it dies).
    const acked = Object.fromEntries(PROJECTS.map((p) => [p, []]));
    const unacked = Object.fromEntries(PROJECTS.map((p) => [p, []]));
    let running = true;
    let posts = 0;
    const producer = (async () => {
      for (let seq = 0; running && seq < 5000; seq++) {
        const target = nodes[seq % nodes.length];
        if (target.exit) continue;
        posts++;
        const ok = await publish(target.url, PROJECTS.map((p) => line(p, seq)));
        for (const p of PROJECTS) (ok ? acked : unacked)[p].push(seq);
        await sleep(15);
      }
    })();
    await sleep(800);

    const killedAt = Date.now();
    victim.kill();
    await victim.exited;
    await waitUntil("the victim's clients reconnected", () => moved.every((c) => c.socket.connected && c.recovered.length >= 2), 15000);
    const recoveredAfterMs = Math.max(...moved.map((c) => c.connects[1] - killedAt));
    await sleep(800);
    running = false;
    await producer;

    // Delivery: every acknowledged event once and in order; an event whose
    // answer was lost with the victim may arrive too (it is in the stream),
    // never twice.
    await waitUntil('every client has every acknowledged event', () => staying.every((c) => acked[c.project].every((s) => c.seqs.includes(s))), 15000);
    await sleep(300);
    let delivered = 0;
    let unackedDelivered = 0;
    for (const c of staying) {
      const got = new Set(c.seqs);
      assert.equal(got.size, c.seqs.length, `duplicates for client ${c.key}`);
      assert.deepEqual(c.seqs, [...c.seqs].sort((a, b) => a - b), `order for client ${c.key}`);
      const lost = acked[c.project].filter((s) => !got.has(s));
      assert.deepEqual(lost, [], `client ${c.key} lost acknowledged events`);
      const known = new Set([...acked[c.project], ...unacked[c.project]]);
      assert.ok(c.seqs.every((s) => known.has(s)), `client ${c.key} got an event never posted`);
      delivered += c.seqs.length;
      unackedDelivered += c.seqs.filter((s) => !acked[c.project].includes(s)).length;
    }
    for (const c of moved) assert.deepEqual(c.recovered, [false, true], `client ${c.key} recovered its session`);
    for (const c of gone) assert.equal(c.socket.connected, false);

    // The moved clients' follows live on under their new node (restored
    // from the session), the victim's member of each key expires.
    await sleep(FOLLOW_TTL_MS + 200);
    const nowMs = Number((await redis.command('TIME')).split('\n')[0]) * 1000;
    for (const c of moved) {
      const live = (await redis.command('ZRANGEBYSCORE', followKey(c), String(nowMs), '+inf')).split('\n').filter(Boolean);
      assert.equal(live.length, 1, `client ${c.key}: one live follower of its job`);
      assert.ok(!victimMembers.get(c).includes(live[0]), `client ${c.key}'s follow moved off the victim`);
    }
    // The gone clients' follows: the whole key is gone after follow-ttl.
    for (const c of gone) assert.equal(await redis.command('EXISTS', followKey(c)), '0', `follows of ${c.key} after follow-ttl`);
    // Their sessions carry a TTL within the session TTL and expire with it.
    for (const c of gone) {
      const pttl = Number(await redis.command('PTTL', sessionKey(c)));
      assert.ok(pttl > 0 && pttl <= SESSION_TTL_MS, `session of ${c.key}: PTTL ${pttl} ms, want within (0, ${SESSION_TTL_MS}]`);
    }
    await waitUntil('the sessions of the clients that did not come back expired', async () => {
      for (const c of gone) if ((await redis.command('EXISTS', sessionKey(c))) !== '0') return false;
      return true;
    }, SESSION_TTL_MS + 5000, 100);
    const expiredAfterMs = Date.now() - killedAt;
    // The moved clients' sessions are kept by their new nodes.
    for (const c of moved) assert.equal(await redis.command('EXISTS', sessionKey(c)), '1', `session of ${c.key} kept`);

    let recoveredCount = 0;
    for (const n of nodes.slice(1)) recoveredCount += await metric(n, 'gateway_recoveries_total', '{outcome="recovered"}');
    assert.ok(recoveredCount >= moved.length, `recoveries counted: ${recoveredCount}`);
    const ackedTotal = staying.reduce((sum, c) => sum + acked[c.project].length, 0);
    const figures = {
      fault: 'node SIGKILL under load', nodes: 3, clients: staying.length, moved: moved.length, gone: gone.length,
      posts, acknowledged_events: PROJECTS.reduce((s, p) => s + acked[p].length, 0), unacknowledged_events: PROJECTS.reduce((s, p) => s + unacked[p].length, 0),
      acknowledged_deliveries: ackedTotal, delivered, unacknowledged_delivered: unackedDelivered, lost: 0, duplicated: 0,
      recovered_sessions: moved.length, last_recovery_ms: recoveredAfterMs, dead_keys_gone_ms: expiredAfterMs,
      follow_ttl_ms: FOLLOW_TTL_MS, session_ttl_ms: SESSION_TTL_MS,
    };
    console.log(`kill-figures ${JSON.stringify(figures)}`);
  });
});
