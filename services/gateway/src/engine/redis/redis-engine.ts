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
import type { ChainableCommander } from 'ioredis';
import type { Config } from '../../config.js';
import { createLogger, type Logger, errText } from '../../log.js';
import {
  EngineUnavailableError,
  GroupLimitError,
  newEpoch,
  OneAtATime,
  sweepInterval,
  textBytes,
  type ChannelHandler,
  type HistoryPage,
  type Engine,
  type GroupRecord,
  type HistoryQuery,
  type NewMessage,
  type Published,
  type Notice,
  type StoredMessage,
} from '../engine.js';
import { openBackend, type Backend } from './connection.js';
import { HealthCheck } from './health.js';
import {
  GROUP_INDEX,
  GROUP_INDEX_BUILT,
  groupKeyPrefix,
  groupKeys,
  GROUPS_EXIST,
  ID_COUNTER,
  isGroupId,
  META_KEY_PATTERN,
  metaKeyGroup,
} from './keys.js';
import { parseStreamEntries, type StreamEntry } from './payloads.js';
import { Presence } from './presence.js';
import { DEDUPE_TRIM_EVERY, type ScriptCommands, type ScriptedClient } from './scripts.js';
import { Subscriptions } from './subscriptions.js';
import { RedisThrottle } from './throttle.js';

/** How long start() waits for Redis before going on not ready (it keeps reconnecting). */
const START_WAIT_MS = 5_000;
/** Give up on an ID after this many taken ones in a row (the counter would have to be far behind). */
const MAX_ID_ATTEMPTS = 100_000;
/** Retention sweep: candidates read from the index per batch, and at most this many batches per tick. */
const SWEEP_BATCH = 100;
const SWEEP_MAX_BATCHES = 10;

/** Replies that mean "Redis cannot serve right now", not "the request is wrong". */
const TRANSIENT_REPLY = /^(LOADING|MISCONF|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS|NOSCRIPT|MOVED|ASK)\b/;

/**
 * Connection trouble and transient replies become EngineUnavailableError; other
 * replies are bugs and stay plain errors. Only the message is kept: ioredis
 * attaches the command with its arguments (message text) to reply errors, and
 * those must never reach a log.
 */
function toEngineError(e: unknown): Error {
  if (e instanceof EngineUnavailableError || e instanceof GroupLimitError) return e;
  const message = e instanceof Error ? e.message : 'redis unavailable';
  if (e instanceof Error && e.name === 'ReplyError' && !TRANSIENT_REPLY.test(message)) return new Error(`redis: ${message}`);
  return new EngineUnavailableError(message);
}

/**
 * REDIS_WAIT_REPLICAS: the send's script and `WAIT <replicas> <ms>` in one pipeline, so one round
 * trip on one connection (the backend's `waiting` client, which carries nothing else). On a cluster the pipeline goes to the node serving the script's keys
 * (WAIT has none), and WAIT counts the replicas that have every write this connection made so far,
 * this send's included. Fewer in time: unavailable. The message may be stored (and delivered); the
 * client's retry with the same id is answered from the dedupe window with the same seq, once its
 * own WAIT succeeds. (A NOSCRIPT retry, after a SCRIPT FLUSH only, would run after the WAIT.)
 */
async function publishAndWait(r: ScriptedClient, args: Parameters<ScriptCommands['chatPublish']>, replicas: number, ms: number): Promise<number> {
  const p = r.pipeline() as ChainableCommander & { chatPublish(...a: Parameters<ScriptCommands['chatPublish']>): ChainableCommander };
  const replies = await p.chatPublish(...args).call('WAIT', replicas, ms).exec();
  if (!replies) throw new EngineUnavailableError('redis pipeline aborted');
  const [[pubErr, seq] = [null, null], [waitErr, acked] = [null, null]] = replies;
  if (pubErr) {
    // A MOVED inside a pipeline is not followed by ioredis when another command in it succeeded
    // (the WAIT ran on the old node): reload the slot map now, the client's retry goes right.
    if (/^(MOVED|ASK)\b/.test(pubErr.message) && 'refreshSlotsCache' in r) r.refreshSlotsCache();
    throw pubErr;
  }
  if (waitErr) throw waitErr;
  if (Number(acked) < replicas) throw new EngineUnavailableError(`NOREPLICAS ${Number(acked)} of ${replicas} replica(s) acknowledged the send within ${ms} ms`);
  return Number(seq);
}

export interface RedisEngineHooks {
  /** A connection came back after a loss (for chat_redis_reconnects_total). */
  onReconnect?: (conn: 'command' | 'subscriber') => void;
  /** This node's sweeper removed an idle group (for chat_groups_removed_total); once per group cluster-wide. */
  onGroupRemoved?: (groupId: string) => void;
  /** Clock for activity and retention (ms); Date.now unless a test drives time. */
  clock?: () => number;
  /** Retention sweep period; default sweepInterval(GROUP_RETENTION_SECONDS), with ±20% jitter per node. */
  sweepIntervalMs?: number;
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
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly sweeping = new OneAtATime<string[]>();
  /** This node knows the group index is complete (built from SCAN once, by some node). */
  private indexed = false;
  private indexing: Promise<void> | null = null;

  constructor(
    private readonly config: Config,
    log?: Logger,
    private readonly hooks: RedisEngineHooks = {},
  ) {
    if (!config.redisUrl && !config.redisClusterNodes) throw new Error('the Redis engine needs REDIS_URL or REDIS_CLUSTER_NODES');
    this.log = (log ?? createLogger(config.logLevel, config.nodeId)).child({ engine: 'redis' });
    this.now = hooks.clock ?? Date.now;
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
    const waiting = backend.waiting;
    if (waiting) {
      waiting.on('error', (e: Error) => this.log.debug({ conn: 'wait', err: e.message }, 'redis connection error'));
      waiting.on('node error', (e: Error) => this.log.debug({ conn: 'wait', err: e.message }, 'redis node error'));
      void waiting.connect().catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      new Promise<boolean>((res) => (this.isUp() ? res(true) : this.upWaiters.push(() => res(true)))),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), START_WAIT_MS))),
    ]);
    clearTimeout(timer);
    this.upWaiters = [];
    if (!up) this.log.warn({ waitedMs: START_WAIT_MS }, 'redis not reachable yet: starting not ready, still trying');
    else await this.ensureIndexed().catch((e: unknown) => this.log.warn({ err: errText(e) }, 'group index: build failed, retrying later'));
    this.presence.start();
    this.health.start();
    this.startSweeper();
  }

  private startSweeper(): void {
    if (this.config.groupRetentionSeconds <= 0) return;
    const base = this.hooks.sweepIntervalMs ?? sweepInterval(this.config.groupRetentionSeconds);
    // Jitter, so the nodes of a cluster do not all sweep at the same moment.
    const next = (): void => {
      this.sweeper = setTimeout(
        () => {
          void this.sweepIdle()
            .catch((e: unknown) => this.log.debug({ err: errText(e) }, 'retention sweep failed'))
            .finally(() => {
              if (!this.stopped) next();
            });
        },
        Math.round(base * (0.8 + 0.4 * Math.random())),
      );
      this.sweeper.unref();
    };
    next();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.sweeper) clearTimeout(this.sweeper);
    this.sweeper = null;
    await this.sweeping.idle();
    this.health.stop();
    await this.presence.stop();
    await this.subscriptions?.stop();
    const w = this.backend?.waiting;
    if (w) {
      if (w.status === 'ready') await w.quit().catch(() => w.disconnect());
      else w.disconnect();
    }
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
    return this.call(async (r) => {
      if ((await r.zcard(GROUP_INDEX)) > 0) return true;
      if (this.indexed) return false;
      // Until some node has built the index, the old one-way flag still says whether groups exist.
      const [flag, built] = await Promise.all([r.exists(GROUPS_EXIST), r.exists(GROUP_INDEX_BUILT)]);
      if (built === 1) this.indexed = true;
      return flag === 1 && built === 0;
    });
  }

  /**
   * Groups missing from the index (created before it, or by a node of the previous version during a
   * rolling upgrade): enter every group hash found by SCAN on every master, once per node start.
   * Idempotent (ZADD NX), so several nodes starting together may all do it; GROUP_INDEX_BUILT marks
   * that some node has. Their retention period starts now. The old one-way flag stays set (and is set
   * by every create) so that nodes of the previous version never answer "no chats available" wrongly.
   */
  private ensureIndexed(): Promise<void> {
    if (this.indexed) return Promise.resolve();
    this.indexing ??= this.call(async (r) => {
      const now = this.now();
      let found = 0;
      for (const conn of this.backend?.commandConnections() ?? []) {
        let cursor = '0';
        do {
          const [next, keys] = await conn.scan(cursor, 'MATCH', META_KEY_PATTERN, 'COUNT', 1000, 'TYPE', 'hash');
          cursor = next;
          const ids = keys.map(metaKeyGroup).filter((id): id is string => id !== null);
          if (ids.length > 0) found += await r.zadd(GROUP_INDEX, 'NX', ...ids.flatMap((id) => [now, id]));
        } while (cursor !== '0');
      }
      await r.set(GROUP_INDEX_BUILT, String(now));
      this.log.info({ added: found }, '[GROUP INDEX BUILT]');
    })
      .then(() => {
        this.indexed = true;
      })
      .finally(() => {
        this.indexing = null;
      });
    return this.indexing;
  }

  async createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord> {
    const epoch = newEpoch();
    const max = this.config.maxGroups;
    await this.ensureIndexed();
    return this.call(async (r) => {
      // Cheap early refusal that burns no ID; the reservation below is the exact check.
      if (max > 0 && (await r.zcard(GROUP_INDEX)) >= max) throw new GroupLimitError();
      for (let attempt = 0; attempt < MAX_ID_ATTEMPTS; attempt++) {
        const id = String((await r.incr(ID_COUNTER)) - 1);
        const now = this.now();
        const reserved = await r.chatReserveGroup(GROUP_INDEX, id, now, max);
        if (reserved === 0) throw new GroupLimitError();
        if (reserved === 1) {
          const meta = groupKeys(id).meta;
          const stored = await r.chatCreateGroup(meta, rec.passwordHash, rec.creator, rec.createdAt, epoch, now).catch(async (e: unknown) => {
            // Take the reservation back only where the group is known not to exist (a group must never
            // be missing from the index); otherwise the sweeper drops an entry without a group.
            if ((await r.exists(meta).catch(() => 1)) === 0) await r.zrem(GROUP_INDEX, id).catch(() => undefined);
            throw e;
          });
          if (stored === 1) {
            // For nodes of the previous version during a rolling upgrade (they read only this flag).
            await r.set(GROUPS_EXIST, '1');
            return { id, ...rec, epoch };
          }
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
        // A group from before epochs gets one on first use (give_epoch.lua: the first given wins, a removed group stays removed).
        const given = await r.chatGiveEpoch(groupKeys(id).meta, newEpoch());
        if (given === null) return null;
        epoch = given;
      }
      return { id, passwordHash, creator: h['c'] ?? '', createdAt: Number(h['at'] ?? 0), epoch };
    });
  }

  async countGroups(): Promise<number> {
    await this.ensureIndexed();
    return this.call((r) => r.zcard(GROUP_INDEX));
  }

  async touchGroup(id: string): Promise<boolean> {
    if (!isGroupId(id)) return false;
    return (await this.call((r) => r.chatTouchGroup(groupKeys(id).meta, this.now()))) === 1;
  }

  async sweepIdle(): Promise<string[]> {
    if (this.config.groupRetentionSeconds <= 0 || this.stopped) return [];
    return this.sweeping.run(() => this.sweepOnce());
  }

  /**
   * Candidates are the index entries scored at least the retention period ago; each is re-checked
   * and, if idle, removed by remove_idle.lua in the group's own slot, so concurrent sweeps on other
   * nodes remove a group once. An entry whose group is active is re-scored with its real activity.
   */
  private async sweepOnce(): Promise<string[]> {
    await this.ensureIndexed();
    const retentionMs = this.config.groupRetentionSeconds * 1000;
    const removed: string[] = [];
    const now = this.now();
    for (let batch = 0; batch < SWEEP_MAX_BATCHES; batch++) {
      const flat = await this.call((r) => r.zrangebyscore(GROUP_INDEX, '-inf', now - retentionMs, 'WITHSCORES', 'LIMIT', 0, SWEEP_BATCH));
      const ids: Array<[string, string]> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) ids.push([flat[i] as string, flat[i + 1] as string]);
      const rescored = await Promise.all(ids.map(([id, score]) => this.sweepOne(id, score, now, retentionMs, removed)));
      // Stop once a batch changed nothing in the index's low end (every candidate is still there).
      if (ids.length < SWEEP_BATCH || rescored.every((kept) => kept === 'unchanged')) break;
    }
    return removed;
  }

  private async sweepOne(id: string, score: string, now: number, retentionMs: number, removed: string[]): Promise<'changed' | 'unchanged'> {
    if (!isGroupId(id)) {
      await this.call((r) => r.zrem(GROUP_INDEX, id));
      return 'changed';
    }
    const k = groupKeys(id);
    const [state, activity] = await this.call((r) =>
      r.chatRemoveIdle(k.meta, k.history, k.members, k.owned, k.sent, now, retentionMs, groupKeyPrefix(id), score),
    );
    if (state === 1) {
      // Never re-add an entry another node just removed (XX). (A stale score only makes another candidate check.)
      const changed = await this.call((r) => r.zadd(GROUP_INDEX, 'XX', 'CH', Number(activity), id));
      return changed > 0 ? 'changed' : 'unchanged';
    }
    await this.call((r) => r.zrem(GROUP_INDEX, id));
    if (state === 0) {
      removed.push(id);
      this.log.info({ groupId: id }, '[CHAT REMOVED]');
      this.hooks.onGroupRemoved?.(id);
    }
    return 'changed';
  }

  async removeGroup(id: string): Promise<boolean> {
    if (!isGroupId(id)) return false;
    const k = groupKeys(id);
    const pub = this.backend?.publishCommand ?? 'PUBLISH';
    const removed = await this.call((r) => r.chatRemoveGroup(k.meta, k.history, k.members, k.owned, k.sent, groupKeyPrefix(id), k.channel, pub));
    // The index lives in another slot on a cluster: a second call (a crash in between leaves an entry
    // without a group, which the next sweep drops).
    await this.call((r) => r.zrem(GROUP_INDEX, id));
    return removed === 1;
  }

  async publish(groupId: string, msg: NewMessage): Promise<Published> {
    if (!isGroupId(groupId)) throw new Error(`no group ${groupId}`);
    const k = groupKeys(groupId);
    // One serialised form for the stream entry and (with the seq put in front) the channel payload.
    // `api` (server HTTP API messages) rides in the same JSON: publish.lua stores and publishes it as is.
    const body = JSON.stringify({ from: msg.from, text: msg.text, ts: msg.ts, origin: msg.origin, ...(msg.api ? { api: true } : {}) });
    const pub = this.backend?.publishCommand ?? 'PUBLISH';
    const { dedupeWindow, dedupeTtlSeconds } = this.config;
    const sent = msg.dedupe !== undefined && dedupeWindow > 0 ? msg.dedupe : '';
    const args: Parameters<ScriptCommands['chatPublish']> = [
      k.meta,
      k.history,
      k.sent,
      k.channel,
      this.config.historyLimit,
      body,
      pub,
      this.now(),
      this.config.historyMaxBytes,
      textBytes(msg.text),
      sent,
      dedupeWindow,
      dedupeTtlSeconds * 1000,
      DEDUPE_TRIM_EVERY,
    ];
    const { redisWaitReplicas: replicas, redisWaitTimeoutMs: waitMs } = this.config;
    const reply = await this.call((r) => (replicas > 0 ? publishAndWait(this.backend?.waiting ?? r, args, replicas, waitMs) : r.chatPublish(...args))
    ).catch((e: unknown) => {
      if (e instanceof Error && e.message.startsWith('redis: NOGROUP')) throw new Error(`no group ${groupId}`);
      throw e;
    });
    const { dedupe: _, ...stored } = msg;
    return reply < 0 ? { groupId, seq: -reply, ...stored, duplicate: true } : { groupId, seq: reply, ...stored };
  }

  /** The page and the top seq in one MULTI (the keys share a slot): one round trip, one instant. */
  async history(groupId: string, q: HistoryQuery): Promise<HistoryPage> {
    if (!isGroupId(groupId)) return { messages: [], top: 0 };
    const k = groupKeys(groupId);
    const from = q.since === undefined ? 0 : Math.max(0, Math.floor(q.since)) + 1;
    // Paging back: entries up to seq before-1 (IDs are `<seq>-0`; an end ID of `N` means `N-<max>`).
    const upTo = q.since === undefined && q.before !== undefined ? Math.floor(q.before) - 1 : null;
    const limit = Number.isSafeInteger(from) && (upTo === null || (Number.isSafeInteger(upTo) && upTo >= 1)) ? Math.max(0, q.limit) : 0;
    const [seq, rows] = await this.call(async (r) => {
      const tx = r.multi().hget(k.meta, 'seq');
      if (limit > 0 && q.since === undefined) tx.xrevrange(k.history, upTo === null ? '+' : String(upTo), '-', 'COUNT', limit);
      else if (limit > 0) tx.xrange(k.history, String(from), '+', 'COUNT', limit);
      const replies = await tx.exec();
      if (!replies) throw new Error('history transaction aborted');
      for (const [err] of replies) if (err) throw err;
      return [replies[0]?.[1] as string | null, (replies[1]?.[1] ?? []) as StreamEntry[]] as const;
    });
    const ordered = q.since === undefined ? [...rows].reverse() : rows;
    return { messages: parseStreamEntries(groupId, ordered), top: seq === null ? 0 : Number(seq) };
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
    // Leaving is activity: retention counts a group's idleness from its last member's leaving too.
    // Best effort (fails fast while Redis is down; the sweep then counts from the last join or message).
    await this.touchGroup(groupId).catch(() => undefined);
  }

  async members(groupId: string): Promise<string[]> {
    if (!isGroupId(groupId)) return [];
    return this.call(() => this.presence.list(groupId));
  }

  // ---- subscriptions (subscriptions.ts) ----

  onChannel(handler: ChannelHandler): void {
    this.channels.onEvent(handler);
  }

  async subscribe(groupId: string): Promise<void> {
    if (this.stopped) return;
    await this.channels.subscribe(groupId);
  }

  async unsubscribe(groupId: string): Promise<void> {
    if (this.stopped) return;
    await this.channels.unsubscribe(groupId);
  }
}
