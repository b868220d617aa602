// A load balancer on 127.0.0.1 in front of several gateway processes, as a
// Kubernetes Service with session affinity would be: each client (named
// by the `lb` query parameter socket.io-client adds to every request)
// sticks to one ready backend, chosen by rendezvous hashing so that a
// backend leaving moves only its own clients; HTTP long-polling requests
// are proxied one by one and WebSocket upgrades piped.
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { freePort, sleep } from './gateway.mjs';

/** Starts the balancer; returns {url, close}. */
export async function stickyBalancer(backends, { probeMs = 100 } = {}) {
  const ready = new Map(backends.map((b) => [b, true]));
  let stopped = false;
  (async () => {
    while (!stopped) {
      await Promise.all(backends.map(async (b) => {
        try {
          const res = await fetch(`${b.url}/readyz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(1000) });
          ready.set(b, res.status === 200);
        } catch { ready.set(b, false); }
      }));
      await sleep(probeMs);
    }
  })();

  /** The backends in a key's order of preference, ready or not. */
  const order = (key) => backends
    .map((b) => ({ b, score: createHash('sha1').update(`${key}/${b.port}`).digest('hex') }))
    .sort((x, y) => (x.score < y.score ? 1 : -1))
    .map((x) => x.b);
  const pick = (url) => order(new URL(url, 'http://lb').searchParams.get('lb') || '').find((b) => ready.get(b)) || null;

  const server = http.createServer((req, res) => {
    const target = pick(req.url);
    if (!target) { res.writeHead(503).end('no backend ready'); return; }
    const up = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const target = pick(req.url);
    if (!target) { socket.end('HTTP/1.1 503 Service Unavailable\r\n\r\n'); return; }
    const up = net.connect(target.port, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket).pipe(up);
    });
    const end = () => { socket.destroy(); up.destroy(); };
    socket.on('error', end); up.on('error', end); socket.on('close', end); up.on('close', end);
  });
  server.keepAliveTimeout = 1000;
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    /** The backends in a client key's order of preference. */
    order,
    close: () => { stopped = true; server.closeAllConnections?.(); server.close(); },
  };
}
