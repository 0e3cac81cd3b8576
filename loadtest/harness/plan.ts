// What the parent tells a client worker process, and what it answers (IPC).
import type { Endpoint, Transport } from './clients.js';
import type { HistogramData } from './hist.js';

export interface MemberSpec {
  name: string;
  transport: Transport;
  /** Index into the worker's endpoints (which gateway this member talks to). */
  endpoint: number;
  groupId: string;
  /** Sends chat messages (fan-out: at the fixed rate; throughput: as fast as acks allow). */
  sender: boolean;
  /** bench-compare: this member's ID as a sender, unique over all workers (goes into its messages' tags). */
  id?: number;
}

/** Shared timing of a measured run: everything is wall-clock ms (see wait.now). */
export interface Window {
  /** Senders start here; the warm-up runs until `measureFrom`. */
  startAt: number;
  measureFrom: number;
  /** Senders stop here; latencies count only for messages sent in [measureFrom, endAt). */
  endAt: number;
  /** How long after endAt to keep receiving before reporting. */
  drainMs: number;
}

export type ToWorker =
  | { type: 'setup'; endpoints: Endpoint[]; members: MemberSpec[] }
  /** Open every member's connection, `concurrency` at a time. */
  | { type: 'connect'; concurrency: number; timeoutMs: number }
  | { type: 'join'; concurrency: number; password: string; timeoutMs: number }
  /**
   * Open loop: each sender sends `ratePerSender` msgs/s. With `check` (a run number), each
   * message is tagged `<check>.<sender id>.<count>` and every receiver checks each sender's
   * counts for gaps and duplicates (RunResult.check); texts are then exactly `textBytes` long.
   */
  | { type: 'fanout'; window: Window; ratePerSender: number; textBytes: number; check?: number }
  /** Closed loop: each sender keeps `inflight` unacknowledged sends (WS JSON only). */
  | { type: 'flood'; window: Window; inflight: number; textBytes: number }
  | { type: 'close' };

export interface PhaseResult {
  type: 'phase';
  phase: 'connect' | 'join';
  ok: number;
  failed: number;
  /** Failure reasons (truncated messages) → count. */
  reasons: Record<string, number>;
  elapsedMs: number;
  latency: HistogramData;
}

export interface RunResult {
  type: 'run';
  /** Messages this worker sent with a timestamp inside the measured window. */
  sentInWindow: number;
  sentTotal: number;
  /** Receive latency (sender clock → receiver) per receiving transport, for messages sent in the window. */
  received: Partial<Record<Transport, HistogramData>>;
  /** Bench messages received whose send time fell outside the window (warm-up, drain). */
  receivedOutside: number;
  /** Ack latency (send → ack) for acks of sends in the window (WS JSON senders). */
  acks: HistogramData;
  /** Open loop: how late each send was against its schedule (client saturation shows here). */
  sendLag: HistogramData;
  /** Error codes the server sent back → count. */
  errors: Record<string, number>;
  /** Members whose connection closed during the run. */
  closed: number;
  /** JSON senders still waiting for acks when the worker reported. */
  unacked: number;
  /** With `check`: what the receivers saw of each sender's numbered messages, over the whole run (warm-up included). */
  check?: CheckResult;
}

export interface CheckResult {
  /** Messages received in order or after a gap (each counted once). */
  unique: number;
  /** Received with a count below the next expected one (a duplicate, or one overtaken by a later message). */
  dups: number;
  /** Times a count skipped ahead, and how many counts were skipped in all. */
  gaps: number;
  skipped: number;
  /** Tagged messages of another run (stragglers of an earlier step). */
  stale: number;
}

export type FromWorker = PhaseResult | RunResult | { type: 'ready' } | { type: 'closed' } | { type: 'failed'; error: string };
