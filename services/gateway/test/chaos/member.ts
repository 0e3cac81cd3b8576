// The chaos suite's view of one chat member: a thin adapter over a resume-capable
// client, so the client library behind it is one change (createMember below).
//
// What the suite needs from a client, whatever library implements it:
//   - it joins once (or creates the group), then stays in the group by itself:
//     on close or error it reconnects through the balancer with backoff and
//     jitter and resumes with its token and the last seq it saw;
//   - sends carry a client id; unacked sends are sent again, with the same id,
//     after a resume and after an `unavailable` / `rate_limited` refusal;
//   - every event the suite checks is reported through MemberEvents.
import WebSocket from 'ws';

export interface MemberEvents {
  /** A `joined`: first join/create (resumed = false) or a resume (resumed = true). */
  joined(seq: number, resumed: boolean): void;
  /** A chat message (live or replayed on resume). */
  message(seq: number, from: string, text: string): void;
  ack(id: number, seq: number): void;
  /** An `error` frame: `id` set when it refused one of our sends. */
  error(code: string, id: number | null): void;
  /** The connection closed without us asking (`code` as the client saw it; 1006 = no close frame). */
  closed(code: number): void;
  /** A connection attempt failed before the WebSocket opened (e.g. HTTP 503 from the balancer). */
  connectFailed(why: string): void;
}

export interface MemberSpec {
  urls: string[];
  name: string;
  password: string;
  /** Join this group; null = create one. */
  groupId: string | null;
}

export interface ChatMember {
  /** Resolves with the group ID once the first join/create has succeeded. */
  start(): Promise<string>;
  send(id: number, text: string): void;
  /** Sends not yet acked. */
  pending(): number;
  /** True while a session is established (joined, socket open). */
  connected(): boolean;
  close(): void;
}

export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 100, maxMs: 2000 };

/** Full jitter: a random delay in [0, min(max, base·2^attempt)], at least a few ms. */
export function backoffDelay(attempt: number, b: Backoff, rnd: () => number = Math.random): number {
  const cap = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(attempt, 16));
  return Math.max(5, Math.floor(rnd() * cap));
}

/** The one place that picks the client implementation. */
export function createMember(spec: MemberSpec, events: MemberEvents, backoff: Backoff = DEFAULT_BACKOFF): ChatMember {
  return new BasicResumer(spec, events, backoff);
}

interface ServerFrame {
  type?: string;
  seq?: number;
  from?: string;
  text?: string;
  id?: number | string | null;
  code?: string;
  token?: string;
  groupId?: string;
}

/**
 * A minimal resume-capable client (until the project's client library lands): WS JSON,
 * reconnect with full-jitter backoff, resume with token + last seq, resend unacked sends
 * with their ids.
 */
class BasicResumer implements ChatMember {
  private ws: WebSocket | null = null;
  private token: string | null = null;
  private groupId: string | null;
  private lastSeq = 0;
  private attempt = 0;
  private urlIndex = Math.floor(Math.random() * 1e9);
  private stopped = false;
  private inGroup = false;
  /** We closed the socket ourselves (to start over): not a close the server caused. */
  private selfClosed = false;
  private readonly unacked = new Map<number, string>();
  private retryTimer: NodeJS.Timeout | null = null;
  private started: { resolve: (g: string) => void; reject: (e: Error) => void } | null = null;

  constructor(
    private readonly spec: MemberSpec,
    private readonly ev: MemberEvents,
    private readonly backoff: Backoff,
  ) {
    this.groupId = spec.groupId;
  }

  start(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      this.open();
    });
  }

  pending(): number {
    return this.unacked.size;
  }

  connected(): boolean {
    return this.inGroup;
  }

  send(id: number, text: string): void {
    this.unacked.set(id, text);
    if (this.inGroup) this.write({ op: 'send', id, text });
  }

  close(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.ws?.terminate();
    this.ws = null;
  }

  private write(v: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(v));
  }

  private open(): void {
    if (this.stopped) return;
    const url = this.spec.urls[this.urlIndex++ % this.spec.urls.length] as string;
    const ws = new WebSocket(url, ['chat.json']);
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
    });
    ws.on('unexpected-response', (_req, res) => {
      this.ev.connectFailed(`http_${res.statusCode ?? 0}`);
      ws.terminate();
    });
    ws.on('error', (e: Error & { code?: string }) => {
      if (!opened) this.ev.connectFailed(e.code ?? 'error');
    });
    ws.on('message', (data) => this.onFrame(data.toString()));
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const wasIn = this.inGroup;
      this.inGroup = false;
      if (this.stopped) return;
      if (opened && !this.selfClosed && (wasIn || this.token)) this.ev.closed(code);
      this.selfClosed = false;
      this.reconnectLater();
    });
  }

  private reconnectLater(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, backoffDelay(this.attempt++, this.backoff));
  }

  private onFrame(raw: string): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(raw) as ServerFrame;
    } catch {
      return;
    }
    switch (f.type) {
      case 'menu':
        if (this.token) this.write({ op: 'resume', token: this.token, since: this.lastSeq });
        else if (this.groupId === null) this.write({ op: 'create', name: this.spec.name, password: this.spec.password });
        else this.write({ op: 'join', name: this.spec.name, groupId: this.groupId, password: this.spec.password, since: this.lastSeq });
        return;
      case 'joined': {
        const resumed = this.token !== null;
        this.token = f.token ?? this.token;
        this.groupId = f.groupId ?? this.groupId;
        this.inGroup = true;
        this.attempt = 0;
        this.ev.joined(f.seq ?? 0, resumed);
        if (this.started) {
          this.started.resolve(this.groupId as string);
          this.started = null;
        }
        for (const [id, text] of this.unacked) this.write({ op: 'send', id, text });
        return;
      }
      case 'message':
        if (typeof f.seq === 'number') {
          if (f.seq > this.lastSeq) this.lastSeq = f.seq;
          this.ev.message(f.seq, f.from ?? '', f.text ?? '');
        }
        return;
      case 'ack':
        if (typeof f.id === 'number' && typeof f.seq === 'number') {
          this.unacked.delete(f.id);
          this.ev.ack(f.id, f.seq);
        }
        return;
      case 'error': {
        const id = typeof f.id === 'number' ? f.id : null;
        this.ev.error(f.code ?? 'unknown', id);
        if (id !== null) {
          // A refused send (unavailable, rate_limited): try it again later with the same id.
          setTimeout(() => {
            const text = this.unacked.get(id);
            if (text !== undefined && this.inGroup) this.write({ op: 'send', id, text });
          }, backoffDelay(2, this.backoff)).unref();
          return;
        }
        if (f.code === 'invalid_token') {
          this.token = null; // join again with the password, from the last seq
          this.selfClosed = true;
          return this.ws?.close();
        }
        if (!this.inGroup) {
          // A refused join/resume/create (unavailable, busy, rate_limited): start over on a new connection.
          if (this.started && this.groupId === null && f.code !== 'unavailable' && f.code !== 'busy' && f.code !== 'rate_limited') {
            this.started.reject(new Error(`create refused: ${f.code}`));
            this.started = null;
            this.close();
            return;
          }
          this.selfClosed = true;
          this.ws?.close();
        }
        return;
      }
      default:
        return;
    }
  }
}
