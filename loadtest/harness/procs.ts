// The processes a run starts: gateways (and a redis-server for the Redis
// engine), each on free loopback ports, ready once it says so (never a sleep),
// and stopped by its own PID, never by name.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from './wait.js';

/** <outDir>/loadtest/harness/procs.js → <outDir>/services/gateway/src/main.js (dist/ or .tmp/bench-dist/). */
export const GATEWAY_MAIN = fileURLToPath(new URL('../../services/gateway/src/main.js', import.meta.url));
/** The peers of make bench-compare (loadtest/peers/), compiled beside the harness. */
export const PEER_MAIN = {
  bare: fileURLToPath(new URL('../peers/bare.js', import.meta.url)),
  sio: fileURLToPath(new URL('../peers/sio.js', import.meta.url)),
} as const;
export type PeerKind = keyof typeof PEER_MAIN;

const started = new Set<ChildProcess>();
const tempDirs = new Set<string>();
// However the run ends (deadline, Ctrl-C, a crash): kill what we started, by PID, and remove our temp dirs.
process.once('exit', () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A child process whose output we read line by line (and keep only the tail of). */
class Child {
  readonly exited: Promise<number | null>;
  readonly tail: string[] = [];
  errorLines = 0;
  warnLines = 0;
  private lineWaiters: Array<(line: string) => void> = [];

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    started.add(proc);
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    void this.exited.then(() => started.delete(proc));
    for (const stream of [proc.stdout, proc.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          this.line(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  private line(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 50) this.tail.shift();
    // pino levels: 40 warn, 50 error, 60 fatal.
    const level = /"level":(\d+)/.exec(line);
    if (level) {
      const n = Number(level[1]);
      if (n >= 50) this.errorLines++;
      else if (n === 40) this.warnLines++;
    }
    for (const w of this.lineWaiters) w(line);
  }

  /** The first line (from now on) that passes `test`, or fail on exit or after `ms`. */
  waitLine(test: (line: string) => boolean, ms: number, what: string): Promise<string> {
    let waiter: ((line: string) => void) | null = null;
    const found = new Promise<string>((resolve) => {
      waiter = (line) => {
        if (test(line)) resolve(line);
      };
      this.lineWaiters.push(waiter);
    });
    const died = this.exited.then((code) => {
      throw new Error(`${this.name} exited (${code}) while waiting for ${what}:\n${this.tail.join('\n')}`);
    });
    return within(Promise.race([found, died]), ms, `${this.name}: ${what}`).finally(() => {
      this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
    });
  }

  /** Signal by PID and wait for the exit; SIGKILL if it outlives `ms`. */
  async stop(ms = 15_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    try {
      await within(this.exited, ms, `${this.name} to exit`);
    } catch {
      this.proc.kill('SIGKILL');
      await within(this.exited, 5000, `${this.name} to exit after SIGKILL`);
    }
  }
}

export class Gateway extends Child {
  port = 0;
  tcpPort = 0;
  metricsPort = 0;
  baselineRss = NaN;
}

export interface GatewayOptions {
  redisUrl?: string;
  chatSecret?: string;
  logLevel: string;
  /** Extra environment (e.g. MAX_BACKPRESSURE_BYTES) from the command line. */
  env?: Record<string, string>;
  /** Extra node flags for the gateway (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export async function startGateway(index: number, dataDir: string, opts: GatewayOptions): Promise<Gateway> {
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`no compiled gateway at ${GATEWAY_MAIN}: build first (make build)`);
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOST: '127.0.0.1',
    PORT: '0',
    TCP_PORT: String(await freePort()),
    METRICS_PORT: '0',
    NODE_ID: `bench-${index}`,
    SCRYPT_N: '1024',
    RATE_LIMIT_PER_SEC: '0',
    MAX_CONNECTIONS_PER_IP: '0',
    DATA_DIR: dataDir,
    DRAIN_SECONDS: '1',
    LOG_LEVEL: opts.logLevel,
    ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl, CHAT_SECRET: opts.chatSecret ?? '' } : {}),
    ...opts.env,
  };
  const proc = spawn(process.execPath, [...SERVER_NODE_ARGS, ...(opts.nodeArgs ?? []), GATEWAY_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const gw = new Gateway(`gateway ${index}`, proc);
  const line = await gw.waitLine((l) => l.includes('"[LISTENING]"'), 20_000, '[LISTENING]');
  const parsed = JSON.parse(line) as Record<string, unknown>;
  gw.port = Number(parsed['port']);
  gw.tcpPort = Number(parsed['tcpPort']);
  gw.metricsPort = Number(parsed['metricsPort']);
  return gw;
}

/**
 * Extra node flags for every server process the harness starts (gateways and peers), e.g.
 * BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile them side by side
 * (node refuses --cpu-prof in NODE_OPTIONS).
 */
const SERVER_NODE_ARGS = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter((s) => s !== '');

/** A peer node (loadtest/peers/): one process, PORT=0, ready at its [LISTENING] line. */
export class Peer extends Child {
  port = 0;
}

export async function startPeer(kind: PeerKind, index: number, redisUrl: string): Promise<Peer> {
  const main = PEER_MAIN[kind];
  if (!existsSync(main)) throw new Error(`no compiled peer at ${main}: build first (npx tsc -p loadtest/tsconfig.json)`);
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', NODE_ID: `${kind}-${index}`, REDIS_URL: redisUrl };
  const proc = spawn(process.execPath, [...SERVER_NODE_ARGS, main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const peer = new Peer(`${kind} ${index}`, proc);
  const line = await peer.waitLine((l) => l.includes('"[LISTENING]"'), 20_000, '[LISTENING]');
  peer.port = Number((JSON.parse(line) as Record<string, unknown>)['port']);
  return peer;
}

export class RedisServer extends Child {
  port = 0;
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
}

/** A temporary directory removed when the run ends (whichever way). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

/** Remove a directory from tempDir now. */
export function removeTempDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

export async function startRedis(dir: string): Promise<RedisServer> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''];
  const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.once('error', () => undefined); // surfaces as an exit below (e.g. ENOENT)
  const r = new RedisServer('redis-server', proc);
  r.port = port;
  await r.waitLine((l) => l.includes('Ready to accept connections'), 15_000, 'Ready to accept connections');
  return r;
}

/** Everything one scenario runs against, and its clean-up. */
export class Cluster {
  private constructor(
    readonly gateways: Gateway[],
    readonly redis: RedisServer | null,
    private readonly dirs: string[],
  ) {}

  static async start(engine: 'memory' | 'redis', nodes: number, logLevel: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Cluster> {
    const dirs: string[] = [];
    const dir = (p: string): string => {
      const d = mkdtempSync(join(tmpdir(), p));
      dirs.push(d);
      tempDirs.add(d);
      return d;
    };
    let redis: RedisServer | null = null;
    const gateways: Gateway[] = [];
    try {
      if (engine === 'redis') redis = await startRedis(dir('bench-redis-'));
      const chatSecret = randomBytes(24).toString('base64url');
      const n = engine === 'redis' ? nodes : 1;
      for (let i = 0; i < n; i++) {
        const opts: GatewayOptions = redis ? { redisUrl: redis.url, chatSecret, logLevel, env, nodeArgs } : { logLevel, env, nodeArgs };
        gateways.push(await startGateway(i, dir('bench-data-'), opts));
      }
    } catch (e) {
      await Promise.all(gateways.map((g) => g.stop()));
      await redis?.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true }), tempDirs.delete(d);
      throw e;
    }
    return new Cluster(gateways, redis, dirs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.gateways.map((g) => g.stop()));
    await this.redis?.stop();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true }), tempDirs.delete(d);
  }
}
