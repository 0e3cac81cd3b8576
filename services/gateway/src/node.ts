// Runs sessions: feeds each connection's input through the pure session
// machine and performs its effects (engine calls in calls.ts, group
// membership and fan-out in hubs.ts), pipelines chat messages, and drains.
import { Calls } from './calls.js';
import { ConnectionsPerIp, type ClientAddress } from './clientip.js';
import type { Config } from './config.js';
import { dedupeKey, EngineUnavailableError, isNoGroupError, type Engine } from './engine/engine.js';
import type { HistoryFrom } from './engine/model.js';
import { GroupHubs } from './hubs.js';
import { localScrypt } from './passwords.js';
import type { Scrypt } from './scrypt-process.js';
import { errText, type Logger } from './log.js';
import type { Metrics } from './metrics.js';
import {
  CLOSE_INTERNAL,
  CLOSE_MENU_TIMEOUT,
  CLOSE_POLICY,
  CLOSE_RESTART,
  CLOSE_TRY_AGAIN,
  type ClientInput,
  type Conn,
  type Fanout,
  type Gate,
  type Inbound,
  type RejectReason,
} from './ports.js';
import { encode } from './protocol/codecs.js';
import type { ErrorCode, ServerEvent } from './protocol/frames.js';
import * as T from './protocol/text.js';
import { KeyedBuckets, TokenBucket } from './ratelimit.js';
import { newSession, phase, step, type Call, type CallResult, type Effect, type Input, type Publish, type Session } from './session.js';

const MAX_QUEUED_INPUTS = 64;
/** Chat messages one connection may have in flight (stored, not yet acked): sends pipeline up to this. */
const MAX_INFLIGHT_PUBLISHES = 256;

/** One connection's session state; transports see it only as an Inbound. */
class Client implements Inbound {
  session: Session = newSession();
  queue: Input[] = [];
  /** Bytes of client input in `queue` (bounded by MAX_QUEUED_INPUT_BYTES), parallel to it. */
  queuedBytes = 0;
  queueSizes: number[] = [];
  busy = false;
  /** The socket is gone. */
  gone = false;
  /** The name this connection chats under in its group (hubs know which group). */
  name = '';
  menuTimer: NodeJS.Timeout | null = null;
  rateStrikes = 0;
  /** Publishes in flight, oldest first; they settle in order. */
  inflight: Promise<void>[] = [];
  readonly bucket: TokenBucket;
  /** Creates, joins and resumes: a bucket of their own, so they never eat into chat messages. */
  readonly callBucket: TokenBucket;
  /** History pages (HISTORY_RATE_PER_SEC, HISTORY_RATE_BURST): they read the engine. Made at the first page (most never ask). */
  historyBucket: TokenBucket | null = null;
  /** The oldest seq this connection has been shown (replay, live, `/history` pages): where `/history` goes on from. */
  oldestSeen: number | null = null;
  constructor(
    private readonly node: ChatNode,
    readonly conn: Conn,
    readonly memberId: string,
    rate: number,
    burst: number,
  ) {
    this.bucket = new TokenBucket(rate, burst);
    this.callBucket = new TokenBucket(rate, burst);
  }

  get id(): string {
    return this.memberId;
  }

  input(input: ClientInput, bytes: number): void {
    this.node.input(this, input, bytes);
  }

  reject(code: ErrorCode, reason: RejectReason, message: string): void {
    this.node.reject(this, code, reason, message);
  }

  closed(): void {
    this.node.disconnected(this);
  }
}

export class ChatNode implements Gate {
  private readonly clients = new Map<string, Client>();
  private readonly hubs: GroupHubs;
  /** The engine work behind the session's calls; the server API (api.ts) creates groups and reads history through it too. */
  readonly calls: Calls;
  private nextConn = 0;
  /** History reads in flight on this node (HISTORY_MAX_INFLIGHT). */
  private historyReads = 0;
  /** History pages per client address on this node (HISTORY_ADDRESS_RATE_PER_SEC). */
  private readonly historyByAddress: KeyedBuckets;
  private draining = false;
  private readonly limits: { maxNameLength: number; maxTextLength: number };
  private readonly perIp: ConnectionsPerIp;

  constructor(
    readonly engine: Engine,
    readonly config: Config,
    readonly log: Logger,
    readonly metrics: Metrics,
    scrypt: Scrypt = localScrypt,
    /** Called for each new connection (main.ts: the heap is compacted after a storm of them). */
    private readonly onConnect: () => void = () => undefined,
  ) {
    this.limits = { maxNameLength: config.maxNameLength, maxTextLength: config.maxTextLength };
    this.perIp = new ConnectionsPerIp(config.maxConnectionsPerIp);
    this.calls = new Calls(engine, config, log, metrics, scrypt);
    this.historyByAddress = new KeyedBuckets(config.historyAddressRatePerSec, 2 * config.historyAddressRatePerSec);
    this.hubs = new GroupHubs(engine, config, log, metrics, (groupId, memberIds) => this.groupClosed(groupId, memberIds));
  }

  /** Count a new connection against its client address; false = over MAX_CONNECTIONS_PER_IP. */
  admit(a: ClientAddress): boolean {
    if (this.perIp.acquire(a)) return true;
    this.metrics.framesRejected.inc({ reason: 'ip_limit' });
    this.log.warn({ remote: a.ip }, 'connection refused: too many from this address');
    return false;
  }

  addFanout(f: Fanout): void {
    this.hubs.addFanout(f);
  }

  isReady(): boolean {
    return !this.draining && this.engine.isUp();
  }

  isDraining(): boolean {
    return this.draining;
  }

  // ---- connection lifecycle (called by transports) ----

  connect(conn: Conn): Inbound {
    const memberId = `${this.config.nodeId}/${(this.nextConn++).toString(36)}`;
    const c = new Client(this, conn, memberId, this.config.rateLimitPerSec, this.config.rateLimitBurst);
    this.clients.set(memberId, c);
    this.onConnect();
    this.metrics.connections.inc({ transport: conn.transport });
    this.metrics.sessions.inc({ state: 'menu' });
    this.log.info({ conn: memberId, transport: conn.transport, remote: conn.address.ip }, '[CLIENT CONNECTED]');
    c.menuTimer = setTimeout(() => this.menuTimeout(c), this.config.menuTimeoutSeconds * 1000);
    c.menuTimer.unref();
    this.input(c, { kind: 'open' });
    return c;
  }

  /**
   * Parsed input from the client (text line, JSON op or a typed rejection); `bytes`: its size on
   * the wire. What waits behind a slow call (scrypt) is bounded per connection in count and bytes.
   */
  input(c: Client, input: Input, bytes = 0): void {
    if (c.gone) return;
    if (c.queue.length >= MAX_QUEUED_INPUTS) {
      this.metrics.framesRejected.inc({ reason: 'queue_full' });
      this.sendTo(c, { type: 'error', code: 'rate_limited', message: T.RATE_LIMITED });
      return;
    }
    const cap = this.config.maxQueuedInputBytes;
    // Only input that has to wait counts: on an idle connection it runs at once (pump below).
    if (cap > 0 && bytes > 0 && c.busy && c.queuedBytes + bytes > cap) {
      this.metrics.admissionRefusals.inc({ reason: 'queue_bytes' });
      this.sendTo(c, { type: 'error', code: 'rate_limited', message: T.INPUT_QUEUE_FULL });
      // A client that keeps pushing past the cap is not reading its refusals: closed like a spammer.
      if (this.struckOut(c)) c.conn.end(CLOSE_POLICY, T.CLOSE_INPUT_QUEUE_FULL);
      return;
    }
    c.queue.push(input);
    c.queueSizes.push(bytes);
    c.queuedBytes += bytes;
    this.pump(c);
  }

  reject(c: Client, code: ErrorCode, reason: RejectReason, message: string): void {
    this.metrics.framesRejected.inc({ reason });
    this.input(c, { kind: 'bad', code, message });
  }

  /** The socket is gone (closed by either side). */
  disconnected(c: Client): void {
    if (c.gone) return;
    c.gone = true;
    // Menu answers still queued are not worth doing for nobody (joins, creates: scrypt); chat lines still go out.
    if (c.session.state.s !== 'chat') {
      c.queue = [];
      c.queueSizes = [];
      c.queuedBytes = 0;
    }
    this.perIp.release(c.conn.address);
    if (c.menuTimer) clearTimeout(c.menuTimer);
    this.metrics.connections.dec({ transport: c.conn.transport });
    c.queue.push({ kind: 'closed' });
    c.queueSizes.push(0);
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
        c.queuedBytes -= c.queueSizes.shift() ?? 0;
        await this.feed(c, input);
      }
      // Emptied by shift(), the arrays keep their backing stores (17 slots each): a length of 0 lets
      // them go. ~290 B per idle connection (issue 11's heap snapshot).
      c.queue.length = 0;
      c.queueSizes.length = 0;
    } catch (e) {
      this.log.error({ conn: c.memberId, err: e }, 'session failed');
      c.conn.end(CLOSE_INTERNAL, T.CLOSE_INTERNAL_ERROR);
    } finally {
      c.busy = false;
      // Input that arrived while the loop was ending (e.g. the close that end() itself caused) still runs.
      if (c.queue.length > 0) this.pump(c);
      else if (c.session.state.s === 'closed' && c.gone) this.forget(c);
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
            await this.detach(c, e.closed === true);
            break;
          case 'call':
            next = { kind: 'result', result: this.overRate(c, e.call) ?? (await this.perform(c, e.call)) };
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
    } else if (before === 'chat' && after === 'menu' && !c.menuTimer && !c.gone) {
      // A JSON client that left its group (a failed join or create) is back in the menu: the bound applies again.
      c.menuTimer = setTimeout(() => this.menuTimeout(c), this.config.menuTimeoutSeconds * 1000);
      c.menuTimer.unref();
    }
  }

  private forget(c: Client): void {
    this.clients.delete(c.memberId);
    this.log.info({ conn: c.memberId }, '[ENDING]');
  }

  private sendTo(c: Client, ev: ServerEvent): void {
    if (c.gone) return;
    const s = encode(c.conn.codec, ev);
    if (s !== null) c.conn.write(s);
  }

  private menuTimeout(c: Client): void {
    c.menuTimer = null;
    if (c.gone || phase(c.session.state) === 'chat') return;
    this.metrics.idleDisconnects.inc({ reason: 'menu' });
    if (c.conn.codec === 'text') c.conn.write(T.IDLE_TIMEOUT);
    c.conn.end(CLOSE_MENU_TIMEOUT, T.CLOSE_MENU_TIMEOUT);
  }

  // ---- calls ----

  private async perform(c: Client, call: Call): Promise<CallResult> {
    if (call.call === 'history') return this.history(c, call);
    try {
      return await this.calls.perform({ memberId: c.memberId, address: c.conn.address, gone: () => c.gone }, call);
    } catch (e) {
      this.metrics.engineErrors.inc({ op: call.call });
      if (!(e instanceof EngineUnavailableError)) this.log.error({ conn: c.memberId, op: call.call, err: e }, 'engine call failed');
      else this.log.warn({ conn: c.memberId, op: call.call }, 'engine unavailable');
      return { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
    }
  }

  /**
   * A history page: within the connection's history bucket, its address's (on this node) and the
   * node's bound on reads in flight.
   * `/history` (before: `seen`) pages back from the oldest message the connection was shown.
   */
  private async history(c: Client, call: Extract<Call, { call: 'history' }>): Promise<CallResult> {
    const max = this.config.historyMaxInflight;
    const a = c.conn.address;
    c.historyBucket ??= new TokenBucket(this.config.historyRatePerSec, this.config.historyRateBurst);
    if (!c.historyBucket.take() || (!a.exempt && !this.historyByAddress.take(a.key)) || (max > 0 && this.historyReads >= max)) {
      this.metrics.framesRejected.inc({ reason: 'rate_limited' });
      return { ok: false, code: 'rate_limited', message: T.RATE_LIMITED };
    }
    const seen = call.before === 'seen';
    this.historyReads++;
    try {
      const r = await this.calls.perform(
        { memberId: c.memberId, address: c.conn.address, gone: () => c.gone },
        seen ? { ...call, before: c.oldestSeen } : call,
      );
      const first = 'messages' in r ? r.messages[0] : undefined;
      if (seen && first !== undefined) c.oldestSeen = first.seq;
      return r;
    } catch (e) {
      this.metrics.engineErrors.inc({ op: 'history' });
      if (!(e instanceof EngineUnavailableError)) this.log.error({ conn: c.memberId, op: 'history', err: e }, 'engine call failed');
      return { ok: false, code: 'unavailable', message: T.UNAVAILABLE };
    } finally {
      this.historyReads--;
    }
  }

  /** One more refusal in a row; true once a whole burst's worth came in a row (sustained abuse: the caller closes). */
  private struckOut(c: Client): boolean {
    return ++c.rateStrikes > this.config.rateLimitBurst;
  }

  /**
   * Creates, joins and resumes are rate-limited per connection like chat messages (a bucket of
   * their own): a script looping on them gets `rate_limited`, and after a whole burst of refusals
   * in a row is closed like a spammer.
   */
  private overRate(c: Client, call: Call): CallResult | null {
    if (call.call !== 'create' && call.call !== 'join' && call.call !== 'resume') return null;
    if (c.callBucket.take()) {
      c.rateStrikes = 0;
      return null;
    }
    this.metrics.framesRejected.inc({ reason: 'rate_limited' });
    if (this.struckOut(c)) c.conn.end(CLOSE_POLICY, T.CLOSE_RATE_LIMIT);
    return { ok: false, code: 'rate_limited', message: T.RATE_LIMITED };
  }

  /** Store and fan out one chat message without holding up the connection's next input; ack when stored. */
  private publish(c: Client, p: Publish): void {
    if (!c.bucket.take()) {
      this.metrics.framesRejected.inc({ reason: 'rate_limited' });
      // The refusal carries the message's id and comes after the acks of earlier messages.
      this.inOrder(c, () => this.sendTo(c, { type: 'error', code: 'rate_limited', message: T.RATE_LIMITED, id: p.id }));
      // Sustained abuse (a whole burst's worth of refusals in a row) ends the connection.
      if (this.struckOut(c)) this.inOrder(c, () => c.conn.end(CLOSE_POLICY, T.CLOSE_RATE_LIMIT));
      return;
    }
    c.rateStrikes = 0;
    this.metrics.received.inc({ transport: c.conn.transport });
    // With a client id, a retry of this send (after a resume, on any node) is stored once.
    const dedupe = p.id !== null ? { dedupe: dedupeKey(p.member, p.id) } : {};
    const done = this.engine
      .publish(p.groupId, { from: p.name, text: p.text, ts: Date.now(), origin: c.memberId, ...dedupe })
      .then(
        (m) => {
          if (m.duplicate) this.metrics.sendsDeduplicated.inc();
          else this.metrics.published.inc();
          this.sendTo(c, { type: 'ack', id: p.id, seq: m.seq });
        },
        (e: unknown) => {
          this.metrics.engineErrors.inc({ op: 'publish' });
          this.sendTo(c, { type: 'error', code: 'unavailable', message: T.UNAVAILABLE, id: p.id });
          // The group was removed and this member missed the notice (it joined as it went, or its
          // node's subscription was down): it leaves now, like the others did.
          if (isNoGroupError(e)) return this.groupClosed(p.groupId, [c.memberId]);
          if (e instanceof EngineUnavailableError) this.log.warn({ conn: c.memberId }, 'publish failed: engine unavailable');
          else this.log.error({ conn: c.memberId, err: e }, 'publish failed');
        },
      )
      .finally(() => {
        c.inflight.splice(c.inflight.indexOf(done), 1);
      });
    c.inflight.push(done);
  }

  /** Run `f` once every publish in flight now has settled (at once when none is). */
  private inOrder(c: Client, f: () => void): void {
    if (c.inflight.length === 0) return f();
    const done: Promise<void> = Promise.all(c.inflight)
      .then(f)
      .finally(() => c.inflight.splice(c.inflight.indexOf(done), 1));
    c.inflight.push(done);
  }

  // ---- group membership and fan-out ----

  private async attach(c: Client, groupId: string, name: string, history: HistoryFrom): Promise<void> {
    let joined: boolean;
    try {
      joined = await this.hubs.attach(groupId, c.memberId, c.conn, history, () => c.gone, (msgs, upTo) => {
        for (const m of msgs) this.sendTo(c, { type: 'message', ...m });
        // Live messages follow from upTo + 1: the oldest line shown is the first replayed one, or the next live one.
        c.oldestSeen = msgs[0]?.seq ?? upTo + 1;
      });
    } catch (e) {
      if (!(e instanceof EngineUnavailableError)) throw e;
      // Redis went away between the join/resume and its history read: the client was told
      // `joined` but holds no history, so it must come back (resume again) rather than chat on
      // with a hole. Not a session failure (1011): `unavailable`, then 1013 Try Again Later.
      this.metrics.engineErrors.inc({ op: 'attach' });
      this.log.warn({ conn: c.memberId, groupId }, 'attach failed: engine unavailable');
      this.sendTo(c, { type: 'error', code: 'unavailable', message: T.UNAVAILABLE });
      c.conn.end(CLOSE_TRY_AGAIN, T.CLOSE_UNAVAILABLE);
      return;
    }
    if (!joined) return;
    c.name = name;
    await this.bestEffort('presence', async () => {
      await this.engine.addMember(groupId, c.memberId, name);
      await this.engine.notify({ kind: 'joined', groupId, name, origin: c.memberId });
    });
  }

  /** `closed`: the group was removed, so its other members are not told (they are leaving too). */
  private async detach(c: Client, closed = false): Promise<void> {
    const groupId = this.hubs.detach(c.memberId, !c.gone);
    if (groupId === null) return;
    const name = c.name;
    c.oldestSeen = null;
    await this.bestEffort('presence', async () => {
      await this.engine.removeMember(groupId, c.memberId);
      if (!closed) await this.engine.notify({ kind: 'left', groupId, name, origin: c.memberId });
    });
  }

  /**
   * A group was removed (the server API's DELETE, on any node): each of its members here gets
   * `group_closed` and the menu, in turn with its other input (past the bound on queued input:
   * this is not the client's doing).
   */
  private groupClosed(groupId: string, memberIds: string[]): void {
    for (const id of memberIds) {
      const c = this.clients.get(id);
      if (!c || c.gone) continue;
      c.queue.push({ kind: 'group_closed', groupId });
      c.queueSizes.push(0);
      this.pump(c);
    }
  }

  private async bestEffort(op: string, f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      this.metrics.engineErrors.inc({ op });
      this.log.warn({ op, err: errText(e) }, 'engine call failed');
    }
  }

  // ---- drain ----

  /** SIGTERM: refuse new clients (transports check isDraining), close existing ones with 1012 spread over the window. */
  async drain(seconds: number): Promise<void> {
    this.draining = true;
    if (this.engineWatch) clearInterval(this.engineWatch);
    const clients = [...this.clients.values()].filter((c) => !c.gone);
    this.log.info({ clients: clients.length, seconds }, '[DRAINING]');
    await this.closeSpread(clients, seconds);
  }

  // ---- engine loss ----

  private engineWatch: NodeJS.Timeout | null = null;
  private engineDownSince = 0;
  private shedThisOutage = false;

  /**
   * A node cut off from its engine (a partition between it and Redis) can neither store nor
   * deliver, while its peers may still do both. Once the engine has been unreachable for
   * ENGINE_LOSS_SHED_SECONDS (checked every `intervalMs`), every client here is closed with 1012,
   * as in a drain and spread over DRAIN_SECONDS, so that it reconnects through the balancer (which
   * stopped sending new clients here when /readyz turned 503) to a node that can serve it, and
   * resumes there. Once per outage: clients that come straight here meanwhile are left alone. When
   * every node has lost Redis the clients find no ready node and retry with their backoff until
   * one is back; an outage shorter than the setting closes nobody. 0 = never.
   */
  watchEngine(intervalMs = 1000): void {
    const after = this.config.engineLossShedSeconds * 1000;
    if (after <= 0 || this.engineWatch) return;
    this.engineWatch = setInterval(() => {
      if (this.draining) return;
      if (this.engine.isUp()) {
        this.engineDownSince = 0;
        this.shedThisOutage = false;
        return;
      }
      const now = Date.now();
      if (this.engineDownSince === 0) this.engineDownSince = now;
      if (this.shedThisOutage || now - this.engineDownSince < after) return;
      this.shedThisOutage = true;
      const clients = [...this.clients.values()].filter((c) => !c.gone);
      this.metrics.engineLossCloses.inc(clients.length);
      this.log.warn({ clients: clients.length, downSeconds: Math.round((now - this.engineDownSince) / 1000), seconds: this.config.drainSeconds }, '[SHEDDING] engine unreachable: clients sent elsewhere');
      void this.closeSpread(clients, this.config.drainSeconds);
    }, intervalMs);
    this.engineWatch.unref();
  }

  /** Close each client with 1012 (the text line first), spread evenly over `seconds`. */
  private async closeSpread(clients: Client[], seconds: number): Promise<void> {
    if (clients.length === 0) return;
    const gap = (seconds * 1000) / clients.length;
    await new Promise<void>((resolve) => {
      let left = clients.length;
      clients.forEach((c, i) => {
        setTimeout(() => {
          // After the acks of the client's sends in flight: a send stored but not acked would
          // be sent again after the resume (and, without its id, stored twice).
          if (!c.gone)
            this.inOrder(c, () => {
              this.sendTo(c, { type: 'restarting' });
              c.conn.end(CLOSE_RESTART, T.CLOSE_RESTARTING);
            });
          if (--left === 0) resolve();
        }, Math.floor(i * gap));
      });
    });
  }
}

