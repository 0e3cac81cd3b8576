// The embedded single-node engine: state in memory, durability in a journal
// under DATA_DIR, replayed at start. Used when REDIS_URL is unset.
//
// Growth is bounded as on Redis: a ceiling on groups, history bounded in count
// and in text bytes, and idle groups removed by a sweeper on a timer. The
// journal keeps what a restart needs: each group's last activity (`a` on its
// record, `a` records for joins, message timestamps), removals (`x`), and the
// ID high-water mark (`n`, first in every compacted file) so a removed
// group's ID is never handed out again.
import type { Logger } from '../log.js';
import {
  EngineUnavailableError,
  GroupLimitError,
  newEpoch,
  OneAtATime,
  sweepInterval,
  textBytes,
  type ChannelEvent,
  type ChannelHandler,
  type HistoryPage,
  type Engine,
  type GroupRecord,
  type GrowthOptions,
  type HistoryQuery,
  type NewMessage,
  type Notice,
  type Published,
  type StoredMessage,
} from './engine.js';
import { Journal } from './journal.js';
import { MemoryThrottle } from './memory-throttle.js';

type Rec =
  /** A group; `a` its last activity (ms), absent in journals from before retention. */
  | { t: 'g'; id: string; h: string; c: string; at: number; ep?: string; a?: number }
  /** A message; `k` its dedupe key when it carried a client id (so the window survives a restart), `api` set when it came through the server HTTP API. */
  | { t: 'm'; g: string; s: number; f: string; x: string; ts: number; k?: string; api?: 1 }
  /** A join or resume (activity), journalled at most once per ACTIVITY_GRAIN per group. */
  | { t: 'a'; g: string; at: number }
  /** A group removed (idle past retention). */
  | { t: 'x'; g: string }
  /** The next group ID: kept across removals and compactions. */
  | { t: 'n'; n: number };

interface Group {
  rec: GroupRecord;
  /** Highest seq stored and delivered. */
  seq: number;
  /** Highest seq handed out (ahead of `seq` while writes are in flight). */
  assigned: number;
  history: StoredMessage[];
  /** UTF-8 bytes of the text in `history`. */
  bytes: number;
  /** Last message, join or sweep that saw a member online (engine clock, ms). */
  active: number;
  /** The latest activity the journal holds for this group. */
  journalled: number;
  /** Idempotent sends: dedupe key → seq, oldest first, at most dedupeWindow; cleared once older than dedupeTtlMs. */
  sent: Map<string, number>;
  /** When the newest entry of `sent` was added (engine clock, ms). */
  sentAt: number;
  /** Writes in flight by dedupe key: a retry racing its original waits for it. */
  writing: Map<string, Promise<void>>;
}

export interface MemoryEngineOptions extends GrowthOptions {
  dataDir: string;
  historyLimit: number;
  /** Idempotent sends: entries remembered per group (DEDUPE_WINDOW; 0 = off). Default 1,000. */
  dedupeWindow?: number;
  /** …kept this long after the group's last send with a client id (DEDUPE_TTL_SECONDS, in ms). Default 600,000. */
  dedupeTtlMs?: number;
  /** `[CHAT REMOVED]` lines. */
  log?: Logger;
}

/** The journal is rewritten once it has grown by this much and by its own size since the last compaction. */
const COMPACT_MIN_GROWTH = 1024 * 1024;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parseRec(v: unknown): Rec | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (r['t'] === 'g' && typeof r['id'] === 'string' && typeof r['h'] === 'string') return r as Rec;
  if (r['t'] === 'm' && typeof r['g'] === 'string' && typeof r['s'] === 'number') return r as Rec;
  if (r['t'] === 'a' && typeof r['g'] === 'string' && isNum(r['at'])) return r as Rec;
  if (r['t'] === 'x' && typeof r['g'] === 'string') return r as Rec;
  if (r['t'] === 'n' && isNum(r['n'])) return r as Rec;
  return null;
}

/** A message's journal record (`api` only when set, so older journals and plain messages look alike). */
const messageRec = (m: StoredMessage): Rec => ({ t: 'm', g: m.groupId, s: m.seq, f: m.from, x: m.text, ts: m.ts, ...(m.api ? { api: 1 as const } : {}) });

export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly throttle = new MemoryThrottle();
  private groups = new Map<string, Group>();
  private nextId = 0;
  private handler: ChannelHandler = () => undefined;
  private readonly subscribed = new Set<string>();
  private presence = new Map<string, Map<string, string>>();
  private journal: Journal<Rec>;
  private appendsSinceCompaction = 0;
  private up = false;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly sweeping = new OneAtATime<string[]>();
  private readonly now: () => number;
  private readonly retentionMs: number;
  /** Activity within this of the journalled one is not journalled again (joins). */
  private readonly activityGrain: number;
  /** Set while replaying: a group record without an epoch or activity was upgraded. */
  private upgraded = false;
  droppedBytesAtStart = 0;

  constructor(private readonly opts: MemoryEngineOptions) {
    this.journal = new Journal<Rec>(opts.dataDir);
    this.now = opts.clock ?? Date.now;
    this.retentionMs = Math.max(0, opts.retentionSeconds ?? 0) * 1000;
    this.activityGrain = Math.min(60_000, Math.max(1000, Math.floor(this.retentionMs / 100)));
  }

  async start(): Promise<void> {
    const { records, droppedBytes } = await this.journal.replay(parseRec);
    this.droppedBytesAtStart = droppedBytes;
    const replayedAt = this.now();
    for (const r of records) this.apply(r, replayedAt);
    // Start from a compact file: groups plus the history we still keep. Groups from before epochs
    // or retention got an epoch and an activity time just now: wait until those are on disk, so
    // the epoch (which resume tokens carry) is the same after the next restart.
    const compacted = this.journal.compact(() => this.snapshot());
    if (this.upgraded) await compacted;
    this.up = true;
    if (this.retentionMs > 0) {
      this.sweeper = setInterval(() => void this.sweepIdle().catch(() => undefined), this.opts.sweepIntervalMs ?? sweepInterval(this.retentionMs / 1000));
      this.sweeper.unref();
    }
  }

  async stop(): Promise<void> {
    this.up = false;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    await this.sweeping.idle();
    await this.journal.close();
  }

  isUp(): boolean {
    return this.up;
  }

  private apply(r: Rec, replayedAt: number): void {
    switch (r.t) {
      case 'g': {
        this.bumpNextId(r.id);
        if (this.groups.has(r.id)) return;
        // A group journalled before epochs gets one now, and one from before retention starts its
        // period now; start() writes both to disk before the engine serves.
        if (r.ep === undefined || !isNum(r.a)) this.upgraded = true;
        const active = isNum(r.a) ? r.a : replayedAt;
        const rec = { id: r.id, passwordHash: r.h, creator: r.c, createdAt: r.at, epoch: r.ep ?? newEpoch() };
        this.groups.set(r.id, { rec, seq: 0, assigned: 0, history: [], bytes: 0, active, journalled: active, sent: new Map(), sentAt: 0, writing: new Map() });
        return;
      }
      case 'm': {
        const g = this.groups.get(r.g);
        if (!g || r.s <= g.seq) return;
        g.seq = g.assigned = r.s;
        if (isNum(r.ts)) g.active = g.journalled = Math.max(g.active, r.ts);
        this.push(g, { groupId: r.g, seq: r.s, from: r.f, text: r.x, ts: r.ts, origin: '', ...(r.api === 1 ? { api: true as const } : {}) });
        if (typeof r.k === 'string') this.remember(g, r.k, r.s, isNum(r.ts) ? r.ts : replayedAt);
        return;
      }
      case 'a': {
        const g = this.groups.get(r.g);
        if (g) g.active = g.journalled = Math.max(g.active, r.at);
        return;
      }
      case 'x':
        this.bumpNextId(r.g);
        this.groups.delete(r.g);
        return;
      case 'n':
        this.nextId = Math.max(this.nextId, Math.floor(r.n));
        return;
    }
  }

  private bumpNextId(id: string): void {
    const n = Number(id);
    if (Number.isSafeInteger(n)) this.nextId = Math.max(this.nextId, n + 1);
  }

  /** Append to history, then drop the oldest past HISTORY_LIMIT, or past HISTORY_MAX_BYTES while more than the newest remains. */
  private push(g: Group, m: StoredMessage): void {
    g.history.push(m);
    g.bytes += textBytes(m.text);
    const maxBytes = this.opts.historyMaxBytes ?? 0;
    let drop = Math.max(0, g.history.length - this.opts.historyLimit);
    for (let i = 0; i < drop; i++) g.bytes -= textBytes((g.history[i] as StoredMessage).text);
    if (maxBytes > 0) {
      while (g.bytes > maxBytes && g.history.length - drop > 1) g.bytes -= textBytes((g.history[drop++] as StoredMessage).text);
    }
    if (drop > 0) g.history.splice(0, drop);
  }

  /** Keep one dedupe key (the newest dedupeWindow per group). */
  private remember(g: Group, key: string, seq: number, at: number): void {
    const window = this.opts.dedupeWindow ?? 1000;
    if (window <= 0) return;
    g.sent.delete(key);
    g.sent.set(key, seq);
    g.sentAt = Math.max(g.sentAt, at);
    while (g.sent.size > window) g.sent.delete(g.sent.keys().next().value as string);
  }

  private snapshot(): Rec[] {
    // The ID high-water mark first: removed groups' IDs stay taken.
    const out: Rec[] = [{ t: 'n', n: this.nextId }];
    for (const g of this.groups.values()) {
      out.push({ t: 'g', id: g.rec.id, h: g.rec.passwordHash, c: g.rec.creator, at: g.rec.createdAt, ep: g.rec.epoch, a: g.active });
      g.journalled = g.active;
      // Dedupe keys go with the messages history still holds (older ones are dropped here).
      const keys = new Map<number, string>();
      for (const [k, s] of g.sent) keys.set(s, k);
      for (const m of g.history) {
        const k = keys.get(m.seq);
        out.push({ ...messageRec(m), ...(k !== undefined ? { k } : {}) });
      }
    }
    this.appendsSinceCompaction = 0;
    return out;
  }

  private async write(r: Rec): Promise<void> {
    if (!this.up) throw new EngineUnavailableError('engine stopped');
    try {
      await this.journal.append(r);
    } catch (e) {
      throw new EngineUnavailableError('journal write failed', { cause: e });
    }
    // Bound the file: rewrite it once it holds several times what we keep (in records, or in bytes:
    // it doubled since the last rewrite, which held exactly what we kept then).
    if (
      ++this.appendsSinceCompaction > Math.max(10_000, 4 * this.groups.size * (this.opts.historyLimit + 1)) ||
      this.journal.bytes - this.journal.bytesAtCompaction > Math.max(COMPACT_MIN_GROWTH, this.journal.bytesAtCompaction)
    ) {
      this.appendsSinceCompaction = 0;
      void this.journal.compact(() => this.snapshot());
    }
  }

  async hasGroups(): Promise<boolean> {
    return this.groups.size > 0;
  }

  async createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord> {
    if (!this.up) throw new EngineUnavailableError('engine stopped');
    // Counted synchronously with the insert below, so concurrent creates cannot pass the ceiling.
    const max = this.opts.maxGroups ?? 0;
    if (max > 0 && this.groups.size >= max) throw new GroupLimitError();
    const id = String(this.nextId++);
    const full: GroupRecord = { id, ...rec, epoch: newEpoch() };
    const now = this.now();
    this.groups.set(id, { rec: full, seq: 0, assigned: 0, history: [], bytes: 0, active: now, journalled: now, sent: new Map(), sentAt: 0, writing: new Map() });
    try {
      await this.write({ t: 'g', id, h: rec.passwordHash, c: rec.creator, at: rec.createdAt, ep: full.epoch, a: now });
    } catch (e) {
      this.groups.delete(id); // not durable, so it never existed (the ID is not reused)
      throw e;
    }
    return full;
  }

  async getGroup(id: string): Promise<GroupRecord | null> {
    return this.groups.get(id)?.rec ?? null;
  }

  async countGroups(): Promise<number> {
    return this.groups.size;
  }

  async touchGroup(id: string): Promise<boolean> {
    const g = this.groups.get(id);
    if (!g) return false;
    await this.active(g, this.now());
    return true;
  }

  /** Mark a group active; journal it when the journal's idea of it is more than a grain old. */
  private async active(g: Group, now: number): Promise<void> {
    g.active = Math.max(g.active, now);
    if (this.retentionMs === 0 || g.active - g.journalled < this.activityGrain) return;
    g.journalled = g.active;
    await this.write({ t: 'a', g: g.rec.id, at: g.active });
  }

  async sweepIdle(): Promise<string[]> {
    if (this.retentionMs === 0 || !this.up) return [];
    return this.sweeping.run(() => this.sweepOnce());
  }

  private async sweepOnce(): Promise<string[]> {
    const now = this.now();
    const idle: Group[] = [];
    const marks: Array<Promise<void>> = [];
    for (const [id, g] of this.groups) {
      // A member online (or a node subscribed for one on its way in) keeps the group active.
      if (this.presence.has(id) || this.subscribed.has(id)) marks.push(this.active(g, now).catch(() => undefined));
      else if (now - g.active >= this.retentionMs) idle.push(g);
    }
    // Gone from every lookup at once: a join racing this sweep finds no group (touchGroup is false).
    // (Throttle entries of a removed group expire by themselves; its ID is never reused.)
    for (const g of idle) this.groups.delete(g.rec.id);
    const written = await Promise.allSettled(idle.map((g) => this.write({ t: 'x', g: g.rec.id })));
    await Promise.all(marks);
    const removed: string[] = [];
    written.forEach((w, i) => {
      const g = idle[i] as Group;
      if (w.status === 'rejected') {
        // Not durable: keep it (it would come back at the next start anyway).
        if (!this.groups.has(g.rec.id)) this.groups.set(g.rec.id, g);
        return;
      }
      removed.push(g.rec.id);
      this.opts.log?.info({ groupId: g.rec.id, idleSeconds: Math.floor((now - g.active) / 1000) }, '[CHAT REMOVED]');
      this.opts.onGroupRemoved?.(g.rec.id);
    });
    return removed;
  }

  async removeGroup(id: string): Promise<boolean> {
    const g = this.groups.get(id);
    if (!g) return false;
    // Gone from every lookup at once (a join racing it finds no group), then made durable.
    this.groups.delete(id);
    try {
      await this.write({ t: 'x', g: id });
    } catch (e) {
      if (!this.groups.has(id)) this.groups.set(id, g); // not durable: it would come back at the next start
      throw e;
    }
    this.presence.delete(id);
    this.emit(id, { kind: 'closed' });
    return true;
  }

  async publish(groupId: string, msg: NewMessage): Promise<Published> {
    const g = this.groups.get(groupId);
    if (!g) throw new Error(`no group ${groupId}`);
    const { dedupe, ...fields } = msg;
    const key = dedupe !== undefined && (this.opts.dedupeWindow ?? 1000) > 0 ? dedupe : null;
    const now = this.now();
    if (key !== null) {
      if (now - g.sentAt > (this.opts.dedupeTtlMs ?? 600_000)) g.sent.clear();
      const first = g.sent.get(key);
      if (first !== undefined) {
        // A retry: the first one's seq, once it is stored (if its write failed, this one is the first).
        const writing = g.writing.get(key);
        if (writing && !(await writing.then(() => true, () => false))) return this.publish(groupId, msg);
        return { groupId, seq: first, ...fields, duplicate: true };
      }
    }
    g.active = Math.max(g.active, now);
    const m: StoredMessage = { groupId, seq: ++g.assigned, ...fields };
    // Journal writes complete in queue order, so deliveries below go out in seq order.
    const write = this.write({ ...messageRec(m), ...(key !== null ? { k: key } : {}) });
    if (key !== null) {
      this.remember(g, key, m.seq, now);
      g.writing.set(key, write);
    }
    try {
      await write;
    } catch (e) {
      if (key !== null && g.sent.get(key) === m.seq) g.sent.delete(key);
      throw e;
    } finally {
      if (key !== null && g.writing.get(key) === write) g.writing.delete(key);
    }
    g.journalled = Math.max(g.journalled, m.ts);
    g.seq = m.seq;
    this.push(g, m);
    this.emit(groupId, { kind: 'message', message: m });
    return m;
  }

  async history(groupId: string, q: HistoryQuery): Promise<HistoryPage> {
    const g = this.groups.get(groupId);
    if (!g || q.limit <= 0) return { messages: [], top: g?.seq ?? 0 };
    const { since, before } = q;
    let messages: StoredMessage[];
    if (since !== undefined) messages = g.history.filter((m) => m.seq > since).slice(0, q.limit);
    else if (before !== undefined) messages = g.history.filter((m) => m.seq < before).slice(-q.limit);
    else messages = g.history.slice(-q.limit);
    return { messages, top: g.seq };
  }

  onChannel(handler: ChannelHandler): void {
    this.handler = handler;
  }

  async subscribe(groupId: string): Promise<void> {
    this.subscribed.add(groupId);
  }

  async unsubscribe(groupId: string): Promise<void> {
    this.subscribed.delete(groupId);
  }

  async notify(notice: Notice): Promise<void> {
    this.emit(notice.groupId, { kind: 'notice', notice });
  }

  private emit(groupId: string, ev: ChannelEvent): void {
    if (this.subscribed.has(groupId)) this.handler(groupId, ev);
  }

  async addMember(groupId: string, memberId: string, name: string): Promise<void> {
    let m = this.presence.get(groupId);
    if (!m) this.presence.set(groupId, (m = new Map()));
    m.set(memberId, name);
  }

  async removeMember(groupId: string, memberId: string): Promise<void> {
    const m = this.presence.get(groupId);
    m?.delete(memberId);
    if (m?.size === 0) this.presence.delete(groupId);
    // Leaving is activity: retention counts a group's idleness from its last member's leaving too.
    const g = this.groups.get(groupId);
    if (g && this.up) await this.active(g, this.now()).catch(() => undefined);
  }

  async members(groupId: string): Promise<string[]> {
    return [...(this.presence.get(groupId)?.values() ?? [])];
  }
}
