// make bench-compare: the gateway side by side with its peers (issue 11).
//
//   node dist/loadtest/harness/compare.js [--quick] [--docs docs/BENCHMARKS.md] [--targets bare,gateway,socket.io] …
//
// One generator (the harness's client workers, one protocol adapter per
// target) and one rate schedule, run back to back against: the bare uWS.js +
// Redis peer, the gateway (Redis engine) and Socket.IO + its Redis adapter,
// each on --nodes nodes sharing one redis-server. Rooms × members connections
// are dealt round-robin over the nodes (every room has members on every
// node); every member sends at the step's rate; each message reaches the
// room's other members. The rate doubles per step; a target stops at its
// first failed step (p99 > 50 ms, anything lost, duplicated or out of order,
// or the schedule not kept). Then: the first step on one node (bare and
// gateway: the cost of more nodes), and RSS per idle joined connection on one
// node after a join storm. Prints every step, the knees, the issue's goals as
// ratios, and (--docs) writes the tables between the markers in that file.
//
// Bounded: --deadline seconds for everything, after which it reports what it
// has and stops every process it started, by PID. Exit: 0 when it ran to the
// end (in full mode only if every goal was met: 4 otherwise), 1 when
// something broke (a target did not start, lost messages at the first step…),
// 3 at the deadline.
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { report, TARGETS, writeDocs, type Memory, type Results, type Step, type TargetName } from './compare-report.js';
import { PASSWORD, startTarget, type Target } from './compare-targets.js';
import { Histogram } from './hist.js';
import type { MemberSpec, PhaseResult, RunResult, Window } from './plan.js';
import { deal, WorkerPool } from './pool.js';
import { CpuWindow, HostWindow, rssBytes, RssSampler } from './procstat.js';
import { now, until } from './wait.js';

const { values: a } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    targets: { type: 'string', default: TARGETS.join(',') },
    nodes: { type: 'string', default: '3' },
    rooms: { type: 'string' },
    members: { type: 'string', default: '10' },
    rates: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    drain: { type: 'string' },
    size: { type: 'string', default: '64' },
    workers: { type: 'string', default: '2' },
    'mem-conns': { type: 'string' },
    'mem-idle': { type: 'string' },
    'mem-scrypt-n': { type: 'string', default: '16384' },
    'skip-steps': { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
    'skip-nodes': { type: 'boolean', default: false },
    docs: { type: 'string' },
    deadline: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (a.help) {
  process.stdout.write(
    'usage: compare [--quick] [--docs FILE] [--targets bare,gateway,socket.io] [--nodes 3] [--rooms 100] [--members 10]\n' +
      '               [--rates 2,4,8,16] [--duration 15] [--warmup 3] [--drain 2] [--size 64] [--workers 2]\n' +
      '               [--mem-conns 10000] [--mem-scrypt-n 16384] [--mem-idle 40] [--skip-steps] [--skip-nodes] [--skip-memory] [--deadline S]\n' +
      'see loadtest/README.md ("Side by side with peers")\n',
  );
  process.exit(0);
}

function int(name: string, raw: string | undefined, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`compare: --${name} must be an integer in [${min}, ${max}], got "${raw}"\n`);
    process.exit(2);
  }
  return n;
}

const quick = a.quick;
const targets = (a.targets ?? '').split(',').filter((t) => t !== '') as TargetName[];
for (const t of targets)
  if (!TARGETS.includes(t)) {
    process.stderr.write(`compare: unknown target "${t}" (have ${TARGETS.join(', ')})\n`);
    process.exit(2);
  }
const o = {
  nodes: int('nodes', a.nodes, 1, 8),
  rooms: int('rooms', a.rooms ?? (quick ? '20' : '100'), 1, 2000),
  members: int('members', a.members, 2, 100),
  rates: (a.rates ?? (quick ? '2,4' : '2,4,8,16')).split(',').map((r) => int('rates', r, 1, 1000)),
  durationMs: int('duration', a.duration ?? (quick ? '4' : '15'), 1, 120) * 1000,
  warmupMs: int('warmup', a.warmup ?? (quick ? '1' : '3'), 0, 30) * 1000,
  drainMs: int('drain', a.drain ?? (quick ? '1' : '2'), 0, 30) * 1000,
  textBytes: int('size', a.size, 48, 4096),
  workers: int('workers', a.workers, 1, 8),
  memConns: int('mem-conns', a['mem-conns'] ?? (quick ? '2000' : '10000'), 10, 50_000),
  memScryptN: int('mem-scrypt-n', a['mem-scrypt-n'], 1024, 1 << 20),
  // Idle connections after a storm: V8 gives back its grown heap (its memory reducer, ~20-30 s
  // after allocation stops) and the gateway's password process exits (SCRYPT_IDLE_SECONDS).
  memIdleS: int('mem-idle', a['mem-idle'] ?? (quick ? '5' : '40'), 0, 300),
  deadlineS: int('deadline', a.deadline ?? (quick ? '200' : '900'), 10, 3600),
};
const conns = o.rooms * o.members;
if (conns > 20_000) {
  process.stderr.write(`compare: ${conns} connections is over the cap of 20,000\n`);
  process.exit(2);
}

/** Deliveries a step asks for: every member sends `rate`, each message reaches the other members of its room. */
const nominal = (rate: number): number => conns * rate * (o.members - 1);
const MAX_P99_MS = 50;
const CONNECT_TIMEOUT_MS = 20_000;

function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    return '?';
  }
}

const results: Results = {
  quick,
  startedAt: new Date(),
  command: `make bench-compare${quick ? ' QUICK=1' : ''}`,
  machine: `nproc ${cpus().length} (${cpus()[0]?.model.trim() ?? 'cpu'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, redis-server ${redisVersion()}, shared with the generator`,
  params:
    `${o.rooms} rooms × ${o.members} members = ${conns.toLocaleString('en-US')} WebSocket connections round-robin over ${o.nodes} nodes + 1 Redis, ` +
    `${o.textBytes}-byte texts, every member sending ${o.rates.join(', ')} msgs/s (one step each: ${o.durationMs / 1000} s measured after ${o.warmupMs / 1000} s warm-up, ${o.drainMs / 1000} s drain), ` +
    `${o.workers} client processes; memory: ${o.memConns.toLocaleString('en-US')} connections in rooms of ${o.members} on one node, gateway SCRYPT_N=${o.memScryptN}`,
  steps: [],
  oneNode: [],
  memory: [],
  broken: [],
};

let finished = false;
function finish(code: number): never {
  if (!finished) {
    finished = true;
    const r = report(results, o.rates);
    process.stdout.write(`\n${r.markdown}\n`);
    // Only a run that went to the end replaces the previous one in the docs.
    if (a.docs && code !== 0) process.stdout.write(`\ncompare: the run did not complete: ${a.docs} left as it was\n`);
    else if (a.docs) {
      try {
        writeDocs(a.docs, r.markdown);
        process.stdout.write(`\ncompare: wrote the tables into ${a.docs}\n`);
      } catch (e) {
        process.stderr.write(`compare: ${e instanceof Error ? e.message : String(e)}\n`);
        code = code || 1;
      }
    }
    if (code === 0 && !quick && !r.allMet) {
      process.stdout.write('compare: not every goal is met (see the table)\n');
      code = 4;
    }
  }
  process.exit(code); // procs.ts's exit handler kills what we started, by PID; the workers exit with us
}

const deadline = setTimeout(() => {
  process.stderr.write(`compare: deadline of ${o.deadlineS} s passed; stopping\n`);
  results.broken.push(`the run passed its deadline of ${o.deadlineS} s`);
  finish(3);
}, o.deadlineS * 1000);
deadline.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    process.stderr.write(`compare: ${sig}: stopping\n`);
    results.broken.push(`stopped by ${sig}`);
    finish(130);
  });

const log = (s: string): void => void process.stderr.write(`compare: ${s}\n`);
const t0 = now();
const elapsed = (): string => `${((now() - t0) / 1000).toFixed(0)} s`;
const sum = (xs: number[]): number => xs.reduce((x, y) => x + y, 0);

/** Members: room r holds members r·M … r·M+M−1; member i talks to node i mod N (every room spans the nodes). */
function specsFor(t: Target, rooms: string[], perNode: number, senders: boolean): MemberSpec[] {
  const specs: MemberSpec[] = [];
  rooms.forEach((room, r) => {
    for (let j = 0; j < o.members; j++) {
      const i = r * o.members + j;
      specs.push({ name: `c${i}`, transport: t.transport, endpoint: i % perNode, groupId: room, sender: senders, id: i });
    }
  });
  return specs;
}

function failures(results: PhaseResult[]): { failed: number; reasons: string } {
  const reasons: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
  return {
    failed: sum(results.map((r) => r.failed)),
    reasons: Object.entries(reasons)
      .slice(0, 3)
      .map(([k, v]) => `${v}× ${k}`)
      .join('; '),
  };
}

async function connectAndJoin(pool: WorkerPool, n: number, concurrency: number): Promise<void> {
  const ms = CONNECT_TIMEOUT_MS + Math.ceil(n / 100) * 1000;
  const c = failures(await pool.all<PhaseResult>({ type: 'connect', concurrency, timeoutMs: CONNECT_TIMEOUT_MS }, 'phase', ms));
  if (c.failed > 0) throw new Error(`${c.failed} of ${n} connections failed: ${c.reasons}`);
  const j = failures(await pool.all<PhaseResult>({ type: 'join', concurrency, password: PASSWORD, timeoutMs: 60_000 }, 'phase', ms + 60_000));
  if (j.failed > 0) throw new Error(`${j.failed} of ${n} joins failed: ${j.reasons}`);
}

let runNumber = 0;

/** One step: every member sends `rate` msgs/s for warm-up + window; CPU over the window; the receivers' checks over all of it. */
async function step(t: Target, pool: WorkerPool, rate: number): Promise<Step> {
  const startAt = now() + 300;
  const w: Window = { startAt, measureFrom: startAt + o.warmupMs, endAt: startAt + o.warmupMs + o.durationMs, drainMs: o.drainMs };
  const run = ++runNumber;
  const pids = [...t.nodes.map((n) => n.pid), t.redis.pid, ...pool.pids];
  const usage = (async () => {
    await until(w.measureFrom);
    const cpu = new CpuWindow(pids);
    const host = new HostWindow();
    await until(w.endAt);
    return { pct: cpu.percents(), host: host.read() };
  })();
  const [res, u] = await Promise.all([
    pool.all<RunResult>({ type: 'fanout', window: w, ratePerSender: rate, textBytes: o.textBytes, check: run }, 'run', w.endAt + w.drainMs - now() + 30_000),
    usage,
  ]);
  const secs = o.durationMs / 1000;
  const n = t.nodes.length;
  const received = new Histogram();
  for (const r of res) for (const d of Object.values(r.received)) received.merge(d);
  const lag = new Histogram();
  for (const r of res) lag.merge(r.sendLag);
  const sentAll = sum(res.map((r) => r.sentTotal));
  const sentWindow = sum(res.map((r) => r.sentInWindow));
  const unique = sum(res.map((r) => r.check?.unique ?? 0));
  const s: Step = {
    target: t.name,
    nodes: n,
    rate,
    nominal: nominal(rate),
    deliveries: received.count / secs,
    published: sentWindow / secs,
    p50: received.quantile(0.5),
    p99: received.quantile(0.99),
    serverCpu: sum(u.pct.slice(0, n)),
    redisCpu: u.pct[n] as number,
    clientCpu: sum(u.pct.slice(n + 1)),
    hostBusy: u.host.busyPct,
    otherPct: Math.max(0, u.host.busyPct * cpus().length - sum(u.pct)),
    sendLagP99: lag.quantile(0.99),
    lost: sentAll * (o.members - 1) - unique,
    dups: sum(res.map((r) => r.check?.dups ?? 0)),
    gaps: sum(res.map((r) => r.check?.gaps ?? 0)),
    closed: sum(res.map((r) => r.closed)),
    errors: sum(res.flatMap((r) => Object.values(r.errors))),
    pass: true,
    why: [],
  };
  const why = s.why;
  if (!(s.p99 <= MAX_P99_MS)) why.push(`p99 ${s.p99.toFixed(0)} ms`);
  if (s.lost > 0) why.push(`${s.lost.toLocaleString('en-US')} lost`);
  if (s.lost < 0) why.push(`${(-s.lost).toLocaleString('en-US')} extra`);
  if (s.dups > 0) why.push(`${s.dups} duplicated or out of order`);
  if (s.gaps > 0) why.push(`${s.gaps} gaps`);
  if (s.closed > 0) why.push(`${s.closed} connections closed`);
  if (s.errors > 0) why.push(`${s.errors} errors`);
  // The generator could not keep the schedule (the host is saturated): the step did not run at its rate.
  const asked = conns * rate * secs;
  if (sentWindow < 0.95 * asked) why.push(`sent ${((sentWindow / asked) * 100).toFixed(0)}% of the schedule`);
  const dead = t.dead();
  if (dead) why.push(dead);
  s.pass = why.length === 0;
  log(
    `${t.name} ×${n} @ ${rate}/s: ${Math.round(s.deliveries)} deliveries/s, p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ms, ` +
      `servers ${s.serverCpu.toFixed(0)}% redis ${s.redisCpu.toFixed(0)}% clients ${s.clientCpu.toFixed(0)}% (other ${s.otherPct.toFixed(0)}%)` +
      `${s.pass ? '' : ` FAIL: ${why.join(', ')}`} (${elapsed()})`,
  );
  return s;
}

/** Start `name` on `nodes` nodes, connect and join every member, run `rates` until one fails. */
async function schedule(name: TargetName, nodes: number, rates: number[]): Promise<Step[]> {
  log(`${name} on ${nodes} node${nodes > 1 ? 's' : ''}: starting (${elapsed()})`);
  const t = await startTarget(name, nodes);
  const steps: Step[] = [];
  try {
    const rooms = await t.rooms(o.rooms, 4);
    const pool = await WorkerPool.start(t.endpoints, deal(specsFor(t, rooms, nodes, true), o.workers));
    try {
      await connectAndJoin(pool, conns, 100);
      for (const rate of rates) {
        const s = await step(t, pool, rate);
        steps.push(s);
        if (!s.pass) break;
      }
    } finally {
      await pool.close();
    }
  } finally {
    await t.stop();
  }
  return steps;
}

/**
 * RSS per idle joined connection: `memConns` members in rooms of `members`, all on one node, after
 * the join storm. The gateway's groups are created on a second node sharing the Redis, so the
 * measured node's scrypt work is the join storm's alone (each group's first join there runs one).
 */
async function memory(name: TargetName): Promise<Memory> {
  log(`${name}: memory, ${o.memConns} connections on one node (${elapsed()})`);
  const gateway = name === 'gateway';
  const env: Record<string, string> = gateway ? { SCRYPT_N: String(o.memScryptN), PASSWORD_QUEUE_PER_ADDRESS: '0' } : {};
  const t = await startTarget(name, gateway ? 2 : 1, env);
  try {
    const node = t.nodes[0] as Target['nodes'][number];
    // The same idle spell before the baseline as after the joins: a fresh process's start-up garbage
    // goes too (V8's memory reducer), or a server whose connections cost little would come out negative.
    await until(now() + o.memIdleS * 1000);
    const baseline = rssBytes(node.pid);
    const sampler = new RssSampler([node.pid]);
    const rooms = await t.rooms(Math.ceil(o.memConns / o.members), 8, gateway ? 1 : 0);
    const t1 = now();
    const specs = specsFor(t, rooms, 1, false).slice(0, o.memConns);
    const pool = await WorkerPool.start(t.endpoints.slice(0, 1), deal(specs, o.workers));
    try {
      await connectAndJoin(pool, specs.length, 250);
      const joinSeconds = (now() - t1) / 1000;
      // Held a moment, so RSS is read with every connection settled, not mid-handshake; then idle.
      await until(now() + 2000);
      const joined = rssBytes(node.pid);
      await until(now() + o.memIdleS * 1000);
      const after = sampler.stop()[0] as number;
      const m: Memory = {
        target: name,
        connections: specs.length,
        baselineMb: baseline / 2 ** 20,
        joinedMb: joined / 2 ** 20,
        afterMb: after / 2 ** 20,
        idleSeconds: o.memIdleS,
        peakMb: (sampler.peak[0] as number) / 2 ** 20,
        perConnKb: (after - baseline) / 1024 / specs.length,
        joinSeconds,
        note: gateway ? `SCRYPT_N=${o.memScryptN}, groups created on a second node` : '',
      };
      log(`${name}: ${m.perConnKb.toFixed(2)} KB per connection (${m.baselineMb.toFixed(0)} → ${m.afterMb.toFixed(0)} MB, peak ${m.peakMb.toFixed(0)}) (${elapsed()})`);
      return m;
    } finally {
      await pool.close();
    }
  } finally {
    await t.stop();
  }
}

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
let broken = false;

for (const name of a['skip-steps'] ? [] : targets) {
  try {
    const steps = await schedule(name, o.nodes, o.rates);
    results.steps.push(...steps);
    // Wrong at the gentlest step: not a knee, a fault (in the target or the harness).
    const first = steps[0];
    if (first && !first.pass && first.why.some((w) => !w.startsWith('p99') && !w.startsWith('sent '))) {
      broken = true;
      results.broken.push(`${name}: its first step was wrong, not slow: ${first.why.join(', ')}`);
    }
  } catch (e) {
    broken = true;
    results.broken.push(`${name}: ${why(e)}`);
    log(`${name} failed: ${why(e)}`);
  }
}

if (!a['skip-nodes'])
  for (const name of targets.filter((t) => t !== 'socket.io')) {
    try {
      results.oneNode.push(...(await schedule(name, 1, o.rates.slice(0, 1))));
    } catch (e) {
      broken = true;
      results.broken.push(`${name} on one node: ${why(e)}`);
      log(`${name} on one node failed: ${why(e)}`);
    }
  }

if (!a['skip-memory'])
  for (const name of targets) {
    try {
      results.memory.push(await memory(name));
    } catch (e) {
      broken = true;
      results.broken.push(`${name} memory: ${why(e)}`);
      log(`${name} memory failed: ${why(e)}`);
    }
  }

log(`done (${elapsed()})`);
finish(broken ? 1 : 0);

