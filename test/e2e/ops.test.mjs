// Production behaviour: /metrics counts what was done; a SIGTERM drains
// clients in paced batches to another node without losing a webhook.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Gateway, freePort, postWebhook, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, connected, request, recorder } from './lib/client.mjs';

function metric(text, name, labels = '') {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('metrics', () => {
  it('after a scripted session the counters equal what was done', async () => {
    const gw = new Gateway();
    await gw.start();
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const s = await connected(connect(gw.url, { transports: ['websocket'] }));
      await request(s, 'subscribe_project', { project_id: 'm' }, 'subscribed_project');
      clients.push(s);
    }
    const poller = await connected(connect(gw.url, { transports: ['polling'] }));
    await request(poller, 'join_batch', { batch_id: 'mb' }, 'joined_batch');
    await request(clients[0], 'subscribe_project', {}, 'error');
    const events = clients.map(recorder);
    const hook = { job_id: 'mj', status: 'completed', result: {}, project_id: 'm' };
    assert.equal((await postWebhook(gw.url, hook)).status, 200);
    assert.equal((await postWebhook(gw.url, hook)).status, 200); // duplicate: not emitted again
    assert.equal((await postWebhook(gw.url, '{bad')).status, 400);
    const batch = { events: [
      { event: 'log_line', project_id: 'm', data: { job_id: 'mj', message: 'a' } },
      { event: 'log_line', project_id: 'm', data: { job_id: 'mj', message: 'b' } },
      { event: 'job_progress', batch_id: 'mb', data: { job_id: 'mj', progress: 50, status: 'processing', message: 'half' } },
    ] };
    const res = await fetch(`${gw.url}/api/events`, { method: 'POST', body: JSON.stringify(batch), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 200);
    await waitUntil('deliveries', () => events.every((e) => e.length === 3));
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    const want = [
      ['gateway_socket_clients', '{transport="websocket"}', 3],
      ['gateway_socket_clients', '{transport="polling"}', 1],
      ['gateway_socket_rooms', '', 2],
      ['gateway_socket_client_events_received_total', '{event="subscribe_project"}', 4],
      ['gateway_socket_client_events_received_total', '{event="join_batch"}', 1],
      ['gateway_socket_events_emitted_total', '{event="job_completed"}', 1],
      ['gateway_socket_events_emitted_total', '{event="log_line"}', 2],
      ['gateway_socket_events_emitted_total', '{event="job_progress"}', 1],
      ['gateway_socket_deliveries_total', '', 3 + 3 * 2 + 1],
      ['gateway_http_requests_total', '{code="200",route="/api/webhooks/modal"}', 2],
      ['gateway_http_requests_total', '{code="400",route="/api/webhooks/modal"}', 1],
      ['gateway_http_requests_total', '{code="200",route="/api/events"}', 1],
      ['gateway_bus_publish_duration_seconds_count', '{outcome="ok"}', 4],
      ['gateway_bus_publish_duration_seconds_count', '{outcome="duplicate"}', 1],
      ['gateway_webhook_to_emit_seconds_count', '', 1],
      ['gateway_bus_consume_lag_seconds_count', '', 4],
    ];
    for (const [name, labels, value] of want) assert.equal(metric(text, name, labels), value, `${name}${labels}`);
    [...clients, poller].forEach((s) => s.disconnect());
    assert.equal((await gw.stop()).code, 0);
  });
});

/** A TCP load balancer on 127.0.0.1: new connections go to the first backend whose /readyz answered 200 last time. */
async function readyProxy(backends) {
  const ready = new Map(backends.map((b) => [b, true]));
  let stopped = false;
  const probe = async () => {
    while (!stopped) {
      for (const b of backends) {
        try { ready.set(b, (await fetch(`${b.url}/readyz`, { headers: { connection: 'close' } })).status === 200); } catch { ready.set(b, false); }
      }
      await sleep(100);
    }
  };
  probe();
  const server = net.createServer((client) => {
    const target = backends.find((b) => ready.get(b)) || backends[backends.length - 1];
    const upstream = net.connect(target.port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => { stopped = true; server.close(); } };
}

describe('paced drain', { skip: redisSkip }, () => {
  it('SIGTERM on node A: 200 clients reconnect to node B by themselves, in batches across the window; A exits 0; no webhook is lost', async () => {
    const redis = new Redis();
    await redis.start();
    const env = { REDIS_URL: redis.url, GATEWAY_DRAIN_WINDOW: '3s', GATEWAY_SHUTDOWN_TIMEOUT: '10s', GATEWAY_LOG_LEVEL: 'warn', GATEWAY_HANDSHAKE_RATE_PER_IP: '0' };
    const a = new Gateway({ env });
    const b = new Gateway({ env });
    await Promise.all([a.start(), b.start()]);
    const lb = await readyProxy([a, b]);

    const N = 200;
    const clients = [];
    const disconnects = [];
    for (let i = 0; i < N; i++) {
      const s = connect(lb.url, { transports: ['websocket'], reconnectionDelay: 200, reconnectionDelayMax: 1000 });
      s.on('connect', () => s.emit('subscribe_project', { project_id: 'drain' })); // as the React app re-joins
      s.on('disconnect', (reason) => disconnects.push({ reason, at: Date.now() }));
      s.joined = 0;
      s.on('subscribed_project', () => { s.joined++; });
      s.events = recorder(s);
      clients.push(s);
    }
    await waitUntil('all joined on A', () => clients.every((s) => s.joined === 1));

    // A producer posts numbered webhooks through the load balancer during the whole drain.
    let seq = 0;
    let producing = true;
    const answers = [];
    const producer = (async () => {
      while (producing) {
        const n = seq++;
        try {
          const r = await postWebhook(lb.url, { job_id: `d-${n}`, status: 'completed', result: { seq: n }, project_id: 'drain' }, { headers: { connection: 'close' } });
          answers.push(r.status);
        } catch (e) { answers.push(`error ${e.message}`); }
        await sleep(20);
      }
    })();

    const t0 = Date.now();
    const exit = await a.stop(15000);
    const exitAfter = Date.now() - t0;
    assert.equal(exit.code, 0, a.logs);
    await waitUntil('every client back', () => clients.every((s) => s.connected && s.joined === 2), 15000);
    producing = false;
    await producer;

    assert.equal(disconnects.length, N, 'each client was closed once');
    for (const d of disconnects) assert.ok(['transport close', 'transport error'].includes(d.reason), `closed by "${d.reason}", which would stop socket.io-client from reconnecting`);
    const times = disconnects.map((d) => d.at).sort((x, y) => x - y);
    const spread = times[times.length - 1] - times[0];
    assert.ok(spread >= 1500, `closes spread over ${spread} ms of a 3 s window: not paced`);
    assert.ok(exitAfter < 10000, `A took ${exitAfter} ms to exit`);
    assert.ok(answers.length > 20);
    assert.deepEqual(answers.filter((s) => s !== 200), [], 'every webhook posted during the drain was accepted');

    // Nothing lost: each accepted webhook reached the clients connected when it was emitted, so each seq was
    // received by someone; and after the drain every client receives a new event on B.
    await sleep(300);
    const received = new Set(clients.flatMap((s) => s.events.filter((e) => e.event === 'job_completed').map((e) => e.args[0].result.seq)));
    for (let n = 0; n < seq; n++) assert.ok(received.has(n), `webhook ${n} reached no client`);
    assert.equal((await postWebhook(b.url, { job_id: 'after', status: 'completed', result: { seq: -1 }, project_id: 'drain' })).status, 200);
    await waitUntil('final event everywhere', () => clients.every((s) => s.events.some((e) => e.event === 'job_completed' && e.args[0].result.seq === -1)));
    console.log(`# drain: ${N} clients moved, closes spread over ${spread} ms, A exited after ${exitAfter} ms, ${answers.length} webhooks accepted during the drain`);

    clients.forEach((s) => s.disconnect());
    lb.close();
    assert.equal((await b.stop()).code, 0);
    await redis.destroy();
  });
});
