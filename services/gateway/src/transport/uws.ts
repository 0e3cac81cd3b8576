// WebSocket (text and JSON) and the public HTTP endpoints on PORT.
// The only file that imports uWebSockets.js.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Counter } from 'prom-client';
import uWS from 'uWebSockets.js';
import { clientAddress, resolveXff, type ClientAddress, type TrustedProxies } from '../clientip.js';
import type { Config } from '../config.js';
import { balancerCheck, healthz, readyz } from '../health.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ApiPort, ApiResponse, Conn, Fanout, Gate, Inbound, TransportLabel } from '../ports.js';
import type { Codec, Encoded } from '../protocol/codecs.js';
import * as T from '../protocol/text.js';
import { listenError } from '../startup.js';
import { CACHE_CONTROL, loadWebFiles, notModified, SECURITY_HEADERS, WEB_DIR, type WebFile } from '../web.js';
import { GroupMembers, receive, SlowConsumers } from './core.js';

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

/**
 * The socket's user data: just its WsConn, made at the upgrade. uWS copies the user data's
 * properties onto each WebSocket object, so one property here is one per connection; more spill
 * into a property array of their own (measured: 72 B per connection, issue 11).
 */
interface WsData {
  conn: WsConn;
}

/**
 * Writes. Inside a uWS handler uWS corks by itself. Everything else (acks,
 * replies after an engine call) comes from promise continuations, where each
 * send would be its own syscall: those wait in `pending` and go out corked,
 * once per socket per event-loop turn. Order per socket is kept: a write
 * queues behind that socket's pending ones, and pending writes are flushed
 * before any topic publish and before a close.
 */
class Writes {
  private readonly pending = new Map<WsConn, string[]>();
  private flushScheduled = false;
  inHandler = false;

  constructor(private readonly guard: (where: string, f: () => void) => void) {}

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
}

/** What every WebSocket connection of this transport shares (one reference per connection). */
interface WsShared {
  writes: Writes;
  members: GroupMembers<WsConn>;
  slow: SlowConsumers;
}

/**
 * Group fan-out through uWS topics (`g/<id>/<codec>`): one native publish per codec. Slow
 * consumers: uWS can close a socket past its backpressure limit itself, but then the close looks
 * like any dropped connection (1006) and cannot be counted. So uWS's own limit is a safety net at
 * twice the bound, and the gateway closes sockets past the bound itself: after every direct send,
 * and after each group publish for a few members in turn (O(1) per message, so every member of a
 * busy group is looked at every few messages).
 */
class UwsFanout implements Fanout {
  /** chat_messages_delivered_total per codec, its labels bound once. */
  private readonly delivered: Record<Codec, Counter.Internal>;

  constructor(
    private readonly app: uWS.TemplatedApp,
    private readonly shared: WsShared,
    metrics: Metrics,
  ) {
    this.delivered = { text: metrics.delivered.labels({ transport: 'ws_text' }), json: metrics.delivered.labels({ transport: 'ws_json' }) };
  }

  publish(groupId: string, out: Encoded, exclude: Conn | null, isMessage: boolean): void {
    this.publishTopic(topic(groupId, 'text'), out, 'text', isMessage, exclude);
    this.publishTopic(topic(groupId, 'json'), out, 'json', isMessage, exclude);
    this.shared.members.inTurn(groupId, CHECKS_PER_PUBLISH, checkBackpressure);
  }

  /** Encoded only when the topic has subscribers. */
  private publishTopic(t: string, out: Encoded, codec: Codec, isMessage: boolean, exclude: Conn | null): void {
    let n = this.app.numSubscribers(t);
    if (n === 0) return;
    const msg = codec === 'text' ? out.text : out.json;
    if (msg === null) return;
    this.shared.writes.flushAll(); // what was written to members before this message goes out before it
    if (exclude instanceof WsConn && !exclude.closed && exclude.ws.isSubscribed(t)) {
      exclude.ws.publish(t, msg, false); // uWS skips the publishing socket itself
      n--;
    } else this.app.publish(t, msg, false);
    if (n > 0 && isMessage) this.delivered[codec].inc(n);
  }
}

export class UwsTransport {
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | null = null;
  private readonly shared: WsShared;
  /** The group fan-out the node publishes through. */
  readonly fanout: Fanout;

  constructor(
    private readonly gate: Gate,
    private readonly proxies: TrustedProxies,
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** The server HTTP API (api.ts): every `/api/` request goes to it (it answers 404 while API_KEY is unset). */
    api: ApiPort | null = null,
  ) {
    this.app = uWS.App();
    if (api) this.app.any('/api/*', (res, req) => this.guard('api', () => serveApi(api, res, req, this.log)));
    this.shared = {
      writes: new Writes((where, f) => this.guard(where, f)),
      members: new GroupMembers<WsConn>(),
      slow: new SlowConsumers(config.maxBackpressureBytes, metrics, log),
    };
    this.fanout = new UwsFanout(this.app, this.shared, metrics);
    // The web client (web.ts): a few fixed routes, in memory. Registered before the WebSocket route:
    // a GET with an Upgrade header is passed on to it (setYield), so ws://host/ still upgrades.
    for (const f of this.webFiles()) {
      this.app
        .get(f.route, (res, req) => this.guard('static', () => this.serveStatic(res, req, f, false)))
        .head(f.route, (res, req) => this.guard('static', () => this.serveStatic(res, req, f, true)));
    }
    this.app
      .get('/healthz', (res) => {
        const r = healthz();
        res.writeStatus(r.status).end(r.body);
      })
      .get('/readyz', (res) => {
        const r = readyz(gate);
        res.writeStatus(r.status).end(r.body);
      })
      .get('/readyz/balancer', (res) => {
        const r = balancerCheck(gate);
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
        res.writeStatus('404 Not Found').end(`${T.HTTP_NOT_FOUND}\n`);
      });
  }

  /** The web client's files; without them (a broken install) the gateway still serves chat, and `/` is 404. */
  private webFiles(): WebFile[] {
    try {
      return loadWebFiles();
    } catch (e) {
      this.log.warn({ dir: WEB_DIR, err: e }, 'web client files missing: / answers 404');
      return [];
    }
  }

  private serveStatic(res: uWS.HttpResponse, req: uWS.HttpRequest, f: WebFile, head: boolean): void {
    if (req.getHeader('upgrade').toLowerCase() === 'websocket') {
      req.setYield(true); // a WebSocket upgrade: the .ws route takes it
      return;
    }
    const fresh = notModified(req.getHeader('if-none-match'), f.etag);
    res.cork(() => {
      res.writeStatus(fresh ? '304 Not Modified' : '200 OK');
      for (const [k, v] of SECURITY_HEADERS) res.writeHeader(k, v);
      res.writeHeader('Cache-Control', CACHE_CONTROL).writeHeader('ETag', f.etag);
      // (endWithoutBody with a length argument never responds in this uWS build: HEAD goes without Content-Length.)
      if (fresh) return void res.endWithoutBody();
      res.writeHeader('Content-Type', f.contentType);
      if (head) res.endWithoutBody();
      else sendBody(res, f.body);
    });
  }

  private guard(where: string, f: () => void): void {
    const writes = this.shared.writes;
    writes.inHandler = true;
    try {
      f();
    } catch (e) {
      this.log.error({ where, err: e }, 'websocket handler failed');
    } finally {
      writes.inHandler = false;
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

  private refuse(res: uWS.HttpResponse, reason: 'draining' | 'origin' | 'subprotocol' | null, status: string, body: string): void {
    if (reason) this.metrics.framesRejected.inc({ reason });
    res.writeStatus(status).end(`${body}\n`);
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
    const r = resolveXff(peer, xff, this.proxies);
    const address = clientAddress(peer, r.ip, r.forwarded, this.config.loopbackExempt);
    if (this.gate.isDraining()) return this.refuse(res, 'draining', '503 Service Unavailable', T.HTTP_DRAINING);
    const allowed = this.config.allowedOrigins;
    // Browsers always send Origin; clients without one (CLIs, servers) are not the CSWSH risk.
    if (allowed !== null && origin !== '' && !allowed.includes(origin)) return this.refuse(res, 'origin', '403 Forbidden', T.HTTP_ORIGIN_REFUSED);
    let codec: Codec = 'text';
    let chosen = '';
    const wanted = offered
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (wanted.length > 0) {
      const match = wanted.find((p) => Object.hasOwn(SUBPROTOCOLS, p));
      if (match === undefined) return this.refuse(res, 'subprotocol', '400 Bad Request', T.HTTP_BAD_SUBPROTOCOL);
      codec = SUBPROTOCOLS[match] as Codec;
      chosen = match;
    }
    // Counted by the gate (ip_limit).
    if (!this.gate.admit(address)) return this.refuse(res, null, '429 Too Many Requests', T.TOO_MANY_CONNECTIONS);
    res.upgrade<WsData>({ conn: new WsConn(codec, address, this.shared) }, key, chosen, extensions, context);
  }

  private open(ws: uWS.WebSocket<WsData>): void {
    const conn = ws.getUserData().conn;
    conn.opened(ws);
    conn.inbound = this.gate.connect(conn);
  }

  private message(ws: uWS.WebSocket<WsData>, msg: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData().conn;
    const inbound = conn.inbound;
    if (!inbound) return;
    if (isBinary) return inbound.reject('invalid_input', 'binary', T.INVALID_INPUT);
    receive(inbound, conn.codec, msg, this.config.maxFrameBytes);
  }

  private onClose(ws: uWS.WebSocket<WsData>, code: number, msg: ArrayBuffer): void {
    const conn = ws.getUserData().conn;
    conn.closed = true;
    this.shared.members.leave(conn);
    this.shared.writes.forget(conn);
    this.log.debug({ conn: conn.inbound?.id, code, reason: Buffer.from(msg).toString() }, 'ws closed');
    conn.inbound?.closed();
  }
}

/**
 * A body written as the socket takes it, never buffered whole: `end()` would queue what the socket
 * does not take at once, and a client that pipelines requests without reading would make the node
 * hold a copy per request. While a response is unfinished uWS reads no further request from that
 * connection, so each one holds at most the rest of one file (the body itself is shared).
 */
function sendBody(res: uWS.HttpResponse, body: Buffer): void {
  const [, done] = res.tryEnd(body, body.length);
  if (done) return;
  res.onAborted(() => {}); // the client went: nothing to release
  res.onWritable((offset) => res.tryEnd(body.subarray(offset), body.length)[0]);
}

const checkBackpressure = (c: WsConn): void => c.checkBackpressure();

const HTTP_STATUS: Record<number, string> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
};

/**
 * One server API request: read what uWS gives only inside the handler, then the body (up to the
 * port's bound; past it the rest is not read), then write the answer corked, unless the client went.
 */
function serveApi(api: ApiPort, res: uWS.HttpResponse, req: uWS.HttpRequest, log: Logger): void {
  const method = req.getCaseSensitiveMethod().toUpperCase();
  const path = req.getUrl();
  const query = req.getQuery() ?? '';
  const authorization = req.getHeader('authorization');
  const length = req.getHeader('content-length');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const answer = (body: Uint8Array | 'too_large'): void => {
    api.handle({ method, path, query, authorization, body }).then(
      (r) => write(r),
      (e: unknown) => {
        log.error({ err: e }, 'api handler failed');
        write({ status: 503, body: null });
      },
    );
  };
  const write = (r: ApiResponse): void => {
    if (aborted) return;
    aborted = true; // answered: nothing more goes out
    res.cork(() => {
      res.writeStatus(HTTP_STATUS[r.status] ?? `${r.status} Error`);
      if (r.body === null) res.endWithoutBody();
      else res.writeHeader('Content-Type', 'application/json').end(r.body);
    });
  };
  const declared = length === '' ? 0 : Number(length);
  if (Number.isFinite(declared) && declared > api.maxBodyBytes) return answer('too_large');
  if (method !== 'POST' && length === '' && req.getHeader('transfer-encoding') === '') return answer(new Uint8Array(0));
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    if (size > api.maxBodyBytes) return;
    size += chunk.byteLength;
    if (size > api.maxBodyBytes) return answer('too_large');
    chunks.push(Buffer.from(new Uint8Array(chunk))); // a copy: uWS reuses the chunk's memory
    if (isLast) answer(Buffer.concat(chunks));
  });
}

/** One WebSocket connection: made at the upgrade, its socket given at open. */
class WsConn implements Conn {
  readonly transport: TransportLabel;
  /** Set at open (the upgrade comes first); nothing reaches a WsConn before. */
  ws!: uWS.WebSocket<WsData>;
  inbound: Inbound | null = null;
  /** The socket is gone: never touch `ws` again. */
  closed = false;
  ending = false;

  constructor(
    readonly codec: Codec,
    readonly address: ClientAddress,
    private readonly shared: WsShared,
  ) {
    this.transport = codec === 'json' ? 'ws_json' : 'ws_text';
  }

  opened(ws: uWS.WebSocket<WsData>): void {
    this.ws = ws;
  }

  write(msg: string): void {
    if (this.closed || this.ending) return;
    this.shared.writes.write(this, msg);
  }

  /** Send now, corked: one syscall for the lot. */
  sendNow(msgs: string[]): void {
    if (this.closed || this.ending) return;
    if (msgs.length === 1) this.ws.send(msgs[0] as string, false);
    else
      this.ws.cork(() => {
        for (const m of msgs) this.ws.send(m, false);
      });
    this.checkBackpressure();
  }

  /** Close (without a close frame: it would queue behind the backlog) once past the bound. */
  checkBackpressure(): void {
    if (this.closed || this.ending) return;
    if (!this.shared.slow.tooSlow(this.transport, this.inbound?.id, this.ws.getBufferedAmount())) return;
    this.ending = true;
    this.ws.close();
  }

  end(code: number, reason: string): void {
    if (this.closed || this.ending) return;
    this.shared.writes.flush(this);
    if (this.closed || this.ending) return; // the flush found it a slow consumer
    this.ending = true;
    this.ws.end(code, reason);
  }

  subscribe(groupId: string): void {
    if (this.closed) return;
    this.ws.subscribe(topic(groupId, this.codec));
    this.shared.members.join(this, groupId);
  }

  unsubscribe(groupId: string): void {
    this.shared.members.leave(this);
    if (!this.closed) this.ws.unsubscribe(topic(groupId, this.codec));
  }
}
