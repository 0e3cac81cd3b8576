// Queued input is bounded per connection in bytes (issue 8, item 3), measured on a real gateway:
// 100 TCP connections from 100 addresses (PROXY v1, TRUSTED_PROXIES=127.0.0.1) each send a
// create and then 70 lines of 16,000 bytes, all at once, so the lines arrive while the create's
// scrypt runs. Peak RSS (VmHWM) over the baseline (VmRSS) must stay within what the bounds allow.
//
// The budget, term by term:
// - scrypt: SCRYPT_N=16384, r=8 is 128·N·r = 16 MiB a hash, at most 2 at a time (SCRYPT_CONCURRENCY).
//   The gateway runs with MALLOC_MMAP_THRESHOLD_=131072 here. At the default cost each 128 MiB
//   buffer is past glibc's largest mmap threshold (32 MiB), so it is always mapped and unmapped;
//   at this test's 16 MiB, glibc's sliding threshold would instead keep each freed buffer in the
//   arena of the thread-pool thread that ran it (4 threads, up to 64 MiB held for good: 100
//   creates alone measured +66 MiB, against +34 MiB and back to the baseline with the setting).
//   The setting makes the small cost behave as the default one does.
// - queued input: MAX_QUEUED_INPUT_BYTES per connection, 100 connections.
// - the runtime's lazily collected garbage: the gateway still reads all 112 MB (refusing what is
//   over the cap), and V8 frees dead 64 KiB socket read buffers and decoded strings only when it
//   next collects (it lets external memory grow by up to 64 MiB before forcing a collection, and
//   grows the young generation under this allocation rate). Throughput garbage, not held input:
//   MEMORY_GC_SLACK_MIB.
// Measured on a 2-core machine (budget 150 MiB): with MAX_QUEUED_INPUT_BYTES=0 (no cap) the same
// attack added +187 MiB at its peak (+232 MiB without the malloc setting; +452 MiB for 150
// connections in the issue); with the cap, +69 to +99 MiB, of which about 34 MiB is the two scrypts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { parseMetrics } from '../helpers/proc.js';
import { within } from '../helpers/wait.js';

const CONNS = 100;
const LINES = 70;
const LINE_BYTES = 16_000;
const CAP = 64 * 1024;
const MIB = 1024 * 1024;
const SCRYPT_MIB = 16;
const SCRYPT_AT_ONCE = 2;
const MEMORY_GC_SLACK_MIB = 112;
const QUEUE_FULL = 'You are sending faster than the server can read, slow down! ';

/** VmRSS and VmHWM (peak) of a process, in MiB. */
function memory(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

interface Attacker {
  socket: Socket;
  lines: string[];
}

/**
 * One client from its own address: a create (`2`, name, password), then `lines` long lines, all
 * written at once. Resolves once every answer is in: the menu (4 lines), two prompts and
 * "Chat N has been created.", then one answer per long line (refused, or too long for a message).
 */
function attacker(gw: Gateway, i: number, lines: number): Promise<Attacker> {
  const address = `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const long = 'x'.repeat(LINE_BYTES) + '\n';
  return within(
    new Promise<Attacker>((resolve, reject) => {
      const got: string[] = [];
      let buf = '';
      const socket = connect({ host: '127.0.0.1', port: gw.tcpPort }, () => {
        socket.write(`PROXY TCP4 ${address} 127.0.0.1 ${40000 + (i % 20000)} 7037\r\n`);
        socket.write(`2\nA${i}\npw\n`);
        for (let k = 0; k < lines; k++) socket.write(long);
      });
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          got.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (got.length >= 7 + lines && got.some((l) => /^Chat \d+ has been created\.$/.test(l))) resolve({ socket, lines: got });
      });
      socket.once('close', () => {
        // A client that keeps pushing past the cap is closed once a burst of refusals went unread (RATE_LIMIT_BURST, 40),
        // its create too if that had not run yet.
        if (got.filter((l) => l === QUEUE_FULL).length >= 40) resolve({ socket, lines: got });
        else reject(new Error(`client ${address} closed early after ${got.length} lines: ${got.slice(-3).join(' | ')}`));
      });
      socket.on('error', () => undefined);
    }),
    120_000,
    `client ${address} to be answered`,
  );
}

test('memory: 100 connections × (create + 70 lines of 16,000 bytes): queued input stays within its per-connection cap', async (t) => {
  const gw = await startGateway({
    env: {
      TRUSTED_PROXIES: '127.0.0.1',
      SCRYPT_N: '16384',
      SCRYPT_CONCURRENCY: String(SCRYPT_AT_ONCE),
      MAX_QUEUED_INPUT_BYTES: String(CAP),
      MALLOC_MMAP_THRESHOLD_: '131072',
    },
  });
  const pid = gw.proc.pid as number;
  try {
    // Warm-up (first scrypt, first TCP session), then the baseline.
    const warm = await attacker(gw, 60_000, 0);
    warm.socket.destroy();
    const base = memory(pid);

    const started = Date.now();
    const all = await Promise.all(Array.from({ length: CONNS }, (_, i) => attacker(gw, i, LINES)));
    const seconds = (Date.now() - started) / 1000;
    const peak = memory(pid);

    // Every connection was answered (one answer per long line) or closed after a burst of unread refusals; the cap did the refusing.
    const refused = all.reduce((n, a) => n + a.lines.filter((l) => l === QUEUE_FULL).length, 0);
    const tooLong = all.reduce((n, a) => n + a.lines.filter((l) => l === 'Message too long, try again! ').length, 0);
    assert.ok(refused + tooLong <= CONNS * LINES, 'at most one answer per long line');
    for (const a of all) {
      const answers = a.lines.filter((l) => l === QUEUE_FULL || l === 'Message too long, try again! ').length;
      assert.ok(answers === LINES || a.lines.filter((l) => l === QUEUE_FULL).length >= 40, `answered in full or closed for not reading (${answers})`);
    }
    const metrics = parseMetrics((await gw.http('/metrics', gw.metricsPort)).body);
    assert.ok((metrics.get('chat_admission_refusals_total{reason="queue_bytes"}') ?? 0) >= refused, 'every refusal counted');
    // At most floor(CAP / line) lines wait behind a create; the rest of what arrives meanwhile is refused.
    assert.ok(refused >= (CONNS * LINES) / 2, `most lines arrive while the create runs and are refused (${refused})`);

    const added = peak.hwm - base.rss;
    const budget = SCRYPT_AT_ONCE * SCRYPT_MIB + (CONNS * CAP) / MIB + MEMORY_GC_SLACK_MIB;
    for (const a of all) a.socket.destroy();
    await within(
      (async () => {
        while (gw.output.filter((l) => l.includes('[ENDING]')).length < CONNS + 1) await new Promise<void>((r) => gw.proc.stdout?.once('data', () => r()));
      })(),
      30_000,
      'every attacker connection to end',
    );
    const after = memory(pid);
    const figures = {
      baselineMiB: +base.rss.toFixed(1),
      peakMiB: +peak.hwm.toFixed(1),
      addedMiB: +added.toFixed(1),
      budgetMiB: +budget.toFixed(1),
      queuedInputCapMiB: +((CONNS * CAP) / MIB).toFixed(2),
      afterCloseMiB: +after.rss.toFixed(1),
      refused,
      tooLong,
      seconds,
    };
    t.diagnostic(`memory figures: ${JSON.stringify(figures)}`);
    assert.ok(added <= budget, `peak RSS +${added.toFixed(1)} MiB over the baseline, budget ${budget.toFixed(1)} MiB: ${JSON.stringify(figures)}`);
    // After the connections go, RSS is reported, not asserted: their queues are dropped, but V8
    // keeps its heap committed (and dead buffers uncollected) until it next collects.
  } finally {
    await gw.stop();
  }
});
