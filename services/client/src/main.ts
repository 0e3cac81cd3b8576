// A terminal client for the chat, like the seed's client.py but on any transport:
//   node dist/services/client/src/main.js                      TCP 127.0.0.1:7037 (the seed's wire)
//   node dist/services/client/src/main.js tcp://host:7037
//   node dist/services/client/src/main.js ws://host:8080/       WebSocket, text protocol
//   node dist/services/client/src/main.js wss://host:8443/      WebSocket over TLS
//   node dist/services/client/src/main.js tls://host:7443       the line protocol over TLS
//   … --ca FILE   also trust this CA (PEM), e.g. the local CA `make cluster` writes to .cluster/tls/ca.pem
// TLS always verifies the server's certificate chain and name.
// Type the answers to the prompts, then chat; `/who` lists members, `/quit` leaves.
// Everything the server says is printed as it arrives (the server strips control characters).
import { readFileSync } from 'node:fs';
import { connect, isIP, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { connect as tlsConnect, rootCertificates } from 'node:tls';
import WebSocket from 'ws';

const args = process.argv.slice(2);
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
    return fail(`not a URL: ${t} (use tcp://host:port, tls://host:port, ws://host:port/ or wss://host:port/)`);
  }
}

const caAt = args.indexOf('--ca');
const caFile = caAt >= 0 ? (args.splice(caAt, 2)[1] ?? fail('--ca needs a file (PEM)')) : process.env['CHAT_CA_FILE'];
const target = args[0] ?? 'tcp://127.0.0.1:7037';
const url = parseTarget(target);
/** The public roots plus the given CA (a local CA must not make public certificates fail). */
const ca = ((): string[] | undefined => {
  if (!caFile) return undefined;
  try {
    return [...rootCertificates, readFileSync(caFile, 'utf8')];
  } catch (e) {
    return fail(`cannot read CA file ${caFile}: ${(e as Error).message}`);
  }
})();
const host = url.hostname.replace(/^\[|\]$/g, '');

if (url.protocol === 'tcp:' || url.protocol === 'tls:') {
  const port = Number(url.port || (url.protocol === 'tls:' ? 7443 : 7037));
  const socket: Socket =
    url.protocol === 'tls:'
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}) })
      : connect({ host, port });
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => void process.stdout.write(d));
  socket.on('error', (e) => fail(e.message));
  socket.on('close', () => process.exit(0));
  lines.on('line', (l) => socket.write(l + '\n'));
  lines.on('close', () => socket.end());
} else if (url.protocol === 'ws:' || url.protocol === 'wss:') {
  const ws = new WebSocket(url, ['chat.text'], ca ? { ca } : {});
  const pending: string[] = [];
  let ending = false; // input ended before the socket opened (piped answers): send them, then close
  ws.on('open', () => {
    for (const l of pending.splice(0)) ws.send(l);
    if (ending) ws.close(1000);
  });
  ws.on('message', (d) => print(d.toString()));
  ws.on('error', (e) => fail(e.message));
  ws.on('close', () => process.exit(0));
  lines.on('line', (l) => (ws.readyState === WebSocket.OPEN ? ws.send(l) : pending.push(l)));
  lines.on('close', () => (ws.readyState === WebSocket.CONNECTING ? (ending = true) : ws.close(1000)));
} else {
  fail(`unsupported scheme ${url.protocol} (use tcp://, tls://, ws:// or wss://)`);
}
