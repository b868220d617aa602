// The status page in a real browser (Debian's Chromium, headless) against
// the real binary: login, live figures, a webhook sent with
// `gateway webhook send` in the list and in the chart; refused without the
// token in production.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, runOnce, waitUntil } from './lib/gateway.mjs';
import { Redis, redisSkip } from './lib/redis.mjs';
import { clientTracker, connected } from './lib/client.mjs';
import { browserSkip, consoleErrors, launch } from './lib/browser.mjs';

const SECRET = 'status-e2e-webhook-secret-of-32-bytes-or-more';
const TOKEN = 'status-e2e-token-0123456789';

describe('status page in Chromium', { skip: browserSkip }, () => {
  const gw = new Gateway({ env: {
    GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', MODAL_WEBHOOK_SECRET: SECRET, GATEWAY_STATUS_TOKEN: TOKEN, GATEWAY_STATUS_INTERVAL: '250ms',
  } });
  const clients = clientTracker();
  let browser;
  before(async () => {
    await gw.start();
    browser = await launch();
  });
  after(async () => {
    clients.closeAll();
    await browser?.close();
    assert.equal((await gw.stop()).code, 0, gw.logs);
  });

  it('refuses the page without the token, then logs in with the form', async () => {
    const page = await browser.newPage();
    const res = await page.goto(`${gw.url}/status`);
    assert.equal(res.status(), 401);
    assert.ok(await page.locator('form input#token').isVisible(), 'the refused page is the login form');
    await page.fill('#token', 'not-the-token-at-all');
    await Promise.all([page.waitForURL(`${gw.url}/status/login`), page.click('button[type=submit]')]);
    assert.equal(await page.textContent('#login-message'), 'Wrong token.');
    await page.fill('#token', TOKEN);
    const [answer] = await Promise.all([page.waitForResponse(`${gw.url}/status`), page.click('button[type=submit]')]);
    assert.equal(answer.status(), 200);
    await browser.closePage(page);
  });

  it('shows the node ready, counts clients, and lists a webhook sent with `gateway webhook send` in the list and the chart', async () => {
    const page = await browser.newPage(); // the session cookie of the login above
    const errors = consoleErrors(page);
    const res = await page.goto(`${gw.url}/status`);
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live');
    assert.equal(await page.textContent('#node-ready'), 'ready');
    assert.equal(await page.locator('#nodes tbody tr').count(), 1);
    assert.match(await page.textContent('#nodes tbody tr'), /ready/);
    assert.equal(await page.textContent('#clients-total'), '0');

    for (let i = 0; i < 3; i++) {
      const s = await connected(clients.connect(gw.url));
      s.emit('subscribe_project', { project_id: '42' });
    }
    await page.waitForFunction(() => document.getElementById('clients-total').textContent === '3');

    const sent = await runOnce(['webhook', 'send', '--job-id', 'status-j1', '--status', 'completed', '--project', '42', '--url', gw.url],
      { MODAL_WEBHOOK_SECRET: SECRET });
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /"status":"ok"/);

    const row = page.locator('#recent tbody tr[data-job="status-j1"]');
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    assert.deepEqual(cells.slice(0, 5), ['webhook', 'job_completed', 'status-j1', 'completed', 'project_42']);
    await page.waitForFunction(() => Number(document.getElementById('chart-webhooks').dataset.max) > 0);
    await page.waitForFunction(() => Number(document.getElementById('chart-deliveries').dataset.max) > 0);
    assert.match(await page.textContent('#rooms tbody'), /project_42\s*3/);
    assert.deepEqual(errors, [], 'console errors');
    await browser.closePage(page);
  });

  it('refuses the state and the stream without the token', async () => {
    for (const path of ['/status/state', '/status/events']) {
      assert.equal((await fetch(`${gw.url}${path}`)).status, 401, path);
    }
    const ok = await fetch(`${gw.url}/status/state`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).node.ready, true);
  });
});

describe('status page off in production without a token', () => {
  const gw = new Gateway({ env: { GATEWAY_ENV: 'production', GATEWAY_AUTH: 'none', MODAL_WEBHOOK_SECRET: SECRET } });
  before(async () => { await gw.start(); });
  after(async () => { assert.equal((await gw.stop()).code, 0); });
  it('answers 404', async () => {
    for (const path of ['/status', '/status/events', '/status/login']) {
      assert.equal((await fetch(`${gw.url}${path}`)).status, 404, path);
    }
  });
});

describe('status page of a cluster', { skip: redisSkip }, () => {
  it('lists every node announced in Redis, and drops one that stopped', async () => {
    const redis = new Redis();
    await redis.start();
    const env = { REDIS_URL: redis.url, GATEWAY_STATUS_INTERVAL: '200ms' };
    const a = new Gateway({ env });
    const b = new Gateway({ env: { ...env, GATEWAY_ROLE: 'webhook' } });
    try {
      await Promise.all([a.start(), b.start()]);
      const nodes = async () => (await (await fetch(`${a.url}/status/state`)).json()).nodes;
      // A node announces itself every interval: its first announcement may
      // predate its readiness.
      await waitUntil('two ready nodes on the page', async () => {
        const listed = await nodes();
        return listed.length === 2 && listed.every((n) => n.ready);
      });
      assert.deepEqual((await nodes()).map((n) => n.role).sort(), ['all', 'webhook']);
      assert.equal((await b.stop()).code, 0);
      await waitUntil('the stopped node expires', async () => (await nodes()).length === 1, 5000);
      assert.equal((await a.stop()).code, 0);
    } finally {
      a.kill(); b.kill();
      await redis.destroy();
    }
  });
});
