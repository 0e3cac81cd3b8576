// The web client's files as the gateway serves them (no browser needed): the exact bytes of
// services/web with their types and headers, 304 on a matching ETag, the other HTTP routes and the
// WebSocket upgrade at `/` (ALLOWED_ORIGINS included) unchanged, and a client that pipelines
// requests without reading holds no copy per request (the body goes as the socket takes it).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { WsClient } from '../helpers/clients.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { REPO } from '../helpers/haproxy.js';
import { rssBytes } from '../helpers/proc.js';
import { within } from '../helpers/wait.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const FILES: Array<[string, string, string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/index.html', 'index.html', 'text/html; charset=utf-8'],
  ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/style.css', 'style.css', 'text/css; charset=utf-8'],
  ['/favicon.svg', 'favicon.svg', 'image/svg+xml'],
];
const ORIGIN = 'http://chat.example';

let gw: Gateway;
const url = (path: string): string => `http://127.0.0.1:${gw.port}${path}`;

before(async () => {
  gw = await startGateway({ noTcp: true, env: { ALLOWED_ORIGINS: ORIGIN } });
});

after(async () => {
  await gw?.stop();
});

test('each file: its bytes, its type, the CSP and the other headers; 304 on its ETag', async () => {
  for (const [path, file, type] of FILES) {
    const r = await fetch(url(path));
    assert.equal(r.status, 200, path);
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), readFileSync(resolve(REPO, 'services/web', file)), path);
    assert.equal(r.headers.get('content-type'), type, path);
    assert.equal(r.headers.get('content-security-policy'), CSP, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    assert.equal(r.headers.get('cache-control'), 'no-cache', path);
    const etag = r.headers.get('etag') ?? '';
    assert.match(etag, /^"[0-9a-f]{32}"$/, path);
    const again = await fetch(url(path), { headers: { 'If-None-Match': `"other", ${etag}` } });
    assert.equal(again.status, 304, path);
    assert.equal((await again.arrayBuffer()).byteLength, 0, path);
    assert.equal((await fetch(url(path), { headers: { 'If-None-Match': '"other"' } })).status, 200, path);
    const head = await fetch(url(path), { method: 'HEAD' });
    assert.equal(head.status, 200, path);
    assert.equal(head.headers.get('content-type'), type, path);
    assert.equal(head.headers.get('content-security-policy'), CSP, path);
    assert.equal(head.headers.get('etag'), etag, path);
  }
  // Only those: nothing else under the page, and no path reaches the file system.
  for (const path of ['/web/app.js', '/services/web/index.html', '/%2e%2e/package.json', '/app.js/', '/APP.JS', '/index.htm'])
    assert.equal((await fetch(url(path))).status, 404, path);
});

test('the other routes: /healthz, /readyz, 404, and WebSocket upgrades at / with the Origin check', async () => {
  assert.equal((await gw.http('/healthz')).status, 200);
  assert.equal((await gw.http('/readyz')).status, 200);
  assert.equal((await gw.http('/nope')).status, 404);
  assert.equal((await fetch(url('/'), { method: 'POST', body: 'x' })).status, 404);

  const c = await WsClient.connect(`ws://127.0.0.1:${gw.port}/`, 'chat.json', { Origin: ORIGIN });
  assert.equal((await c.nextJson<{ type: string }>()).type, 'menu');
  c.close();
  const text = await WsClient.connect(`ws://127.0.0.1:${gw.port}/app.js`, undefined, { Origin: ORIGIN });
  assert.match(await text.next(), /^Hello client, please choose an option:/);
  text.close();
  await assert.rejects(WsClient.connect(`ws://127.0.0.1:${gw.port}/`, 'chat.json', { Origin: 'http://evil.example' }), /HTTP 403/);
});

test('the page has a message for every error code of the protocol', () => {
  const frames = readFileSync(resolve(REPO, 'services/gateway/src/protocol/frames.ts'), 'utf8');
  const union = /export type ErrorCode =([^;]+);/.exec(frames)?.[1] ?? '';
  const codes = [...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1] as string);
  assert.ok(codes.length >= 12, `codes in frames.ts: ${codes.join(', ')}`);
  const app = readFileSync(resolve(REPO, 'services/web/app.js'), 'utf8');
  const table = /const ERROR_TEXT = \{([^}]+)\}/.exec(app)?.[1] ?? '';
  const known = [...table.matchAll(/^\s*([a-z_]+): '[^']+',$/gm)].map((m) => m[1]);
  assert.deepEqual(codes.filter((c) => !known.includes(c)), [], 'codes without a message in services/web/app.js');
});

/** Raw HTTP/1.1 on one socket. */
function rawSocket(port: number): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => res(s));
    s.once('error', rej);
  });
}

test('pipelined requests from clients that do not read: no copy of the file per request', async () => {
  const ATTACK = 1000;
  // What one connection may pipeline and still be answered: uWS keeps the requests it has not
  // parsed yet in a small buffer (about 4 KiB) and closes a connection that sends more meanwhile.
  const N = 50;
  const request = 'GET /app.js HTTP/1.1\r\nHost: chat\r\n\r\n';
  const one = (await fetch(url('/app.js'))).headers;
  const bodyLength = Number(one.get('content-length'));
  const before = rssBytes(gw.proc.pid as number);

  // 19 connections each send 1,000 requests for app.js and read nothing.
  const idle: Socket[] = [];
  for (let i = 0; i < 19; i++) {
    const s = await rawSocket(gw.port);
    s.pause();
    s.on('error', () => undefined);
    s.write(request.repeat(ATTACK));
    idle.push(s);
  }
  const reader = await rawSocket(gw.port);
  reader.pause();
  reader.write(request.repeat(N));

  // A 20th pipelines 50 and then reads: every response arrives, whole, in order (the rest of a body
  // goes as the socket drains). By then the node has had the other 19 connections' requests; had it
  // answered them all, it would hold 19,000 copies.
  const chunks: Buffer[] = [];
  let received = 0;
  let expected = Infinity; // N × (the first response's head + the body): every head has the same length
  const all = new Promise<void>((res) => {
    reader.on('data', (d: Buffer) => {
      chunks.push(d);
      received += d.length;
      if (expected === Infinity) {
        const head = Buffer.concat(chunks).indexOf('\r\n\r\n');
        if (head >= 0) expected = N * (head + 4 + bodyLength);
      }
      if (received >= expected) res();
    });
  });
  reader.resume();
  await within(all, 30_000, `${N} responses`);
  const got = Buffer.concat(chunks).toString('latin1');
  assert.equal(got.length, expected, 'every response whole, nothing more');
  assert.equal(got.split('HTTP/1.1 200 OK\r\n').length - 1, N);
  const grown = rssBytes(gw.proc.pid as number) - before;
  assert.ok(grown < 64 * 2 ** 20, `the node grew ${Math.round(grown / 2 ** 20)} MiB (19 × ${ATTACK} copies of ${bodyLength} bytes would be ${Math.round((19 * ATTACK * bodyLength) / 2 ** 20)} MiB)`);
  for (const s of [...idle, reader]) s.destroy();
  assert.equal((await gw.http('/healthz')).status, 200, 'the node still answers');
});
