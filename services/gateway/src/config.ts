// Environment → one typed, validated Config. Names as in PROTOCOL.md §4.
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { nanoid } from 'nanoid';
import { InvalidProxySpec, parseTrustedProxies } from './clientip.js';

export interface Config {
  host: string;
  port: number;
  tcpPort: number;
  metricsPort: number;
  redisUrl: string | null;
  redisClusterNodes: string[] | null;
  nodeId: string;
  chatSecret: string;
  secretIsEphemeral: boolean;
  dataDir: string;
  /** Messages kept per group (what paging can reach), exact. */
  historyLimit: number;
  /**
   * Idempotent sends (docs/SECURITY.md): per group, the newest sends with a client id remembered
   * (0 = off), and how long that memory outlives the group's last such send.
   */
  dedupeWindow: number;
  dedupeTtlSeconds: number;
  /**
   * Redis engine: after a send's script, `WAIT <redisWaitReplicas> <redisWaitTimeoutMs>` on the same
   * connection before the ack (0 = off); fewer replicas in time answers `unavailable` (docs/RELIABILITY.md).
   */
  redisWaitReplicas: number;
  redisWaitTimeoutMs: number;
  /** Messages replayed on a join (and a resume without `since`). */
  historyReplay: number;
  /** Largest page of the `history` op, `/history` and the API's history route. */
  historyPageMax: number;
  /** History pages per connection (token bucket; 0 = unlimited), and history reads in flight per node (0 = unbounded). */
  historyRatePerSec: number;
  historyRateBurst: number;
  /** History pages per client address per second on this node (burst: twice that); 0 = off. */
  historyAddressRatePerSec: number;
  historyMaxInflight: number;
  /** Server HTTP API keys (API_KEY, comma-separated for rotation); null = the API is off (404). */
  apiKeys: string[] | null;
  /** Server HTTP API calls in flight per node; past it `rate_limited` (429). */
  apiMaxInflight: number;
  drainSeconds: number;
  maxFrameBytes: number;
  maxBackpressureBytes: number;
  rateLimitPerSec: number;
  rateLimitBurst: number;
  maxConnectionsPerIp: number;
  trustedProxies: string[];
  /** An unforwarded loopback peer is exempt from per-address limits (tests, load tests); off where a same-host proxy or sidecar fronts the node. */
  loopbackExempt: boolean;
  allowedOrigins: string[] | null;
  scryptN: number;
  maxNameLength: number;
  maxTextLength: number;
  /** WebSocket idle timeout (uWS pings before it). TCP relies on kernel keepalive (the seed protocol has no ping). */
  idleTimeoutSeconds: number;
  /** TCP: keep-alive probes start after this idle time (then 10 probes 1 s apart, libuv's): a silent peer is reaped after about this + 10 s. */
  tcpKeepAliveSeconds: number;
  /** After the engine has been unreachable this long, this node's clients are closed (1012) to go to a ready node; 0 = never. */
  engineLossShedSeconds: number;
  /** Sessions that have not reached a group by then are closed. */
  menuTimeoutSeconds: number;
  tokenTtlSeconds: number;
  /** Resume refused past this age from the original password check (renewals keep that time). */
  tokenMaxAgeSeconds: number;
  /** A rotated-out CHAT_SECRET, still accepted for verification until `chatSecretPreviousUntil` (ms since epoch, the same on every node). */
  chatSecretPrevious: string | null;
  chatSecretPreviousUntil: number;
  /** Wrong passwords per (group, client address) within the lockout window; backoff starts after `authBackoffAfter`. */
  authMaxFailures: number;
  authLockoutSeconds: number;
  authBackoffAfter: number;
  /** Admission budgets per client address (0 = off): creates, and password checks. */
  createBudget: number;
  createBudgetWindowSeconds: number;
  authBudget: number;
  authBudgetWindowSeconds: number;
  /** Password work (scrypt): runs at a time, queued in all, queued per address (0 = unbounded queues). */
  scryptConcurrency: number;
  /** scrypt runs in a password process that exits after this long without work (0 = in the gateway itself). */
  scryptIdleSeconds: number;
  passwordQueueMax: number;
  passwordQueuePerAddress: number;
  /** Input bytes queued per connection before further input is refused (0 = off). */
  maxQueuedInputBytes: number;
  /** Growth: ceiling on groups (0 = off), idle retention (0 = keep forever), history bytes per group (0 = count only). */
  maxGroups: number;
  groupRetentionSeconds: number;
  historyMaxBytes: number;
  /** Redis engine: a killed node's members leave presence within this (its heartbeat key's TTL). */
  presenceTtlSeconds: number;
  /** Redis engine: PING every server connection this often; one without a reply within the timeout counts Redis down. */
  redisPingIntervalMs: number;
  redisPingTimeoutMs: number;
  logLevel: string;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

function list(env: Env, key: string): string[] | null {
  const raw = env[key];
  if (raw === undefined || raw.trim() === '') return null;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * CHAT_SECRET_PREVIOUS_UNTIL: the end of the rotation window as a moment (ISO 8601, or seconds
 * since the epoch), not a duration, so restarts and new nodes do not open the window again.
 */
function previousUntil(env: Env): number {
  const raw = env['CHAT_SECRET_PREVIOUS_UNTIL']?.trim() ?? '';
  const t = /^[0-9]+$/.test(raw) ? Number(raw) * 1000 : Date.parse(raw);
  if (raw === '' || !Number.isFinite(t))
    throw new ConfigError(`CHAT_SECRET_PREVIOUS needs CHAT_SECRET_PREVIOUS_UNTIL: when the old secret stops verifying (ISO 8601 or epoch seconds), got "${raw}"`);
  return t;
}

export function loadConfig(env: Env = process.env): Config {
  const redisUrl = env['REDIS_URL']?.trim() || null;
  const redisClusterNodes = list(env, 'REDIS_CLUSTER_NODES');
  const clustered = redisUrl !== null || redisClusterNodes !== null;
  const secret = env['CHAT_SECRET']?.trim() || null;
  if (redisUrl !== null && redisClusterNodes !== null) throw new ConfigError('set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both');
  for (const seed of redisClusterNodes ?? []) {
    if (!/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):([1-9][0-9]{0,4})$/.test(seed) || Number(seed.slice(seed.lastIndexOf(':') + 1)) > 65535) {
      throw new ConfigError(`REDIS_CLUSTER_NODES must be comma-separated host:port seeds, got "${seed}"`);
    }
  }
  if (clustered && !secret) throw new ConfigError('CHAT_SECRET is required when REDIS_URL or REDIS_CLUSTER_NODES is set (every node must share it)');
  if (secret !== null && secret.length < 16) throw new ConfigError('CHAT_SECRET must be at least 16 characters');
  const previous = env['CHAT_SECRET_PREVIOUS']?.trim() || null;
  if (previous !== null && previous.length < 16) throw new ConfigError('CHAT_SECRET_PREVIOUS must be at least 16 characters');
  if (previous !== null && secret === null) throw new ConfigError('CHAT_SECRET_PREVIOUS needs CHAT_SECRET (the new secret)');
  const trustedProxies = list(env, 'TRUSTED_PROXIES') ?? [];
  try {
    parseTrustedProxies(trustedProxies);
  } catch (e) {
    if (e instanceof InvalidProxySpec) throw new ConfigError(`TRUSTED_PROXIES must be comma-separated IPs or CIDRs (IPv4 or IPv6): ${e.message}`);
    throw e;
  }
  const apiKeys = list(env, 'API_KEY');
  for (const key of apiKeys ?? []) {
    // The key itself never goes into the message (it would land in logs).
    if (key.length < 16) throw new ConfigError(`API_KEY: every key must be at least 16 characters (one has ${key.length})`);
  }
  const scryptN = int(env, 'SCRYPT_N', 131072, 2, 1 << 22);
  if ((scryptN & (scryptN - 1)) !== 0) throw new ConfigError('SCRYPT_N must be a power of two');
  return {
    host: env['HOST']?.trim() || '0.0.0.0',
    port: int(env, 'PORT', 8080, 0, 65535),
    tcpPort: int(env, 'TCP_PORT', 7037, 0, 65535),
    metricsPort: int(env, 'METRICS_PORT', 9464, 0, 65535),
    redisUrl,
    redisClusterNodes,
    nodeId: env['NODE_ID']?.trim() || nanoid(10),
    chatSecret: secret ?? randomBytes(32).toString('base64url'),
    secretIsEphemeral: secret === null,
    dataDir: env['DATA_DIR']?.trim() || './data',
    dedupeWindow: int(env, 'DEDUPE_WINDOW', 1000, 0, 100_000),
    dedupeTtlSeconds: int(env, 'DEDUPE_TTL_SECONDS', 600, 1, 86_400),
    redisWaitReplicas: int(env, 'REDIS_WAIT_REPLICAS', 0, 0, 16),
    // Below the engine's 3 s command timeout (connection.ts), so a late WAIT answers before the command is given up.
    redisWaitTimeoutMs: int(env, 'REDIS_WAIT_TIMEOUT_MS', 500, 1, 2_000),
    historyLimit: int(env, 'HISTORY_LIMIT', 1000, 1, 100_000),
    historyReplay: int(env, 'HISTORY_REPLAY', 100, 0, 100_000),
    historyPageMax: int(env, 'HISTORY_PAGE_MAX', 200, 1, 10_000),
    historyRatePerSec: int(env, 'HISTORY_RATE_PER_SEC', 5, 0, 1_000_000),
    historyRateBurst: int(env, 'HISTORY_RATE_BURST', 10, 1, 1_000_000),
    historyAddressRatePerSec: int(env, 'HISTORY_ADDRESS_RATE_PER_SEC', 20, 0, 1_000_000),
    historyMaxInflight: int(env, 'HISTORY_MAX_INFLIGHT', 64, 0, 1_000_000),
    apiKeys,
    apiMaxInflight: int(env, 'API_MAX_INFLIGHT', 256, 1, 1_000_000),
    drainSeconds: int(env, 'DRAIN_SECONDS', 10, 0, 3600),
    maxFrameBytes: int(env, 'MAX_FRAME_BYTES', 16 * 1024, 256, 16 * 1024 * 1024),
    maxBackpressureBytes: int(env, 'MAX_BACKPRESSURE_BYTES', 1024 * 1024, 16 * 1024, 1024 * 1024 * 1024),
    rateLimitPerSec: int(env, 'RATE_LIMIT_PER_SEC', 20, 0, 1_000_000),
    rateLimitBurst: int(env, 'RATE_LIMIT_BURST', 40, 1, 1_000_000),
    maxConnectionsPerIp: int(env, 'MAX_CONNECTIONS_PER_IP', 256, 0, 10_000_000),
    trustedProxies,
    allowedOrigins: list(env, 'ALLOWED_ORIGINS'),
    loopbackExempt: int(env, 'LOOPBACK_EXEMPT', 1, 0, 1) === 1,
    scryptN,
    maxNameLength: int(env, 'MAX_NAME_LENGTH', 32, 1, 256),
    maxTextLength: int(env, 'MAX_TEXT_LENGTH', 2000, 1, 1_000_000),
    idleTimeoutSeconds: int(env, 'IDLE_TIMEOUT_SECONDS', 120, 8, 3600),
    tcpKeepAliveSeconds: int(env, 'TCP_KEEPALIVE_SECONDS', 30, 1, 7200),
    engineLossShedSeconds: int(env, 'ENGINE_LOSS_SHED_SECONDS', 15, 0, 86_400),
    menuTimeoutSeconds: int(env, 'MENU_TIMEOUT_SECONDS', 300, 1, 86_400),
    tokenTtlSeconds: int(env, 'TOKEN_TTL_SECONDS', 86_400, 60, 30 * 86_400),
    tokenMaxAgeSeconds: int(env, 'TOKEN_MAX_AGE_SECONDS', 7 * 86_400, 1, 365 * 86_400),
    chatSecretPrevious: previous,
    chatSecretPreviousUntil: previous === null ? 0 : previousUntil(env),
    authMaxFailures: int(env, 'AUTH_MAX_FAILURES', 10, 0, 1_000_000),
    authLockoutSeconds: int(env, 'AUTH_LOCKOUT_SECONDS', 900, 1, 86_400),
    authBackoffAfter: int(env, 'AUTH_BACKOFF_AFTER', 3, 0, 1_000_000),
    createBudget: int(env, 'CREATE_BUDGET', 20, 0, 1_000_000_000),
    createBudgetWindowSeconds: int(env, 'CREATE_BUDGET_WINDOW_SECONDS', 3600, 1, 30 * 86_400),
    authBudget: int(env, 'AUTH_BUDGET', 60, 0, 1_000_000_000),
    authBudgetWindowSeconds: int(env, 'AUTH_BUDGET_WINDOW_SECONDS', 300, 1, 30 * 86_400),
    // scrypt is memory-bound (128 MiB a hash at the default cost): about one per two cores, but at
    // least two, because one address may hold all slots but one (a newcomer never waits behind it).
    scryptConcurrency: int(env, 'SCRYPT_CONCURRENCY', Math.max(2, Math.floor(availableParallelism() / 2)), 1, 64),
    scryptIdleSeconds: int(env, 'SCRYPT_IDLE_SECONDS', 10, 0, 86_400),
    passwordQueueMax: int(env, 'PASSWORD_QUEUE_MAX', 256, 0, 1_000_000),
    passwordQueuePerAddress: int(env, 'PASSWORD_QUEUE_PER_ADDRESS', 4, 0, 1_000_000),
    maxQueuedInputBytes: int(env, 'MAX_QUEUED_INPUT_BYTES', 64 * 1024, 0, 1024 * 1024 * 1024),
    maxGroups: int(env, 'MAX_GROUPS', 100_000, 0, 1_000_000_000),
    groupRetentionSeconds: int(env, 'GROUP_RETENTION_SECONDS', 30 * 86_400, 0, 10 * 365 * 86_400),
    historyMaxBytes: int(env, 'HISTORY_MAX_BYTES', 1024 * 1024, 0, 1024 * 1024 * 1024),
    presenceTtlSeconds: int(env, 'PRESENCE_TTL_SECONDS', 10, 1, 3600),
    redisPingIntervalMs: int(env, 'REDIS_PING_INTERVAL_MS', 1000, 50, 60_000),
    redisPingTimeoutMs: int(env, 'REDIS_PING_TIMEOUT_MS', 2000, 50, 60_000),
    logLevel: env['LOG_LEVEL']?.trim() || 'info',
  };
}
