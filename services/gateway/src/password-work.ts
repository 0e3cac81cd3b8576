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
//   one at a time per group: guessing from many addresses is slowed, never
//   refused, and a member with the right password is served next;
// - work whose client has gone is dropped before it runs.
// Exempt addresses (an unforwarded loopback peer: tests, benchmarks) are not
// bounded, only queued.

/** Addresses whose last turn is remembered (the least recently served are forgotten first). */
const MAX_REMEMBERED = 10_000;

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
  private running = 0;
  private queued = 0;

  constructor(
    private readonly limits: PasswordWorkLimits,
    private readonly onQueueLength: (n: number) => void = () => undefined,
  ) {}

  get length(): number {
    return this.queued;
  }

  submit<T>(opts: JobOptions, run: () => Promise<T>): Promise<WorkResult<T>> {
    if (opts.gone()) return Promise.resolve({ ok: false, reason: 'gone' });
    const key = opts.address.key;
    if (!opts.address.exempt) {
      const { maxQueued, maxPerAddress } = this.limits;
      if (maxPerAddress > 0 && (this.queues.get(key)?.length ?? 0) >= maxPerAddress && this.dropGone(key) === 0)
        return Promise.resolve({ ok: false, reason: 'busy' });
      if (maxQueued > 0 && this.queued >= maxQueued && this.dropGone(null) === 0) return Promise.resolve({ ok: false, reason: 'busy' });
    }
    return new Promise<WorkResult<T>>((resolve, reject) => {
      const job: Job = { opts, run, done: resolve as (r: WorkResult<unknown>) => void, fail: reject };
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = []));
      q.push(job);
      this.queued++;
      this.onQueueLength(this.queued);
      this.pump();
    });
  }

  /** Drop the queued jobs of gone clients (of one address, or all); returns how many went. */
  private dropGone(key: string | null): number {
    let dropped = 0;
    for (const k of key === null ? [...this.queues.keys()] : [key]) {
      const q = this.queues.get(k);
      if (!q) continue;
      const keep = q.filter((j) => {
        if (!j.opts.gone()) return true;
        j.done({ ok: false, reason: 'gone' });
        dropped++;
        return false;
      });
      this.setQueue(k, keep);
    }
    this.queued -= dropped;
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

  /** The next job to run: checks, then creates, then suspects' checks; within each, the address served least recently. */
  private pick(): Job | null {
    for (const rank of [0, 1, 2]) {
      let best: { key: string; served: number } | null = null;
      for (const [key, q] of this.queues) {
        // Gone clients' jobs at the head are dropped here, before they cost anything.
        while (q.length > 0 && (q[0] as Job).opts.gone()) {
          (q.shift() as Job).done({ ok: false, reason: 'gone' });
          this.queued--;
        }
        const head = q[0];
        if (!head || rankOf(head.opts) !== rank || !this.eligible(head)) continue;
        const served = this.lastServed.get(key) ?? -1;
        if (best === null || served < best.served) best = { key, served };
      }
      if (best) {
        this.queued--;
        this.lastServed.delete(best.key);
        this.lastServed.set(best.key, this.starts++);
        if (this.lastServed.size > MAX_REMEMBERED) this.lastServed.delete(this.lastServed.keys().next().value as string);
        return (this.queues.get(best.key) as Job[]).shift() as Job;
      }
    }
    return null;
  }

  private pump(): void {
    while (this.running < this.limits.concurrency) {
      const job = this.pick();
      // Addresses whose queues the pick emptied are forgotten (their last turn is kept).
      for (const [k, q] of [...this.queues]) if (q.length === 0) this.setQueue(k, q);
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
