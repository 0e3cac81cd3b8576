// The Socket.IO peer: Socket.IO 4.8 on node:http with @socket.io/redis-adapter
// 8.3 over two ioredis connections (PUBLISH, and the adapter's PSUBSCRIBE), as
// the Socket.IO docs set up a multi-node deployment (loadtest/README.md, "The
// peers"). One process per node; the nodes share one Redis.
//
// Events:
//   join(room, ack)      socket.join(room), then ack()
//   send({room, text})   socket.to(room).emit('m', {room, text}): every other member of the room,
//                        on every node (the adapter publishes it to Redis; the sender is left out)
// No history, no ordering number, no acks for messages, no auth.
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=0 NODE_ID=s1 node dist/loadtest/peers/sio.js
// prints {"msg":"[LISTENING]","port":N,"peer":"socket.io"} once it listens and Redis answers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const HOST = process.env['HOST'] ?? '127.0.0.1';
const PORT = Number(process.env['PORT'] ?? '0');
const NODE_ID = (process.env['NODE_ID'] ?? `sio-${process.pid}`).replace(/\s/g, '_');
const MAX_ROOM = 128;

const redisOptions = { maxRetriesPerRequest: 1, connectTimeout: 2_000 } as const;
const pub = new Redis(REDIS_URL, { ...redisOptions, connectionName: `${NODE_ID}:pub` });
const sub = new Redis(REDIS_URL, { ...redisOptions, connectionName: `${NODE_ID}:sub` });
for (const c of [pub, sub]) c.on('error', (e: Error) => process.stderr.write(`${JSON.stringify({ msg: 'redis error', err: e.message })}\n`));

const http = createServer();
const io = new Server(http, { serveClient: false, adapter: createAdapter(pub, sub) });

io.on('connection', (socket) => {
  socket.on('join', (room: unknown, ack: unknown) => {
    if (typeof room !== 'string' || room.length === 0 || room.length > MAX_ROOM) return;
    void socket.join(room);
    if (typeof ack === 'function') (ack as () => void)();
  });
  socket.on('send', (m: unknown) => {
    const msg = m as { room?: unknown; text?: unknown } | null;
    if (!msg || typeof msg.room !== 'string' || typeof msg.text !== 'string' || !socket.rooms.has(msg.room)) return;
    socket.to(msg.room).emit('m', { room: msg.room, text: msg.text });
  });
});

http.once('error', (e) => {
  process.stderr.write(`${JSON.stringify({ msg: 'listen failed', err: e.message })}\n`);
  process.exit(2);
});
http.listen(PORT, HOST, () => {
  const port = (http.address() as AddressInfo).port;
  // The adapter sent its PSUBSCRIBE when it was created; a PING on the same connection answers after it.
  Promise.all([pub.ping(), sub.ping()]).then(
    () => process.stdout.write(`${JSON.stringify({ msg: '[LISTENING]', peer: 'socket.io', port, nodeId: NODE_ID })}\n`),
    (e: unknown) => {
      process.stderr.write(`${JSON.stringify({ msg: 'redis unreachable', err: String(e) })}\n`);
      process.exit(2);
    },
  );
});

for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.once(sig, () => {
    io.local.disconnectSockets(true);
    http.close();
    pub.disconnect();
    sub.disconnect();
    process.exit(0);
  });
