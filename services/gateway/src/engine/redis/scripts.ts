// The Lua scripts (scripts/*.lua, one file each), registered on a connection
// with ioredis `defineCommand` so callers get typed methods and ioredis does
// the EVALSHA / NOSCRIPT → EVAL dance (a restarted Redis has an empty script cache).
// They are compiled in (lua.generated.ts, written by scripts/embed-lua.mjs at `make build`),
// so the compiled gateway needs no files beside it.
import type { Cluster, Redis } from 'ioredis';
import { LUA } from './lua.generated.js';

function lua(name: string): string {
  const src = LUA[name];
  if (src === undefined) throw new Error(`no Lua script ${name}.lua (run make build)`);
  return src;
}

const SCRIPTS = {
  chatCreateGroup: { file: 'create_group', keys: 1 },
  chatPublish: { file: 'publish', keys: 3 },
  chatSweepMembers: { file: 'sweep_members', keys: 1 },
  // Bounded growth: the group index, activity, retention.
  chatReserveGroup: { file: 'reserve_group', keys: 1 },
  chatTouchGroup: { file: 'touch_group', keys: 1 },
  chatGiveEpoch: { file: 'give_epoch', keys: 1 },
  chatRemoveIdle: { file: 'remove_idle', keys: 5 },
  // The server API's DELETE.
  chatRemoveGroup: { file: 'remove_group', keys: 5 },
  // The admission throttle (throttle.ts).
  chatBudgetHit: { file: 'budget_hit', keys: 1 },
  chatAuthAttempt: { file: 'auth_attempt', keys: 3 },
  chatAuthRelease: { file: 'auth_release', keys: 1 },
} as const;

type Arg = string | number;

/**
 * publish.lua cuts a group's dedupe set to its newest DEDUPE_WINDOW entries once every this many
 * messages, not on every send (one command fewer per message): the set holds at most
 * DEDUPE_WINDOW + DEDUPE_TRIM_EVERY - 1 entries, and always at least the newest DEDUPE_WINDOW.
 */
export const DEDUPE_TRIM_EVERY = 64;

export interface ScriptCommands {
  chatCreateGroup(meta: string, passwordHash: string, creator: string, createdAt: Arg, epoch: string, now: Arg): Promise<number>;
  /** The seq; minus the original's seq for a retried send (`sentMember` already in `sent`). */
  chatPublish(
    meta: string,
    history: string,
    sent: string,
    channel: string,
    limit: Arg,
    messageJson: string,
    publishCommand: 'PUBLISH' | 'SPUBLISH',
    now: Arg,
    maxBytes: Arg,
    textBytes: Arg,
    sentMember: string,
    sentWindow: Arg,
    sentTtlMs: Arg,
    sentTrimEvery: Arg,
  ): Promise<number>;
  chatSweepMembers(members: string, instance: string): Promise<string[]>;
  /** 1 added to the index, 0 the ceiling is reached, 2 the ID is already there (taken). */
  chatReserveGroup(index: string, id: string, now: Arg, maxGroups: Arg): Promise<number>;
  /** 1 the group exists (its `la` is now at least `now`), 0 it does not. */
  chatTouchGroup(meta: string, now: Arg): Promise<number>;
  /** The group's epoch (given now if it had none), or null when there is no such group. */
  chatGiveEpoch(meta: string, epoch: string): Promise<string | null>;
  /** [1, activity] kept (idle for less than retention, or a member online), [0] removed now, [-1] no such group. */
  chatRemoveIdle(meta: string, history: string, members: string, owned: string, sent: string, now: Arg, retentionMs: Arg, prefix: string, indexScore: Arg): Promise<number[]>;
  /** 1 removed now (and {"t":"c"} published on the channel), 0 no such group. */
  chatRemoveGroup(meta: string, history: string, members: string, owned: string, sent: string, prefix: string, channel: string, publishCommand: 'PUBLISH' | 'SPUBLISH'): Promise<number>;
  chatBudgetHit(counter: string, windowMs: Arg): Promise<[number, number]>;
  /** `owned`: the group's set of further keys (the failure hash is listed there, so it goes with the group). */
  chatAuthAttempt(failures: string, owned: string, meta: string, now: Arg, windowMs: Arg, maxFailures: Arg, backoffAfter: Arg): Promise<number[]>;
  chatAuthRelease(failures: string): Promise<number>;
}

/** One Redis server or a Redis Cluster: the engine issues the same single-slot commands on either. */
export type Client = Redis | Cluster;
export type ScriptedClient = Client & ScriptCommands;

/** Look the scripts up once per process. */
let sources: Record<keyof typeof SCRIPTS, string> | null = null;

export function defineScripts<C extends Client>(conn: C): C & ScriptCommands {
  sources ??= Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [name, lua(s.file)])) as Record<keyof typeof SCRIPTS, string>;
  for (const [name, s] of Object.entries(SCRIPTS)) {
    conn.defineCommand(name, { numberOfKeys: s.keys, lua: sources[name as keyof typeof SCRIPTS] });
  }
  return conn as C & ScriptCommands;
}
