// TLS at the balancer, for tests: a local CA + server certificate from
// scripts/make-certs.sh (what `make cluster` runs), HAProxy from
// deploy/haproxy/haproxy.cfg with its TLS ports on, and a verifying TLS line client.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { freePort, tempDir } from './gateway.js';
import { HAPROXY_CFG, REPO, haproxyEnv } from './haproxy.js';
import { Inbox, until, within } from './wait.js';

export interface Certs {
  dir: string;
  /** The CA certificate (PEM text), what a client trusts. */
  ca: string;
  /** Certificate + key for HAProxy's `crt`. */
  serverPem: string;
}

export function makeCerts(): Certs {
  const dir = join(tempDir('chat-tls-'), 'tls');
  const r = spawnSync('bash', [resolve(REPO, 'scripts/make-certs.sh'), dir], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`make-certs.sh failed: ${r.stdout}${r.stderr}`);
  return { dir, ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), serverPem: join(dir, 'server.pem') };
}

export interface TlsBalancer {
  proc: ChildProcess;
  output: string[];
  ws: number;
  tcp: number;
  wss: number;
  tls: number;
  stats: number;
  stop(): Promise<void>;
}

/** HAProxy in front of `gws` (exactly three entries, repeats allowed) with wss:// and TLS TCP on. */
export async function startTlsBalancer(gws: Array<{ port: number; tcpPort: number }>, certs: Certs): Promise<TlsBalancer> {
  const lb = { ws: await freePort(), tcp: await freePort(), stats: await freePort() };
  const wss = await freePort();
  const tls = await freePort();
  const env = { ...haproxyEnv(gws, lb), LB_CERT: certs.serverPem, LB_WSS_PORT: String(wss), LB_TLS_PORT: String(tls) };
  const proc = spawn('haproxy', ['-db', '-f', HAPROXY_CFG], {
    env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  for (const s of [proc.stdout, proc.stderr]) s?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await within(exited, 10_000, 'haproxy exit');
  };
  try {
    // Every server UP in both backends (HAProxy's own /readyz checks).
    await until(
      async () => {
        if (proc.exitCode !== null) throw new Error(`haproxy exited: ${output.join('')}`);
        try {
          const csv = await (await fetch(`http://127.0.0.1:${lb.stats}/stats;csv`)).text();
          const rows = csv.split('\n').map((l) => l.split(','));
          const servers = rows.filter((f) => f[0]?.startsWith('gateways_') && f[1] !== 'BACKEND' && f[1] !== 'FRONTEND');
          return servers.length === 2 * gws.length && servers.every((f) => f[17] === 'UP');
        } catch {
          return false;
        }
      },
      15_000,
      'HAProxy (TLS) to see every gateway UP',
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { proc, output, ...lb, wss, tls, stop };
}

/** A line client over TLS that verifies the chain against `ca` and the name. */
export class TlsLineClient {
  readonly lines = new Inbox<string>();
  readonly closed: Promise<void>;
  private buf = '';

  private constructor(readonly socket: TLSSocket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    this.closed = new Promise((res) => socket.once('close', () => res()));
    socket.on('error', () => undefined);
  }

  static connect(port: number, opts: { ca?: string; servername?: string; localAddress?: string } = {}): Promise<TlsLineClient> {
    return within(
      new Promise<TlsLineClient>((res, rej) => {
        const s = connect({
          host: '127.0.0.1',
          port,
          servername: opts.servername ?? 'localhost',
          ...(opts.ca ? { ca: [opts.ca] } : {}),
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        });
        s.once('secureConnect', () => res(new TlsLineClient(s)));
        s.once('error', rej);
      }),
      5000,
      `TLS handshake on ${port}`,
    );
  }

  send(line: string): void {
    this.socket.write(line + '\n');
  }

  next(ms = 5000): Promise<string> {
    return this.lines.next(ms, 'a line over TLS');
  }

  async nextLines(n: number, ms = 5000): Promise<string> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(ms));
    return out.join('\n');
  }

  close(): void {
    this.socket.end();
  }
}
