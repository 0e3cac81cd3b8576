// The Redis engine: many gateway processes sharing one Redis behave as one
// chat server. Keys and channels are named in keys.ts; the atomic parts are
// Lua scripts (scripts/*.lua, registered in scripts.ts); the subscriber
// connection and resync live in subscriptions.ts; presence and node
// heartbeats in presence.ts.
//
// Two connections per process: commands, and one subscriber connection that
// holds one SUBSCRIBE per group with local members. Neither queues commands
// while Redis is unreachable (no offline queue, no retries of in-flight
// commands): a call then fails at once with EngineUnavailableError.
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../../config.js';
import { createLogger, type Logger } from '../../log.js';
import {
  EngineUnavailableError,
  type ChannelListener,
  type Engine,
  type GroupRecord,
  type HistoryQuery,
  type NewMessage,
  type Notice,
  type StoredMessage,
} from '../engine.js';
import { groupKeys, GROUPS_EXIST, ID_COUNTER, isGroupId } from './keys.js';
import { parseStreamEntries, type StreamEntry } from './payloads.js';
import { Presence } from './presence.js';
import { defineScripts, type ScriptedRedis } from './scripts.js';
import { Subscriptions } from './subscriptions.js';

/** How long start() waits for Redis before going on not ready (it keeps reconnecting). */
const START_WAIT_MS = 5_000;
/** A command without a reply by then fails (and counts as unavailable). */
const COMMAND_TIMEOUT_MS = 3_000;
/** Give up on an ID after this many taken ones in a row (the counter would have to be far behind). */
const MAX_ID_ATTEMPTS = 100_000;

/** Replies that mean "Redis cannot serve right now", not "the request is wrong". */
const TRANSIENT_REPLY = /^(LOADING|MISCONF|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|NOSCRIPT)\b/;

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

function connectionOptions(config: Config, role: 'cmd' | 'sub'): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: `chat:${config.nodeId}:${role}`.replace(/\s/g, '_'),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false, // the engine resubscribes itself, then asks for a resync
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 2_000,
    retryStrategy: (times: number) => Math.min(times * 100, 1_000),
  };
}

export interface RedisEngineHooks {
  /** A connection came back after a loss (for chat_redis_reconnects_total). */
  onReconnect?: (conn: 'command' | 'subscriber') => void;
}

export class RedisEngine implements Engine {
  readonly kind = 'redis' as const;
  private readonly url: string;
  private readonly log: Logger;
  private cmdConn: ScriptedRedis | null = null;
  private subConn: Redis | null = null;
  private subscriptions: Subscriptions | null = null;
  private wasUp = false;
  private stopped = false;
  private readonly presence: Presence;

  constructor(
    private readonly config: Config,
    log?: Logger,
    private readonly hooks: RedisEngineHooks = {},
  ) {
    if (!config.redisUrl) throw new Error('REDIS_CLUSTER_NODES is not supported yet: set REDIS_URL');
    this.url = config.redisUrl;
    this.log = (log ?? createLogger(config.logLevel, config.nodeId)).child({ engine: 'redis' });
    this.presence = new Presence({
      nodeId: config.nodeId,
      ttlMs: config.presenceTtlSeconds * 1000,
      log: this.log,
      redis: () => this.cmd,
      isReady: () => this.cmdConn?.status === 'ready',
      onSwept: (groupId, memberId, name) => this.notify({ kind: 'left', groupId, name, origin: memberId }),
    });
  }

  private get channels(): Subscriptions {
    if (!this.subscriptions) throw new EngineUnavailableError('engine not started');
    return this.subscriptions;
  }

  private get cmd(): ScriptedRedis {
    if (!this.cmdConn) throw new EngineUnavailableError('engine not started');
    return this.cmdConn;
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    const cmd = defineScripts(new Redis(this.url, connectionOptions(this.config, 'cmd')));
    const sub = new Redis(this.url, connectionOptions(this.config, 'sub'));
    this.cmdConn = cmd;
    this.subConn = sub;
    for (const [role, conn] of [['command', cmd], ['subscriber', sub]] as const) {
      conn.on('error', (e: Error) => this.log.debug({ conn: role, err: e.message }, 'redis connection error'));
      conn.on('close', () => this.onStatus(role));
      let connectedBefore = false;
      conn.on('ready', () => {
        if (connectedBefore) this.hooks.onReconnect?.(role);
        connectedBefore = true;
        this.onStatus(role);
      });
    }
    const channels = new Subscriptions(sub, this.log, () => this.isUp());
    this.subscriptions = channels;
    cmd.on('ready', () => {
      void this.presence.beat();
      channels.maybeResync();
    });

    const ready = (c: Redis): Promise<void> => new Promise((res) => (c.status === 'ready' ? res() : c.once('ready', () => res())));
    const bothReady = Promise.all([ready(cmd), ready(sub)]);
    // A failed first attempt is retried by the retry strategy like any reconnect.
    void cmd.connect().catch(() => undefined);
    void sub.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      bothReady.then(() => true),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), START_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (!waited) this.log.warn({ waitedMs: START_WAIT_MS }, 'redis not reachable yet: starting not ready, still trying');
    this.presence.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.presence.stop();
    for (const c of [this.cmdConn, this.subConn]) {
      if (!c) continue;
      if (c.status === 'ready') await c.quit().catch(() => c.disconnect());
      else c.disconnect();
    }
  }

  isUp(): boolean {
    return !this.stopped && this.cmdConn?.status === 'ready' && this.subConn?.status === 'ready';
  }

  private onStatus(role: 'command' | 'subscriber'): void {
    const up = this.isUp();
    if (up === this.wasUp || this.stopped) return;
    this.wasUp = up;
    if (up) this.log.info({ conn: role }, '[REDIS UP]');
    else this.log.warn({ conn: role }, '[REDIS DOWN]');
  }

  // ---- calls ----

  /** Run one engine call: fail fast while the command connection is down, map connection trouble to EngineUnavailableError. */
  private async call<T>(f: (r: ScriptedRedis) => Promise<T>): Promise<T> {
    const r = this.cmd;
    if (this.stopped || r.status !== 'ready') throw new EngineUnavailableError('redis not connected');
    try {
      return await f(r);
    } catch (e) {
      throw toEngineError(e);
    }
  }

  async hasGroups(): Promise<boolean> {
    return this.call(async (r) => (await r.exists(GROUPS_EXIST)) === 1);
  }

  async createGroup(rec: Omit<GroupRecord, 'id'>): Promise<GroupRecord> {
    return this.call(async (r) => {
      for (let attempt = 0; attempt < MAX_ID_ATTEMPTS; attempt++) {
        const id = String((await r.incr(ID_COUNTER)) - 1);
        const stored = await r.chatCreateGroup(groupKeys(id).meta, rec.passwordHash, rec.creator, rec.createdAt);
        if (stored === 1) {
          await r.set(GROUPS_EXIST, '1');
          return { id, ...rec };
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
      return { id, passwordHash, creator: h['c'] ?? '', createdAt: Number(h['at'] ?? 0) };
    });
  }

  async publish(groupId: string, msg: NewMessage): Promise<StoredMessage> {
    if (!isGroupId(groupId)) throw new Error(`no group ${groupId}`);
    const k = groupKeys(groupId);
    // One serialised form for the stream entry and (with the seq put in front) the channel payload.
    const body = JSON.stringify({ from: msg.from, text: msg.text, ts: msg.ts, origin: msg.origin });
    const seq = await this.call((r) => r.chatPublish(k.meta, k.history, k.channel, this.config.historyLimit, body)).catch((e: unknown) => {
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
    await this.call((r) => r.publish(groupKeys(notice.groupId).channel, payload));
  }

  async authLocked(groupId: string, max: number): Promise<boolean> {
    if (!isGroupId(groupId)) return false;
    const v = await this.call((r) => r.get(groupKeys(groupId).authFailures));
    return v !== null && Number(v) >= max;
  }

  async recordAuthFailure(groupId: string, windowSeconds: number): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call((r) => r.chatAuthFailure(groupKeys(groupId).authFailures, Math.max(1, Math.ceil(windowSeconds))));
  }

  async addMember(groupId: string, memberId: string, name: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call(() => this.presence.add(groupId, memberId, name));
  }

  async removeMember(groupId: string, memberId: string): Promise<void> {
    if (!isGroupId(groupId)) return;
    await this.call(() => this.presence.remove(groupId, memberId));
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
