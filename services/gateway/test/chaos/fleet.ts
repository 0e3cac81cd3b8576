// The runner's side of the client workers: forks them, hands each whole groups, and
// collects their answers. Workers are stopped by PID with everything else.
import { addResults, emptyResult, type CheckResult } from './check.js';
import { Child } from './child.js';
import { addHistograms } from './latency.js';
import { emptyWorkerStats, type FromWorker, type GroupPlan, type ToWorker, type WorkerStats } from './protocol.js';

/** A client worker process (worker.ts): the scenarios' helper-process class, asked in its protocol. */
type Worker = Child<ToWorker, FromWorker>;

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
    const workers: Worker[] = Array.from({ length: processes }, () => new Child<ToWorker, FromWorker>('worker.js'));
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
