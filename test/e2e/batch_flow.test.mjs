// The whole product flow on two nodes: the unchanged Flask backend emits
// through its message queue and registers the batch, the Modal worker posts
// logs and progress to the publish API, Modal's completion webhooks finish
// the jobs; a React-style client sees the whole batch.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, sign, sleep } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { flaskEmit, flaskUnavailable } from './lib/flask_queue.mjs';
import { connect, connected, request, recorder } from './lib/client.mjs';

const MODAL = 'modal-secret-of-at-least-32-bytes-for-e2e';
const JOBS = 'jobs-secret-of-at-least-32-bytes-for-e2e';
const EVENTS = 'events-secret-of-at-least-32-bytes-for-e2e';

async function signedPost(gw, path, body, secret) {
  const text = JSON.stringify(body);
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', 'x-gateway-signature': sign(secret, text) } });
  return { status: res.status, body: await res.json() };
}

describe('a whole batch, end to end, on two nodes', { skip: redisSkip }, () => {
  const redis = new Redis();
  let a;
  let b;
  let ui;
  before(async () => {
    const missing = flaskUnavailable();
    if (missing && !process.env.CI) return;
    await redis.start();
    const env = { GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', REDIS_URL: redis.url, MODAL_WEBHOOK_SECRET: MODAL, GATEWAY_JOBS_SECRET: JOBS, GATEWAY_EVENTS_SECRET: EVENTS };
    a = new Gateway({ env });
    b = new Gateway({ env });
    await Promise.all([a.start(), b.start()]);
  });
  after(async () => {
    ui?.disconnect();
    if (a) assert.equal((await a.stop()).code, 0);
    if (b) assert.equal((await b.stop()).code, 0);
    await redis.destroy();
  });

  it('Flask backend + Modal worker + Modal webhooks drive the React batch view', async (t) => {
    const missing = flaskUnavailable();
    if (missing) {
      assert.ok(!process.env.CI, `CI must have Flask-SocketIO: ${missing}`);
      t.skip(missing);
      return;
    }
    // The React app: on node B, joins the project and the batch on connect.
    ui = connect(b.url);
    ui.on('connect', () => { ui.emit('subscribe_project', { project_id: 'proj-1' }); ui.emit('join_batch', { batch_id: 'batch-1' }); });
    const seen = recorder(ui);
    await connected(ui);
    await new Promise((r) => { const i = setInterval(() => { if (seen.some((e) => e.event === 'joined_batch')) { clearInterval(i); r(); } }, 20); });

    const jobs = ['mj-1', 'mj-2', 'mj-3'];
    // 1. The backend submits the jobs: registers them (signed) and announces the batch through Flask-SocketIO.
    assert.equal((await signedPost(a, '/api/jobs', { batch_id: 'batch-1', project_id: 'proj-1', total_jobs: 3, jobs: jobs.map((job_id) => ({ job_id })) }, JOBS)).status, 200);
    await flaskEmit(redis.url, [{ event: 'batch_status', data: { batch_id: 'batch-1', status: 'processing', completed_jobs: 0, total_jobs: 3 }, to: 'batch_batch-1' }], { subscribers: 2 });
    // 2. The Modal worker streams logs and progress through the publish API on node A.
    const worker = { events: [] };
    for (const job of jobs) {
      worker.events.push({ event: 'log_line', project_id: 'proj-1', data: { job_id: job, message: `meshing ${job}` } });
      worker.events.push({ event: 'job_progress', batch_id: 'batch-1', data: { job_id: job, progress: 50, status: 'processing', message: 'half way' } });
    }
    assert.deepEqual((await signedPost(a, '/api/events', worker, EVENTS)).body, { status: 'ok', accepted: 6, duplicates: 0 });
    // 3. Modal's completion webhooks, one retried to the other node, one failure.
    const hooks = [
      [a, { job_id: 'mj-1', status: 'completed', result: { success: true, s3_output_path: 's3://b/1.msh' } }],
      [b, { job_id: 'mj-1', status: 'completed', result: { success: true, s3_output_path: 's3://b/1.msh' } }],
      [b, { job_id: 'mj-2', status: 'failed', error: 'degenerate geometry' }],
      [a, { job_id: 'mj-3', status: 'completed', result: { success: true, s3_output_path: 's3://b/3.msh' } }],
    ];
    for (const [gw, body] of hooks) assert.equal((await postWebhook(gw.url, body, { secret: MODAL })).status, 200);

    const deadline = Date.now() + 10000;
    const statuses = () => seen.filter((e) => e.event === 'batch_status').map((e) => e.args[0]);
    while (Date.now() < deadline && statuses().length < 4) await sleep(30);
    await sleep(300);
    const of = (name) => seen.filter((e) => e.event === name).map((e) => e.args[0]);
    // What the React batch view filters on: every batch event carries batch_id.
    for (const p of [...of('job_progress'), ...of('batch_status')]) assert.equal(p.batch_id, 'batch-1');
    assert.deepEqual(of('log_line').map((l) => l.message), jobs.map((j) => `meshing ${j}`));
    assert.ok(of('log_line').every((l) => typeof l.timestamp === 'string'));
    assert.deepEqual(of('job_progress').map((p) => `${p.job_id}:${p.progress}:${p.status}`),
      ['mj-1:50:processing', 'mj-2:50:processing', 'mj-3:50:processing', 'mj-1:100:completed', 'mj-2:100:failed', 'mj-3:100:completed']);
    assert.deepEqual(statuses().map((s) => `${s.status} ${s.completed_jobs}/${s.total_jobs}`),
      ['processing 0/3', 'processing 1/3', 'processing 1/3', 'failed 2/3']);
    assert.deepEqual(of('job_completed').map((c) => c.job_id), ['mj-1', 'mj-3']);
    assert.deepEqual(of('job_failed'), [{ project_id: 'proj-1', job_id: 'mj-2', error: 'degenerate geometry' }]);
  });
});
