// subscribe_logs across the cluster: already_active means followed
// anywhere; every (un)subscription is announced on the logs control
// channel for the log tailer, with first/last telling it when to start and
// stop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Gateway, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, connected, request } from './lib/client.mjs';

/** Subscribes to a Redis channel with redis-cli and collects JSON messages. */
function listen(port, channel) {
  const proc = spawn('redis-cli', ['-p', String(port), '--raw', 'SUBSCRIBE', channel]);
  const messages = [];
  let buf = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const line of lines) if (line.startsWith('{')) messages.push(JSON.parse(line));
  });
  return { messages, stop: () => proc.kill() };
}

describe('log follows across two nodes', { skip: redisSkip }, () => {
  const redis = new Redis();
  let a;
  let b;
  let control;
  const sockets = [];
  const client = async (gw) => { const s = connect(gw.url); sockets.push(s); return connected(s); };
  before(async () => {
    await redis.start();
    a = new Gateway({ env: { REDIS_URL: redis.url } });
    b = new Gateway({ env: { REDIS_URL: redis.url } });
    await Promise.all([a.start(), b.start()]);
    control = listen(redis.port, 'gateway:logs-control');
    await sleep(200);
  });
  after(async () => {
    control.stop();
    sockets.forEach((s) => s.disconnect());
    await a.stop();
    await b.stop();
    await redis.destroy();
  });

  it('already_active across nodes, and control events with first/last', async () => {
    const onA = await client(a);
    const onB = await client(b);
    assert.deepEqual(await request(onA, 'subscribe_logs', { job_id: 'fc-77', project_id: 3 }, 'subscribed'), { job_id: 'fc-77', status: 'started', type: 'modal' });
    assert.deepEqual(await request(onB, 'subscribe_logs', { job_id: 'fc-77' }, 'subscribed'), { job_id: 'fc-77', status: 'already_active' });
    assert.deepEqual(await request(onA, 'unsubscribe_logs', { job_id: 'fc-77' }, 'unsubscribed'), { job_id: 'fc-77' });
    assert.deepEqual(await request(onA, 'unsubscribe_logs', { job_id: 'fc-77' }, 'error'), { message: 'Not subscribed to this job' });
    onB.disconnect(); // releases its follow: the job goes idle
    await waitUntil('4 control events', () => control.messages.length >= 4);
    const summary = control.messages.map((m) => [m.action, m.job_id, m.first, m.last, m.followers, m.reason || '']);
    assert.deepEqual(summary, [
      ['subscribe', 'fc-77', true, false, 1, ''],
      ['subscribe', 'fc-77', false, false, 2, ''],
      ['unsubscribe', 'fc-77', false, false, 1, ''],
      ['unsubscribe', 'fc-77', false, true, 0, 'disconnect'],
    ]);
    assert.equal(control.messages[0].project_id, 3);
    assert.equal(control.messages[0].type, 'modal');
    assert.notEqual(control.messages[0].node, control.messages[1].node, 'announced by each node');
    const again = await client(b);
    assert.deepEqual(await request(again, 'subscribe_logs', { job_id: 'fc-77' }, 'subscribed'), { job_id: 'fc-77', status: 'started', type: 'modal' });
  });
});
