// Job registry and batch progress computed by the gateway, on two real
// nodes over one real Redis, driven by signed HTTP requests.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, sign, sleep, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { connect, connected, request, recorder, withoutOffset } from './lib/client.mjs';

const MODAL = 'modal-secret-of-at-least-32-bytes-for-e2e';
const JOBS = 'jobs-secret-of-at-least-32-bytes-for-e2e';

async function registerJobs(gw, body, secret = JOBS) {
  const text = JSON.stringify(body);
  const res = await fetch(`${gw.url}/api/jobs`, { method: 'POST', body: text, headers: { 'content-type': 'application/json', 'x-gateway-signature': sign(secret, text) } });
  return { status: res.status, body: await res.json() };
}

describe('job registry and batch progress on two nodes', { skip: redisSkip }, () => {
  const redis = new Redis();
  const env = () => ({ GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', REDIS_URL: redis.url, MODAL_WEBHOOK_SECRET: MODAL, GATEWAY_JOBS_SECRET: JOBS, GATEWAY_JOB_TTL: '3s' });
  let a;
  let b;
  const sockets = [];
  const client = async (gw) => { const s = connect(gw.url); sockets.push(s); return connected(s); };

  before(async () => {
    await redis.start();
    a = new Gateway({ env: env() });
    b = new Gateway({ env: env() });
    await Promise.all([a.start(), b.start()]);
  });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    assert.equal((await a.stop()).code, 0);
    assert.equal((await b.stop()).code, 0);
    await redis.destroy();
  });

  it('a registered job is resolved by the webhook (no project_id in the body); unknown jobs answer 404; registrations expire', async () => {
    const reg = await registerJobs(a, { job_id: 'reg-1', project_id: 77 });
    assert.deepEqual(reg, { status: 200, body: { status: 'ok', registered: 1 } });
    const s = await client(b);
    await request(s, 'subscribe_project', { project_id: 77 }, 'subscribed_project');
    const events = recorder(s);
    const res = await postWebhook(b.url, { job_id: 'reg-1', status: 'completed', result: { ok: true } }, { secret: MODAL });
    assert.equal(res.status, 200);
    await waitUntil('job_completed', () => events.length === 1);
    assert.deepEqual(withoutOffset(events[0]), { event: 'job_completed', args: [{ project_id: 77, job_id: 'reg-1', status: 'completed', result: { ok: true } }] });

    assert.deepEqual((await postWebhook(a.url, { job_id: 'never-registered', status: 'completed' }, { secret: MODAL })).body, { error: 'Job not found' });
    await registerJobs(a, { job_id: 'short-lived', project_id: 'p' });
    await sleep(3500);
    const expired = await postWebhook(a.url, { job_id: 'short-lived', status: 'failed' }, { secret: MODAL });
    assert.equal(expired.status, 404);
  });

  it('/api/jobs refuses unsigned and invalid requests', async () => {
    assert.equal((await registerJobs(a, { job_id: 'x', project_id: 'p' }, 'wrong')).status, 401);
    const bad = await registerJobs(a, { jobs: [{ job_id: 'x' }] });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, { error: 'Invalid jobs', items: [{ index: 0, error: 'Missing project_id' }] });
  });

  it('a batch of 6 jobs ended by webhooks (retried, failed, on both nodes): 6 job_progress and the batch_status sequence, exactly once each, on every node', async () => {
    const jobs = ['bj1', 'bj2', 'bj3', 'bj4', 'bj5', 'bj6'];
    const reg = await registerJobs(a, { batch_id: 'batch-e2e', project_id: 'bp', total_jobs: jobs.length, jobs: jobs.map((job_id) => ({ job_id })) });
    assert.equal(reg.status, 200);
    assert.deepEqual(reg.body, { status: 'ok', registered: 6, batch_id: 'batch-e2e', total_jobs: 6 });

    const viewers = [];
    for (const gw of [a, b, a, b]) {
      const s = await client(gw);
      const seen = recorder(s);
      await request(s, 'join_batch', { batch_id: 'batch-e2e' }, 'joined_batch');
      viewers.push(seen);
    }
    const outcomes = { bj1: 'completed', bj2: 'completed', bj3: 'failed', bj4: 'completed', bj5: 'completed', bj6: 'completed' };
    let i = 0;
    for (const job of jobs) {
      const payload = outcomes[job] === 'completed'
        ? { job_id: job, status: 'completed', result: { n: i } }
        : { job_id: job, status: 'failed', error: 'Meshing failed' };
      const gw = i % 2 ? b : a;
      assert.equal((await postWebhook(gw.url, payload, { secret: MODAL })).status, 200);
      if (i % 3 === 0) assert.equal((await postWebhook((i % 2 ? a : b).url, payload, { secret: MODAL })).status, 200, 'a retry to the other node');
      i++;
    }
    await waitUntil('all batch updates', () => viewers.every((v) => v.filter((e) => e.event === 'batch_status').length >= 7));
    await sleep(300);
    for (const v of viewers) {
      const progress = v.filter((e) => e.event === 'job_progress').map((e) => e.args[0]);
      assert.deepEqual(progress.map((p) => p.job_id), jobs);
      assert.deepEqual(progress[2], { batch_id: 'batch-e2e', job_id: 'bj3', progress: 100, status: 'failed', message: 'Meshing failed' });
      assert.deepEqual(progress[0], { batch_id: 'batch-e2e', job_id: 'bj1', progress: 100, status: 'completed', message: 'Job completed' });
      // State on join: right after joined_batch, the batch as the registry
      // has it (registered, no job ended yet); then one per job end.
      assert.deepEqual(v.slice(0, 2).map((e) => e.event), ['joined_batch', 'batch_status']);
      assert.equal(v[1].args.length, 1, 'the state on join is a direct message: no offset');
      const statuses = v.filter((e) => e.event === 'batch_status').map((e) => e.args[0]);
      assert.equal(statuses.length, 7);
      assert.deepEqual(statuses.shift(), { batch_id: 'batch-e2e', status: 'processing', completed_jobs: 0, total_jobs: 6, failed_jobs: 0 });
      statuses.forEach((st, k) => {
        assert.equal(st.batch_id, 'batch-e2e');
        assert.equal(st.total_jobs, 6);
        assert.equal(st.completed_jobs + st.failed_jobs, k + 1, 'counts grow by one per job, in order');
        assert.equal(st.status, k < 5 ? 'processing' : 'failed');
      });
      assert.deepEqual(statuses[5], { batch_id: 'batch-e2e', status: 'failed', completed_jobs: 5, total_jobs: 6, failed_jobs: 1 });
    }
  });

  it('state on join: joined_batch is followed by the batch\'s current batch_status (the last one delivered, or the registry\'s counts on a node that saw none); none for an unknown batch or with state-on-join off', async () => {
    // The batch is registered and ended through a node whose job TTL
    // outlives the test (the suite's is 3 s).
    const long = new Gateway({ env: { ...env(), GATEWAY_JOB_TTL: '10m' } });
    const off = new Gateway({ env: { ...env(), GATEWAY_STATE_ON_JOIN: 'false' } });
    await Promise.all([long.start(), off.start()]);
    const jobs = ['sj1', 'sj2', 'sj3'];
    assert.equal((await registerJobs(long, { batch_id: 'state-b', project_id: 'sp', total_jobs: 3, jobs: jobs.map((job_id) => ({ job_id })) })).status, 200);
    const watching = await client(a);
    const watcher = recorder(watching);
    await request(watching, 'join_batch', { batch_id: 'state-b' }, 'joined_batch');
    assert.equal((await postWebhook(long.url, { job_id: 'sj1', status: 'completed', result: {} }, { secret: MODAL })).status, 200);
    await waitUntil('the first job end reached a client', () => watcher.filter((e) => e.event === 'batch_status').length === 2);
    const want = { batch_id: 'state-b', status: 'processing', completed_jobs: 1, total_jobs: 3, failed_jobs: 0 };

    /** Joins the batch on gw; resolves with the events received after joined_batch (within 400 ms). */
    const join = async (gw, batch = 'state-b') => {
      const s = await client(gw);
      const seen = recorder(s);
      await request(s, 'join_batch', { batch_id: batch }, 'joined_batch');
      await sleep(400);
      return seen.slice(seen.findIndex((e) => e.event === 'joined_batch') + 1);
    };
    for (const gw of [a, b]) {
      await waitUntil('the node delivered the job end', async () => (await (await fetch(`${gw.url}/metrics`)).text()).includes('gateway_socket_events_emitted_total{event="batch_status"}'));
      // Both nodes delivered the batch_status: it comes from their backlog.
      assert.deepEqual(await join(gw), [{ event: 'batch_status', args: [want] }]);
    }
    const fresh = new Gateway({ env: env() });
    await fresh.start();
    try {
      // A node started after the job end: the registry's counts, the same payload.
      assert.deepEqual(await join(fresh), [{ event: 'batch_status', args: [want] }]);
      assert.deepEqual(await join(fresh, 'no-such-batch'), []);
      assert.deepEqual(await join(off), []);
      assert.equal((await (await fetch(`${fresh.url}/metrics`)).text()).match(/^gateway_join_states_total\{source="registry"\} (\d+)$/m)?.[1], '1');
    } finally {
      sockets.forEach((s) => s.disconnect());
      for (const gw of [fresh, off, long]) assert.equal((await gw.stop()).code, 0);
    }
  });
});
