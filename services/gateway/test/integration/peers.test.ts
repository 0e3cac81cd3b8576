// make bench-compare's peers (loadtest/peers/) stay alive: each starts two
// nodes on a real redis-server, and a message sent on one node reaches a
// member on the other, and not its sender. Cheap (a second or two); it is
// here so that the peers cannot rot silently between benchmark runs.
// `make test` compiles loadtest/ (dist/loadtest/peers/) before it runs this.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { RedisServer } from '../helpers/redis.js';
import { Inbox, within } from '../helpers/wait.js';

// dist/services/gateway/test/integration → dist/loadtest/peers
const PEERS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../loadtest/peers');

interface Node {
  proc: ChildProcess;
  port: number;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** Start one peer node and wait for its [LISTENING] line (with a deadline). */
async function startNode(kind: 'bare' | 'sio', id: string, redisUrl: string): Promise<Node> {
  const main = `${PEERS}/${kind}.js`;
  assert.ok(existsSync(main), `no compiled peer at ${main} (make test compiles loadtest/tsconfig.json first)`);
  const proc = spawn(process.execPath, [main], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', NODE_ID: id, REDIS_URL: redisUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let out = '';
  const port = await within(
    new Promise<number>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        out += d.toString();
        const m = /"\[LISTENING\]".*"port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code) => reject(new Error(`${kind} ${id} exited (${code}) before listening:\n${out}`)));
    }),
    15_000,
    `${kind} ${id} to listen`,
  );
  return { proc, port };
}

async function stopNode(n: Node): Promise<void> {
  if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
  const gone = new Promise<void>((res) => n.proc.once('exit', () => res()));
  n.proc.kill('SIGTERM');
  await within(gone, 10_000, `peer ${n.proc.pid} to exit`);
}

describe('bench-compare peers', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.close();
  });

  test('bare uWS.js + Redis: a message crosses two nodes through Redis, not back to its sender', async () => {
    const nodes = [await startNode('bare', 'bare-a', redis.url), await startNode('bare', 'bare-b', redis.url)];
    const sockets: WebSocket[] = [];
    try {
      const member = async (port: number): Promise<{ ws: WebSocket; inbox: Inbox<string> }> => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
        sockets.push(ws);
        const inbox = new Inbox<string>();
        ws.on('message', (d) => inbox.push(d.toString()));
        await within(new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej))), 5000, 'open');
        ws.send(JSON.stringify({ t: 'join', room: 'room-1' }));
        assert.equal(await inbox.next(5000, 'joined'), '{"t":"joined","room":"room-1"}');
        return { ws, inbox };
      };
      const a = await member(nodes[0]!.port);
      const b = await member(nodes[1]!.port);
      assert.equal(await redis.admin.pubsub('NUMSUB', 'bare:room:room-1').then((r) => (r as [string, number])[1]), 2, 'one SUBSCRIBE per node');
      a.ws.send(JSON.stringify({ t: 'send', room: 'room-1', text: 'hello from a' }));
      assert.equal(await b.inbox.next(5000, 'message on node b'), '{"t":"m","room":"room-1","text":"hello from a"}');
      b.ws.send(JSON.stringify({ t: 'send', room: 'room-1', text: 'hello from b' }));
      // a's next frame is b's message: its own never came back.
      assert.equal(await a.inbox.next(5000, 'message on node a'), '{"t":"m","room":"room-1","text":"hello from b"}');
    } finally {
      for (const s of sockets) s.terminate();
      await Promise.all(nodes.map(stopNode));
    }
  });

  test('Socket.IO + redis-adapter: a message crosses two nodes through Redis, not back to its sender', async () => {
    const nodes = [await startNode('sio', 'sio-a', redis.url), await startNode('sio', 'sio-b', redis.url)];
    const sockets: Socket[] = [];
    try {
      const member = async (port: number): Promise<{ s: Socket; inbox: Inbox<string> }> => {
        const s = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
        sockets.push(s);
        const inbox = new Inbox<string>();
        s.on('m', (m: { text: string }) => inbox.push(m.text));
        await within(new Promise((res, rej) => (s.once('connect', () => res(undefined)), s.once('connect_error', rej))), 5000, 'connect');
        await within(new Promise<void>((res) => s.emit('join', 'room-1', () => res())), 5000, 'join ack');
        return { s, inbox };
      };
      const a = await member(nodes[0]!.port);
      const b = await member(nodes[1]!.port);
      a.s.emit('send', { room: 'room-1', text: 'hello from a' });
      assert.equal(await b.inbox.next(5000, 'message on node b'), 'hello from a');
      b.s.emit('send', { room: 'room-1', text: 'hello from b' });
      assert.equal(await a.inbox.next(5000, 'message on node a'), 'hello from b');
    } finally {
      for (const s of sockets) s.disconnect();
      await Promise.all(nodes.map(stopNode));
    }
  });
});
