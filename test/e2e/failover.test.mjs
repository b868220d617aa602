// A Redis Sentinel failover under load (issue 15): a master, a replica and
// three sentinels on loopback, three gateway nodes with a Sentinel
// REDIS_URL, real socket.io-client clients in a room on every node, and a
// producer posting webhooks and publish batches throughout while the master
// is killed with SIGKILL. The replica lags when the master dies: LAG_MS
// before the kill the replica is stopped (SIGSTOP) and the master drops its
// replication link (CLIENT KILL TYPE replica), so the master holds writes
// the replica never gets, which is what asynchronous replication loses in a
// failover; the replica continues (SIGCONT) right after the kill.
//
// With redis-min-replicas 1 a 200 means a replica has the event, so every
// acknowledged event reaches every client, in order, and an event
// acknowledged at its first attempt exactly once. An event whose first
// attempt was answered 503 (or cut off) may have been read by a node from
// the old master before the failover lost it, and is then delivered again
// after its retry: such duplicates are counted and reported, not hidden.
// With redis-min-replicas 0 the test reports what the failover lost (an
// event the master acknowledged and had not replicated) and asserts
// nothing about loss.
//
// The killed server comes back as a replica of the new master (asking a
// sentinel for it first, as Kubernetes charts of Redis do): with one
// replica and min-replicas 1, publishes answer 503 until it is back.
// Recovery times are printed, never asserted.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpus } from 'node:os';
import { Gateway, postWebhook, post, sign, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis } from './lib/redis.mjs';
import { Sentinel, sentinelUnavailable } from './lib/sentinel.mjs';
import { connect, connected, request, recorder } from './lib/client.mjs';

const WEBHOOK_SECRET = 'failover-webhook-secret-of-at-least-32-bytes';
const EVENTS_SECRET = 'failover-events-secret-of-at-least-32-bytes';
const MASTER = 'gwmaster';
const ROOM = 7;
const CLIENTS_PER_NODE = 2;
const BATCH = 4; // log lines per publish request
const LAG_MS = 700; // the replica gets nothing for this long before the kill

const skip = sentinelUnavailable();

const ready = async (gw) => {
  try { return (await fetch(`${gw.url}/readyz`)).status === 200; } catch { return false; }
};

/** The seq numbers a socket received, in order (job_completed and log_line). */
function seqsOf(events) {
  const out = [];
  for (const e of events) {
    if (e.event === 'job_completed') out.push(e.args[0].result.seq);
    else if (e.event === 'log_line') out.push(Number(e.args[0].message.split(' ')[1]));
  }
  return out;
}

/**
 * Posts one request until it is answered 200, retrying 503s and network
 * errors (at most 400 attempts, 50 ms apart); returns the number of
 * attempts.
 */
async function untilAccepted(send) {
  for (let attempt = 1; attempt <= 400; attempt++) {
    let status;
    try { status = (await send()).status; } catch { status = 'network'; }
    if (status === 200) return attempt;
    assert.ok(status === 503 || status === 'network', `unexpected answer ${status}`);
    await sleep(50);
  }
  throw new Error('a request was never accepted');
}

async function scenario(minReplicas) {
  const master = new Redis({ args: ['--repl-diskless-sync-delay', '0'] });
  await master.start();
  const replica = new Redis({ args: ['--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(master.port)] });
  await replica.start();
  const sentinels = [1, 2, 3].map(() => new Sentinel({ name: MASTER, masterPort: master.port, downAfterMs: 1000, failoverTimeoutMs: 3000 }));
  await Promise.all(sentinels.map((s) => s.start()));
  const nodes = [];
  const sockets = [];
  try {
    await waitUntil('the replica in sync', async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')), 15000, 50);
    await waitUntil('the sentinels know each other and the replica', async () => {
      for (const s of sentinels) {
        const m = await s.master();
        if (m['num-other-sentinels'] !== '2' || m['num-slaves'] !== '1') return false;
      }
      return true;
    }, 20000, 100);

    const [first, ...others] = sentinels;
    const url = `redis://${first.addr}/0?master_name=${MASTER}&${others.map((s) => `addr=${s.addr}`).join('&')}`;
    const env = {
      REDIS_URL: url,
      GATEWAY_REDIS_MIN_REPLICAS: String(minReplicas),
      GATEWAY_REDIS_REPLICA_TIMEOUT: '500ms',
      MODAL_WEBHOOK_SECRET: WEBHOOK_SECRET,
      GATEWAY_EVENTS_SECRET: EVENTS_SECRET,
      GATEWAY_ENV: 'production',
      GATEWAY_AUTH: 'none',
      GATEWAY_CANARY_INTERVAL: '200ms',
      GATEWAY_CANARY_TIMEOUT: '2s',
    };
    for (let i = 0; i < 3; i++) nodes.push(new Gateway({ env }));
    await Promise.all(nodes.map((n) => n.start({ timeoutMs: 20000 })));

    const clients = [];
    for (const n of nodes) {
      for (let i = 0; i < CLIENTS_PER_NODE; i++) {
        const s = connect(n.url);
        sockets.push(s);
        await connected(s);
        await request(s, 'subscribe_project', { project_id: ROOM }, 'subscribed_project');
        clients.push(recorder(s));
      }
    }

    // The producer: a webhook, then a publish batch of log lines with ids,
    // round robin over the nodes, each retried until 200. seq numbers
    // everything in the order it is acknowledged.
    let seq = 0;
    let stop = false;
    const acked = []; // seqs in acknowledgement order
    const retried = new Set(); // seqs whose request needed more than one attempt
    let killedAt = 0;
    let firstAckAfterKill = 0;
    let requests = 0;
    const ack = (seqs, attempts) => {
      acked.push(...seqs);
      if (attempts > 1) seqs.forEach((s) => retried.add(s));
      if (killedAt && !firstAckAfterKill && attempts > 1) firstAckAfterKill = Date.now();
    };
    const producer = (async () => {
      while (!stop && requests < 5000) {
        const node = nodes[requests++ % nodes.length];
        const s = seq++;
        const hook = { job_id: `fo-${minReplicas}-${s}`, status: 'completed', result: { seq: s }, project_id: ROOM };
        ack([s], await untilAccepted(() => postWebhook(node.url, hook, { secret: WEBHOOK_SECRET })));
        const seqs = Array.from({ length: BATCH }, () => seq++);
        const body = JSON.stringify({
          events: seqs.map((n) => ({ event: 'log_line', project_id: ROOM, id: `fo-${minReplicas}-${n}`, data: { job_id: 'fo', message: `seq ${n}` } })),
        });
        ack(seqs, await untilAccepted(() => post(node.url, '/api/events', body, { 'x-gateway-signature': sign(EVENTS_SECRET, body) })));
      }
    })();

    await sleep(2000);
    assert.ok(acked.length > 0, 'nothing acknowledged before the replica lag');
    // A lagging replica when the master dies (what asynchronous replication
    // loses): the replica stops acknowledging for LAG_MS, then the master is
    // killed and the replica continues.
    const beforeLag = acked.length;
    replica.pause();
    await master.command('CLIENT', 'KILL', 'TYPE', 'replica');
    await sleep(LAG_MS);
    const beforeKill = acked.length;
    const oldPort = master.port;
    killedAt = Date.now();
    await master.kill();
    replica.resume();

    // Readiness of every node, sampled every 100 ms.
    const seenDown = nodes.map(() => 0);
    const backAt = nodes.map(() => 0);
    let newPort = 0;
    let failoverAt = 0;
    let rejoinedAt = 0;
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      const states = await Promise.all(nodes.map(ready));
      states.forEach((ok, i) => {
        if (!ok && !seenDown[i]) seenDown[i] = Date.now();
        if (ok && seenDown[i] && !backAt[i]) backAt[i] = Date.now();
      });
      if (!newPort) {
        const p = await first.masterPortNow().catch(() => 0);
        if (p && p !== oldPort) {
          newPort = p;
          failoverAt = Date.now();
          // The killed server returns, empty (no persistence), as a replica
          // of the master the sentinels name now.
          master.args = ['--repl-diskless-sync-delay', '0', '--replicaof', '127.0.0.1', String(newPort)];
          await master.start();
        }
      }
      if (newPort && !rejoinedAt && /master_link_status:up/.test(await master.command('INFO', 'replication').catch(() => ''))) rejoinedAt = Date.now();
      if (backAt.every(Boolean) && rejoinedAt && firstAckAfterKill) break;
      await sleep(100);
    }
    assert.ok(newPort, 'the sentinels never promoted the replica');
    // Traffic after the recovery, then the producer stops.
    const afterRecovery = acked.length;
    await waitUntil('acknowledgements after the recovery', () => acked.length >= afterRecovery + 20, 20000, 50);
    stop = true;
    await producer;

    await waitUntil('every client caught up', () => clients.every((ev) => {
      const got = new Set(seqsOf(ev));
      return acked.every((s) => got.has(s));
    }), 10000, 100).catch(() => { /* reported and asserted below */ });
    await sleep(500); // nothing more may arrive

    // What the stream of the new master holds: an acknowledged event
    // missing there is lost for anything that reads the stream later
    // (connection state recovery, a node that had not read it yet).
    const inStream = new Set();
    for (const line of (await replica.command('XRANGE', 'gateway:events', '-', '+')).split('\n')) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line);
      if (e.n === 'job_completed') inStream.add(e.p.result.seq);
      else if (e.n === 'log_line') inStream.add(Number(e.p.message.split(' ')[1]));
    }
    const lostInStream = acked.filter((s) => !inStream.has(s)).length;

    const ackedSet = new Set(acked);
    let lost = 0;
    let duplicates = 0;
    let retriedDuplicates = 0;
    let outOfOrder = 0;
    const lostPerClient = [];
    for (const ev of clients) {
      const got = seqsOf(ev);
      const count = new Map();
      got.forEach((s) => count.set(s, (count.get(s) || 0) + 1));
      const missing = acked.filter((s) => !count.has(s));
      lost += missing.length;
      lostPerClient.push(missing.length);
      for (const [s, n] of count) {
        if (n > 1) {
          if (retried.has(s)) retriedDuplicates += n - 1;
          else duplicates += n - 1;
        }
      }
      const firsts = [...new Set(got)].filter((s) => ackedSet.has(s));
      for (let i = 1; i < firsts.length; i++) if (firsts[i] < firsts[i - 1]) outOfOrder++;
    }
    const t = (at) => (at ? `${((at - killedAt) / 1000).toFixed(1)} s` : 'never');
    console.log(`# Sentinel failover, min-replicas ${minReplicas}, ${nodes.length} nodes x ${CLIENTS_PER_NODE} clients (${cpus()[0]?.model}, ${cpus().length} cores):`
      + ` ${acked.length} events acknowledged (${beforeKill - beforeLag} while the replica lagged ${LAG_MS} ms before the SIGKILL) in ${requests} requests, ${retried.size} after a retry;`
      + ` ${lostInStream} acknowledged events missing from the new master's stream;`
      + ` delivered to ${clients.length} clients: ${lost} acknowledged deliveries lost (per client ${lostPerClient.join(',')}),`
      + ` ${duplicates} duplicates of first-attempt events, ${retriedDuplicates} duplicates of retried events, ${outOfOrder} out of order;`
      + ` after the SIGKILL: failover ${t(failoverAt)}, nodes not ready from ${seenDown.map(t).join(',')} to ${backAt.map(t).join(',')},`
      + ` old master back as replica ${t(rejoinedAt)}, first acknowledgement of a retried request ${t(firstAckAfterKill)}`);

    for (let i = 0; i < nodes.length; i++) {
      assert.ok(seenDown[i], `node ${i} never reported not ready during the failover`);
      assert.ok(backAt[i], `node ${i} did not become ready again`);
    }
    return { lost, lostInStream, duplicates, retriedDuplicates, outOfOrder, acked: acked.length };
  } finally {
    replica.resume(); // a stopped process would not see SIGTERM
    sockets.forEach((s) => s.disconnect());
    for (const n of nodes) {
      const exit = await n.stop();
      assert.equal(exit.code, 0, n.logs);
    }
    await Promise.all(sentinels.map((s) => s.destroy()));
    await master.destroy();
    await replica.destroy();
  }
}

describe('Redis Sentinel failover under load', { skip }, () => {
  it('min-replicas 1: every acknowledged event reaches every client, in order; first-attempt events exactly once', { timeout: 90000 }, async () => {
    const r = await scenario(1);
    assert.equal(r.lost, 0, 'acknowledged events were lost');
    assert.equal(r.lostInStream, 0, 'acknowledged events are missing from the stream');
    assert.equal(r.duplicates, 0, 'events acknowledged at their first attempt were delivered twice');
    assert.equal(r.outOfOrder, 0, 'events out of order');
  });

  it('min-replicas 0: reports what the failover lost (no assertion on loss)', { timeout: 90000 }, async () => {
    const r = await scenario(0);
    assert.ok(r.acked > 0);
  });
});
