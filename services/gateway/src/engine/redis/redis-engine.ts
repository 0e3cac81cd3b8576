// The Redis engine: many gateway processes sharing one Redis, or one Redis
// Cluster, behave as one chat server. Which of the two is connection.ts's
// business (a small factory); everything here is the same for both. Keys and
// channels are named in keys.ts; the atomic parts are Lua scripts
// (scripts/*.lua, registered in scripts.ts); the subscriber side and resync
// live in subscriptions.ts; presence and node heartbeats in presence.ts; the
// PING that catches a Redis that stopped answering in health.ts.
//
// Connections per process: the command client (one connection, or one per
// master), and one subscriber connection (per master on a cluster) holding one
// (S)SUBSCRIBE per group with local members. None queues commands while Redis
// is unreachable: a call then fails at once with EngineUnavailableError.
import type { Config } from '../../config.js';
import { createLogger, type Logger } from '../../log.js';
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
} from '../engine.js';
import { openBackend, type Backend } from './connection.js';
import { HealthCheck } from './health.js';
import { groupKeys, GROUPS_EXIST, ID_COUNTER, isGroupId } from './keys.js';
import { parseStreamEntries, type StreamEntry } from './payloads.js';
import { Presence } from './presence.js';
import type { ScriptedClient } from './scripts.js';
import { Subscriptions } from './subscriptions.js';
import { RedisThrottle } from './throttle.js';

/** How long start() waits for Redis before going on not ready (it keeps reconnecting). */
const START_WAIT_MS = 5_000;
/** Give up on an ID after this many taken ones in a row (the counter would have to be far behind). */
const MAX_ID_ATTEMPTS = 100_000;

/** Replies that mean "Redis cannot serve right now", not "the request is wrong". */
const TRANSIENT_REPLY = /^(LOADING|MISCONF|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|NOSCRIPT|MOVED|ASK)\b/;

/**
 * Connection trouble and transient replies become EngineUnavailableError; other
 * replies are bugs and stay plain errors. Only the message is kept: ioredis
 * attaches the command with its arguments (message text) to reply errors, and
 * those must never reach a log.
 */
function toEngineError(e: unknown): Error {
  if (e instanceof EngineUnavailableError) return e;
  const message = e instanceof Error ? e.message : 'redis unavailable';
  if (e instanceof Error && e.name === 'ReplyError' && !TRANSIENT_REPLY.test(message)) return new Error(`redis: ${message}`);
  return new EngineUnavailableError(message);
}

export interface RedisEngineHooks {
  /** A connection came back after a loss (for chat_redis_reconnects_total). */
  onReconnect?: (conn: 'command' | 'subscriber') => void;
}

export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  readonly throttle = new RedisThrottle((f) => this.call(f));
  private readonly log: Logger;
  private backend: Backend | null = null;
  private subscriptions: Subscriptions | null = null;
  private readonly health: HealthCheck;
  private wasUp = false;
  /** start() waiting for the first time everything is up. */
  private upWaiters: Array<() => void> = [];
  private stopped = false;
  private readonly presence: Presence;

  constructor(
    private readonly config: Config,
    log?: Logger,
    private readonly hooks: RedisEngineHooks = {},
  ) {
    if (!config.redisUrl && !config.redisClusterNodes) throw new Error('the Redis engine needs REDIS_URL or REDIS_CLUSTER_NODES');
    this.log = (log ?? createLogger(config.logLevel, config.nodeId)).child({ engine: 'redis' });
    this.presence = new Presence({
      nodeId: config.nodeId,
      ttlMs: config.presenceTtlSeconds * 1000,
      log: this.log,
      redis: () => this.cmd,
      isReady: () => this.commandsReady(),
      onSwept: (groupId, memberId, name) => this.notify({ kind: 'left', groupId, name, origin: memberId }),
    });
    this.health = new HealthCheck({
      intervalMs: config.redisPingIntervalMs,
      timeoutMs: config.redisPingTimeoutMs,
      targets: () => [...(this.backend?.commandConnections() ?? []), ...(this.subscriptions?.connections() ?? [])],
      onChange: (healthy, detail) => {
        if (healthy) this.subscriptions?.maybeResync();
        this.onStatus(healthy ? 'ping' : `ping timeout (${detail.failed} of ${detail.of} connections)`);
      },
    });
  }

  private get channels(): Subscriptions {
    if (!this.subscriptions) throw new EngineUnavailableError('engine not started');
    return this.subscriptions;
  }

  private get cmd(): ScriptedClient {
    if (!this.backend) throw new EngineUnavailableError('engine not started');
    return this.backend.cmd;
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    const backend = openBackend(this.config);
    this.backend = backend;
    const cmd = backend.cmd;
    const channels = new Subscriptions(backend.topology, this.log, {
      canResync: () => this.isUp(),
      onReconnect: () => this.hooks.onReconnect?.('subscriber'),
      onStatus: () => this.onStatus('subscriber'),
    });
    this.subscriptions = channels;
    cmd.on('error', (e: Error) => this.log.debug({ conn: 'command', err: e.message }, 'redis connection error'));
    cmd.on('node error', (e: Error) => this.log.debug({ conn: 'command', err: e.message }, 'redis node error'));
    cmd.on('close', () => this.onStatus('command'));
    let connectedBefore = false;
    cmd.on('ready', () => {
      if (connectedBefore) this.hooks.onReconnect?.('command');
      connectedBefore = true;
      // The cluster's slot map is known by now: connect a subscriber to every master.
      channels.start();
      this.onStatus('command');
      void this.presence.beat();
      channels.maybeResync();
    });
    channels.start();

    // A failed first attempt is retried by the retry strategy like any reconnect.
    void cmd.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      new Promise<boolean>((res) => (this.isUp() ? res(true) : this.upWaiters.push(() => res(true)))),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), START_WAIT_MS))),
    ]);
    clearTimeout(timer);
    this.upWaiters = [];
    if (!up) this.log.warn({ waitedMs: START_WAIT_MS }, 'redis not reachable yet: starting not ready, still trying');
    this.presence.start();
    this.health.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.health.stop();
    await this.presence.stop();
    await this.subscriptions?.stop();
    const c = this.backend?.cmd;
    if (!c) return;
    if (c.status === 'ready') await c.quit().catch(() => c.disconnect());
    else c.disconnect();
  }

  private commandsReady(): boolean {
    return !this.stopped && this.backend?.cmd.status === 'ready';
  }

  isUp(): boolean {
    return this.commandsReady() && this.health.healthy && (this.subscriptions?.allReady() ?? false);
  }

  private onStatus(cause: string): void {
    const up = this.isUp();
    if (up) for (const w of this.upWaiters.splice(0)) w();
    if (up === this.wasUp || this.stopped) return;
    this.wasUp = up;
    if (up) this.log.info({ conn: cause }, '[REDIS UP]');
    else this.log.warn({ conn: cause }, '[REDIS DOWN]');
  }

  // ---- calls ----

  /** Run one engine call: fail fast while the command connection is down, map connection trouble to EngineUnavailableError. */
  private async call<T>(f: (r: ScriptedClient) => Promise<T>): Promise<T> {
    const r = this.cmd;
    if (!this.commandsReady()) throw new EngineUnavailableError('redis not connected');
    if (!this.health.healthy) throw new EngineUnavailableError('redis not answering');
    try {
      return await f(r);
    } catch (e) {
      throw toEngineError(e);
    }
  }

  async hasGroups(): Promise<boolean> {
    return this.call(async (r) => (await r.exists(GROUPS_EXIST)) === 1);
  }

  async createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord> {
    const epoch = newEpoch();
    return this.call(async (r) => {
      for (let attempt = 0; attempt < MAX_ID_ATTEMPTS; attempt++) {
        const id = String((await r.incr(ID_COUNTER)) - 1);
        const stored = await r.chatCreateGroup(groupKeys(id).meta, rec.passwordHash, rec.creator, rec.createdAt, epoch);
        if (stored === 1) {
          await r.set(GROUPS_EXIST, '1');
          return { id, ...rec, epoch };
        }
        if (attempt === 0) this.log.warn({ groupId: id }, 'group ID already taken (ID counter behind the registry): taking the next');
      }
      throw new Error('could not allocate a group ID');
    });
  }

  async getGroup(id: string): Promise<GroupRecord | null> {
    if (!isGroupId(id)) return null;
    return this.call(async (r) => {
      const h = await r.hgetall(groupKeys(id).meta);
      const passwordHash = h['h'];
      if (passwordHash === undefined) return null;
      let epoch = h['ep'];
      if (epoch === undefined) {
        // A group from before epochs gets one on first use; HSETNX so every node agrees on the first.
        const k = groupKeys(id).meta;
        await r.hsetnx(k, 'ep', newEpoch());
        epoch = (await r.hget(k, 'ep')) ?? '';
      }
      return { id, passwordHash, creator: h['c'] ?? '', createdAt: Number(h['at'] ?? 0), epoch };
    });
  }

  async countGroups(): Promise<number> {
    // Placeholder until the group index lands: the counter bounds how many were ever created.
    return this.call(async (r) => Number((await r.get(ID_COUNTER)) ?? 0));
  }

  async touchGroup(_id: string): Promise<void> {}

  async publish(groupId: string, msg: NewMessage): Promise<StoredMessage> {
    if (!isGroupId(groupId)) throw new Error(`no group ${groupId}`);
    const k = groupKeys(groupId);
    // One serialised form for the stream entry and (with the seq put in front) the channel payload.
    const body = JSON.stringify({ from: msg.from, text: msg.text, ts: msg.ts, origin: msg.origin });
    const pub = this.backend?.publishCommand ?? 'PUBLISH';
    const seq = await this.call((r) => r.chatPublish(k.meta, k.history, k.channel, this.config.historyLimit, body, pub)).catch((e: unknown) => {
      if (e instanceof Error && e.message.startsWith('redis: NOGROUP')) throw new Error(`no group ${groupId}`);
      throw e;
    });
    return { groupId, seq, ...msg };
  }

  async history(groupId: string, q: HistoryQuery): Promise<StoredMessage[]> {
    if (!isGroupId(groupId) || q.limit <= 0) return [];
    const k = groupKeys(groupId);
    let rows: StreamEntry[];
    if (q.since === undefined) {
      rows = (await this.call((r) => r.xrevrange(k.history, '+', '-', 'COUNT', q.limit))).reverse();
    } else {
      const from = Math.max(0, Math.floor(q.since)) + 1;
      if (!Number.isSafeInteger(from)) return [];
      rows = await this.call((r) => r.xrange(k.history, String(from), '+', 'COUNT', q.limit));
    }
    return parseStreamEntries(groupId, rows);
  }

  async latestSeq(groupId: string): Promise<number> {
    if (!isGroupId(groupId)) return 0;
    const v = await this.call((r) => r.hget(groupKeys(groupId).meta, 'seq'));
    return v === null ? 0 : Number(v);
  }

  async notify(notice: Notice): Promise<void> {
    if (!isGroupId(notice.groupId)) return;
    const payload = JSON.stringify({ t: 'n', kind: notice.kind, name: notice.name, origin: notice.origin });
    const channel = groupKeys(notice.groupId).channel;
    await this.call((r) => (this.backend?.publishCommand === 'SPUBLISH' ? r.spublish(channel, payload) : r.publish(channel, payload)));
  }

  async addMember(groupId: string, memberId: string, name: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call(() => this.presence.add(groupId, memberId, name));
  }

  async removeMember(groupId: string, memberId: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    // Not through call(): even with Redis down, presence must forget the member and queue the HDEL for later.
    try {
      await this.presence.remove(groupId, memberId);
    } catch (e) {
      throw toEngineError(e);
    }
  }

  async members(groupId: string): Promise<string[]> {
    if (!isGroupId(groupId)) return [];
    return this.call(() => this.presence.list(groupId));
  }

  // ---- subscriptions (subscriptions.ts) ----

  async subscribe(groupId: string, listener: ChannelListener): Promise<void> {
    if (this.stopped) return;
    await this.channels.subscribe(groupId, listener);
  }

  async unsubscribe(groupId: string): Promise<void> {
    if (this.stopped) return;
    await this.channels.unsubscribe(groupId);
  }
}
