// Deadlines for everything the harness waits on. Nothing here sleeps to wait.

export class TimeoutError extends Error {}

/** Resolve with `p`, or reject after `ms` naming what we were waiting for. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Resolve at wall-clock `at` (a scheduled start or end, not a readiness wait). */
export function until(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - now())));
}
