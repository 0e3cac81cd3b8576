// The chaos scenarios. Each starts its own cluster and client fleet, puts the fleet under
// steady load, injects one fault, lets the fleet recover, stops sending, waits for every
// member to catch up, and checks every member seq by seq against the store (check.ts).
// Each step has a deadline, so a scenario always ends; cleanup runs whatever happened.
import { duplicated, lost, type CheckResult } from './check.js';
import { ChaosCluster, type ClusterOptions } from './cluster.js';
import { Fleet, type FleetStats } from './fleet.js';
import { quantile } from './latency.js';
import { Child } from './child.js';
import type { FloodTarget, FromFlood, ToFlood } from './flood.js';
import type { FromFuzzer, ToFuzzer } from './fuzzer.js';
import { LineClient, WsClient } from '../helpers/clients.js';
import { CONTROL } from '../helpers/fuzz-gen.js';
import { until } from '../helpers/wait.js';
import type { RedisServer } from '../helpers/redis.js';
import { groupKeys } from '../../src/engine/redis/keys.js';

export interface Load {
  groups: number;
  members: number;
  /** Messages a second per member. */
  rate: number;
  /** Client worker processes. */
  processes: number;
  balancers: number;
}

export interface Row {
  scenario: string;
  load: Load;
  fault: string;
  result: CheckResult;
  stats: FleetStats;
  /** Longest a member was cut off (close → resumed), or the scenario's own measure. */
  maxRecoveryMs: number;
  /** Send → ack latency (ms) over a steady window before the fault. */
  steadyAck: { p50: number; p99: number };
  /** CPU seconds redis-server used over that window (appendfsync's cost shows here and in the latency). */
  redisCpuSeconds: number;
  peakRssBytes: number[];
  /** Sends still unacked after the stop deadline; members still behind after the settle deadline. */
  unackedAtEnd: number;
  behindAtEnd: number;
  notes: string[];
  /** What the stated guarantees forbid and happened. Empty = pass. */
  violations: string[];
  seconds: number;
}

export interface ScenarioContext {
  cluster: ChaosCluster;
  fleet: Fleet;
  load: Load;
  notes: string[];
  violations: string[];
  /** Set by the fault: the recovery measure for the table (else the fleet's longest close → resume). */
  recoveryMs?: number;
}

export interface Scenario {
  name: string;
  fault: string;
  cluster: Partial<ClusterOptions>;
  /** Lost acked messages are not a violation (Redis kill with everysec: reported, not promised). */
  allowAckedLoss?: boolean;
  /**
   * Sends refused `unavailable` may have been stored and delivered live, then lost with a master
   * (their seq reused): reported, not a violation; an acked message lost still is (REDIS_WAIT_REPLICAS).
   */
  allowUnackedLoss?: boolean;
  run(ctx: ScenarioContext): Promise<void>;
}

const DEFAULT_CLUSTER: ClusterOptions = { gateways: 3, balancers: 1, fsync: 'everysec', drainSeconds: 3 };

/** Wait until the fleet has `n` more acks than now (load flowing), with a deadline. */
export async function acksGrow(fleet: Fleet, n: number, ms: number, what: string): Promise<void> {
  const base = (await fleet.stats()).acked;
  await until(async () => (await fleet.stats()).acked >= base + n, ms, `${n} more acks (${what})`);
}

/** Wait until no member is cut off and every member is in its group again. */
/**
 * Wait until every member is in its group and no one is cut off. `minResumes`: also wait for
 * that many resumes, so that a poll taken before the clients noticed a fault (a kill's RST
 * still in flight) does not count as "all back".
 */
export async function allBack(fleet: Fleet, ms: number, minResumes = 0): Promise<FleetStats> {
  let last: FleetStats | null = null;
  try {
    await until(
      async () => {
        last = await fleet.stats();
        return last.down === 0 && last.connected === last.members && last.resumes >= minResumes;
      },
      ms,
      'every member to be back in its group',
    );
  } catch (e) {
    const s = last as FleetStats | null;
    throw new Error(
      `${e instanceof Error ? e.message : String(e)}: ${s ? `${s.connected} of ${s.members} in their group, ${s.down} cut off, ${s.resumes} resumes (${minResumes} wanted), ${s.pending} sends pending; closes ${fmtCodes(s.closes)}; errors ${fmtCodes(s.errors)}; failed reconnects ${fmtCodes(s.connectFailures)}` : 'no stats'}`,
    );
  }
  return last as unknown as FleetStats;
}

const fmtCodes = (o: Record<string, number>): string =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}×${v}`)
    .join(' ');

export async function runScenario(s: Scenario, load: Load, log: (line: string) => void): Promise<Row> {
  const t0 = Date.now();
  const opts: ClusterOptions = { ...DEFAULT_CLUSTER, balancers: load.balancers, ...s.cluster };
  log(
    `[${s.name}] starting ${opts.redisCluster ? `a Redis Cluster (${opts.redisCluster.masters} masters + ${opts.redisCluster.masters} replicas)` : `redis (appendfsync ${opts.fsync})`}, ${opts.gateways} gateways, ${opts.balancers} HAProxy`,
  );
  const cluster = await ChaosCluster.start(opts);
  let fleet: Fleet | null = null;
  try {
    log(`[${s.name}] ${load.groups} groups × ${load.members} members over ${load.processes} client processes`);
    fleet = await Fleet.start(cluster.urls, load.groups, load.members, load.processes);
    const members = load.groups * load.members;
    const perSec = members * load.rate;
    fleet.start(load.rate);
    await acksGrow(fleet, Math.ceil(perSec * 2), 60_000, 'warm-up');
    // A steady window before the fault: ack latency and Redis CPU at this load.
    fleet.markLatency();
    const cpu0 = cluster.redisCpuSeconds();
    await acksGrow(fleet, Math.ceil(perSec * 5), 60_000, 'steady window');
    const steadyStats = await fleet.stats();
    const redisCpuSeconds = cluster.redisCpuSeconds() - cpu0;
    const steadyAck = { p50: quantile(steadyStats.ackLatency, 0.5), p99: quantile(steadyStats.ackLatency, 0.99) };
    const ctx: ScenarioContext = { cluster, fleet, load, notes: [], violations: [] };
    log(`[${s.name}] fault: ${s.fault}`);
    await s.run(ctx);
    const back = await allBack(fleet, 60_000);
    // A little more steady load after the recovery, then stop and settle.
    await acksGrow(fleet, Math.ceil(perSec * 2), 60_000, 'after recovery');
    const unacked = await fleet.stopSending(30_000);
    const behind = await fleet.settle(30_000);
    const result = await fleet.check(cluster.storeTarget);
    const stats = await fleet.stats();
    cluster.sample();
    const violations = [...ctx.violations];
    const lossOk = s.allowAckedLoss === true || s.allowUnackedLoss === true;
    if (result.ackedLost > 0 && !s.allowAckedLoss) violations.push(`${result.ackedLost} acked message(s) lost`);
    if (result.missing > 0 && !s.allowUnackedLoss && !(s.allowAckedLoss && result.missing <= result.ackedLost * members)) violations.push(`${result.missing} owed deliveries missing`);
    if (duplicated(result) > 0) violations.push(`${result.dupStored} stored twice, ${result.dupDelivered} delivered twice`);
    if (result.outOfOrder > 0) violations.push(`${result.outOfOrder} out of order`);
    if ((result.mismatched > 0 || result.phantom > 0) && !lossOk) violations.push(`${result.mismatched} mismatched, ${result.phantom} phantom`);
    if (unacked > 0) violations.push(`${unacked} send(s) never acked`);
    if (stats.gaps > 0 && !lossOk) violations.push(`clients reported ${stats.gaps} gap(s)`);
    if (behind > 0 && !s.allowUnackedLoss) violations.push(`${behind} member(s) still behind at the end`);
    if (s.allowUnackedLoss && (result.mismatched > 0 || result.missing > 0 || behind > 0))
      ctx.notes.push(
        `not acked, yet seen: ${result.mismatched} delivered seq(s) later reused by another message (a refused send stored and delivered live, then lost with the master), ${result.missing} owed deliveries missing, ${stats.gaps} gap(s), ${behind} member(s) behind at the end`,
      );
    if (stats.foreign > 0) violations.push(`${stats.foreign} message(s) reached members with a text no member sent (or a control byte)`);
    void back;
    const row: Row = {
      scenario: s.name,
      load,
      fault: s.fault,
      result,
      stats,
      maxRecoveryMs: ctx.recoveryMs ?? stats.maxRecoveryMs,
      steadyAck,
      redisCpuSeconds,
      peakRssBytes: cluster.rss.map((r) => r.peak),
      unackedAtEnd: unacked,
      behindAtEnd: behind,
      notes: ctx.notes,
      violations,
      seconds: (Date.now() - t0) / 1000,
    };
    log(
      `[${s.name}] sent ${result.sent} acked ${result.acked} delivered ${result.delivered} lost ${lost(result)} dup ${duplicated(result)}; ` +
        `closes ${fmtCodes(stats.closes) || '-'}; errors ${fmtCodes(stats.errors) || '-'}; ${violations.length === 0 ? 'PASS' : `FAIL: ${violations.join('; ')}`}`,
    );
    for (const x of result.samples) log(`[${s.name}]   ${x}`);
    for (const l of balancerEvents(cluster)) log(`[${s.name}]   haproxy: ${l}`);
    return row;
  } catch (e) {
    // What the gateways said last at warn level or above, to go with the failure.
    cluster.gws.forEach((g, i) => {
      const bad = g.output.filter((l) => /"level":(4|5|6)0/.test(l));
      const kinds = new Map<string, number>();
      for (const l of bad) {
        const m = /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 80);
        kinds.set(m, (kinds.get(m) ?? 0) + 1);
      }
      log(`[${s.name}] gw${i + 1} warnings/errors: ${[...kinds].map(([m, n]) => `${m} ×${n}`).join('; ') || 'none'}`);
      const last = bad.filter((l) => /"level":(5|6)0/.test(l)).slice(-2);
      for (const l of last) log(`[${s.name}]   ${l.slice(0, 600)}`);
    });
    for (const l of balancerEvents(cluster)) log(`[${s.name}]   haproxy: ${l}`);
    throw e;
  } finally {
    await fleet?.stop().catch(() => undefined);
    await cluster.stop();
  }
}

export { fmtCodes };

/** HAProxy's server state changes (DOWN/UP/NOLB, with the check's reason), for the log. */
export function balancerEvents(cluster: ChaosCluster): string[] {
  return cluster.lbs.flatMap((l, i) =>
    l.output
      .join('')
      .split('\n')
      .filter((x) => /Server gateways_(ws|tcp)\/gw\d+ is /.test(x) && x.includes('gateways_ws'))
      .map((x) => `lb${i + 1} ${x.replace(/^.*Server /, '').slice(0, 160)}`),
  );
}

// ---- the faults ----

/** Rolling SIGTERM restart of every gateway, each after the previous one is ready (UP in every balancer) again. */
export const rollingRestart: Scenario = {
  name: 'rolling restart',
  fault: 'SIGTERM each gateway in turn, restart it, wait until it is UP again',
  cluster: {},
  async run(ctx) {
    const { cluster } = ctx;
    for (let i = 0; i < cluster.gws.length; i++) {
      const t = Date.now();
      const exit = await cluster.stopGateway(i, 'SIGTERM');
      if (exit.code !== 0) ctx.violations.push(`gw${i + 1} exited ${exit.code ?? exit.signal} after SIGTERM`);
      await cluster.restartGateway(i);
      await cluster.waitBalancers([`gw${i + 1}`], 'UP', 30_000);
      ctx.notes.push(`gw${i + 1}: drained, restarted and UP in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    const s = await ctx.fleet.stats();
    const other = Object.entries(s.closes).filter(([code]) => code !== '1012');
    if (other.length > 0) ctx.violations.push(`closes other than 1012: ${fmtCodes(Object.fromEntries(other))}`);
    if ((s.closes['1012'] ?? 0) === 0) ctx.violations.push('no client saw a 1012 close');
  },
};

/** kill -9 the busiest gateway; every client it held comes back on the others. */
export function killGateway(minOnKilled: number): Scenario {
  return {
    name: 'kill -9 gateway',
    fault: 'SIGKILL the gateway holding the most clients',
    cluster: {},
    async run(ctx) {
      const { cluster, fleet } = ctx;
      const counts = await Promise.all(cluster.gws.map((_, i) => cluster.connections(i)));
      const victim = counts.indexOf(Math.max(...counts));
      const held = counts[victim] as number;
      ctx.notes.push(`gw${victim + 1} held ${held} of ${counts.reduce((a, b) => a + b, 0)} connections when killed`);
      if (held < minOnKilled) ctx.violations.push(`only ${held} clients on the killed node (at least ${minOnKilled} wanted)`);
      // Resumes so far (none in a fresh run; counted, so earlier ones cannot stand in for these).
      const resumedBefore = (await fleet.stats()).resumes;
      const t = Date.now();
      await cluster.stopGateway(victim, 'SIGKILL');
      let s: FleetStats;
      try {
        s = await allBack(fleet, 120_000, resumedBefore + held);
      } catch (e) {
        ctx.violations.push(e instanceof Error ? e.message : String(e));
        s = await fleet.stats();
      }
      ctx.recoveryMs = s.lastBackAt > 0 ? s.lastBackAt - t : 0;
      const resumes = s.resumes - resumedBefore;
      ctx.notes.push(`last client back ${(ctx.recoveryMs / 1000).toFixed(2)} s after the kill; ${resumes} resumes`);
      if (resumes < held) ctx.violations.push(`${resumes} resumes for ${held} clients cut off`);
    },
  };
}

/** SIGSTOP Redis for `seconds`, then SIGCONT. */
export function freezeRedis(seconds: number): Scenario {
  return {
    name: 'redis frozen',
    fault: `SIGSTOP redis-server for ${seconds} s, then SIGCONT`,
    cluster: {},
    async run(ctx) {
      const { cluster } = ctx;
      cluster.sample();
      const before = cluster.rss.map((r) => r.now);
      cluster.freezeRedis();
      const t = Date.now();
      let sawNotReady = false;
      let lbDown = false;
      let refused = false;
      try {
        // Each gateway's /readyz turns 503 within its ping timeout.
        await until(async () => (await Promise.all(cluster.gws.map((_, i) => cluster.readyz(i)))).every((s) => s === 503), seconds * 1000 - 1000, 'every /readyz 503');
        sawNotReady = true;
        await cluster.waitBalancers(cluster.gws.map((_, i) => `gw${i + 1}`), 'DOWN', Math.max(1000, seconds * 1000 - (Date.now() - t) - 500));
        lbDown = true;
        // A new client now gets no menu from any gateway: the balancer answers 503 itself.
        refused = await WsClient.connect(cluster.urls[0] as string, 'chat.json').then(
          (c) => {
            c.close();
            return false;
          },
          () => true,
        );
      } catch (e) {
        ctx.notes.push(`during the freeze: ${e instanceof Error ? e.message : String(e)}`);
      }
      // Hold the freeze for the whole window (measured from SIGSTOP), sampling memory.
      await until(() => {
        cluster.sample();
        return Date.now() - t >= seconds * 1000;
      }, seconds * 1000 + 2000, 'the freeze window');
      cluster.sample();
      const during = cluster.rss.map((r) => r.now);
      cluster.thawRedis();
      const thawed = Date.now();
      await until(async () => (await Promise.all(cluster.gws.map((_, i) => cluster.readyz(i)))).every((s) => s === 200), 30_000, 'every /readyz 200 after SIGCONT');
      await cluster.waitBalancers(cluster.gws.map((_, i) => `gw${i + 1}`), 'UP', 30_000);
      ctx.recoveryMs = Date.now() - thawed;
      ctx.notes.push(`ready again ${((Date.now() - thawed) / 1000).toFixed(1)} s after SIGCONT`);
      const refusedSends = (await Promise.all(cluster.gws.map((_, i) => cluster.metric(i, 'chat_engine_errors_total', 'op="publish"')))).reduce((a, b) => a + b, 0);
      ctx.notes.push(`${refusedSends} send refusals (\`unavailable\`, first tries and retries; chat_engine_errors_total{op="publish"}), each retried by its client with the same id`);
      if (refusedSends === 0) ctx.violations.push('no send was answered `unavailable` during the freeze');
      ctx.notes.push(`RSS before/at the end of the freeze (MB): ${before.map((b, i) => `${mb(b)}/${mb(during[i] ?? 0)}`).join(', ')}`);
      if (!sawNotReady) ctx.violations.push('/readyz did not turn 503 on every gateway during the freeze');
      if (!lbDown) ctx.violations.push('HAProxy did not take every gateway out during the freeze');
      if (!refused) ctx.violations.push('a new client was let in during the freeze');
      during.forEach((d, i) => {
        const b = before[i] ?? 0;
        if (d > b + 200 * 1024 * 1024) ctx.violations.push(`gw${i + 1} RSS grew from ${mb(b)} to ${mb(d)} MB during the freeze`);
      });
    },
  };
}

/** kill -9 Redis and start it again from its AOF. */
export function killRedis(fsync: 'everysec' | 'always'): Scenario {
  return {
    name: `redis kill -9 (${fsync})`,
    fault: `SIGKILL redis-server, restart from AOF (appendfsync ${fsync})`,
    cluster: { fsync },
    allowAckedLoss: fsync === 'everysec',
    async run(ctx) {
      const { cluster } = ctx;
      const t = Date.now();
      await cluster.redis.restart('SIGKILL');
      await until(async () => (await Promise.all(cluster.gws.map((_, i) => cluster.readyz(i)))).every((s) => s === 200), 30_000, 'every /readyz 200 after the restart');
      ctx.recoveryMs = Date.now() - t;
      ctx.notes.push(`redis back and every gateway ready ${((Date.now() - t) / 1000).toFixed(1)} s after the kill`);
    },
  };
}

/**
 * Scenario 8: a Redis Cluster (3 masters + 3 replicas) under load; `kill -9` the master serving
 * the most of the fleet's groups, its replica is promoted (cluster-node-timeout 1 s) and the
 * gateways follow. `waitReplicas` > 0 runs the gateways with REDIS_WAIT_REPLICAS (an ack only
 * once a replica has the message); then no acked message may be lost. Without it, replication
 * is asynchronous and the loss is measured, not promised.
 */
export function clusterFailover(waitReplicas: number, lagSeconds = 0): Scenario {
  const lag = lagSeconds > 0 ? `its replica cut off (SIGSTOP + CLIENT KILL TYPE replica on the master) for ${lagSeconds} s, then ` : '';
  return {
    name: `redis cluster failover${lagSeconds > 0 ? ', replica cut off' : ''} (WAIT ${waitReplicas})`,
    fault: `${lag}SIGKILL the Redis Cluster master holding the most groups${lagSeconds > 0 ? ' and SIGCONT the replica' : ''}; the replica is promoted; the old master restarts as its replica (REDIS_WAIT_REPLICAS=${waitReplicas})`,
    cluster: {
      redisCluster: { masters: 3, nodeTimeoutMs: 1_000 },
      env: waitReplicas > 0 ? { REDIS_WAIT_REPLICAS: String(waitReplicas), REDIS_WAIT_TIMEOUT_MS: '500' } : {},
    },
    allowAckedLoss: waitReplicas === 0,
    // With WAIT the ack waits for the replica, but publish.lua has already published the message
    // on the channel: a refused send can be delivered live and then vanish with the master.
    allowUnackedLoss: waitReplicas > 0 && lagSeconds > 0,
    async run(ctx) {
      const rc = ctx.cluster.rc;
      if (!rc) throw new Error('no Redis Cluster');
      const { cluster } = ctx;
      // The master serving the most groups, and its replica.
      const nodes = await rc.nodes();
      const groupIds = ctx.fleet.groupIds();
      const perMaster = new Map<number, number>();
      for (const g of groupIds) {
        const m = await rc.masterOf(groupKeys(g).meta);
        perMaster.set(m, (perMaster.get(m) ?? 0) + 1);
      }
      const [victim, held] = [...perMaster].sort((a, b) => b[1] - a[1])[0] as [number, number];
      const victimId = nodes.find((n) => n.port === (rc.servers[victim] as RedisServer).port)?.id;
      const replicaOf = (await rc.nodes()).find((n) => !n.master && n.masterId === victimId);
      const replica = rc.servers.findIndex((s) => s.port === replicaOf?.port);
      if (replica < 0) throw new Error('the victim master has no replica');
      ctx.notes.push(`master ${victim + 1} served ${held} of ${groupIds.length} groups when killed`);
      const replicaPid = (rc.servers[replica] as RedisServer).pid;
      if (replicaPid === undefined) throw new Error('the replica is not running');
      let t = Date.now();
      if (lagSeconds > 0) {
        // The replica is cut off from its master (as by a network partition): stopped, and its
        // replication link closed by the master, so what the master acks meanwhile is on the
        // master only (a paused replica alone would still find it in its socket buffer on SIGCONT).
        process.kill(replicaPid, 'SIGSTOP');
        try {
          await (rc.servers[victim] as RedisServer).admin.call('CLIENT', 'KILL', 'TYPE', 'replica');
          const paused = Date.now();
          await until(() => Date.now() - paused >= lagSeconds * 1000, lagSeconds * 1000 + 2000, 'the replica pause');
          t = Date.now();
          await (rc.servers[victim] as RedisServer).stop('SIGKILL');
        } finally {
          process.kill(replicaPid, 'SIGCONT');
        }
      } else await (rc.servers[victim] as RedisServer).stop('SIGKILL');
      await until(async () => ((await (rc.servers[replica] as RedisServer).admin.call('ROLE')) as [string])[0] === 'master', 30_000, 'the replica to be promoted');
      const promoted = Date.now() - t;
      await until(
        async () => (await Promise.all(rc.servers.filter((_, k) => k !== victim).map((s) => s.admin.cluster('INFO') as Promise<string>))).every((i) => /cluster_state:ok/.test(i)),
        30_000,
        'cluster_state:ok on every live node',
      );
      // The operator's part: the lost node comes back (empty: no AOF, no RDB) and rejoins as the
      // promoted master's replica. Until it has synced, that shard has no replica: with
      // REDIS_WAIT_REPLICAS=1 its sends are refused (`unavailable`) and retried.
      const victimServer = rc.servers[victim] as RedisServer;
      await victimServer.restart();
      await until(async () => /master_link_status:up/.test(await victimServer.admin.info('replication')), 30_000, 'the old master to rejoin as a replica');
      const rejoined = Date.now() - t;
      await until(async () => (await Promise.all(cluster.gws.map((_, i) => cluster.readyz(i)))).every((s) => s === 200), 30_000, 'every /readyz 200 after the failover');
      ctx.recoveryMs = Date.now() - t;
      ctx.notes.push(
        `replica promoted ${(promoted / 1000).toFixed(1)} s after the kill; the old master restarted and synced as its replica at ${(rejoined / 1000).toFixed(1)} s; every gateway ready at ${(ctx.recoveryMs / 1000).toFixed(1)} s`,
      );
      const refused = (await Promise.all(cluster.gws.map((_, i) => cluster.metric(i, 'chat_engine_errors_total', 'op="publish"')))).reduce((a, b) => a + b, 0);
      ctx.notes.push(`${refused} send refusals (\`unavailable\`) during the failover, each retried by its client with the same id`);
    },
  };
}

export const mb = (b: number): string => (b / 1024 / 1024).toFixed(0);

/** Connect → first menu line for a fresh client, through a balancer's WebSocket (chat.text) and TCP frontends; ms. */
async function freshMenuMs(url: string, tcpPort: number, ms: number): Promise<{ ws: number; tcp: number }> {
  let t = performance.now();
  const ws = await WsClient.connect(url, 'chat.text');
  try {
    const first = await ws.next(ms);
    if (!first.startsWith('Hello client')) throw new Error(`fresh WebSocket client got ${JSON.stringify(first.slice(0, 60))} first`);
  } finally {
    ws.close();
  }
  const wsMs = performance.now() - t;
  t = performance.now();
  const tcp = await LineClient.connect(tcpPort);
  try {
    const first = await tcp.next(ms);
    if (!first.startsWith('Hello client')) throw new Error(`fresh TCP client got ${JSON.stringify(first.slice(0, 60))} first`);
  } finally {
    tcp.close();
  }
  return { ws: wsMs, tcp: performance.now() - t };
}

/** The connection flood's stated bounds (docs/RELIABILITY.md). */
export const FLOOD_BOUNDS = {
  /** A fresh client's menu (connect → first line), through HAProxy, during the flood. */
  menuMs: 2000,
  /** Members' send → ack p99 during the flood. */
  ackP99Ms: 1000,
  /** Each gateway's RSS while it holds its share of the flood (~6,700 idle connections + its members). */
  rssMb: 250,
};

/**
 * A connection flood: `total` extra connections that open, get the menu and sit there (2 in 3
 * WebSocket chat.text, 1 in 3 line-protocol TCP; every 200th answers the menu with garbage),
 * spread over every balancer (three HAProxy processes with LB_MAXCONN 9900: ~7,000 proxied
 * connections each, within 20,000 fds) and so over the three gateways, from `processes`
 * flood processes (raw sockets, a few thousand each). While it holds: the members' ack
 * latency, a fresh client's menu time and each gateway's RSS, against FLOOD_BOUNDS. The
 * flood processes are stopped (by PID) before the check, and the gateways must see their
 * connections go.
 */
export function connectionFlood(total: number, processes: number): Scenario {
  return {
    name: 'connection flood',
    fault: `${total.toLocaleString('en')} idle connections at the menu (2/3 WS, 1/3 TCP) through HAProxy, held, then closed`,
    cluster: { lbEnv: { LB_MAXCONN: '9900' } },
    async run(ctx) {
      const { cluster, fleet, load } = ctx;
      const members = load.groups * load.members;
      const perSec = members * load.rate;
      const targets: FloodTarget[] = cluster.lbs.flatMap((l) => [
        { port: l.ws, kind: 'ws' as const },
        { port: l.tcp, kind: 'tcp' as const },
        { port: l.ws, kind: 'ws' as const },
      ]);
      // HAProxy logs each state change on stdout and stderr: distinct lines are distinct events.
      const downs = (): number => new Set(balancerEvents(cluster).filter((l) => l.includes(' is DOWN'))).size;
      const downsBefore = downs();
      let downsOpen = 0;
      const floods = Array.from({ length: processes }, () => new Child<ToFlood, FromFlood>('flood.js'));
      try {
        const t = Date.now();
        const per = Math.ceil(total / processes);
        const opened = await Promise.all(
          floods.map((f, i) =>
            f.ask(
              { t: 'open', targets: [...targets.slice(i % targets.length), ...targets.slice(0, i % targets.length)], count: Math.min(per, total - i * per), garbageEvery: 200, concurrency: 48, menuMs: 30_000 },
              'opened',
              240_000,
            ),
          ),
        );
        const open = opened.reduce((n, o) => n + o.open, 0);
        const failed = opened.reduce((n, o) => n + o.failed, 0);
        const garbage = opened.reduce((n, o) => n + o.garbage, 0);
        ctx.notes.push(
          `${open} of ${total} flood connections at the menu ${((Date.now() - t) / 1000).toFixed(1)} s after the start (${failed} failed; slowest menu ${Math.max(...opened.map((o) => o.maxMenuMs))} ms; ${garbage} answered it with garbage)`,
        );
        if (open < total) ctx.violations.push(`only ${open} of ${total} flood connections got the menu (${failed} failed)`);
        downsOpen = downs() - downsBefore;
        const held = await Promise.all(cluster.gws.map((_, i) => cluster.connections(i)));
        ctx.notes.push(`connections per gateway during the flood: ${held.join(' / ')}`);
        // While it holds: the members' acks over a window, a fresh client's menu, RSS.
        fleet.markLatency();
        await acksGrow(fleet, Math.ceil(perSec * 5), 60_000, 'window during the flood');
        const during = await fleet.stats();
        const p50 = quantile(during.ackLatency, 0.5);
        const p99 = quantile(during.ackLatency, 0.99);
        ctx.notes.push(`ack during the flood p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms (bound p99 ≤ ${FLOOD_BOUNDS.ackP99Ms} ms)`);
        if (!(p99 <= FLOOD_BOUNDS.ackP99Ms)) ctx.violations.push(`ack p99 ${p99.toFixed(0)} ms during the flood (bound ${FLOOD_BOUNDS.ackP99Ms} ms)`);
        let menu = 0;
        for (const [i, l] of cluster.lbs.entries()) {
          const m = await freshMenuMs(cluster.urls[i] as string, l.tcp, FLOOD_BOUNDS.menuMs * 5);
          menu = Math.max(menu, m.ws, m.tcp);
        }
        ctx.notes.push(`fresh client's menu during the flood (WS and TCP through each HAProxy): slowest ${menu.toFixed(0)} ms (bound ${FLOOD_BOUNDS.menuMs} ms)`);
        if (menu > FLOOD_BOUNDS.menuMs) ctx.violations.push(`a fresh client waited ${menu.toFixed(0)} ms for the menu during the flood`);
        cluster.sample();
        const rss = cluster.rss.map((r) => r.now);
        ctx.notes.push(`RSS per gateway during the flood (MB): ${rss.map(mb).join(' / ')} (bound ${FLOOD_BOUNDS.rssMb} MB)`);
        rss.forEach((b, i) => {
          if (b > FLOOD_BOUNDS.rssMb * 1024 * 1024) ctx.violations.push(`gw${i + 1} RSS ${mb(b)} MB during the flood (bound ${FLOOD_BOUNDS.rssMb} MB)`);
        });
        const still = await Promise.all(floods.map((f) => f.ask({ t: 'stats' }, 'stats', 30_000)));
        const closed = still.reduce((n, o) => n + o.closedAfterMenu, 0);
        if (closed > 0) ctx.violations.push(`${closed} flood connections closed by the server while they sat at the menu`);
      } finally {
        await Promise.all(floods.map((f) => f.stop()));
      }
      // The flood is gone from the gateways too (HAProxy closes each server side after its client side).
      const t = Date.now();
      await until(async () => (await Promise.all(cluster.gws.map((_, i) => cluster.connections(i)))).reduce((a, b) => a + b, 0) <= members, 60_000, 'the flood connections to close on the gateways');
      ctx.recoveryMs = Date.now() - t;
      ctx.notes.push(`flood gone from the gateways ${((Date.now() - t) / 1000).toFixed(1)} s after its processes ended`);
      // HAProxy marking a gateway DOWN (its check unanswered in 3 s: the gateway busy with the flood) costs new clients a 503 meanwhile; reported.
      await cluster.waitBalancers(cluster.gws.map((_, i) => `gw${i + 1}`), 'UP', 30_000);
      ctx.notes.push(`gateways marked DOWN by a HAProxy check timeout (ws backends, all balancers): ${downsOpen} while the flood opened and held, ${downs() - downsBefore - downsOpen} while it closed; every gateway UP in every balancer again`);
    },
  };
}

/**
 * Fuzz through HAProxy: `frames` seeded frames (helpers/fuzz-gen.ts, as ops/fuzz.test.ts) over
 * WS text, WS JSON and TCP, from `processes` fuzz processes, each through one balancer's
 * WebSocket and TCP frontends, paced over about `seconds`, while the fleet chats. The fuzz
 * aims at a group of its own (password `pw`), watched by a WS JSON owner, a WS text peer and a
 * TCP peer, all through HAProxy. After it: every gateway still running and ready, no
 * error-level or unhandled-error log line, no control byte at the watchers, the group still
 * works end to end; the fleet's own check (and its scan for foreign texts) follows.
 */
export function fuzzThroughBalancer(frames: number, processes: number, seconds: number): Scenario {
  return {
    name: 'fuzz through HAProxy',
    fault: `${frames.toLocaleString('en')} seeded fuzz frames over WS text, WS JSON and TCP through HAProxy in ~${seconds} s`,
    // As in ops/fuzz.test.ts: no per-connection rate limit (the frames reach the parsers), small frames.
    cluster: { env: { RATE_LIMIT_PER_SEC: '0', MAX_FRAME_BYTES: '4096' } },
    async run(ctx) {
      const { cluster } = ctx;
      const lb = cluster.lbs[0];
      const url = cluster.urls[0];
      if (!lb || !url) throw new Error('no balancer');
      const logFrom = cluster.gws.map((g) => g.output.length);
      const owner = await WsClient.connect(url, 'chat.json');
      const jsonFrames: string[] = [];
      const textFrames: string[] = [];
      let tcpPeer: LineClient | null = null;
      let wsPeer: WsClient | null = null;
      const fuzzers = Array.from({ length: processes }, () => new Child<ToFuzzer, FromFuzzer>('fuzzer.js'));
      try {
        owner.sendJson({ op: 'create', name: 'Owner', password: 'pw' });
        const { groupId } = await owner.nextOfType<{ groupId: string }>('created');
        await owner.nextOfType('joined');
        owner.ws.on('message', (d) => jsonFrames.push(d.toString()));
        tcpPeer = await LineClient.connect(lb.tcp);
        await tcpPeer.nextLines(4);
        for (const say of ['1', 'TcpPeer', groupId, 'pw']) tcpPeer.send(say);
        await tcpPeer.until(`Hi TcpPeer! welcome to group ${groupId}!`, 10_000);
        wsPeer = await WsClient.connect(url);
        wsPeer.ws.on('message', (d) => textFrames.push(d.toString()));
        for (const say of ['1', 'WsPeer', groupId, 'pw']) wsPeer.send(say);

        const perTransport = Math.ceil(frames / (3 * processes));
        const t = Date.now();
        const seed = Number(process.env['FUZZ_SEED'] ?? 20261130);
        const done = await Promise.all(
          fuzzers.map((f, i) => {
            const l = cluster.lbs[i % cluster.lbs.length] ?? lb;
            return f.ask(
              { t: 'fuzz', wsUrl: `ws://127.0.0.1:${l.ws}/`, tcpPort: l.tcp, groupId, seed: seed + 10 * i, framesPerTransport: perTransport, perSecond: perTransport / seconds },
              'fuzzed',
              (seconds + 120) * 1000,
            );
          }),
        );
        const sent = done.reduce((n, d) => n + d.frames.reduce((a, b) => a + b, 0), 0);
        ctx.notes.push(`${sent} fuzz frames (seed ${seed}, ${processes} processes × WS text / WS JSON / TCP) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        if (sent < frames) ctx.violations.push(`only ${sent} of ${frames} fuzz frames sent`);

        cluster.gws.forEach((g, i) => {
          if (g.proc.exitCode !== null || g.proc.signalCode !== null) ctx.violations.push(`gw${i + 1} exited (${g.proc.exitCode ?? g.proc.signalCode}) under the fuzz`);
        });
        const ready = await Promise.all(cluster.gws.map((_, i) => cluster.readyz(i)));
        if (!ready.every((s) => s === 200)) ctx.violations.push(`/readyz after the fuzz: ${ready.join(' / ')}`);
        await cluster.waitBalancers(cluster.gws.map((_, i) => `gw${i + 1}`), 'UP', 15_000);
        // The fuzz group still works end to end: the owner's sentinel reaches both peers.
        owner.sendJson({ op: 'send', text: 'sentinel' });
        await tcpPeer.until('Owner: sentinel', 20_000);
        await until(() => textFrames.includes('Owner: sentinel'), 20_000, 'the sentinel at the WS text peer');
        const leaks = [
          ...tcpPeer.all.filter((l) => CONTROL.test(l)),
          ...textFrames.filter((f) => !f.startsWith('Hello client') && CONTROL.test(f)),
          ...jsonFrames.filter((f) => {
            const ev = JSON.parse(f) as Record<string, unknown>;
            return ['text', 'from', 'name'].some((k) => typeof ev[k] === 'string' && CONTROL.test(ev[k] as string));
          }),
        ];
        if (leaks.length > 0) ctx.violations.push(`${leaks.length} control byte(s) reached the fuzz group's peers, e.g. ${JSON.stringify(leaks[0]).slice(0, 120)}`);
        const errors = cluster.gws.flatMap((g, i) => g.output.slice(logFrom[i]).filter((l) => /"level":(50|60)/.test(l) || /unhandled|Uncaught|TypeError|RangeError/.test(l)));
        if (errors.length > 0) ctx.violations.push(`${errors.length} error-level log line(s), e.g. ${(errors[0] ?? '').slice(0, 200)}`);
        ctx.notes.push(`fuzz group's peers got ${tcpPeer.all.length} TCP lines, ${textFrames.length} WS text and ${jsonFrames.length} WS JSON frames, no control byte; all 3 gateways running and ready; no error-level log line`);
      } finally {
        await Promise.all(fuzzers.map((f) => f.stop()));
        owner.close();
        tcpPeer?.close();
        wsPeer?.close();
      }
    },
  };
}
