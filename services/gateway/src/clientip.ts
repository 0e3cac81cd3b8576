// Who the client really is, and how many connections it holds. Behind HAProxy
// every socket comes from the balancer, so the client's address is taken from
// the PROXY protocol (TCP) or X-Forwarded-For (WebSocket), but only when the
// socket's peer is a trusted proxy (TRUSTED_PROXIES: IPs or CIDRs, IPv4 or IPv6).
import { isIP } from 'node:net';

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, also spelled `::ffff:102:304`) as the IPv4 address it is. */
function stripV4Mapped(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const g = expandV6(ip);
  if (g === null || g.slice(0, 5).some((x) => x !== 0) || g[5] !== 0xffff) return ip;
  const hi = g[6] as number;
  const lo = g[7] as number;
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}

/** An IP as a family and a number (IPv6: 128 bits), or null when it is not an IP. IPv4-mapped is IPv4. */
function ipValue(ip: string): { v: 4 | 6; n: bigint } | null {
  return literalValue(stripV4Mapped(ip));
}

/** As ipValue, but an IPv4-mapped IPv6 address stays IPv6. */
function literalValue(a: string): { v: 4 | 6; n: bigint } | null {
  const fam = isIP(a);
  if (fam === 4) return { v: 4, n: BigInt(v4ToInt(a)) };
  if (fam !== 6) return null;
  const groups = expandV6(a);
  return groups === null ? null : { v: 6, n: groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** One TRUSTED_PROXIES entry: an address, or a network (CIDR). */
export interface Cidr {
  v: 4 | 6;
  /** The network, host bits cleared. */
  net: bigint;
  bits: number;
}

export class InvalidProxySpec extends Error {}

/**
 * Parse one TRUSTED_PROXIES entry: `10.1.2.3`, `10.0.0.0/8`, `2001:db8::1`, `2001:db8::/32`
 * (an IPv4-mapped IPv6 network `::ffff:a.b.c.d/n`, n ≥ 96, is the IPv4 network it maps).
 * Anything else (a prefix past 32 or 128, a hostname, a port) throws: a typo must not trust
 * more than meant.
 */
export function parseCidr(spec: string): Cidr {
  const s = spec.trim();
  const slash = s.indexOf('/');
  const base = slash < 0 ? s : s.slice(0, slash);
  const bitsText = slash < 0 ? null : s.slice(slash + 1);
  if (base.includes('%')) throw new InvalidProxySpec(`"${spec}" is not an IP address or CIDR (zone IDs are not allowed)`);
  let value = literalValue(base);
  if (value === null) throw new InvalidProxySpec(`"${spec}" is not an IP address or CIDR`);
  let max = value.v === 4 ? 32 : 128;
  let bits = max;
  if (bitsText !== null) {
    if (!/^[0-9]{1,3}$/.test(bitsText) || Number(bitsText) > max)
      throw new InvalidProxySpec(`"${spec}": the prefix length must be 0 to ${max} for an IPv${value.v} network`);
    bits = Number(bitsText);
  }
  // ::ffff:10.0.0.0/104 is 10.0.0.0/8 (a plain ::ffff:a.b.c.d already became IPv4 above).
  if (value.v === 6 && value.n >> 32n === 0xffffn && bits >= 96) {
    value = { v: 4, n: value.n & 0xffffffffn };
    bits -= 96;
    max = 32;
  }
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(max - bits);
  return { v: value.v, net: value.n & mask, bits };
}

/** Parse a whole TRUSTED_PROXIES list; throws InvalidProxySpec naming the first bad entry. */
export function parseTrustedProxies(specs: readonly string[]): Cidr[] {
  return specs.map(parseCidr);
}

/** Whether `ip` (an address, any spelling, IPv4-mapped or not) lies in `c`. */
export function cidrContains(c: Cidr, ip: string): boolean {
  const a = ipValue(ip);
  if (a === null || a.v !== c.v) return false;
  const max = c.v === 4 ? 32 : 128;
  return a.n >> BigInt(max - c.bits) === c.net >> BigInt(max - c.bits);
}

export class TrustedProxies {
  private readonly cidrs: Cidr[];
  /** Throws InvalidProxySpec on a bad entry (config.ts validates the same list first). */
  constructor(specs: readonly string[]) {
    this.cidrs = parseTrustedProxies(specs);
  }
  has(ip: string): boolean {
    return this.cidrs.some((c) => cidrContains(c, ip));
  }
}

/**
 * One X-Forwarded-For hop as an address: a bare IPv4 or IPv6 address, also `[v6]`, `[v6]:port`
 * or `v4:port` as some proxies write them. Anything else (`unknown`, a hostname, garbage): null.
 */
export function parseHop(hop: string): string | null {
  let s = hop.trim();
  const bracket = /^\[([^\]]+)\](?::[0-9]{1,5})?$/.exec(s);
  if (bracket) s = bracket[1] as string;
  else if (/^[0-9.]+:[0-9]{1,5}$/.test(s)) s = s.slice(0, s.indexOf(':'));
  if (s.includes('%')) return null;
  const a = stripV4Mapped(s);
  return isIP(a) === 0 ? null : a;
}

/** Where an address came from: `forwarded` when a trusted proxy named it (XFF or PROXY header). */
export interface Resolved {
  ip: string;
  forwarded: boolean;
}

/**
 * The client address for a WebSocket upgrade, from the socket's peer and every X-Forwarded-For
 * header in order (`xff`: one string per header). Only a trusted peer's headers count. The walk
 * goes from the right: each trusted hop vouches for the one before it, and the first hop that is
 * not trusted is the client. It stops at the first unparseable hop: the client is then the last
 * address reached (the proxy that passed the garbage on), never anything further left.
 * `forwarded` is true as soon as a trusted peer sent a header at all.
 */
export function resolveXff(peer: string, xff: readonly string[], trusted: TrustedProxies): Resolved {
  let ip = stripV4Mapped(peer);
  if (xff.length === 0 || !trusted.has(ip)) return { ip, forwarded: false };
  const hops = xff.join(',').split(',');
  while (hops.length > 0 && trusted.has(ip)) {
    const hop = parseHop(hops.pop() as string);
    if (hop === null) break;
    ip = hop;
  }
  return { ip, forwarded: true };
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
  const family = parts[1] === 'TCP4' ? 4 : parts[1] === 'TCP6' ? 6 : 0;
  if (parts.length !== 6 || family === 0 || isIP(src) !== family || src.includes('%')) return null;
  return { address: stripV4Mapped(src), length };
}

/** 127.0.0.0/8 or ::1, however spelled. */
export function isLoopback(ip: string): boolean {
  const a = ipValue(ip);
  return a !== null && (a.v === 4 ? a.n >> 24n === 127n : a.n === 1n);
}

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

/**
 * `peer`: the socket's own peer; `resolved`: the address the transport settled on; `forwarded`:
 * a trusted proxy named it (X-Forwarded-For or a PROXY header). Only a loopback peer that
 * forwarded nothing is exempt: a forwarded 127.0.0.1 (or a walk that ended back at the loopback
 * proxy) is a remote client like any other.
 */
export function clientAddress(peer: string, resolved: string, forwarded: boolean, loopbackExempt = true): ClientAddress {
  const p = stripV4Mapped(peer);
  const ip = stripV4Mapped(resolved);
  return { ip, key: addressKey(ip), exempt: loopbackExempt && !forwarded && ip === p && isLoopback(p) };
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
