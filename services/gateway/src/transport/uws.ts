// WebSocket (text and JSON) and the public HTTP endpoints on PORT.
// The only file that imports uWebSockets.js.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import uWS from 'uWebSockets.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ChatNode, Client } from '../node.js';
import type { Conn, Fanout, TransportLabel } from '../ports.js';
import type { Codec } from '../protocol/codecs.js';
import { isFrameError, parseClientFrame } from '../protocol/frames.js';
import { decodeUtf8 } from '../protocol/hygiene.js';
import * as T from '../protocol/text.js';
import { healthz, readyz } from '../health.js';
import { clientAddress, resolveXff, type ClientAddress } from '../clientip.js';
import { listenError } from '../startup.js';

/**
 * The npm build we install silently falls back to a slow JavaScript shim when
 * its native binary does not load. Refuse to run on the shim.
 */
export function assertNativeUws(): void {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('uWebSockets.js/package.json'));
  const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  const loaded = require.cache[binary];
  const native = loaded !== undefined && loaded.exports === uWS && Function.prototype.toString.call(uWS.App).includes('[native code]');
  if (!native)
    throw new Error(
      `uWebSockets.js is not running its native build (expected ${binary} for Node ${process.version}); ` +
        'refusing to start on the JavaScript fallback',
    );
}

const SUBPROTOCOLS: Record<string, Codec> = { 'chat.text': 'text', 'chat.json': 'json' };
const topic = (groupId: string, codec: Codec): string => `g/${groupId}/${codec}`;
/** Members whose send buffer is looked at after each group publish. */
const CHECKS_PER_PUBLISH = 4;

interface WsData {
  codec: Codec;
  address: ClientAddress;
  client: Client | null;
  /** The socket is gone: never touch `ws` again. */
  closed: boolean;
  ending: boolean;
  conn: WsConn | null;
}

export class UwsTransport implements Fanout {
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | null = null;
  private readonly groups = new Map<string, { members: WsConn[]; cursor: number }>();
  private readonly pending = new Map<WsConn, string[]>();
  private flushScheduled = false;
  private inHandler = false;

  constructor(
    private readonly node: ChatNode,
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.app = uWS.App();
    this.app
      .get('/healthz', (res) => {
        const r = healthz();
        res.writeStatus(r.status).end(r.body);
      })
      .get('/readyz', (res) => {
        const r = readyz(node);
        res.writeStatus(r.status).end(r.body);
      })
      .ws<WsData>('/*', {
        compression: uWS.DISABLED,
        // Frames up to 4× the limit get a `too_large` error; beyond that uWS closes with 1009.
        maxPayloadLength: config.maxFrameBytes * 4,
        maxBackpressure: config.maxBackpressureBytes * 2,
        closeOnBackpressureLimit: 1, // typed as number in this build; it is a flag
        idleTimeout: config.idleTimeoutSeconds,
        sendPingsAutomatically: true,
        // An exception escaping a uWS handler would take the whole node down: contain it.
        upgrade: (res, req, context) => this.guard('upgrade', () => this.upgrade(res, req, context)),
        open: (ws) => this.guard('open', () => this.open(ws)),
        message: (ws, msg, isBinary) => this.guard('message', () => this.message(ws, msg, isBinary)),
        close: (ws, code, msg) => this.guard('close', () => this.onClose(ws, code, msg)),
      })
      .any('/*', (res) => {
        res.writeStatus('404 Not Found').end('not found\n');
      });
  }

  private guard(where: string, f: () => void): void {
    this.inHandler = true;
    try {
      f();
    } catch (e) {
      this.log.error({ where, err: e }, 'websocket handler failed');
    } finally {
      this.inHandler = false;
    }
  }

  /**
   * Writes. Inside a uWS handler uWS corks by itself. Everything else (acks,
   * replies after an engine call) comes from promise continuations, where each
   * send would be its own syscall: those wait in `pending` and go out corked,
   * once per socket per event-loop turn. Order per socket is kept: a write
   * queues behind that socket's pending ones, and pending writes are flushed
   * before any topic publish and before a close.
   */
  write(conn: WsConn, msg: string): void {
    const q = this.pending.get(conn);
    if (q) q.push(msg);
    else if (this.inHandler) conn.sendNow([msg]);
    else {
      this.pending.set(conn, [msg]);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.guard('flush', () => this.flushAll()));
      }
    }
  }

  flushAll(): void {
    this.flushScheduled = false;
    if (this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending.clear();
    for (const [conn, msgs] of batch) conn.sendNow(msgs);
  }

  flush(conn: WsConn): void {
    const q = this.pending.get(conn);
    if (!q) return;
    this.pending.delete(conn);
    conn.sendNow(q);
  }

  forget(conn: WsConn): void {
    this.pending.delete(conn);
  }

  /**
   * Slow consumers. uWS can close a socket past its backpressure limit itself, but then the close
   * looks like any dropped connection (1006) and cannot be counted. So uWS's own limit is a safety
   * net at twice the bound, and the gateway closes sockets past the bound itself: after every
   * direct send, and after each group publish for a few members in turn (O(1) per message, so every
   * member of a busy group is looked at every few messages).
   */
  private checkGroup(groupId: string): void {
    const g = this.groups.get(groupId);
    if (!g || g.members.length === 0) return;
    for (let i = 0; i < Math.min(CHECKS_PER_PUBLISH, g.members.length); i++) {
      g.cursor = (g.cursor + 1) % g.members.length;
      (g.members[g.cursor] as WsConn).checkBackpressure();
    }
  }

  /**
   * Listen with an exclusive port: uWS sets SO_REUSEPORT by default, so a second gateway on the
   * same PORT would start and take half the connections. Rejects with a StartupError (exit 2).
   */
  listen(): Promise<number> {
    const { host, port } = this.config;
    const exclusive = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT;
    if (exclusive === undefined) throw new Error('this uWebSockets.js build has no LIBUS_LISTEN_EXCLUSIVE_PORT');
    // The typings lack the (host, port, options, cb) form the native build takes.
    const listen = this.app.listen as unknown as (h: string, p: number, o: number, cb: (ls: uWS.us_listen_socket | false) => void) => void;
    return new Promise((resolve, reject) => {
      listen.call(this.app, host, port, exclusive, (ls) => {
        if (!ls) return reject(listenError('PORT', host, port, null));
        this.listenSocket = ls;
        resolve(uWS.us_socket_local_port(ls));
      });
    });
  }

  close(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }

  publish(groupId: string, text: string, json: string, exclude: Conn | null, isMessage: boolean): void {
    this.publishTopic(topic(groupId, 'text'), text, isMessage ? 'ws_text' : null, exclude);
    this.publishTopic(topic(groupId, 'json'), json, isMessage ? 'ws_json' : null, exclude);
    this.checkGroup(groupId);
  }

  join(conn: WsConn, groupId: string): void {
    let g = this.groups.get(groupId);
    if (!g) this.groups.set(groupId, (g = { members: [], cursor: 0 }));
    g.members.push(conn);
  }

  leave(conn: WsConn, groupId: string): void {
    const g = this.groups.get(groupId);
    if (!g) return;
    const i = g.members.indexOf(conn);
    if (i >= 0) g.members.splice(i, 1);
    if (g.members.length === 0) this.groups.delete(groupId);
  }

  slowConsumer(conn: WsConn, buffered: number): void {
    this.metrics.slowConsumers.inc({ transport: conn.transport });
    this.log.warn({ conn: conn.data.client?.memberId, transport: conn.transport, queued: buffered }, 'slow consumer closed');
  }

  private publishTopic(t: string, msg: string, label: TransportLabel | null, exclude: Conn | null): void {
    let n = this.app.numSubscribers(t);
    if (n === 0) return;
    this.flushAll(); // what was written to members before this message goes out before it
    if (exclude instanceof WsConn && !exclude.data.closed && exclude.ws.isSubscribed(t)) {
      exclude.ws.publish(t, msg, false); // uWS skips the publishing socket itself
      n--;
    } else this.app.publish(t, msg, false);
    if (n > 0 && label) this.metrics.delivered.inc({ transport: label }, n);
  }

  private upgrade(res: uWS.HttpResponse, req: uWS.HttpRequest, context: uWS.us_socket_context_t): void {
    const key = req.getHeader('sec-websocket-key');
    const offered = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
    // Every X-Forwarded-For header, in order (getHeader returns only the first, which a client may have sent).
    const xff: string[] = [];
    req.forEach((k, v) => {
      if (k === 'x-forwarded-for') xff.push(v);
    });
    const r = resolveXff(peer, xff, this.node.trustedProxies);
    const address = clientAddress(peer, r.ip, r.forwarded, this.config.loopbackExempt);
    if (this.node.isDraining()) {
      this.metrics.framesRejected.inc({ reason: 'draining' });
      res.writeStatus('503 Service Unavailable').end('draining\n');
      return;
    }
    const allowed = this.config.allowedOrigins;
    // Browsers always send Origin; clients without one (CLIs, servers) are not the CSWSH risk.
    if (allowed !== null && origin !== '' && !allowed.includes(origin)) {
      this.metrics.framesRejected.inc({ reason: 'origin' });
      res.writeStatus('403 Forbidden').end('origin not allowed\n');
      return;
    }
    let codec: Codec = 'text';
    let chosen = '';
    const wanted = offered
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (wanted.length > 0) {
      const match = wanted.find((p) => Object.hasOwn(SUBPROTOCOLS, p));
      if (match === undefined) {
        this.metrics.framesRejected.inc({ reason: 'subprotocol' });
        res.writeStatus('400 Bad Request').end('unsupported subprotocol: use chat.text or chat.json\n');
        return;
      }
      codec = SUBPROTOCOLS[match] as Codec;
      chosen = match;
    }
    if (!this.node.admit(address)) {
      res.writeStatus('429 Too Many Requests').end(T.TOO_MANY_CONNECTIONS + '\n');
      return;
    }
    res.upgrade<WsData>({ codec, address, client: null, closed: false, ending: false, conn: null }, key, chosen, extensions, context);
  }

  private open(ws: uWS.WebSocket<WsData>): void {
    const data = ws.getUserData();
    const conn = new WsConn(ws, data, this, this.config.maxBackpressureBytes);
    data.conn = conn;
    data.client = this.node.connect(conn);
  }

  private message(ws: uWS.WebSocket<WsData>, msg: ArrayBuffer, isBinary: boolean): void {
    const data = ws.getUserData();
    const c = data.client;
    if (!c) return;
    if (isBinary) return this.node.reject(c, 'invalid_input', 'binary', T.INVALID_INPUT);
    if (msg.byteLength > this.config.maxFrameBytes) return this.node.reject(c, 'too_large', 'too_large', T.TOO_LARGE);
    const text = decodeUtf8(msg);
    if (text === undefined) return this.node.reject(c, 'invalid_input', 'invalid_utf8', T.INVALID_INPUT);
    if (data.codec === 'text') return this.node.input(c, { kind: 'text', text }, msg.byteLength);
    const op = parseClientFrame(text);
    if (isFrameError(op)) return this.node.reject(c, op.error, op.reason, op.message);
    this.node.input(c, { kind: 'op', op }, msg.byteLength);
  }

  private onClose(ws: uWS.WebSocket<WsData>, code: number, msg: ArrayBuffer): void {
    const data = ws.getUserData();
    data.closed = true;
    if (data.conn) {
      for (const g of data.conn.groups) this.leave(data.conn, g);
      this.forget(data.conn);
    }
    this.log.debug({ conn: data.client?.memberId, code, reason: Buffer.from(msg).toString() }, 'ws closed');
    if (data.client) this.node.disconnected(data.client);
  }
}

class WsConn implements Conn {
  readonly codec: Codec;
  readonly transport: TransportLabel;
  readonly address: ClientAddress;
  readonly groups = new Set<string>();

  constructor(
    readonly ws: uWS.WebSocket<WsData>,
    readonly data: WsData,
    private readonly t: UwsTransport,
    private readonly maxBuffered: number,
  ) {
    this.codec = data.codec;
    this.transport = data.codec === 'json' ? 'ws_json' : 'ws_text';
    this.address = data.address;
  }

  write(msg: string): void {
    if (this.data.closed || this.data.ending) return;
    this.t.write(this, msg);
  }

  /** Send now, corked: one syscall for the lot. */
  sendNow(msgs: string[]): void {
    if (this.data.closed || this.data.ending) return;
    if (msgs.length === 1) this.ws.send(msgs[0] as string, false);
    else
      this.ws.cork(() => {
        for (const m of msgs) this.ws.send(m, false);
      });
    this.checkBackpressure();
  }

  /** Close (without a close frame: it would queue behind the backlog) once past the bound. */
  checkBackpressure(): void {
    if (this.data.closed || this.data.ending) return;
    const buffered = this.ws.getBufferedAmount();
    if (buffered <= this.maxBuffered) return;
    this.data.ending = true;
    this.t.slowConsumer(this, buffered);
    this.ws.close();
  }

  end(code: number, reason: string): void {
    if (this.data.closed || this.data.ending) return;
    this.t.flush(this);
    if (this.data.closed || this.data.ending) return; // the flush found it a slow consumer
    this.data.ending = true;
    this.ws.end(code, reason);
  }

  subscribe(groupId: string): void {
    if (this.data.closed) return;
    this.ws.subscribe(topic(groupId, this.codec));
    this.groups.add(groupId);
    this.t.join(this, groupId);
  }

  unsubscribe(groupId: string): void {
    if (this.groups.delete(groupId)) this.t.leave(this, groupId);
    if (!this.data.closed) this.ws.unsubscribe(topic(groupId, this.codec));
  }
}
