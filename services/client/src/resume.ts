// A resume-capable client of the JSON protocol (`chat.json`, PROTOCOL.md §3) for Node, used by the
// terminal client (main.ts), the chaos suite and anyone scripting the chat (docs/CLIENT.md).
//
// What it adds to a bare WebSocket:
// - it keeps the resume `token` from `joined` and the last `seq` it delivered;
// - on a close or an error it reconnects (exponential backoff with full jitter, bounded by attempts
//   and by time) and sends `resume` with the token and `since` = that seq, so the server replays
//   what was missed; a refused token falls back to `join` with `since` when it knows the password;
// - it delivers messages in seq order, each once: a seq at or below the last delivered is dropped
//   (a duplicate), one beyond the next is held while its own unacked sends could fill the hole, and a
//   hole nothing can fill is reported (`gap`) and skipped;
// - `send(text)` gives every message a client `id`, keeps it until its `ack`, and after a resume
//   resends every unacked send with the same id. The server stores a retried id once per member
//   identity (the join id in the token) within its window (docs/SECURITY.md), and acks the retry
//   with the original seq;
// - close() ends it for good and leaves no timer and no socket behind.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';

export const SUBPROTOCOL = 'chat.json';

/** The protocol's error codes (PROTOCOL.md §3), plus `closed` for a send the client gave up on. */
export type ErrorCode =
  | 'invalid_option'
  | 'no_groups'
  | 'unknown_group'
  | 'wrong_password'
  | 'invalid_input'
  | 'invalid_token'
  | 'too_large'
  | 'rate_limited'
  | 'busy'
  | 'group_limit'
  | 'not_joined'
  | 'unavailable';

/** A refusal from the server (or, for `closed`, from the client giving up). */
export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}

export interface ChatMessage {
  groupId: string;
  seq: number;
  from: string;
  text: string;
  ts: number;
  /** This client sent it (acked, or seen in a replay under its own name while one of its sends was unacked). */
  own: boolean;
  /** Part of the recent history a fresh join replays (before the join's `seq`). */
  replay: boolean;
  /** Published through the server HTTP API. */
  api?: boolean;
}

export interface Joined {
  groupId: string;
  name: string;
  /** The group's latest seq when the join (or resume) was answered. */
  seq: number;
}

export interface Ack {
  id: string;
  seq: number;
}

export interface Reconnecting {
  /** 1 for the first try after a drop. */
  attempt: number;
  delayMs: number;
  /** The WebSocket close code of the drop (1006: no close frame), or 0 after a refused resume. */
  code: number;
  reason: string;
}

export interface Resumed extends Joined {
  /** `resume` with the token, or `join` with the password and `since` (the token was refused). */
  via: 'resume' | 'join';
  /** Unacked sends written again with their ids. */
  resent: number;
}

export interface Gap {
  groupId: string;
  /** First and last seq that never came (history no longer held them). */
  from: number;
  to: number;
}

export type CloseReason = 'client' | 'bye' | 'gave_up' | 'no_groups';

export interface Counters {
  /** WebSocket connections opened (the first included). */
  connects: number;
  /** Drops after which the client tried again. */
  reconnects: number;
  /** Successful resumes (token or password). */
  resumes: number;
  /** Send frames written again after a resume or a refusal (`unavailable`, `rate_limited`). */
  resends: number;
  /** Acks for sends. */
  acks: number;
  /** Messages dropped as already delivered. */
  duplicates: number;
  /** Holes reported. */
  gaps: number;
}

export interface BackoffOptions {
  /** The first retry's ceiling (ms); each further try doubles it. Default 100. */
  initialMs?: number;
  /** The largest ceiling (ms). Default 5,000. */
  maxMs?: number;
  /** Tries per outage before giving up. Default 30. */
  maxAttempts?: number;
  /** Time per outage before giving up (ms). Default 120,000. */
  maxElapsedMs?: number;
}

export interface ResumingClientOptions {
  /** ws:// or wss:// URL, usually the balancer's; several are tried in turn, one per connection. */
  url: string | readonly string[];
  /** Passed to `ws` (TLS `ca`, headers, localAddress…). */
  ws?: WebSocket.ClientOptions;
  backoff?: BackoffOptions;
  /** A socket that has not opened by then counts as a failed try (ms). Default 10,000. */
  connectTimeoutMs?: number;
  /** A resume (or a create/join/who) not answered by then closes the socket and tries again (ms). Default 15,000. */
  callTimeoutMs?: number;
  /** Writes of sends not yet acked on this connection (the rest wait). Default 32. */
  maxInFlight?: number;
  /** Sends kept unacked at most; a send beyond it is refused at once. Default 10,000. */
  maxPending?: number;
  /** The wait (ms) before a send refused with `unavailable` or `rate_limited` is written again; doubles up to 32×. Default 250. */
  sendRetryMs?: number;
  /** Ping the server this often and drop a link that did not answer by the next ping (ms); 0 = off. Default 0. */
  heartbeatMs?: number;
  /** On a refused token, join again with the password (when this client joined with one). Default true. */
  rejoinWithPassword?: boolean;
  /** Deliver own acked sends as `message` events (own: true) in seq order. Default true. */
  echoOwn?: boolean;
  /** [0, 1) for the jitter (tests). Default Math.random. */
  random?: () => number;
}

export interface ResumingClientEvents {
  /** The socket is open (first connect or a reconnect), before any resume. */
  open: [];
  menu: [];
  joined: [Joined & { via: 'create' | 'join' }];
  message: [ChatMessage];
  member_joined: [{ groupId: string; name: string }];
  member_left: [{ groupId: string; name: string }];
  ack: [Ack];
  reconnecting: [Reconnecting];
  resumed: [Resumed];
  /** The token was refused and nothing could take its place: the client is back at the menu. */
  resume_failed: [{ code: ErrorCode; message: string }];
  gap: [Gap];
  /**
   * On a resume, the group's top seq is below the last one delivered: the server lost messages this
   * client saw (e.g. Redis restored from an older AOF). Its next messages reuse those seqs, so the
   * client continues from `top` (they are delivered, not dropped as duplicates).
   */
  rewound: [{ groupId: string; lastSeq: number; top: number }];
  /** The group was removed (API `DELETE`): the client is at the menu and stops resuming. */
  group_closed: [{ groupId: string }];
  /** A server `error` that answers no call and no send (e.g. a refused frame). */
  server_error: [{ code: ErrorCode; message: string }];
  /** Closed for good: no more reconnects. */
  closed: [{ reason: CloseReason }];
}

type Wire = Record<string, unknown> & { type?: unknown };

interface PendingSend {
  id: string;
  text: string;
  resolve: (a: Ack) => void;
  reject: (e: Error) => void;
  /** Written on the connection numbered this (0: not yet, or must be written again). */
  writtenOn: number;
  /** Written at least once (the server may hold it). */
  everWritten: boolean;
  retries: number;
  retryTimer: NodeJS.Timeout | null;
}

type CallKind = 'create' | 'join' | 'who' | 'resume';
interface PendingCall {
  kind: CallKind;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Credentials {
  name: string;
  groupId: string;
  password: string;
}

const isObj = (v: unknown): v is Wire => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export class ResumingClient extends EventEmitter<ResumingClientEvents> {
  readonly counters: Counters = { connects: 0, reconnects: 0, resumes: 0, resends: 0, acks: 0, duplicates: 0, gaps: 0 };
  private readonly opts: Required<Omit<ResumingClientOptions, 'url' | 'ws' | 'backoff'>> & {
    urls: readonly string[];
    ws: WebSocket.ClientOptions;
    backoff: Required<BackoffOptions>;
  };

  private ws: WebSocket | null = null;
  /** Connections opened so far; a send remembers the one it was written on. */
  private conn = 0;
  private state: 'idle' | 'connecting' | 'open' | 'waiting' | 'closed' = 'idle';
  /** A socket is open and the client is in its group on it (resumed or joined). */
  private inGroup = false;

  private token: string | null = null;
  private creds: Credentials | null = null;
  private group: { groupId: string; name: string } | null = null;
  /** The last seq delivered (own acks included), contiguous: everything at or below it was delivered or reported as a gap. */
  private last = 0;
  /** A fresh join's replay: messages at or below the join's seq, oldest first, after the last one replayed. */
  private replay: { top: number; last: number } | null = null;
  /** Messages that came ahead of a hole (waiting for it to fill), by seq. */
  private readonly ahead = new Map<number, ChatMessage>();
  /** Seqs of own sends acked beyond `last` (the server never sends them back on the sending connection). */
  private readonly ownAhead = new Map<number, ChatMessage>();

  private readonly pending = new Map<string, PendingSend>();
  private readonly calls: PendingCall[] = [];
  private nextId = 0;
  private readonly idPrefix = randomBytes(6).toString('base64url');

  /** How the running resume gets back in: the token, or the password (the token was refused). */
  private resumeVia: 'resume' | 'join' = 'resume';
  private attempt = 0;
  private outageSince = 0;
  private timer: NodeJS.Timeout | null = null;
  private callTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private alive = true;
  private closedPromise: Promise<void> | null = null;
  private resolveClosed: (() => void) | null = null;
  private opened: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(options: ResumingClientOptions) {
    super();
    const b = options.backoff ?? {};
    this.opts = {
      urls: typeof options.url === 'string' ? [options.url] : options.url.length > 0 ? options.url : ['ws://127.0.0.1:8080/'],
      ws: options.ws ?? {},
      backoff: { initialMs: b.initialMs ?? 100, maxMs: b.maxMs ?? 5000, maxAttempts: b.maxAttempts ?? 30, maxElapsedMs: b.maxElapsedMs ?? 120_000 },
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      callTimeoutMs: options.callTimeoutMs ?? 15_000,
      maxInFlight: Math.max(1, options.maxInFlight ?? 32),
      maxPending: Math.max(1, options.maxPending ?? 10_000),
      sendRetryMs: options.sendRetryMs ?? 250,
      heartbeatMs: options.heartbeatMs ?? 0,
      rejoinWithPassword: options.rejoinWithPassword ?? true,
      echoOwn: options.echoOwn ?? true,
      random: options.random ?? Math.random,
    };
  }

  // ---- what a user sees ----

  /** The group this client is in (or was in, while reconnecting). */
  get groupId(): string | null {
    return this.group?.groupId ?? null;
  }

  get name(): string | null {
    return this.group?.name ?? null;
  }

  /** The last seq delivered: what a resume asks to continue after. */
  get lastSeq(): number {
    return this.last;
  }

  get resumeToken(): string | null {
    return this.token;
  }

  /** Sends not yet acked. */
  get unacked(): number {
    return this.pending.size;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Open and in the group (not reconnecting). */
  get isLive(): boolean {
    return this.state === 'open' && this.inGroup;
  }

  /** Open the first connection; resolves once the socket is open (retrying with backoff meanwhile). */
  connect(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error('connect() once'));
    return new Promise<void>((resolve, reject) => {
      this.opened = { resolve, reject };
      this.outageSince = Date.now();
      this.dial();
    });
  }

  create(name: string, password: string): Promise<Joined> {
    this.creds = null; // the ID is not known until `created`; kept when `joined` arrives
    return this.call('create', { op: 'create', name, password }).then((j) => {
      const joined = j as Joined;
      this.creds = { name, groupId: joined.groupId, password };
      return joined;
    });
  }

  join(name: string, groupId: string, password: string): Promise<Joined> {
    return this.call('join', { op: 'join', name, groupId, password }).then((j) => {
      this.creds = { name, groupId, password };
      return j as Joined;
    });
  }

  who(): Promise<string[]> {
    return this.call('who', { op: 'who' }) as Promise<string[]>;
  }

  /**
   * Send a chat message; resolves with its seq once stored (acked), across reconnects and resumes.
   * Rejects for good on `too_large` / `invalid_input` / `not_joined`, or when the client closes.
   */
  send(text: string): Promise<Ack> {
    if (this.state === 'closed') return Promise.reject(new ChatError('closed', 'client closed'));
    if (!this.group) return Promise.reject(new ChatError('not_joined', 'join or create a group first'));
    if (this.pending.size >= this.opts.maxPending) return Promise.reject(new ChatError('rate_limited', 'too many unacked sends'));
    const id = `${this.idPrefix}.${++this.nextId}`;
    return new Promise<Ack>((resolve, reject) => {
      this.pending.set(id, { id, text, resolve, reject, writtenOn: 0, everWritten: false, retries: 0, retryTimer: null });
      this.pump();
    });
  }

  /**
   * Leave politely: `exit` (the server answers `bye` and closes), then closed for good. Falls back to
   * close() when not connected or when no `bye` comes within callTimeoutMs.
   */
  exit(): Promise<void> {
    if (this.state === 'closed') return this.closedPromise ?? Promise.resolve();
    if (this.state !== 'open' || !this.ws) return this.close();
    this.ws.send(JSON.stringify({ op: 'exit' }));
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => void this.close().then(resolve), this.opts.callTimeoutMs);
      this.once('closed', () => {
        clearTimeout(t);
        void (this.closedPromise ?? Promise.resolve()).then(resolve);
      });
    });
  }

  /** Close for good: leaves the group, stops every timer, rejects what is unacked. */
  close(): Promise<void> {
    if (this.state === 'closed') return this.closedPromise ?? Promise.resolve();
    this.finish('client');
    return this.closedPromise ?? Promise.resolve();
  }

  // ---- connection ----

  private dial(): void {
    this.clearTimer();
    this.state = 'connecting';
    this.inGroup = false;
    const conn = ++this.conn;
    const url = this.opts.urls[(conn - 1) % this.opts.urls.length] as string;
    const ws = new WebSocket(url, [SUBPROTOCOL], { handshakeTimeout: this.opts.connectTimeoutMs, ...this.opts.ws });
    this.ws = ws;
    this.counters.connects++;
    let dropped = false;
    const drop = (code: number, reason: string): void => {
      if (dropped) return;
      dropped = true;
      if (this.ws === ws) this.lost(code, reason);
    };
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.state = 'open';
      this.alive = true;
      this.startHeartbeat(ws);
      this.emit('open');
      const o = this.opened;
      this.opened = null;
      o?.resolve();
      this.afterOpen(conn);
    });
    ws.on('message', (data, isBinary) => {
      if (this.ws !== ws || isBinary) return;
      this.alive = true;
      let v: unknown;
      try {
        v = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (isObj(v)) this.onEvent(v);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', () => undefined); // the close that follows says it
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      drop(1006, `HTTP ${res.statusCode ?? 0}`);
    });
    ws.on('close', (code, reason) => drop(code, reason.toString()));
  }

  /** The socket went away (or a resume was refused): try again unless closed for good. */
  private lost(code: number, reason: string): void {
    this.stopHeartbeat();
    this.clearCallTimer();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
    if (this.state === 'closed') return;
    this.inGroup = false;
    // Calls other than the resume itself cannot be replayed safely (a create twice is two groups).
    for (const c of this.calls.splice(0)) if (c.kind !== 'resume') c.reject(new ChatError('unavailable', 'connection lost'));
    for (const p of this.pending.values()) {
      p.writtenOn = 0;
      this.clearRetry(p);
    }
    if (this.attempt === 0) this.outageSince = Date.now();
    this.attempt++;
    const b = this.opts.backoff;
    if (this.attempt > b.maxAttempts || Date.now() - this.outageSince > b.maxElapsedMs) {
      const o = this.opened;
      this.opened = null;
      o?.reject(new Error(`could not connect to ${this.opts.urls.join(', ')}`));
      this.finish('gave_up');
      return;
    }
    if (this.attempt === 1) this.counters.reconnects++;
    const ceiling = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(30, this.attempt - 1));
    const delayMs = Math.floor(this.opts.random() * ceiling);
    this.state = 'waiting';
    this.emit('reconnecting', { attempt: this.attempt, delayMs, code, reason });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dial();
    }, delayMs);
  }

  /** A fresh socket: resume if there is a group to go back to, otherwise stay at the menu. */
  private afterOpen(conn: number): void {
    if (!this.group) {
      this.attempt = 0;
      return;
    }
    if (this.token) {
      this.resumeVia = 'resume';
      void this.startCall('resume', { op: 'resume', token: this.token, since: this.last }, conn);
    } else if (!this.rejoin(conn)) {
      this.resetGroup();
      this.group = null;
      this.attempt = 0;
    }
  }

  private rejoin(conn: number): boolean {
    const c = this.creds;
    if (!this.opts.rejoinWithPassword || !c || !this.group || c.groupId !== this.group.groupId) return false;
    this.resumeVia = 'join';
    void this.startCall('resume', { op: 'join', name: c.name, groupId: c.groupId, password: c.password, since: this.last }, conn);
    return true;
  }

  private startCall(kind: CallKind, frame: Record<string, unknown>, conn = this.conn): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.calls.push({ kind, resolve, reject });
      if (conn === this.conn && this.ws?.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(frame));
        this.armCallTimer();
      }
    }).catch((e: unknown) => {
      if (kind !== 'resume') throw e;
      return undefined;
    });
  }

  private call(kind: 'create' | 'join' | 'who', frame: Record<string, unknown>): Promise<unknown> {
    if (this.state === 'closed') return Promise.reject(new ChatError('closed', 'client closed'));
    if (this.state !== 'open' || !this.ws) return Promise.reject(new ChatError('unavailable', 'not connected'));
    if (kind !== 'who' && this.group && this.inGroup === false && this.token)
      return Promise.reject(new ChatError('unavailable', 'resuming'));
    return this.startCall(kind, frame);
  }

  /** A call unanswered for callTimeoutMs means a dead link: drop it and try again. */
  private armCallTimer(): void {
    if (this.callTimer) return;
    this.callTimer = setTimeout(() => {
      this.callTimer = null;
      if (this.calls.length > 0 && this.ws) this.lost(1006, 'call timed out');
    }, this.opts.callTimeoutMs);
  }

  private clearCallTimer(): void {
    if (this.callTimer) clearTimeout(this.callTimer);
    this.callTimer = null;
  }

  private settleCall(kind: CallKind[]): PendingCall | null {
    const c = this.calls[0];
    if (!c || !kind.includes(c.kind)) return null;
    this.calls.shift();
    this.clearCallTimer();
    if (this.calls.length > 0) this.armCallTimer();
    return c;
  }

  private startHeartbeat(ws: WebSocket): void {
    if (this.opts.heartbeatMs <= 0) return;
    this.heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      if (!this.alive) {
        this.lost(1006, 'heartbeat timed out');
        return;
      }
      this.alive = false;
      ws.ping();
    }, this.opts.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private clearRetry(p: PendingSend): void {
    if (p.retryTimer) clearTimeout(p.retryTimer);
    p.retryTimer = null;
  }

  private finish(reason: CloseReason): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.inGroup = false;
    this.clearTimer();
    this.clearCallTimer();
    this.stopHeartbeat();
    const err = new ChatError('closed', `client closed (${reason})`);
    for (const c of this.calls.splice(0)) c.reject(err);
    for (const p of this.pending.values()) {
      this.clearRetry(p);
      p.reject(err);
    }
    this.pending.clear();
    this.ahead.clear();
    this.ownAhead.clear();
    const o = this.opened;
    this.opened = null;
    o?.reject(err);
    const ws = this.ws;
    this.ws = null;
    this.closedPromise = new Promise<void>((res) => (this.resolveClosed = res));
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      // A peer that never answers the close frame: the socket ends after a moment anyway.
      const kill = setTimeout(() => ws.terminate(), 1000);
      ws.once('close', () => {
        clearTimeout(kill);
        this.resolveClosed?.();
      });
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      else ws.terminate();
    } else this.resolveClosed?.();
    this.emit('closed', { reason });
  }

  // ---- sends ----

  /** Write what may be written now: unacked sends not yet on this connection, at most maxInFlight at once. */
  private pump(): void {
    if (!this.isLive || !this.ws) return;
    let inFlight = 0;
    for (const p of this.pending.values()) if (p.writtenOn === this.conn) inFlight++;
    for (const p of this.pending.values()) {
      if (inFlight >= this.opts.maxInFlight) break;
      if (p.writtenOn === this.conn || p.retryTimer) continue;
      if (p.everWritten) this.counters.resends++;
      p.writtenOn = this.conn;
      p.everWritten = true;
      inFlight++;
      this.ws.send(JSON.stringify({ op: 'send', text: p.text, id: p.id }));
    }
  }

  private onAck(id: string, seq: number): void {
    const p = this.pending.get(id);
    if (!p) return; // an ack for a send already settled (a retry that raced its original)
    this.pending.delete(id);
    this.clearRetry(p);
    this.counters.acks++;
    const g = this.group;
    if (g && seq > this.last) {
      // Delivered in order with everything else; the server does not echo it to this connection.
      this.ownAhead.set(seq, { groupId: g.groupId, seq, from: g.name, text: p.text, ts: Date.now(), own: true, replay: false });
      this.ahead.delete(seq); // it came first as a replayed message: ours, delivered once
    }
    this.replay = null;
    p.resolve({ id, seq });
    this.emit('ack', { id, seq });
    this.flush();
    this.pump();
  }

  /** A send refused: for good (it can never succeed) or for now (retried with the same id after a wait). */
  private onSendError(id: string, code: ErrorCode, message: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (code === 'unavailable' || code === 'rate_limited' || code === 'busy') {
      p.writtenOn = 0;
      const wait = this.opts.sendRetryMs * 2 ** Math.min(5, p.retries++);
      this.clearRetry(p);
      p.retryTimer = setTimeout(() => {
        p.retryTimer = null;
        this.pump();
      }, wait);
      return;
    }
    this.pending.delete(id);
    this.clearRetry(p);
    p.reject(new ChatError(code, message));
    this.flush(); // a hole it might have filled is now a real one
    this.pump();
  }

  // ---- events ----

  private onEvent(v: Wire): void {
    switch (v.type) {
      case 'menu':
        this.emit('menu');
        return;
      case 'created':
        return; // `joined` follows
      case 'joined':
        return this.onJoined(v);
      case 'message':
        return this.onMessage(v);
      case 'ack': {
        const seq = num(v['seq']);
        const id = str(v['id']);
        if (seq !== null && id !== null) this.onAck(id, seq);
        return;
      }
      case 'member_joined':
      case 'member_left': {
        const groupId = str(v['groupId']);
        const name = str(v['name']);
        if (groupId !== null && name !== null && groupId === this.group?.groupId) this.emit(v.type, { groupId, name });
        return;
      }
      case 'members': {
        const names = Array.isArray(v['names']) ? (v['names'] as unknown[]).filter((n): n is string => typeof n === 'string') : [];
        this.settleCall(['who'])?.resolve(names);
        return;
      }
      case 'group_closed':
        return this.onGroupClosed(str(v['groupId']) ?? '');
      case 'error':
        return this.onError(v);
      case 'bye':
        this.finish('bye');
        return;
    }
  }

  private onJoined(v: Wire): void {
    const groupId = str(v['groupId']);
    const name = str(v['name']);
    const token = str(v['token']);
    const seq = num(v['seq']);
    if (groupId === null || name === null || token === null || seq === null) return;
    const c = this.settleCall(['create', 'join', 'resume']);
    this.token = token;
    this.inGroup = true;
    this.attempt = 0;
    if (c?.kind === 'resume') {
      // Back in the same group: messages after `last` follow as `message` events.
      this.group = { groupId, name };
      this.counters.resumes++;
      if (seq < this.last) {
        const lastSeq = this.last;
        this.last = seq;
        this.ahead.clear();
        this.ownAhead.clear();
        this.emit('rewound', { groupId, lastSeq, top: seq });
        // Resume again from the new top: messages that reuse seqs up to the old `since`, published
        // while this resume was answered, fall outside what it replays.
        this.inGroup = false;
        c.resolve(undefined);
        void this.startCall('resume', { op: 'resume', token, since: seq });
        return;
      }
      const resent = [...this.pending.values()].filter((p) => p.everWritten).length;
      this.emit('resumed', { groupId, name, seq, via: this.resumeVia, resent });
      c.resolve(undefined);
      this.pump();
      return;
    }
    // A new group (create or join): start over from its top; its recent history replays first.
    this.resetGroup();
    this.group = { groupId, name };
    this.last = seq;
    this.replay = { top: seq, last: 0 };
    const joined = { groupId, name, seq };
    this.emit('joined', { ...joined, via: c?.kind === 'create' ? 'create' : 'join' });
    c?.resolve(joined);
    this.pump();
  }

  private resetGroup(): void {
    for (const p of this.pending.values()) {
      this.clearRetry(p);
      p.reject(new ChatError('not_joined', 'left the group'));
    }
    this.pending.clear();
    this.ahead.clear();
    this.ownAhead.clear();
    this.replay = null;
  }

  private onGroupClosed(groupId: string): void {
    if (!this.group || groupId !== this.group.groupId) return;
    this.resetGroup();
    this.group = null;
    this.token = null;
    this.creds = null;
    this.inGroup = false;
    this.emit('group_closed', { groupId });
  }

  private onError(v: Wire): void {
    const code = (str(v['code']) ?? 'invalid_input') as ErrorCode;
    const message = str(v['message']) ?? '';
    const id = str(v['id']);
    if (id !== null) return this.onSendError(id, code, message); // a send's refusal (ignored once it is settled)
    const head = this.calls[0];
    if (head?.kind === 'resume') {
      this.settleCall(['resume']);
      return this.onResumeRefused(code, message);
    }
    // The answer to a create/join/who; otherwise a refusal of its own (e.g. a bad frame).
    const c = head ? this.settleCall([head.kind]) : null;
    if (c) c.reject(new ChatError(code, message));
    else if (code === 'no_groups') this.finish('no_groups');
    else this.emit('server_error', { code, message });
  }

  private onResumeRefused(code: ErrorCode, message: string): void {
    if (code === 'invalid_token' || code === 'unknown_group' || code === 'wrong_password') {
      // The token is no good (expired, group gone, secret rotated): the password, if known, joins again with `since`.
      this.token = null;
      if (code === 'invalid_token' && this.ws && this.rejoin(this.conn)) return;
      this.resetGroup();
      this.group = null;
      this.creds = null;
      this.attempt = 0;
      this.emit('resume_failed', { code, message });
      return;
    }
    // unavailable, busy, rate_limited: the node (or Redis) cannot take us now; try again later.
    this.lost(0, `resume refused: ${code}`);
  }

  private onMessage(v: Wire): void {
    const groupId = str(v['groupId']);
    const seq = num(v['seq']);
    const from = str(v['from']);
    const text = str(v['text']);
    const ts = num(v['ts']) ?? 0;
    if (groupId === null || seq === null || from === null || text === null || !this.group || groupId !== this.group.groupId) return;
    const api = v['api'] === true;
    const r = this.replay;
    if (r && seq <= r.top) {
      // A fresh join's recent history, oldest first, before anything live.
      if (seq <= r.last) {
        this.counters.duplicates++;
        return;
      }
      r.last = seq;
      this.emit('message', { groupId, seq, from, text, ts, own: false, replay: true, ...(api ? { api } : {}) });
      return;
    }
    this.replay = null;
    if (seq <= this.last || this.ahead.has(seq)) {
      this.counters.duplicates++;
      return;
    }
    const ownAcked = this.ownAhead.get(seq);
    if (ownAcked) {
      // Our own message, acked already, seen again in a resume's replay: delivered once, as ours.
      return this.flush();
    }
    // A replayed message under our name while one of our sends with this text is unacked: ours, ack lost.
    const own = from === this.group.name && [...this.pending.values()].some((p) => p.everWritten && p.text === text);
    this.ahead.set(seq, { groupId, seq, from, text, ts, own, replay: false, ...(api ? { api } : {}) });
    this.flush();
  }

  /** Deliver everything contiguous after `last`; report a hole that nothing can fill any more. */
  private flush(): void {
    for (;;) {
      const next = this.last + 1;
      const m = this.ahead.get(next);
      const mine = this.ownAhead.get(next);
      if (m) {
        this.ahead.delete(next);
        this.ownAhead.delete(next);
        this.last = next;
        this.emit('message', mine ? { ...m, own: true } : m);
        continue;
      }
      if (mine) {
        this.ownAhead.delete(next);
        this.last = next;
        if (this.opts.echoOwn) this.emit('message', mine);
        continue;
      }
      if (this.ahead.size === 0) return;
      // A hole before the first held message: own sends in flight may fill it (their acks come on
      // their own schedule); otherwise the server no longer holds it.
      if (!this.isLive) return;
      let first = Infinity;
      for (const s of this.ahead.keys()) first = Math.min(first, s);
      let ownBelow = 0;
      for (const s of this.ownAhead.keys()) if (s < first) ownBelow++;
      const missing = first - next - ownBelow;
      const couldFill = [...this.pending.values()].filter((p) => p.everWritten).length;
      if (missing > couldFill) {
        const g = this.group as { groupId: string };
        this.counters.gaps++;
        this.emit('gap', { groupId: g.groupId, from: next, to: first - 1 });
        // Skip the hole but keep own acks inside it in order.
        for (let s = next; s < first; s++) {
          const o = this.ownAhead.get(s);
          this.ownAhead.delete(s);
          this.last = s;
          if (o && this.opts.echoOwn) this.emit('message', o);
        }
        continue;
      }
      return;
    }
  }
}
