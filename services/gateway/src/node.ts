// Runs sessions: feeds each connection's input through the pure session
// machine, performs its effects against the engine, owns this node's group
// hubs (one engine subscription per group with local members) and drain.
import { createHmac, randomBytes } from 'node:crypto';
import { ConnectionsPerIp, TrustedProxies } from './clientip.js';
import type { Config } from './config.js';
import { EngineUnavailableError, type ChannelEvent, type Engine, type StoredMessage } from './engine/engine.js';
import type { Logger } from './log.js';
import type { Metrics, RejectReason, TransportLabel } from './metrics.js';
import { encode, encodeJson, encodeText, type Codec } from './protocol/codecs.js';
import type { ErrorCode, ServerEvent } from './protocol/frames.js';
import * as T from './protocol/text.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { TokenBucket } from './ratelimit.js';
import { newSession, phase, step, type Call, type CallResult, type Effect, type Input, type Publish, type Session } from './session.js';
import { issueToken, verifyToken } from './tokens.js';

/** What a transport gives the node for one connection. */
export interface Conn {
  readonly codec: Codec;
  readonly transport: TransportLabel;
  /** The client's IP (after trusted-proxy resolution): logs and per-IP limits. */
  readonly remote: string;
  /** Write one encoded message; the transport adds its framing. */
  write(msg: string): void;
  /** Close once queued writes are out. */
  end(code: number, reason: string): void;
  /** Join/leave this connection's group topic for fan-out. */
  subscribe(groupId: string): void;
  unsubscribe(groupId: string): void;
}

/** A transport's group fan-out: encode once per codec, write to every local member but `exclude`. */
export interface Fanout {
  /** `isMessage`: a chat message (counted as delivered), not a notice. */
  publish(groupId: string, text: string, json: string, exclude: Conn | null, isMessage: boolean): void;
}

export const CLOSE_RESTART = 1012;
export const CLOSE_POLICY = 1008;
export const CLOSE_MENU_TIMEOUT = 4408;
const MAX_QUEUED_INPUTS = 64;
/** Chat messages one connection may have in flight (stored, not yet acked): sends pipeline up to this. */
const MAX_INFLIGHT_PUBLISHES = 256;
const AUTH_CACHE_SIZE = 10_000;

class Hub {
  seq = 0;
  refs = 0;
  live = false;
  backfilling = false;
  buffer: StoredMessage[] = [];
  ready: Promise<void> = Promise.resolve();
  constructor(readonly groupId: string) {}
}

export class Client {
  session: Session = newSession();
  queue: Input[] = [];
  busy = false;
  closed = false;
  group: string | null = null;
  /** The name this connection chats under in `group`. */
  name = '';
  menuTimer: NodeJS.Timeout | null = null;
  rateStrikes = 0;
  /** Publishes in flight, oldest first; they settle in order. */
  inflight: Promise<void>[] = [];
  readonly bucket: TokenBucket;
  constructor(
    readonly conn: Conn,
    readonly memberId: string,
    rate: number,
    burst: number,
  ) {
    this.bucket = new TokenBucket(rate, burst);
  }
}

export class ChatNode {
  private hubs = new Map<string, Hub>();
  private clients = new Map<string, Client>();
  private fanouts: Fanout[] = [];
  private nextConn = 0;
  private draining = false;
  private readonly limits: { maxNameLength: number; maxTextLength: number };
  private readonly perIp: ConnectionsPerIp;
  readonly trustedProxies: TrustedProxies;
  /** Successful password checks, keyed by group and a keyed hash of the password (never the password). */
  private readonly authCache = new Map<string, string>();
  private readonly authCacheKey = randomBytes(32);

  constructor(
    readonly engine: Engine,
    readonly config: Config,
    readonly log: Logger,
    readonly metrics: Metrics,
  ) {
    this.limits = { maxNameLength: config.maxNameLength, maxTextLength: config.maxTextLength };
    this.perIp = new ConnectionsPerIp(config.maxConnectionsPerIp);
    this.trustedProxies = new TrustedProxies(config.trustedProxies);
  }

  /** Count a new connection against its client address; false = over MAX_CONNECTIONS_PER_IP. */
  admit(ip: string): boolean {
    if (this.perIp.acquire(ip)) return true;
    this.metrics.framesRejected.inc({ reason: 'ip_limit' });
    this.log.warn({ remote: ip }, 'connection refused: too many from this address');
    return false;
  }

  addFanout(f: Fanout): void {
    this.fanouts.push(f);
  }

  isReady(): boolean {
    return !this.draining && this.engine.isUp();
  }

  isDraining(): boolean {
    return this.draining;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  // ---- connection lifecycle (called by transports) ----

  connect(conn: Conn): Client {
    const memberId = `${this.config.nodeId}/${(this.nextConn++).toString(36)}`;
    const c = new Client(conn, memberId, this.config.rateLimitPerSec, this.config.rateLimitBurst);
    this.clients.set(memberId, c);
    this.metrics.connections.inc({ transport: conn.transport });
    this.metrics.sessions.inc({ state: 'menu' });
    this.log.info({ conn: memberId, transport: conn.transport, remote: conn.remote }, '[CLIENT CONNECTED]');
    c.menuTimer = setTimeout(() => this.menuTimeout(c), this.config.menuTimeoutSeconds * 1000);
    c.menuTimer.unref();
    this.input(c, { kind: 'open' });
    return c;
  }

  /** Parsed input from the client (text line, JSON op or a typed rejection). */
  input(c: Client, input: Input): void {
    if (c.closed) return;
    if (c.queue.length >= MAX_QUEUED_INPUTS) {
      this.metrics.framesRejected.inc({ reason: 'queue_full' });
      this.sendTo(c, { type: 'error', code: 'rate_limited', message: T.RATE_LIMITED });
      return;
    }
    c.queue.push(input);
    this.pump(c);
  }

  reject(c: Client, code: ErrorCode, reason: RejectReason, message: string): void {
    this.metrics.framesRejected.inc({ reason });
    this.input(c, { kind: 'bad', code, message });
  }

  /** The socket is gone (closed by either side). */
  disconnected(c: Client): void {
    if (c.closed) return;
    c.closed = true;
    this.perIp.release(c.conn.remote);
    if (c.menuTimer) clearTimeout(c.menuTimer);
    this.metrics.connections.dec({ transport: c.conn.transport });
    c.queue.push({ kind: 'closed' });
    this.pump(c);
  }

  // ---- the session loop ----

  private pump(c: Client): void {
    if (c.busy) return;
    c.busy = true;
    void this.drainQueue(c);
  }

  private async drainQueue(c: Client): Promise<void> {
    try {
      while (c.queue.length > 0) {
        const input = c.queue.shift() as Input;
        await this.feed(c, input);
      }
    } catch (e) {
      this.log.error({ conn: c.memberId, err: e }, 'session failed');
      c.conn.end(1011, 'internal error');
    } finally {
      c.busy = false;
      if (c.session.state.s === 'closed' && c.closed) this.forget(c);
    }
  }

  private async feed(c: Client, first: Input): Promise<void> {
    let next: Input | null = first;
    while (next) {
      const before = phase(c.session.state);
      const out: { session: Session; effects: Effect[] } = step(c.session, next, this.limits);
      c.session = out.session;
      this.trackPhase(c, before, phase(c.session.state));
      next = null;
      for (const e of out.effects) {
        if (e.kind === 'publish') {
          if (c.inflight.length >= MAX_INFLIGHT_PUBLISHES) await c.inflight[0];
          this.publish(c, e);
          continue;
        }
        // Everything else happens after the acks of earlier messages, in order.
        if (c.inflight.length > 0) await Promise.all(c.inflight);
        switch (e.kind) {
          case 'send':
            this.sendTo(c, e.event);
            break;
          case 'close':
            c.conn.end(e.code, '');
            break;
          case 'attach':
            await this.attach(c, e.groupId, e.name, e.history);
            break;
          case 'detach':
            await this.detach(c);
            break;
          case 'call':
            next = { kind: 'result', result: await this.perform(c, e.call) };
            break;
        }
      }
    }
  }

  private trackPhase(c: Client, before: string, after: string): void {
    if (before === after) return;
    if (before !== 'closed') this.metrics.sessions.dec({ state: before });
    if (after !== 'closed') this.metrics.sessions.inc({ state: after });
    if (after === 'chat' && c.menuTimer) {
      clearTimeout(c.menuTimer);
      c.menuTimer = null;
    }
  }

  private forget(c: Client): void {
    this.clients.delete(c.memberId);
    this.log.info({ conn: c.memberId }, '[ENDING]');
  }

  private sendTo(c: Client, ev: ServerEvent): void {
    if (c.closed) return;
    const s = encode(c.conn.codec, ev);
    if (s !== null) c.conn.write(s);
  }

  private menuTimeout(c: Client): void {
    c.menuTimer = null;
    if (c.closed || phase(c.session.state) === 'chat') return;
    this.metrics.idleDisconnects.inc({ reason: 'menu' });
    if (c.conn.codec === 'text') c.conn.write(T.IDLE_TIMEOUT);
    c.conn.end(CLOSE_MENU_TIMEOUT, 'menu timeout');
  }

  // ---- calls ----

  private async perform(c: Client, call: Call): Promise<CallResult> {
    try {
      return await this.performUnsafe(c, call);
    } catch (e) {
      this.metrics.engineErrors.inc({ op: call.call });
      if (!(e instanceof EngineUnavailableError)) this.log.error({ conn: c.memberId, op: call.call, err: e }, 'engine call failed');
      else this.log.warn({ conn: c.memberId, op: call.call }, 'engine unavailable');
      return { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
    }
  }

  private token(groupId: string, name: string): string {
    return issueToken(this.config.chatSecret, groupId, name, this.config.tokenTtlSeconds * 1000);
  }

  private async performUnsafe(c: Client, call: Call): Promise<CallResult> {
    const { engine } = this;
    switch (call.call) {
      case 'hasGroups': {
        const hasGroups = await engine.hasGroups();
        if (!hasGroups) this.metrics.joins.inc({ result: 'no_groups' });
        return { ok: true, hasGroups };
      }
      case 'groupExists': {
        const exists = (await engine.getGroup(call.groupId)) !== null;
        if (!exists) this.metrics.joins.inc({ result: 'unknown_group' });
        else this.log.info({ conn: c.memberId, groupId: call.groupId }, '[MEMBER REQUEST]');
        return { ok: true, exists };
      }
      case 'create': {
        const passwordHash = await hashPassword(call.password, this.config.scryptN);
        const rec = await engine.createGroup({ passwordHash, creator: call.name, createdAt: Date.now() });
        this.metrics.groupsCreated.inc();
        this.log.info({ conn: c.memberId, groupId: rec.id, name: call.name }, '[NEW CHAT]');
        return { ok: true, groupId: rec.id, name: call.name, token: this.token(rec.id, call.name), seq: 0 };
      }
      case 'join': {
        const rec = await engine.getGroup(call.groupId);
        if (!rec) {
          const any = await engine.hasGroups();
          this.metrics.joins.inc({ result: any ? 'unknown_group' : 'no_groups' });
          return any ? { ok: false, code: 'unknown_group', message: T.WRONG_ID } : { ok: false, code: 'no_groups', message: T.NO_CHATS };
        }
        if (await engine.authLocked(rec.id, this.config.authMaxFailures)) {
          this.metrics.joins.inc({ result: 'locked' });
          return { ok: false, code: 'rate_limited', message: T.LOCKED };
        }
        const cacheKey = `${rec.id}\0${createHmac('sha256', this.authCacheKey).update(call.password).digest('base64')}`;
        const cached = this.authCache.get(cacheKey) === rec.passwordHash;
        if (!cached && !(await verifyPassword(call.password, rec.passwordHash))) {
          await engine.recordAuthFailure(rec.id, this.config.authLockoutSeconds);
          this.metrics.joins.inc({ result: 'wrong_password' });
          this.log.info({ conn: c.memberId, groupId: rec.id }, '[WRONG PASSWORD]');
          return { ok: false, code: 'wrong_password', message: T.WRONG_PASSWORD };
        }
        if (cached) this.metrics.authCacheHits.inc();
        else {
          if (this.authCache.size >= AUTH_CACHE_SIZE) this.authCache.delete(this.authCache.keys().next().value as string);
          this.authCache.set(cacheKey, rec.passwordHash);
        }
        this.metrics.joins.inc({ result: 'ok' });
        this.log.info({ conn: c.memberId, groupId: rec.id, name: call.name }, '[NEW MEMBER]');
        return { ok: true, groupId: rec.id, name: call.name, token: this.token(rec.id, call.name), seq: await engine.latestSeq(rec.id) };
      }
      case 'resume': {
        const claims = verifyToken(this.config.chatSecret, call.token);
        if (!claims || !(await engine.getGroup(claims.groupId)))
          return { ok: false, code: 'invalid_input', message: 'Invalid or expired resume token' };
        this.metrics.joins.inc({ result: 'ok' });
        this.log.info({ conn: c.memberId, groupId: claims.groupId, name: claims.name }, '[RESUMED]');
        return {
          ok: true,
          groupId: claims.groupId,
          name: claims.name,
          token: this.token(claims.groupId, claims.name),
          seq: await engine.latestSeq(claims.groupId),
        };
      }
      case 'who':
        return { ok: true, names: await engine.members(call.groupId) };
    }
  }

  /** Store and fan out one chat message without holding up the connection's next input; ack when stored. */
  private publish(c: Client, p: Publish): void {
    if (!c.bucket.take()) {
      this.metrics.framesRejected.inc({ reason: 'rate_limited' });
      this.sendTo(c, { type: 'error', code: 'rate_limited', message: T.RATE_LIMITED });
      // Sustained abuse (a whole burst's worth of refusals in a row) ends the connection.
      if (++c.rateStrikes > this.config.rateLimitBurst) c.conn.end(CLOSE_POLICY, 'rate limit');
      return;
    }
    c.rateStrikes = 0;
    this.metrics.received.inc({ transport: c.conn.transport });
    const done = this.engine
      .publish(p.groupId, { from: p.name, text: p.text, ts: Date.now(), origin: c.memberId })
      .then(
        (m) => {
          this.metrics.published.inc();
          this.sendTo(c, { type: 'ack', id: p.id, seq: m.seq });
        },
        (e: unknown) => {
          this.metrics.engineErrors.inc({ op: 'publish' });
          if (e instanceof EngineUnavailableError) this.log.warn({ conn: c.memberId }, 'publish failed: engine unavailable');
          else this.log.error({ conn: c.memberId, err: e }, 'publish failed');
          this.sendTo(c, { type: 'error', code: 'unavailable', message: T.UNAVAILABLE });
        },
      )
      .finally(() => {
        c.inflight.splice(c.inflight.indexOf(done), 1);
      });
    c.inflight.push(done);
  }

  // ---- group membership and fan-out ----

  private async attach(c: Client, groupId: string, name: string, history: 'recent' | { since: number }): Promise<void> {
    const hub = this.hubFor(groupId);
    try {
      await hub.ready;
      const limit = this.config.historyLimit;
      const msgs =
        history === 'recent'
          ? await this.engine.history(groupId, { limit })
          : await this.engine.history(groupId, { since: history.since, limit });
      // Live messages up to hub.seq were fanned out before this member subscribed: make sure history covers them.
      let last = msgs.length > 0 ? (msgs[msgs.length - 1] as StoredMessage).seq : history === 'recent' ? 0 : history.since;
      while (last < hub.seq) {
        const more = await this.engine.history(groupId, { since: last, limit });
        if (more.length === 0) break;
        msgs.push(...more);
        last = (more[more.length - 1] as StoredMessage).seq;
      }
      if (c.closed) {
        this.release(hub);
        return;
      }
      // Synchronously from here: history up to hub.seq, then the live topic.
      for (const m of msgs) if (m.seq <= hub.seq) this.sendTo(c, { type: 'message', ...publicMessage(m) });
      c.conn.subscribe(groupId);
      c.group = groupId;
      c.name = name;
    } catch (e) {
      this.release(hub);
      throw e;
    }
    await this.bestEffort('presence', async () => {
      await this.engine.addMember(groupId, c.memberId, name);
      await this.engine.notify({ kind: 'joined', groupId, name, origin: c.memberId });
    });
  }

  private async detach(c: Client): Promise<void> {
    const groupId = c.group;
    if (groupId === null) return;
    const name = c.name;
    c.group = null;
    if (!c.closed) c.conn.unsubscribe(groupId);
    const hub = this.hubs.get(groupId);
    if (hub) this.release(hub);
    await this.bestEffort('presence', async () => {
      await this.engine.removeMember(groupId, c.memberId);
      await this.engine.notify({ kind: 'left', groupId, name, origin: c.memberId });
    });
  }

  private async bestEffort(op: string, f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      this.metrics.engineErrors.inc({ op });
      this.log.warn({ op, err: e instanceof Error ? e.message : String(e) }, 'engine call failed');
    }
  }

  private hubFor(groupId: string): Hub {
    let hub = this.hubs.get(groupId);
    if (!hub) {
      const h = new Hub(groupId);
      hub = h;
      this.hubs.set(groupId, h);
      this.metrics.subscriptions.inc();
      h.ready = (async () => {
        await this.engine.subscribe(groupId, (ev) => this.onChannel(h, ev));
        h.seq = Math.max(h.seq, await this.engine.latestSeq(groupId));
        h.live = true;
        this.flushBuffer(h);
      })();
      h.ready.catch(() => undefined); // observed by attach
    }
    hub.refs++;
    return hub;
  }

  private release(hub: Hub): void {
    if (--hub.refs > 0) return;
    if (this.hubs.get(hub.groupId) === hub) this.hubs.delete(hub.groupId);
    this.metrics.subscriptions.dec();
    void this.bestEffort('unsubscribe', () => this.engine.unsubscribe(hub.groupId));
  }

  private onChannel(hub: Hub, ev: ChannelEvent): void {
    if (this.hubs.get(hub.groupId) !== hub) return;
    switch (ev.kind) {
      case 'message':
        if (!hub.live || hub.backfilling) hub.buffer.push(ev.message);
        else this.accept(hub, ev.message);
        return;
      case 'notice': {
        const { notice } = ev;
        const e: ServerEvent = { type: notice.kind === 'joined' ? 'member_joined' : 'member_left', groupId: notice.groupId, name: notice.name };
        this.publishLocal(hub.groupId, e, this.clients.get(notice.origin)?.conn ?? null);
        return;
      }
      case 'resync':
        if (hub.live) void this.backfill(hub);
        return;
    }
  }

  /** In-order delivery by seq: drop duplicates, repair gaps from history. */
  private accept(hub: Hub, m: StoredMessage): void {
    if (m.seq <= hub.seq) return;
    if (m.seq === hub.seq + 1) {
      hub.seq = m.seq;
      this.deliver(hub, m);
      return;
    }
    hub.buffer.push(m);
    void this.backfill(hub);
  }

  private async backfill(hub: Hub): Promise<void> {
    if (hub.backfilling) return;
    hub.backfilling = true;
    this.metrics.backfills.inc();
    try {
      for (;;) {
        const more = await this.engine.history(hub.groupId, { since: hub.seq, limit: this.config.historyLimit });
        for (const m of more) {
          if (m.seq <= hub.seq) continue;
          hub.seq = m.seq;
          this.deliver(hub, m);
        }
        if (more.length < this.config.historyLimit) break;
      }
    } catch (e) {
      this.metrics.engineErrors.inc({ op: 'backfill' });
      this.log.warn({ groupId: hub.groupId, err: e instanceof Error ? e.message : String(e) }, 'backfill failed');
    } finally {
      hub.backfilling = false;
      this.flushBuffer(hub, true);
    }
  }

  /** Deliver what arrived while the hub was starting or backfilling. After a backfill, a hole history cannot fill is skipped. */
  private flushBuffer(hub: Hub, skipHoles = false): void {
    const buf = hub.buffer.sort((a, b) => a.seq - b.seq);
    hub.buffer = [];
    for (const m of buf) {
      if (m.seq <= hub.seq) continue;
      if (skipHoles || m.seq === hub.seq + 1) {
        hub.seq = m.seq;
        this.deliver(hub, m);
      } else this.accept(hub, m);
    }
  }

  private deliver(hub: Hub, m: StoredMessage): void {
    const sender = this.clients.get(m.origin);
    this.publishLocal(hub.groupId, { type: 'message', ...publicMessage(m) }, sender && sender.group === hub.groupId ? sender.conn : null);
    this.metrics.fanoutLatency.observe(Math.max(0, Date.now() - m.ts) / 1000);
  }

  private publishLocal(groupId: string, ev: ServerEvent, exclude: Conn | null): void {
    const text = encodeText(ev);
    const json = encodeJson(ev);
    if (text === null || json === null) return;
    for (const f of this.fanouts) f.publish(groupId, text, json, exclude, ev.type === 'message');
  }

  // ---- drain ----

  /** SIGTERM: refuse new clients (transports check isDraining), close existing ones with 1012 spread over the window. */
  async drain(seconds: number): Promise<void> {
    this.draining = true;
    const clients = [...this.clients.values()].filter((c) => !c.closed);
    this.log.info({ clients: clients.length, seconds }, '[DRAINING]');
    if (clients.length === 0) return;
    const gap = (seconds * 1000) / clients.length;
    await new Promise<void>((resolve) => {
      let left = clients.length;
      clients.forEach((c, i) => {
        setTimeout(() => {
          if (!c.closed) {
            this.sendTo(c, { type: 'restarting' });
            c.conn.end(CLOSE_RESTART, 'server restarting');
          }
          if (--left === 0) resolve();
        }, Math.floor(i * gap));
      });
    });
  }
}

function publicMessage(m: StoredMessage): { groupId: string; seq: number; from: string; text: string; ts: number } {
  return { groupId: m.groupId, seq: m.seq, from: m.from, text: m.text, ts: m.ts };
}
