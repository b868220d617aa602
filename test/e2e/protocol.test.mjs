// docs/protocol.md "Client -> server events": every row, its errors and acks,
// against the real binary with the real socket.io-client.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, sleep } from './lib/gateway.mjs';
import { connect, connected, next, request, recorder, emitWithAck } from './lib/client.mjs';

describe('client protocol', () => {
  const gw = new Gateway();
  const sockets = [];
  const open = async (opts) => { const s = connect(gw.url, opts); sockets.push(s); return connected(s); };

  before(async () => { await gw.start(); });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    const exit = await gw.stop();
    assert.equal(exit.code, 0, `gateway exit ${JSON.stringify(exit)}\n${gw.logs}`);
  });

  const rows = [
    { name: 'subscribe_project with a string id', event: 'subscribe_project', payload: { project_id: 'p-1' }, reply: 'subscribed_project', data: { project_id: 'p-1' } },
    { name: 'subscribe_project with a number id echoes the number', event: 'subscribe_project', payload: { project_id: 42 }, reply: 'subscribed_project', data: { project_id: 42 } },
    { name: 'join_batch', event: 'join_batch', payload: { batch_id: 'b-1' }, reply: 'joined_batch', data: { batch_id: 'b-1' } },
    { name: 'join_batch with a number id', event: 'join_batch', payload: { batch_id: 7 }, reply: 'joined_batch', data: { batch_id: 7 } },
    { name: 'subscribe_logs of a modal job', event: 'subscribe_logs', payload: { job_id: 'fc-123' }, reply: 'subscribed', data: { job_id: 'fc-123', status: 'started', type: 'modal' } },
    { name: 'subscribe_logs of a local job with project', event: 'subscribe_logs', payload: { job_id: 'local-9', project_id: 'p-2' }, reply: 'subscribed', data: { job_id: 'local-9', status: 'started', type: 'local' } },
    { name: 'unsubscribe_logs of a job never followed', event: 'unsubscribe_logs', payload: { job_id: 'never' }, reply: 'error', data: { message: 'Not subscribed to this job' } },
    { name: 'subscribe_project without id', event: 'subscribe_project', payload: {}, reply: 'error', data: { message: 'Missing project_id' } },
    { name: 'join_batch without id', event: 'join_batch', payload: { project_id: 'x' }, reply: 'error', data: { message: 'Missing batch_id' } },
    { name: 'subscribe_logs without id', event: 'subscribe_logs', payload: { project_id: 'x' }, reply: 'error', data: { message: 'Missing job_id' } },
    { name: 'unsubscribe_logs without id', event: 'unsubscribe_logs', payload: {}, reply: 'error', data: { message: 'Missing job_id' } },
    { name: 'unsubscribe_project (addition)', event: 'unsubscribe_project', payload: { project_id: 'p-1' }, reply: 'unsubscribed_project', data: { project_id: 'p-1' } },
    { name: 'leave_batch (addition)', event: 'leave_batch', payload: { batch_id: 'b-1' }, reply: 'left_batch', data: { batch_id: 'b-1' } },
  ];

  for (const row of rows) {
    it(`${row.name}: replies ${row.reply}`, async () => {
      const s = await open();
      assert.deepEqual(await request(s, row.event, row.payload, row.reply), row.data);
    });
    it(`${row.name}: acknowledges with the reply when asked`, async () => {
      // A job id of its own, so the first variant's follow does not answer already_active.
      const own = (o) => (o.job_id && o.job_id !== 'never' ? { ...o, job_id: `${o.job_id}-ack` } : o);
      const s = await open();
      const reply = next(s, row.reply);
      const ack = await emitWithAck(s, row.event, own(row.payload));
      assert.deepEqual(ack, own(row.data));
      assert.deepEqual(await reply, own(row.data), 'the reply event is still emitted');
    });
  }

  it('subscribe_logs of a job already followed answers already_active, also to another client', async () => {
    const a = await open();
    const b = await open();
    assert.deepEqual(await request(a, 'subscribe_logs', { job_id: 'shared-1' }, 'subscribed'), { job_id: 'shared-1', status: 'started', type: 'modal' });
    assert.deepEqual(await request(a, 'subscribe_logs', { job_id: 'shared-1' }, 'subscribed'), { job_id: 'shared-1', status: 'already_active' });
    assert.deepEqual(await request(b, 'subscribe_logs', { job_id: 'shared-1' }, 'subscribed'), { job_id: 'shared-1', status: 'already_active' });
  });

  it('unsubscribe_logs after subscribe_logs answers unsubscribed, then the job can start again', async () => {
    const s = await open();
    await request(s, 'subscribe_logs', { job_id: 'local-cycle' }, 'subscribed');
    assert.deepEqual(await request(s, 'unsubscribe_logs', { job_id: 'local-cycle' }, 'unsubscribed'), { job_id: 'local-cycle' });
    assert.deepEqual(await request(s, 'unsubscribe_logs', { job_id: 'local-cycle' }, 'error'), { message: 'Not subscribed to this job' });
    assert.deepEqual(await request(s, 'subscribe_logs', { job_id: 'local-cycle' }, 'subscribed'), { job_id: 'local-cycle', status: 'started', type: 'local' });
  });

  it('a follower that disconnects releases the job', async () => {
    const a = await open();
    await request(a, 'subscribe_logs', { job_id: 'released' }, 'subscribed');
    a.disconnect();
    await sleep(200);
    const b = await open();
    assert.deepEqual(await request(b, 'subscribe_logs', { job_id: 'released' }, 'subscribed'), { job_id: 'released', status: 'started', type: 'modal' });
  });

  const bad = [
    { name: 'a string payload', payload: 'p-1', message: 'Invalid payload for subscribe_project: expected a JSON object' },
    { name: 'a number payload', payload: 5, message: 'Invalid payload for subscribe_project: expected a JSON object' },
    { name: 'an array payload', payload: ['p-1'], message: 'Invalid payload for subscribe_project: expected a JSON object' },
    { name: 'no payload', payload: undefined, message: 'Invalid payload for subscribe_project: expected a JSON object' },
    { name: 'a nested id', payload: { project_id: { $ne: null } }, message: 'Invalid project_id: must be a string or an integer, not an object' },
    { name: 'a list id', payload: { project_id: [1, 2] }, message: 'Invalid project_id: must be a string or an integer, not a list' },
    { name: 'a boolean id', payload: { project_id: true }, message: 'Invalid project_id: must be a string or an integer, not a boolean' },
    { name: 'a fractional id', payload: { project_id: 1.5 }, message: 'Invalid project_id: a number id must be an integer' },
    { name: 'an over-long id', payload: { project_id: 'x'.repeat(129) }, message: 'Invalid project_id: longer than 128 bytes' },
    { name: 'control characters', payload: { project_id: 'p\u0000\n1' }, message: 'Invalid project_id: contains control characters' },
  ];
  for (const b of bad) {
    it(`rejects ${b.name} with an error and keeps the socket serving`, async () => {
      const s = await open();
      const events = recorder(s);
      const error = next(s, 'error');
      if (b.payload === undefined) s.emit('subscribe_project'); else s.emit('subscribe_project', b.payload);
      assert.deepEqual(await error, { message: b.message });
      assert.deepEqual(await request(s, 'subscribe_project', { project_id: 'after-bad' }, 'subscribed_project'), { project_id: 'after-bad' });
      assert.ok(s.connected, 'still connected');
      assert.equal(events.filter((e) => e.event === 'subscribed_project').length, 1, 'nothing joined for the bad request');
    });
  }

  it('an unknown event is ignored, and acknowledged with an error when an ack is asked', async () => {
    const s = await open();
    const ack = await emitWithAck(s, 'no_such_event', { a: 1 });
    assert.deepEqual(ack, { message: 'Unknown event: no_such_event' });
    assert.ok(s.connected);
  });
});

describe('per-client bounds, as the client sees them', () => {
  const gw = new Gateway({ env: { GATEWAY_CLIENT_MAX_ROOMS: '2', GATEWAY_CLIENT_MAX_FOLLOWS: '1', GATEWAY_CLIENT_EVENT_RATE: '5' } });
  const sockets = [];
  const open = async () => { const s = connect(gw.url, { transports: ['websocket'] }); sockets.push(s); return connected(s); };
  before(async () => { await gw.start(); });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    assert.equal((await gw.stop()).code, 0);
  });

  it('a third room and a second follow answer error with the limit; the socket keeps serving', async () => {
    const s = await open();
    await request(s, 'subscribe_project', { project_id: 1 }, 'subscribed_project');
    await request(s, 'join_batch', { batch_id: 1 }, 'joined_batch');
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 2 }, 'error'), { message: 'Too many rooms (limit 2)' });
    await request(s, 'subscribe_logs', { job_id: 'a' }, 'subscribed');
    assert.deepEqual(await request(s, 'subscribe_logs', { job_id: 'b' }, 'error'), { message: 'Too many log subscriptions (limit 1)' });
    await request(s, 'leave_batch', { batch_id: 1 }, 'left_batch');
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 2 }, 'subscribed_project'), { project_id: 2 });
  });

  it('events past the client rate answer error "Rate limit exceeded" (and the ack), and the socket stays', async () => {
    const s = await open();
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => emitWithAck(s, 'subscribe_project', { project_id: `r${i % 2}` })));
    const refused = acks.filter((a) => a.message === 'Rate limit exceeded').length;
    assert.ok(refused >= 5 && refused <= 15, `${refused} of 20 refused at 5 events/s (bursts of 10)`);
    await sleep(1200);
    assert.deepEqual(await request(s, 'subscribe_project', { project_id: 'r0' }, 'subscribed_project'), { project_id: 'r0' });
    assert.ok(s.connected);
  });
});
