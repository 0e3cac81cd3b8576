// The node's password work (scrypt: creates and password checks) as a bounded,
// fair queue. scrypt is the one costly thing a stranger can make the node do
// before it knows who they are, so:
// - at most `concurrency` run at a time (libuv's thread pool, memory per hash);
// - the queue is bounded in all and per client address; past a bound the
//   answer is `busy` at once;
// - addresses take turns: the next job comes from the address served least
//   recently (one never served goes first), and an address holds at most
//   concurrency − 1 slots, so one address can never make everyone else wait
//   behind its backlog: a newcomer waits for at most one running hash;
// - password checks go before creates (a member getting back in matters more
//   than a new group, and creates have a budget of their own); checks from
//   addresses that already failed for that group go after everything else,
//   one at a time per group, and at most a few wait per group: guessing from
//   many addresses is slowed, and a member with the right password is served
//   next. Precedence ages: a job that has waited AGING_MS moves up a rank, so
//   nothing waits for ever behind a steady stream of higher-ranked work;
// - work whose client has gone is dropped before it runs.
// Exempt addresses (an unforwarded loopback peer: tests, benchmarks) are not
// bounded, only queued.

/** Addresses whose last turn is remembered (the least recently served are forgotten first). */
const MAX_REMEMBERED = 10_000;
/** A job that has waited this long moves up one rank (creates compete with checks after it, suspects after twice it). */
export const AGING_MS = 2_000;
/** Suspects' checks waiting per group (they run one at a time per group anyway); more get `busy`. */
export const MAX_SUSPECTS_PER_GROUP = 8;
/** Jobs looked at per address when its first ones cannot run yet (e.g. a suspect of a group already being checked). */
const SCAN_PER_ADDRESS = 8;

export interface WorkAddress {
  /** What fairness and bounds count under (the IPv4 address or the IPv6 /64). */
  key: string;
  exempt: boolean;
}

export interface JobOptions {
  address: WorkAddress;
  /** A password check (join) or a hash for a new group (create). */
  kind: 'check' | 'create';
  /** An unverified check by an address that failed for this group before: one at a time per group, after the others. */
  suspectGroup?: string | null;
  /** True once the client is gone: the job is dropped before it runs. */
  gone: () => boolean;
}

export type WorkResult<T> = { ok: true; value: T } | { ok: false; reason: 'busy' | 'gone' };

interface Job {
  opts: JobOptions;
  queuedAt: number;
  run: () => Promise<unknown>;
  done: (r: WorkResult<unknown>) => void;
  /** The work itself threw (e.g. scrypt failed): the caller's error to handle. */
  fail: (e: unknown) => void;
}

export interface PasswordWorkLimits {
  concurrency: number;
  /** Jobs queued in all (0 = unbounded). */
  maxQueued: number;
  /** Jobs queued per address (0 = unbounded). */
  maxPerAddress: number;
}

const rankOf = (o: JobOptions): number => (o.suspectGroup ? 2 : o.kind === 'check' ? 0 : 1);

export class PasswordWork {
  private readonly queues = new Map<string, Job[]>();
  /** When each address last had a job started (a counter), least recent first; bounded. */
  private readonly lastServed = new Map<string, number>();
  private starts = 0;
  private readonly runningByAddress = new Map<string, number>();
  private readonly suspectRunning = new Set<string>();
  /** Suspects' checks waiting, per group: bounded apart from the rest, so they cannot fill the queue for everyone. */
  private readonly suspectsQueued = new Map<string, number>();
  private suspects = 0;
  private running = 0;
  private queued = 0;

  constructor(
    private readonly limits: PasswordWorkLimits,
    private readonly onQueueLength: (n: number) => void = () => undefined,
  ) {}

  get length(): number {
    return this.queued;
  }

  submit<T>(opts: JobOptions, run: () => Promise<T>, now = performance.now()): Promise<WorkResult<T>> {
    if (opts.gone()) return Promise.resolve({ ok: false, reason: 'gone' });
    const key = opts.address.key;
    const group = opts.suspectGroup ?? null;
    if (!opts.address.exempt) {
      const { maxQueued, maxPerAddress } = this.limits;
      if (maxPerAddress > 0 && (this.queues.get(key)?.length ?? 0) >= maxPerAddress && this.dropGone(key) === 0)
        return Promise.resolve({ ok: false, reason: 'busy' });
      if (group) {
        // Suspects have a pool of their own (per group and in all), so guessing cannot make everyone else `busy`.
        if ((this.suspectsQueued.get(group) ?? 0) >= MAX_SUSPECTS_PER_GROUP && this.dropGone(null) === 0) return Promise.resolve({ ok: false, reason: 'busy' });
        if (maxQueued > 0 && this.suspects >= maxQueued && this.dropGone(null) === 0) return Promise.resolve({ ok: false, reason: 'busy' });
      } else if (maxQueued > 0 && this.queued - this.suspects >= maxQueued && this.dropGone(null) === 0) {
        return Promise.resolve({ ok: false, reason: 'busy' });
      }
    }
    return new Promise<WorkResult<T>>((resolve, reject) => {
      const job: Job = { opts, queuedAt: now, run, done: resolve as (r: WorkResult<unknown>) => void, fail: reject };
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = []));
      q.push(job);
      this.count(job, +1);
      this.onQueueLength(this.queued);
      this.pump(now);
    });
  }

  /** Keep the queue counts (all, suspects, suspects per group) as a job comes or goes. */
  private count(job: Job, d: 1 | -1): void {
    this.queued += d;
    const g = job.opts.suspectGroup;
    if (!g) return;
    this.suspects += d;
    const n = (this.suspectsQueued.get(g) ?? 0) + d;
    if (n <= 0) this.suspectsQueued.delete(g);
    else this.suspectsQueued.set(g, n);
  }

  /** Drop the queued jobs of gone clients (of one address, or all); returns how many went. */
  private dropGone(key: string | null): number {
    let dropped = 0;
    for (const k of key === null ? [...this.queues.keys()] : [key]) {
      const q = this.queues.get(k);
      if (!q) continue;
      const keep = q.filter((j) => {
        if (!j.opts.gone()) return true;
        this.count(j, -1);
        j.done({ ok: false, reason: 'gone' });
        dropped++;
        return false;
      });
      this.setQueue(k, keep);
    }
    if (dropped > 0) this.onQueueLength(this.queued);
    return dropped;
  }

  private setQueue(key: string, q: Job[]): void {
    if (q.length > 0) this.queues.set(key, q);
    else this.queues.delete(key);
  }

  private eligible(job: Job): boolean {
    const a = job.opts.address;
    if (!a.exempt && (this.runningByAddress.get(a.key) ?? 0) >= Math.max(1, this.limits.concurrency - 1)) return false;
    const g = job.opts.suspectGroup;
    return !(g && this.suspectRunning.has(g));
  }

  /**
   * The next job to run: the lowest rank (checks, then creates, then suspects' checks, each
   * moving up a rank per AGING_MS waited); among equals, the address served least recently.
   */
  private pick(now: number): Job | null {
    let best: { key: string; index: number; rank: number; served: number } | null = null;
    for (const [key, q] of this.queues) {
      for (let i = 0; i < Math.min(q.length, SCAN_PER_ADDRESS); i++) {
        const job = q[i] as Job;
        // Gone clients' jobs are dropped here, before they cost anything.
        if (job.opts.gone()) {
          q.splice(i--, 1);
          this.count(job, -1);
          job.done({ ok: false, reason: 'gone' });
          continue;
        }
        if (!this.eligible(job)) continue;
        const rank = Math.max(0, rankOf(job.opts) - Math.floor((now - job.queuedAt) / AGING_MS));
        const served = this.lastServed.get(key) ?? -1;
        if (best === null || rank < best.rank || (rank === best.rank && served < best.served)) best = { key, index: i, rank, served };
        break; // an address's jobs run in order: the first that can run is its candidate
      }
      if (q.length === 0) this.queues.delete(key); // all its jobs were gone
    }
    if (!best) return null;
    const q = this.queues.get(best.key) as Job[];
    const job = q.splice(best.index, 1)[0] as Job;
    if (q.length === 0) this.queues.delete(best.key);
    this.count(job, -1);
    this.lastServed.delete(best.key);
    this.lastServed.set(best.key, this.starts++);
    if (this.lastServed.size > MAX_REMEMBERED) this.lastServed.delete(this.lastServed.keys().next().value as string);
    return job;
  }

  private pump(now = performance.now()): void {
    while (this.running < this.limits.concurrency) {
      const job = this.pick(now);
      this.onQueueLength(this.queued);
      if (!job) return;
      this.start(job);
    }
  }

  private start(job: Job): void {
    const key = job.opts.address.key;
    const group = job.opts.suspectGroup ?? null;
    this.running++;
    this.runningByAddress.set(key, (this.runningByAddress.get(key) ?? 0) + 1);
    if (group) this.suspectRunning.add(group);
    const finish = (): void => {
      this.running--;
      const n = (this.runningByAddress.get(key) ?? 1) - 1;
      if (n <= 0) this.runningByAddress.delete(key);
      else this.runningByAddress.set(key, n);
      if (group) this.suspectRunning.delete(group);
      this.pump();
    };
    job.run().then(
      (value) => {
        finish();
        job.done({ ok: true, value });
      },
      (error: unknown) => {
        finish();
        job.fail(error);
      },
    );
  }
}
