// The scenarios: each starts its own gateways, its own client workers, runs a
// bounded window, and turns what it saw into table rows.
import { cpus } from 'node:os';
import { WsJsonMember, type Endpoint, type Transport } from './clients.js';
import { Histogram } from './hist.js';
import { limit, mb, measure, start, total, type Usage } from './measure.js';
import type { MemberSpec, PhaseResult, RunResult, Window } from './plan.js';
import { deal, WorkerPool } from './pool.js';
import { Cluster, type Gateway } from './procs.js';
import { rssBytes } from './procstat.js';
import { delta, maxOf } from './scrape.js';
import { now, until } from './wait.js';

export interface Common {
  engine: 'memory' | 'redis';
  nodes: number;
  workers: number;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  textBytes: number;
  logLevel: string;
  env: Record<string, string>;
  /** Extra node flags for every gateway (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  nodeArgs: string[];
}

export interface Row {
  scenario: string;
  params: string;
  rate: string;
  p50: number;
  p95: number;
  p99: number;
  gatewayCpu: number;
  gatewayRssMb: number;
  rssPerConnKb: number;
  clientCpu: number;
  limit: string;
  notes: string;
}

/** Not a password anyone uses: the one every bench group shares. */
const PASSWORD = 'bench-password';
const CONNECT_TIMEOUT_MS = 20_000;

export type Mix = Partial<Record<Transport, number>>;

async function withCluster<T>(c: Common, f: (cluster: Cluster, endpoints: Endpoint[]) => Promise<T>): Promise<T> {
  const cluster = await Cluster.start(c.engine, c.nodes, c.logLevel, c.env, c.nodeArgs);
  try {
    for (const g of cluster.gateways) g.baselineRss = rssBytes(g.pid);
    const endpoints = cluster.gateways.map((g) => ({ host: '127.0.0.1', wsPort: g.port, tcpPort: g.tcpPort }));
    return await f(cluster, endpoints);
  } finally {
    await cluster.stop();
  }
}

/** Create `n` groups through one JSON connection (create leaves the previous group first). */
async function createGroups(gw: Gateway, n: number): Promise<string[]> {
  const noop = { chat: () => undefined, ack: () => undefined, error: () => undefined };
  const admin = new WsJsonMember('bench-admin', { host: '127.0.0.1', wsPort: gw.port, tcpPort: gw.tcpPort }, noop);
  await admin.connect(CONNECT_TIMEOUT_MS);
  const ids: string[] = [];
  try {
    for (let i = 0; i < n; i++) ids.push(await admin.create(PASSWORD, 10_000));
  } finally {
    admin.terminate();
  }
  return ids;
}

/** Member j of every group gets the transport the mix deals it (e.g. json:10,tcp:6,text:4 over 20). */
function transportFor(j: number, mix: Mix): Transport {
  const entries = Object.entries(mix).filter(([, w]) => (w ?? 0) > 0) as Array<[Transport, number]>;
  const weight = total(entries.map(([, w]) => w));
  let k = j % weight;
  for (const [t, w] of entries) {
    if (k < w) return t;
    k -= w;
  }
  return 'ws_json';
}

function phaseSummary(results: PhaseResult[]): { ok: number; failed: number; reasons: string; hist: Histogram } {
  const hist = new Histogram();
  const reasons: Record<string, number> = {};
  for (const r of results) {
    hist.merge(r.latency);
    for (const [k, v] of Object.entries(r.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
  }
  const text = Object.entries(reasons)
    .slice(0, 3)
    .map(([k, v]) => `${v}× ${k}`)
    .join('; ');
  return { ok: total(results.map((r) => r.ok)), failed: total(results.map((r) => r.failed)), reasons: text, hist };
}

async function connectAndJoin(pool: WorkerPool, members: number): Promise<void> {
  const concurrency = 100;
  const ms = CONNECT_TIMEOUT_MS + Math.ceil(members / 200) * 1000;
  const c = phaseSummary(await pool.all<PhaseResult>({ type: 'connect', concurrency, timeoutMs: CONNECT_TIMEOUT_MS }, 'phase', ms));
  if (c.failed > 0) throw new Error(`${c.failed} of ${members} connections failed: ${c.reasons}`);
  const j = phaseSummary(await pool.all<PhaseResult>({ type: 'join', concurrency, password: PASSWORD, timeoutMs: CONNECT_TIMEOUT_MS }, 'phase', ms));
  if (j.failed > 0) throw new Error(`${j.failed} of ${members} joins failed: ${j.reasons}`);
}

function window(c: Common): Window {
  const startAt = now() + 300;
  const measureFrom = startAt + c.warmupMs;
  return { startAt, measureFrom, endAt: measureFrom + c.durationMs, drainMs: c.drainMs };
}

const perConnKb = (u: Usage, gws: Gateway[], conns: number): number =>
  conns > 0 ? (total(u.gatewayRss) - total(gws.map((g) => g.baselineRss))) / 1024 / conns : NaN;

function serverNotes(c: Common, u: Usage): string[] {
  // Whatever else ran on the host meanwhile (other people's tests, the kernel's softirq work) shows up as "other".
  const ours = total(u.gatewayCpu) + (Number.isNaN(u.redisCpu) ? 0 : u.redisCpu) + total(u.clientCpu);
  const other = Math.max(0, u.hostBusy * cpus().length - ours);
  const notes: string[] = [`host ${u.hostBusy.toFixed(0)}% busy (other ${other.toFixed(0)}%${u.hostSteal >= 1 ? `, steal ${u.hostSteal.toFixed(0)}%` : ''})`];
  const lag = maxOf(u.after, 'nodejs_eventloop_lag_p99_seconds') * 1000;
  if (!Number.isNaN(lag)) notes.push(`evloop p99 ${lag.toFixed(1)} ms`);
  // The gateway's own view: CPU per message it stored, and publish → written to its members.
  const published = delta(u.before, u.after, 'chat_messages_published_total');
  const deliveredFrames = delta(u.before, u.after, 'chat_messages_delivered_total');
  const gwCpuUs = (total(u.gatewayCpu) / 100) * u.seconds * 1e6;
  // Per message only means something under load: at a few msgs/s the idle cost (timers, GC) dominates.
  if (published > 0 && deliveredFrames > 0) notes.push(`gw ${(gwCpuUs / (published + deliveredFrames)).toFixed(2)} µs CPU per publish+delivery`);
  else if (published > 0) notes.push(`gw ${(gwCpuUs / published).toFixed(1)} µs CPU/publish`);
  const fanCount = delta(u.before, u.after, 'chat_fanout_latency_seconds_count');
  if (fanCount > 0) notes.push(`server fan-out mean ${((delta(u.before, u.after, 'chat_fanout_latency_seconds_sum') / fanCount) * 1000).toFixed(2)} ms`);
  const slow = delta(u.before, u.after, 'chat_slow_consumer_disconnects_total');
  if (slow > 0) notes.push(`${slow} slow-consumer closes`);
  const engineErrors = delta(u.before, u.after, 'chat_engine_errors_total');
  if (engineErrors > 0) notes.push(`${engineErrors} engine errors`);
  if (c.engine === 'redis') notes.push(`redis ${u.redisCpu.toFixed(0)}% CPU ${mb(u.redisRss).toFixed(0)} MB`);
  if (u.gatewayCpu.length > 1) notes.push(`per node ${u.gatewayCpu.map((x) => x.toFixed(0)).join('/')}%`);
  return notes;
}

function clientNotes(results: RunResult[]): string[] {
  const notes: string[] = [];
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const e = Object.entries(errors).map(([k, v]) => `${v} ${k}`);
  if (e.length > 0) notes.push(`errors: ${e.join(', ')}`);
  const closed = total(results.map((r) => r.closed));
  if (closed > 0) notes.push(`${closed} conns closed`);
  return notes;
}

export interface FanoutOptions {
  name: string;
  groups: number;
  members: number;
  sendersPerGroup: number;
  ratePerSender: number;
  mix: Mix;
  /** Mixed transports: one row per receiving transport. */
  splitByTransport: boolean;
}

/** (a) and (d): G groups × M members, senders at a fixed rate; latency from send to every other member. */
export async function fanout(c: Common, o: FanoutOptions): Promise<Row[]> {
  return withCluster(c, async (cluster, endpoints) => {
    const ids = await createGroups(cluster.gateways[0] as Gateway, o.groups);
    const specs: MemberSpec[] = [];
    ids.forEach((groupId, g) => {
      for (let j = 0; j < o.members; j++) {
        const transport = transportFor(j, o.mix);
        // Senders: the first member of each transport in turn, so mixed groups have senders on each.
        specs.push({ name: `u${g}m${j}`, transport, endpoint: specs.length % endpoints.length, groupId, sender: false });
      }
    });
    // Pick senders spread across transports: members 0, 1, … of each group in mix order.
    for (let g = 0; g < o.groups; g++) {
      const group = specs.slice(g * o.members, (g + 1) * o.members);
      const seen = new Set<Transport>();
      let chosen = 0;
      for (const s of group) if (chosen < o.sendersPerGroup && !seen.has(s.transport)) (s.sender = true), seen.add(s.transport), chosen++;
      for (const s of group) if (chosen < o.sendersPerGroup && !s.sender) (s.sender = true), chosen++;
    }
    const pool = await WorkerPool.start(endpoints, deal(specs, c.workers));
    try {
      await connectAndJoin(pool, specs.length);
      const w = window(c);
      const runMs = w.endAt + w.drainMs - now() + 30_000;
      const [results, u] = await Promise.all([
        pool.all<RunResult>({ type: 'fanout', window: w, ratePerSender: o.ratePerSender, textBytes: c.textBytes }, 'run', runMs),
        measure(cluster, pool.pids, w.measureFrom, w.endAt),
      ]);
      const secs = c.durationMs / 1000;
      const sent = total(results.map((r) => r.sentInWindow));
      const expected = sent * (o.members - 1);
      const byTransport = new Map<Transport, Histogram>();
      for (const r of results)
        for (const [t, d] of Object.entries(r.received)) {
          const h = byTransport.get(t as Transport) ?? new Histogram();
          h.merge(d);
          byTransport.set(t as Transport, h);
        }
      const all = new Histogram();
      for (const h of byTransport.values()) all.merge(h.toData());
      const lag = new Histogram();
      for (const r of results) lag.merge(r.sendLag);
      const deliveredPct = expected > 0 ? (all.count / expected) * 100 : NaN;
      const met = deliveredPct >= 99.9 && lag.quantile(0.99) < 20 && all.quantile(0.99) < 50;
      const conns = specs.length;
      const notes = [
        `pub ${Math.round(sent / secs)}/s`,
        `delivered ${deliveredPct.toFixed(2)}%`,
        ...(lag.quantile(0.99) >= 5 ? [`send lag p99 ${lag.quantile(0.99).toFixed(0)} ms`] : []),
        ...serverNotes(c, u),
        ...clientNotes(results),
      ];
      const base = {
        gatewayCpu: total(u.gatewayCpu),
        gatewayRssMb: mb(total(u.gatewayRss)),
        rssPerConnKb: perConnKb(u, cluster.gateways, conns),
        clientCpu: total(u.clientCpu),
        limit: limit(u, met),
      };
      const params = `${o.groups}g×${o.members}m, ${o.sendersPerGroup}×${o.ratePerSender}/s/group${mixLabel(o.mix)}${nodesLabel(c)}`;
      const row = (scenario: string, h: Histogram, extra: string[]): Row => ({
        scenario,
        params,
        rate: `${fmtInt(h.count / secs)}`,
        p50: h.quantile(0.5),
        p95: h.quantile(0.95),
        p99: h.quantile(0.99),
        ...base,
        notes: extra.join('; '),
      });
      const rows = [row(o.name, all, notes)];
      if (o.splitByTransport) for (const [t, h] of byTransport) rows.push(row(`${o.name} → ${t}`, h, [`received over ${t}`]));
      return rows;
    } finally {
      await pool.close();
    }
  });
}

export interface ThroughputOptions {
  publishers: number;
  inflight: number;
  /** Members per publisher's group (1 = the publisher alone: pure ingest). */
  members: number;
}

/** (c): closed loop, each publisher keeps `inflight` unacknowledged sends; acks/s is the sustained publish rate. */
export async function throughput(c: Common, o: ThroughputOptions): Promise<Row[]> {
  return withCluster(c, async (cluster, endpoints) => {
    const ids = await createGroups(cluster.gateways[0] as Gateway, o.publishers);
    const specs: MemberSpec[] = [];
    ids.forEach((groupId, g) => {
      for (let j = 0; j < o.members; j++)
        specs.push({ name: `p${g}m${j}`, transport: 'ws_json', endpoint: specs.length % endpoints.length, groupId, sender: j === 0 });
    });
    const pool = await WorkerPool.start(endpoints, deal(specs, c.workers));
    try {
      await connectAndJoin(pool, specs.length);
      const w = window(c);
      const runMs = w.endAt + w.drainMs - now() + 30_000;
      const [results, u] = await Promise.all([
        pool.all<RunResult>({ type: 'flood', window: w, inflight: o.inflight, textBytes: c.textBytes }, 'run', runMs),
        measure(cluster, pool.pids, w.measureFrom, w.endAt),
      ]);
      const secs = c.durationMs / 1000;
      const acks = new Histogram();
      for (const r of results) acks.merge(r.acks);
      const received = new Histogram();
      for (const r of results) for (const d of Object.values(r.received)) received.merge(d);
      const published = delta(u.before, u.after, 'chat_messages_published_total');
      const notes = [
        `server published ${fmtInt(published / u.seconds)}/s`,
        ...(o.members > 1 ? [`delivered ${fmtInt(received.count / secs)}/s, p99 ${received.quantile(0.99).toFixed(1)} ms`] : []),
        ...serverNotes(c, u),
        ...clientNotes(results),
      ];
      return [
        {
          scenario: 'throughput',
          params: `${o.publishers} pubs × ${o.inflight} in flight, ${o.members === 1 ? 'solo groups' : `${o.members}m groups`}${nodesLabel(c)}`,
          rate: fmtInt(acks.count / secs),
          p50: acks.quantile(0.5),
          p95: acks.quantile(0.95),
          p99: acks.quantile(0.99),
          gatewayCpu: total(u.gatewayCpu),
          gatewayRssMb: mb(total(u.gatewayRss)),
          // A handful of connections: RSS here is history and buffers, not a per-connection cost.
          rssPerConnKb: NaN,
          clientCpu: total(u.clientCpu),
          limit: limit(u, false),
          notes: notes.join('; '),
        },
      ];
    } finally {
      await pool.close();
    }
  });
}

export interface StormOptions {
  connections: number;
  /** Connects in flight at once, over all workers. */
  concurrency: number;
  transport: Transport;
  /** Members per group for the join phase (0 = stay at the menu). */
  groupSize: number;
  holdMs: number;
}

/** (b): open C connections in batches; connect rate, then join rate; RSS per connection after each. */
export async function storm(c: Common, o: StormOptions): Promise<Row[]> {
  return withCluster(c, async (cluster, endpoints) => {
    const groups = o.groupSize > 0 ? Math.ceil(o.connections / o.groupSize) : 0;
    const ids = groups > 0 ? await createGroups(cluster.gateways[0] as Gateway, groups) : [];
    const specs: MemberSpec[] = Array.from({ length: o.connections }, (_, i) => ({
      name: `s${i}`,
      transport: o.transport,
      endpoint: i % endpoints.length,
      groupId: ids[Math.floor(i / Math.max(1, o.groupSize))] ?? '0',
      sender: false,
    }));
    const pool = await WorkerPool.start(endpoints, deal(specs, c.workers));
    const perWorker = Math.max(1, Math.ceil(o.concurrency / pool.size));
    const phaseMs = 30_000 + Math.ceil(o.connections / 100) * 1000;
    const rows: Row[] = [];
    try {
      const run = async (name: 'connect' | 'join'): Promise<Row> => {
        const probe = start(cluster, pool.pids);
        const t0 = now();
        const msg =
          name === 'connect'
            ? ({ type: 'connect', concurrency: perWorker, timeoutMs: CONNECT_TIMEOUT_MS } as const)
            : ({ type: 'join', concurrency: perWorker, password: PASSWORD, timeoutMs: CONNECT_TIMEOUT_MS } as const);
        const s = phaseSummary(await pool.all<PhaseResult>(msg, 'phase', phaseMs));
        const wall = (now() - t0) / 1000;
        probe.freezeCpu();
        // Hold the connections a moment so RSS is read with them settled, not mid-handshake.
        await until(now() + o.holdMs);
        const u = await probe.stop();
        const notes = [
          `${fmtInt(s.ok)} ok in ${wall.toFixed(1)} s`,
          ...(s.failed > 0 ? [`${s.failed} failed: ${s.reasons}`] : []),
          `peak RSS ${mb(total(u.gatewayPeakRss)).toFixed(0)} MB`,
          ...(name === 'join' ? [`password-cache hits ${fmtInt(delta(u.before, u.after, 'chat_auth_cache_hits_total'))} of ${fmtInt(s.ok)} joins`] : []),
          ...serverNotes(c, u),
        ];
        return {
          scenario: `storm ${name}`,
          params: `${fmtInt(o.connections)} ${o.transport}, ${o.concurrency} at once${name === 'join' ? `, ${o.groupSize}/group` : ''}${nodesLabel(c)}`,
          rate: `${fmtInt(s.ok / wall)} ${name === 'connect' ? 'conn' : 'joins'}/s`,
          p50: s.hist.quantile(0.5),
          p95: s.hist.quantile(0.95),
          p99: s.hist.quantile(0.99),
          gatewayCpu: total(u.gatewayCpu),
          gatewayRssMb: mb(total(u.gatewayRss)),
          rssPerConnKb: perConnKb(u, cluster.gateways, s.ok),
          clientCpu: total(u.clientCpu),
          limit: limit(u, false),
          notes: notes.join('; '),
        };
      };
      rows.push(await run('connect'));
      if (o.groupSize > 0) rows.push(await run('join'));
    } finally {
      await pool.close();
    }
    return rows;
  });
}

export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const nodesLabel = (c: Common): string => (c.engine === 'redis' ? `, redis ×${c.nodes} nodes` : '');
function mixLabel(mix: Mix): string {
  const e = Object.entries(mix).filter(([, w]) => (w ?? 0) > 0);
  return e.length === 1 && e[0]?.[0] === 'ws_json' ? '' : `, ${e.map(([t, w]) => `${t}:${w}`).join(' ')}`;
}

