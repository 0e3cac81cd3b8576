// The client worker processes (child_process.fork), and asking all of them
// for one phase at a time with a deadline.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from './clients.js';
import type { FromWorker, MemberSpec, ToWorker } from './plan.js';
import { within } from './wait.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

class Worker {
  private waiting: { type: FromWorker['type']; resolve: (m: FromWorker) => void; reject: (e: Error) => void } | null = null;
  readonly exited: Promise<number | null>;

  constructor(
    readonly index: number,
    readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.on('message', (m: FromWorker) => {
      const w = this.waiting;
      if (!w) return;
      if (m.type === 'failed') w.reject(new Error(`worker ${index} failed: ${m.error}`));
      else if (m.type === w.type) w.resolve(m);
    });
    void this.exited.then((code) => this.waiting?.reject(new Error(`worker ${index} exited (${code})`)));
  }

  ask<T extends FromWorker>(msg: ToWorker, answer: T['type'], ms: number): Promise<T> {
    const p = new Promise<FromWorker>((resolve, reject) => {
      this.waiting = { type: answer, resolve, reject };
    });
    this.proc.send(msg);
    return within(p, ms, `worker ${this.index}: ${answer} after ${msg.type}`).finally(() => {
      this.waiting = null;
    }) as Promise<T>;
  }
}

export class WorkerPool {
  private constructor(private readonly workers: Worker[]) {}

  /** Fork one worker per share of members (empty shares get no worker). */
  static async start(endpoints: Endpoint[], shares: MemberSpec[][]): Promise<WorkerPool> {
    const workers = shares
      .filter((s) => s.length > 0)
      .map((_, i) => new Worker(i, fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] })));
    const pool = new WorkerPool(workers);
    try {
      await Promise.all(workers.map((w, i) => w.ask({ type: 'setup', endpoints, members: shares.filter((s) => s.length > 0)[i] as MemberSpec[] }, 'ready', 20_000)));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.proc.pid as number);
  }

  get size(): number {
    return this.workers.length;
  }

  all<T extends FromWorker>(msg: ToWorker, answer: T['type'], ms: number): Promise<T[]> {
    return Promise.all(this.workers.map((w) => w.ask<T>(msg, answer, ms)));
  }

  /** Ask each to close its sockets and exit; kill (by PID) any that does not. */
  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
        if (w.proc.connected) w.proc.send({ type: 'close' } satisfies ToWorker);
        try {
          await within(w.exited, 15_000, `worker ${w.index} to exit`);
        } catch {
          w.proc.kill('SIGKILL');
          await within(w.exited, 5000, `worker ${w.index} to exit after SIGKILL`);
        }
      }),
    );
  }
}

/** Deal `items` round-robin into `n` shares. */
export function deal<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  items.forEach((it, i) => out[i % n]?.push(it));
  return out;
}
