// The bare peer: uWebSockets.js + Redis and nothing else, the ceiling for the
// gateway's design (loadtest/README.md, "The peers"). Per node: one ioredis
// connection for PUBLISH, one subscriber connection holding one SUBSCRIBE per
// room with members on this node (taken when the first local member joins,
// dropped when the last leaves), one PUBLISH per message, delivery through uWS
// topics. The sender does not get its own message back: the payload carries
// the sending connection's ID, and on the sender's node the frame is published
// from that socket (ws.publish leaves the publishing socket out).
//
// Protocol (WebSocket text frames, JSON):
//   client → {"t":"join","room":"r"}              server → {"t":"joined","room":"r"} once subscribed
//   client → {"t":"send","room":"r","text":"…"}   the room's other members ← {"t":"m","room":"r","text":"…"}
// No history, no ordering number, no acks, no auth, no limits beyond uWS's.
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=0 NODE_ID=b1 node dist/loadtest/peers/bare.js
// prints {"msg":"[LISTENING]","port":N,"peer":"bare"} once it listens and Redis answers.
import { Redis } from 'ioredis';
import uWS from 'uWebSockets.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const HOST = process.env['HOST'] ?? '127.0.0.1';
const PORT = Number(process.env['PORT'] ?? '0');
const NODE_ID = (process.env['NODE_ID'] ?? `bare-${process.pid}`).replace(/\s/g, '_');
const CHANNEL = 'bare:room:';
const MAX_ROOM = 128;

interface Data {
  id: number;
  rooms: string[];
  closed: boolean;
}

const redisOptions = { maxRetriesPerRequest: 1, connectTimeout: 2_000 } as const;
const pub = new Redis(REDIS_URL, { ...redisOptions, connectionName: `${NODE_ID}:pub` });
const sub = new Redis(REDIS_URL, { ...redisOptions, connectionName: `${NODE_ID}:sub` });
for (const c of [pub, sub]) c.on('error', (e: Error) => process.stderr.write(`${JSON.stringify({ msg: 'redis error', err: e.message })}\n`));

const app = uWS.App();
/** This node's sockets by ID (only the sender's node looks one up, to leave it out). */
const conns = new Map<number, uWS.WebSocket<Data>>();
let nextId = 1;
/** Local members per room, and the SUBSCRIBE (or UNSUBSCRIBE) last sent for it. */
const rooms = new Map<string, { members: number; subscribed: Promise<unknown> }>();
const originPrefix = `${NODE_ID}/`;
const decoder = new TextDecoder();

sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
  // payload: "<node>/<conn id> <frame>"; the room is the channel's tail.
  const space = payload.indexOf(32);
  if (space < 0) return;
  const room = channel.toString('utf8', CHANNEL.length);
  const frame = payload.subarray(space + 1);
  const origin = payload.toString('latin1', 0, space);
  if (origin.startsWith(originPrefix)) {
    const ws = conns.get(Number(origin.slice(originPrefix.length)));
    if (ws && !ws.getUserData().closed) {
      ws.publish(room, frame, false);
      return;
    }
  }
  app.publish(room, frame, false);
});

function join(ws: uWS.WebSocket<Data>, room: string): void {
  const data = ws.getUserData();
  if (data.rooms.includes(room)) {
    ws.send(JSON.stringify({ t: 'joined', room }), false);
    return;
  }
  data.rooms.push(room);
  ws.subscribe(room);
  let r = rooms.get(room);
  if (!r || r.members === 0) {
    const subscribed = sub.subscribe(CHANNEL + room);
    if (r) (r.members = 1), (r.subscribed = subscribed);
    else rooms.set(room, (r = { members: 1, subscribed }));
  } else r.members++;
  r.subscribed.then(
    () => {
      if (!data.closed) ws.send(JSON.stringify({ t: 'joined', room }), false);
    },
    () => {
      if (!data.closed) ws.end(1011, 'subscribe failed');
    },
  );
}

function leave(room: string): void {
  const r = rooms.get(room);
  if (!r || r.members === 0) return;
  if (--r.members === 0) r.subscribed = sub.unsubscribe(CHANNEL + room).catch(() => undefined);
}

app.ws<Data>('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 2 * 1024 * 1024,
  closeOnBackpressureLimit: 1,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  upgrade: (res, req, context) => {
    res.upgrade<Data>(
      { id: nextId++, rooms: [], closed: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    conns.set(ws.getUserData().id, ws);
  },
  message: (ws, message, isBinary) => {
    if (isBinary) return;
    let m: { t?: unknown; room?: unknown; text?: unknown };
    try {
      m = JSON.parse(decoder.decode(message)) as typeof m;
    } catch {
      return;
    }
    const room = m.room;
    if (typeof room !== 'string' || room.length === 0 || room.length > MAX_ROOM) return;
    if (m.t === 'join') return join(ws, room);
    if (m.t === 'send' && typeof m.text === 'string') {
      const data = ws.getUserData();
      if (!data.rooms.includes(room)) return;
      void pub.publish(CHANNEL + room, `${originPrefix}${data.id} ${JSON.stringify({ t: 'm', room, text: m.text })}`).catch(() => undefined);
    }
  },
  close: (ws) => {
    const data = ws.getUserData();
    data.closed = true;
    conns.delete(data.id);
    for (const room of data.rooms) leave(room);
  },
});

let listenSocket: uWS.us_listen_socket | null = null;
// Exclusive port (uWS sets SO_REUSEPORT by default); the typings lack the (host, port, options, cb) form.
const exclusive = (uWS as unknown as { LIBUS_LISTEN_EXCLUSIVE_PORT?: number }).LIBUS_LISTEN_EXCLUSIVE_PORT ?? 0;
const listen = app.listen as unknown as (h: string, p: number, o: number, cb: (ls: uWS.us_listen_socket | false) => void) => void;
listen.call(app, HOST, PORT, exclusive, (ls) => {
  if (!ls) {
    process.stderr.write(`${JSON.stringify({ msg: 'listen failed', host: HOST, port: PORT })}\n`);
    process.exit(2);
  }
  listenSocket = ls;
  const port = uWS.us_socket_local_port(ls);
  Promise.all([pub.ping(), sub.ping()]).then(
    () => process.stdout.write(`${JSON.stringify({ msg: '[LISTENING]', peer: 'bare', port, nodeId: NODE_ID })}\n`),
    (e: unknown) => {
      process.stderr.write(`${JSON.stringify({ msg: 'redis unreachable', err: String(e) })}\n`);
      process.exit(2);
    },
  );
});

for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.once(sig, () => {
    if (listenSocket) uWS.us_listen_socket_close(listenSocket);
    for (const ws of conns.values()) ws.close();
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  });
