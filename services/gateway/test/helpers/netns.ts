// A network namespace joined to this one by a veth pair, for faults that loopback cannot make:
// a link that goes away without a FIN or an RST (half-open connections), a partition between
// two processes. Needs root and `ip` (iproute2). Everything made here is removed by remove(),
// and by an exit handler if the test dies first.
//   each link: host side <hostIf> with <hostAddr>/30, namespace side <nsIf> with <nsAddr>/30
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

/** One veth pair between the host and the namespace, on a /30 of its own. */
export interface Link {
  readonly hostIf: string;
  readonly nsIf: string;
  readonly hostAddr: string;
  readonly nsAddr: string;
}

export class NetNs {
  private readonly procs = new Set<ChildProcess>();
  private readonly links: Link[] = [];
  private gone = false;

  private constructor(
    readonly name: string,
    private readonly id: string,
  ) {}

  /** The first link (the one create() makes). */
  get link(): Link {
    return this.links[0]!;
  }
  get hostAddr(): string {
    return this.link.hostAddr;
  }
  get nsAddr(): string {
    return this.link.nsAddr;
  }

  /** A fresh namespace with one veth link to the host (more with addLink()). */
  static create(tag: string): NetNs {
    const id = `${process.pid % 10000}${randomInt(0, 1000)}`;
    const ns = new NetNs(`chat-${tag}-${id}`, id);
    made.add(ns);
    try {
      ip('netns', 'add', ns.name);
      ip('-n', ns.name, 'link', 'set', 'lo', 'up');
      ns.addLink();
    } catch (e) {
      ns.removeSync();
      throw e;
    }
    return ns;
  }

  /** Another veth pair, on a /30 of 10.200–250.x.y that no interface here uses. */
  addLink(): Link {
    const used = ip('-o', '-4', 'addr', 'show');
    let base = '';
    for (let tries = 0; tries < 50 && !base; tries++) {
      const b = `10.${randomInt(200, 251)}.${randomInt(0, 256)}.`;
      if (!used.includes(b)) base = `${b}${randomInt(0, 64) * 4}`;
    }
    if (!base) throw new Error('netns: no free 10.x.y.z/30 found');
    const [a, b, c, d] = base.split('.').map(Number) as [number, number, number, number];
    const n = this.links.length;
    const link: Link = { hostIf: `vh${this.id}x${n}`.slice(0, 15), nsIf: `vn${this.id}x${n}`.slice(0, 15), hostAddr: `${a}.${b}.${c}.${d + 1}`, nsAddr: `${a}.${b}.${c}.${d + 2}` };
    ip('link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', link.nsIf);
    this.links.push(link);
    ip('link', 'set', link.nsIf, 'netns', this.name);
    ip('addr', 'add', `${link.hostAddr}/30`, 'dev', link.hostIf);
    ip('link', 'set', link.hostIf, 'up');
    ip('-n', this.name, 'addr', 'add', `${link.nsAddr}/30`, 'dev', link.nsIf);
    ip('-n', this.name, 'link', 'set', link.nsIf, 'up');
    return link;
  }

  /** Run a program inside the namespace; it is killed (SIGKILL, by PID) by remove(). */
  spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.procs.add(p);
    p.once('exit', () => this.procs.delete(p));
    return p;
  }

  /**
   * Take the namespace's end of a link down: from then on nothing crosses it, in either direction,
   * and nothing is said about it (no FIN, no RST) — to the host side it is a cable pulled out.
   */
  linkDown(link: Link = this.link): void {
    ip('-n', this.name, 'link', 'set', link.nsIf, 'down');
  }

  linkUp(link: Link = this.link): void {
    ip('-n', this.name, 'link', 'set', link.nsIf, 'up');
  }

  /** Kill what spawn() started, then delete the namespace (its veth ends go with it, and the pairs). */
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
    for (const l of this.links) {
      try {
        ip('link', 'del', l.hostIf);
      } catch {
        // went with the namespace
      }
    }
  }
}
