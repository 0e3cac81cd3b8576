// The node's password work (scrypt: creates and password checks) as a bounded,
// fair queue. scrypt is the one costly thing a stranger can make the node do
// before it knows who they are, so:
// - at most `concurrency` run at a time (libuv's thread pool, memory per hash);
// - the queue is bounded in all and per client address; past a bound the
//   answer is `busy` at once;
// - addresses take turns (round robin), and an address holds at most
//   concurrency − 1 slots, so one address can never make everyone else wait
//   behind its whole backlog;
// - checks from addresses that already failed for that group go after every
//   address that has not, and run one at a time per group: guessing from many
//   addresses is slowed, never refused, and a member with the right password
//   is served next;
// - work whose client has gone is dropped before it runs.
// Exempt addresses (an unforwarded loopback peer: tests, benchmarks) are not
// bounded, only queued.

export interface WorkAddress {
  /** What fairness and bounds count under (the IPv4 address or the IPv6 /64). */
  key: string;
  exempt: boolean;
}

export interface JobOptions {
  address: WorkAddress;
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

export class PasswordWork {
  private readonly queues = new Map<string, Job[]>();
  /** Addresses with queued jobs, in turn order. */
  private order: string[] = [];
  private cursor = 0;
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
      if (!q) {
        this.queues.set(key, (q = []));
        this.order.push(key);
      }
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
    if (q.length > 0) {
      this.queues.set(key, q);
      return;
    }
    this.queues.delete(key);
    const i = this.order.indexOf(key);
    if (i >= 0) {
      this.order.splice(i, 1);
      if (this.cursor > i) this.cursor--;
    }
  }

  private eligible(job: Job): boolean {
    const a = job.opts.address;
    if (!a.exempt && (this.runningByAddress.get(a.key) ?? 0) >= Math.max(1, this.limits.concurrency - 1)) return false;
    const g = job.opts.suspectGroup;
    return !(g && this.suspectRunning.has(g));
  }

  /** The next job to run: addresses in turn, unsuspected checks before suspected ones. */
  private pick(): Job | null {
    for (const pass of [false, true]) {
      const n = this.order.length;
      for (let i = 0; i < n; i++) {
        const idx = (this.cursor + i) % n;
        const key = this.order[idx] as string;
        const q = this.queues.get(key) as Job[];
        // Gone clients' jobs at the head are dropped here, before they cost anything.
        while (q.length > 0 && (q[0] as Job).opts.gone()) {
          (q.shift() as Job).done({ ok: false, reason: 'gone' });
          this.queued--;
        }
        const head = q[0];
        if (!head) continue;
        if (Boolean(head.opts.suspectGroup) !== pass || !this.eligible(head)) continue;
        q.shift();
        this.queued--;
        this.cursor = idx + 1;
        return head;
      }
    }
    return null;
  }

  private pump(): void {
    while (this.running < this.limits.concurrency) {
      const job = this.pick();
      // Addresses whose queues the pick emptied leave the turn order.
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
