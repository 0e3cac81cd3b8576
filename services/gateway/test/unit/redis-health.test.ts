// The Redis health check (engine/redis/health.ts) judges a PING's deadline after the event
// loop's pending I/O: a node whose own loop was blocked past the timeout is not "Redis down".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { HealthCheck, type Pingable } from '../../src/engine/redis/health.js';
import { Inbox, within } from '../helpers/wait.js';

/**
 * A Pingable over a real socket to a PONG server in another process (a reply must be able to
 * arrive while this process is blocked, as Redis's does).
 */
async function echoPingable(answer: boolean): Promise<{ p: Pingable; pinged: Inbox<number>; close: () => void }> {
  const script = `const s=require('net').createServer(c=>c.on('data',()=>${answer ? "c.write('+PONG\\r\\n')" : '0'}));s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await within(
    new Promise<number>((r) => child.stdout.once('data', (d: Buffer) => r(Number(d.toString().trim())))),
    10_000,
    'the PONG server',
  );
  const sock: Socket = await new Promise((r) => {
    const c = connect(port, '127.0.0.1', () => r(c));
  });
  const waiting: Array<() => void> = [];
  sock.on('data', () => waiting.splice(0).forEach((f) => f()));
  const pinged = new Inbox<number>();
  let n = 0;
  const p: Pingable = {
    status: 'ready',
    ping: () =>
      new Promise<unknown>((res) => {
        waiting.push(() => res('PONG'));
        sock.write('PING\r\n');
        pinged.push(++n);
      }),
  };
  return { p, pinged, close: () => (sock.destroy(), child.kill()) };
}

function block(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end); // the node's own event loop, busy
}

test('a PING whose reply waits in the socket while the node\'s loop is blocked past the timeout counts as answered', async () => {
  const { p, pinged, close } = await echoPingable(true);
  const changes: boolean[] = [];
  const h = new HealthCheck({ intervalMs: 20, timeoutMs: 100, targets: () => [p], onChange: (ok) => changes.push(ok) });
  try {
    h.start();
    await pinged.next(2000, 'the first PING');
    block(300); // the reply arrives meanwhile; the timeout timer is due when the loop wakes
    await pinged.next(2000, 'the next round (the first one judged)');
    assert.deepEqual(changes, [], 'never reported down');
    assert.equal(h.healthy, true);
  } finally {
    h.stop();
    close();
  }
});

test('a PING that is never answered counts as down', async () => {
  const { p, pinged, close } = await echoPingable(false);
  const down = new Inbox<boolean>();
  const h = new HealthCheck({ intervalMs: 20, timeoutMs: 100, targets: () => [p], onChange: (ok) => down.push(ok) });
  try {
    h.start();
    await pinged.next(2000, 'the first PING');
    assert.equal(await down.next(2000, 'the change to unhealthy'), false);
    assert.equal(h.healthy, false);
  } finally {
    h.stop();
    close();
  }
});
