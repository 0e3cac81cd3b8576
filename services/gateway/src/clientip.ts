// Who the client really is, and how many connections it holds. Behind HAProxy
// every socket comes from the balancer, so the client's address is taken from
// the PROXY protocol (TCP) or X-Forwarded-For (WebSocket), but only when the
// socket's peer is a trusted proxy (TRUSTED_PROXIES: IPs or IPv4 CIDRs).
import { isIP } from 'node:net';

const stripV4Mapped = (ip: string): string => (ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip);

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}

type Matcher = (ip: string) => boolean;

function matcher(spec: string): Matcher {
  const [base, bits] = spec.split('/');
  if (bits !== undefined && base !== undefined && isIP(base) === 4) {
    const n = Number(bits);
    const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
    const net = v4ToInt(base) & mask;
    return (ip) => isIP(ip) === 4 && (v4ToInt(ip) & mask) === net;
  }
  const exact = stripV4Mapped(spec);
  return (ip) => ip === exact;
}

export class TrustedProxies {
  private readonly matchers: Matcher[];
  constructor(specs: readonly string[]) {
    this.matchers = specs.map(matcher);
  }
  has(ip: string): boolean {
    const a = stripV4Mapped(ip);
    return this.matchers.some((m) => m(a));
  }
}

/** The client address for a WebSocket upgrade: the nearest untrusted hop of X-Forwarded-For. */
export function addressFromXff(peer: string, xff: string, trusted: TrustedProxies): string {
  let ip = stripV4Mapped(peer);
  if (xff === '' || !trusted.has(ip)) return ip;
  const hops = xff
    .split(',')
    .map((s) => stripV4Mapped(s.trim()))
    .filter((s) => isIP(s) !== 0);
  // Walk from the right: each trusted hop vouches for the one before it.
  while (hops.length > 0 && trusted.has(ip)) ip = hops.pop() as string;
  return ip;
}

/**
 * PROXY protocol v1 header (`PROXY TCP4 src dst sport dport\r\n`) at the start of `buf`.
 * Returns the source address and the header length, `null` when `buf` holds no header,
 * or `'partial'` when more bytes are needed.
 */
export function parseProxyV1(buf: Buffer): { address: string; length: number } | null | 'partial' {
  const sig = 'PROXY ';
  const head = buf.subarray(0, Math.min(buf.length, sig.length)).toString('latin1');
  if (!sig.startsWith(head)) return null;
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length < 108 ? 'partial' : null; // v1 headers are at most 107 bytes
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { address: '', length };
  const src = parts[2] ?? '';
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || isIP(src) === 0) return null;
  return { address: src, length };
}

export const isLoopback = (ip: string): boolean => ip === '::1' || ip.startsWith('127.');

/** Who a connection is, for per-address budgets and limits. */
export interface ClientAddress {
  /** The client's IP (after trusted-proxy resolution), for logs. */
  ip: string;
  /** What per-address budgets count under: the IPv4 address, or the IPv6 /64. */
  key: string;
  /**
   * Exempt from per-address limits: only a loopback *socket peer* that forwarded nothing (load
   * tests and test suites on one machine). A forwarded address is never exempt, loopback or not.
   */
  exempt: boolean;
}

/** The budget key of an address: IPv4 as is, IPv6 by its /64 (one subscriber's usual allocation). */
export function addressKey(ip: string): string {
  const a = stripV4Mapped(ip);
  if (isIP(a) !== 6) return a;
  const groups = expandV6(a);
  return groups === null ? a : `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, or null. */
export function expandV6(ip: string): number[] | null {
  if (isIP(ip) !== 6) return null;
  let s = ip.split('%')[0] as string;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const n = v4ToInt(dotted[1] as string);
    s = s.slice(0, -(dotted[1] as string).length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
  return all.length === 8 && all.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? all : null;
}

/** `resolved`: the address the transport settled on; `peer`: the socket's own peer. */
export function clientAddress(peer: string, resolved: string): ClientAddress {
  const p = stripV4Mapped(peer);
  const ip = stripV4Mapped(resolved);
  return { ip, key: addressKey(ip), exempt: ip === p && (isLoopback(p) || p === '') };
}

/** Connections per client address. 0 = unlimited; exempt addresses are never limited. */
export class ConnectionsPerIp {
  private readonly counts = new Map<string, number>();
  constructor(private readonly max: number) {}

  acquire(a: ClientAddress): boolean {
    if (this.max === 0 || a.exempt) return true;
    const n = this.counts.get(a.key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(a.key, n + 1);
    return true;
  }

  release(a: ClientAddress): void {
    if (this.max === 0 || a.exempt) return;
    const n = (this.counts.get(a.key) ?? 1) - 1;
    if (n <= 0) this.counts.delete(a.key);
    else this.counts.set(a.key, n);
  }
}
