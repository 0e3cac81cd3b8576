// The three targets of make bench-compare, each as N node processes and one
// redis-server on free loopback ports: the gateway (Redis engine), the bare
// uWS.js + Redis peer and the Socket.IO peer (loadtest/peers/). What the
// generator needs of each: endpoints, the members' protocol, rooms to join.
import { randomBytes } from 'node:crypto';
import { WsJsonMember, type Endpoint, type Transport } from './clients.js';
import type { TargetName } from './compare-report.js';
import { removeTempDir, startGateway, startPeer, startRedis, tempDir, type Gateway, type Peer, type RedisServer } from './procs.js';

/** The password every bench group shares (gateway only; the peers have none). */
export const PASSWORD = 'bench-password';

export interface Target {
  name: TargetName;
  transport: Transport;
  nodes: Array<Gateway | Peer>;
  redis: RedisServer;
  endpoints: Endpoint[];
  /** `n` rooms to join: groups created on the gateway's node `node` (`parallel` creates at a time), names on the peers. */
  rooms(n: number, parallel: number, node?: number): Promise<string[]>;
  /** A node that exited, if any (a crash mid-run). */
  dead(): string | null;
  stop(): Promise<void>;
}

const noop = { chat: () => undefined, ack: () => undefined, error: () => undefined };

async function createGroups(gw: Gateway, n: number, parallel: number): Promise<string[]> {
  const ids: string[] = new Array<string>(n);
  let next = 0;
  const lane = async (l: number): Promise<void> => {
    const admin = new WsJsonMember(`bench-admin-${l}`, { host: '127.0.0.1', wsPort: gw.port, tcpPort: gw.tcpPort }, noop);
    await admin.connect(20_000);
    try {
      while (next < n) {
        const i = next++;
        ids[i] = await admin.create(PASSWORD, 60_000);
      }
    } finally {
      admin.terminate();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, n)) }, (_, l) => lane(l)));
  return ids;
}

/**
 * The gateway's settings beyond `make bench`'s (RATE_LIMIT_PER_SEC=0, MAX_CONNECTIONS_PER_IP=0,
 * SCRYPT_N=1024): every member joins from 127.0.0.1, and a join storm counts one attempt per node
 * for that (group, address) before scrypt runs; three nodes at once are exactly the backoff's
 * threshold, so the limit and backoff are off (0), as PROTOCOL.md allows for load tests from one
 * address. Nothing on the message path depends on them.
 */
const GATEWAY_ENV: Record<string, string> = { AUTH_MAX_FAILURES: '0', AUTH_BACKOFF_AFTER: '0' };

/** Start `name` on `nodes` nodes and one redis-server (gateway: GATEWAY_ENV, then `extraEnv`). */
export async function startTarget(name: TargetName, nodes: number, extraEnv: Record<string, string> = {}): Promise<Target> {
  const env = { ...GATEWAY_ENV, ...extraEnv };
  const dirs: string[] = [];
  const dir = (p: string): string => {
    const d = tempDir(p);
    dirs.push(d);
    return d;
  };
  const procs: Array<Gateway | Peer> = [];
  let redis: RedisServer | null = null;
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.stop()));
    await redis?.stop();
    for (const d of dirs) removeTempDir(d);
  };
  try {
    redis = await startRedis(dir('bench-cmp-redis-'));
    const url = redis.url;
    if (name === 'gateway') {
      const chatSecret = randomBytes(24).toString('base64url');
      for (let i = 0; i < nodes; i++) procs.push(await startGateway(i, dir('bench-cmp-data-'), { redisUrl: url, chatSecret, logLevel: 'info', env }));
    } else {
      for (let i = 0; i < nodes; i++) procs.push(await startPeer(name === 'bare' ? 'bare' : 'sio', i, url));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const r = redis;
  const exits = procs.map((p) => ({ p, code: undefined as number | null | undefined }));
  for (const x of exits) void x.p.exited.then((c) => (x.code = c));
  let stopping = false;
  return {
    name,
    transport: name === 'gateway' ? 'ws_json' : name === 'bare' ? 'bare' : 'sio',
    nodes: procs,
    redis: r,
    endpoints: procs.map((p) => ({ host: '127.0.0.1', wsPort: p.port, tcpPort: 'tcpPort' in p ? p.tcpPort : 0 })),
    rooms: (n, parallel, node = 0) =>
      name === 'gateway' ? createGroups(procs[node] as Gateway, n, parallel) : Promise.resolve(Array.from({ length: n }, (_, i) => `room-${i}`)),
    dead: () => {
      if (stopping) return null;
      const gone = exits.find((x) => x.code !== undefined);
      if (gone) return `${gone.p.name} exited (${gone.code}): ${gone.p.tail.slice(-3).join(' | ')}`;
      return r.proc.exitCode !== null || r.proc.signalCode !== null ? 'redis-server exited' : null;
    },
    stop: async () => {
      stopping = true;
      await stop();
    },
  };
}
