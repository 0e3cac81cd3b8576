// Waiting for events with deadlines. Tests never sleep to wait.

export class TimeoutError extends Error {}

/** Resolve with `p`, or reject after `ms` saying what we were waiting for. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** A queue of items that tests await one at a time. */
export class Inbox<T> {
  private items: T[] = [];
  private waiters: Array<{ test: (v: T) => boolean; resolve: (v: T) => void }> = [];
  private ended: Error | null = null;

  push(v: T): void {
    const i = this.waiters.findIndex((w) => w.test(v));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w?.resolve(v);
    } else if (this.waiters.length === 0) this.items.push(v);
    // else: someone is skipping ahead to a later item; this one is skipped (consumed) too.
  }

  end(err: Error): void {
    this.ended = err;
  }

  /** The next item (optionally the next that matches, skipping others), with a deadline. */
  next(ms = 5000, what = 'next item', test: (v: T) => boolean = () => true): Promise<T> {
    const i = this.items.findIndex(test);
    if (i >= 0) return Promise.resolve(this.items.splice(0, i + 1).pop() as T);
    this.items = []; // skipped items are consumed, as with a stream
    let waiter: { test: (v: T) => boolean; resolve: (v: T) => void } | undefined;
    const arrived = new Promise<T>((resolve) => {
      waiter = { test, resolve };
      this.waiters.push(waiter);
    });
    return within(arrived, ms, what).finally(() => {
      const k = waiter ? this.waiters.indexOf(waiter) : -1;
      if (k >= 0) this.waiters.splice(k, 1); // timed out: stop waiting
    });
  }

  /** Items received and not yet consumed. */
  peek(): readonly T[] {
    return this.items;
  }

  get closedWith(): Error | null {
    return this.ended;
  }
}

/** Poll a condition that has no event of its own (e.g. an HTTP status), with a deadline. */
export async function until(cond: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  const check = async (): Promise<boolean> => {
    for (;;) {
      if (await cond()) return true;
      if (Date.now() > end) return false;
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  // The deadline also bounds a single check that never answers (e.g. a command to a stopped server).
  if (!(await within(check(), ms + 1000, what))) throw new TimeoutError(`timed out after ${ms} ms waiting for ${what}`);
}
