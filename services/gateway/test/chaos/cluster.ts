// The chaos set-up: a real redis-server with AOF (appendonly yes, appendfsync everysec
// unless told otherwise), three Redis-engine gateways and one or more HAProxy processes
// from deploy/haproxy/haproxy.cfg, all on loopback, on free ports. Every process is
// started here and stopped here by its PID (stop() also runs after a failure).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { TEST_CHAT_SECRET } from '../helpers/engines.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { HaProxy } from '../helpers/haproxy.js';
import { RedisServer } from '../helpers/redis.js';
import { RedisClusterServer } from '../helpers/redis-cluster-server.js';
import { within } from '../helpers/wait.js';

export interface ClusterOptions {
  gateways: number;
  /** HAProxy processes in front (one holds at most ~9,000 proxied connections with 20,000 fds). */
  balancers: number;
  /** appendfsync: everysec (the default here) or always. */
  fsync: 'everysec' | 'always';
  drainSeconds: number;
  /**
   * A Redis Cluster instead of one redis-server (scenario 8): this many masters, each with one
   * replica, a short cluster-node-timeout so a lost master's replica takes over in seconds, and
   * the gateways on REDIS_CLUSTER_NODES. No AOF there: the replica is what keeps a message.
   */
  redisCluster?: { masters: number; nodeTimeoutMs: number };
  /** Extra gateway environment. */
  env?: Record<string, string>;
  /** Extra HAProxy environment (haproxy.cfg's settings, e.g. LB_MAXCONN). */
  lbEnv?: Record<string, string>;
}

/**
 * The gateways' settings for the suite. Every client arrives through HAProxy, whose
 * X-Forwarded-For is trusted, so all of them share one address (127.0.0.1): the
 * per-address limits and budgets are off (0). The per-connection rate limit stays on.
 */
export const CHAOS_GATEWAY_ENV: Record<string, string> = {
  CHAT_SECRET: TEST_CHAT_SECRET,
  TRUSTED_PROXIES: '127.0.0.1',
  MAX_CONNECTIONS_PER_IP: '0',
  CREATE_BUDGET: '0',
  AUTH_BUDGET: '0',
  AUTH_MAX_FAILURES: '0',
  PASSWORD_QUEUE_PER_ADDRESS: '0',
  PASSWORD_QUEUE_MAX: '0',
  MAX_GROUPS: '0',
  // Cheap passwords: thousands of joins in seconds on two cores.
  SCRYPT_N: '16',
  SCRYPT_IDLE_SECONDS: '0',
  // The whole run stays in history, so the end state can be checked seq by seq.
  HISTORY_LIMIT: '100000',
  HISTORY_MAX_BYTES: '0',
  LOG_LEVEL: 'info',
};

export interface RssPeak {
  /** Highest VmHWM (peak resident set) of any process that held this slot, in bytes. */
  peak: number;
  /** Last VmRSS sampled. */
  now: number;
}

/**
 * A free port below the kernel's ephemeral range (32768-60999 here). A process restarted on
 * its old port (a gateway in the rolling restart, Redis after kill -9) must get it back, and a
 * port from the ephemeral range may meanwhile be the local end of one of the thousands of
 * client connections the suite opens.
 */
export async function stablePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const ok = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port below the ephemeral range');
}

function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone
  }
}

/** Every gateway and HAProxy process a cluster started: killed by PID if the runner exits with them still running. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});
const watch = (p: ChildProcess): void => {
  live.add(p);
  p.once('exit', () => live.delete(p));
};

export class ChaosCluster {
  readonly rss: RssPeak[];
  private sampler: NodeJS.Timeout | null = null;

  private constructor(
    readonly redis: RedisServer,
    readonly gws: Gateway[],
    readonly lbs: HaProxy[],
    readonly opts: ClusterOptions,
    /** Scenario 8's Redis Cluster (then `redis` is its first node); null on one redis-server. */
    readonly rc: RedisClusterServer | null = null,
  ) {
    this.rss = gws.map(() => ({ peak: 0, now: 0 }));
    this.sampler = setInterval(() => this.sample(), 250);
    this.sampler.unref();
  }

  /** Start everything; on any failure, stop what was started and rethrow. */
  static async start(opts: ClusterOptions): Promise<ChaosCluster> {
    const started: { redis: RedisServer | null; rc: RedisClusterServer | null; gws: Gateway[]; lbs: HaProxy[] } = { redis: null, rc: null, gws: [], lbs: [] };
    try {
      let redis: RedisServer;
      let store: Record<string, string>;
      if (opts.redisCluster) {
        const { masters, nodeTimeoutMs } = opts.redisCluster;
        const rc = await RedisClusterServer.start(masters, ['--cluster-node-timeout', String(nodeTimeoutMs)]);
        started.rc = rc;
        for (let m = 0; m < masters; m++) await rc.addReplica(m);
        redis = rc.servers[0] as RedisServer;
        store = { REDIS_CLUSTER_NODES: rc.seeds };
      } else {
        redis = await RedisServer.start({ port: await stablePort(), args: ['--appendonly', 'yes', '--appendfsync', opts.fsync] });
        started.redis = redis;
        store = { REDIS_URL: redis.url };
      }
      for (let i = 0; i < opts.gateways; i++) {
        const ports = { PORT: String(await stablePort()), TCP_PORT: String(await stablePort()), METRICS_PORT: String(await stablePort()) };
        const g = await startGateway({ env: { ...gatewayEnv(opts, store, i), ...ports } });
        watch(g.proc);
        started.gws.push(g);
      }
      for (let i = 0; i < opts.balancers; i++) {
        const l = await HaProxy.start(started.gws, opts.lbEnv ? { env: opts.lbEnv } : {});
        watch(l.proc);
        started.lbs.push(l);
      }
      return new ChaosCluster(redis, started.gws, started.lbs, opts, started.rc);
    } catch (e) {
      await stopAll(started.redis, started.gws, started.lbs, started.rc);
      throw e;
    }
  }

  /** WebSocket URLs of the balancers (clients spread over them). */
  get urls(): string[] {
    return this.lbs.map((l) => `ws://127.0.0.1:${l.ws}/`);
  }

  sample(): void {
    this.gws.forEach((g, i) => {
      const pid = g.proc.pid;
      if (pid === undefined || g.proc.exitCode !== null || g.proc.signalCode !== null) return;
      const slot = this.rss[i] as RssPeak;
      const now = procKb(pid, 'VmRSS');
      if (now === 0) return;
      slot.now = now;
      slot.peak = Math.max(slot.peak, procKb(pid, 'VmHWM'), now);
    });
  }

  /** Open connections on a gateway (its chat_connections gauge, all transports). */
  async connections(i: number): Promise<number> {
    const g = this.gws[i] as Gateway;
    const text = await (await fetch(`http://127.0.0.1:${g.metricsPort}/metrics`)).text();
    let n = 0;
    for (const m of text.matchAll(/^chat_connections\{[^}]*\}\s+(\S+)/gm)) n += Number(m[1]);
    return n;
  }

  /** Sum of one metric's samples (all label sets) on a gateway; 0 when it does not answer. */
  async metric(i: number, name: string, labels = ''): Promise<number> {
    try {
      const g = this.gws[i] as Gateway;
      const text = await (await fetch(`http://127.0.0.1:${g.metricsPort}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\}\\s+(\\S+)`, 'gm'))) if ((m[1] ?? '').includes(labels)) n += Number(m[2]);
      return n;
    } catch {
      return 0;
    }
  }

  async readyz(i: number): Promise<number> {
    try {
      return (await (this.gws[i] as Gateway).http('/readyz')).status;
    } catch {
      return 0;
    }
  }

  /** Start gateway `i` again on its old ports (HAProxy's config names them). */
  async restartGateway(i: number): Promise<Gateway> {
    const old = this.gws[i] as Gateway;
    const g = await startGateway({
      env: { ...old.env, PORT: String(old.port), TCP_PORT: String(old.tcpPort), METRICS_PORT: String(old.metricsPort) },
    });
    watch(g.proc);
    this.gws[i] = g;
    return g;
  }

  /** SIGTERM (drain) or SIGKILL gateway `i` and wait for its exit. */
  async stopGateway(i: number, signal: 'SIGTERM' | 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const g = this.gws[i] as Gateway;
    this.sample();
    return g.stop(signal, (this.opts.drainSeconds + 15) * 1000);
  }

  /** Every balancer sees every named server in `status` (UP, DOWN, NOLB, …). */
  async waitBalancers(servers: string[], status: string, ms: number): Promise<void> {
    await Promise.all(this.lbs.map((l) => l.waitStatus(servers, status, ms)));
  }

  redisPid(): number {
    const pid = this.redis.pid;
    if (pid === undefined) throw new Error('redis-server is not running');
    return pid;
  }

  /** CPU seconds (user + system) redis-server has used so far (/proc/<pid>/stat). */
  redisCpuSeconds(): number {
    try {
      const f = readFileSync(`/proc/${this.redisPid()}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
    } catch {
      return NaN;
    }
  }

  freezeRedis(): void {
    process.kill(this.redisPid(), 'SIGSTOP');
  }

  thawRedis(): void {
    const pid = this.redis.pid;
    if (pid !== undefined) process.kill(pid, 'SIGCONT');
  }

  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    this.thawRedis(); // a stopped redis-server would not act on SIGTERM
    await stopAll(this.rc ? null : this.redis, this.gws, this.lbs, this.rc);
  }

  /** Where the checker reads the store: a redis:// URL, or `cluster:` and the seeds (worker.ts). */
  get storeTarget(): string {
    return this.rc ? `cluster:${this.rc.seeds}` : this.redis.url;
  }
}

function gatewayEnv(opts: ClusterOptions, store: Record<string, string>, i: number): Record<string, string> {
  return { ...CHAOS_GATEWAY_ENV, ...store, NODE_ID: `gw${i + 1}`, DRAIN_SECONDS: String(opts.drainSeconds), ...opts.env };
}

/** Stop each process by its PID, each on its own (one failing stop does not leave the others running). */
async function stopAll(redis: RedisServer | null, gws: Gateway[], lbs: HaProxy[], rc: RedisClusterServer | null = null): Promise<void> {
  const errors: unknown[] = [];
  const attempt = async (f: () => Promise<unknown>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  await Promise.all(lbs.map((l) => attempt(() => l.stop())));
  // SIGKILL: the runs's data is checked already; a drain would only cost time.
  await Promise.all(gws.map((g) => attempt(() => g.stop('SIGKILL', 10_000))));
  if (redis) await attempt(() => within(redis.close(), 20_000, 'redis-server to stop'));
  if (rc) await attempt(() => within(rc.close(), 30_000, 'the Redis Cluster nodes to stop'));
  if (errors.length > 0) throw errors[0];
}
