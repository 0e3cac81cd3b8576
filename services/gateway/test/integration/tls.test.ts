// TLS at the balancer: HAProxy (deploy/haproxy/haproxy.cfg with LB_CERT set)
// ends wss:// and TLS over TCP beside its plain ports, with a certificate from
// scripts/make-certs.sh (what `make cluster` runs). Clients verify the chain
// against the local CA; the seed transcript runs over both; the gateway still
// sees each client's own address (X-Forwarded-For / PROXY v1 behind TLS).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { WsClient } from '../helpers/clients.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { MENU, seedTranscript } from '../helpers/transcript.js';
import { makeCerts, startTlsBalancer, TlsLineClient, type Certs, type TlsBalancer } from '../helpers/tls.js';
import { Inbox, until, within } from '../helpers/wait.js';

const have = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const missing = ['haproxy', 'openssl'].filter((t) => !have(t));
if (missing.length > 0 && process.env['CI']) throw new Error(`${missing.join(', ')} required in CI (make test installs them)`);
const skip = missing.length > 0 && `${missing.join(', ')} not installed`;

// dist/services/gateway/test/integration → dist/services/client/src/main.js
const CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../client/src/main.js');

let gw: Gateway;
let certs: Certs;
let lb: TlsBalancer;

before(async () => {
  if (skip) return;
  certs = makeCerts();
  // One gateway behind all three server lines: one engine, so every client meets in the same groups.
  gw = await startGateway({ env: { TRUSTED_PROXIES: '127.0.0.1' } });
  lb = await startTlsBalancer([gw, gw, gw], certs);
});

after(async () => {
  if (skip) return;
  await lb?.stop();
  await gw?.stop();
});

/** The transport-neutral shape of a text client: send an answer, expect the next server message exactly. */
interface Peer {
  send(s: string): void;
  expect(s: string): Promise<void>;
  /** The next server message, whatever it is. */
  next(): Promise<string>;
  closed: Promise<unknown>;
  close(): void;
}

async function tlsPeer(localAddress?: string): Promise<Peer> {
  const c = await TlsLineClient.connect(lb.tls, { ca: certs.ca, ...(localAddress ? { localAddress } : {}) });
  return {
    send: (s) => c.send(s),
    expect: async (s) => assert.equal(await c.nextLines(s.split('\n').length), s),
    next: () => c.next(),
    closed: c.closed,
    close: () => c.close(),
  };
}

async function wssPeer(localAddress?: string): Promise<Peer> {
  // By address (no name lookup needed), verifying the certificate's DNS name `localhost` all the same.
  // (ws hands `servername` to tls.connect; its types do not list it.)
  const opts: WebSocket.ClientOptions & { servername: string } = { ca: certs.ca, servername: 'localhost', ...(localAddress ? { localAddress } : {}) };
  const ws = new WebSocket(`wss://127.0.0.1:${lb.wss}/`, [], opts);
  const frames = new Inbox<string>();
  ws.on('message', (d) => frames.push(d.toString()));
  ws.on('error', () => undefined);
  const closed = new Promise((r) => ws.once('close', r));
  await within(new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej))), 5000, 'wss open');
  return {
    send: (s) => ws.send(s),
    expect: async (s) => assert.equal(await frames.next(5000, JSON.stringify(s)), s),
    next: () => frames.next(5000, 'a frame'),
    closed,
    close: () => ws.close(1000),
  };
}

/** PROTOCOL.md §1, byte for byte (helpers/transcript.ts), `a` and `b` from their own loopback addresses. */
async function seedTranscriptFrom(open: (localAddress?: string) => Promise<Peer>, addrs: [string, string]): Promise<void> {
  await seedTranscript({
    open: (who) => open(who === 'a' ? addrs[0] : who === 'b' ? addrs[1] : undefined),
    created: async (a) => {
      const id = /^Chat (\d+) has been created\.$/.exec(await (a as Peer).next())?.[1];
      assert.ok(id !== undefined, 'Chat {id} has been created.');
      return id;
    },
    wrongId: '99',
  });

  // The gateway saw the clients' own addresses through TLS termination, not HAProxy's.
  const seen = (remote: string): boolean => gw.output.some((l) => l.includes('[CLIENT CONNECTED]') && l.includes(`"remote":"${remote}"`));
  await until(() => addrs.every(seen), 5000, `connection logs from ${addrs.join(', ')}`);
}

test('seed transcript over wss:// through HAProxy, chain verified against the local CA', { skip }, async () => {
  await seedTranscriptFrom(wssPeer, ['127.0.0.2', '127.0.0.3']);
});

test('seed transcript over TLS TCP through HAProxy, chain and name verified', { skip }, async () => {
  await seedTranscriptFrom(tlsPeer, ['127.0.0.4', '127.0.0.5']);
});

test('a client that does not trust the CA, or asks for another name, is refused by its own verification', { skip }, async () => {
  await assert.rejects(TlsLineClient.connect(lb.tls), (e: NodeJS.ErrnoException) => e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  await assert.rejects(TlsLineClient.connect(lb.tls, { ca: certs.ca, servername: 'chat.example.com' }), (e: NodeJS.ErrnoException) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
  await assert.rejects(WsClient.connect(`wss://127.0.0.1:${lb.wss}/`), /unable to verify the first certificate/);
  // The plain ports are still there beside the TLS ones.
  const plain = await WsClient.connect(`ws://127.0.0.1:${lb.ws}/`);
  assert.equal(await plain.next(), MENU);
  plain.close();
});

/** The terminal client (services/client) as a user runs it: answers on stdin, the server's words on stdout. */
async function terminalClient(url: string, ca: string | null, input: string[]): Promise<{ out: Inbox<string>; done: Promise<number | null>; kill(): void; err: string[] }> {
  const proc = spawn(process.execPath, [CLIENT, url, ...(ca ? ['--ca', ca] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new Inbox<string>();
  const err: string[] = [];
  let buf = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      out.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  proc.stderr.on('data', (d: Buffer) => err.push(d.toString()));
  const done = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.stdin.write(input.map((l) => l + '\n').join(''));
  return { out, done, err, kill: () => void (proc.exitCode === null && proc.kill('SIGTERM')) };
}

test('the terminal client speaks tls:// and wss:// with --ca, and refuses an unknown CA', { skip }, async () => {
  const caFile = join(certs.dir, 'ca.pem');
  // By address: the certificate's IP entry 127.0.0.1 is what the client verifies.
  for (const url of [`tls://127.0.0.1:${lb.tls}`, `wss://127.0.0.1:${lb.wss}/`]) {
    const c = await terminalClient(url, caFile, ['2', 'Tess', 'pw']);
    await c.out.next(5000, `created over ${url}`, (l) => /^Chat \d+ has been created\.$/.test(l));
    c.kill();
    await within(c.done, 5000, 'client exit');

    const refused = await terminalClient(url, null, []);
    assert.equal(await within(refused.done, 5000, 'client refusing the certificate'), 1);
    assert.match(refused.err.join(''), /unable to verify the first certificate/);
  }
  // An unreadable CA file is a clear error, not a hang.
  const bad = await terminalClient(`tls://127.0.0.1:${lb.tls}`, join(certs.dir, 'nope.pem'), []);
  assert.equal(await within(bad.done, 5000, 'client exit on a missing CA file'), 1);
  assert.match(bad.err.join(''), /cannot read CA file/);
});
