// Every Redis key and channel name the engine uses, in one place.
// Per-group keys share the hash tag `{g:<id>}` so one group's registry,
// history, presence and throttle live in one slot: the Lua scripts touch only
// one group's keys, and the layout works unchanged on Redis Cluster.
// Per-node keys share `{n:<instance>}` likewise. The ID counter, the
// "any group exists" flag and the node registry are cluster-wide singletons.

import { GROUP_ID_RE, isGroupId } from '../model.js';

export { isGroupId };

const PREFIX = 'chat';

/** INCR: the next group ID is the reply minus one, so IDs start at "0". */
export const ID_COUNTER = `${PREFIX}:ids`;
/**
 * Before the group index: set once a group existed, never cleared. Read only until the index is
 * built from the group keys (GROUP_INDEX_BUILT), then deleted.
 */
export const GROUPS_EXIST = `${PREFIX}:groups:exist`;
/**
 * Sorted set of every group that exists: member = group ID, score = its last activity known here
 * (ms; the group hash's `la` may be newer, publish.lua updates only that). Its size is the count the
 * ceiling (MAX_GROUPS) checks and "no chats available" reads; the retention sweeper takes its
 * candidates from the low scores and re-checks each in the group's own slot.
 */
export const GROUP_INDEX = `${PREFIX}:groups:index`;
/** Set once the index was built from the group keys found by SCAN (groups created before the index). */
export const GROUP_INDEX_BUILT = `${PREFIX}:groups:indexed`;
/** A group hash key (`chat:{g:<id>}`) → its ID, for the SCAN that builds the index. */
/** The protocol's group-ID pattern without its anchors, for the key patterns below (one spelling of it). */
const ID = GROUP_ID_RE.source.replace(/^\^|\$$/g, '');
const META_KEY = new RegExp(`^chat:\\{g:${ID}\\}$`);
export const metaKeyGroup = (key: string): string | null => META_KEY.exec(key)?.[1] ?? null;
/** SCAN pattern that finds group hash keys (filtered with metaKeyGroup). */
export const META_KEY_PATTERN = `${PREFIX}:{g:*}`;
/** Set of node instances that have registered presence and were not yet swept. */
export const NODE_REGISTRY = `${PREFIX}:nodes`;

export interface GroupKeys {
  /**
   * Hash: `h` password hash, `c` creator, `at` created-at (ms), `ep` epoch, `seq` latest message seq,
   * `la` last activity (ms: create, message, join, or a sweep that saw a member online), `hb` UTF-8
   * bytes of text in the history stream and `lo` the oldest seq it holds (both only while
   * HISTORY_MAX_BYTES is on: publish.lua counts entries from `lo`, not with XLEN), `sx` when the dedupe
   * set (`sent`) expires (ms; publish.lua renews its TTL only when less than 90 % is left).
   */
  meta: string;
  /**
   * Stream of messages, entry ID `<seq>-0`, field `m` = JSON {from, text, ts, origin}, field `n` = the
   * text's UTF-8 bytes; capped at HISTORY_LIMIT entries and HISTORY_MAX_BYTES of text.
   */
  history: string;
  /** Hash: member ID → `<instance> <name>`. */
  members: string;
  /**
   * Sorted set of the group's recent sends that carried a client id: member `<join id> <client id>`
   * (engine.ts dedupeKey), score the seq it was stored as. At least the newest DEDUPE_WINDOW entries,
   * at most DEDUPE_TRIM_EVERY - 1 more (scripts.ts), expiring between 90 % and all of
   * DEDUPE_TTL_SECONDS after the group's last such send (publish.lua renews the TTL only once 10 %
   * of it has passed); deleted with its group (remove_idle.lua, remove_group.lua).
   */
  sent: string;
  /** Pub/sub channel: chat messages and join/leave notices. */
  channel: string;
  /**
   * Set of further key names this group owns (under its `{g:<id>}` tag, e.g. per-address throttle
   * keys): deleted with the group when retention removes it.
   */
  owned: string;
}

/** Every key name of a group starts with this (its hash tag): the removal deletes only such names from `owned`. */
export const groupKeyPrefix = (id: string): string => `${PREFIX}:{g:${id}}`;

export function groupKeys(id: string): GroupKeys {
  if (!isGroupId(id)) throw new Error('invalid group id');
  const base = `${PREFIX}:{g:${id}}`;
  return {
    meta: base,
    history: `${base}:history`,
    members: `${base}:members`,
    sent: `${base}:sent`,
    channel: `${base}:ch`,
    owned: `${base}:owned`,
  };
}

const CHANNEL = new RegExp(`^chat:\\{g:${ID}\\}:ch$`);

/** The group a channel belongs to, or null for a channel that is not ours. */
export function channelGroup(channel: string): string | null {
  return CHANNEL.exec(channel)?.[1] ?? null;
}

/** Instance IDs go into key names and presence values: keep them to a safe alphabet (no braces, no spaces). */
export function instanceId(nodeId: string, random: string): string {
  return `${nodeId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)}.${random}`;
}

export interface NodeKeys {
  /** String with a TTL (PRESENCE_TTL_SECONDS), refreshed by the node's heartbeat: the node is alive while it exists. */
  alive: string;
  /** Set of group IDs where this instance registered members (what a sweeper must clean). */
  groups: string;
}

export function nodeKeys(instance: string): NodeKeys {
  const base = `${PREFIX}:{n:${instance}}`;
  return { alive: `${base}:alive`, groups: `${base}:groups` };
}

/** Presence hash value: the instance that holds the connection, then the name. */
export const memberValue = (instance: string, name: string): string => `${instance} ${name}`;

export function parseMemberValue(v: string): { instance: string; name: string } | null {
  const sp = v.indexOf(' ');
  return sp > 0 ? { instance: v.slice(0, sp), name: v.slice(sp + 1) } : null;
}

// ---- Redis Cluster slots ----

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys (and shard channels) with. */
const CRC16 = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/**
 * The cluster slot of a key or shard channel, as `CLUSTER KEYSLOT` computes it:
 * only the part inside the first non-empty `{…}` is hashed, so every
 * `chat:{g:<id>}…` name of one group lands in one slot.
 */
export function keySlot(key: string): number {
  const b = Buffer.from(key, 'utf8');
  let start = 0;
  let end = b.length;
  const open = b.indexOf(0x7b);
  if (open >= 0) {
    const close = b.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ (CRC16[((crc >> 8) ^ (b[i] as number)) & 0xff] as number);
  return crc & 16383;
}

// ---- the admission throttle (throttle.ts) ----

/** Budget keys carry what the node names them (`<kind>/<address key>`), restricted to a safe alphabet. */
const safe = (s: string): string => s.replace(/[^A-Za-z0-9:./_-]/g, '_').slice(0, 128);

/** Counter of one per-address budget (fixed window); its own slot, `{b:<kind>/<address>}`. */
export const addressBudgetKey = (key: string): string => `${PREFIX}:{b:${safe(key)}}`;

/** Hash of one address's wrong passwords for one group (`n`, `t`), in the group's slot so it goes with the group. */
export function authFailureKey(groupId: string, address: string): string {
  if (!isGroupId(groupId)) throw new Error('invalid group id');
  return `${PREFIX}:{g:${groupId}}:authfail:${safe(address)}`;
}
