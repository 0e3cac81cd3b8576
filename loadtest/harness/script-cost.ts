// Redis CPU per published message, by what the message carries: the gateway's publish.lua (with
// and without a client id, history full) against the bare peer's one PUBLISH, in one run on one
// redis-server, rounds interleaved so the machine's noise falls on every row alike.
//
//   node dist/loadtest/harness/script-cost.js [--messages 20000] [--rounds 3] [--subscribers 3]
//                                            [--baseline path/to/other/publish.lua]
//
// Each row publishes --messages messages, pipelined 200 at a time, on a group whose history is
// already at HISTORY_LIMIT (1,000, so every message also trims one), to a channel --subscribers
// connections subscribe to (the nodes of a 3-node run). Redis CPU is INFO's used_cpu_user +
// used_cpu_sys over the row (microseconds, where procstat.ts's /proc ticks are 10 ms: too coarse
// for a row of ~0.2 s), per message: what the server pays, not the client. --baseline adds
// rows for another version of the script (e.g. `git show HEAD~1:services/…/publish.lua > /tmp/old.lua`).
// Printed: the minimum over the rounds (the least disturbed) and every round.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { LUA } from '../../services/gateway/src/engine/redis/lua.generated.js';
import { DEDUPE_TRIM_EVERY } from '../../services/gateway/src/engine/redis/scripts.js';
import { removeTempDir, startRedis, tempDir } from './procs.js';

const { values: a } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    subscribers: { type: 'string', default: '3' },
    baseline: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log('node dist/loadtest/harness/script-cost.js [--messages N] [--rounds N] [--subscribers N] [--baseline FILE]');
  process.exit(0);
}
const N = Number(a.messages);
const ROUNDS = Number(a.rounds);
const SUBS = Number(a.subscribers);
const LIMIT = 1000;
const TEXT = 'x'.repeat(64);

interface Row {
  name: string;
  /** Publish message `i` of group `g` (pipelined by the caller). */
  add(p: ReturnType<Redis['pipeline']>, g: number, i: number): void;
  /** A script row: before the measured part, the group is created and its history filled. */
  group: boolean;
}

const dir = tempDir('script-cost-');
const server = await startRedis(dir);
const r = new Redis(server.url, { maxRetriesPerRequest: 1 });
const subs: Redis[] = [];
try {
  const cpu = async (): Promise<number> => {
    const s = await r.info('cpu');
    const f = (k: string): number => Number(new RegExp(`${k}:([\\d.]+)`).exec(s)?.[1] ?? NaN);
    return f('used_cpu_user') + f('used_cpu_sys');
  };
  const channel = (g: number): string => `chat:{g:${g}}:ch`;
  const body = JSON.stringify({ from: 'member-01', text: TEXT, ts: Date.now(), origin: 'n1' });
  const scripts: Array<[string, string]> = [['publish.lua', LUA['publish'] as string]];
  if (a.baseline) scripts.push([`baseline (${a.baseline})`, readFileSync(a.baseline, 'utf8')]);
  const rows: Row[] = [
    {
      name: 'bare: PUBLISH',
      add: (p, g) => p.publish(channel(g), `{"t":"m","seq":1,${body.slice(1)}`),
      group: false,
    },
  ];
  for (const [label, src] of scripts) {
    const sha = (await r.script('LOAD', src)) as string;
    for (const keyed of [false, true]) {
      rows.push({
        name: `${label}${keyed ? ', client id' : ', no client id'}`,
        add: (p, g, i) =>
          p.evalsha(sha, 3, `chat:{g:${g}}`, `chat:{g:${g}}:history`, `chat:{g:${g}}:sent`, channel(g), LIMIT, body, 'PUBLISH', Date.now(), 1024 * 1024, TEXT.length, keyed ? `j${g} n${i}` : '', 1000, 600_000, DEDUPE_TRIM_EVERY),
        group: true,
      });
    }
  }
  // Every row's channels are subscribed by SUBS connections (the nodes), so PUBLISH pays its sends.
  for (let s = 0; s < SUBS; s++) {
    const c = new Redis(server.url, { maxRetriesPerRequest: 1 });
    await c.psubscribe('chat:{g:*}:ch');
    c.on('pmessage', () => undefined);
    subs.push(c);
  }
  async function run(row: Row, g: number, from: number, to: number): Promise<void> {
    for (let i = from; i < to; i += 200) {
      const p = r.pipeline();
      for (let j = i; j < Math.min(to, i + 200); j++) row.add(p, g, j);
      await p.exec();
    }
  }
  const results = new Map<string, number[]>();
  let g = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rows) {
      const id = g++;
      if (row.group) {
        await r.hset(`chat:{g:${id}}`, 'seq', 0, 'la', Date.now(), 'hb', 0);
        await run(row, id, -LIMIT - 10, 0);
      }
      const c0 = await cpu();
      await run(row, id, 0, N);
      const us = ((await cpu()) - c0) * 1e6 / N;
      results.set(row.name, [...(results.get(row.name) ?? []), us]);
    }
  }
  const bare = Math.min(...(results.get('bare: PUBLISH') ?? [NaN]));
  console.log(`Redis CPU per message: ${N} messages per row, ${ROUNDS} rounds, ${SUBS} subscribers, history full at ${LIMIT}, 64-byte text`);
  console.log('| what Redis runs per message | µs of Redis CPU (min) | × bare PUBLISH | every round µs |');
  console.log('|---|---:|---:|---|');
  for (const [name, v] of results) {
    const m = Math.min(...v);
    console.log(`| ${name} | ${m.toFixed(2)} | ${(m / bare).toFixed(2)} | ${v.map((x) => x.toFixed(2)).join(', ')} |`);
  }
} finally {
  for (const c of subs) c.disconnect();
  r.disconnect();
  await server.stop();
  removeTempDir(dir);
}
