// The chaos suite's view of one chat member: a thin adapter over the resume-capable
// client library (services/client/src/resume.ts), so the client behind it is one change
// (createMember below).
//
// What the suite needs from a client, whatever library implements it:
//   - it joins once (or creates the group), then stays in the group by itself:
//     on close or error it reconnects through the balancer with backoff and
//     jitter and resumes with its token and the last seq it saw;
//   - sends carry a client id; unacked sends are sent again, with the same id,
//     after a resume and after an `unavailable` / `rate_limited` refusal;
//   - every event the suite checks is reported through MemberEvents.
import { ChatError, ResumingClient } from '../../../client/src/resume.js';

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
  /** A reconnect attempt failed (e.g. HTTP 503 from the balancer, connection refused). */
  connectFailed(why: string): void;
  /** The client skipped seqs it could not get back (history no longer held them). */
  gap(from: number, to: number): void;
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
  /** Messages the client dropped as already delivered, and sends it wrote again (resume, refusal). */
  duplicatesDropped(): number;
  resends(): number;
  close(): void;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 100, maxMs: 5000 };

/** The one place that picks the client implementation: the project's client library (services/client/src/resume.ts). */
export function createMember(spec: MemberSpec, events: MemberEvents, backoff: Backoff = DEFAULT_BACKOFF): ChatMember {
  return new LibraryMember(spec, events, backoff);
}

/** A member on ResumingClient: it reconnects, resumes, resends and orders by itself; this only reports. */
class LibraryMember implements ChatMember {
  private readonly client: ResumingClient;
  /** Our send number → pending (the library picks its own wire ids). */
  private readonly unacked = new Set<number>();

  constructor(
    private readonly spec: MemberSpec,
    private readonly ev: MemberEvents,
    backoff: Backoff,
  ) {
    // The suite's outages last seconds: the library's bounds (attempts, time) are raised so that
    // no member gives up during one; a member that did would show as unacked sends and lag.
    // The library tries the URLs in turn from the first: start each member at a random one, so
    // the members spread over the balancers.
    const k = Math.floor(Math.random() * spec.urls.length);
    this.client = new ResumingClient({
      url: [...spec.urls.slice(k), ...spec.urls.slice(0, k)],
      backoff: { ...backoff, maxAttempts: 1000, maxElapsedMs: 300_000 },
      // A resume answered late is still worth waiting for: in a storm (3,000 clients back at
      // once on two busy nodes) a timed-out resume only comes back as one more.
      callTimeoutMs: 30_000,
      random: Math.random,
    });
    const c = this.client;
    c.on('message', (m) => ev.message(m.seq, m.from, m.text));
    c.on('resumed', (r) => ev.joined(r.seq, true));
    c.on('reconnecting', (r) => {
      if (r.attempt === 1 && r.code !== 0) ev.closed(r.code);
      else ev.connectFailed(r.reason !== '' ? r.reason.replace(/\s+/g, '_') : `close_${r.code}`);
    });
    c.on('gap', (g) => ev.gap(g.from, g.to));
    c.on('server_error', (e) => ev.error(e.code, null));
    c.on('resume_failed', (e) => ev.error(`resume_failed_${e.code}`, null));
  }

  async start(): Promise<string> {
    await this.client.connect();
    const j = this.spec.groupId === null ? await this.client.create(this.spec.name, this.spec.password) : await this.client.join(this.spec.name, this.spec.groupId, this.spec.password);
    this.ev.joined(j.seq, false);
    return j.groupId;
  }

  send(id: number, text: string): void {
    this.unacked.add(id);
    this.client.send(text).then(
      (a) => {
        this.unacked.delete(id);
        this.ev.ack(id, a.seq);
      },
      (e: unknown) => {
        this.unacked.delete(id);
        this.ev.error(e instanceof ChatError ? `send_${e.code}` : 'send_failed', id);
      },
    );
  }

  pending(): number {
    return this.unacked.size;
  }

  connected(): boolean {
    return this.client.isLive;
  }

  /** Messages the library dropped as already delivered (the server sent them twice). */
  duplicatesDropped(): number {
    return this.client.counters.duplicates;
  }

  resends(): number {
    return this.client.counters.resends;
  }

  close(): void {
    void this.client.close();
  }
}
