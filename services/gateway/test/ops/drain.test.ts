// SIGTERM drains: /readyz 503 at once, new clients refused, existing ones closed
// with 1012 (TCP: a restart line) spread over DRAIN_SECONDS, then exit 0.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { startGateway } from '../helpers/gateway.js';
import { until, within } from '../helpers/wait.js';

test('SIGTERM: readyz 503, clients get 1012 spread over the window, exit 0', async () => {
  const gw = await startGateway({ env: { DRAIN_SECONDS: '2' } });
  const owner = await WsClient.connect(gw.wsUrl, 'chat.json');
  owner.sendJson({ op: 'create', name: 'O', password: 'p' });
  await owner.nextOfType('joined');
  const others = [await WsClient.connect(gw.wsUrl, 'chat.json'), await WsClient.connect(gw.wsUrl), await WsClient.connect(gw.wsUrl, 'chat.text')];
  const tcp = await LineClient.connect(gw.tcpPort);
  await tcp.nextLines(4);
  const closedAt: number[] = [];
  const wsClients = [owner, ...others];
  for (const c of wsClients) void c.closed.then(() => closedAt.push(Date.now()));
  void tcp.closed.then(() => closedAt.push(Date.now()));

  assert.equal((await gw.http('/readyz')).status, 200);
  assert.equal((await gw.http('/readyz/balancer')).status, 200);
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  await until(async () => (await gw.http('/readyz')).status === 503, 2000, '/readyz to turn 503');
  assert.equal((await gw.http('/healthz')).status, 200, 'healthz still answers while draining');
  // The balancer's check says 404 while draining (HAProxy disable-on-404: no new clients, sessions kept).
  assert.deepEqual(await gw.http('/readyz/balancer'), { status: 404, body: 'draining\n' });
  await assert.rejects(WsClient.connect(gw.wsUrl), /503/, 'new WebSocket upgrades are refused');
  // A new TCP connection is refused or cut without a menu.
  const refused = await new Promise<string>((res) => {
    const s = connect(gw.tcpPort, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('error', () => res('error'));
    s.on('close', () => res(got));
  });
  assert.ok(!refused.includes('Hello client'), 'no menu for a connection during drain');

  const codes = await within(Promise.all(wsClients.map((c) => c.closed)), 10_000, 'every WebSocket client to be closed');
  assert.deepEqual(
    codes.map((c) => c.code),
    [1012, 1012, 1012, 1012],
  );
  assert.equal(await tcp.until('The server is restarting, please reconnect.', 10_000), 'The server is restarting, please reconnect.');
  await within(tcp.closed, 10_000, 'TCP client closed');
  const exit = await within(gw.exited, 10_000, 'gateway exit');
  assert.equal(exit.code, 0);
  const spread = Math.max(...closedAt) - Math.min(...closedAt);
  assert.ok(spread >= 500, `closes are spread over the window (spread ${spread} ms)`);
  assert.ok(Math.max(...closedAt) - t0 <= 2000 + 3000, 'all closed within the window (plus slack)');
});

test('a second SIGTERM ends the drain at once', async () => {
  const gw = await startGateway({ env: { DRAIN_SECONDS: '60' } });
  const a = await WsClient.connect(gw.wsUrl);
  const b = await WsClient.connect(gw.wsUrl);
  await a.next();
  await b.next();
  gw.proc.kill('SIGTERM');
  await gw.waitLog('[DRAINING]');
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  const exit = await within(gw.exited, 5000, 'exit after the second SIGTERM');
  assert.equal(exit.code, 0);
  assert.ok(Date.now() - t0 < 5000);
});
