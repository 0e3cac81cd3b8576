// The small ones (issue 8, item 7), against real gateways: one node per port and per DATA_DIR
// (a second one exits 2 with a clear log line), a character split across two reads in the
// seed client's raw framing, and names made only of zero-width characters.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LineClient, RawClient, WsClient } from '../helpers/clients.js';
import { Gateway, MAIN, freePort, startGateway, tempDir } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';
import { truncatedUtf8Tail } from '../../src/transport/tcp.js';

const MENU = 'Hello client, please choose an option:\n1. Connect to a group chat\n2. Create a group chat.\n3. Exit the server.';

/** Start a gateway that is expected to refuse to start: its exit code and output. */
async function startRefused(env: Record<string, string>): Promise<{ code: number | null; output: string[]; listened: boolean }> {
  const proc = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const gw = new Gateway(proc, env);
  try {
    const { code } = await within(gw.exited, 15_000, 'the second gateway to exit');
    return { code, output: gw.output, listened: gw.output.some((l) => l.includes('[LISTENING]')) };
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
}

/** The env of another gateway (as startGateway sets it): fresh ports and DATA_DIR unless overridden. */
async function envWith(over: Record<string, string>): Promise<Record<string, string>> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOST: '127.0.0.1',
    PORT: '0',
    METRICS_PORT: '0',
    TCP_PORT: String(await freePort()),
    SCRYPT_N: '1024',
    DATA_DIR: tempDir('chat-data-'),
    LOG_LEVEL: 'info',
    ...over,
  };
}

/** The fatal log line of a refused start. */
const fatal = (output: string[]): { msg: string; [k: string]: unknown } => {
  const line = output.map((l) => JSON.parse(l) as { level?: number; msg: string }).find((l) => l.level === 60);
  assert.ok(line, `a fatal log line in:\n${output.join('\n')}`);
  return line;
};

async function createGroup(gw: Gateway, name: string): Promise<LineClient> {
  const a = await LineClient.connect(gw.tcpPort);
  assert.equal(await a.nextLines(4), MENU);
  for (const [say, hear] of [
    ['2', 'Enter your name: '],
    [name, 'Enter a new password for your group:'],
    ['pw', 'Chat 0 has been created.'],
  ] as const) {
    a.send(say);
    assert.equal(await a.next(), hear);
  }
  return a;
}

describe('one node per port and per DATA_DIR', () => {
  test('a second gateway on the same PORT exits 2 with a clear log line; the first keeps serving', async () => {
    const first = await startGateway();
    try {
      const r = await startRefused(await envWith({ PORT: String(first.port) }));
      assert.equal(r.code, 2, r.output.join('\n'));
      assert.equal(r.listened, false);
      const line = fatal(r.output);
      assert.match(line.msg, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port} \\(PORT\\)`));
      assert.match(line.msg, /in use/);
      // Every connection still reaches the first node (uWS would otherwise share the port between both).
      for (let i = 0; i < 8; i++) assert.equal((await first.http('/healthz')).status, 200);
      const c = await WsClient.connect(first.wsUrl);
      assert.equal(await c.next(), MENU);
      c.close();
    } finally {
      await first.stop();
    }
  });

  test('the TCP and metrics listeners: a port in use exits 2 too', async () => {
    const first = await startGateway();
    try {
      const tcp = await startRefused(await envWith({ TCP_PORT: String(first.tcpPort) }));
      assert.equal(tcp.code, 2, tcp.output.join('\n'));
      assert.match(fatal(tcp.output).msg, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.tcpPort} \\(TCP_PORT\\): the port is already in use`));
      const metrics = await startRefused(await envWith({ METRICS_PORT: String(first.metricsPort) }));
      assert.equal(metrics.code, 2, metrics.output.join('\n'));
      assert.match(fatal(metrics.output).msg, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.metricsPort} \\(METRICS_PORT\\): the port is already in use`));
    } finally {
      await first.stop();
    }
  });

  test('a PORT held by another program: exit 2, not a shared port', async () => {
    // A plain socket on the port (no SO_REUSEPORT): uWS's exclusive listen fails cleanly.
    const other = createServer();
    await new Promise<void>((res) => other.listen(0, '127.0.0.1', res));
    const port = (other.address() as { port: number }).port;
    try {
      const r = await startRefused(await envWith({ PORT: String(port) }));
      assert.equal(r.code, 2, r.output.join('\n'));
    } finally {
      other.close();
    }
  });

  test('a second embedded node on the same DATA_DIR exits 2; a lock left by a killed node is taken over', async () => {
    const dir = tempDir('chat-data-');
    const first = await startGateway({ env: { DATA_DIR: dir } });
    let third: Gateway | null = null;
    try {
      const a = await createGroup(first, 'Ann');
      const r = await startRefused(await envWith({ DATA_DIR: dir }));
      assert.equal(r.code, 2, r.output.join('\n'));
      const line = fatal(r.output);
      assert.match(line.msg, /DATA_DIR .* is in use by another gateway \(pid \d+\)/);
      assert.equal(line['pid'], first.proc.pid);
      a.close();
      // kill -9 leaves the lock behind; its PID is gone, so the next node takes it over and has the data.
      first.proc.kill('SIGKILL');
      await within(first.exited, 10_000, 'the first gateway to die');
      assert.ok(existsSync(join(dir, 'gateway.lock')), 'the killed node left its lock');
      third = await startGateway({ env: { DATA_DIR: dir } });
      assert.equal(readFileSync(join(dir, 'gateway.lock'), 'utf8'), `${third.proc.pid}\n`);
      const b = await LineClient.connect(third.tcpPort);
      assert.equal(await b.nextLines(4), MENU);
      b.send('1');
      assert.equal(await b.next(), 'Enter your name: ');
      b.send('Bo');
      assert.equal(await b.next(), 'Enter group ID: ');
      b.send('0');
      assert.equal(await b.next(), 'Enter password: ', 'group 0 survived the takeover');
      b.close();
      // A clean stop removes the lock.
      await third.stop();
      assert.equal(existsSync(join(dir, 'gateway.lock')), false);
      third = null;
    } finally {
      await first.stop();
      await third?.stop();
    }
  });

  test('a lock naming a PID that does not exist is stale', async () => {
    const dir = tempDir('chat-data-');
    // A PID above the kernel's pid_max cannot be running.
    writeFileSync(join(dir, 'gateway.lock'), '4194305\n');
    const gw = await startGateway({ env: { DATA_DIR: dir } });
    try {
      assert.equal(readFileSync(join(dir, 'gateway.lock'), 'utf8'), `${gw.proc.pid}\n`);
    } finally {
      await gw.stop();
    }
  });

  test('a lock naming a live process that is not a gateway (a PID reused after a reboot) is stale', async () => {
    const dir = tempDir('chat-data-');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'gateway.lock'), `${other.pid}\n`);
      const gw = await startGateway({ env: { DATA_DIR: dir } });
      try {
        assert.equal(readFileSync(join(dir, 'gateway.lock'), 'utf8'), `${gw.proc.pid}\n`);
      } finally {
        await gw.stop();
      }
    } finally {
      other.kill();
    }
  });
});

describe('raw framing: a character split across two reads', () => {
  test('truncatedUtf8Tail finds a read that ends mid-character, and only that', () => {
    const b = (...x: number[]): Buffer => Buffer.from(x);
    assert.equal(truncatedUtf8Tail(Buffer.from('abc')), 0);
    assert.equal(truncatedUtf8Tail(Buffer.from('Zoë')), 0);
    assert.equal(truncatedUtf8Tail(Buffer.from('🙂')), 0);
    assert.equal(truncatedUtf8Tail(b(0x5a, 0xc3)), 1);
    assert.equal(truncatedUtf8Tail(b(0xe2, 0x82)), 2);
    assert.equal(truncatedUtf8Tail(b(0xf0, 0x9f, 0x99)), 3);
    assert.equal(truncatedUtf8Tail(b(0xf0)), 1);
    assert.equal(truncatedUtf8Tail(b(0xff)), 0, 'never a lead byte');
    assert.equal(truncatedUtf8Tail(b(0xc0)), 0, 'overlong lead');
    assert.equal(truncatedUtf8Tail(b(0x80)), 0, 'a lone continuation');
    assert.equal(truncatedUtf8Tail(b(0xc3, 0xa9, 0x80)), 0, 'too many continuations: invalid, not truncated');
    assert.equal(truncatedUtf8Tail(b()), 0);
  });

  test('a name whose characters are split between reads is one answer, not two "Invalid input" errors', async () => {
    const gw = await startGateway();
    try {
      const a = await createGroup(gw, 'Ann');
      const r = await RawClient.connect(gw.tcpPort);
      await r.expect(MENU + '\n');
      r.send('1');
      await r.expect('Enter your name: ');
      // "Zoë🙂": split inside ë, then inside the emoji, each part its own read.
      const name = Buffer.from('Zoë🙂');
      const cuts = [3, 6, name.length];
      let from = 0;
      for (const to of cuts) {
        r.send(name.subarray(from, to));
        from = to;
        // The gateway has read this part on its own before the next is sent: a connection made
        // after the write is accepted (and answered) no earlier than the readable socket is read.
        if (to < name.length) await readBarrier(gw);
      }
      await r.expect('Enter group ID: ');
      r.send('0');
      await r.expect('Enter password: ');
      r.send('pw');
      await r.expect('Hi Zoë🙂! welcome to group 0!');
      assert.equal(await a.next(), 'Zoë🙂 has joined the chat!');
      // A message split the same way arrives whole.
      const text = Buffer.from('née 👋');
      r.send(text.subarray(0, 2));
      await readBarrier(gw);
      r.send(text.subarray(2, 8));
      await readBarrier(gw);
      r.send(text.subarray(8));
      assert.equal(await a.next(), 'Zoë🙂: née 👋');
      assert.equal(r.pending, '', 'no error came back');
      r.close();
      a.close();
    } finally {
      await gw.stop();
    }
  });

  test('what follows a split that cannot be completed is one "Invalid input"; a read past MAX_FRAME_BYTES is never held', async () => {
    const gw = await startGateway({ env: { MAX_FRAME_BYTES: '256' } });
    try {
      const r = await RawClient.connect(gw.tcpPort);
      await r.expect(MENU + '\n');
      r.send('2');
      await r.expect('Enter your name: ');
      r.send(Buffer.from([0x41, 0xc3]));
      await readBarrier(gw);
      r.send('x'); // not a continuation byte: the two reads are one invalid answer
      await r.expect('Invalid input (not UTF-8 text), try again! ');
      // 300 bytes ending mid-character: too large now, not held for a continuation.
      r.send(Buffer.concat([Buffer.alloc(299, 0x61), Buffer.from([0xe2])]));
      await r.expect('Message too long, try again! ');
      r.send('Ann');
      await r.expect('Enter a new password for your group:');
      assert.equal(r.pending, '');
      r.close();
    } finally {
      await gw.stop();
    }
  });
});

/**
 * Returns once the gateway has read everything already written to it: a new connection's menu
 * comes from the same event loop, and on loopback the earlier bytes were in the gateway's socket
 * before the connect, so their read happens in the same loop turn as the accept or before.
 */
async function readBarrier(gw: Gateway): Promise<void> {
  const probe = await LineClient.connect(gw.tcpPort);
  await probe.next();
  probe.socket.destroy();
  await probe.closed;
}

describe('names made only of zero-width characters', () => {
  // U+200B–U+200F, U+061C and U+FEFF passed the filter before; every Cf is stripped now.
  const ZW = '\u200b\u200c\u200d\u200e\u200f\u061c\ufeff';

  test('refused as empty over TCP (lines and raw) and WebSocket text, and over JSON', async () => {
    const gw = await startGateway();
    try {
      const line = await LineClient.connect(gw.tcpPort);
      assert.equal(await line.nextLines(4), MENU);
      line.send('2');
      assert.equal(await line.next(), 'Enter your name: ');
      line.send(ZW);
      assert.equal(await line.next(), 'Names may not be empty, try again! ');
      line.send(`${ZW}A\u2060`);
      assert.equal(await line.next(), 'Enter a new password for your group:', 'a real character among them is a name');

      const raw = await RawClient.connect(gw.tcpPort);
      await raw.expect(MENU + '\n');
      raw.send('2');
      await raw.expect('Enter your name: ');
      raw.send(ZW);
      await raw.expect('Names may not be empty, try again! ');

      const ws = await WsClient.connect(gw.wsUrl);
      assert.equal(await ws.next(), MENU);
      ws.send('2');
      assert.equal(await ws.next(), 'Enter your name: ');
      ws.send(` ${ZW} `);
      assert.equal(await ws.next(), 'Names may not be empty, try again! ');

      const json = await WsClient.connect(gw.wsUrl, 'chat.json');
      await json.nextOfType('menu');
      json.sendJson({ op: 'create', name: ZW, password: 'pw' });
      assert.deepEqual(await json.nextOfType('error'), { type: 'error', code: 'invalid_input', message: 'Names may not be empty, try again! ' });
      for (const c of [line, raw, ws, json]) c.close();
    } finally {
      await gw.stop();
    }
  });
});
