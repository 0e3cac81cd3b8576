// The Engine: everything a gateway shares with the rest of the cluster.
// Two implementations sit side by side (memory.ts for one node, redis/ for
// many) and one conformance suite runs against both.
import { randomBytes } from 'node:crypto';
import type { ChatMessage } from './model.js';
import type { Throttle } from './throttle.js';

/** A new group's epoch (see GroupRecord). */
export const newEpoch = (): string => randomBytes(12).toString('base64url');

export interface GroupRecord {
  id: string;
  /** `scrypt$N$r$p$salt$hash`, never the password. */
  passwordHash: string;
  creator: string;
  createdAt: number;
  /**
   * Random, set when the group is created (a group from before epochs gets one on first use).
   * Resume tokens carry it, so a token never opens a removed group or another group under a reused
   * ID (a data reset, a Redis flush or restore).
   */
  epoch: string;
}

/**
 * Bounded growth, the same in both engines (MAX_GROUPS, GROUP_RETENTION_SECONDS, HISTORY_MAX_BYTES;
 * 0 turns each off).
 */
export interface GrowthOptions {
  /** Ceiling on groups that exist at once: createGroup throws GroupLimitError at it. 0 = none. */
  maxGroups?: number;
  /**
   * A group with no member online and no message or join (touchGroup) for this long is removed with
   * everything it owns; its ID is never reused. 0 = keep forever.
   */
  retentionSeconds?: number;
  /** UTF-8 bytes of message text kept per group (besides the count limit); the newest message is always kept. 0 = count only. */
  historyMaxBytes?: number;
  /** Called once per group this engine removed (for chat_groups_removed_total). */
  onGroupRemoved?: (groupId: string) => void;
  /** The engine's clock (ms since epoch) for activity and retention; Date.now unless a test drives time. */
  clock?: () => number;
  /** How often the retention sweeper runs; default sweepInterval(retention). */
  sweepIntervalMs?: number;
}

/** The retention sweeper's period: a quarter of the retention period, between 250 ms and one minute. */
export const sweepInterval = (retentionSeconds: number): number => Math.min(60_000, Math.max(250, Math.floor((retentionSeconds * 1000) / 4)));

/** What HISTORY_MAX_BYTES counts for one message: its text's UTF-8 bytes. */
export const textBytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** The ceiling on groups (MAX_GROUPS) is reached: nothing was created. */
export class GroupLimitError extends Error {
  constructor() {
    super('group limit reached');
    this.name = 'GroupLimitError';
  }
}

/** A chat message as stored: `origin` names the sending connection (`node/conn`) so its node can skip echoing it back. */
export interface StoredMessage extends ChatMessage {
  origin: string;
}

export interface NewMessage {
  from: string;
  text: string;
  ts: number;
  origin: string;
  /**
   * Idempotent sends: dedupeKey(member, client id). A message whose key the group saw within its
   * dedupe window (DEDUPE_WINDOW sends with a key, DEDUPE_TTL_SECONDS) is not stored again: publish
   * answers the first one's seq with `duplicate: true`. Absent: stored as always.
   */
  dedupe?: string;
  /** Published through the server HTTP API (PROTOCOL.md §3b), not by a member: stored and delivered with the message. */
  api?: true;
}

/** What publish answers: the stored message, or for a retried send the first one's seq (nothing stored). */
export type Published = StoredMessage & { duplicate?: true };

/**
 * A send's dedupe key: the sender's join id (unique per member, tokens.ts) and the client's own id,
 * typed, so the string "1" and the number 1 are two sends. At most 16 + 2 + 64 characters.
 */
export const dedupeKey = (member: string, id: string | number): string => `${member} ${typeof id === 'number' ? `n${id}` : `s${id}`}`;

/** What travels on a group's channel besides chat messages. Not stored, no seq. */
export interface Notice {
  kind: 'joined' | 'left';
  groupId: string;
  name: string;
  origin: string;
}

export type ChannelEvent =
  | { kind: 'message'; message: StoredMessage }
  | { kind: 'notice'; notice: Notice }
  /** The group was removed (GroupStore.removeGroup): every node closes its local members. */
  | { kind: 'closed' }
  /** The engine may have missed events (e.g. reconnected): the handler should backfill. */
  | { kind: 'resync' };

/** The one handler a node registers (Broker.onChannel) for the events of every group it subscribed to. */
export type ChannelHandler = (groupId: string, ev: ChannelEvent) => void;

export class EngineUnavailableError extends Error {
  constructor(message = 'engine unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineUnavailableError';
  }
}

/** Broker.publish to a group that does not exist (any more): both engines throw `Error('no group <id>')`. */
export const isNoGroupError = (e: unknown): boolean => e instanceof Error && !(e instanceof EngineUnavailableError) && /^no group /.test(e.message);

/** A page of history and the group's top position. */
export interface HistoryPage {
  /** Oldest first. */
  messages: StoredMessage[];
  /** The seq of the group's newest message (0 before the first), read with the page. */
  top: number;
}

export interface HistoryQuery {
  /** Only messages with seq > since, oldest first (up to `limit`). */
  since?: number;
  /** Without `since`: only messages with seq < before (paging back); the newest `limit` of them, oldest first. */
  before?: number;
  /** Without `since`: the newest `limit` messages (below `before`, if given), oldest first. */
  limit: number;
}

/** Start, stop and health: what main.ts and /readyz need. */
export interface Lifecycle {
  readonly kind: 'memory' | 'redis';
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True while the engine can store and deliver. */
  isUp(): boolean;
}

/** The group registry: one ID counter, password hashes, epochs, the ceiling and retention. */
export interface GroupStore {
  /** Whether any group exists anywhere (the seed's "no chats available" rule). */
  hasGroups(): Promise<boolean>;
  /**
   * Allocates the next ID from one counter (starting at "0") and a random epoch, and stores the
   * group; never overwrites. Throws GroupLimitError at the ceiling on groups.
   */
  createGroup(rec: Omit<GroupRecord, 'id' | 'epoch'>): Promise<GroupRecord>;
  getGroup(id: string): Promise<GroupRecord | null>;
  /** Groups that exist now (for the ceiling). */
  countGroups(): Promise<number>;
  /**
   * A join or resume: the group is active (retention counts idleness from its last message or join).
   * False when the group does not exist (any more): the caller should not let the client in.
   */
  touchGroup(id: string): Promise<boolean>;
  /**
   * Remove, now, every group idle past the retention period (the engine also runs this on a timer
   * every sweepInterval). Returns the IDs this call removed; concurrent sweeps (other nodes) never
   * remove one group twice.
   */
  sweepIdle(): Promise<string[]>;
  /**
   * Remove a group now, with its history, presence and owned keys (the server API's DELETE), and
   * tell every node subscribed to it (a `closed` event on its channel). Its ID is never reused.
   * False when there was no such group.
   */
  removeGroup(id: string): Promise<boolean>;
}

/** Messages: stored with a seq, kept as bounded history, delivered to every node subscribed to the group. */
export interface Broker {
  /** Atomically: next seq, append to bounded history, deliver to subscribers (once per dedupe key: NewMessage). */
  publish(groupId: string, msg: NewMessage): Promise<Published>;
  /** A page of history with the top seq, in one round trip (`limit: 0`: only the top). */
  history(groupId: string, q: HistoryQuery): Promise<HistoryPage>;
  /** Register the one handler for every subscribed group's events (once, before subscribing). */
  onChannel(handler: ChannelHandler): void;
  /** Events of `groupId` go to the handler; the node reference-counts its local members and subscribes once. */
  subscribe(groupId: string): Promise<void>;
  unsubscribe(groupId: string): Promise<void>;
  notify(notice: Notice): Promise<void>;
}

/** Who is online in a group, across the cluster. */
export interface PresenceManager {
  /** `memberId` is unique per connection across the cluster. */
  addMember(groupId: string, memberId: string, name: string): Promise<void>;
  removeMember(groupId: string, memberId: string): Promise<void>;
  members(groupId: string): Promise<string[]>;
}

/**
 * Everything a gateway shares with the rest of the cluster: four narrow interfaces and the
 * admission throttle (throttle.ts), implemented side by side by memory.ts and redis/.
 */
export interface Engine extends Lifecycle, GroupStore, Broker, PresenceManager {
  /** Per-address budgets and the wrong-password limit, shared by every node of the engine. */
  readonly throttle: Throttle;
}

/** One run of a task at a time (a sweep timer and a caller may overlap): a caller during a run waits for it, then runs its own. */
export class OneAtATime<T> {
  private running: Promise<T> | null = null;

  async run(task: () => Promise<T>): Promise<T> {
    while (this.running) await this.running.catch(() => undefined);
    const run = task();
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = null;
    }
  }

  /** Wait for the run in progress, if any (e.g. before stopping). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}
