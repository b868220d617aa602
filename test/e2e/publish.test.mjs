// The publish API (POST /api/events, publish/doc.go): signed batches of
// server -> client events reach exactly the clients of their rooms, in
// order, with the payloads of PROTOCOL.md; invalid batches deliver nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, sign, sleep, waitUntil } from './lib/gateway.mjs';
import { connect, connected, request, recorder } from './lib/client.mjs';

const SECRET = 'e2e-events-secret';
const OLD_SECRET = 'e2e-events-secret-previous';
const ISO_MS_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const SERVER_EVENTS = new Set(['log_line', 'job_progress', 'batch_status', 'job_completed', 'job_failed']);

/** POSTs to /api/events; returns {status, body, text, headers}. */
async function postEvents(baseUrl, payload, { secret, signature, headers = {} } = {}) {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const h = { 'content-type': 'application/json', ...headers };
  if (signature !== undefined) h['x-gateway-signature'] = signature;
  else if (secret) h['x-gateway-signature'] = sign(secret, body);
  const res = await fetch(`${baseUrl}/api/events`, { method: 'POST', body, headers: h });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, body: json, text, headers: res.headers };
}

/** The server -> client events a socket recorded, as {event, data}. */
const received = (events) => events.filter((e) => SERVER_EVENTS.has(e.event)).map((e) => ({ event: e.event, data: e.args[0] }));

describe('publish API with a secret', () => {
  const gw = new Gateway({ env: { GATEWAY_EVENTS_SECRET: `${SECRET},${OLD_SECRET}` } });
  const sockets = [];
  /** A connected client that joined the given rooms, recording what it receives. */
  const client = async ({ project, batch } = {}) => {
    const s = connect(gw.url);
    sockets.push(s);
    await connected(s);
    for (const p of [project].flat().filter((x) => x !== undefined)) {
      await request(s, 'subscribe_project', { project_id: p }, 'subscribed_project');
    }
    for (const b of [batch].flat().filter((x) => x !== undefined)) {
      await request(s, 'join_batch', { batch_id: b }, 'joined_batch');
    }
    return { socket: s, events: recorder(s) };
  };

  before(async () => { await gw.start(); });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    const exit = await gw.stop();
    assert.equal(exit.code, 0, `gateway exit ${JSON.stringify(exit)}\n${gw.logs}`);
    assert.ok(!gw.logs.includes(SECRET) && !gw.logs.includes(OLD_SECRET), 'a secret reached the logs');
    assert.ok(!gw.logs.includes('payload-content-marker'), 'a payload reached the logs');
  });

  it('a batch of 200 log lines + job_progress + batch_status reaches exactly its rooms, in order', async () => {
    const project = await client({ project: 1 });
    const batch = await client({ batch: 9 });
    const both = await client({ project: 1, batch: 9 });
    const other = await client({ project: 2, batch: 10 });

    const startedAt = Date.now();
    const events = [];
    for (let i = 0; i < 200; i++) {
      const data = { job_id: 'job-1', message: `payload-content-marker line ${i}` };
      if (i % 2 === 1) data.timestamp = `2024-05-01T12:00:${String(i % 60).padStart(2, '0')}.000Z`;
      events.push({ event: 'log_line', project_id: 1, data });
      if (i === 99) {
        // Mid-stream: progress to the batch room (batch_id inserted), and
        // one to both rooms at once.
        events.push({ event: 'job_progress', batch_id: 9, data: { job_id: 'job-1', progress: 50, status: 'meshing', message: 'half way' } });
        events.push({ event: 'job_progress', project_id: 1, batch_id: 9, data: { job_id: 'job-1', progress: 51, status: 'meshing' } });
      }
    }
    events.push({ event: 'batch_status', data: { batch_id: 9, status: 'processing', completed_jobs: 1, total_jobs: 4, extra: { kept: true } } });
    events.push({ event: 'job_completed', room: 'project_1', data: { project_id: 1, job_id: 'job-1', result: { success: true } } });
    events.push({ event: 'log_line', room: 'project_2', data: { job_id: 'job-2', message: 'for project 2 only', timestamp: '2024-05-01T12:00:00Z' } });

    const res = await postEvents(gw.url, { events }, { secret: SECRET });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'ok', accepted: events.length, duplicates: 0 });
    const finishedAt = Date.now();

    // What each room must receive, in request order.
    const progressBatch = { event: 'job_progress', data: { batch_id: 9, job_id: 'job-1', progress: 50, status: 'meshing', message: 'half way' } };
    const progressBoth = { event: 'job_progress', data: { batch_id: 9, job_id: 'job-1', progress: 51, status: 'meshing' } };
    const status = { event: 'batch_status', data: { batch_id: 9, status: 'processing', completed_jobs: 1, total_jobs: 4, extra: { kept: true } } };
    const completed = { event: 'job_completed', data: { project_id: 1, job_id: 'job-1', status: 'completed', result: { success: true } } };
    const lines = (got) => got.filter((e) => e.event === 'log_line');

    const wantProject = 200 + 2; // lines, progressBoth, completed
    const wantBatch = 3; // progressBatch, progressBoth, status
    const wantBoth = 200 + 4; // the event sent to both rooms arrives once
    await waitUntil('every client to receive its events', () =>
      received(project.events).length >= wantProject && received(batch.events).length >= wantBatch
      && received(both.events).length >= wantBoth && received(other.events).length >= 1);
    await sleep(300); // nothing more may arrive

    const gotProject = received(project.events);
    assert.equal(gotProject.length, wantProject);
    // The log lines, in order, with their timestamps kept or filled.
    const gotLines = lines(gotProject);
    assert.equal(gotLines.length, 200);
    gotLines.forEach((e, i) => {
      assert.deepEqual(Object.keys(e.data), ['job_id', 'message', 'timestamp'], 'protocol key order');
      assert.equal(e.data.job_id, 'job-1');
      assert.equal(e.data.message, `payload-content-marker line ${i}`, `line ${i} out of order`);
      if (i % 2 === 1) {
        assert.equal(e.data.timestamp, `2024-05-01T12:00:${String(i % 60).padStart(2, '0')}.000Z`);
      } else {
        assert.match(e.data.timestamp, ISO_MS_UTC);
        const t = Date.parse(e.data.timestamp);
        assert.ok(t >= startedAt - 1000 && t <= finishedAt + 1000, `filled timestamp ${e.data.timestamp} is not the receipt time`);
      }
    });
    // The progress to both rooms sits between line 99 and line 100, the
    // job_completed after the last line.
    assert.deepEqual(gotProject[100], progressBoth);
    assert.deepEqual(gotProject[201], completed);

    assert.deepEqual(received(batch.events), [progressBatch, progressBoth, status]);

    const gotBoth = received(both.events);
    assert.equal(gotBoth.length, wantBoth);
    assert.deepEqual(gotBoth.slice(100, 102), [progressBatch, progressBoth]);
    assert.deepEqual(gotBoth.slice(202), [status, completed]);
    assert.deepEqual(lines(gotBoth).map((e) => e.data.message), gotLines.map((e) => e.data.message));

    assert.deepEqual(received(other.events), [
      { event: 'log_line', data: { job_id: 'job-2', message: 'for project 2 only', timestamp: '2024-05-01T12:00:00Z' } },
    ]);
  });

  it('a single event (not a batch) is accepted', async () => {
    const c = await client({ project: 'p-single' });
    const res = await postEvents(gw.url, { event: 'job_failed', data: { project_id: 'p-single', job_id: 'j-1' } }, { secret: SECRET });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'ok', accepted: 1, duplicates: 0 });
    await waitUntil('job_failed', () => received(c.events).length === 1);
    assert.deepEqual(received(c.events), [{ event: 'job_failed', data: { project_id: 'p-single', job_id: 'j-1', error: 'Unknown error' } }]);
  });

  it('a request signed with the previous (rotated) secret is accepted', async () => {
    const res = await postEvents(gw.url, { event: 'job_failed', data: { project_id: 'p-rot', job_id: 'j' } }, { secret: OLD_SECRET });
    assert.equal(res.status, 200, res.text);
  });

  it('a retried request with ids is delivered once', async () => {
    const c = await client({ project: 'p-dup' });
    const events = [0, 1, 2].map((i) => ({ event: 'log_line', id: `dup-job:log:${i}`, project_id: 'p-dup', data: { job_id: 'dup-job', message: `m${i}`, timestamp: '2024-05-01T12:00:00Z' } }));
    const first = await postEvents(gw.url, { events: events.slice(0, 2) }, { secret: SECRET });
    assert.deepEqual(first.body, { status: 'ok', accepted: 2, duplicates: 0 });
    const retry = await postEvents(gw.url, { events }, { secret: SECRET });
    assert.deepEqual(retry.body, { status: 'ok', accepted: 3, duplicates: 2 });
    await waitUntil('3 lines', () => received(c.events).length >= 3);
    await sleep(200);
    assert.deepEqual(received(c.events).map((e) => e.data.message), ['m0', 'm1', 'm2']);
  });

  it('one invalid event rejects the whole batch with per-item reasons, and nothing is delivered', async () => {
    // Batch 19 never had a batch_status: joining it sends no state.
    const c = await client({ project: 1, batch: 19 });
    const events = [
      { event: 'log_line', project_id: 1, data: { job_id: 'j', message: 'fine' } },
      { event: 'job_progress', batch_id: 19, data: { job_id: 'j', progress: 150, status: 'meshing' } },
      { event: 'batch_status', data: { batch_id: 19, status: 'running', completed_jobs: 0, total_jobs: 1 } },
      { event: 'log_line', room: 'vHk3QqzE0x1dO5rFAAAB', data: { job_id: 'j', message: 'to a socket id' } },
      { event: 'job_started', project_id: 1, data: {} },
    ];
    const res = await postEvents(gw.url, { events }, { secret: SECRET });
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.body, {
      error: 'Invalid events',
      items: [
        { index: 1, error: 'data.progress must be a number from 0 to 100' },
        { index: 2, error: 'data.status must be processing, completed or failed, not "running"' },
        { index: 3, error: 'room "vHk3QqzE0x1dO5rFAAAB" is not a project or batch room ("project_<id>" or "batch_<id>")' },
        { index: 4, error: 'unknown event "job_started"' },
      ],
    });
    await sleep(300);
    assert.deepEqual(received(c.events), []);
  });

  const log = { event: 'log_line', project_id: 1, data: { job_id: 'j', message: 'm' } };
  const answers = [
    { name: 'missing signature', body: { events: [log] }, opts: {}, status: 401, answer: { error: 'Invalid signature' } },
    { name: 'wrong secret', body: { events: [log] }, opts: { secret: 'not-the-secret' }, status: 401, answer: { error: 'Invalid signature' } },
    { name: 'signature of another body', body: { events: [log] }, opts: { signature: sign(SECRET, '{}') }, status: 401, answer: { error: 'Invalid signature' } },
    { name: 'the Modal header instead', body: { events: [log] }, opts: { headers: { 'x-modal-signature': sign(SECRET, JSON.stringify({ events: [log] })) } }, status: 401, answer: { error: 'Invalid signature' } },
    { name: 'invalid JSON', body: '{"events": [', opts: { secret: SECRET }, status: 400, answer: { error: 'Invalid JSON' } },
    { name: 'no events', body: { events: [] }, opts: { secret: SECRET }, status: 400, answer: { error: 'No events' } },
    { name: 'more than 1000 events', body: { events: Array(1001).fill(log) }, opts: { secret: SECRET }, status: 400, answer: { error: 'Too many events: 1001 (limit 1000 per request)' } },
  ];
  for (const a of answers) {
    it(`${a.name} answers ${a.status} ${JSON.stringify(a.answer)} and delivers nothing`, async () => {
      const c = await client({ project: 1 });
      const res = await postEvents(gw.url, a.body, a.opts);
      assert.equal(res.status, a.status, res.text);
      assert.deepEqual(res.body, a.answer);
      assert.match(res.headers.get('content-type'), /application\/json/);
      await sleep(150);
      assert.deepEqual(received(c.events), []);
    });
  }

  it('a body over the limit answers 413 and delivers nothing', async () => {
    const c = await client({ project: 1 });
    const big = JSON.stringify({ events: [{ ...log, data: { ...log.data, message: 'x'.repeat(3 << 20) } }] });
    let res;
    try {
      res = await postEvents(gw.url, big, { secret: SECRET });
    } catch (err) {
      assert.fail(`the 413 answer was not read: ${err.cause?.code ?? err}`);
    }
    assert.equal(res.status, 413);
    assert.match(res.body.error, /^Request body too large \(limit \d+ bytes\)$/);
    await sleep(150);
    assert.deepEqual(received(c.events), []);
  });
});

describe('publish API without a secret', () => {
  it('development accepts unsigned requests', async () => {
    const gw = new Gateway({ env: { GATEWAY_ENV: 'development' } });
    await gw.start();
    try {
      const s = await connected(connect(gw.url));
      const events = recorder(s);
      await request(s, 'join_batch', { batch_id: 'dev' }, 'joined_batch');
      const res = await postEvents(gw.url, { event: 'batch_status', batch_id: 'dev', data: { status: 'completed', completed_jobs: 2, total_jobs: 2 } });
      assert.equal(res.status, 200, res.text);
      await waitUntil('batch_status', () => received(events).length === 1);
      assert.deepEqual(received(events), [{ event: 'batch_status', data: { batch_id: 'dev', status: 'completed', completed_jobs: 2, total_jobs: 2 } }]);
      s.disconnect();
    } finally {
      assert.equal((await gw.stop()).code, 0);
    }
  });

  it('production does not serve the route (404)', async () => {
    const gw = new Gateway({ env: { GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', MODAL_WEBHOOK_SECRET: 'modal-secret-of-at-least-32-bytes-for-e2e' } });
    await gw.start();
    try {
      const res = await postEvents(gw.url, { event: 'job_failed', data: { project_id: 1, job_id: 'j' } });
      assert.equal(res.status, 404, res.text);
    } finally {
      assert.equal((await gw.stop()).code, 0);
    }
  });
});
