// The terminal client drives the seed flow over TCP and over WebSocket.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../../gateway/test/helpers/gateway.js';
import { Inbox, within } from '../../gateway/test/helpers/wait.js';

const CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), '../src/main.js');

function runClient(url: string): { say: (l: string) => void; hear: (s: string) => Promise<string>; end: () => Promise<number | null> } {
  const p = spawn(process.execPath, [CLIENT, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = new Inbox<string>();
  let buf = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      out.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((res) => p.once('exit', (code) => res(code)));
  return {
    say: (l) => p.stdin.write(l + '\n'),
    hear: (s) => out.next(5000, JSON.stringify(s), (l) => l === s),
    end: () => within(exited, 5000, 'client exit'),
  };
}

test('create over TCP, join over WebSocket, chat, quit', async () => {
  const gw = await startGateway();
  try {
    const a = runClient(`tcp://127.0.0.1:${gw.tcpPort}`);
    await a.hear('3. Exit the server.');
    for (const l of ['2', 'Ann', 'pw']) a.say(l);
    await a.hear('Chat 0 has been created.');
    const b = runClient(`ws://127.0.0.1:${gw.port}/`);
    await b.hear('3. Exit the server.');
    for (const l of ['1', 'Bob', '0', 'pw']) b.say(l);
    await b.hear('Hi Bob! welcome to group 0!');
    await a.hear('Bob has joined the chat!');
    b.say('hi Ann');
    await a.hear('Bob: hi Ann');
    b.say('/quit');
    await b.hear('You have disconnected from the server.');
    assert.equal(await b.end(), 0);
    await a.hear('Bob has left the chat.');
    a.say('/quit');
    assert.equal(await a.end(), 0);
  } finally {
    await gw.stop();
  }
});
