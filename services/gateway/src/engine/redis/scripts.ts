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
  chatSweepMembers: { file: 'sweep_members', keys: 1 },
  chatBudgetHit: { file: 'budget_hit', keys: 1 },
  chatAuthAttempt: { file: 'auth_attempt', keys: 1 },
} as const;

type Arg = string | number;

export interface ScriptCommands {
  chatCreateGroup(meta: string, passwordHash: string, creator: string, createdAt: Arg, epoch: string): Promise<number>;
  chatPublish(meta: string, history: string, channel: string, limit: Arg, messageJson: string, publishCommand: 'PUBLISH' | 'SPUBLISH'): Promise<number>;
  chatSweepMembers(members: string, instance: string): Promise<string[]>;
  chatBudgetHit(counter: string, windowMs: Arg): Promise<[number, number]>;
  chatAuthAttempt(failures: string, now: Arg, windowMs: Arg, maxFailures: Arg, backoffAfter: Arg): Promise<number[]>;
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
