// A flood process of the connection-flood scenario: opens its share of idle connections
// through the balancers (WebSocket upgrades with chat.text, and line-protocol TCP), each
// waits for the menu and then sits there; every `garbageEvery`-th one answers the menu with
// garbage first. Raw sockets (no WebSocket library): one fd and a few KB each, so one
// process holds thousands. The runner stops it by PID (flood ends: every socket closes).
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface FloodTarget {
  port: number;
  kind: 'ws' | 'tcp';
}

export type ToFlood =
  | { t: 'open'; targets: FloodTarget[]; count: number; garbageEvery: number; concurrency: number; menuMs: number }
  | { t: 'stats' }
  | { t: 'exit' };

export interface FloodCounts {
  /** Connections that got the menu and are still open. */
  open: number;
  /** Connections that never got the menu (refused, closed, or no menu within menuMs). */
  failed: number;
  /** Connections that got the menu and were closed by the other side since. */
  closedAfterMenu: number;
  /** Connections that answered the menu with garbage. */
  garbage: number;
  /** Slowest connect → menu, ms. */
  maxMenuMs: number;
}

export type FromFlood = ({ t: 'opened' } & FloodCounts) | ({ t: 'stats' } & FloodCounts) | { t: 'failed'; error: string };

const MENU_MARK = 'Hello client';
const sockets: Socket[] = [];
const counts: FloodCounts = { open: 0, failed: 0, closedAfterMenu: 0, garbage: 0, maxMenuMs: 0 };
const reply = (m: FromFlood): void => {
  process.send?.(m);
};

const upgrade = (port: number): string =>
  `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.text\r\n\r\n`;

/** A masked client text frame (RFC 6455 §5.3), payload < 126 bytes. */
function maskedText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const out = Buffer.alloc(6 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return out;
}

function openOne(target: FloodTarget, garbage: boolean, menuMs: number): Promise<void> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let seen = '';
    let atMenu = false;
    const s = connect({ port: target.port, host: '127.0.0.1' });
    const timer = setTimeout(() => fail(), menuMs);
    const fail = (): void => {
      if (atMenu) return;
      clearTimeout(timer);
      counts.failed++;
      s.destroy();
      resolve();
    };
    s.on('error', () => undefined);
    s.once('close', () => {
      if (atMenu) {
        counts.open--;
        counts.closedAfterMenu++;
      } else fail();
    });
    s.once('connect', () => {
      if (target.kind === 'ws') s.write(upgrade(target.port));
    });
    s.on('data', (d: Buffer) => {
      if (atMenu) return; // sits at the menu: whatever comes later is read and dropped
      seen += d.toString('latin1');
      if (!seen.includes(MENU_MARK)) {
        if (seen.length > 4096) fail();
        return;
      }
      if (target.kind === 'ws' && !seen.startsWith('HTTP/1.1 101')) return fail();
      atMenu = true;
      seen = '';
      clearTimeout(timer);
      counts.open++;
      counts.maxMenuMs = Math.max(counts.maxMenuMs, Date.now() - t0);
      sockets.push(s);
      if (garbage) {
        counts.garbage++;
        if (target.kind === 'ws') s.write(maskedText(`zz${randomBytes(8).toString('hex')}`));
        else s.write(Buffer.concat([randomBytes(12).map((b) => (b === 10 ? 32 : b)), Buffer.from('\n')]));
      }
      resolve();
    });
  });
}

async function open(m: Extract<ToFlood, { t: 'open' }>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(m.concurrency, m.count) }, async () => {
      while (next < m.count) {
        const i = next++;
        await openOne(m.targets[i % m.targets.length] as FloodTarget, m.garbageEvery > 0 && i % m.garbageEvery === 0, m.menuMs);
      }
    }),
  );
  reply({ t: 'opened', ...counts });
}

process.on('message', (raw) => {
  const m = raw as ToFlood;
  if (m.t === 'open') open(m).catch((e: unknown) => reply({ t: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  else if (m.t === 'stats') reply({ t: 'stats', ...counts });
  else {
    for (const s of sockets) s.destroy();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
