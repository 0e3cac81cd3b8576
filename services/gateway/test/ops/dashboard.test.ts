// The Grafana dashboard (deploy/grafana/chat-gateway.json) and the alert rules
// (deploy/prometheus/alerts.yml) against a live Prometheus (the apt package),
// started here with deploy/prometheus/prometheus.yml (1 s intervals) scraping two
// live gateways on one Redis. The test makes every panel have something to
// show (a join with a wrong password, a bad frame, a slow consumer, a Redis
// outage), then requires each panel query to return finite data; the rules are
// loaded; killing a gateway makes ChatGatewayDown pending (or firing).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { WsClient } from '../helpers/clients.js';
import { freePort, tempDir } from '../helpers/gateway.js';
import { REPO } from '../helpers/haproxy.js';
import { JsonChat, startCluster, type Cluster } from '../helpers/redis-cluster.js';
import { until, within } from '../helpers/wait.js';

const DASHBOARD = resolve(REPO, 'deploy/grafana/chat-gateway.json');
const havePrometheus = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;
if (!havePrometheus && process.env['CI']) throw new Error('prometheus is required in CI (make test installs it)');
const skip = !havePrometheus && 'prometheus not installed';

interface Target {
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; datasource?: { uid: string }; allValue?: string }> };
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

/** A panel query as Grafana would send it with every node selected. */
const concrete = (expr: string): string => expr.replaceAll('$__rate_interval', '1m').replaceAll('$node', '.*');

test('dashboard: Prometheus data source as a variable on every panel, a node variable, every topic the issue lists', () => {
  const ds = dashboard.templating.list.find((v) => v.name === 'datasource');
  assert.deepEqual([ds?.type, ds?.query], ['datasource', 'prometheus']);
  const node = dashboard.templating.list.find((v) => v.name === 'node');
  assert.equal(node?.datasource?.uid, '${datasource}');
  assert.equal(node?.allValue, '.*');
  assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, 'panel ids are unique');
  for (const p of queryPanels) {
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: data source is the variable`);
    assert.ok(p.targets && p.targets.length > 0, `${p.title} has queries`);
    for (const t of p.targets) {
      assert.equal(t.datasource?.uid, '${datasource}', `${p.title}: ${t.expr}`);
      assert.match(t.expr, /node=~"\$node"/, `${p.title}: the node selector applies (${t.expr})`);
    }
  }
  const exprs = queryPanels.flatMap((p) => p.targets?.map((t) => t.expr) ?? []).join('\n');
  for (const metric of [
    'chat_connections{',
    'chat_sessions{',
    'chat_messages_received_total',
    'chat_messages_published_total',
    'chat_messages_delivered_total',
    'histogram_quantile(0.5, sum by (le) (rate(chat_fanout_latency_seconds_bucket',
    'histogram_quantile(0.99, sum by (le) (rate(chat_fanout_latency_seconds_bucket',
    'sum by (result) (rate(chat_joins_total',
    'sum by (reason) (rate(chat_frames_rejected_total',
    'chat_slow_consumer_disconnects_total',
    'sum by (reason) (rate(chat_admission_refusals_total',
    'chat_engine_up',
    'chat_engine_errors_total',
    'chat_redis_reconnects_total',
    'chat_backfills_total',
    'nodejs_eventloop_lag_p99_seconds',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
    'chat_ready',
  ])
    assert.ok(exprs.includes(metric), `a panel shows ${metric}`);
});

let cl: Cluster;
let prom: ChildProcess | null = null;
let promPort = 0;
const promOutput: string[] = [];

async function api<T>(path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${promPort}${path}`);
  const body = (await r.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? r.status}`);
  return body.data;
}
type Sample = { metric: Record<string, string>; value: [number, string] };
const query = (q: string): Promise<{ resultType: string; result: Sample[] }> => api(`/api/v1/query?query=${encodeURIComponent(q)}`);

before(async () => {
  if (skip) return;
  cl = await startCluster(2, { redis: { appendonly: true }, env: { MAX_BACKPRESSURE_BYTES: String(64 * 1024) } });
  // The repository's Prometheus config and rules, with 1 s intervals and these gateways as the targets.
  const dir = tempDir('chat-prometheus-');
  const config = parse(readFileSync(resolve(REPO, 'deploy/prometheus/prometheus.yml'), 'utf8')) as { global: Record<string, string> };
  config.global['scrape_interval'] = '1s';
  config.global['evaluation_interval'] = '1s';
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  copyFileSync(resolve(REPO, 'deploy/prometheus/alerts.yml'), join(dir, 'alerts.yml'));
  mkdirSync(join(dir, 'targets'));
  const targets = cl.nodes.map((g) => `127.0.0.1:${g.metricsPort}`);
  writeFileSync(join(dir, 'targets/test.json'), JSON.stringify([{ targets, labels: { cluster: 'test' } }]));
  promPort = await freePort();
  prom = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const s of [prom.stdout, prom.stderr]) s?.on('data', (d: Buffer) => promOutput.push(d.toString()));
  await until(
    async () => {
      if (prom?.exitCode !== null) throw new Error(`prometheus exited: ${promOutput.join('')}`);
      return (await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => null))?.status === 200;
    },
    20_000,
    'prometheus /-/ready',
  );
});

after(async () => {
  if (skip) return;
  if (prom && prom.exitCode === null && prom.signalCode === null) {
    const p = prom;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await within(gone, 10_000, 'prometheus exit');
  }
  await cl?.stop();
});

/** Everything the panels show, made to happen for real. */
async function exercise(): Promise<void> {
  const [n0, n1] = cl.nodes as [(typeof cl.nodes)[0], (typeof cl.nodes)[0]];
  const a = await JsonChat.open(n0);
  const groupId = await a.create('Ann', 'pw');
  const b = await JsonChat.open(n1);
  await assert.rejects(b.join('Ben', groupId, 'wrong'), /wrong_password/);
  // Guessing on another group: after AUTH_BACKOFF_AFTER (3) failures the next guess is refused (the lockout panel).
  const target = await JsonChat.open(n0);
  const targetId = await target.create('Tia', 'secret');
  const guesser = await JsonChat.open(n1);
  for (const guess of ['g1', 'g2', 'g3']) await assert.rejects(guesser.join('Eve', targetId, guess), /wrong_password/);
  await assert.rejects(guesser.join('Eve', targetId, 'g4'), /rate_limited/);
  target.ws.close();
  guesser.ws.close();
  await b.join('Ben', groupId, 'pw');
  for (let i = 1; i <= 5; i++) await a.sayOk(`hello ${i}`);
  await until(() => b.messages.length === 5, 5000, 'Ben to get 5 messages across nodes');
  b.ws.send('not json'); // chat_frames_rejected_total{reason="invalid_json"}

  // A member on node1 stops reading while node0 floods the group: closed for not reading.
  const slow = await JsonChat.open(n1);
  await slow.join('Slow', groupId, 'pw');
  (slow.ws.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const cut = n1.waitLog('slow consumer closed', 60_000);
  let isCut = false;
  cut.then(
    () => (isCut = true),
    () => undefined, // awaited (with its own deadline) below
  );
  const flood = await WsClient.connect(n0.wsUrl, 'chat.json');
  flood.sendJson({ op: 'join', name: 'Flood', groupId, password: 'pw' });
  await flood.nextOfType('joined');
  // Windows of 25 × 2 KB stay under the per-connection input bound (MAX_QUEUED_INPUT_BYTES, 64 KiB)
  // however slowly the node works; each send is answered (ack, or an error frame if refused).
  const text = 'x'.repeat(2000);
  const answered = (f: string): boolean => /^\{"type":"(ack|error)"/.test(f);
  for (let sent = 0; !isCut && sent < 20_000; sent += 25) {
    for (let i = 0; i < 25; i++) flood.sendJson({ op: 'send', text });
    for (let i = 0; i < 25; i++) await flood.frames.next(10_000, 'an answer to a send', answered);
  }
  await within(cut, 30_000, 'the slow consumer to be closed');
  flood.close();

  // Redis lost for a moment: not ready, a failed publish; back: a reconnect.
  await cl.redis.stop('SIGKILL');
  await until(async () => (await n0.http('/readyz')).status === 503, 5000, 'node0 /readyz 503');
  assert.deepEqual(await a.say('lost?'), { error: 'unavailable' });
  await until(async () => (await query('min(chat_ready)')).result[0]?.value[1] === '0', 10_000, 'Prometheus to see a node not ready');
  await cl.redis.restart();
  await until(async () => (await n0.http('/readyz')).status === 200 && (await n1.http('/readyz')).status === 200, 10_000, '/readyz 200 again');
  await a.sayOk('back');
  a.ws.close();
  b.ws.close();
}

test('every panel query returns data from a live Prometheus scraping live gateways', { skip }, async () => {
  await exercise();
  // Every metric name a panel uses is one the gateways really export.
  const exported = new Set(
    (await cl.nodes[0]!.http('/metrics', cl.nodes[0]!.metricsPort)).body.match(/^# TYPE \S+/gm)?.map((l) => l.slice('# TYPE '.length)) ?? [],
  );
  for (const p of queryPanels)
    for (const t of p.targets ?? [])
      for (const name of t.expr.match(/\b(chat|nodejs|process)_[a-z0-9_]+/g) ?? [])
        assert.ok(exported.has(name.replace(/_bucket$/, '')), `${p.title}: ${name} is not exported by the gateway`);

  const all = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: concrete(t.expr) })));
  const empty = new Map<string, string>();
  // Rates need traffic between two scrapes: a loaded machine may scrape first only after the exercise ended.
  const ticker = await JsonChat.open(cl.nodes[0]!);
  const tickerGroup = await ticker.create('Tick', 'pw');
  const listener = await JsonChat.open(cl.nodes[1]!);
  await listener.join('Tock', tickerGroup, 'pw');
  try {
    await until(
      async () => {
        await ticker.sayOk('tick');
        empty.clear();
        for (const q of all) {
          const r = await query(q.expr);
          const finite = r.result.filter((s) => Number.isFinite(Number(s.value[1])));
          if (finite.length === 0) empty.set(`${q.panel}: ${q.expr}`, JSON.stringify(r.result));
        }
        return empty.size === 0;
      },
      30_000,
      'every panel query to return data',
    );
  } catch (e) {
    assert.fail(`${(e as Error).message}; still without data:\n${[...empty].map(([k, v]) => `  ${k} → ${v}`).join('\n')}`);
  }
  ticker.ws.close();
  listener.ws.close();
  // The events behind the rarer panels are really there, by label (every label value exists from 0: count the ones above it).
  const labels = async (q: string, label: string): Promise<string[]> =>
    (await query(q)).result
      .filter((s) => Number(s.value[1]) > 0)
      .map((s) => s.metric[label] ?? '')
      .sort();
  assert.ok((await labels('sum by (result) (chat_joins_total)', 'result')).includes('wrong_password'));
  assert.ok((await labels('sum by (reason) (chat_admission_refusals_total)', 'reason')).includes('lockout'));
  assert.ok((await labels('sum by (reason) (chat_frames_rejected_total)', 'reason')).includes('invalid_json'));
  assert.ok((await labels('sum by (transport) (chat_slow_consumer_disconnects_total)', 'transport')).includes('ws_json'));
  assert.ok((await labels('sum by (op) (chat_engine_errors_total)', 'op')).includes('publish'));
  await until(async () => Number((await query('sum(chat_redis_reconnects_total)')).result[0]?.value[1]) > 0, 10_000, 'reconnects counted');
  assert.ok(Number((await query(concrete('histogram_quantile(0.99, sum by (le) (rate(chat_fanout_latency_seconds_bucket[1m])))'))).result[0]?.value[1]) > 0);
  // The node variable lists both gateways.
  assert.deepEqual((await api<string[]>(`/api/v1/label/node/values?match[]=chat_ready`)).sort(), ['node0', 'node1']);
});

test('the alert rules are loaded and evaluate without errors', { skip }, async () => {
  const rules = parse(readFileSync(resolve(REPO, 'deploy/prometheus/alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string }> }> };
  const want = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).sort();
  type Rules = { groups: Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string }> }> };
  let loaded: Rules['groups'][number]['rules'] = [];
  await until(
    async () => {
      loaded = (await api<Rules>('/api/v1/rules?type=alert')).groups.flatMap((g) => g.rules);
      return loaded.length === want.length && loaded.every((r) => r.health === 'ok');
    },
    10_000,
    'every rule loaded and evaluated (health ok)',
  );
  assert.deepEqual(loaded.map((r) => r.name).sort(), want);
});

test('killing a gateway makes ChatGatewayDown pending (then firing after its for:)', { skip }, async () => {
  const victim = cl.nodes[1]!;
  const instance = `127.0.0.1:${victim.metricsPort}`;
  await victim.stop('SIGKILL');
  type Alerts = { alerts: Array<{ labels: Record<string, string>; state: string }> };
  let state = '';
  await until(
    async () => {
      const a = (await api<Alerts>('/api/v1/alerts')).alerts.find((x) => x.labels['alertname'] === 'ChatGatewayDown' && x.labels['instance'] === instance);
      state = a?.state ?? '';
      return state === 'pending' || state === 'firing';
    },
    15_000,
    `ChatGatewayDown for ${instance}`,
  );
  // The live gateway is not reported down.
  const others = (await api<Alerts>('/api/v1/alerts')).alerts.filter((x) => x.labels['alertname'] === 'ChatGatewayDown' && x.labels['instance'] !== instance);
  assert.deepEqual(others, []);
});
