// LIBRARY-NOTES.md "v3 handshake race": the React app emits join_batch
// inside on('connect'); the library can close a connection whose first event
// arrives before the namespace is registered. Thousands of clients doing
// exactly that must lose no join.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway } from './lib/gateway.mjs';
import { connect } from './lib/client.mjs';

const TOTAL = Number(process.env.E2E_HANDSHAKE_CLIENTS || 3000);
const CONCURRENCY = 100;

function oneClient(url, i, transports) {
  return new Promise((resolve) => {
    const batchId = `b-${i}`;
    const s = connect(url, { transports, reconnection: false });
    let settled = false;
    const done = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
      s.disconnect();
    };
    const timer = setTimeout(() => done('timeout'), 15000);
    s.on('connect', () => s.emit('join_batch', { batch_id: batchId })); // as the React app does
    s.on('joined_batch', (d) => done(d.batch_id === batchId ? 'ok' : 'wrong reply'));
    s.on('disconnect', (reason) => done(`disconnected: ${reason}`));
    s.on('connect_error', (e) => done(`connect_error: ${e.message}`));
  });
}

describe('handshake race', () => {
  // A capacity test: thousands of handshakes from one address in seconds.
  const gw = new Gateway({ env: { GATEWAY_LOG_LEVEL: 'warn', GATEWAY_HANDSHAKE_RATE: '0', GATEWAY_HANDSHAKE_RATE_PER_IP: '0' } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0); });

  for (const transports of [['websocket', 'polling'], ['polling', 'websocket']]) {
    const total = transports[0] === 'websocket' ? TOTAL : Math.ceil(TOTAL / 3);
    it(`${total} clients (${transports[0]} first) emitting join_batch on connect: zero lost joins`, async () => {
      const outcomes = {};
      let next = 0;
      const worker = async () => {
        while (next < total) {
          const i = next++;
          const o = await oneClient(gw.url, i, transports);
          outcomes[o] = (outcomes[o] || 0) + 1;
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.deepEqual(outcomes, { ok: total });
      assert.doesNotMatch(gw.logs, /invalid state/);
    });
  }
});
