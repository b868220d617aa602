// A Socket.IO client over a raw TCP WebSocket, written out by hand so that
// a test controls what a library would not let it: it completes the
// Engine.IO / Socket.IO handshake, answers pings while it reads, and can
// stop reading altogether (the kernel's receive buffer fills, then the
// server's send buffer, then whatever the server queues).
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { sleep } from './gateway.mjs';

/** One masked client frame (FIN set) of opcode with payload. */
function frame(opcode, payload) {
  const data = Buffer.from(payload);
  const mask = randomBytes(4);
  let head;
  if (data.length < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | data.length]);
  } else if (data.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ mask[i % 4];
  return Buffer.concat([head, mask, masked]);
}

/**
 * Opens a WebSocket to host:port's /socket.io/ and connects to the main
 * namespace. Resolves to a client with:
 *   messages   every text message received (Engine.IO packets, "42[...]" etc.)
 *   bytes      bytes read so far
 *   send(text) a text message
 *   emit(event, data)
 *   waitFor(pred, what, timeoutMs) a message matching pred
 *   stopReading() pauses the socket for good: nothing more is read
 *   closed     a promise settled when the connection ends
 */
export async function rawSocketIO({ host = '127.0.0.1', port, query = '', timeoutMs = 5000 }) {
  const sock = net.connect({ host, port });
  const c = { sock, messages: [], bytes: 0, reading: true, ended: false };
  c.closed = new Promise((resolve) => sock.on('close', () => { c.ended = true; resolve(); }));
  sock.on('error', () => {});
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const key = randomBytes(16).toString('base64');
  sock.write(`GET /socket.io/?EIO=4&transport=websocket${query} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);

  let buf = Buffer.alloc(0);
  let upgraded = false;
  let fragments = [];
  const parse = () => {
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      if (!head.startsWith('HTTP/1.1 101')) { sock.destroy(new Error(`upgrade refused: ${head.split('\r\n')[0]}`)); return; }
      upgraded = true;
      buf = buf.subarray(end + 4);
    }
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      const fin = (buf[0] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + len) return;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (opcode === 0x8) { sock.end(); return; }
      if (opcode === 0x9) { sock.write(frame(0xA, payload)); continue; }
      if (opcode !== 0x1 && opcode !== 0x0 && opcode !== 0x2) continue;
      fragments.push(Buffer.from(payload));
      if (!fin) continue;
      const text = Buffer.concat(fragments).toString();
      fragments = [];
      if (text === '2') { c.send('3'); continue; }
      c.messages.push(text);
    }
  };
  sock.on('data', (d) => { c.bytes += d.length; buf = Buffer.concat([buf, d]); parse(); });

  c.send = (text) => { if (!sock.destroyed) sock.write(frame(0x1, text)); };
  c.emit = (event, data) => c.send(`42${JSON.stringify([event, data])}`);
  c.waitFor = async (pred, what, ms = timeoutMs) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const m = c.messages.find(pred);
      if (m !== undefined) return m;
      if (c.ended) break;
      await sleep(10);
    }
    throw new Error(`raw client: no ${what} within ${ms} ms (got ${c.messages.slice(0, 5).join(' | ')})`);
  };
  c.stopReading = () => { c.reading = false; sock.pause(); };
  /** Reads again, dropping what arrives (to see the end of a cut connection). */
  c.drain = () => { sock.removeAllListeners('data'); sock.on('data', (d) => { c.bytes += d.length; }); sock.resume(); };

  await c.waitFor((m) => m.startsWith('0{'), 'Engine.IO open');
  c.send('40');
  const connect = await c.waitFor((m) => m.startsWith('40'), 'Socket.IO connect');
  c.sid = JSON.parse(connect.slice(2)).sid;
  return c;
}
