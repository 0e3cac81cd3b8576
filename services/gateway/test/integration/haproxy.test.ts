// The real shape: Redis + three gateways + HAProxy (deploy/haproxy/haproxy.cfg),
// all started here. Clients go through the balancer, land on different nodes,
// chat as one; the client address survives the proxy (PROXY v1 / XFF); a
// draining node leaves the balancer and its clients come back elsewhere.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { HaProxy } from '../helpers/haproxy.js';
import { RedisServer } from '../helpers/redis.js';
import { until, within } from '../helpers/wait.js';

const haveHaproxy = spawnSync('sh', ['-c', 'command -v haproxy']).status === 0;
if (!haveHaproxy && process.env['CI']) throw new Error('haproxy is required in CI (.ci/run installs it)');

const MENU = 'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.';
let redis: RedisServer;
let gws: Gateway[] = [];
let lb: HaProxy;

/** Which gateway logged a connection from this client address. */
const hostOf = (remote: string): number => gws.findIndex((g) => g.output.some((l) => l.includes('[CLIENT CONNECTED]') && l.includes(`"remote":"${remote}"`)));

async function menuJoin(c: LineClient, name: string, groupId: string): Promise<void> {
  assert.equal(await c.nextLines(4), MENU);
  for (const [say, hear] of [
    ['1', 'Enter your name: '],
    [name, 'Enter group ID: '],
    [groupId, 'Enter password: '],
    ['pw', `Hi ${name}! welcome to group ${groupId}!`],
  ] as const) {
    c.send(say);
    assert.equal(await c.next(), hear);
  }
}

before(async () => {
  if (!haveHaproxy) return;
  redis = await RedisServer.start();
  gws = await Promise.all(
    [1, 2, 3].map((i) => gatewayOn('redis', { redis, env: { NODE_ID: `gw${i}`, TRUSTED_PROXIES: '127.0.0.1', DRAIN_SECONDS: '1' } })),
  );
  lb = await HaProxy.start(gws);
});

after(async () => {
  if (!haveHaproxy) return;
  await lb?.stop();
  await Promise.all(gws.map((g) => g.stop()));
  await redis?.close();
});

test('through HAProxy: spread over nodes, one chat, real client addresses, drain moves clients', { skip: !haveHaproxy && 'haproxy not installed' }, async () => {
  // A (TCP, from 127.0.0.2) creates; B (WS JSON, from 127.0.0.3) and C (TCP, from 127.0.0.4) join.
  const a = await LineClient.connect(lb.tcp, '127.0.0.2');
  assert.equal(await a.nextLines(4), MENU);
  for (const [say, hear] of [
    ['2', 'Enter your name: '],
    ['Ann', 'Enter a new password for your group:'],
    ['pw', 'Chat 0 has been created.'],
  ] as const) {
    a.send(say);
    assert.equal(await a.next(), hear);
  }
  let b = await WsClient.connect(`ws://127.0.0.1:${lb.ws}/`, 'chat.json', {}, '127.0.0.3');
  b.sendJson({ op: 'join', name: 'Bea', groupId: '0', password: 'pw' });
  const { token } = await b.nextOfType<{ token: string }>('joined');
  await a.until('Bea has joined the chat!');
  const c = await LineClient.connect(lb.tcp, '127.0.0.4');
  await menuJoin(c, 'Cy', '0');
  await a.until('Cy has joined the chat!');

  // The gateways saw the clients' own addresses, not HAProxy's (PROXY v1 for TCP, X-Forwarded-For for WS).
  await until(() => ['127.0.0.2', '127.0.0.3', '127.0.0.4'].every((r) => hostOf(r) >= 0), 5000, 'connection logs');
  const hosts = new Set(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map(hostOf));
  assert.ok(hosts.size >= 2, `leastconn spread three clients over ${hosts.size} node(s)`);

  c.send('hello from Cy');
  await a.until('Cy: hello from Cy');
  const m = await b.nextOfType<{ text: string; seq: number }>('message');
  assert.deepEqual([m.text, m.seq], ['hello from Cy', 1]);

  // Drain A's node: A is told, the balancer takes the node out, A comes back elsewhere.
  const drained = hostOf('127.0.0.2');
  const gw = gws[drained] as Gateway;
  gw.proc.kill('SIGTERM');
  await a.until('The server is restarting, please reconnect.', 10_000);
  await within(a.closed, 10_000, 'A disconnected by the drain');
  await lb.waitStatus([`gw${drained + 1}`], 'DOWN', 15_000);
  assert.equal((await within(gw.exited, 10_000, 'drained gateway exit')).code, 0);
  if (hostOf('127.0.0.3') === drained) {
    // B shared the node: closed with 1012, it resumes through the balancer with its token.
    assert.equal((await within(b.closed, 5000, 'B closed by the drain')).code, 1012);
    b = await WsClient.connect(`ws://127.0.0.1:${lb.ws}/`, 'chat.json');
    b.sendJson({ op: 'resume', token, since: 1 });
    await b.nextOfType('joined');
  }

  const back = await LineClient.connect(lb.tcp, '127.0.0.5');
  await menuJoin(back, 'Ann', '0');
  assert.equal(await back.next(), 'Cy: hello from Cy', 'history on rejoin');
  await until(() => hostOf('127.0.0.5') >= 0, 5000, 'rejoin log');
  assert.notEqual(hostOf('127.0.0.5'), drained, 'the balancer sent A to a live node');
  back.send('back again');
  await c.until('Ann: back again');
  const m2 = await b.frames.next(5000, 'back again', (f) => f.includes('back again'));
  assert.equal((JSON.parse(m2) as { seq: number }).seq, 2);
  for (const x of [b, c, back]) x.close();
});
