// The embedded single-node engine: state in memory, durability in a journal
// under DATA_DIR, replayed at start. Used when REDIS_URL is unset.
import {
  EngineUnavailableError,
  newEpoch,
  type ChannelListener,
  type Engine,
  type GroupRecord,
  type HistoryQuery,
  type NewMessage,
  type Notice,
  type StoredMessage,
} from './engine.js';
import { Journal } from './journal.js';
import { MemoryThrottle } from './memory-throttle.js';

type Rec =
  | { t: 'g'; id: string; h: string; c: string; at: number; ep?: string }
  | { t: 'm'; g: string; s: number; f: string; x: string; ts: number };

interface Group {
  rec: GroupRecord;
  /** Highest seq stored and delivered. */
  seq: number;
  /** Highest seq handed out (ahead of `seq` while writes are in flight). */
  assigned: number;
  history: StoredMessage[];
}

export interface MemoryEngineOptions {
  dataDir: string;
  historyLimit: number;
}

function parseRec(v: unknown): Rec | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (r['t'] === 'g' && typeof r['id'] === 'string' && typeof r['h'] === 'string') return r as Rec;
  if (r['t'] === 'm' && typeof r['g'] === 'string' && typeof r['s'] === 'number') return r as Rec;
  return null;
}

export class MemoryEngine implements Engine {
  readonly kind = 'memory' as const;
  readonly throttle = new MemoryThrottle();
  private groups = new Map<string, Group>();
  private nextId = 0;
  private listeners = new Map<string, ChannelListener>();
  private presence = new Map<string, Map<string, string>>();
  private journal: Journal<Rec>;
  private appendsSinceCompaction = 0;
  private up = false;
  droppedBytesAtStart = 0;

  constructor(private readonly opts: MemoryEngineOptions) {
    this.journal = new Journal<Rec>(opts.dataDir);
  }

  async start(): Promise<void> {
    const { records, droppedBytes } = await this.journal.replay(parseRec);
    this.droppedBytesAtStart = droppedBytes;
    for (const r of records) this.apply(r);
    // Start from a compact file: groups plus the history we still keep.
    this.journal.compact(() => this.snapshot());
    this.up = true;
  }

  async stop(): Promise<void> {
    this.up = false;
    await this.journal.close();
  }

  isUp(): boolean {
    return this.up;
  }

  private apply(r: Rec): void {
    if (r.t === 'g') {
      if (this.groups.has(r.id)) return;
      // A group journalled before epochs gets one now (kept from the next compaction on).
      this.groups.set(r.id, { rec: { id: r.id, passwordHash: r.h, creator: r.c, createdAt: r.at, epoch: r.ep ?? newEpoch() }, seq: 0, assigned: 0, history: [] });
      this.nextId = Math.max(this.nextId, Number(r.id) + 1);
      return;
    }
    const g = this.groups.get(r.g);
    if (!g || r.s <= g.seq) return;
    g.seq = g.assigned = r.s;
    this.push(g, { groupId: r.g, seq: r.s, from: r.f, text: r.x, ts: r.ts, origin: '' });
  }

  private push(g: Group, m: StoredMessage): void {
    g.history.push(m);
    if (g.history.length > this.opts.historyLimit) g.history.splice(0, g.history.length - this.opts.historyLimit);
  }

  private snapshot(): Rec[] {
    const out: Rec[] = [];
    for (const g of this.groups.values()) {
      out.push({ t: 'g', id: g.rec.id, h: g.rec.passwordHash, c: g.rec.creator, at: g.rec.createdAt, ep: g.rec.epoch });
      for (const m of g.history) out.push({ t: 'm', g: m.groupId, s: m.seq, f: m.from, x: m.text, ts: m.ts });
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
    // Bound the file: rewrite it once it holds several times what we keep.
    if (++this.appendsSinceCompaction > Math.max(10_000, 4 * this.groups.size * (this.opts.historyLimit + 1)))
      this.journal.compact(() => this.snapshot());
  }

  async hasGroups(): Promise<boolean> {
    return this.groups.size > 0;
  }

  async createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord> {
    const id = String(this.nextId++);
    const full: GroupRecord = { id, ...rec, epoch: newEpoch() };
    this.groups.set(id, { rec: full, seq: 0, assigned: 0, history: [] });
    try {
      await this.write({ t: 'g', id, h: rec.passwordHash, c: rec.creator, at: rec.createdAt, ep: full.epoch });
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

  async touchGroup(_id: string): Promise<void> {}

  async publish(groupId: string, msg: NewMessage): Promise<StoredMessage> {
    const g = this.groups.get(groupId);
    if (!g) throw new Error(`no group ${groupId}`);
    const m: StoredMessage = { groupId, seq: ++g.assigned, ...msg };
    // Journal writes complete in queue order, so deliveries below go out in seq order.
    await this.write({ t: 'm', g: groupId, s: m.seq, f: m.from, x: m.text, ts: m.ts });
    g.seq = m.seq;
    this.push(g, m);
    this.listeners.get(groupId)?.({ kind: 'message', message: m });
    return m;
  }

  async history(groupId: string, q: HistoryQuery): Promise<StoredMessage[]> {
    const h = this.groups.get(groupId)?.history ?? [];
    if (q.since === undefined) return h.slice(-q.limit);
    const since = q.since;
    return h.filter((m) => m.seq > since).slice(0, q.limit);
  }

  async latestSeq(groupId: string): Promise<number> {
    return this.groups.get(groupId)?.seq ?? 0;
  }

  async subscribe(groupId: string, listener: ChannelListener): Promise<void> {
    this.listeners.set(groupId, listener);
  }

  async unsubscribe(groupId: string): Promise<void> {
    this.listeners.delete(groupId);
  }

  async notify(notice: Notice): Promise<void> {
    this.listeners.get(notice.groupId)?.({ kind: 'notice', notice });
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
  }

  async members(groupId: string): Promise<string[]> {
    return [...(this.presence.get(groupId)?.values() ?? [])];
  }
}
