// PROTOCOL.md "Transport": the Engine.IO heartbeat with the real
// socket.io-client. A client that answers pings stays connected through many
// heartbeats while events flow (on websocket and after the polling ->
// websocket upgrade); one that stops answering is closed, and the close is
// counted as gateway_socket_disconnects_total{reason="ping timeout"}.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, sleep } from './lib/gateway.mjs';
import { gatewaySuite, connected, request } from './lib/client.mjs';

// A short heartbeat so a few seconds cover many rounds. The gateway writes
// each ping a quarter of the timeout after the engine sends it (200 ms).
const PING_INTERVAL_MS = 200;
const PING_TIMEOUT_MS = 800;

async function metric(gw, name) {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

describe('heartbeat', () => {
  const gw = new Gateway({ env: { GATEWAY_PING_INTERVAL: `${PING_INTERVAL_MS}ms`, GATEWAY_PING_TIMEOUT: `${PING_TIMEOUT_MS}ms` } });
  const { connect } = gatewaySuite(gw);

  it('clients that answer pings stay connected through many heartbeats while events flow', async () => {
    const ws = await connected(connect(gw.url, { transports: ['websocket'] }));
    const upgraded = await connected(connect(gw.url, { transports: ['polling', 'websocket'] }));
    const clients = [ws, upgraded];
    const disconnects = [];
    const received = clients.map(() => []);
    clients.forEach((s, i) => {
      s.on('disconnect', (reason) => disconnects.push(reason));
      s.on('job_completed', (d) => received[i].push(d.job_id));
    });
    for (const s of clients) await request(s, 'subscribe_project', { project_id: 'hb' }, 'subscribed_project');

    // 3 s = about ten heartbeats (interval + write delay + round trip).
    const sent = [];
    const until = Date.now() + 3000;
    for (let i = 0; Date.now() < until; i++) {
      const id = `hb-${i}`;
      const res = await postWebhook(gw.url, { job_id: id, status: 'completed', result: {}, project_id: 'hb' });
      assert.equal(res.status, 200);
      sent.push(id);
      await sleep(50);
    }
    await sleep(300);
    assert.deepEqual(disconnects, [], 'a client that answered every ping was disconnected');
    assert.equal(upgraded.io.engine.transport.name, 'websocket');
    for (const got of received) assert.deepEqual(got, sent);
    assert.equal(await metric(gw, 'gateway_socket_disconnects_total{reason="ping timeout"}'), 0);
  });

  it('a client that stops answering pings is closed and counted as a ping timeout', async () => {
    const s = await connected(connect(gw.url, { transports: ['websocket'], reconnection: false }));
    const closed = new Promise((resolve) => s.on('disconnect', resolve));
    // Drop the client's pongs: engine.io-client answers a ping with
    // _sendPacket('pong').
    const engine = s.io.engine;
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => { if (type !== 'pong') send(type, ...rest); };
    // The server closes it one interval + write delay + timeout after the
    // last pong it got; the client sees the transport close.
    const reason = await Promise.race([closed, sleep(10000).then(() => 'still connected after 10 s')]);
    assert.equal(reason, 'transport close');
    await sleep(100);
    assert.equal(await metric(gw, 'gateway_socket_disconnects_total{reason="ping timeout"}'), 1);
  });
});
