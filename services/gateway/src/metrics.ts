// The gateway's own prom-client Registry (PROTOCOL.md §5). Labels are fixed
// enums chosen by the code, never user input.
import { createServer } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ADMISSION_REASONS, REJECT_REASONS, TRANSPORTS } from './ports.js';
import * as T from './protocol/text.js';

export class Metrics {
  readonly registry = new Registry();
  readonly connections: Gauge<'transport'>;
  readonly sessions: Gauge<'state'>;
  readonly groupsCreated: Counter;
  readonly joins: Counter<'result'>;
  readonly received: Counter<'transport'>;
  readonly published: Counter;
  readonly sendsDeduplicated: Counter;
  readonly delivered: Counter<'transport'>;
  readonly fanoutLatency: Histogram;
  readonly slowConsumers: Counter<'transport'>;
  readonly framesRejected: Counter<'reason'>;
  readonly engineUp: Gauge;
  readonly engineErrors: Counter<'op'>;
  readonly subscriptions: Gauge;
  readonly backfills: Counter;
  readonly redisReconnects: Counter;
  readonly idleDisconnects: Counter<'reason'>;
  readonly authCacheHits: Counter;
  readonly ready: Gauge;
  readonly admissionRefusals: Counter<'reason'>;
  readonly passwordQueue: Gauge;
  readonly groupsRemoved: Counter;
  readonly engineLossCloses: Counter;
  readonly apiRequests: Counter<'route' | 'status'>;
  private engineProbe: () => boolean = () => false;
  private readyProbe: () => boolean = () => false;

  constructor(nodeId: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ node: nodeId });
    collectDefaultMetrics({ register: this.registry });
    this.connections = new Gauge({ name: 'chat_connections', help: 'Open client connections', labelNames: ['transport'], registers });
    this.sessions = new Gauge({ name: 'chat_sessions', help: 'Sessions by state', labelNames: ['state'], registers });
    this.groupsCreated = new Counter({ name: 'chat_groups_created_total', help: 'Groups created on this node', registers });
    this.joins = new Counter({ name: 'chat_joins_total', help: 'Join attempts by result', labelNames: ['result'], registers });
    this.received = new Counter({
      name: 'chat_messages_received_total',
      help: "Chat messages accepted from this node's clients",
      labelNames: ['transport'],
      registers,
    });
    this.published = new Counter({ name: 'chat_messages_published_total', help: 'Messages stored and published to the engine', registers });
    this.sendsDeduplicated = new Counter({
      name: 'chat_sends_deduplicated_total',
      help: 'Retried sends (same member, same client id) acked with the seq they were first stored as, not stored again',
      registers,
    });
    this.delivered = new Counter({
      name: 'chat_messages_delivered_total',
      help: 'Message frames written to members on this node',
      labelNames: ['transport'],
      registers,
    });
    this.fanoutLatency = new Histogram({
      name: 'chat_fanout_latency_seconds',
      help: 'From publish to written to the local members',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.slowConsumers = new Counter({
      name: 'chat_slow_consumer_disconnects_total',
      help: 'Clients closed for not reading',
      labelNames: ['transport'],
      registers,
    });
    this.framesRejected = new Counter({ name: 'chat_frames_rejected_total', help: 'Bad input refused', labelNames: ['reason'], registers });
    const probe = (): boolean => this.engineProbe();
    this.engineUp = new Gauge({
      name: 'chat_engine_up',
      help: '1 while the engine is reachable',
      registers,
      collect() {
        this.set(probe() ? 1 : 0);
      },
    });
    this.engineErrors = new Counter({ name: 'chat_engine_errors_total', help: 'Failed engine calls', labelNames: ['op'], registers });
    this.subscriptions = new Gauge({ name: 'chat_subscriptions', help: 'Engine subscriptions this node holds', registers });
    this.backfills = new Counter({ name: 'chat_backfills_total', help: 'Gaps repaired from history', registers });
    this.redisReconnects = new Counter({ name: 'chat_redis_reconnects_total', help: 'Redis reconnections', registers });
    this.idleDisconnects = new Counter({
      name: 'chat_idle_disconnects_total',
      help: 'Sessions closed for idling (menu timeout)',
      labelNames: ['reason'],
      registers,
    });
    this.authCacheHits = new Counter({
      name: 'chat_auth_cache_hits_total',
      help: 'Password checks answered from the per-node cache (scrypt skipped)',
      registers,
    });
    const ready = (): boolean => this.readyProbe();
    this.ready = new Gauge({
      name: 'chat_ready',
      help: '1 while /readyz answers 200, 0 while draining or not ready',
      registers,
      collect() {
        this.set(ready() ? 1 : 0);
      },
    });
    this.admissionRefusals = new Counter({
      name: 'chat_admission_refusals_total',
      help: 'Refused admissions (budgets, lockouts, the password-work bound, the group ceiling, queued input)',
      labelNames: ['reason'],
      registers,
    });
    for (const r of ADMISSION_REASONS) this.admissionRefusals.inc({ reason: r }, 0);
    this.passwordQueue = new Gauge({ name: 'chat_password_queue', help: 'Password checks and creates waiting for scrypt on this node', registers });
    this.engineLossCloses = new Counter({
      name: 'chat_engine_loss_disconnects_total',
      help: 'Clients closed (1012) to go to a ready node after this node lost its engine for ENGINE_LOSS_SHED_SECONDS',
      registers,
    });
    this.groupsRemoved = new Counter({ name: 'chat_groups_removed_total', help: 'Groups removed by this node (idle past the retention period)', registers });
    this.apiRequests = new Counter({
      name: 'chat_api_requests_total',
      help: 'Server HTTP API calls by route template and status',
      labelNames: ['route', 'status'],
      registers,
    });
    // Every fixed label value starts at 0, so dashboards and rate() see a series before the first event.
    for (const r of ['ok', 'unknown_group', 'wrong_password', 'locked', 'no_groups'] as const) this.joins.inc({ result: r }, 0);
    for (const r of REJECT_REASONS) this.framesRejected.inc({ reason: r }, 0);
    for (const t of TRANSPORTS) {
      this.slowConsumers.inc({ transport: t }, 0);
      this.connections.set({ transport: t }, 0);
      this.received.inc({ transport: t }, 0);
      this.delivered.inc({ transport: t }, 0);
    }
    for (const s of ['menu', 'auth', 'chat'] as const) this.sessions.set({ state: s }, 0);
  }

  probeEngine(up: () => boolean): void {
    this.engineProbe = up;
  }

  probeReady(ready: () => boolean): void {
    this.readyProbe = ready;
  }
}

/** Serve the registry on its own (internal) port. Resolves with the bound port. */
export function serveMetrics(metrics: Metrics, host: string, port: number): Promise<{ port: number; close: () => void }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404).end(`${T.HTTP_NOT_FOUND}\n`);
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      () => res.writeHead(500).end(`${T.HTTP_METRICS_FAILED}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      // Later errors (e.g. EMFILE on accept) must not take the node down with an unhandled 'error'.
      server.on('error', () => undefined);
      const addr = server.address();
      resolve({ port: typeof addr === 'object' && addr ? addr.port : port, close: () => server.close() });
    });
  });
}
