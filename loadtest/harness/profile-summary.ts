// Sum V8 CPU profiles (node --cpu-prof) by area, and put several servers side by side.
//
//   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" \
//     node dist/loadtest/harness/compare.js --targets bare,gateway --skip-memory --skip-nodes --rates 2,4
//   node dist/loadtest/harness/profile-summary.js /tmp/prof
//
// Each .cpuprofile is put under the server it came from (the bare peer, Socket.IO, the gateway: by
// the scripts in it), every server's nodes summed. Self time is attributed to an area by where
// the function lives (our source files by name, node_modules by package, node: internals, the
// native uWS calls, GC). Printed: per area, the share of that server's non-idle samples and its
// time, in ms per 1,000 messages sent if --messages says how many each server's run published.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values: a, positionals } = parseArgs({ options: { messages: { type: 'string', multiple: true, default: [] } }, allowPositionals: true });
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: profile-summary DIR [--messages server=N ...]\n');
  process.exit(2);
}
const messages = new Map((a.messages ?? []).map((kv) => [kv.split('=')[0] as string, Number(kv.split('=')[1])]));

/** The area a function's self time belongs to. */
function area(fn: string, url: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'V8 / native, unattributed ((program))';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg === 'uWebSockets.js' || pkg === '@trufflesuite/uws-js-unofficial') return 'uWS (native calls: send, publish, cork…)';
  if (pkg === 'ioredis' || pkg === '@ioredis/commands' || pkg === 'redis-parser' || pkg === 'denque' || pkg === 'cluster-key-slot' || pkg === 'redis-errors' || pkg === 'standard-as-callback')
    return 'ioredis (commands, RESP, promises)';
  if (pkg === 'prom-client' || pkg === 'tdigest' || pkg === 'bintrees') return 'prom-client';
  if (pkg) return `npm: ${pkg}`;
  if (url.startsWith('node:')) {
    if (/node:net|node:internal\/stream_base|node:internal\/streams|node:stream/.test(url)) return 'node: net and streams (socket writes and reads)';
    if (/node:internal\/process\/task_queues|node:internal\/async_hooks|node:internal\/timers|node:timers/.test(url)) return 'node: microtasks, timers';
    if (/node:events/.test(url)) return 'node: events';
    return 'node: other';
  }
  if (url === '' && fn !== '') return `builtin: ${fn}`.slice(0, 60);
  const src = /(services\/[^/]+\/src\/(?:[^/]+\/)*[^/]+|loadtest\/peers\/[^/]+)\.js$/.exec(url)?.[1];
  if (src) return src.replace(/^services\/gateway\/src\//, 'gateway: ').replace(/^loadtest\/peers\//, 'peer: ');
  return 'other';
}

function serverOf(p: Profile): string {
  const urls = new Set(p.nodes.map((n) => n.callFrame.url));
  for (const u of urls) if (u.includes('loadtest/peers/bare')) return 'bare';
  for (const u of urls) if (u.includes('loadtest/peers/sio')) return 'socket.io';
  for (const u of urls) if (u.includes('services/gateway/src/')) return 'gateway';
  return 'unknown';
}

const totals = new Map<string, Map<string, number>>();
const files = new Map<string, number>();
for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
  const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const server = serverOf(p);
  files.set(server, (files.get(server) ?? 0) + 1);
  const t = totals.get(server) ?? new Map<string, number>();
  totals.set(server, t);
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i] as number);
    if (!n) continue;
    const k = area(n.callFrame.functionName, n.callFrame.url);
    t.set(k, (t.get(k) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
}
const servers = [...totals.keys()].sort();
const busy = (s: string): number => [...(totals.get(s) as Map<string, number>)].filter(([k]) => k !== 'idle').reduce((x, [, v]) => x + v, 0);
const areas = [...new Set(servers.flatMap((s) => [...(totals.get(s) as Map<string, number>).keys()]))].filter((k) => k !== 'idle');
areas.sort((x, y) => servers.reduce((acc, s) => acc + ((totals.get(s) as Map<string, number>).get(y) ?? 0), 0) - servers.reduce((acc, s) => acc + ((totals.get(s) as Map<string, number>).get(x) ?? 0), 0));
const per = (s: string, ms: number): string => {
  const m = messages.get(s);
  return m ? ` (${((ms / m) * 1000).toFixed(1)})` : '';
};
console.log(`profiles in ${dir}: ${servers.map((s) => `${s} ${files.get(s)} processes, busy ${(busy(s) / 1000).toFixed(1)} s${per(s, busy(s))}`).join('; ')}`);
console.log(`| area (self time) | ${servers.map((s) => `${s}: % of busy, ms${messages.has(s) ? ' (ms per 1k messages)' : ''}`).join(' | ')} |`);
console.log(`|---|${servers.map(() => '---:').join('|')}|`);
for (const k of areas.slice(0, 30)) {
  const cells = servers.map((s) => {
    const ms = (totals.get(s) as Map<string, number>).get(k) ?? 0;
    return ms === 0 ? '—' : `${((ms / busy(s)) * 100).toFixed(1)} %, ${Math.round(ms)}${per(s, ms)}`;
  });
  console.log(`| ${k} | ${cells.join(' | ')} |`);
}
