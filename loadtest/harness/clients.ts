// One simulated chat member per connection, on any of the gateway's three
// transports or one of the peers' protocols (make bench-compare). Each speaks
// the protocol the way a real client would (PROTOCOL.md): WS JSON ops, WS text
// answers to the menu prompts, TCP lines; the bare peer's JSON room frames;
// Socket.IO events. Chat text carries the sender's clock so receivers can
// measure end-to-end latency (and, in bench-compare, the sender and its count).
import { connect as tcpConnect, type Socket } from 'node:net';
import { io as sioConnect, type Socket as SioSocket } from 'socket.io-client';
import WebSocket from 'ws';
import { within } from './wait.js';

/** The gateway's transports, then the peers' protocols (loadtest/peers/): `bare` JSON room frames, `sio` Socket.IO events. */
export type Transport = 'ws_json' | 'ws_text' | 'tcp' | 'bare' | 'sio';
/** The gateway's transports (what --mix and --storm-transport take). */
export const TRANSPORTS: readonly Transport[] = ['ws_json', 'ws_text', 'tcp'];

export interface Endpoint {
  host: string;
  wsPort: number;
  tcpPort: number;
}

/** What a member reports while it runs. Hot paths: no allocation beyond parsing the frame. */
export interface MemberEvents {
  /** A chat line from someone else, whose text started with the bench marker; `body` is the text after it (see benchText). */
  chat(body: string, transport: Transport, receiver: Member): void;
  ack(member: Member, id: number): void;
  error(code: string): void;
}

/**
 * Chat text: `bench <sender's wall clock ms> <padding>`, or with a tag
 * `bench <clock> <tag> <padding>` (bench-compare: `<run>.<sender>.<count>`).
 * Never anything a person typed. With `bytes`, the padding is cut so the text is that long.
 */
export const MARK = 'bench ';
export function benchText(sentAt: number, pad: string, tag?: string, bytes?: number): string {
  const head = tag === undefined ? `${MARK}${sentAt.toFixed(3)} ` : `${MARK}${sentAt.toFixed(3)} ${tag} `;
  return head + (bytes === undefined ? pad : pad.slice(0, Math.max(1, bytes - head.length)));
}

type Waiter = { test: (frame: string) => boolean; fail: (frame: string) => string | null; resolve: () => void; reject: (e: Error) => void };

export abstract class Member {
  closed = false;
  closeCode = 0;
  /** Sends without an answer yet (JSON acks), for the throughput scenario's window. */
  inflight = 0;
  /** Send time by id (ring), for ack latency. */
  sentAt: Float64Array | null = null;
  nextId = 0;
  /**
   * The client id on the wire: unique for the connection's whole life, never reset between runs (a
   * repeated id from the same member is a retry, which the gateway answers from its dedupe window
   * without storing the message again).
   */
  wireId = 0;
  /** bench-compare: the next count expected from each sender (by sender ID), to find gaps and duplicates. */
  nextFrom: Map<number, number> | null = null;
  protected waiter: Waiter | null = null;

  constructor(
    readonly transport: Transport,
    readonly name: string,
    readonly endpoint: Endpoint,
    protected readonly events: MemberEvents,
  ) {}

  /** Open the connection; resolves once the menu is in. */
  abstract connect(ms: number): Promise<void>;
  /** Join `groupId` from the menu; resolves once welcomed. */
  abstract join(groupId: string, password: string, ms: number): Promise<void>;
  abstract send(text: string, id: number): void;
  abstract close(): void;
  /** Hard close, for tearing down thousands at once. */
  abstract terminate(): void;

  protected expect(test: Waiter['test'], fail: Waiter['fail'], ms: number, what: string, start: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`closed (${this.closeCode}) before ${what}`));
    const p = new Promise<void>((resolve, reject) => {
      this.waiter = { test, fail, resolve, reject };
    });
    start();
    return within(p, ms, what).finally(() => {
      this.waiter = null;
    });
  }

  /** Feed a non-chat frame or line to whoever waits for one. */
  protected offer(frame: string): void {
    const w = this.waiter;
    if (!w) return;
    const why = w.fail(frame);
    if (why !== null) w.reject(new Error(why));
    else if (w.test(frame)) w.resolve();
  }

  protected onClosed(code: number): void {
    if (this.closed) return;
    this.closed = true;
    this.closeCode = code;
    this.waiter?.reject(new Error(`connection closed (${code})`));
  }
}

function frameText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

const WS_OPTIONS: WebSocket.ClientOptions = { perMessageDeflate: false, maxPayload: 1 << 20 };

abstract class WsMember extends Member {
  protected ws: WebSocket | null = null;

  protected open(subprotocol: string | null, isMenu: (frame: string) => boolean, ms: number): Promise<void> {
    return this.expect(isMenu, () => null, ms, 'menu', () => {
      const url = `ws://${this.endpoint.host}:${this.endpoint.wsPort}/`;
      const ws = subprotocol ? new WebSocket(url, subprotocol, { ...WS_OPTIONS, handshakeTimeout: ms }) : new WebSocket(url, { ...WS_OPTIONS, handshakeTimeout: ms });
      this.ws = ws;
      ws.on('open', () => this.opened());
      ws.on('message', (data) => this.frame(frameText(data)));
      ws.on('error', (e) => {
        this.waiter?.reject(e);
        this.onClosed(1006);
      });
      ws.on('close', (code) => this.onClosed(code));
    });
  }

  protected abstract frame(s: string): void;

  /** The socket is open (the gateway's members then wait for the menu). */
  protected opened(): void {}

  close(): void {
    if (!this.ws || this.closed) return;
    this.ws.close(1000);
  }

  terminate(): void {
    this.ws?.terminate();
  }
}

export class WsJsonMember extends WsMember {
  constructor(name: string, endpoint: Endpoint, events: MemberEvents) {
    super('ws_json', name, endpoint, events);
  }

  connect(ms: number): Promise<void> {
    return this.open('chat.json', (f) => f.startsWith('{"type":"menu"'), ms);
  }

  join(groupId: string, password: string, ms: number): Promise<void> {
    return this.expect(
      (f) => f.startsWith('{"type":"joined"'),
      (f) => (f.startsWith('{"type":"error"') ? `join refused: ${f.slice(0, 80)}` : null),
      ms,
      'joined',
      () => this.ws?.send(JSON.stringify({ op: 'join', name: this.name, groupId, password })),
    );
  }

  /** Create a group (setup only); resolves with its id. */
  async create(password: string, ms: number): Promise<string> {
    let id = '';
    await this.expect(
      (f) => {
        const m = /^\{"type":"created","groupId":"(\d+)"/.exec(f);
        if (m) id = m[1] as string;
        return m !== null;
      },
      (f) => (f.startsWith('{"type":"error"') ? `create refused: ${f.slice(0, 80)}` : null),
      ms,
      'created',
      () => this.ws?.send(JSON.stringify({ op: 'create', name: this.name, password })),
    );
    return id;
  }

  send(text: string, id: number): void {
    this.ws?.send(JSON.stringify({ op: 'send', text, id }));
  }

  protected frame(s: string): void {
    if (s.startsWith('{"type":"message"')) {
      const m = JSON.parse(s) as { text?: unknown };
      if (typeof m.text === 'string' && m.text.startsWith(MARK)) this.events.chat(m.text.slice(MARK.length), 'ws_json', this);
      return;
    }
    if (s.startsWith('{"type":"ack"')) {
      const m = JSON.parse(s) as { id?: unknown };
      this.inflight--;
      if (typeof m.id === 'number') this.events.ack(this, m.id);
      return;
    }
    if (s.startsWith('{"type":"error"')) {
      const m = JSON.parse(s) as { code?: unknown };
      this.events.error(typeof m.code === 'string' ? m.code : 'error');
    }
    this.offer(s);
  }
}

/** The text lines both text transports carry once in a group. */
function chatLine(line: string, transport: Transport, events: MemberEvents, receiver: Member): boolean {
  const i = line.indexOf(': ' + MARK);
  if (i < 0) return false;
  events.chat(line.slice(i + 2 + MARK.length), transport, receiver);
  return true;
}

const welcome = (name: string, groupId: string): string => `Hi ${name}! welcome to group ${groupId}!`;
const joinFailure = (line: string): string | null =>
  line.startsWith('Wrong ID') || line.startsWith('Wrong password') || line.startsWith('You have chosen to connect') ? `join refused: ${line}` : null;

export class WsTextMember extends WsMember {
  constructor(name: string, endpoint: Endpoint, events: MemberEvents) {
    super('ws_text', name, endpoint, events);
  }

  connect(ms: number): Promise<void> {
    return this.open(null, (f) => f.startsWith('Hello client'), ms);
  }

  /** Answers pipelined, one frame each: the server takes them in order. */
  join(groupId: string, password: string, ms: number): Promise<void> {
    return this.expect((f) => f === welcome(this.name, groupId), joinFailure, ms, 'welcome', () => {
      for (const answer of ['1', this.name, groupId, password]) this.ws?.send(answer);
    });
  }

  send(text: string): void {
    this.ws?.send(text);
  }

  protected frame(s: string): void {
    if (!chatLine(s, 'ws_text', this.events, this)) this.offer(s);
  }
}

export class TcpMember extends Member {
  private socket: Socket | null = null;
  private buf = '';

  constructor(name: string, endpoint: Endpoint, events: MemberEvents) {
    super('tcp', name, endpoint, events);
  }

  connect(ms: number): Promise<void> {
    return this.expect((l) => l === '3. Exit the server.', () => null, ms, 'menu', () => {
      const s = tcpConnect({ host: this.endpoint.host, port: this.endpoint.tcpPort, noDelay: true });
      this.socket = s;
      s.setEncoding('utf8');
      s.on('data', (d: string) => this.data(d));
      s.on('error', (e) => this.waiter?.reject(e));
      s.on('close', () => this.onClosed(1006));
    });
  }

  join(groupId: string, password: string, ms: number): Promise<void> {
    return this.expect((l) => l === welcome(this.name, groupId), joinFailure, ms, 'welcome', () => {
      this.socket?.write(`1\n${this.name}\n${groupId}\n${password}\n`);
    });
  }

  send(text: string): void {
    this.socket?.write(text + '\n');
  }

  close(): void {
    this.socket?.end();
  }

  terminate(): void {
    this.socket?.destroy();
  }

  private data(d: string): void {
    this.buf += d;
    let start = 0;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n', start)) {
      const line = this.buf.slice(start, nl);
      start = nl + 1;
      if (!chatLine(line, 'tcp', this.events, this)) this.offer(line);
    }
    this.buf = this.buf.slice(start);
  }
}

/**
 * The bare peer (loadtest/peers/bare.ts): `{"t":"join","room"}` → `{"t":"joined"}`,
 * `{"t":"send","room","text"}` → the others get `{"t":"m","room","text"}`.
 */
export class BareMember extends WsMember {
  private room = '';

  constructor(name: string, endpoint: Endpoint, events: MemberEvents) {
    super('bare', name, endpoint, events);
  }

  /** No menu here: resolves once the socket is open. */
  connect(ms: number): Promise<void> {
    return this.open(null, () => false, ms);
  }

  join(room: string, _password: string, ms: number): Promise<void> {
    this.room = room;
    return this.expect((f) => f.startsWith('{"t":"joined"'), () => null, ms, 'joined', () => this.ws?.send(JSON.stringify({ t: 'join', room })));
  }

  send(text: string): void {
    this.ws?.send(JSON.stringify({ t: 'send', room: this.room, text }));
  }

  protected override opened(): void {
    this.waiter?.resolve();
  }

  protected frame(s: string): void {
    if (s.startsWith('{"t":"m"')) {
      const m = JSON.parse(s) as { text?: unknown };
      if (typeof m.text === 'string' && m.text.startsWith(MARK)) this.events.chat(m.text.slice(MARK.length), 'bare', this);
      return;
    }
    this.offer(s);
  }
}

/** The Socket.IO peer (loadtest/peers/sio.ts), over socket.io-client's WebSocket transport only. */
export class SioMember extends Member {
  private socket: SioSocket | null = null;
  private room = '';

  constructor(name: string, endpoint: Endpoint, events: MemberEvents) {
    super('sio', name, endpoint, events);
  }

  connect(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = sioConnect(`http://${this.endpoint.host}:${this.endpoint.wsPort}`, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        timeout: ms,
      });
      this.socket = s;
      s.once('connect', () => resolve());
      s.once('connect_error', (e: Error) => {
        this.onClosed(1006);
        reject(e);
      });
      s.on('disconnect', () => this.onClosed(1006));
      s.on('m', (m: { text?: unknown }) => {
        if (typeof m?.text === 'string' && m.text.startsWith(MARK)) this.events.chat(m.text.slice(MARK.length), 'sio', this);
      });
    });
  }

  join(room: string, _password: string, ms: number): Promise<void> {
    this.room = room;
    const s = this.socket;
    if (!s || this.closed) return Promise.reject(new Error(`closed (${this.closeCode}) before join`));
    return within(new Promise<void>((resolve) => s.emit('join', room, () => resolve())), ms, 'join ack');
  }

  send(text: string): void {
    this.socket?.emit('send', { room: this.room, text });
  }

  close(): void {
    this.socket?.disconnect();
  }

  terminate(): void {
    this.socket?.disconnect();
  }
}

export function newMember(transport: Transport, name: string, endpoint: Endpoint, events: MemberEvents): Member {
  switch (transport) {
    case 'bare':
      return new BareMember(name, endpoint, events);
    case 'sio':
      return new SioMember(name, endpoint, events);
    case 'ws_json':
      return new WsJsonMember(name, endpoint, events);
    case 'ws_text':
      return new WsTextMember(name, endpoint, events);
    case 'tcp':
      return new TcpMember(name, endpoint, events);
  }
}
