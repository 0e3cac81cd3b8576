// A member that stops reading is closed once its queue passes the bound; the
// rest of the group gets every message and the node's memory stays bounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { startGateway } from '../helpers/gateway.js';
import { parseMetrics, rssBytes } from '../helpers/proc.js';
import { within } from '../helpers/wait.js';

const RSS_BOUND = 160 * 1024 * 1024;

test('slow consumers (WS and TCP) are cut off; a normal member misses nothing; RSS stays bounded', async (t) => {
  const gw = await startGateway({ env: { RATE_LIMIT_PER_SEC: '0', MAX_BACKPRESSURE_BYTES: String(256 * 1024) } });
  try {
    const a = await WsClient.connect(gw.wsUrl, 'chat.json');
    a.sendJson({ op: 'create', name: 'Sender', password: 'pw' });
    const { groupId } = await a.nextOfType<{ groupId: string }>('created');
    const normal = await WsClient.connect(gw.wsUrl, 'chat.json');
    normal.sendJson({ op: 'join', name: 'Normal', groupId, password: 'pw' });
    await normal.nextOfType('joined');
    const slowWs = await WsClient.connect(gw.wsUrl, 'chat.json');
    slowWs.sendJson({ op: 'join', name: 'SlowWs', groupId, password: 'pw' });
    await slowWs.nextOfType('joined');
    const slowTcp = await LineClient.connect(gw.tcpPort);
    await slowTcp.nextLines(4);
    for (const say of ['1', 'SlowTcp', groupId, 'pw']) slowTcp.send(say);
    await slowTcp.until(`Hi SlowTcp! welcome to group ${groupId}!`);
    // Both stop reading: the kernel buffers fill, then the gateway's queue.
    const slowSocket = (slowWs.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    slowSocket.pause();
    slowTcp.socket.pause();

    let received = 0;
    let lastSeq = 0;
    normal.ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as { type: string; seq?: number };
      if (m.type !== 'message') return;
      assert.equal(m.seq, lastSeq + 1, 'the normal member sees every seq in order');
      lastSeq = m.seq as number;
      received++;
    });
    const cutWs = gw.waitLog('slow consumer closed', 60_000, (l) => l['transport'] === 'ws_json');
    const cutTcp = gw.waitLog('slow consumer closed', 60_000, (l) => l['transport'] === 'tcp');
    const text = 'x'.repeat(2000);
    let sent = 0;
    let cut = 0;
    void cutWs.then(() => cut++);
    void cutTcp.then(() => cut++);
    // Bounded: at most 20,000 messages (40 MB of text), sent in windows of 200 acks.
    let peak = 0;
    while (cut < 2 && sent < 20_000) {
      for (let i = 0; i < 200; i++) a.sendJson({ op: 'send', text });
      sent += 200;
      for (let i = 0; i < 200; i++) await a.nextOfType('ack', 10_000);
      peak = Math.max(peak, rssBytes(gw.proc.pid as number));
    }
    await within(Promise.all([cutWs, cutTcp]), 30_000, 'both slow consumers to be closed');
    slowSocket.resume(); // read again: the backlog, then the end of the connection
    await within(slowWs.closed, 10_000, 'slow WS client to see the close');
    await normal.frames.next(30_000, 'the last message', () => lastSeq === sent);
    assert.equal(received, sent);
    assert.ok(peak < RSS_BOUND, `peak RSS ${peak} under ${RSS_BOUND}`);
    t.diagnostic(`sent ${sent} messages of 2,000 chars; peak gateway RSS ${(peak / 2 ** 20).toFixed(1)} MiB (bound ${RSS_BOUND / 2 ** 20} MiB)`);
    const m = parseMetrics(await (await fetch(`http://127.0.0.1:${gw.metricsPort}/metrics`)).text());
    assert.equal(m.get('chat_slow_consumer_disconnects_total{transport="ws_json"}'), 1);
    assert.equal(m.get('chat_slow_consumer_disconnects_total{transport="tcp"}'), 1);
    a.close();
    normal.close();
  } finally {
    await gw.stop();
  }
});
