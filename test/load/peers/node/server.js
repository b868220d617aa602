// Reference peer for the load harness: node socket.io 4.8.4 implementing
// the gateway's client protocol (subscribe_project / join_batch) and the
// Modal webhook (POST /api/webhooks/modal -> job_completed / job_failed to
// project_<id>), on one plain http server and port.
//
//   HOST=127.0.0.1 PORT=5001 MODAL_WEBHOOK_SECRET=s node server.js
//
// BENCH_EMITTER=1 also serves POST /_bench/emit {"events":[{event, room,
// data}]}: a batch emitted straight from the process (the harness's
// "emitter" source, for pure fan-out measurement), GET /_bench/emits:
// {posts, events} received there since start-up, and GET /_bench/mem:
// process.memoryUsage() after a full GC (node --expose-gc).
//
// For the rolling-restart scenario (cmd/rolling), several processes share
// one Redis:
//   REDIS_URL=redis://127.0.0.1:6379       @socket.io/redis-streams-adapter
//                                          on that Redis (one stream)
//   RECOVERY_MAX_DISCONNECTION_MS=120000   connectionStateRecovery on, with
//                                          that window
//   DRAIN_WINDOW_MS=5000                   on SIGTERM, new handshakes are
//                                          refused and connected clients
//                                          closed at the transport level in
//                                          shuffled batches over the window
//                                          (they reconnect elsewhere); then
//                                          the server and Redis close (queued
//                                          commands sent first), exit 0.
// Without DRAIN_WINDOW_MS, SIGTERM closes every client at once.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 5001);
const SECRET = process.env.MODAL_WEBHOOK_SECRET || '';
const EMITTER = process.env.BENCH_EMITTER === '1';
const MAX_BODY = 1 << 20;
const REDIS_URL = process.env.REDIS_URL || '';
const RECOVERY_MS = Number(process.env.RECOVERY_MAX_DISCONNECTION_MS || 0);
const DRAIN_WINDOW_MS = Number(process.env.DRAIN_WINDOW_MS || 0);
const DRAIN_STEP_MS = 100;

function sendJSON(res, code, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req, cb) {
  const chunks = [];
  let size = 0;
  let failed = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY && !failed) {
      failed = true;
      cb(new Error('too large'));
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => { if (!failed) cb(null, Buffer.concat(chunks)); });
  req.on('error', (err) => { if (!failed) { failed = true; cb(err); } });
}

function validSignature(header, raw) {
  if (!SECRET) return true;
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const got = Buffer.from(header.slice(7), 'hex');
  const want = crypto.createHmac('sha256', SECRET).update(raw).digest();
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

function idOf(v) {
  if (typeof v === 'string' && v.length > 0) return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

let io;

function webhook(req, res) {
  readBody(req, (err, raw) => {
    if (err) return sendJSON(res, 413, { error: 'Request body too large' });
    if (!validSignature(req.headers['x-modal-signature'], raw)) {
      return sendJSON(res, 401, { error: 'Invalid signature' });
    }
    let body;
    try { body = JSON.parse(raw); } catch (e) { return sendJSON(res, 400, { error: 'Invalid JSON' }); }
    if (body === null || typeof body !== 'object') return sendJSON(res, 400, { error: 'Invalid JSON' });
    const jobId = body.job_id;
    if (jobId === undefined || jobId === null || jobId === '') return sendJSON(res, 400, { error: 'Missing job_id' });
    const projectId = idOf(body.project_id);
    if (projectId === null) return sendJSON(res, 404, { error: 'Job not found' });
    const room = 'project_' + projectId;
    if (body.status === 'completed' && body.result !== undefined) {
      io.to(room).emit('job_completed', { project_id: body.project_id, job_id: jobId, status: 'completed', result: body.result });
    } else {
      io.to(room).emit('job_failed', { project_id: body.project_id, job_id: jobId, error: body.error || 'Unknown error' });
    }
    sendJSON(res, 200, { status: 'ok', job_id: jobId });
  });
}

// Requests to /_bench/emit and the events they carried, since start-up
// (GET /_bench/emits): the harness checks its batch sizes against them.
const emits = { posts: 0, events: 0 };

function benchEmit(req, res) {
  readBody(req, (err, raw) => {
    if (err) return sendJSON(res, 413, { error: 'Request body too large' });
    let body;
    try { body = JSON.parse(raw); } catch (e) { return sendJSON(res, 400, { error: 'Invalid JSON' }); }
    const events = Array.isArray(body && body.events) ? body.events : [];
    emits.posts++;
    emits.events += events.length;
    for (const e of events) io.to(e.room).emit(e.event, e.data);
    sendJSON(res, 200, { status: 'ok', emitted: events.length });
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/api/webhooks/modal') return webhook(req, res);
  if (EMITTER && req.method === 'POST' && req.url === '/_bench/emit') return benchEmit(req, res);
  if (req.method === 'GET' && req.url === '/livez') return sendJSON(res, 200, { status: 'ok' });
  if (EMITTER && req.method === 'GET' && req.url === '/_bench/emits') return sendJSON(res, 200, emits);
  if (EMITTER && req.method === 'GET' && req.url === '/_bench/mem') {
    // The idle scenario's live heap: after a full GC when node runs with
    // --expose-gc (the harness starts it so).
    if (typeof global.gc === 'function') global.gc();
    return sendJSON(res, 200, process.memoryUsage());
  }
  // socket.io answers its own path through its 'request' listener.
  if (req.url.startsWith('/socket.io/')) return;
  sendJSON(res, 404, { error: 'Not found' });
});

let draining = false;
let redisClient = null;

async function main() {
  const opts = {
    path: '/socket.io',
    serveClient: false,
    pingInterval: 25000,
    pingTimeout: 20000,
    connectTimeout: 45000,
    maxHttpBufferSize: 1e6,
    transports: ['polling', 'websocket'],
    cors: { origin: (process.env.CORS_ORIGINS || 'http://localhost:5173,http://localhost:3000').split(','), credentials: true },
    // A draining node refuses new handshakes (a load balancer's readiness
    // check would have taken it out).
    allowRequest: (req, cb) => cb(null, !draining),
  };
  if (REDIS_URL) {
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-streams-adapter');
    redisClient = createClient({ url: REDIS_URL });
    redisClient.on('error', (err) => process.stderr.write(`redis: ${err.message}\n`));
    await redisClient.connect();
    opts.adapter = createAdapter(redisClient);
  }
  if (RECOVERY_MS > 0) {
    opts.connectionStateRecovery = { maxDisconnectionDuration: RECOVERY_MS, skipMiddlewares: true };
  }
  io = new Server(server, opts);

  io.on('connection', (socket) => {
    const reply = (ack, event, payload) => {
      socket.emit(event, payload);
      if (typeof ack === 'function') ack(payload);
    };
    socket.on('subscribe_project', (data, ack) => {
      const id = idOf(data && data.project_id);
      if (id === null) return reply(ack, 'error', { message: 'Missing project_id' });
      socket.join('project_' + id);
      reply(ack, 'subscribed_project', { project_id: data.project_id });
    });
    socket.on('join_batch', (data, ack) => {
      const id = idOf(data && data.batch_id);
      if (id === null) return reply(ack, 'error', { message: 'Missing batch_id' });
      socket.join('batch_' + id);
      reply(ack, 'joined_batch', { batch_id: data.batch_id });
    });
  });

  server.listen(PORT, HOST, () => {
    const extra = (REDIS_URL ? ', redis streams adapter' : '') + (RECOVERY_MS > 0 ? `, recovery ${RECOVERY_MS} ms` : '');
    process.stderr.write(`node socket.io peer listening on ${HOST}:${PORT}${extra}\n`);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// drain closes every connected client's transport (not a Socket.IO
// DISCONNECT, which would make socket.io-client give up; the disconnect
// reason, "forced close", is one whose session the adapter persists) in
// shuffled batches spread over DRAIN_WINDOW_MS.
async function drain() {
  const socks = [...io.of('/').sockets.values()];
  for (let i = socks.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [socks[i], socks[j]] = [socks[j], socks[i]];
  }
  const batches = Math.max(1, Math.min(socks.length, Math.floor(DRAIN_WINDOW_MS / DRAIN_STEP_MS)));
  const per = Math.ceil(socks.length / batches);
  const step = DRAIN_WINDOW_MS / batches;
  const t0 = Date.now();
  for (let b = 0; b * per < socks.length; b++) {
    for (const s of socks.slice(b * per, (b + 1) * per)) s.conn.close();
    if ((b + 1) * per < socks.length) await sleep(step * (0.5 + Math.random()));
  }
  process.stderr.write(`drained ${socks.length} clients in ${Date.now() - t0} ms\n`);
}

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  draining = true;
  try {
    if (io && DRAIN_WINDOW_MS > 0) await drain();
    if (io) await new Promise((resolve) => io.close(() => resolve()));
    else server.close();
    // quit() sends the commands still queued (the adapter's session
    // writes among them) before it closes the connection.
    if (redisClient) await redisClient.quit();
  } catch (err) {
    process.stderr.write(`shutdown: ${err && err.message}\n`);
  }
  process.exit(0);
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, shutdown);

main().catch((err) => {
  process.stderr.write(`start-up: ${err && err.stack}\n`);
  process.exit(1);
});
