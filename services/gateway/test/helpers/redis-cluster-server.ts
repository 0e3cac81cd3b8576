// A real Redis Cluster for tests: N masters, each a redis-server started by
// RedisServer (free loopback port, own temp dir, stopped by its PID) with
// cluster mode on, joined by `redis-cli --cluster create … --cluster-replicas 0`,
// ready once CLUSTER INFO says `cluster_state:ok` on every node.
import { spawn } from 'node:child_process';
import { Cluster } from 'ioredis';
import { keySlot } from '../../src/engine/redis/keys.js';
import { tempDir } from './gateway.js';
import { RedisServer } from './redis.js';
import { until, within } from './wait.js';

export interface ClusterNodeInfo {
  id: string;
  port: number;
  master: boolean;
  /** A replica's master's ID (null for a master). */
  masterId: string | null;
  /** Slot ranges served, inclusive. */
  ranges: Array<[number, number]>;
}

/** Cluster mode; a replica syncs at once (the diskless sync otherwise waits 5 s for more replicas). */
const CLUSTER_ARGS = ['--cluster-enabled', 'yes', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'];

/** Run a command to completion; rejects with its output on a non-zero exit. */
function run(cmd: string, args: string[], what: string, ms = 20_000): Promise<string> {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<string>((res, rej) => {
    p.once('error', rej);
    p.once('exit', (code) => (code === 0 ? res(out) : rej(new Error(`${what} exited ${code}:\n${out}`))));
  });
  return within(done, ms, what).catch((e: unknown) => {
    if (p.exitCode === null) p.kill('SIGKILL');
    throw e;
  });
}

export class RedisClusterServer {
  private readonly clusterClients: Cluster[] = [];

  private constructor(
    readonly servers: RedisServer[],
    private readonly extraArgs: string[] = [],
  ) {}

  /** `extraArgs`: more redis-server arguments for every node (this one's replicas too), e.g. a short cluster-node-timeout. */
  static async start(masters = 3, extraArgs: string[] = []): Promise<RedisClusterServer> {
    const dir = tempDir('chat-rcluster-');
    const servers: RedisServer[] = [];
    try {
      for (let i = 0; i < masters; i++) {
        servers.push(
          await RedisServer.start({ args: [...CLUSTER_ARGS, '--cluster-config-file', `${dir}/nodes-${i}.conf`, ...extraArgs] }),
        );
      }
      const cluster = new RedisClusterServer(servers, extraArgs);
      await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'], 'redis-cli --cluster create');
      await cluster.untilOk();
      return cluster;
    } catch (e) {
      for (const s of servers) await s.close();
      throw e;
    }
  }

  /** `REDIS_CLUSTER_NODES` for a gateway: every node as a seed. */
  get seeds(): string {
    return this.servers.map((s) => `127.0.0.1:${s.port}`).join(',');
  }

  /** Wait until every node reports `cluster_state:ok` (and so knows who serves every slot). */
  async untilOk(ms = 15_000): Promise<void> {
    await until(
      async () => {
        const infos = await Promise.all(this.servers.map((s) => s.admin.cluster('INFO') as Promise<string>));
        return infos.every((i) => /cluster_state:ok/.test(i));
      },
      ms,
      'cluster_state:ok on every node',
    );
  }

  /** CLUSTER NODES as one node sees it. */
  async nodes(via = 0): Promise<ClusterNodeInfo[]> {
    const text = (await (this.servers[via] as RedisServer).admin.cluster('NODES')) as string;
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const [id, addr, flags, masterId, , , , , ...slots] = line.trim().split(' ');
        const ranges = slots
          .filter((s) => /^\d+(-\d+)?$/.test(s))
          .map((s): [number, number] => {
            const [a, b] = s.split('-').map(Number) as [number, number | undefined];
            return [a, b ?? a];
          });
        return { id: id as string, port: Number(/:(\d+)@/.exec(addr ?? '')?.[1]), master: (flags ?? '').includes('master'), masterId: masterId && masterId !== '-' ? masterId : null, ranges };
      });
  }

  /** The index (in `servers`) of the master serving a key's slot, from CLUSTER KEYSLOT and CLUSTER NODES. */
  async masterOf(key: string, via = 0): Promise<number> {
    const slot = Number(await (this.servers[via] as RedisServer).admin.cluster('KEYSLOT', key));
    if (slot !== keySlot(key)) throw new Error(`keySlot(${key}) = ${keySlot(key)}, CLUSTER KEYSLOT says ${slot}`);
    const owner = (await this.nodes(via)).find((n) => n.master && n.ranges.some(([a, b]) => slot >= a && slot <= b));
    return this.servers.findIndex((s) => s.port === owner?.port);
  }

  /**
   * Move one slot (and its keys) from one master to another, the way
   * `redis-cli --cluster reshard` does: IMPORTING/MIGRATING, MIGRATE the keys,
   * then SETSLOT … NODE on the target, the source and the rest.
   */
  async migrateSlot(slot: number, from: number, to: number): Promise<void> {
    const src = (this.servers[from] as RedisServer).admin;
    const dst = (this.servers[to] as RedisServer).admin;
    const srcId = (await src.cluster('MYID')) as string;
    const dstId = (await dst.cluster('MYID')) as string;
    await dst.cluster('SETSLOT', slot, 'IMPORTING', srcId);
    await src.cluster('SETSLOT', slot, 'MIGRATING', dstId);
    for (;;) {
      const keys = (await src.cluster('GETKEYSINSLOT', slot, 100)) as string[];
      if (keys.length === 0) break;
      await src.call('MIGRATE', '127.0.0.1', String((this.servers[to] as RedisServer).port), '', '0', '5000', 'KEYS', ...keys);
    }
    await dst.cluster('SETSLOT', slot, 'NODE', dstId);
    await src.cluster('SETSLOT', slot, 'NODE', dstId);
    for (const [i, s] of this.servers.entries()) if (i !== from && i !== to) await s.admin.cluster('SETSLOT', slot, 'NODE', dstId);
  }

  /**
   * Start one more node and make it a replica of master `of` (CLUSTER MEET,
   * CLUSTER REPLICATE, then wait for the replication link). Returns its index.
   */
  async addReplica(of: number): Promise<number> {
    const master = this.servers[of] as RedisServer;
    const masterId = (await master.admin.cluster('MYID')) as string;
    const i = this.servers.length;
    const replica = await RedisServer.start({ args: [...CLUSTER_ARGS, '--cluster-config-file', `${tempDir('chat-rcluster-')}/nodes-${i}.conf`, ...this.extraArgs] });
    this.servers.push(replica);
    await replica.admin.cluster('MEET', '127.0.0.1', master.port);
    await until(async () => ((await replica.admin.cluster('NODES')) as string).includes(masterId), 10_000, 'the new node to learn the master');
    await replica.admin.cluster('REPLICATE', masterId);
    await until(async () => /master_link_status:up/.test(await replica.admin.info('replication')), 10_000, 'the replica to sync');
    // A manual failover needs every master to know the new replica (gossip): its master to
    // start the handover, the others to vote for it.
    const replicaId = (await replica.admin.cluster('MYID')) as string;
    await until(
      async () =>
        (await Promise.all(this.servers.map(async (s) => ((await s.admin.cluster('REPLICAS', masterId)) as string[]).some((l) => l.startsWith(replicaId))))).every(
          Boolean,
        ),
      10_000,
      'every node to know the new replica',
    );
    await this.untilOk();
    return i;
  }

  /** Manual failover (CLUSTER FAILOVER on the replica): it becomes the master of its slots, the old master its replica. */
  async failover(replica: number): Promise<void> {
    const r = this.servers[replica] as RedisServer;
    await r.admin.cluster('FAILOVER');
    await until(async () => ((await r.admin.call('ROLE')) as [string])[0] === 'master', 10_000, 'the replica to take over');
    const id = (await r.admin.cluster('MYID')) as string;
    // Every node agrees once each sees the new master serving slots.
    await until(
      async () => (await Promise.all(this.servers.map(async (_, k) => (await this.nodes(k)).some((n) => n.id === id && n.master && n.ranges.length > 0)))).every(Boolean),
      10_000,
      'every node to see the new master',
    );
  }

  /** `INFO commandstats` summed over the nodes, as command → calls. */
  async commandCalls(): Promise<Map<string, number>> {
    const sum = new Map<string, number>();
    for (const s of this.servers) for (const [cmd, n] of await s.commandCalls()) sum.set(cmd, (sum.get(cmd) ?? 0) + n);
    return sum;
  }

  /** Per node (index in `servers`), command → calls (to see which master ran what). */
  async commandCallsPerMaster(): Promise<Array<Map<string, number>>> {
    return Promise.all(this.servers.map((s) => s.commandCalls()));
  }

  /** FLUSHALL on every master (replicas follow). */
  async flushall(): Promise<void> {
    const masters = (await this.nodes()).filter((n) => n.master).map((n) => n.port);
    await Promise.all(this.servers.filter((s) => masters.includes(s.port)).map((s) => s.admin.flushall()));
  }

  /** A cluster client of the test's own; closed by close(). */
  client(): Cluster {
    const c = new Cluster(this.servers.map((s) => ({ host: '127.0.0.1', port: s.port })));
    c.on('error', () => undefined);
    this.clusterClients.push(c);
    return c;
  }

  /** Stop every node (by PID) and close the test's clients. */
  async close(): Promise<void> {
    for (const c of this.clusterClients.splice(0)) c.disconnect();
    for (const s of this.servers) await s.close();
  }
}
