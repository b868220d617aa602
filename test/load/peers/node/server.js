// Reference peer for the load harness: node socket.io 4.8.4 implementing
// the gateway's client protocol (subscribe_project / join_batch) and the
// Modal webhook (POST /api/webhooks/modal -> job_completed / job_failed to
// project_<id>), on one plain http server and port.
//
//   HOST=127.0.0.1 PORT=5001 MODAL_WEBHOOK_SECRET=s node server.js
//
// BENCH_EMITTER=1 also serves POST /_bench/emit {"events":[{event, room,
// data}]}: a batch emitted straight from the process (the harness's
// "emitter" source, for pure fan-out measurement), and GET /_bench/mem:
// process.memoryUsage() after a full GC (node --expose-gc).
'use strict';

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 5001);
const SECRET = process.env.MODAL_WEBHOOK_SECRET || '';
const EMITTER = process.env.BENCH_EMITTER === '1';
const MAX_BODY = 1 << 20;

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

function benchEmit(req, res) {
  readBody(req, (err, raw) => {
    if (err) return sendJSON(res, 413, { error: 'Request body too large' });
    let body;
    try { body = JSON.parse(raw); } catch (e) { return sendJSON(res, 400, { error: 'Invalid JSON' }); }
    const events = Array.isArray(body && body.events) ? body.events : [];
    for (const e of events) io.to(e.room).emit(e.event, e.data);
    sendJSON(res, 200, { status: 'ok', emitted: events.length });
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/api/webhooks/modal') return webhook(req, res);
  if (EMITTER && req.method === 'POST' && req.url === '/_bench/emit') return benchEmit(req, res);
  if (req.method === 'GET' && req.url === '/livez') return sendJSON(res, 200, { status: 'ok' });
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

io = new Server(server, {
  path: '/socket.io',
  serveClient: false,
  pingInterval: 25000,
  pingTimeout: 20000,
  connectTimeout: 45000,
  maxHttpBufferSize: 1e6,
  transports: ['polling', 'websocket'],
  cors: { origin: (process.env.CORS_ORIGINS || 'http://localhost:5173,http://localhost:3000').split(','), credentials: true },
});

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
  process.stderr.write(`node socket.io peer listening on ${HOST}:${PORT}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { io.close(); server.close(); process.exit(0); });
}
