// JSON Web Tokens and a JWKS server for the authentication tests, with
// node's own crypto (no token library: what is signed is plain to read).
import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 token of claims under secret; exp defaults to an hour from now. */
export function hs256(secret, claims, header = {}) {
  const body = `${b64url({ alg: 'HS256', typ: 'JWT', ...header })}.${b64url(withExp(claims))}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** An RS256 token of claims signed with key (a {privateKey, kid}). */
export function rs256(key, claims) {
  const body = `${b64url({ alg: 'RS256', typ: 'JWT', kid: key.kid })}.${b64url(withExp(claims))}`;
  const sig = createSign('RSA-SHA256').update(body).sign(key.privateKey).toString('base64url');
  return `${body}.${sig}`;
}

function withExp(claims) {
  return { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
}

/** A new RSA key pair named kid. */
export function rsaKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, publicKey };
}

/** Serves a JWKS of the given keys on 127.0.0.1; add() publishes one more. */
export async function jwksServer(keys) {
  const published = [...keys];
  let fetches = 0;
  const srv = createServer((_, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: published.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: 'RS256', use: 'sig' })) }));
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}/jwks.json`,
    add(key) { published.push(key); },
    get fetches() { return fetches; },
    close() { return new Promise((resolve) => srv.close(resolve)); },
  };
}
