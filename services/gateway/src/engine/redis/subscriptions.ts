// The subscriber side of the Redis engine: one subscription per group with
// local members, the channel → group map, and the node's one handler.
//
// Where a channel is subscribed comes from the Topology (connection.ts): on
// one server, classic SUBSCRIBE on one connection; on a Redis Cluster, sharded
// SSUBSCRIBE on one connection per master, the one serving the channel's slot
// (SPUBLISH only reaches subscribers on the shard that owns the slot).
//
// Pub/sub is at-most-once: whatever was published while a subscription was
// missing is gone. So ioredis's own resubscribe is off; whenever a connection
// (re)connects this class subscribes it to every channel routed to it, waits
// for Redis to confirm, and then (once the engine is up, since the node
// backfills through commands) sends the handler a `resync` for each of those channels. The
// same happens to a channel whose slot moved to another master (migration,
// failover) and to every channel of a connection that Redis told about a move
// (an unsolicited SUNSUBSCRIBE or a MOVED reply, which ioredis reports as 'moved').
import type { Redis } from 'ioredis';
import { errText, type Logger } from '../../log.js';
import type { ChannelEvent, ChannelHandler } from '../engine.js';
import type { Topology } from './connection.js';
import { channelGroup, groupKeys, keySlot } from './keys.js';
import { parseChannelPayload } from './payloads.js';

const SUBSCRIBE_BATCH = 500;
/** (S)SUBSCRIBE commands in flight at once while resubscribing. */
const SUBSCRIBE_WINDOW = 500;
/** Repairs after 'moved' (slot map reload + resubscribe) at most this often after the first. */
const MOVED_RETRY_MS = 100;

interface Subscription {
  groupId: string;
  /** The node whose connection should hold it (null: slot map unknown yet). */
  node: string | null;
}

interface Link {
  node: string;
  conn: Redis;
  /** Set after ready once, so later 'ready' events count as reconnects. */
  connectedBefore: boolean;
}

export interface SubscriptionHooks {
  /** Whether a resync can be served now (the engine is up). */
  canResync: () => boolean;
  /** A subscriber connection came back after a loss. */
  onReconnect: () => void;
  /** A subscriber connection changed status (for the engine's up/down log). */
  onStatus: () => void;
}

export class Subscriptions {
  /** The node's one handler for every group's events (Broker.onChannel). */
  private handler: ChannelHandler = () => undefined;
  /** channel → its group and where it is subscribed. */
  private subs = new Map<string, Subscription>();
  /** node → its subscriber connection. */
  private links = new Map<string, Link>();
  /** Channels subscribed again (confirmed) that still owe the handler a resync. */
  private pending = new Set<string>();
  private resubscribing = 0;
  private movedTimer: NodeJS.Timeout | null = null;
  private movedNodes = new Set<string>();
  private lastRepairAt = 0;
  private stopped = false;
  private readonly subscribeCmd: 'subscribe' | 'ssubscribe';
  private readonly unsubscribeCmd: 'unsubscribe' | 'sunsubscribe';

  constructor(
    private readonly topology: Topology,
    private readonly log: Logger,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.subscribeCmd = topology.sharded ? 'ssubscribe' : 'subscribe';
    this.unsubscribeCmd = topology.sharded ? 'sunsubscribe' : 'unsubscribe';
    topology.onChange(() => this.reconcile());
  }

  /** The subscriber connections (for the health check). */
  connections(): Redis[] {
    return [...this.links.values()].map((l) => l.conn);
  }

  /** Every node has a connection and every connection is ready. */
  allReady(): boolean {
    if (this.links.size === 0) return false;
    for (const l of this.links.values()) if (l.conn.status !== 'ready') return false;
    return true;
  }

  /** Open a connection to every node the topology knows now (more come with each refresh). */
  start(): void {
    this.reconcile();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.movedTimer) clearTimeout(this.movedTimer);
    return Promise.all([...this.links.values()].map((l) => close(l.conn))).then(() => undefined);
  }

  /**
   * Calls for one group apply in call order: the map changes synchronously and
   * (S)SUBSCRIBE/(S)UNSUBSCRIBE go out in order on the group's connection. While
   * it is down only the map changes; its next 'ready' subscribes and resyncs.
   */
  onEvent(handler: ChannelHandler): void {
    this.handler = handler;
  }

  async subscribe(groupId: string): Promise<void> {
    const channel = groupKeys(groupId).channel;
    const node = this.topology.ownerOf(channel);
    this.subs.set(channel, { groupId, node });
    const link = node === null ? undefined : this.links.get(node);
    if (!link || link.conn.status !== 'ready') return;
    try {
      await link.conn[this.subscribeCmd](channel);
    } catch (e) {
      // Dropped under us (its next 'ready' resubscribes), or MOVED (the 'moved' repair resubscribes).
      this.log.debug({ groupId, err: errText(e) }, 'subscribe failed');
    }
  }

  async unsubscribe(groupId: string): Promise<void> {
    const channel = groupKeys(groupId).channel;
    const s = this.subs.get(channel);
    this.subs.delete(channel);
    this.pending.delete(channel);
    const link = s?.node ? this.links.get(s.node) : undefined;
    if (link && link.conn.status === 'ready') await link.conn[this.unsubscribeCmd](channel).catch(() => undefined);
  }

  /** Deliver pending resyncs once they can be served (the engine calls this when commands come back). */
  maybeResync(): void {
    if (this.pending.size === 0 || this.resubscribing > 0 || !this.hooks.canResync()) return;
    const channels = [...this.pending];
    this.pending.clear();
    this.log.info({ groups: channels.length }, '[RESYNC]');
    for (const ch of channels) {
      const s = this.subs.get(ch);
      if (s) this.emit(s, { kind: 'resync' });
    }
  }

  // ---- connections and routing ----

  /** Match connections to the topology's nodes, and channels to the node that now serves them. */
  private reconcile(): void {
    if (this.stopped) return;
    const nodes = new Set(this.topology.nodes());
    for (const node of nodes) if (!this.links.has(node)) this.openLink(node);
    const moved = new Map<string, string[]>();
    for (const [channel, s] of this.subs) {
      const owner = this.topology.ownerOf(channel);
      if (owner === null || owner === s.node) continue;
      const old = s.node ? this.links.get(s.node) : undefined;
      // Best effort: a master that lost the slot has dropped the subscription already.
      if (old && old.conn.status === 'ready') old.conn[this.unsubscribeCmd](channel).catch(() => undefined);
      s.node = owner;
      const list = moved.get(owner);
      if (list) list.push(channel);
      else moved.set(owner, [channel]);
    }
    for (const [node, channels] of moved) {
      this.log.info({ node, channels: channels.length }, 'channels moved to another master');
      const link = this.links.get(node);
      if (link && link.conn.status === 'ready') void this.resubscribe(link, channels);
      // else: its 'ready' subscribes them.
    }
    const routed = new Set([...this.subs.values()].map((s) => s.node));
    for (const [node, link] of this.links) {
      if (nodes.has(node) || routed.has(node)) continue;
      this.links.delete(node);
      void close(link.conn);
    }
  }

  private openLink(node: string): void {
    const conn = this.topology.openSubscriber(node);
    const link: Link = { node, conn, connectedBefore: false };
    this.links.set(node, link);
    conn.on('error', (e: Error) => this.log.debug({ conn: 'subscriber', node, err: e.message }, 'redis connection error'));
    conn.on('close', () => this.hooks.onStatus());
    conn.on('ready', () => {
      if (link.connectedBefore) this.hooks.onReconnect();
      link.connectedBefore = true;
      this.hooks.onStatus();
      void this.resubscribe(link, this.channelsOf(node));
    });
    conn.on(this.topology.sharded ? 'smessage' : 'message', (channel: string, payload: string) => this.onMessage(channel, payload));
    conn.on('moved', () => this.onMoved(node));
    void conn.connect().catch(() => undefined); // a failed first attempt is retried like any reconnect
  }

  private channelsOf(node: string): string[] {
    const out: string[] = [];
    for (const [channel, s] of this.subs) if (s.node === node) out.push(channel);
    return out;
  }

  /** Subscribe `channels` on the link, confirmed by Redis, then owe each a resync. */
  private async resubscribe(link: Link, channels: string[]): Promise<void> {
    if (channels.length === 0) return;
    this.resubscribing++;
    let failed = 0;
    let lastError = '';
    try {
      // Commands go out back to back (ioredis pipelines them); at most a window's worth in flight.
      const all = batches(channels, this.topology.sharded);
      for (let i = 0; i < all.length; i += SUBSCRIBE_WINDOW) {
        const window = all.slice(i, i + SUBSCRIBE_WINDOW);
        const results = await Promise.allSettled(window.map((b) => link.conn[this.subscribeCmd](...b)));
        results.forEach((r, k) => {
          if (r.status === 'rejected') {
            failed++;
            lastError = errText(r.reason);
            return;
          }
          // Only channels still routed here: one unsubscribed or moved meanwhile needs no resync from this.
          for (const ch of window[k] as string[]) if (this.subs.get(ch)?.node === link.node) this.pending.add(ch);
        });
      }
      // A failure means the connection dropped again (its next 'ready' starts over) or MOVED (the 'moved' repair does).
      if (failed > 0) this.log.warn({ node: link.node, failed, err: lastError }, 'resubscribe incomplete');
      else this.log.info({ node: link.node, channels: channels.length }, '[RESUBSCRIBED]');
    } finally {
      this.resubscribing--;
    }
    this.maybeResync();
  }

  /**
   * Redis told a connection that a slot moved (an unsolicited SUNSUBSCRIBE after
   * a migration or failover, or MOVED to an SSUBSCRIBE). Reload the slot map
   * (which re-routes moved channels), then subscribe that connection again to
   * everything still routed to it, since Redis may have dropped some. The first
   * repair starts at once (messages published meanwhile can only be backfilled
   * from the capped history); repairs in quick succession (the slot map still
   * stale somewhere) are spaced out.
   */
  private onMoved(node: string): void {
    this.movedNodes.add(node);
    if (this.movedTimer || this.stopped) return;
    const delay = Date.now() - this.lastRepairAt < MOVED_RETRY_MS ? MOVED_RETRY_MS : 0;
    this.movedTimer = setTimeout(() => void this.repair(), delay);
    this.movedTimer.unref();
  }

  private async repair(): Promise<void> {
    this.lastRepairAt = Date.now();
    await this.topology.refresh();
    this.movedTimer = null;
    const nodes = [...this.movedNodes];
    this.movedNodes.clear();
    this.reconcile();
    for (const n of nodes) {
      const link = this.links.get(n);
      if (link && link.conn.status === 'ready') await this.resubscribe(link, this.channelsOf(n));
    }
  }

  // ---- delivery ----

  private emit(s: Subscription, ev: ChannelEvent): void {
    try {
      this.handler(s.groupId, ev);
    } catch (e) {
      this.log.error({ groupId: s.groupId, err: e }, 'channel handler failed');
    }
  }

  private onMessage(channel: string, payload: string): void {
    const s = this.subs.get(channel);
    if (!s || channelGroup(channel) !== s.groupId) return;
    const ev = parseChannelPayload(s.groupId, payload);
    if (ev) this.emit(s, ev);
    else {
      // Something we cannot read may have been a message: let the node repair from history.
      this.log.warn({ groupId: s.groupId, bytes: payload.length }, 'unreadable channel payload: resyncing the group');
      this.emit(s, { kind: 'resync' });
    }
  }
}

/** Classic SUBSCRIBE takes any channels together; SSUBSCRIBE only channels of one slot. */
function batches(channels: string[], sharded: boolean): string[][] {
  const out: string[][] = [];
  if (!sharded) {
    for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) out.push(channels.slice(i, i + SUBSCRIBE_BATCH));
    return out;
  }
  const bySlot = new Map<number, string[]>();
  for (const ch of channels) {
    const slot = keySlot(ch);
    const b = bySlot.get(slot);
    if (b) b.push(ch);
    else bySlot.set(slot, [ch]);
  }
  return [...bySlot.values()];
}

async function close(conn: Redis): Promise<void> {
  if (conn.status === 'ready') await conn.quit().catch(() => conn.disconnect());
  else conn.disconnect();
}

