// A Redis that keeps the TCP connection open but stops answering (a stuck
// server, DEBUG SLEEP, CLIENT PAUSE, a half-dead network path) never closes
// the connection, so connection status alone leaves the node "ready". This
// PINGs every server connection periodically; one PING without a reply within
// the timeout marks the engine unhealthy (/readyz 503, calls fail fast) until a
// whole round answers again.

export interface Pingable {
  readonly status: string;
  ping(): Promise<unknown>;
}

export interface HealthOptions {
  intervalMs: number;
  timeoutMs: number;
  /** The connections to PING this round (read each round: the cluster's masters change). */
  targets: () => Pingable[];
  onChange: (healthy: boolean, detail: { failed: number; of: number }) => void;
}

export class HealthCheck {
  private ok = true;
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly o: HealthOptions) {}

  get healthy(): boolean {
    return this.ok;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.round(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round: PING every ready connection at once. Connections that are not ready are left to their status. */
  private async round(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const targets = this.o.targets().filter((t) => t.status === 'ready');
      const answered = await Promise.all(targets.map((t) => this.pingOnce(t)));
      const failed = answered.filter((a) => !a).length;
      const ok = failed === 0;
      if (ok !== this.ok && this.timer) {
        this.ok = ok;
        this.o.onChange(ok, { failed, of: targets.length });
      }
    } finally {
      this.running = false;
    }
  }

  private pingOnce(t: Pingable): Promise<boolean> {
    return new Promise<boolean>((res) => {
      // The deadline is judged after this loop turn's I/O: when the event loop itself was
      // blocked past the timeout (a busy node), timers run before the poll phase, and a reply
      // already waiting in the socket would otherwise count as "Redis not answering" (the
      // node would turn unready, fail calls, and its clients' resumes, for its own lag).
      const timer = setTimeout(() => setImmediate(() => res(false)), this.o.timeoutMs);
      t.ping().then(
        () => {
          clearTimeout(timer);
          res(true);
        },
        () => {
          clearTimeout(timer);
          // A connection that broke meanwhile is reported by its status, not here.
          res(t.status !== 'ready');
        },
      );
    });
  }
}
