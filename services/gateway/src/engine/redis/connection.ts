// How the engine reaches Redis: one server (REDIS_URL) or a Redis Cluster
// (REDIS_CLUSTER_NODES, `host:port` seeds). This module is the only one that
// knows which; the engine, presence and subscriptions talk to a `Backend`:
//
//   cmd            the command client (ioredis `Redis` or `Cluster`) with the Lua
//                  scripts. Every call the engine makes touches one slot (one
//                  group's `{g:<id>}` keys, one node's `{n:<instance>}` keys, or
//                  one singleton), so the same calls work on both.
//   topology       where a group's channel is subscribed. One server: classic
//                  SUBSCRIBE on one connection. Cluster: sharded SSUBSCRIBE on one
//                  connection per master, the master serving the channel's slot.
//   publishCommand PUBLISH on one server (Redis 6 works too), SPUBLISH on a cluster.
//
// No connection queues commands while Redis is unreachable (no offline queue,
// no retries of in-flight commands): a call then fails at once.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../../config.js';
import { keySlot } from './keys.js';
import { defineScripts, type ScriptedClient } from './scripts.js';

/** A command without a reply by then fails (and counts as unavailable). */
export const COMMAND_TIMEOUT_MS = 3_000;
const reconnectDelay = (times: number): number => Math.min(times * 100, 1_000);

export interface Topology {
  readonly sharded: boolean;
  /** The node whose subscriber connection carries this channel; null while the slot map is unknown. */
  ownerOf(channel: string): string | null;
  /** The nodes that each hold one subscriber connection (one server, or every master). */
  nodes(): string[];
  /** A new, not yet connected subscriber connection to a node. */
  openSubscriber(node: string): Redis;
  /** Run `f` after every topology refresh (the cluster's slot map reloaded: periodically, and after MOVED). */
  onChange(f: () => void): void;
  /** Reload the topology; resolves when done, whether or not it worked. */
  refresh(): Promise<void>;
}

export interface Backend {
  readonly cmd: ScriptedClient;
  readonly topology: Topology;
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /**
   * With REDIS_WAIT_REPLICAS: a second command client that carries only the sends (script + WAIT).
   * WAIT blocks its connection until the replicas answer or the timeout, so it gets connections of
   * its own: the health check's PING, presence, history and the rest stay on `cmd` and are not held
   * behind a WAIT when a shard has lost its replica. Null when the setting is off.
   */
  readonly waiting: ScriptedClient | null;
  /** The command side's server connections, for the health check's PING. */
  commandConnections(): Redis[];
}

function redisOptions(config: Config, role: 'cmd' | 'sub' | 'wait'): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: `chat:${config.nodeId}:${role}`.replace(/\s/g, '_'),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false, // the engine resubscribes itself, then asks for a resync
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 2_000,
    retryStrategy: reconnectDelay,
  };
}

/** `host:port` (IPv6 in brackets) → its parts; throws on anything else. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(s.trim());
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`not host:port: "${s}"`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export function openBackend(config: Config): Backend {
  if (config.redisClusterNodes && config.redisClusterNodes.length > 0) return clusterBackend(config.redisClusterNodes, config);
  if (config.redisUrl) return singleBackend(config.redisUrl, config);
  throw new Error('the Redis engine needs REDIS_URL or REDIS_CLUSTER_NODES');
}

const SINGLE = 'single';

function singleBackend(url: string, config: Config): Backend {
  // No auto-pipelining: measured (docs/BENCHMARKS.md), at 18k deliveries/s on 3 nodes most event-loop
  // turns carry one publish, and the pipeline objects cost the gateway ~6 % more CPU for ~1 % less in Redis.
  const cmd = defineScripts(new Redis(url, redisOptions(config, 'cmd')));
  return {
    cmd,
    waiting: config.redisWaitReplicas > 0 ? defineScripts(new Redis(url, redisOptions(config, 'wait'))) : null,
    publishCommand: 'PUBLISH',
    commandConnections: () => [cmd],
    topology: {
      sharded: false,
      ownerOf: () => SINGLE,
      nodes: () => [SINGLE],
      openSubscriber: () => new Redis(url, redisOptions(config, 'sub')),
      onChange: () => undefined,
      refresh: async () => undefined,
    },
  };
}

function clusterBackend(seeds: string[], config: Config): Backend {
  const options = (role: 'cmd' | 'wait'): ClusterOptions => {
    const { lazyConnect: _l, retryStrategy: _r, enableOfflineQueue: _q, ...nodeOptions } = redisOptions(config, role);
    return {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true, // 'ready' only once CLUSTER INFO says the cluster is not failing
    scaleReads: 'master',
    // Follow MOVED/ASK/TRYAGAIN/CLUSTERDOWN and failovers for a bounded time (16 × 0.1 s), then fail.
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 1_000,
    slotsRefreshInterval: 2_000, // a failover or migration is noticed within this even without a MOVED
    clusterRetryStrategy: reconnectDelay,
    clusterNodeRetryStrategy: reconnectDelay,
    redisOptions: nodeOptions,
    };
  };
  const cluster = new Cluster(seeds.map(parseHostPort), options('cmd'));
  const masterOf = (slot: number): string | null => cluster.slots[slot]?.[0] ?? null;
  return {
    cmd: defineScripts(cluster),
    waiting: config.redisWaitReplicas > 0 ? defineScripts(new Cluster(seeds.map(parseHostPort), options('wait'))) : null,
    publishCommand: 'SPUBLISH',
    commandConnections: () => cluster.nodes('master'),
    topology: {
      sharded: true,
      ownerOf: (channel) => masterOf(keySlot(channel)),
      nodes: () => {
        const out = new Set<string>();
        for (let slot = 0; slot < 16_384; slot++) {
          const m = masterOf(slot);
          if (m) out.add(m);
        }
        return [...out];
      },
      openSubscriber: (node) => new Redis({ ...redisOptions(config, 'sub'), ...parseHostPort(node) }),
      onChange: (f) => void cluster.on('refresh', f),
      refresh: () => new Promise<void>((res) => cluster.refreshSlotsCache(() => res())),
    },
  };
}
