// Start a real gateway process on free ports and wait for its [LISTENING] line.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Inbox, within } from './wait.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/services/gateway/test/helpers → dist/services/gateway/src/main.js
export const MAIN = resolve(here, '../../src/main.js');

export interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

export const tempDir = (prefix = 'chat-test-'): string => mkdtempSync(join(tmpdir(), prefix));

export class Gateway {
  readonly logs = new Inbox<LogLine>();
  /** Every stdout/stderr line, for grepping (e.g. no secrets in logs). */
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  port = 0;
  tcpPort = 0;
  metricsPort = 0;
  /** Where the test reaches it (another address for a gateway in a network namespace). */
  host = '127.0.0.1';

  constructor(
    readonly proc: ChildProcess,
    readonly env: Record<string, string>,
  ) {
    this.exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
    const onLines = (stream: NodeJS.ReadableStream | null): void => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.output.push(line);
          try {
            this.logs.push(JSON.parse(line) as LogLine);
          } catch {
            this.logs.push({ msg: line });
          }
        }
      });
    };
    onLines(proc.stdout);
    onLines(proc.stderr);
  }

  get wsUrl(): string {
    return `ws://${this.host}:${this.port}/`;
  }

  http(path: string, port = this.port): Promise<{ status: number; body: string }> {
    return fetch(`http://${this.host}:${port}${path}`).then(async (r) => ({ status: r.status, body: await r.text() }));
  }

  waitLog(msg: string, ms = 10_000, test: (l: LogLine) => boolean = () => true): Promise<LogLine> {
    return this.logs.next(ms, `log line ${msg}`, (l) => l.msg === msg && test(l));
  }

  /** Send a signal and wait for the exit, then run the cleanups (e.g. stop the gateway's own redis-server). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', ms = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    try {
      return await within(this.exited, ms, `gateway exit after ${signal}`);
    } finally {
      for (const f of this.cleanups.splice(0).reverse()) await f();
    }
  }

  private readonly cleanups: Array<() => Promise<void>> = [];

  /** Run `f` once the gateway has stopped (see stop()). */
  addCleanup(f: () => Promise<void>): void {
    this.cleanups.push(f);
  }
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Keep the TCP listener off (TCP_PORT=0). */
  noTcp?: boolean;
  /** Run it inside a network namespace (helpers/netns.ts), reached at `host` (give it HOST=0.0.0.0). */
  netns?: { spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess; host: string };
}

export async function startGateway(opts: StartOptions = {}): Promise<Gateway> {
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOST: '127.0.0.1',
    PORT: '0',
    METRICS_PORT: '0',
    TCP_PORT: opts.noTcp ? '0' : String(await freePort()),
    SCRYPT_N: '1024',
    DATA_DIR: tempDir('chat-data-'),
    LOG_LEVEL: 'info',
    DRAIN_SECONDS: '1',
    ...opts.env,
  };
  const proc = opts.netns
    ? opts.netns.spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const gw = new Gateway(proc, env);
  if (opts.netns) gw.host = opts.netns.host;
  const exitedEarly = gw.exited.then(({ code }) => {
    throw new Error(`gateway exited (${code}) before listening:\n${gw.output.join('\n')}`);
  });
  const line = await Promise.race([gw.waitLog('[LISTENING]', 15_000), exitedEarly]);
  gw.port = Number(line['port']);
  gw.tcpPort = Number(line['tcpPort']);
  gw.metricsPort = Number(line['metricsPort']);
  return gw;
}
