// Byte-level test clients: TCP lines (nc), TCP raw (the seed's Python client),
// WebSocket text and JSON.
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { Inbox, within } from './wait.js';

const openSocket = (port: number, localAddress?: string): Promise<Socket> =>
  new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true, ...(localAddress ? { localAddress } : {}) }, () => res(s));
    s.once('error', rej);
  });

/** A line client like nc: sends `line\n`, reads `\n`-terminated lines. */
export class LineClient {
  readonly lines = new Inbox<string>();
  /** Every line ever received, consumed or skipped. */
  readonly all: string[] = [];
  readonly closed: Promise<void>;
  private buf = '';

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.all.push(line);
        this.lines.push(line);
        this.buf = this.buf.slice(nl + 1);
      }
    });
    this.closed = new Promise((res) => socket.once('close', () => res()));
    socket.on('error', () => undefined);
  }

  /** `localAddress`: another loopback source (e.g. 127.0.0.2), to tell clients apart behind a proxy. */
  static async connect(port: number, localAddress?: string): Promise<LineClient> {
    return new LineClient(await openSocket(port, localAddress));
  }

  send(line: string, eol = '\n'): void {
    this.socket.write(line + eol);
  }

  next(ms = 5000): Promise<string> {
    return this.lines.next(ms, 'a line from the server');
  }

  /** Skip lines until exactly `line` arrives. */
  until(line: string, ms = 5000): Promise<string> {
    return this.lines.next(ms, JSON.stringify(line), (l) => l === line);
  }

  /** Read the next lines and return them joined by `\n` (for the four-line menu). */
  async nextLines(n: number, ms = 5000): Promise<string> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(ms));
    return out.join('\n');
  }

  /** The partial line received so far without its newline. */
  get partial(): string {
    return this.buf;
  }

  close(): void {
    this.socket.end();
  }
}

/** The seed's client: one send() per answer, no newline; compares exact bytes. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    this.closed = new Promise((res) =>
      socket.once('close', () => {
        res();
        this.wake?.();
      }),
    );
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await openSocket(port));
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Wait until exactly `expected` has arrived next in the byte stream, and consume it. */
  async expect(expected: string, ms = 5000): Promise<void> {
    const want = Buffer.from(expected, 'utf8');
    await within(
      (async () => {
        while (this.buf.length < want.length) {
          if (this.socket.destroyed) break;
          await new Promise<void>((r) => (this.wake = r));
        }
      })(),
      ms,
      `raw bytes ${JSON.stringify(expected)} (have ${JSON.stringify(this.buf.toString())})`,
    );
    const got = this.buf.subarray(0, want.length);
    if (!got.equals(want)) throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(this.buf.toString())}`);
    this.buf = this.buf.subarray(want.length);
  }

  /** Bytes received and not yet consumed. */
  get pending(): string {
    return this.buf.toString('utf8');
  }

  close(): void {
    this.socket.end();
  }
}

/** A WebSocket client; `protocol` chat.text, chat.json, or none. */
export class WsClient {
  readonly frames = new Inbox<string>();
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => this.frames.push(isBinary ? '<binary>' : data.toString()));
    this.closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })));
    this.opened = new Promise((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
      ws.once('unexpected-response', (_req, r) => rej(new Error(`HTTP ${r.statusCode}`)));
    });
    ws.on('error', () => undefined);
  }

  static async connect(url: string, protocol?: string, headers: Record<string, string> = {}, localAddress?: string): Promise<WsClient> {
    const c = new WsClient(new WebSocket(url, protocol ? [protocol] : [], { headers, ...(localAddress ? { localAddress } : {}) }));
    await within(c.opened, 5000, `WebSocket open ${url}`);
    return c;
  }

  send(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  sendJson(v: unknown): void {
    this.ws.send(JSON.stringify(v));
  }

  next(ms = 5000): Promise<string> {
    return this.frames.next(ms, 'a WebSocket frame');
  }

  async nextJson<T = Record<string, unknown>>(ms = 5000): Promise<T> {
    return JSON.parse(await this.next(ms)) as T;
  }

  /** Skip frames until one whose JSON `type` is `type`. */
  async nextOfType<T = Record<string, unknown>>(type: string, ms = 5000): Promise<T> {
    const f = await this.frames.next(ms, `a ${type} frame`, (s) => {
      try {
        return (JSON.parse(s) as { type?: string }).type === type;
      } catch {
        return false;
      }
    });
    return JSON.parse(f) as T;
  }

  close(code = 1000): void {
    this.ws.close(code);
  }
}
