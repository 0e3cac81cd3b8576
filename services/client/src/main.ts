// A terminal client for the chat, like the seed's client.py but on any transport:
//   node dist/services/client/src/main.js                      TCP 127.0.0.1:7037 (the seed's wire)
//   node dist/services/client/src/main.js tcp://host:7037
//   node dist/services/client/src/main.js ws://host:8080/       WebSocket, text protocol
// Type the answers to the prompts, then chat; `/who` lists members, `/quit` leaves.
// Everything the server says is printed as it arrives (the server strips control characters).
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

const target = process.argv[2] ?? 'tcp://127.0.0.1:7037';
const lines = createInterface({ input: process.stdin, terminal: false });
const print = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : s + '\n');
const fail = (why: string): never => {
  process.stderr.write(`client: ${why}\n`);
  process.exit(1);
};

function parseTarget(t: string): URL {
  try {
    return new URL(t);
  } catch {
    return fail(`not a URL: ${t} (use tcp://host:port or ws://host:port/)`);
  }
}
const url = parseTarget(target);

if (url.protocol === 'tcp:') {
  const socket = connect({ host: url.hostname, port: Number(url.port || 7037) });
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => void process.stdout.write(d));
  socket.on('error', (e) => fail(e.message));
  socket.on('close', () => process.exit(0));
  lines.on('line', (l) => socket.write(l + '\n'));
  lines.on('close', () => socket.end());
} else if (url.protocol === 'ws:' || url.protocol === 'wss:') {
  const ws = new WebSocket(url, ['chat.text']);
  const pending: string[] = [];
  ws.on('open', () => {
    for (const l of pending.splice(0)) ws.send(l);
  });
  ws.on('message', (d) => print(d.toString()));
  ws.on('error', (e) => fail(e.message));
  ws.on('close', () => process.exit(0));
  lines.on('line', (l) => (ws.readyState === WebSocket.OPEN ? ws.send(l) : pending.push(l)));
  lines.on('close', () => ws.close(1000));
} else {
  fail(`unsupported scheme ${url.protocol} (use tcp:// or ws://)`);
}
