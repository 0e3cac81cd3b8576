// A real redis-server for tests: started on a free port in a temp dir, ready
// once it answers PING, stopped (and only it) by its PID. Restart keeps the
// port and the dir, so with appendonly the data survives.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { freePort, tempDir } from './gateway.js';
import { within } from './wait.js';

export interface RedisServerOptions {
  /** AOF on, fsync on every write: a restart (even after SIGKILL) keeps everything acknowledged. */
  appendonly?: boolean;
  /** Extra `--key value` arguments. */
  args?: string[];
  /** Listen here instead of on a free port (e.g. one below the ephemeral range, so a restart is sure to get it back). */
  port?: number;
}

/** Every redis-server this test process started: killed by PID if the process exits with them still running. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** One PING over a raw socket: true on +PONG, false on anything else (refused, LOADING, closed). */
function ping(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      s.destroy();
      res(ok);
    };
    s.setEncoding('utf8');
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

export class RedisServer {
  proc: ChildProcess | null = null;
  /** Everything the server printed, for failure messages. */
  readonly output: string[] = [];
  private readonly clients: Redis[] = [];
  private adminClient: Redis | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly opts: RedisServerOptions,
  ) {}

  static async start(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(opts.port ?? (await freePort()), tempDir('chat-redis-'), opts);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--daemonize', 'no', '--logfile', ''];
    if (this.opts.appendonly) args.push('--appendonly', 'yes', '--appendfsync', 'always');
    args.push(...(this.opts.args ?? []));
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    for (const s of [proc.stdout, proc.stderr]) s?.on('data', (d: Buffer) => this.output.push(d.toString()));
    const exited = new Promise<never>((_, rej) =>
      proc.once('exit', (code) => rej(new Error(`redis-server exited (${code}) before answering PING:\n${this.output.join('')}`))),
    );
    exited.catch(() => undefined);
    // Wait for the "ready" log line, then confirm with PING (AOF loading answers LOADING, not PONG).
    await within(
      Promise.race([
        exited,
        (async () => {
          await new Promise<void>((res) => {
            const check = (): void => {
              if (/Ready to accept connections/.test(this.output.join(''))) res();
            };
            check();
            proc.stdout?.on('data', check);
          });
          while (!(await ping(this.port))) {
            if (proc.exitCode !== null) await exited;
          }
        })(),
      ]),
      15_000,
      `redis-server on port ${this.port} to answer PING`,
    );
  }

  /** Stop this server by its PID and wait for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill(signal);
    await within(gone, 15_000, `redis-server ${p.pid} to exit after ${signal}`);
  }

  /** Stop, then start again on the same port and dir. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    this.output.length = 0;
    await this.launch();
  }

  /** A new client of the test's own (e.g. for MONITOR); closed by close(). */
  client(): Redis {
    const c = new Redis(this.url, { maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) });
    c.on('error', () => undefined);
    this.clients.push(c);
    return c;
  }

  /** The test's admin client, for inspecting and poking the server. */
  get admin(): Redis {
    this.adminClient ??= this.client();
    return this.adminClient;
  }

  /** `INFO commandstats` as command → calls. */
  async commandCalls(): Promise<Map<string, number>> {
    const info = await this.admin.info('commandstats');
    const out = new Map<string, number>();
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1] as string, Number(m[2]));
    return out;
  }

  /** Stop the server and close the test's clients. */
  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) c.disconnect();
    this.adminClient = null;
    await this.stop();
  }
}
