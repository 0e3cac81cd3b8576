// Cluster-wide presence with node heartbeats.
//
// Each gateway process registers as an *instance* (its NODE_ID plus a random
// suffix) with a TTL key it refreshes every third of PRESENCE_TTL_SECONDS.
// A member is a field in the group's members hash whose value names the
// instance holding the connection. Readers skip members of instances whose
// key is gone, so a kill -9'd node's members vanish from /who within the TTL;
// a sweeper (any live node, on its heartbeat) then deletes them for good and
// publishes their `left` notices.
//
// An instance that finds its own key expired (Redis was unreachable longer
// than the TTL, or lost data) may already have been swept: it re-registers
// under a fresh instance ID and writes its local members again.
//
// Every call touches one slot (Redis Cluster): a group's members hash, a
// node's own keys (one pipeline, one `{n:<instance>}` slot), or the registry.
// Checks over many nodes' heartbeat keys are one EXISTS each, sent at once.
import { randomBytes } from 'node:crypto';
import { errText, type Logger } from '../../log.js';
import { groupKeys, instanceId, memberValue, NODE_REGISTRY, nodeKeys, parseMemberValue } from './keys.js';
import type { ScriptedClient } from './scripts.js';

export interface PresenceOptions {
  nodeId: string;
  ttlMs: number;
  log: Logger;
  /** The command connection (read when used: the engine owns it). */
  redis: () => ScriptedClient;
  isReady: () => boolean;
  /** Announce a member that a sweep removed. */
  onSwept: (groupId: string, memberId: string, name: string) => Promise<void>;
}

/** How much longer than the TTL a node's group list outlives its last heartbeat, for sweepers to find it. */
const GROUPS_TTL_FACTOR = 10;

type Exec = Array<[Error | null, unknown]> | null;

function check(results: Exec): unknown[] {
  if (!results) throw new Error('pipeline aborted');
  return results.map(([err, v]) => {
    if (err) throw err;
    return v;
  });
}

export class Presence {
  private instance: string;
  private registered = false;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  /** This process's members, to write again after a re-registration. */
  private local = new Map<string, { groupId: string; name: string }>();
  private readonly unremoved = new Map<string, { groupId: string; name: string }>();

  constructor(private readonly o: PresenceOptions) {
    this.instance = this.newInstance();
  }

  private newInstance(): string {
    return instanceId(this.o.nodeId, randomBytes(6).toString('hex'));
  }

  start(): void {
    this.timer = setInterval(() => void this.beat(), Math.max(100, Math.floor(this.o.ttlMs / 3)));
    this.timer.unref();
    void this.beat();
  }

  /** One heartbeat at a time; a beat that fails (Redis down) is simply retried by the next. */
  beat(): Promise<void> {
    if (this.beating) return this.beating;
    if (!this.o.isReady()) return Promise.resolve();
    this.beating = this.beatOnce()
      .catch((e: unknown) => this.o.log.debug({ err: errText(e) }, 'presence heartbeat failed'))
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    const r = this.o.redis();
    const nk = nodeKeys(this.instance);
    const refreshed = await r.set(nk.alive, '1', 'PX', this.o.ttlMs, 'XX');
    if (refreshed === null) await this.register();
    else await r.pexpire(nk.groups, this.o.ttlMs * GROUPS_TTL_FACTOR);
    await this.retryRemovals();
    await this.sweepDead();
  }

  /**
   * Announce this instance and write its members: the node's own keys first (the
   * alive key leads, so a registered instance always looks alive), then the
   * registry and one HSET per group.
   */
  private async register(): Promise<void> {
    if (this.registered) {
      const old = this.instance;
      this.instance = this.newInstance();
      this.o.log.warn({ old, instance: this.instance }, '[PRESENCE RE-REGISTER] heartbeat key had expired');
    }
    const r = this.o.redis();
    const nk = nodeKeys(this.instance);
    const byGroup = new Map<string, string[]>();
    for (const [memberId, m] of this.local) {
      const fields = byGroup.get(m.groupId) ?? [];
      fields.push(memberId, memberValue(this.instance, m.name));
      byGroup.set(m.groupId, fields);
    }
    const own = r.pipeline().set(nk.alive, '1', 'PX', this.o.ttlMs);
    if (byGroup.size > 0) own.sadd(nk.groups, ...byGroup.keys());
    own.pexpire(nk.groups, this.o.ttlMs * GROUPS_TTL_FACTOR);
    check(await own.exec());
    await Promise.all([r.sadd(NODE_REGISTRY, this.instance), ...[...byGroup].map(([g, fields]) => r.hset(groupKeys(g).members, ...fields))]);
    this.registered = true;
  }

  /** Which of these instances still have their heartbeat key (one EXISTS each: the keys live in different slots). */
  private async aliveOf(r: ScriptedClient, instances: string[]): Promise<boolean[]> {
    return (await Promise.all(instances.map((i) => r.exists(nodeKeys(i).alive)))).map((n) => n === 1);
  }

  /** Find registered instances whose heartbeat key is gone; whoever removes one from the registry sweeps it. */
  private async sweepDead(): Promise<void> {
    const r = this.o.redis();
    const others = (await r.smembers(NODE_REGISTRY)).filter((i) => i !== this.instance);
    if (others.length === 0) return;
    const alive = await this.aliveOf(r, others);
    for (let k = 0; k < others.length; k++) {
      if (alive[k]) continue;
      const dead = others[k] as string;
      if ((await r.srem(NODE_REGISTRY, dead)) === 1) await this.sweep(dead);
    }
  }

  /** Delete a dead instance's members everywhere it had any, announcing each. */
  private async sweep(instance: string): Promise<number> {
    const r = this.o.redis();
    const nk = nodeKeys(instance);
    const groups = await r.smembers(nk.groups);
    let removed = 0;
    for (const groupId of groups) {
      let gone: string[];
      try {
        gone = await r.chatSweepMembers(groupKeys(groupId).members, instance);
      } catch {
        continue; // not a group ID we know how to key: skip it
      }
      for (let i = 0; i + 1 < gone.length; i += 2) {
        removed++;
        await this.o.onSwept(groupId, gone[i] as string, gone[i + 1] as string).catch(() => undefined);
      }
    }
    await r.del(nk.groups);
    this.o.log.info({ instance, groups: groups.length, members: removed }, '[PRESENCE SWEPT]');
    return removed;
  }

  async add(groupId: string, memberId: string, name: string): Promise<void> {
    this.local.set(memberId, { groupId, name });
    const r = this.o.redis();
    const nk = nodeKeys(this.instance);
    await Promise.all([
      r.hset(groupKeys(groupId).members, memberId, memberValue(this.instance, name)),
      r.pipeline().sadd(nk.groups, groupId).pexpire(nk.groups, this.o.ttlMs * GROUPS_TTL_FACTOR).exec().then(check),
    ]);
  }

  async remove(groupId: string, memberId: string): Promise<void> {
    const name = this.local.get(memberId)?.name ?? '';
    this.local.delete(memberId);
    try {
      await this.o.redis().hdel(groupKeys(groupId).members, memberId);
    } catch (e) {
      // Redis blipped: the entry would stay under this live instance for good. Retried by the heartbeat.
      this.unremoved.set(memberId, { groupId, name });
      throw e;
    }
  }

  /** Removals that failed, retried at each heartbeat; a success sends the `left` notice the member never got. */
  private async retryRemovals(): Promise<void> {
    for (const [memberId, m] of [...this.unremoved]) {
      await this.o.redis().hdel(groupKeys(m.groupId).members, memberId);
      this.unremoved.delete(memberId);
      await this.o.onSwept(m.groupId, memberId, m.name).catch(() => undefined);
    }
  }

  /** Names of the group's members on live instances. */
  async list(groupId: string): Promise<string[]> {
    const r = this.o.redis();
    const all = await r.hgetall(groupKeys(groupId).members);
    const entries = Object.values(all)
      .map(parseMemberValue)
      .filter((m): m is { instance: string; name: string } => m !== null);
    const instances = [...new Set(entries.map((m) => m.instance))].filter((i) => i !== this.instance);
    const dead = new Set<string>();
    (await this.aliveOf(r, instances)).forEach((alive, k) => {
      if (!alive) dead.add(instances[k] as string);
    });
    return entries.filter((m) => !dead.has(m.instance)).map((m) => m.name);
  }

  /** Graceful stop: take this instance's remaining members out now rather than after the TTL. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    if (!this.o.isReady() || !this.registered) return;
    const nk = nodeKeys(this.instance);
    try {
      await this.sweep(this.instance);
      const r = this.o.redis();
      await Promise.all([r.del(nk.alive), r.srem(NODE_REGISTRY, this.instance)]);
    } catch (e) {
      this.o.log.warn({ err: errText(e) }, 'presence cleanup at stop failed');
    }
  }
}
