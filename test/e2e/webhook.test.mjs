// PROTOCOL.md "Modal webhook": signed webhooks become job_completed /
// job_failed in the project's room and in no other; every answer.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, postWebhook, sign, sleep } from './lib/gateway.mjs';
import { connect, connected, next, request, recorder } from './lib/client.mjs';

const SECRET = 'e2e-secret-current-of-at-least-32-bytes';
const OLD_SECRET = 'e2e-secret-previous-of-at-least-32-bytes';

describe('Modal webhook with secrets (production)', () => {
  const gw = new Gateway({ env: { GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', MODAL_WEBHOOK_SECRET: `${SECRET},${OLD_SECRET}`, GATEWAY_WEBHOOK_MAX_BODY_BYTES: '4096' } });
  const sockets = [];
  const subscriber = async (projectId) => {
    const s = connect(gw.url);
    sockets.push(s);
    await connected(s);
    await request(s, 'subscribe_project', { project_id: projectId }, 'subscribed_project');
    return s;
  };

  before(async () => { await gw.start(); });
  after(async () => {
    sockets.forEach((s) => s.disconnect());
    assert.equal((await gw.stop()).code, 0);
    assert.ok(!gw.logs.includes(SECRET) && !gw.logs.includes(OLD_SECRET), 'a secret reached the logs');
  });

  it('completed -> job_completed with the exact payload, in the right room only', async () => {
    const inRoom = await subscriber('p-complete');
    const inRoom2 = await subscriber('p-complete');
    const other = await subscriber('p-other');
    const otherEvents = recorder(other);
    const result = {
      success: true,
      s3_output_path: 's3://bucket/path/to/mesh.msh',
      strategy: 'Tetrahedral (Delaunay)',
      quality_metrics: { sicn_avg: 0.85, total_elements: 125032 },
      metrics: { total_time_seconds: 45.2 },
    };
    const got = [next(inRoom, 'job_completed'), next(inRoom2, 'job_completed')];
    const res = await postWebhook(gw.url, { job_id: 'modal-job-1', status: 'completed', result, project_id: 'p-complete' }, { secret: SECRET });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { status: 'ok', job_id: 'modal-job-1' });
    const want = { project_id: 'p-complete', job_id: 'modal-job-1', status: 'completed', result };
    for (const p of got) assert.deepEqual(await p, want);
    await sleep(200);
    assert.deepEqual(otherEvents.filter((e) => e.event.startsWith('job_')), [], 'another room received it');
  });

  it('failed -> job_failed with the error, in the right room only', async () => {
    const s = await subscriber(314);
    const other = await subscriber('p-other-2');
    const otherEvents = recorder(other);
    const got = next(s, 'job_failed');
    const res = await postWebhook(gw.url, { job_id: 'modal-job-2', status: 'failed', error: 'Mesh generation failed: degenerate geometry', project_id: 314 }, { secret: SECRET });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { project_id: 314, job_id: 'modal-job-2', error: 'Mesh generation failed: degenerate geometry' });
    await sleep(200);
    assert.equal(otherEvents.length, 0);
  });

  it('invalid UTF-8 in a result reaches the client as U+FFFD, and the client stays connected', async () => {
    // A WebSocket text frame must be valid UTF-8: the client library
    // fails the connection (1007) on one that is not, and recovery would
    // replay the event on every reconnect.
    const s = await subscriber('p-utf8');
    const disconnects = [];
    s.on('disconnect', (reason) => disconnects.push(reason));
    const got = next(s, 'job_completed');
    const body = Buffer.concat([
      Buffer.from('{"job_id":"modal-job-utf8","status":"completed","project_id":"p-utf8","result":{"log":"bad '),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(' bytes","ok":"ünïcödé"}}'),
    ]);
    const res = await postWebhook(gw.url, body, { secret: SECRET });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(await got, { project_id: 'p-utf8', job_id: 'modal-job-utf8', status: 'completed', result: { log: 'bad \ufffd\ufffd bytes', ok: 'ünïcödé' } });
    await sleep(300);
    assert.deepEqual(disconnects, [], 'the client was disconnected');
    assert.ok(s.connected);
  });

  it('missing status -> job_failed with "Unknown error"', async () => {
    const s = await subscriber('p-nostatus');
    const got = next(s, 'job_failed');
    const res = await postWebhook(gw.url, { job_id: 'modal-job-3', project_id: 'p-nostatus' }, { secret: SECRET });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { project_id: 'p-nostatus', job_id: 'modal-job-3', error: 'Unknown error' });
  });

  it('a webhook signed with the previous (rotated) secret is accepted', async () => {
    const s = await subscriber('p-rotated');
    const got = next(s, 'job_completed');
    const res = await postWebhook(gw.url, { job_id: 'j-rot', status: 'completed', result: { success: true }, project_id: 'p-rotated' }, { secret: OLD_SECRET });
    assert.equal(res.status, 200);
    assert.equal((await got).job_id, 'j-rot');
  });

  it('a bare hex digest (no sha256= prefix) is accepted', async () => {
    const body = JSON.stringify({ job_id: 'j-bare', status: 'completed', result: {}, project_id: 'p-bare' });
    const res = await postWebhook(gw.url, body, { signature: sign(SECRET, body).slice('sha256='.length) });
    assert.equal(res.status, 200);
  });

  const ok = { job_id: 'j-err', status: 'completed', result: {}, project_id: 'p-err' };
  const answers = [
    { name: 'wrong secret', payload: ok, opts: { secret: 'not-the-secret' }, status: 401, body: { error: 'Invalid signature' } },
    { name: 'missing signature', payload: ok, opts: {}, status: 401, body: { error: 'Invalid signature' } },
    { name: 'malformed signature', payload: ok, opts: { signature: 'sha256=MOCKED_SIGNATURE_IF_SECRET_NOT_SET' }, status: 401, body: { error: 'Invalid signature' } },
    { name: 'wrong algorithm prefix', payload: ok, opts: { signature: 'sha1=' + '0'.repeat(64) }, status: 401, body: { error: 'Invalid signature' } },
    { name: 'signature of another body', payload: ok, opts: { signature: sign(SECRET, '{}') }, status: 401, body: { error: 'Invalid signature' } },
    { name: 'invalid JSON', payload: '{"job_id": ', opts: { secret: SECRET }, status: 400, body: { error: 'Invalid JSON' } },
    { name: 'a JSON array', payload: '[1,2]', opts: { secret: SECRET }, status: 400, body: { error: 'Invalid JSON' } },
    { name: 'empty body', payload: '', opts: { secret: SECRET }, status: 400, body: { error: 'Invalid JSON' } },
    { name: 'missing job_id', payload: { status: 'completed', project_id: 'p' }, opts: { secret: SECRET }, status: 400, body: { error: 'Missing job_id' } },
    { name: 'job not tied to a project', payload: { job_id: 'orphan', status: 'completed', result: {} }, opts: { secret: SECRET }, status: 404, body: { error: 'Job not found' } },
    { name: 'body over the limit', payload: { ...ok, result: { blob: 'x'.repeat(5000) } }, opts: { secret: SECRET }, status: 413, body: { error: 'Request body too large (limit 4096 bytes)' } },
  ];
  for (const a of answers) {
    it(`${a.name} answers ${a.status} ${JSON.stringify(a.body)} and emits nothing`, async () => {
      const s = await subscriber('p-err');
      const events = recorder(s);
      const res = await postWebhook(gw.url, a.payload, a.opts);
      assert.equal(res.status, a.status);
      assert.deepEqual(res.body, a.body);
      assert.match(res.headers.get('content-type'), /application\/json/);
      await sleep(150);
      assert.deepEqual(events, []);
    });
  }
});

describe('Modal webhook without a secret (development)', () => {
  const gw = new Gateway({ env: { GATEWAY_ENV: 'development' } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0); });

  it('every log line about a request carries its request id, and job and project ids as fields', async () => {
    const res = await postWebhook(gw.url, { job_id: 'rid-job', status: 'completed', result: {}, project_id: 'rid-project' }, { headers: { 'x-request-id': 'req-e2e-42' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'req-e2e-42');
    await sleep(100);
    const lines = gw.logs.split('\n').filter((l) => l.includes('req-e2e-42'));
    assert.ok(lines.some((l) => l.includes('msg="http request"')), 'the access log line');
    assert.ok(lines.some((l) => l.includes('msg="webhook accepted"') && l.includes('job_id=rid-job') && l.includes('project_id=rid-project')), `the handler's own line: ${lines.join('\n')}`);
  });

  it("accepts the seed's curl example with its mock signature, warning on start-up and per request", async () => {
    const s = await connected(connect(gw.url));
    await request(s, 'subscribe_project', { project_id: 'dev' }, 'subscribed_project');
    const got = next(s, 'job_completed');
    const res = await postWebhook(gw.url, { job_id: 'test-job', status: 'completed', result: { success: true }, project_id: 'dev' },
      { signature: 'sha256=MOCKED_SIGNATURE_IF_SECRET_NOT_SET' });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, { project_id: 'dev', job_id: 'test-job', status: 'completed', result: { success: true } });
    s.disconnect();
    assert.match(gw.logs, /MODAL_WEBHOOK_SECRET is not set: webhook signatures are NOT verified/);
    assert.match(gw.logs, /signature verification skipped/);
  });
});
