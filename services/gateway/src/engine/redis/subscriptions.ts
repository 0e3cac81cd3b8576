// The subscriber side of the Redis engine: one connection per process, one
// SUBSCRIBE per group with local members, and the channel → listener map.
//
// Pub/sub is at-most-once: whatever was published while this connection was
// away is gone. So ioredis's own resubscribe is off; after every (re)connect
// this class subscribes to everything in the map, waits for Redis to confirm,
// and then (once commands work too, since the node backfills through them)
// sends every listener a `resync`.
import type { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import type { ChannelEvent, ChannelListener } from '../engine.js';
import { channelGroup, groupKeys } from './keys.js';
import { parseChannelPayload } from './payloads.js';

const SUBSCRIBE_BATCH = 500;

interface Subscription {
  groupId: string;
  listener: ChannelListener;
}

export class Subscriptions {
  /** channel → the node's listener for that group. */
  private subs = new Map<string, Subscription>();
  private resubscribing = false;
  private resyncPending = false;

  constructor(
    private readonly conn: Redis,
    private readonly log: Logger,
    /** Whether a resync can be served now (the engine is up: both connections ready). */
    private readonly canResync: () => boolean,
  ) {
    conn.on('ready', () => void this.resubscribeAll());
    conn.on('message', (channel: string, payload: string) => this.onMessage(channel, payload));
  }

  get size(): number {
    return this.subs.size;
  }

  /**
   * Calls for one group apply in call order: the map changes synchronously and
   * SUBSCRIBE/UNSUBSCRIBE go out in order on the one connection. While it is
   * down only the map changes; the next 'ready' subscribes and resyncs.
   */
  async subscribe(groupId: string, listener: ChannelListener): Promise<void> {
    const channel = groupKeys(groupId).channel;
    this.subs.set(channel, { groupId, listener });
    if (this.conn.status !== 'ready') return;
    try {
      await this.conn.subscribe(channel);
    } catch (e) {
      // The connection dropped under us: its next 'ready' resubscribes and resyncs.
      this.log.debug({ groupId, err: e instanceof Error ? e.message : String(e) }, 'subscribe failed');
    }
  }

  async unsubscribe(groupId: string): Promise<void> {
    const channel = groupKeys(groupId).channel;
    this.subs.delete(channel);
    if (this.conn.status !== 'ready') return;
    await this.conn.unsubscribe(channel).catch(() => undefined);
  }

  private async resubscribeAll(): Promise<void> {
    this.resubscribing = true;
    try {
      const channels = [...this.subs.keys()];
      for (let i = 0; i < channels.length; i += SUBSCRIBE_BATCH) await this.conn.subscribe(...channels.slice(i, i + SUBSCRIBE_BATCH));
      if (channels.length > 0) {
        this.resyncPending = true;
        this.log.info({ channels: channels.length }, '[RESUBSCRIBED]');
      }
    } catch (e) {
      // Dropped again mid-way: the next 'ready' starts over.
      this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'resubscribe failed');
    } finally {
      this.resubscribing = false;
    }
    this.maybeResync();
  }

  /** Deliver a pending resync once it can be served (the engine calls this when commands come back). */
  maybeResync(): void {
    if (!this.resyncPending || this.resubscribing || !this.canResync()) return;
    this.resyncPending = false;
    this.log.info({ groups: this.subs.size }, '[RESYNC]');
    for (const s of this.subs.values()) this.emit(s, { kind: 'resync' });
  }

  private emit(s: Subscription, ev: ChannelEvent): void {
    try {
      s.listener(ev);
    } catch (e) {
      this.log.error({ groupId: s.groupId, err: e }, 'channel listener failed');
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
