// A client that stops reading while its room is busy (README "Bounds":
// what waits for a client, 8 MiB unread on WebSocket): it is disconnected
// once that much is queued for it, the disconnect is counted in /metrics,
// and the rest of its room gets every event. How much it slows the room
// is a figure of the load harness (test/load: loadgen -slow-clients), not
// asserted here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, sign, waitUntil } from './lib/gateway.mjs';
import { connect } from './lib/client.mjs';
import { rawSocketIO } from './lib/rawws.mjs';

const EVENTS = 'events-e2e-secret-for-slow-clients-32-bytes-or-more';
const MESSAGE = 'x'.repeat(8 * 1024);
const BATCH = 100; // events of ~8 KiB per request: ~800 KiB, under the 1 MiB body limit

async function publish(url, events) {
  const body = JSON.stringify({ events });
  const res = await fetch(`${url}/api/events`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-gateway-signature': sign(EVENTS, body) } });
  await res.text();
  return res.status;
}

async function metrics(gw) {
  return (await (await fetch(`${gw.url}/metrics`)).text()).split('\n');
}

function metric(lines, series) {
  const l = lines.find((x) => x.startsWith(`${series} `));
  return l ? Number(l.slice(series.length + 1)) : 0;
}

describe('a client that stops reading', () => {
  const gw = new Gateway({ env: { GATEWAY_EVENTS_SECRET: EVENTS, GATEWAY_LOG_LEVEL: 'warn' } });
  const sockets = [];
  let raw;
  before(async () => { await gw.start(); });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    raw?.sock.destroy();
    assert.equal((await gw.stop()).code, 0, gw.logs);
  });

  it('is disconnected once 8 MiB wait for it, counted as ws_buffer and a transport error, while the rest of its busy room gets every event', async () => {
    const readers = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(gw.url, { transports: ['websocket'], reconnection: false });
      const r = { s, seqs: [] };
      s.on('log_line', (d) => r.seqs.push(Number(d.job_id.slice(4))));
      sockets.push(s);
      readers.push(r);
    }
    for (const r of readers) {
      await waitUntil('reader connected', () => r.s.connected);
      assert.deepEqual(await r.s.timeout(3000).emitWithAck('subscribe_project', { project_id: 'busy' }), { project_id: 'busy' });
    }
    raw = await rawSocketIO({ port: gw.port });
    raw.emit('subscribe_project', { project_id: 'busy' });
    await raw.waitFor((m) => m.startsWith('42["subscribed_project"'), 'subscribed_project');
    raw.stopReading();

    const before = await metrics(gw);
    // Post ~800 KiB batches until the slow client is cut (at most 80: the
    // 8 MiB bound plus what the kernel's buffers hold is well below).
    let seq = 0;
    let cut = false;
    for (let b = 0; b < 80 && !cut; b++) {
      const events = Array.from({ length: BATCH }, () => ({ event: 'log_line', project_id: 'busy', data: { job_id: `job-${seq++}`, message: MESSAGE } }));
      assert.equal(await publish(gw.url, events), 200);
      cut = metric(await metrics(gw), 'gateway_limit_hits_total{limit="ws_buffer"}') > metric(before, 'gateway_limit_hits_total{limit="ws_buffer"}');
      // Let the readers keep up: the room stays busy, not flooded.
      await waitUntil('readers caught up', () => readers.every((r) => r.seqs.length === seq), 15000, 5);
    }
    assert.ok(cut, `the slow client was not cut off after ${seq} events (${(seq * MESSAGE.length / 1048576).toFixed(0)} MiB); read ${raw.bytes} bytes`);
    // The limit is counted as the write fails; the Socket.IO layer learns
    // of the disconnect just after.
    let after = await metrics(gw);
    const transportErrors = (m) => metric(m, 'gateway_socket_disconnects_total{reason="transport error"}') - metric(before, 'gateway_socket_disconnects_total{reason="transport error"}');
    for (let i = 0; i < 100 && transportErrors(after) < 1; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await metrics(gw);
    }
    assert.equal(transportErrors(after), 1, after.filter((l) => l.startsWith("gateway_socket_disconnects_total")).join("\n"));
    assert.equal(metric(after, 'gateway_socket_clients{transport="websocket"}'), readers.length, 'the readers stay connected');

    // The readers got every event, in order, and stay connected.
    const want = Array.from({ length: seq }, (_, i) => i);
    for (const r of readers) {
      assert.ok(r.s.connected);
      assert.deepEqual(r.seqs, want);
    }
    // The slow client's connection really ends: reading again it sees the
    // end of what was written, then the close.
    raw.drain();
    await waitUntil('the gateway closed the slow connection', () => raw.ended, 10000);
    assert.ok(raw.bytes < seq * MESSAGE.length, `it read ${raw.bytes} of ${seq * MESSAGE.length} bytes`);
  });
});
