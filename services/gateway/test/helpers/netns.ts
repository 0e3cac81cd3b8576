// A network namespace joined to this one by a veth pair, for faults that loopback cannot make:
// a link that goes away without a FIN or an RST (half-open connections), a partition between
// two processes. Needs root and `ip` (iproute2). Everything made here is removed by remove(),
// and by an exit handler if the test dies first.
//   host side: <hostIf> with <hostAddr>/30     namespace side: <nsIf> with <nsAddr>/30
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomInt } from 'node:crypto';

const made = new Set<NetNs>();
process.once('exit', () => {
  for (const ns of made) ns.removeSync();
});

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** True when this process may make namespaces (root with `ip`); tests skip (or fail under CI) otherwise. */
export function canMakeNamespaces(): boolean {
  try {
    if (process.getuid?.() !== 0) return false;
    ip('netns', 'list');
    return true;
  } catch {
    return false;
  }
}

export class NetNs {
  private readonly procs = new Set<ChildProcess>();
  private gone = false;

  private constructor(
    readonly name: string,
    readonly hostIf: string,
    readonly nsIf: string,
    readonly hostAddr: string,
    readonly nsAddr: string,
  ) {}

  /** A fresh namespace and veth pair on a /30 of 10.200–250.x.y that no interface here uses. */
  static create(tag: string): NetNs {
    const used = ip('-o', '-4', 'addr', 'show');
    let base = '';
    for (let tries = 0; tries < 50 && !base; tries++) {
      const b = `10.${randomInt(200, 251)}.${randomInt(0, 256)}.`;
      const quad = randomInt(0, 64) * 4;
      if (!used.includes(b)) base = `${b}${quad}`;
    }
    if (!base) throw new Error('netns: no free 10.x.y.z/30 found');
    const [a, b, c, d] = base.split('.').map(Number) as [number, number, number, number];
    const id = `${process.pid % 100000}${randomInt(0, 1000)}`;
    const ns = new NetNs(`chat-${tag}-${id}`, `vh${id}`.slice(0, 15), `vn${id}`.slice(0, 15), `${a}.${b}.${c}.${d + 1}`, `${a}.${b}.${c}.${d + 2}`);
    made.add(ns);
    try {
      ip('netns', 'add', ns.name);
      ip('link', 'add', ns.hostIf, 'type', 'veth', 'peer', 'name', ns.nsIf);
      ip('link', 'set', ns.nsIf, 'netns', ns.name);
      ip('addr', 'add', `${ns.hostAddr}/30`, 'dev', ns.hostIf);
      ip('link', 'set', ns.hostIf, 'up');
      ip('-n', ns.name, 'addr', 'add', `${ns.nsAddr}/30`, 'dev', ns.nsIf);
      ip('-n', ns.name, 'link', 'set', ns.nsIf, 'up');
      ip('-n', ns.name, 'link', 'set', 'lo', 'up');
    } catch (e) {
      ns.removeSync();
      throw e;
    }
    return ns;
  }

  /** Run a program inside the namespace; it is killed (SIGKILL, by PID) by remove(). */
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
    return p;
  }

  /**
   * Take the namespace's end of the link down: from then on nothing crosses, in either direction,
   * and nothing is said about it (no FIN, no RST) — to the host side it is a cable pulled out.
   */
  linkDown(): void {
    ip('-n', this.name, 'link', 'set', this.nsIf, 'down');
  }

  linkUp(): void {
    ip('-n', this.name, 'link', 'set', this.nsIf, 'up');
  }

  /** Kill what spawn() started, then delete the namespace (its veth end goes with it, and the pair). */
  removeSync(): void {
    if (this.gone) return;
    this.gone = true;
    made.delete(this);
    for (const p of this.procs) if (p.pid !== undefined && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    try {
      ip('netns', 'del', this.name);
    } catch {
      // not made, or already gone
    }
    try {
      ip('link', 'del', this.hostIf);
    } catch {
      // went with the namespace
    }
  }
}
