// Several gateways on one redis-server (or on a real Redis Cluster), and a
// JSON chat client that keeps chat messages, replies (ack/error) and other
// events apart so a test can count messages by seq without losing notices
// while it waits for an ack.
import { WsClient } from './clients.js';
import { gatewayOn, TEST_CHAT_SECRET } from './engines.js';
import { startGateway, type Gateway } from './gateway.js';
import type { RedisClusterServer } from './redis-cluster-server.js';
import { RedisServer, type RedisServerOptions } from './redis.js';
import { TimeoutError, within } from './wait.js';

export interface Cluster {
  redis: RedisServer;
  nodes: Gateway[];
  /** Stop every gateway still running, then the redis-server. */
  stop(): Promise<void>;
}

export async function startCluster(n: number, opts: { env?: Record<string, string>; redis?: RedisServerOptions } = {}): Promise<Cluster> {
  const redis = await RedisServer.start(opts.redis);
  const nodes: Gateway[] = [];
  const stop = async (): Promise<void> => {
    for (const gw of nodes) await gw.stop('SIGTERM').catch(() => undefined);
    await redis.close();
  };
  try {
    for (let i = 0; i < n; i++) {
      nodes.push(await gatewayOn('redis', { redis, noTcp: true, env: { NODE_ID: `node${i}`, RATE_LIMIT_PER_SEC: '0', ...opts.env } }));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { redis, nodes, stop };
}

/** `n` gateways on a Redis Cluster the test started (REDIS_CLUSTER_NODES = every master); stop() stops only the gateways. */
export async function startGatewaysOnRedisCluster(
  rc: RedisClusterServer,
  n: number,
  env: Record<string, string> = {},
): Promise<{ nodes: Gateway[]; stop(): Promise<void> }> {
  const nodes: Gateway[] = [];
  const stop = async (): Promise<void> => {
    for (const gw of nodes) await gw.stop('SIGTERM').catch(() => undefined);
  };
  try {
    for (let i = 0; i < n; i++) {
      const gwEnv = { REDIS_CLUSTER_NODES: rc.seeds, CHAT_SECRET: TEST_CHAT_SECRET, NODE_ID: `node${i}`, RATE_LIMIT_PER_SEC: '0', ...env };
      nodes.push(await startGateway({ noTcp: true, env: gwEnv }));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { nodes, stop };
}

export interface ChatMsg {
  groupId: string;
  seq: number;
  from: string;
  text: string;
  ts: number;
}

export type Ev = Record<string, unknown> & { type: string };

/** Like Inbox, but taking an item removes only that item: what a test skips stays for the next take. */
export class Mailbox<T> {
  private items: T[] = [];
  private waiters: Array<{ test: (v: T) => boolean; resolve: (v: T) => void }> = [];

  push(v: T): void {
    const i = this.waiters.findIndex((w) => w.test(v));
    if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(v);
    else this.items.push(v);
  }

  take(test: (v: T) => boolean, ms: number, what: string): Promise<T> {
    const i = this.items.findIndex(test);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const w = {
        test,
        resolve: (v: T) => {
          clearTimeout(timer);
          resolve(v);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  peek(): readonly T[] {
    return this.items;
  }
}

/** A WS-JSON member. */
export class JsonChat {
  /** Every chat message, in arrival order. */
  readonly messages: ChatMsg[] = [];
  /** Every other frame: ack, error, created, joined, member_joined/left, members, bye. */
  readonly events = new Mailbox<Ev>();
  token = '';
  groupId = '';
  private watchers = new Set<() => void>();
  /** Client ids unique in this test process: a member that resumes on a new connection must not reuse one (the server would take it for a retry). */
  private static nextId = 0;

  private constructor(readonly ws: WsClient) {
    // Frames that came with the open (the menu) are already in the client's inbox.
    for (const f of ws.frames.peek()) this.onFrame(f);
    ws.ws.on('message', (data: Buffer) => this.onFrame(data.toString()));
  }

  private onFrame(frame: string): void {
    let ev: Ev;
    try {
      ev = JSON.parse(frame) as Ev;
    } catch {
      return;
    }
    if (ev.type === 'message') {
      this.messages.push(ev as unknown as ChatMsg);
      for (const w of [...this.watchers]) w();
    } else this.events.push(ev);
  }

  static async open(gw: Gateway | string): Promise<JsonChat> {
    const ws = await WsClient.connect(typeof gw === 'string' ? gw : gw.wsUrl, 'chat.json');
    const c = new JsonChat(ws);
    await c.events.take((e) => e.type === 'menu', 5000, 'menu');
    return c;
  }

  get closed(): Promise<{ code: number; reason: string }> {
    return this.ws.closed;
  }

  /** Wait for `created` and `joined` (or the error instead). */
  async create(name: string, password: string, ms = 10_000): Promise<string> {
    this.ws.sendJson({ op: 'create', name, password });
    const created = await this.eventOrError('created', ms);
    this.groupId = created['groupId'] as string;
    await this.joined(ms);
    return this.groupId;
  }

  async join(name: string, groupId: string, password: string, since?: number): Promise<Ev> {
    this.ws.sendJson(since === undefined ? { op: 'join', name, groupId, password } : { op: 'join', name, groupId, password, since });
    this.groupId = groupId;
    return this.joined();
  }

  async resume(token: string, since: number): Promise<Ev> {
    this.ws.sendJson({ op: 'resume', token, since });
    return this.joined();
  }

  private async joined(ms = 10_000): Promise<Ev> {
    const j = await this.eventOrError('joined', ms);
    this.token = j['token'] as string;
    this.groupId = j['groupId'] as string;
    return j;
  }

  private async eventOrError(type: string, ms: number): Promise<Ev> {
    const got = await this.events.take((e) => e.type === type || e.type === 'error', ms, type);
    if (got.type === 'error') throw new Error(`${type}: got error ${String(got['code'])}`);
    return got;
  }

  /** Send a chat line; no waiting. Returns the id to match its ack. */
  send(text: string): number {
    const id = ++JsonChat.nextId;
    this.ws.sendJson({ op: 'send', text, id });
    return id;
  }

  /** Send and wait for the reply: the ack's seq, or the error frame's code. */
  async say(text: string, ms = 5000): Promise<{ seq: number } | { error: string }> {
    const id = this.send(text);
    const r = await this.events.take((e) => (e.type === 'ack' && e['id'] === id) || e.type === 'error', ms, `ack ${id}`);
    return r.type === 'ack' ? { seq: r['seq'] as number } : { error: String(r['code']) };
  }

  /** Send and expect an ack; returns its seq. */
  async sayOk(text: string, ms = 5000): Promise<number> {
    const r = await this.say(text, ms);
    if ('error' in r) throw new Error(`send refused: ${r.error}`);
    return r.seq;
  }

  async who(ms = 5000): Promise<string[]> {
    this.ws.sendJson({ op: 'who' });
    const m = await this.events.take((e) => e.type === 'members', ms, 'members');
    return [...(m['names'] as string[])].sort();
  }

  /** Resolve once the messages received satisfy `cond`. */
  untilMessages(cond: (msgs: readonly ChatMsg[]) => boolean, ms: number, what: string): Promise<void> {
    if (cond(this.messages)) return Promise.resolve();
    let w: () => void = () => undefined;
    const p = new Promise<void>((res) => {
      w = () => {
        if (cond(this.messages)) res();
      };
      this.watchers.add(w);
    });
    return within(p, ms, `${what} (have seqs ${summarize(this.seqs())})`).finally(() => this.watchers.delete(w));
  }

  /** Wait until a message with this seq (or a later one) has arrived. */
  untilSeq(seq: number, ms = 10_000): Promise<void> {
    return this.untilMessages((ms_) => ms_.some((m) => m.seq >= seq), ms, `message seq ${seq}`);
  }

  seqs(): number[] {
    return this.messages.map((m) => m.seq);
  }

  get lastSeq(): number {
    return this.messages.reduce((a, m) => Math.max(a, m.seq), 0);
  }

  close(): void {
    this.ws.close();
  }
}

/** `1-5,7,9-12` for failure messages. */
export function summarize(seqs: number[]): string {
  const s = [...seqs].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < s.length; ) {
    let j = i;
    while (j + 1 < s.length && (s[j + 1] as number) === (s[j] as number) + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return out.join(',') || 'none';
}

/** 1..n */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
