// The runner's side of the client workers: forks them, hands each whole groups, and
// collects their answers. Workers are stopped by PID with everything else.
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addResults, emptyResult, type CheckResult } from './check.js';
import { addHistograms } from './latency.js';
import { emptyWorkerStats, type FromWorker, type GroupPlan, type ToWorker, type WorkerStats } from './protocol.js';
import { within } from '../helpers/wait.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

/** Every worker any fleet started: killed by PID if the runner exits with them still running. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

class Worker {
  private waiters: Array<{ t: FromWorker['t']; resolve: (m: FromWorker) => void; reject: (e: Error) => void }> = [];
  readonly exited: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    running.add(proc);
    this.exited = new Promise((res) =>
      proc.once('exit', (code, signal) => {
        running.delete(proc);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`chaos worker ${proc.pid} exited (${code ?? signal})`));
        res();
      }),
    );
    proc.on('message', (raw) => {
      const m = raw as FromWorker;
      if (m.t === 'failed') {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`chaos worker ${proc.pid}: ${m.error}`));
        return;
      }
      const i = this.waiters.findIndex((w) => w.t === m.t);
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(m);
    });
  }

  ask<T extends FromWorker['t']>(msg: ToWorker, answer: T, ms: number): Promise<Extract<FromWorker, { t: T }>> {
    const p = new Promise<FromWorker>((resolve, reject) => this.waiters.push({ t: answer, resolve, reject }));
    this.proc.send(msg);
    return within(p, ms, `chaos worker ${this.proc.pid}: ${msg.t}`) as Promise<Extract<FromWorker, { t: T }>>;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.send({ t: 'exit' } satisfies ToWorker);
    try {
      await within(this.exited, 5000, 'chaos worker exit');
    } catch {
      this.proc.kill('SIGKILL');
      await within(this.exited, 5000, 'chaos worker exit after SIGKILL');
    }
  }
}

/** The fleet's figures: every worker's, summed. */
export type FleetStats = WorkerStats;

const merge = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
};

export class Fleet {
  /** The groups' IDs, as the workers reported them when set up. */
  private ids: string[] = [];

  private constructor(private readonly workers: Worker[]) {}

  groupIds(): string[] {
    return [...this.ids];
  }

  /** `groups` groups of `members` each, spread over `processes` workers (whole groups per worker). */
  static async start(urls: string[], groups: number, members: number, processes: number): Promise<Fleet> {
    const workers = Array.from({ length: processes }, () => new Worker(fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })));
    const fleet = new Fleet(workers);
    try {
      const plans: GroupPlan[][] = workers.map(() => []);
      for (let g = 0; g < groups; g++) plans[g % processes]?.push({ key: `g${g}`, members });
      const ms = 60_000 + groups * members * 20;
      const ready = await Promise.all(
        workers.map((w, i) => w.ask({ t: 'setup', urls, password: 'chaos-pw', groups: plans[i] as GroupPlan[], concurrency: 50 }, 'ready', ms)),
      );
      fleet.ids = ready.flatMap((r) => r.groups.map((g) => g.groupId));
      return fleet;
    } catch (e) {
      await fleet.stop();
      throw e;
    }
  }

  start(rate: number): void {
    for (const w of this.workers) w.proc.send({ t: 'start', rate } satisfies ToWorker);
  }

  /** Stop sending; resolves with the sends still unacked after `ms`. */
  async stopSending(ms: number): Promise<number> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ t: 'stop', ms }, 'stopped', ms + 10_000)));
    return r.reduce((n, x) => n + x.pending, 0);
  }

  /** Wait until every member holds its group's messages up to the top; resolves with how many still lag. */
  async settle(ms: number): Promise<number> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ t: 'settle', ms }, 'settled', ms + 10_000)));
    return r.reduce((n, x) => n + x.behind, 0);
  }

  async check(redisUrl: string): Promise<CheckResult> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ t: 'check', redisUrl }, 'checked', 120_000)));
    return r.reduce((acc, x) => addResults(acc, x.result), emptyResult());
  }

  async stats(): Promise<FleetStats> {
    const r = await Promise.all(this.workers.map((w) => w.ask({ t: 'stats' }, 'stats', 30_000)));
    const s: FleetStats = emptyWorkerStats();
    for (const { stats: w } of r as Array<{ stats: WorkerStats }>) {
      s.members += w.members;
      s.connected += w.connected;
      s.pending += w.pending;
      s.closes = merge(s.closes, w.closes);
      s.errors = merge(s.errors, w.errors);
      s.connectFailures = merge(s.connectFailures, w.connectFailures);
      s.resumes += w.resumes;
      s.maxRecoveryMs = Math.max(s.maxRecoveryMs, w.maxRecoveryMs);
      s.lastBackAt = Math.max(s.lastBackAt, w.lastBackAt);
      s.down += w.down;
      s.sent += w.sent;
      s.acked += w.acked;
      s.gaps += w.gaps;
      s.dupDropped += w.dupDropped;
      s.resends += w.resends;
      s.foreign += w.foreign;
      s.ackLatency = addHistograms(s.ackLatency, w.ackLatency);
    }
    return s;
  }

  /** Start a new ack-latency window in every worker. */
  markLatency(): void {
    for (const w of this.workers) w.proc.send({ t: 'latency' } satisfies ToWorker);
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
