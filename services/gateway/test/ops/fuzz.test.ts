// Seeded fuzz: 10,000+ random and malformed frames over WS text, WS JSON and TCP.
// No crash, no unhandled rejection, and no control byte reaches a well-behaved peer.
// Reproduce a failure with FUZZ_SEED=<seed printed in the diagnostic>.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import { LineClient, WsClient } from '../helpers/clients.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261125);
const FRAMES_PER_TRANSPORT = 3400; // × 3 transports > 10,000
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/** mulberry32: small, seedable, good enough to explore input space reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(
    private readonly r: () => number,
    private readonly groupId: string,
  ) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(max: number): Buffer {
    return Buffer.from(Array.from({ length: this.int(max) }, () => this.int(256)));
  }
  str(max = 40): string {
    const atoms = ['a', 'Z', ' ', '0', '9', 'é', 'ש', '👋', '\x1b[31m', '\x1b]0;t\x07', '\x9b2J', '\x00', '\x07', '\x08', '\x7f', '\r', '\n', '\t', '\u202e', '/who', '/quit', '"', '\\', '{', '}'];
    let s = '';
    for (let i = this.int(max); i > 0; i--) s += this.pick(atoms);
    return s;
  }
  value(): unknown {
    return this.pick([() => this.str(), () => this.int(1e6) - 5, () => null, () => true, () => [1, 'x'], () => ({ a: 1 }), () => this.groupId, () => 'pw', () => 1.5])();
  }
  /** A text-protocol answer: mostly plausible, sometimes hostile. */
  line(): string {
    return this.pick([() => this.pick(['1', '2', '3', '5', '']), () => this.groupId, () => 'pw', () => this.str(), () => this.str(200)])();
  }
  json(): string {
    const op = this.pick(['create', 'join', 'resume', 'send', 'who', 'exit', 'teleport', 42, undefined]);
    const o: Record<string, unknown> = { op };
    for (const k of ['name', 'password', 'groupId', 'text', 'token', 'since', 'id']) if (this.r() < 0.6) o[k] = this.value();
    if (op === 'join' && this.r() < 0.5) Object.assign(o, { groupId: this.groupId, password: 'pw', name: this.str(8) || 'x' });
    if (op === 'send' && this.r() < 0.7) o['text'] = this.str(60);
    const s = JSON.stringify(o);
    return this.pick([() => s, () => s, () => s, () => s.slice(0, this.int(s.length)), () => this.str(30), () => s.replace('"op"', '"\\ud800op"')])();
  }
}

async function fuzzWs(gw: Gateway, g: Gen, protocol: 'chat.text' | 'chat.json'): Promise<number> {
  let sent = 0;
  let ws: WebSocket | null = null;
  while (sent < FRAMES_PER_TRANSPORT) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      ws = new WebSocket(gw.wsUrl, [protocol]);
      ws.on('error', () => undefined);
      await new Promise<void>((res) => {
        ws?.once('open', () => res());
        ws?.once('close', () => res());
      });
      continue;
    }
    const kind = g.int(10);
    try {
      if (kind === 0) ws.send(g.bytes(64), { binary: true });
      else if (kind === 1 && g.int(4) === 0) ws.send(g.bytes(32), { binary: false }); // maybe invalid UTF-8: fails the connection
      else if (kind === 2 && g.int(10) === 0) ws.send('x'.repeat(20_000));
      else ws.send(protocol === 'chat.json' ? g.json() : g.line());
    } catch {
      // closing under us: reconnect on the next turn
    }
    sent++;
    if (sent % 25 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  ws?.close();
  return sent;
}

async function fuzzTcp(gw: Gateway, g: Gen): Promise<number> {
  let sent = 0;
  let s: Socket | null = null;
  let open = false;
  while (sent < FRAMES_PER_TRANSPORT) {
    if (!s || !open) {
      s = connect(gw.tcpPort, '127.0.0.1');
      s.on('data', () => undefined);
      s.on('error', () => undefined);
      await new Promise<void>((res) => {
        s?.once('connect', () => {
          open = true;
          res();
        });
        s?.once('close', () => res());
      });
      s.once('close', () => (open = false));
      continue;
    }
    const kind = g.int(10);
    if (kind === 0) s.write(g.bytes(64));
    else if (kind === 1) s.write(Buffer.concat([g.bytes(16), Buffer.from('\n')]));
    else if (kind === 2 && g.int(10) === 0) s.write('y'.repeat(40_000) + '\n');
    else s.write(g.line() + (g.int(8) === 0 ? '\r\n' : '\n'));
    sent++;
    if (sent % 25 === 0) await new Promise<void>((r) => setImmediate(r));
  }
  s?.destroy();
  return sent;
}

test(`fuzz: ${FRAMES_PER_TRANSPORT * 3} seeded frames over WS text, WS JSON and TCP (seed ${SEED})`, async (t) => {
  t.diagnostic(`FUZZ_SEED=${SEED}`);
  const gw = await startGateway({ env: { RATE_LIMIT_PER_SEC: '0', MAX_FRAME_BYTES: '4096' } });
  try {
    const owner = await WsClient.connect(gw.wsUrl, 'chat.json');
    owner.sendJson({ op: 'create', name: 'Owner', password: 'pw' });
    const { groupId } = await owner.nextOfType<{ groupId: string }>('created');
    await owner.nextOfType('joined');
    const tcpPeer = await LineClient.connect(gw.tcpPort);
    await tcpPeer.nextLines(4);
    for (const say of ['1', 'TcpPeer', groupId, 'pw']) tcpPeer.send(say);
    await tcpPeer.until(`Hi TcpPeer! welcome to group ${groupId}!`);
    const wsPeer = await WsClient.connect(gw.wsUrl);
    const wsFrames: string[] = [];
    wsPeer.ws.on('message', (d) => wsFrames.push(d.toString()));
    const jsonFrames: string[] = [];
    owner.ws.on('message', (d) => jsonFrames.push(d.toString()));
    for (const say of ['1', 'WsPeer', groupId, 'pw']) wsPeer.send(say);

    const seeds = [SEED, SEED + 1, SEED + 2];
    const counts = await Promise.all([
      fuzzWs(gw, new Gen(prng(seeds[0] as number), groupId), 'chat.text'),
      fuzzWs(gw, new Gen(prng(seeds[1] as number), groupId), 'chat.json'),
      fuzzTcp(gw, new Gen(prng(seeds[2] as number), groupId)),
    ]);
    assert.ok(counts.reduce((a, b) => a + b) >= 10_000);

    // The node is alive and the group still works end to end.
    assert.equal(gw.proc.exitCode, null, 'gateway still running');
    owner.sendJson({ op: 'send', text: 'sentinel' });
    await tcpPeer.until('Owner: sentinel', 20_000);
    await within(
      new Promise<void>((res) => {
        const check = (): void => (wsFrames.includes('Owner: sentinel') ? res() : void wsPeer.ws.once('message', check));
        check();
      }),
      20_000,
      'sentinel at the WS text peer',
    );
    assert.equal((await gw.http('/readyz')).status, 200);

    for (const line of tcpPeer.all) assert.ok(!CONTROL.test(line), `TCP peer got ${JSON.stringify(line)}`);
    for (const f of wsFrames) if (!f.startsWith('Hello client')) assert.ok(!CONTROL.test(f), `WS peer got ${JSON.stringify(f)}`);
    for (const f of jsonFrames) {
      const ev = JSON.parse(f) as Record<string, unknown>;
      for (const k of ['text', 'from', 'name']) if (typeof ev[k] === 'string') assert.ok(!CONTROL.test(ev[k] as string), `JSON peer got ${f}`);
    }
    const errors = gw.output.filter((l) => /"level":(50|60)/.test(l) || /unhandled|Uncaught|TypeError|RangeError/.test(l));
    assert.deepEqual(errors, [], 'no error-level log lines');
    t.diagnostic(`frames: ${counts.join(' + ')}; TCP peer lines ${tcpPeer.all.length}, WS peer frames ${wsFrames.length}`);
    owner.close();
    tcpPeer.close();
    wsPeer.close();
  } finally {
    await gw.stop();
  }
});
