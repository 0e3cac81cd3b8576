// HAProxy from deploy/haproxy/haproxy.cfg, started by the test in front of gateways it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type Gateway } from './gateway.js';
import { until, within } from './wait.js';

/** The repository root: the nearest folder above the compiled tests that holds deploy/. */
export const REPO = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(dir, 'deploy/haproxy/haproxy.cfg')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
})();
export const HAPROXY_CFG = resolve(REPO, 'deploy/haproxy/haproxy.cfg');

export function haproxyEnv(gws: Array<{ port: number; tcpPort: number; host?: string }>, lb: { ws: number; tcp: number; stats: number }): Record<string, string> {
  const env: Record<string, string> = {
    LB_HOST: '127.0.0.1',
    LB_WS_PORT: String(lb.ws),
    LB_TCP_PORT: String(lb.tcp),
    LB_STATS_PORT: String(lb.stats),
  };
  gws.forEach((g, i) => {
    env[`GW${i + 1}_HOST`] = g.host ?? '127.0.0.1';
    env[`GW${i + 1}_PORT`] = String(g.port);
    env[`GW${i + 1}_TCP_PORT`] = String(g.tcpPort);
  });
  return env;
}

export class HaProxy {
  readonly output: string[] = [];
  private constructor(
    readonly proc: ChildProcess,
    readonly ws: number,
    readonly tcp: number,
    readonly stats: number,
  ) {
    proc.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    proc.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  /** `host`: where HAProxy listens (default 127.0.0.1; e.g. 0.0.0.0 for clients in a namespace); `env`: more of the file's settings. */
  static async start(gws: Gateway[], opts: { host?: string; env?: Record<string, string> } = {}): Promise<HaProxy> {
    const lb = { ws: await freePort(), tcp: await freePort(), stats: await freePort() };
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...haproxyEnv(gws, lb), ...opts.env };
    if (opts.host) env['LB_HOST'] = opts.host;
    const proc = spawn('haproxy', ['-db', '-f', HAPROXY_CFG], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const h = new HaProxy(proc, lb.ws, lb.tcp, lb.stats);
    try {
      await h.waitStatus(gws.map((_, i) => `gw${i + 1}`), 'UP', 15_000);
    } catch (e) {
      await h.stop().catch(() => undefined); // not left running (and holding the test's event loop)
      throw e;
    }
    return h;
  }

  /** Server name → status for both backends, from the stats CSV. */
  async statuses(): Promise<Map<string, string>> {
    const csv = await (await fetch(`http://127.0.0.1:${this.stats}/stats;csv`)).text();
    const out = new Map<string, string>();
    for (const line of csv.split('\n')) {
      const f = line.split(',');
      if (f[0]?.startsWith('gateways_') && f[1] !== 'BACKEND') out.set(`${f[0]}/${f[1]}`, f[17] ?? '');
    }
    return out;
  }

  /** Wait until every named server is in `status` in both backends (HAProxy's own checks, every 1 s). */
  async waitStatus(servers: string[], status: string, ms: number): Promise<void> {
    await until(
      async () => {
        try {
          const s = await this.statuses();
          return servers.every((n) => s.get(`gateways_ws/${n}`) === status && s.get(`gateways_tcp/${n}`) === status);
        } catch {
          return false; // not listening yet
        }
      },
      ms,
      `HAProxy to see ${servers.join(', ')} ${status}`,
    );
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    await within(new Promise((r) => (this.proc.exitCode !== null ? r(null) : this.proc.once('exit', r))), 10_000, 'haproxy exit');
  }
}
