// The Lua scripts (scripts/*.lua, one file each), registered on a connection
// with ioredis `defineCommand` so callers get typed methods and ioredis does
// the EVALSHA / NOSCRIPT → EVAL dance (a restarted Redis has an empty script cache).
// `make build` copies the .lua files beside the compiled JavaScript.
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

const lua = (name: string): string => readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');

const SCRIPTS = {
  chatCreateGroup: { file: 'create_group', keys: 1 },
  chatPublish: { file: 'publish', keys: 2 },
  chatAuthFailure: { file: 'auth_failure', keys: 1 },
  chatAuthSuccess: { file: 'auth_success', keys: 1 },
  chatSweepMembers: { file: 'sweep_members', keys: 1 },
  // Bounded growth: the group index, activity, retention.
  chatReserveGroup: { file: 'reserve_group', keys: 1 },
  chatTouchGroup: { file: 'touch_group', keys: 1 },
  chatRemoveIdle: { file: 'remove_idle', keys: 5 },
} as const;

type Arg = string | number;

export interface ScriptCommands {
  chatCreateGroup(meta: string, passwordHash: string, creator: string, createdAt: Arg, epoch: string, now: Arg): Promise<number>;
  chatPublish(
    meta: string,
    history: string,
    channel: string,
    limit: Arg,
    messageJson: string,
    publishCommand: 'PUBLISH' | 'SPUBLISH',
    now: Arg,
    maxBytes: Arg,
    textBytes: Arg,
  ): Promise<number>;
  chatAuthFailure(counter: string, windowSeconds: Arg): Promise<number>;
  chatAuthSuccess(counter: string): Promise<number>;
  chatSweepMembers(members: string, instance: string): Promise<string[]>;
  /** 1 added to the index, 0 the ceiling is reached, 2 the ID is already there (taken). */
  chatReserveGroup(index: string, id: string, now: Arg, maxGroups: Arg): Promise<number>;
  /** 1 the group exists (its `la` is now at least `now`), 0 it does not. */
  chatTouchGroup(meta: string, now: Arg): Promise<number>;
  /** [1, activity] kept (idle for less than retention, or a member online), [0] removed now, [-1] no such group. */
  chatRemoveIdle(meta: string, history: string, members: string, authFailures: string, owned: string, now: Arg, retentionMs: Arg, prefix: string, indexScore: Arg): Promise<number[]>;
}

/** One Redis server or a Redis Cluster: the engine issues the same single-slot commands on either. */
export type Client = Redis | Cluster;
export type ScriptedClient = Client & ScriptCommands;

/** Read the script files once per process. */
let sources: Record<keyof typeof SCRIPTS, string> | null = null;

export function defineScripts<C extends Client>(conn: C): C & ScriptCommands {
  sources ??= Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [name, lua(s.file)])) as Record<keyof typeof SCRIPTS, string>;
  for (const [name, s] of Object.entries(SCRIPTS)) {
    conn.defineCommand(name, { numberOfKeys: s.keys, lua: sources[name as keyof typeof SCRIPTS] });
  }
  return conn as C & ScriptCommands;
}
