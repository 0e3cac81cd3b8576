// The seeded fuzz generator and senders, shared by ops/fuzz.test.ts (10,200 frames straight to
// one gateway) and the chaos suite's fuzz through HAProxy (chaos/fuzzer.ts, 100,000 frames).
// Reproduce a run with its seed.
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';

/** A control byte (C0, DEL, C1): none may reach a well-behaved peer. */
export const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/** mulberry32: small, seedable, good enough to explore input space reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
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

export interface FuzzPace {
  /** Frames a second for this sender (0 or absent: as fast as the loop allows). */
  perSecond?: number;
}

/** Every 25 frames: yield to the loop, and hold back to `perSecond` if set (a rate, not a wait for an event). */
async function pace(sent: number, t0: number, p: FuzzPace): Promise<void> {
  if (sent % 25 !== 0) return;
  const ahead = p.perSecond ? t0 + (sent / p.perSecond) * 1000 - Date.now() : 0;
  await new Promise<void>((r) => (ahead > 0 ? setTimeout(r, ahead) : setImmediate(r)));
}

/** `frames` fuzz frames over WebSocket (`url`, subprotocol chat.text or chat.json), reconnecting whenever the server closes. */
export async function fuzzWs(url: string, g: Gen, protocol: 'chat.text' | 'chat.json', frames: number, p: FuzzPace = {}): Promise<number> {
  let sent = 0;
  let ws: WebSocket | null = null;
  const t0 = Date.now();
  while (sent < frames) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      ws = new WebSocket(url, [protocol]);
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
    await pace(sent, t0, p);
  }
  ws?.close();
  return sent;
}

/** `frames` fuzz writes over the line protocol (`port` on 127.0.0.1), reconnecting whenever the server closes. */
export async function fuzzTcp(port: number, g: Gen, frames: number, p: FuzzPace = {}): Promise<number> {
  let sent = 0;
  let s: Socket | null = null;
  let open = false;
  const t0 = Date.now();
  while (sent < frames) {
    if (!s || !open) {
      s = connect(port, '127.0.0.1');
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
    await pace(sent, t0, p);
  }
  s?.destroy();
  return sent;
}
