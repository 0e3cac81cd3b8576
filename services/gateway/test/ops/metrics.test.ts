// /metrics moves by exactly what a scripted chat did; promtool accepts it; no
// password or message text leaks into logs or metrics.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { parseMetrics } from '../helpers/proc.js';

const PASSWORD = 'pw-Zq8sK2';
const TEXTS = ['txt-Alpha-91', 'txt-Bravo-92', 'txt-Charlie-93', 'txt-Delta-94', 'txt-Echo-95'];

const promtool = (): string | null => {
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};

test('metrics move by exactly the scripted amounts', async (t) => {
  const gw = await startGateway();
  const scrape = async (): Promise<{ text: string; m: Map<string, number> }> => {
    const text = await (await fetch(`http://127.0.0.1:${gw.metricsPort}/metrics`)).text();
    return { text, m: parseMetrics(text) };
  };
  try {
    const before = (await scrape()).m;
    const delta = (m: Map<string, number>, k: string): number => (m.get(k) ?? 0) - (before.get(k) ?? 0);

    const a = await WsClient.connect(gw.wsUrl, 'chat.json');
    await a.nextOfType('menu');
    a.send('{garbage');
    await a.nextOfType('error');
    a.sendJson({ op: 'create', name: 'Alice', password: PASSWORD });
    const { groupId } = await a.nextOfType<{ groupId: string }>('created');
    await a.nextOfType('joined');

    const b = await LineClient.connect(gw.tcpPort);
    await b.nextLines(4);
    b.send('1');
    await b.next();
    b.send('Bob');
    await b.next();
    b.send('42');
    assert.equal(await b.next(), 'Wrong ID, try again! ');
    b.send(groupId);
    await b.next();
    b.send('not-it');
    assert.equal(await b.next(), 'Wrong password. Please try again! ');
    b.send(PASSWORD);
    await b.until(`Hi Bob! welcome to group ${groupId}!`);
    await a.nextOfType('member_joined');

    const mid = (await scrape()).m;
    assert.equal(mid.get('chat_connections{transport="ws_json"}'), 1);
    assert.equal(mid.get('chat_connections{transport="tcp"}'), 1);
    assert.equal(mid.get('chat_sessions{state="chat"}'), 2);
    assert.equal(mid.get('chat_subscriptions'), 1);
    assert.equal(mid.get('chat_engine_up'), 1);

    for (const text of TEXTS.slice(0, 3)) {
      a.sendJson({ op: 'send', text });
      await a.nextOfType('ack');
      await b.until(`Alice: ${text}`);
    }
    for (const text of TEXTS.slice(3)) {
      b.send(text);
      await a.frames.next(5000, text, (f) => f.includes(text));
    }
    a.sendJson({ op: 'exit' });
    await a.closed;
    b.close();
    await b.closed;
    // The sessions gauge settles once both disconnects are processed.
    let after = (await scrape()).m;
    for (let i = 0; i < 50 && after.get('chat_sessions{state="chat"}') !== 0; i++) after = (await scrape()).m;

    const expect: Record<string, number> = {
      chat_groups_created_total: 1,
      'chat_joins_total{result="ok"}': 1,
      'chat_joins_total{result="unknown_group"}': 1,
      'chat_joins_total{result="wrong_password"}': 1,
      'chat_messages_received_total{transport="ws_json"}': 3,
      'chat_messages_received_total{transport="tcp"}': 2,
      chat_messages_published_total: 5,
      'chat_messages_delivered_total{transport="tcp"}': 3,
      'chat_messages_delivered_total{transport="ws_json"}': 2,
      'chat_messages_delivered_total{transport="ws_text"}': 0,
      chat_fanout_latency_seconds_count: 5,
      'chat_frames_rejected_total{reason="invalid_json"}': 1,
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(delta(after, k), v, k);
    assert.equal(after.get('chat_sessions{state="chat"}'), 0);
    assert.equal(after.get('chat_connections{transport="tcp"}'), 0);
    assert.equal(after.get('chat_subscriptions'), 0);
    assert.ok((after.get('process_resident_memory_bytes') ?? 0) > 0, 'default process metrics are there');

    const { text } = await scrape();
    assert.match(text, /chat_joins_total\{result="ok",node="[^"]+"\} 1/);
    for (const secret of [PASSWORD, ...TEXTS]) {
      assert.ok(!text.includes(secret), `metrics leak ${secret}`);
      const leak = gw.output.find((l) => l.includes(secret));
      assert.equal(leak, undefined, `log line leaks ${secret}`);
    }

    const tool = promtool();
    if (tool === null) {
      if (process.env['CI']) assert.fail('promtool is required in CI (.ci/run installs prometheus)');
      t.diagnostic('promtool not installed: skipped `promtool check metrics`');
    } else {
      // Exit 1 = unparsable, 3 = lint problems. prom-client's own default gauges
      // nodejs_active_*_total trip the "_total" lint; ours must be clean.
      const r = spawnSync(tool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status}: ${r.stderr}${r.stdout}`);
      const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
      const ours = problems.filter((l) => !/^nodejs_active_(handles|requests|resources)_total /.test(l));
      assert.deepEqual(ours, []);
    }
  } finally {
    await gw.stop();
  }
});

const authCacheHits = async (gw: Gateway): Promise<number> =>
  parseMetrics(await (await fetch(`http://127.0.0.1:${gw.metricsPort}/metrics`)).text()).get('chat_auth_cache_hits_total') ?? NaN;

async function createGroup(gw: Gateway): Promise<{ a: WsClient; groupId: string }> {
  const a = await WsClient.connect(gw.wsUrl, 'chat.json');
  a.sendJson({ op: 'create', name: 'A', password: PASSWORD });
  const { groupId } = await a.nextOfType<{ groupId: string }>('created');
  return { a, groupId };
}

test('a successful password check is cached per node: the second join skips scrypt', async () => {
  const gw = await startGateway();
  try {
    const hits = (): Promise<number> => authCacheHits(gw);
    const { a, groupId } = await createGroup(gw);
    const join = async (password: string): Promise<string> => {
      const c = await WsClient.connect(gw.wsUrl, 'chat.json');
      c.sendJson({ op: 'join', name: 'B', groupId, password });
      const r = await c.frames.next(5000, 'join result', (f) => f.includes('"joined"') || f.includes('"error"'));
      c.close();
      return (JSON.parse(r) as { type: string }).type;
    };
    assert.equal(await join(PASSWORD), 'joined');
    assert.equal(await hits(), 0);
    assert.equal(await join(PASSWORD), 'joined');
    assert.equal(await hits(), 1);
    assert.equal(await join('wrong'), 'error', 'the cache never admits a wrong password');
    assert.equal(await hits(), 1);
    a.close();
  } finally {
    await gw.stop();
  }
});

test('a join storm with one password runs scrypt once: the other joins share it', async () => {
  // The production cost makes a difference visible: 20 scrypts at N=2^17 would take seconds.
  const gw = await startGateway({ env: { SCRYPT_N: '131072' } });
  try {
    const hits = (): Promise<number> => authCacheHits(gw);
    const { a, groupId } = await createGroup(gw);
    const clients = await Promise.all(Array.from({ length: 20 }, () => WsClient.connect(gw.wsUrl, 'chat.json')));
    for (const [i, c] of clients.entries()) c.sendJson({ op: 'join', name: `m${i}`, groupId, password: PASSWORD });
    for (const c of clients) await c.nextOfType('joined', 30_000);
    assert.equal(await hits(), 19, 'one scrypt for twenty joins');
    for (const c of clients) c.close();
    a.close();
  } finally {
    await gw.stop();
  }
});

test('/healthz and /readyz answer on PORT; /metrics only on METRICS_PORT', async () => {
  const gw = await startGateway();
  try {
    assert.deepEqual(await gw.http('/healthz'), { status: 200, body: 'ok\n' });
    assert.deepEqual(await gw.http('/readyz'), { status: 200, body: 'ready\n' });
    assert.deepEqual(await gw.http('/readyz/balancer'), { status: 200, body: 'ready\n' });
    assert.equal((await gw.http('/metrics')).status, 404);
    assert.equal((await gw.http('/metrics', gw.metricsPort)).status, 200);
  } finally {
    await gw.stop();
  }
});
