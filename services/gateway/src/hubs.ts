// Per-group hubs: one engine subscription per group with members on this node
// (reference-counted), the map of this node's members to their connections,
// in-order delivery by seq (duplicates dropped, gaps backfilled from history),
// and local fan-out through the transports, each message encoded once per codec.
import type { Config } from './config.js';
import type { Broker, ChannelEvent, StoredMessage } from './engine/engine.js';
import { errText, type Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Conn, Fanout } from './ports.js';
import { Encoded } from './protocol/codecs.js';
import type { ChatMessage, HistoryFrom } from './engine/model.js';
import type { ServerEvent } from './protocol/frames.js';

const BACKFILL_RETRY_MS = 1000;

class Hub {
  /** The last seq fanned out on this node. */
  seq = 0;
  refs = 0;
  live = false;
  /** The running backfill, if any. */
  backfilling: Promise<void> | null = null;
  /** Another resync/gap came in during the running backfill (or before the hub went live): go round again. */
  again = false;
  /** A backfill failed: messages wait in the buffer until the retry, so nothing is skipped or reordered. */
  retry: NodeJS.Timeout | null = null;
  buffer: StoredMessage[] = [];
  ready: Promise<void> = Promise.resolve();
  constructor(readonly groupId: string) {}
}

export function publicMessage(m: StoredMessage): ChatMessage {
  const out: ChatMessage = { groupId: m.groupId, seq: m.seq, from: m.from, text: m.text, ts: m.ts };
  if (m.api) out.api = true;
  return out;
}

interface Member {
  conn: Conn;
  groupId: string;
}

export class GroupHubs {
  private readonly hubs = new Map<string, Hub>();
  private readonly fanouts: Fanout[] = [];
  /** This node's members in a group, by member ID: whoever sent a message or notice is not echoed it. */
  private readonly members = new Map<string, Member>();

  constructor(
    private readonly engine: Broker,
    private readonly config: Pick<Config, 'historyLimit' | 'historyReplay'>,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** The group was removed (the server API's DELETE): these members of it on this node must leave it. */
    private readonly onClosed: (groupId: string, memberIds: string[]) => void = () => undefined,
  ) {
    engine.onChannel((groupId, ev) => {
      const hub = this.hubs.get(groupId);
      if (hub) this.onChannel(hub, ev);
    });
  }

  addFanout(f: Fanout): void {
    this.fanouts.push(f);
  }

  /**
   * Make `groupId` live on this node, hand `greet` the history a new member
   * needs (per `from`, and at least up to what was already fanned out here),
   * and add the member: `greet` and the subscription to the live topic happen
   * in the same tick, so nothing falls between history and live. Returns false
   * (and holds nothing) when `gone()` says the member left meanwhile.
   */
  async attach(
    groupId: string,
    memberId: string,
    conn: Conn,
    from: HistoryFrom,
    gone: () => boolean,
    greet: (history: ChatMessage[], upTo: number) => void,
  ): Promise<boolean> {
    const hub = this.acquire(groupId);
    try {
      await hub.ready;
      // A client resuming from further than this node has delivered (it came from a node
      // that was ahead): catch the node up first, or it would get those messages twice.
      if (from !== 'recent' && from.since > hub.seq) await this.backfill(hub);
      const limit = this.config.historyLimit;
      // A join replays the newest HISTORY_REPLAY; a resume everything after `since` that is kept.
      const first =
        from === 'recent'
          ? await this.engine.history(groupId, { limit: this.config.historyReplay })
          : await this.engine.history(groupId, { since: from.since, limit });
      const msgs = first.messages;
      // With no replay (HISTORY_REPLAY=0) a join starts at the top, not at the oldest kept message.
      let last = msgs.length > 0 ? (msgs[msgs.length - 1] as StoredMessage).seq : from === 'recent' ? first.top : from.since;
      while (last < hub.seq) {
        const more = (await this.engine.history(groupId, { since: last, limit })).messages;
        if (more.length === 0) break;
        msgs.push(...more);
        last = (more[more.length - 1] as StoredMessage).seq;
      }
      if (gone()) {
        this.release(groupId);
        return false;
      }
      greet(msgs.filter((m) => m.seq <= hub.seq).map(publicMessage), hub.seq);
      this.members.set(memberId, { conn, groupId });
      conn.subscribe(groupId);
      return true;
    } catch (e) {
      this.release(groupId);
      throw e;
    }
  }

  /** The member leaves its group on this node (`connected`: its socket is still open). Returns the group it left. */
  detach(memberId: string, connected: boolean): string | null {
    const m = this.members.get(memberId);
    if (!m) return null;
    this.members.delete(memberId);
    if (connected) m.conn.unsubscribe(m.groupId);
    this.release(m.groupId);
    return m.groupId;
  }

  /** The member's connection if it is in `groupId` here (it is not echoed its own events). */
  private local(memberId: string, groupId: string): Conn | null {
    const m = this.members.get(memberId);
    return m !== undefined && m.groupId === groupId ? m.conn : null;
  }

  /** The last member out ends the engine subscription. */
  private release(groupId: string): void {
    const hub = this.hubs.get(groupId);
    if (!hub || --hub.refs > 0) return;
    this.hubs.delete(groupId);
    if (hub.retry) clearTimeout(hub.retry);
    this.metrics.subscriptions.dec();
    this.engine.unsubscribe(groupId).catch((e: unknown) => {
      this.metrics.engineErrors.inc({ op: 'unsubscribe' });
      this.log.warn({ groupId, err: errText(e) }, 'unsubscribe failed');
    });
  }

  /** Hand to every transport's fan-out; each codec is encoded once, and only if some transport has members for it. */
  private publishLocal(groupId: string, ev: ServerEvent, exclude: Conn | null): void {
    const out = new Encoded(ev);
    for (const f of this.fanouts) f.publish(groupId, out, exclude, ev.type === 'message');
  }

  private acquire(groupId: string): Hub {
    let hub = this.hubs.get(groupId);
    if (!hub) {
      const h = new Hub(groupId);
      hub = h;
      this.hubs.set(groupId, h);
      this.metrics.subscriptions.inc();
      h.ready = (async () => {
        await this.engine.subscribe(groupId);
        h.seq = Math.max(h.seq, (await this.engine.history(groupId, { limit: 0 })).top);
        h.live = true;
        this.flushBuffer(h);
        if (h.again) void this.backfill(h);
      })();
      h.ready.catch(() => undefined); // observed by attach
    }
    hub.refs++;
    return hub;
  }

  private onChannel(hub: Hub, ev: ChannelEvent): void {
    switch (ev.kind) {
      case 'message':
        if (!hub.live || hub.backfilling || hub.retry) hub.buffer.push(ev.message);
        else this.accept(hub, ev.message);
        return;
      case 'notice': {
        const { notice } = ev;
        const e: ServerEvent = { type: notice.kind === 'joined' ? 'member_joined' : 'member_left', groupId: notice.groupId, name: notice.name };
        this.publishLocal(hub.groupId, e, this.local(notice.origin, hub.groupId));
        return;
      }
      case 'resync':
        if (hub.live) void this.backfill(hub);
        else hub.again = true;
        return;
      case 'closed': {
        const ids: string[] = [];
        for (const [id, m] of this.members) if (m.groupId === hub.groupId) ids.push(id);
        if (ids.length > 0) this.onClosed(hub.groupId, ids);
        return;
      }
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

  /** Read history after hub.seq and deliver it; joins the running backfill if there is one. */
  private backfill(hub: Hub): Promise<void> {
    if (hub.backfilling) {
      hub.again = true;
      return hub.backfilling;
    }
    if (hub.retry) {
      clearTimeout(hub.retry);
      hub.retry = null;
    }
    this.metrics.backfills.inc();
    hub.backfilling = this.runBackfill(hub);
    return hub.backfilling;
  }

  private async runBackfill(hub: Hub): Promise<void> {
    let failed = false;
    try {
      do {
        hub.again = false;
        for (;;) {
          const more = (await this.engine.history(hub.groupId, { since: hub.seq, limit: this.config.historyLimit })).messages;
          for (const m of more) {
            if (m.seq <= hub.seq) continue;
            hub.seq = m.seq;
            this.deliver(hub, m);
          }
          if (more.length < this.config.historyLimit) break;
        }
      } while (hub.again);
    } catch (e) {
      failed = true;
      this.metrics.engineErrors.inc({ op: 'backfill' });
      this.log.warn({ groupId: hub.groupId, err: errText(e) }, 'backfill failed: retrying');
    } finally {
      hub.backfilling = null;
    }
    if (failed) {
      // Keep what is buffered; try again shortly (the engine is likely down, and comes back with a resync).
      if (this.hubs.get(hub.groupId) === hub) {
        hub.retry = setTimeout(() => {
          hub.retry = null;
          if (this.hubs.get(hub.groupId) === hub) void this.backfill(hub);
        }, BACKFILL_RETRY_MS);
        hub.retry.unref();
      }
      return;
    }
    // History is read up to now: what it lacks is gone (trimmed), so holes are skipped.
    this.flushBuffer(hub, true);
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
    this.publishLocal(hub.groupId, { type: 'message', ...publicMessage(m) }, this.local(m.origin, hub.groupId));
    this.metrics.fanoutLatency.observe(Math.max(0, Date.now() - m.ts) / 1000);
  }
}
