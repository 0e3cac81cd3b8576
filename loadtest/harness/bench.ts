// The load generator's entry point: runs the chosen scenarios one after the
// other, each against gateways it starts itself on loopback, and prints a table.
//
//   node dist/loadtest/harness/bench.js [--scenarios fanout,storm] [--engine redis --nodes 2] [--quick] …
//
// Everything is bounded: each scenario runs for --duration seconds after a
// warm-up, member counts and rates have hard caps, and the whole run has a
// deadline after which it stops its processes (by PID) and exits.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { TRANSPORTS, type Transport } from './clients.js';
import { fanout, storm, throughput, type Common, type Mix, type Row } from './scenarios.js';
import { markdownTable, textTable } from './table.js';

const ALL = ['fanout', 'fanout-big', 'throughput', 'storm', 'mixed'] as const;
type Scenario = (typeof ALL)[number];

const CAPS = { members: 50_000, durationS: 300, rate: 10_000, workers: 8, nodes: 8, inflight: 256 };

const { values: a } = parseArgs({
  options: {
    scenarios: { type: 'string', default: ALL.join(',') },
    engine: { type: 'string', default: 'memory' },
    nodes: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    drain: { type: 'string', default: '2' },
    size: { type: 'string', default: '64' },
    groups: { type: 'string', default: '100' },
    members: { type: 'string', default: '20' },
    senders: { type: 'string', default: '1' },
    rate: { type: 'string', default: '20' },
    'big-groups': { type: 'string', default: '2' },
    'big-members': { type: 'string', default: '1000' },
    'big-rate': { type: 'string', default: '10' },
    mix: { type: 'string', default: 'ws_json:10,tcp:6,ws_text:4' },
    'mixed-groups': { type: 'string', default: '50' },
    'mixed-members': { type: 'string', default: '20' },
    'mixed-senders': { type: 'string', default: '3' },
    'mixed-rate': { type: 'string', default: '5' },
    publishers: { type: 'string', default: '32' },
    inflight: { type: 'string', default: '32' },
    'tp-members': { type: 'string', default: '1' },
    conns: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '500' },
    'storm-transport': { type: 'string', default: 'ws_json' },
    'storm-group-size': { type: 'string', default: '50' },
    hold: { type: 'string', default: '2' },
    'log-level': { type: 'string', default: 'info' },
    env: { type: 'string', multiple: true, default: [] },
    'node-arg': { type: 'string', multiple: true, default: [] },
    json: { type: 'string' },
    markdown: { type: 'string' },
    deadline: { type: 'string', default: '900' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (a.help) {
  process.stdout.write(
    'usage: bench [--scenarios ' +
      ALL.join(',') +
      '] [--engine memory|redis] [--nodes N] [--workers N] [--duration S] [--quick] [--json FILE] [--markdown FILE]\n' +
      'see loadtest/README.md for every option\n',
  );
  process.exit(0);
}

function int(name: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`bench: --${name} must be an integer in [${min}, ${max}], got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

function parseMix(raw: string): Mix {
  const mix: Mix = {};
  for (const part of raw.split(',')) {
    const [t, w] = part.split(':');
    if (!TRANSPORTS.includes(t as Transport)) {
      process.stderr.write(`bench: --mix transports are ${TRANSPORTS.join(', ')}; got "${t}"\n`);
      process.exit(2);
    }
    mix[t as Transport] = int('mix', w, 1, 1000);
  }
  return mix;
}

const quick = a.quick;
const scenarios = (a.scenarios ?? '').split(',').filter((s) => s !== '') as Scenario[];
for (const s of scenarios)
  if (!ALL.includes(s)) {
    process.stderr.write(`bench: unknown scenario "${s}" (have ${ALL.join(', ')})\n`);
    process.exit(2);
  }
const engine = a.engine === 'redis' ? 'redis' : a.engine === 'memory' ? 'memory' : (process.stderr.write('bench: --engine is memory or redis\n'), process.exit(2));
const env: Record<string, string> = {};
for (const kv of a.env ?? []) {
  const i = kv.indexOf('=');
  if (i <= 0) {
    process.stderr.write(`bench: --env wants KEY=VALUE, got "${kv}"\n`);
    process.exit(2);
  }
  env[kv.slice(0, i)] = kv.slice(i + 1);
}

const common: Common = {
  engine,
  nodes: int('nodes', a.nodes, 1, CAPS.nodes),
  workers: int('workers', a.workers, 1, CAPS.workers),
  warmupMs: int('warmup', quick ? '1' : a.warmup, 0, 60) * 1000,
  durationMs: int('duration', quick ? '3' : a.duration, 1, CAPS.durationS) * 1000,
  drainMs: int('drain', a.drain, 0, 30) * 1000,
  textBytes: int('size', a.size, 32, 4096),
  logLevel: a['log-level'] ?? 'info',
  env,
  nodeArgs: a['node-arg'] ?? [],
};
const scale = (name: string, raw: string | undefined, quickValue: number, min: number, max: number): number =>
  quick ? Math.min(quickValue, int(name, raw, min, max)) : int(name, raw, min, max);
const capMembers = (name: string, groups: number, members: number): void => {
  if (groups * members > CAPS.members) {
    process.stderr.write(`bench: ${name}: ${groups * members} members is over the cap of ${CAPS.members}\n`);
    process.exit(2);
  }
};

const deadlineS = int('deadline', a.deadline, 10, 3600);
const deadline = setTimeout(() => {
  process.stderr.write(`bench: deadline of ${deadlineS} s passed; stopping\n`);
  report();
  process.exit(3); // the exit handler in procs.ts kills what we started, by PID
}, deadlineS * 1000);
deadline.unref();

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}: stopping\n`);
    report();
    process.exit(130); // the exit handler in procs.ts kills what we started, by PID
  });

const rows: Row[] = [];
const failures: string[] = [];

function report(): void {
  const header =
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ` +
    `engine ${engine}${engine === 'redis' ? ` (${common.nodes} gateways)` : ''}; ${common.workers} client workers; ` +
    `${common.durationMs / 1000} s measured after ${common.warmupMs / 1000} s warm-up; ${common.textBytes}-byte texts`;
  process.stdout.write(`\n${header}\n\n${textTable(rows)}\n`);
  for (const f of failures) process.stdout.write(`NOT MEASURED ${f}\n`);
  if (a.json) writeFileSync(a.json, JSON.stringify({ header, rows, failures }, null, 2) + '\n');
  if (a.markdown) writeFileSync(a.markdown, `${header}\n\n${markdownTable(rows)}\n`);
}

async function run(s: Scenario): Promise<Row[]> {
  switch (s) {
    case 'fanout': {
      const groups = scale('groups', a.groups, 20, 1, 10_000);
      const members = int('members', a.members, 2, 10_000);
      capMembers(s, groups, members);
      return fanout(common, {
        name: 'fanout',
        groups,
        members,
        sendersPerGroup: int('senders', a.senders, 1, members),
        ratePerSender: int('rate', a.rate, 1, CAPS.rate),
        mix: { ws_json: 1 },
        splitByTransport: false,
      });
    }
    case 'fanout-big': {
      const groups = int('big-groups', a['big-groups'], 1, 1000);
      const members = scale('big-members', a['big-members'], 200, 2, CAPS.members);
      capMembers(s, groups, members);
      return fanout(common, {
        name: 'fanout-big',
        groups,
        members,
        sendersPerGroup: 1,
        ratePerSender: int('big-rate', a['big-rate'], 1, CAPS.rate),
        mix: { ws_json: 1 },
        splitByTransport: false,
      });
    }
    case 'mixed': {
      const groups = scale('mixed-groups', a['mixed-groups'], 10, 1, 10_000);
      const members = int('mixed-members', a['mixed-members'], 2, 10_000);
      capMembers(s, groups, members);
      return fanout(common, {
        name: 'mixed',
        groups,
        members,
        sendersPerGroup: int('mixed-senders', a['mixed-senders'], 1, members),
        ratePerSender: int('mixed-rate', a['mixed-rate'], 1, CAPS.rate),
        mix: parseMix(a.mix ?? ''),
        splitByTransport: true,
      });
    }
    case 'throughput': {
      const publishers = scale('publishers', a.publishers, 8, 1, 10_000);
      const members = int('tp-members', a['tp-members'], 1, 1000);
      capMembers(s, publishers, members);
      return throughput(common, { publishers, inflight: int('inflight', a.inflight, 1, CAPS.inflight), members });
    }
    case 'storm': {
      const transport = a['storm-transport'] as Transport;
      if (!TRANSPORTS.includes(transport)) {
        process.stderr.write(`bench: --storm-transport is one of ${TRANSPORTS.join(', ')}\n`);
        process.exit(2);
      }
      return storm(common, {
        connections: scale('conns', a.conns, 1000, 1, CAPS.members),
        concurrency: int('concurrency', a.concurrency, 1, 5000),
        transport,
        groupSize: int('storm-group-size', a['storm-group-size'], 0, 10_000),
        holdMs: int('hold', a.hold, 0, 60) * 1000,
      });
    }
  }
}

for (const s of scenarios) {
  const t0 = Date.now();
  process.stderr.write(`bench: ${s} …\n`);
  try {
    const r = await run(s);
    rows.push(...r);
    for (const row of r) process.stderr.write(`bench:   ${row.scenario}: ${row.rate}${/\//.test(row.rate) ? '' : ' msgs/s'}, p99 ${row.p99.toFixed(2)} ms (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    failures.push(`${s} (engine ${engine}): ${why.split('\n')[0]}`);
    process.stderr.write(`bench: ${s} failed: ${why}\n`);
  }
}
report();
process.exit(failures.length > 0 && rows.length === 0 ? 1 : 0);
