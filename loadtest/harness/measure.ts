// What a run measures on the server side: CPU and RSS of every process (from
// /proc), the gateways' own counters (/metrics), and a guess at what saturated.
import { cpus } from 'node:os';
import type { Cluster } from './procs.js';
import { CpuWindow, HostWindow, RssSampler } from './procstat.js';
import { scrape, type Scrape } from './scrape.js';
import { until } from './wait.js';

export interface Usage {
  seconds: number;
  /** % of one core, per gateway. */
  gatewayCpu: number[];
  gatewayRss: number[];
  gatewayPeakRss: number[];
  redisCpu: number;
  redisRss: number;
  /** % of one core, per client worker. */
  clientCpu: number[];
  /** The whole machine (kernel, softirq, everything): % of all cores busy, and % stolen by the hypervisor. */
  hostBusy: number;
  hostSteal: number;
  before: Scrape[];
  after: Scrape[];
}

/** Measure between two instants (wall clock), or around `during` when given. */
export async function measure(cluster: Cluster, workerPids: number[], from: number, to: number): Promise<Usage> {
  await until(from);
  const probe = start(cluster, workerPids);
  await until(to);
  return probe.stop();
}

export interface Probe {
  /** Freeze the CPU numbers now (e.g. at the end of a phase); RSS keeps being sampled until stop. */
  freezeCpu(): void;
  stop(): Promise<Usage>;
}

export function start(cluster: Cluster, workerPids: number[]): Probe {
  const gw = cluster.gateways.map((g) => g.pid);
  const redis = cluster.redis ? [cluster.redis.pid] : [];
  const pids = [...gw, ...redis, ...workerPids];
  const beforeP = Promise.all(cluster.gateways.map((g) => scrape(g.metricsPort)));
  const cpu = new CpuWindow(pids);
  const host = new HostWindow();
  const rss = new RssSampler(pids);
  const t0 = performance.now();
  let frozen: { pct: number[]; seconds: number; host: { busyPct: number; stealPct: number } } | null = null;
  const freezeCpu = (): void => {
    frozen ??= { pct: cpu.percents(), seconds: (performance.now() - t0) / 1000, host: host.read() };
  };
  return {
    freezeCpu,
    async stop(): Promise<Usage> {
      freezeCpu();
      const { pct, seconds, host: h } = frozen as NonNullable<typeof frozen>;
      const now = rss.stop();
      const before = await beforeP;
      const after = await Promise.all(cluster.gateways.map((g) => scrape(g.metricsPort)));
      const n = gw.length;
      return {
        seconds,
        gatewayCpu: pct.slice(0, n),
        gatewayRss: now.slice(0, n),
        gatewayPeakRss: rss.peak.slice(0, n),
        redisCpu: redis.length ? (pct[n] as number) : NaN,
        redisRss: redis.length ? (now[n] as number) : NaN,
        clientCpu: pct.slice(n + redis.length),
        hostBusy: h.busyPct,
        hostSteal: h.stealPct,
        before,
        after,
      };
    },
  };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/**
 * Which side ran out first. The gateway is one Node event loop: near 100% of a
 * core it is the limit. Otherwise the two cores are shared by everyone, so a
 * busy host with an idle-ish gateway points at the clients.
 */
export function limit(u: Usage, openLoopMet: boolean): string {
  const gw = Math.max(...u.gatewayCpu);
  if (gw >= 90) return 'gateway CPU';
  if (!Number.isNaN(u.redisCpu) && u.redisCpu >= 90) return 'redis CPU';
  if (openLoopMet) return 'none (rate met)';
  // Busy with someone else's work (another test run on this host): the numbers are not ours alone.
  const ours = sum(u.gatewayCpu) + (Number.isNaN(u.redisCpu) ? 0 : u.redisCpu) + sum(u.clientCpu);
  const otherLoad = u.hostBusy * cpus().length - ours >= 30;
  if (u.hostBusy >= 90) return otherLoad ? 'host CPU (other load!)' : 'host CPU (shared)';
  if (otherLoad) return 'other load! (run again)';
  if (u.clientCpu.some((c) => c >= 85)) return 'client CPU';
  return 'unclear';
}

export const mb = (bytes: number): number => bytes / (1024 * 1024);
export const total = sum;
