// What the chaos runner and its client worker processes say to each other (IPC).
import type { CheckResult } from './check.js';
import { newHistogram } from './latency.js';

export interface GroupPlan {
  /** The runner's name for the group (its ID comes from the server). */
  key: string;
  members: number;
}

export type ToWorker =
  | { t: 'setup'; urls: string[]; password: string; groups: GroupPlan[]; concurrency: number }
  /** Every member sends `rate` messages a second (steady, random phase). */
  | { t: 'start'; rate: number }
  /** Stop new sends; answer once every send is acked (or the deadline passed). */
  | { t: 'stop'; ms: number }
  /** Answer once every member holds every message of its group up to the group's top (or the deadline passed). */
  | { t: 'settle'; ms: number }
  | { t: 'check'; redisUrl: string }
  | { t: 'stats' }
  /** Start a new ack-latency window (the histogram in stats covers sends acked since). */
  | { t: 'latency' }
  | { t: 'exit' };

export interface WorkerStats {
  members: number;
  connected: number;
  pending: number;
  /** Close codes clients saw (not counting their own closes). */
  closes: Record<string, number>;
  /** `error` codes clients got. */
  errors: Record<string, number>;
  /** Failed connection attempts by cause (http_503, ECONNREFUSED, …). */
  connectFailures: Record<string, number>;
  /** Resumes after a close, and the longest time from a close to the resumed `joined`. */
  resumes: number;
  maxRecoveryMs: number;
  /** When the last member that had been cut off was back (ms since epoch; 0 = none was cut). */
  lastBackAt: number;
  /** Members cut off and not back yet. */
  down: number;
  sent: number;
  acked: number;
  /** Holes the client library reported and skipped (seqs it could not get back). */
  gaps: number;
  /** Messages the library dropped as already delivered (sent twice by the server, e.g. a replay overlapping live). */
  dupDropped: number;
  /** Send frames the library wrote again (after a resume or a refusal). */
  resends: number;
  /** Messages received whose text is not a fleet member's `<name>#<id>` or holds a control byte (fuzz or flood input leaking to members). */
  foreign: number;
  /** Send → ack latency since the last `latency` mark: counts per bucket (latency.ts). */
  ackLatency: number[];
}

/** All counts zero, an empty latency histogram: a worker's start, and the fleet's sum before adding. */
export function emptyWorkerStats(): WorkerStats {
  return {
    members: 0,
    connected: 0,
    pending: 0,
    closes: {},
    errors: {},
    connectFailures: {},
    resumes: 0,
    maxRecoveryMs: 0,
    lastBackAt: 0,
    down: 0,
    sent: 0,
    acked: 0,
    gaps: 0,
    dupDropped: 0,
    resends: 0,
    foreign: 0,
    ackLatency: newHistogram(),
  };
}

export type FromWorker =
  | { t: 'ready'; groups: Array<{ key: string; groupId: string }>; members: number }
  | { t: 'stopped'; pending: number }
  | { t: 'settled'; ok: boolean; behind: number }
  | { t: 'checked'; result: CheckResult }
  | { t: 'stats'; stats: WorkerStats }
  | { t: 'failed'; error: string };
