// socket.io-client used exactly as the React app uses it.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

/** Connects like the React app: websocket first, polling fallback. */
export function connect(url, opts = {}) {
  return io(url, { transports: ['websocket', 'polling'], reconnection: true, forceNew: true, ...opts });
}

/** Resolves once the socket is connected. */
export function connected(socket, timeoutMs = 5000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connect timeout')), timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); resolve(socket); });
  });
}

/** Resolves with the next `event` payload (rejects after timeoutMs). */
export function next(socket, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.off(event, on); reject(new Error(`no ${event} within ${timeoutMs} ms`)); }, timeoutMs);
    const on = (data) => { clearTimeout(timer); resolve(data); };
    socket.once(event, on);
  });
}

/** Emits event and resolves with the server's reply event payload. */
export async function request(socket, event, payload, replyEvent) {
  const reply = next(socket, replyEvent);
  socket.emit(event, payload);
  return reply;
}

/**
 * The offset a room broadcast of a bus event carries as its last argument
 * (connection state recovery): the Redis stream entry id, or a sequence
 * number with the in-process bus.
 */
export const OFFSET = /^\d+(-\d+)?$/;

/** A recorded {event, args} with its trailing offset checked and removed. */
export function withoutOffset(e) {
  assert.equal(typeof e.args.at(-1), 'string', `${e.event} carries no offset: ${JSON.stringify(e.args)}`);
  assert.match(e.args.at(-1), OFFSET);
  return { event: e.event, args: e.args.slice(0, -1) };
}

/** Records every event a socket receives. */
export function recorder(socket) {
  const events = [];
  socket.onAny((event, ...args) => events.push({ event, args }));
  return events;
}

/** Emits with an acknowledgement and resolves with the ack's arguments. */
export function emitWithAck(socket, event, payload, timeoutMs = 5000) {
  return socket.timeout(timeoutMs).emitWithAck(event, payload);
}

/**
 * Connects like connect() and remembers every socket, so that a suite's
 * after() can disconnect them all and a failed test cannot leave one
 * reconnecting.
 */
export function clientTracker() {
  const sockets = [];
  return {
    connect(url, opts) { const s = connect(url, opts); sockets.push(s); return s; },
    closeAll() { sockets.forEach((s) => s.disconnect()); },
  };
}

/**
 * The scaffolding of a suite around one gateway: starts gw before the
 * suite, and after it disconnects every socket made with the returned
 * connect and checks that gw exits 0 on SIGTERM.
 */
export function gatewaySuite(gw) {
  const tracker = clientTracker();
  before(async () => { await gw.start(); });
  after(async () => {
    tracker.closeAll();
    assert.equal((await gw.stop()).code, 0);
  });
  return { connect: tracker.connect };
}
