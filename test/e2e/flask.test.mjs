// The Flask-SocketIO message queue: the existing Python backend keeps
// calling socketio.emit(...) with SocketIO(message_queue="redis://..."),
// and every gateway node subscribed to the channel delivers each emit to
// its own clients in the addressed rooms, exactly once.
//
// Publishers: the REAL Flask-SocketIO 5.3.2 / python-socketio 5.7.2 from
// Debian (pickles, lib/flask_emit.py), then the JSON python-socketio
// >= 5.14 publishes, then a malicious pickle that must be refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Gateway, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, connected, request, recorder } from './lib/client.mjs';
import { FLASK_CHANNEL, flaskEmit, flaskUnavailable, json514, numsub, publish } from './lib/flask_queue.mjs';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../flaskqueue/testdata');
const flaskSkip = flaskUnavailable();

// What each client joins, on each node.
const CLIENTS = {
  p1: { project: ['1'], batch: [] },
  b9: { project: [], batch: ['9'] },
  multi: { project: ['1'], batch: ['9', '2'] },
  b2: { project: [], batch: ['2'] },
  none: { project: [], batch: [] },
};

const roomsOf = (spec) => [...spec.project.map((p) => `project_${p}`), ...spec.batch.map((b) => `batch_${b}`)];

const logLine = (jobId, message) => ({ job_id: jobId, message, timestamp: '2024-05-01T12:00:00Z' });
const completedResult = {
  success: true, s3_output_path: 's3://bucket/path/to/mesh.msh', strategy: 'Tetrahedral (Delaunay)',
  quality_metrics: { sicn_avg: 0.85, total_elements: 125032 }, metrics: { total_time_seconds: 45.2 },
};

/** The emits of one round; skip: the socket id skipped by the last one. */
function round(tag, skip) {
  return [
    { event: 'log_line', data: logLine(`${tag}-1`, 'Meshing started: maillage terminé ✓ 日本 🚀'), to: 'project_1' },
    { event: 'job_progress', data: { batch_id: '9', job_id: `${tag}-2`, progress: 40, status: 'running', message: 'meshing' }, to: 'batch_9' },
    { event: 'batch_status', data: { batch_id: '9', status: 'processing', completed_jobs: 1, total_jobs: 4 }, to: 'batch_9' },
    { event: 'job_completed', data: { project_id: '1', job_id: `${tag}-3`, status: 'completed', result: completedResult }, to: ['project_1', 'batch_2'] },
    { event: 'batch_status', data: { batch_id: 'all', status: 'completed', completed_jobs: 4, total_jobs: 4 } },
    { event: 'log_line', data: logLine(`${tag}-4`, 'everyone in project_1 but one'), to: 'project_1', skip_sid: [skip] },
  ];
}

/** What client c (rooms, socket id) must receive of msgs, in order. */
function expected(c, msgs) {
  return msgs
    .filter((m) => {
      if (m.skip_sid && m.skip_sid.includes(c.socket.id)) return false;
      if (m.to === undefined) return true;
      const to = Array.isArray(m.to) ? m.to : [m.to];
      return to.some((r) => c.rooms.includes(r));
    })
    .map((m) => ({ event: m.event, args: [m.data] }));
}

describe('Flask-SocketIO message queue on two gateway nodes', { skip: redisSkip }, () => {
  const redis = new Redis();
  let nodes = [];
  const clients = []; // {node, name, rooms, socket, events}

  before(async () => {
    await redis.start();
    const env = { REDIS_URL: redis.url, GATEWAY_FLASK_QUEUE: 'true' };
    nodes = [new Gateway({ env }), new Gateway({ env })];
    await Promise.all(nodes.map((n) => n.start()));
    // Pub/sub keeps nothing: publish only once both nodes are subscribed.
    await waitUntil(`both nodes subscribed to ${FLASK_CHANNEL} (is the bridge wired?)`, async () => (await numsub(redis.port, FLASK_CHANNEL)) >= 2, 15000);
    for (const [i, node] of nodes.entries()) {
      for (const [name, spec] of Object.entries(CLIENTS)) {
        const socket = connect(node.url);
        await connected(socket);
        for (const p of spec.project) assert.deepEqual(await request(socket, 'subscribe_project', { project_id: p }, 'subscribed_project'), { project_id: p });
        for (const b of spec.batch) assert.deepEqual(await request(socket, 'join_batch', { batch_id: b }, 'joined_batch'), { batch_id: b });
        clients.push({ node: i, name, rooms: roomsOf(spec), socket, events: recorder(socket) });
      }
    }
  });

  after(async () => {
    clients.forEach((c) => c.socket.disconnect());
    for (const n of nodes) {
      const exit = await n.stop();
      assert.equal(exit.code, 0, n.logs);
    }
    await redis.destroy();
  });

  /** Waits until every client has what msgs owe it, then checks nothing else came. */
  async function assertDelivered(msgs, label) {
    const want = new Map(clients.map((c) => [c, expected(c, msgs)]));
    try {
      await waitUntil(`${label}: every client's events`, () => clients.every((c) => c.events.length >= want.get(c).length));
    } catch (e) {
      for (const c of clients) console.log(`# node ${c.node} ${c.name}: got ${c.events.length}, want ${want.get(c).length}`);
      throw e;
    }
    await sleep(400); // anything extra (a duplicate, a wrong room) would arrive by now
    for (const c of clients) {
      assert.deepEqual(c.events, want.get(c), `${label}: node ${c.node} client ${c.name} (rooms ${c.rooms})`);
    }
    const total = [...want.values()].reduce((n, w) => n + w.length, 0);
    assert.ok(want.get(clients.find((c) => c.name === 'multi')).length > 0, 'the scenario addresses the clients');
    clients.forEach((c) => { c.events.length = 0; });
    return total;
  }

  const skipped = () => clients.find((c) => c.node === 1 && c.name === 'p1').socket.id;

  it('real Flask-SocketIO (pickles): each client gets exactly the events of its rooms, once, on both nodes', { skip: flaskSkip }, async () => {
    const msgs = round('pickle', skipped());
    await flaskEmit(redis.url, msgs, { subscribers: 2 });
    const n = await assertDelivered(msgs, 'Flask-SocketIO 5.3.2');
    console.log(`# real Flask-SocketIO: ${msgs.length} emits -> ${n} deliveries across 2 nodes, as addressed`);
  });

  it('JSON as python-socketio >= 5.14 publishes it: the same deliveries', async () => {
    const msgs = round('json', skipped());
    for (const m of msgs) {
      const receivers = await publish(redis.port, FLASK_CHANNEL, json514(m.event, m.data, { to: m.to ?? null, skipSid: m.skip_sid ?? null }));
      assert.equal(receivers, 2, 'both nodes subscribed');
    }
    await assertDelivered(msgs, 'JSON 5.14');
  });

  it('a malicious pickle is refused and logged by both nodes, which deliver the next message', async () => {
    const marker = '/tmp/flaskqueue-pwned'; // what the pickle's os.system would write
    rmSync(marker, { force: true });
    const hostile = readFileSync(path.join(fixtures, 'hostile_os_system.p4.pickle'));
    assert.equal(await publish(redis.port, FLASK_CHANNEL, hostile), 2);
    const next = { event: 'log_line', data: logLine('after-hostile', 'still serving'), to: 'project_1' };
    assert.equal(await publish(redis.port, FLASK_CHANNEL, json514(next.event, next.data, { to: next.to })), 2);
    await assertDelivered([next], 'after a malicious pickle');
    for (const n of nodes) {
      assert.match(n.logs, /unsafe pickle/, 'the refusal is logged');
      assert.equal(n.logs.split('\n').filter((l) => /unsafe pickle/.test(l)).length, 1, 'logged once per message');
      assert.ok(!n.logs.includes(hostile.toString('latin1')), 'the message is not logged in full');
    }
    assert.ok(!existsSync(marker), 'nothing in the pickle ran');
  });

  it('Flask-SocketIO close_room empties the room on every node', { skip: flaskSkip }, async () => {
    await flaskEmit(redis.url, [{ method: 'close_room', room: 'batch_9' }], { subscribers: 2 });
    // close_room and the emits travel in order on one channel.
    const msgs = [
      { event: 'job_progress', data: { batch_id: '9', job_id: 'closed', progress: 99, status: 'running', message: 'nobody hears this' }, to: 'batch_9' },
      { event: 'log_line', data: logLine('after-close', 'project_1 still there'), to: 'project_1' },
    ];
    await flaskEmit(redis.url, msgs, { subscribers: 2 });
    for (const c of clients) c.rooms = c.rooms.filter((r) => r !== 'batch_9');
    await assertDelivered(msgs, 'after close_room');
  });
});
