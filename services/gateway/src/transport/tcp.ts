// The seed's own wire: text over TCP on TCP_PORT. Two framings, chosen by the
// client's first bytes: lines (nc, telnet: `\n` or `\r\n`) or the original
// Python client's one-send-per-answer without newline (one read = one message,
// replies without trailing newline). The menu always ends with `\n`.
import { createServer, type Server, type Socket } from 'node:net';
import { clientAddress, parseProxyV1, type ClientAddress, type TrustedProxies } from '../clientip.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Counter } from 'prom-client';
import type { Conn, Fanout, Gate, Inbound } from '../ports.js';
import type { Encoded } from '../protocol/codecs.js';
import * as T from '../protocol/text.js';
import { listenError } from '../startup.js';
import { GroupMembers, receive, SlowConsumers, tooLarge } from './core.js';

const NL = 0x0a;
const CR = 0x0d;

/**
 * How many bytes at the end of `b` start a UTF-8 character without finishing it (0 if none):
 * a read that ended mid-character. Bytes that could never finish one are not counted (they are
 * invalid input, found when the message is decoded).
 */
export function truncatedUtf8Tail(b: Uint8Array): number {
  for (let i = 1; i <= Math.min(3, b.length); i++) {
    const byte = b[b.length - i] as number;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
    const need = byte >= 0xc2 && byte <= 0xdf ? 2 : byte >= 0xe0 && byte <= 0xef ? 3 : byte >= 0xf0 && byte <= 0xf4 ? 4 : 0;
    return need > i ? i : 0;
  }
  return 0;
}

/** Group fan-out to TCP members: each message encoded once per framing, not once per member. */
class TcpFanout implements Fanout {
  private readonly delivered: Counter.Internal;

  constructor(
    private readonly members: GroupMembers<TcpConn>,
    metrics: Metrics,
  ) {
    this.delivered = metrics.delivered.labels({ transport: 'tcp' });
  }

  publish(groupId: string, out: Encoded, exclude: Conn | null, isMessage: boolean): void {
    const list = this.members.of(groupId);
    if (list.length === 0) return;
    const text = out.text;
    if (text === null) return;
    let line: Buffer | null = null;
    let raw: Buffer | null = null;
    let n = 0;
    // A copy: a slow consumer dropped while writing leaves the group (and the list) under us.
    for (const conn of [...list]) {
      if (conn === exclude) continue;
      if (conn.mode === 'raw') conn.writeBytes((raw ??= Buffer.from(text, 'utf8')));
      else conn.writeBytes((line ??= Buffer.from(text + '\n', 'utf8')));
      n++;
    }
    if (n > 0 && isMessage) this.delivered.inc(n);
  }
}

/** What every TCP connection of this transport shares (one reference per connection). */
interface TcpShared {
  members: GroupMembers<TcpConn>;
  slow: SlowConsumers;
  maxFrameBytes: number;
  log: Logger;
}

export class TcpTransport {
  private readonly server: Server;
  private readonly shared: TcpShared;
  /** The group fan-out the node publishes through. */
  readonly fanout: Fanout;

  constructor(
    private readonly gate: Gate,
    private readonly proxies: TrustedProxies,
    private readonly config: Config,
    metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.shared = {
      members: new GroupMembers<TcpConn>(),
      slow: new SlowConsumers(config.maxBackpressureBytes, metrics, log),
      maxFrameBytes: config.maxFrameBytes,
      log,
    };
    this.fanout = new TcpFanout(this.shared.members, metrics);
    this.server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: config.tcpKeepAliveSeconds * 1000 }, (socket) => this.accept(socket));
  }

  /** Node never shares a port (no SO_REUSEPORT): a port in use rejects with a StartupError (exit 2). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const failed = (e: unknown): void => reject(listenError('TCP_PORT', this.config.host, this.config.tcpPort, e));
      this.server.once('error', failed);
      this.server.listen({ port: this.config.tcpPort, host: this.config.host, exclusive: true }, () => {
        this.server.off('error', failed);
        // Later errors (e.g. EMFILE on accept) are logged; a failed listen is the caller's.
        this.server.on('error', (e) => this.log.error({ err: e }, 'tcp server error'));
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : this.config.tcpPort);
      });
    });
  }

  /** Stop accepting; existing connections stay until drained. */
  stopAccepting(): void {
    this.server.close();
  }

  private accept(socket: Socket): void {
    // First of all: a reset on a socket we refuse or have not wrapped yet must not become an uncaught error.
    socket.on('error', () => undefined);
    if (this.gate.isDraining()) {
      socket.destroy();
      return;
    }
    const peer = socket.remoteAddress ?? '';
    if (!this.proxies.has(peer)) return this.open(socket, peer, false, null);
    // A trusted balancer speaks first: a PROXY v1 header names the real client.
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), 5000);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const h = parseProxyV1(buf);
      if (h === 'partial') return;
      clearTimeout(timer);
      socket.off('data', onData);
      // No header: the trusted peer is itself the client. A header (even `PROXY UNKNOWN`) means forwarded.
      if (h === null) return this.open(socket, peer, false, buf);
      this.open(socket, h.address || peer, true, buf.subarray(h.length));
    };
    socket.on('data', onData);
    socket.once('close', () => clearTimeout(timer));
  }

  private open(socket: Socket, address: string, forwarded: boolean, early: Buffer | null): void {
    const a = clientAddress(socket.remoteAddress ?? '', address, forwarded, this.config.loopbackExempt);
    if (!this.gate.admit(a)) {
      socket.end(T.TOO_MANY_CONNECTIONS + '\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new TcpConn(socket, this.shared, a);
    conn.inbound = this.gate.connect(conn);
    if (early && early.length > 0) conn.feed(early);
  }
}

export class TcpConn implements Conn {
  readonly codec = 'text' as const;
  readonly transport = 'tcp' as const;
  readonly address: ClientAddress;
  mode: 'unknown' | 'line' | 'raw' = 'unknown';
  inbound: Inbound | null = null;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private discarding = false;
  private gone = false;

  constructor(
    private readonly socket: Socket,
    private readonly shared: TcpShared,
    address: ClientAddress,
  ) {
    this.address = address;
    socket.on('data', (chunk) => {
      try {
        this.feed(chunk);
      } catch (e) {
        shared.log.error({ err: e }, 'tcp input failed');
        socket.destroy();
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.on('close', () => this.onClose());
  }

  write(msg: string): void {
    // Before the client's framing is known (the menu) every message ends with a newline.
    this.writeBytes(Buffer.from(this.mode === 'raw' ? msg : msg + '\n', 'utf8'));
  }

  writeBytes(b: Buffer): void {
    if (this.gone) return;
    this.socket.write(b);
    if (this.shared.slow.tooSlow('tcp', this.inbound?.id, this.socket.writableLength)) {
      this.gone = true;
      this.socket.destroy();
    }
  }

  end(_code: number, _reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.socket.end();
    // A peer that never closes its side does not keep the socket half-open.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  subscribe(groupId: string): void {
    this.shared.members.join(this, groupId);
  }

  unsubscribe(_groupId: string): void {
    this.shared.members.leave(this);
  }

  private onClose(): void {
    this.gone = true;
    this.shared.members.leave(this);
    this.inbound?.closed();
  }

  feed(chunk: Buffer): void {
    if (this.gone || !this.inbound) return;
    if (this.mode === 'unknown') this.mode = chunk.includes(NL) ? 'line' : 'raw';
    const max = this.shared.maxFrameBytes;
    if (this.mode === 'raw') {
      // One read is one message, but a read that ends mid-character is not a whole answer: the
      // seed's client sends valid UTF-8, so the rest is coming. Held up to MAX_FRAME_BYTES.
      const bytes = this.pendingLen > 0 ? Buffer.concat([...this.pending, chunk]) : chunk;
      this.pending = [];
      this.pendingLen = 0;
      if (bytes.length <= max && truncatedUtf8Tail(bytes) > 0) {
        this.pending.push(bytes === chunk ? Buffer.from(chunk) : bytes); // copy: `chunk` is not ours to keep
        this.pendingLen = bytes.length;
        return;
      }
      return this.message(bytes);
    }
    let start = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, start)) {
      const piece = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.discarding) {
        // The tail of a line already refused as too large.
        this.discarding = false;
        continue;
      }
      const line = this.pendingLen > 0 ? Buffer.concat([...this.pending, piece]) : piece;
      this.pending = [];
      this.pendingLen = 0;
      this.message(line);
    }
    const rest = chunk.subarray(start);
    if (rest.length === 0 || this.discarding) return;
    this.pendingLen += rest.length;
    if (this.pendingLen > max) {
      this.pending = [];
      this.pendingLen = 0;
      this.discarding = true;
      tooLarge(this.inbound);
      return;
    }
    this.pending.push(Buffer.from(rest)); // copy: `chunk` is not ours to keep
  }

  /** One line or read: the CR of a CRLF line end is framing, not text. */
  private message(bytes: Buffer): void {
    const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
    receive(this.inbound as Inbound, 'text', bytes.subarray(0, end), this.shared.maxFrameBytes);
  }
}
