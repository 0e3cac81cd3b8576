// Every limit: exceeded → the documented error or close code; the node keeps serving.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import WebSocket from 'ws';
import { LineClient, RawClient, WsClient } from '../helpers/clients.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

async function member(gw: Gateway, name: string, create = true, groupId = ''): Promise<{ c: WsClient; groupId: string }> {
  const c = await WsClient.connect(gw.wsUrl, 'chat.json');
  await c.nextOfType('menu');
  c.sendJson(create ? { op: 'create', name, password: 'p' } : { op: 'join', name, groupId, password: 'p' });
  const j = await c.nextOfType<{ groupId: string }>('joined');
  return { c, groupId: j.groupId };
}

test('rate limit: a burst beyond the bucket gets rate_limited; sustained abuse closes with 1008', async () => {
  const gw = await startGateway({ env: { RATE_LIMIT_PER_SEC: '1', RATE_LIMIT_BURST: '5' } });
  try {
    const { c, groupId } = await member(gw, 'Spam');
    for (let i = 0; i < 8; i++) c.sendJson({ op: 'send', text: `m${i}`, id: i });
    const seen: string[] = [];
    for (let i = 0; i < 8; i++) {
      const e = await c.nextJson<{ type: string; code?: string; id: number }>();
      seen.push(`${e.code ?? e.type}:${e.id}`);
    }
    // In send order, each answer naming its message: five acks, then three refusals.
    assert.deepEqual(seen, ['ack:0', 'ack:1', 'ack:2', 'ack:3', 'ack:4', 'rate_limited:5', 'rate_limited:6', 'rate_limited:7']);
    for (let i = 0; i < 10; i++) c.sendJson({ op: 'send', text: 'more' });
    assert.equal((await within(c.closed, 5000, 'close for abuse')).code, 1008);
    // Others are unaffected.
    const { c: d } = await member(gw, 'Calm', false, groupId);
    d.sendJson({ op: 'send', text: 'fine' });
    await d.nextOfType('ack');
    d.close();
  } finally {
    await gw.stop();
  }
});

test('wrong-password lockout: guessers are refused, a password already verified still gets in', async () => {
  const gw = await startGateway({ env: { AUTH_MAX_FAILURES: '3', AUTH_LOCKOUT_SECONDS: '60' } });
  try {
    const { c: owner, groupId } = await member(gw, 'Owner');
    const attempt = async (password: string): Promise<string> => {
      const c = await WsClient.connect(gw.wsUrl, 'chat.json');
      c.sendJson({ op: 'join', name: 'X', groupId, password });
      const r = JSON.parse(await c.frames.next(5000, 'join answer', (f) => /"joined"|"error"/.test(f))) as { type: string; code?: string };
      c.close();
      return r.code ?? r.type;
    };
    assert.equal(await attempt('p'), 'joined'); // verified once on this node
    for (let i = 0; i < 3; i++) assert.equal(await attempt('guess'), 'wrong_password');
    assert.equal(await attempt('guess'), 'rate_limited', 'locked after AUTH_MAX_FAILURES');
    assert.equal(await attempt('p'), 'joined', 'the right, already verified password is not locked out');
    owner.close();
  } finally {
    await gw.stop();
  }
});

test('parallel wrong guesses cannot get past AUTH_MAX_FAILURES', async () => {
  const gw = await startGateway({ env: { AUTH_MAX_FAILURES: '3', AUTH_LOCKOUT_SECONDS: '60' } });
  try {
    const { c: owner, groupId } = await member(gw, 'Owner');
    const guessers = await Promise.all(Array.from({ length: 20 }, () => WsClient.connect(gw.wsUrl, 'chat.json')));
    guessers.forEach((c, i) => c.sendJson({ op: 'join', name: 'G', groupId, password: `guess-${i}` }));
    const answers = await Promise.all(
      guessers.map(async (c) => (JSON.parse(await c.frames.next(10_000, 'answer', (f) => f.includes('"error"'))) as { code: string }).code),
    );
    assert.equal(answers.filter((a) => a === 'wrong_password').length, 3, 'only three guesses were checked');
    assert.equal(answers.filter((a) => a === 'rate_limited').length, 17);
    for (const c of guessers) c.close();
    owner.close();
  } finally {
    await gw.stop();
  }
});

test('the default rate limit lets a member send 10 messages a second', async () => {
  const gw = await startGateway();
  try {
    const { c } = await member(gw, 'Typist');
    let sent = 0;
    await new Promise<void>((res) => {
      const t = setInterval(() => {
        c.sendJson({ op: 'send', text: `n${sent}` });
        if (++sent === 30) {
          clearInterval(t);
          res();
        }
      }, 100);
    });
    for (let i = 0; i < 30; i++) assert.equal((await c.nextJson<{ type: string }>()).type, 'ack');
    c.close();
  } finally {
    await gw.stop();
  }
});

test('connections per client IP, from X-Forwarded-For and PROXY v1 of trusted proxies only', async () => {
  const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1,::1' } });
  try {
    const xff = { 'x-forwarded-for': '203.0.113.9' };
    const a = await WsClient.connect(gw.wsUrl, undefined, xff);
    const b = await WsClient.connect(gw.wsUrl, undefined, xff);
    await assert.rejects(WsClient.connect(gw.wsUrl, undefined, xff), /429/);
    const other = await WsClient.connect(gw.wsUrl, undefined, { 'x-forwarded-for': '203.0.113.10' });
    // Plain loopback clients (no proxy header) are never limited.
    const plain = await Promise.all([1, 2, 3].map(() => WsClient.connect(gw.wsUrl)));
    // The same client through the TCP listener, named by a PROXY header: over the limit.
    const tcp = await RawClient.connect(gw.tcpPort);
    tcp.send('PROXY TCP4 203.0.113.9 127.0.0.1 40000 7037\r\n');
    await tcp.expect('Too many connections from your address, try again later!\n');
    await within(tcp.closed, 5000, 'refused TCP connection to close');
    a.close();
    await a.closed;
    // Once one closes, the address may connect again, and the PROXY header is not chat input.
    const again = await LineClient.connect(gw.tcpPort);
    again.socket.write('PROXY TCP4 203.0.113.9 127.0.0.1 40001 7037\r\n');
    assert.equal(await again.nextLines(4), 'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.');
    again.send('3');
    assert.equal(await again.next(), 'You have disconnected from the server.');
    for (const c of [b, other, ...plain]) c.close();
  } finally {
    await gw.stop();
  }
});

test('a client cannot pick its address with an X-Forwarded-For of its own: the proxy-appended hop counts', async () => {
  const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '2', TRUSTED_PROXIES: '127.0.0.1' } });
  try {
    // As behind a proxy that appends a header: the client's own (forged) one comes first.
    const via = (forged: string): Record<string, string> => ({ 'x-forwarded-for': [forged, '203.0.113.9'] as unknown as string });
    const a = await WsClient.connect(gw.wsUrl, undefined, via('9.9.9.1'));
    const b = await WsClient.connect(gw.wsUrl, undefined, via('9.9.9.2'));
    await assert.rejects(WsClient.connect(gw.wsUrl, undefined, via('9.9.9.3')), /429/);
    a.close();
    b.close();
  } finally {
    await gw.stop();
  }
});

test('X-Forwarded-For from an untrusted peer is ignored', async () => {
  const gw = await startGateway({ env: { MAX_CONNECTIONS_PER_IP: '1' } });
  try {
    const xff = { 'x-forwarded-for': '203.0.113.9' };
    // Believed, the header would put all three under one address with a cap of 1: the second and third would get 429.
    const conns = await Promise.all([1, 2, 3].map(() => WsClient.connect(gw.wsUrl, undefined, xff)));
    for (let i = 0; i < 3; i++) {
      const line = await gw.waitLog('[CLIENT CONNECTED]', 5000);
      assert.equal(line['remote'], '127.0.0.1', 'the socket peer, not the forged header');
    }
    for (const c of conns) c.close();
  } finally {
    await gw.stop();
  }
});

test('WebSocket Origin allowlist', async () => {
  const gw = await startGateway({ env: { ALLOWED_ORIGINS: 'https://chat.example,https://app.example' } });
  try {
    const ok = await WsClient.connect(gw.wsUrl, undefined, { origin: 'https://app.example' });
    await assert.rejects(WsClient.connect(gw.wsUrl, undefined, { origin: 'https://evil.example' }), /403/);
    const cli = await WsClient.connect(gw.wsUrl); // no Origin: not a browser
    ok.close();
    cli.close();
  } finally {
    await gw.stop();
  }
});

test('sessions stuck in the menu are closed after MENU_TIMEOUT_SECONDS; members in a group are not', async () => {
  const gw = await startGateway({ env: { MENU_TIMEOUT_SECONDS: '1' } });
  try {
    const { c: chatting } = await member(gw, 'Stays');
    const t = await LineClient.connect(gw.tcpPort);
    await t.nextLines(4);
    t.send('2'); // answering prompts does not count as being in a group
    await t.next();
    const j = await WsClient.connect(gw.wsUrl, 'chat.json');
    assert.equal(await t.next(3000), 'You have been idle too long, bye!');
    await within(t.closed, 3000, 'TCP idle close');
    assert.equal((await within(j.closed, 3000, 'WS idle close')).code, 4408);
    chatting.sendJson({ op: 'send', text: 'still here' });
    await chatting.nextOfType('ack');
    chatting.close();
  } finally {
    await gw.stop();
  }
});

test('a WebSocket peer that stops answering pings is reaped after IDLE_TIMEOUT_SECONDS', async () => {
  const gw = await startGateway({ env: { IDLE_TIMEOUT_SECONDS: '8' } });
  try {
    const mute = new WebSocket(gw.wsUrl, { autoPong: false });
    const closed = new Promise<number>((res) => mute.once('close', (code) => res(code)));
    await new Promise((res) => mute.once('open', res));
    const alive = await WsClient.connect(gw.wsUrl); // answers pings (ws default)
    const code = await within(closed, 30_000, 'the silent peer to be closed');
    assert.notEqual(code, 1000);
    assert.equal(alive.ws.readyState, WebSocket.OPEN, 'a peer that answers pings stays');
    alive.close();
  } finally {
    await gw.stop();
  }
});

test('oversized TCP input without a newline is bounded (no unbounded buffering)', async () => {
  const gw = await startGateway({ env: { MAX_FRAME_BYTES: '1024' } });
  try {
    const s = connect(gw.tcpPort, '127.0.0.1');
    const lines: string[] = [];
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      lines.push(...buf.split('\n').slice(0, -1));
      buf = buf.split('\n').pop() ?? '';
    });
    await new Promise((r) => s.once('connect', r));
    s.write('a\n'); // line framing
    for (let i = 0; i < 100; i++) s.write('x'.repeat(10_000)); // 1 MB, never a newline
    s.write('\n2\n');
    const t0 = Date.now();
    while (!lines.includes('Enter your name: ') && Date.now() - t0 < 5000) await new Promise((r) => s.once('data', r));
    assert.ok(lines.includes('Message too long, try again! '));
    assert.ok(lines.includes('Enter your name: '));
    s.destroy();
  } finally {
    await gw.stop();
  }
});
