// Shared pieces of the k6 scripts: settings from the environment, the custom
// metrics, group creation for setup(), and one chat member per transport on
// k6/experimental/websockets (every k6 from 1.0 to 1.8 ships it; 1.6+ also as k6/websockets).
// k6 (≥ 1.0) runs these .ts files directly; `make k6-check` type-checks them and
// `make k6-smoke K6=path/to/k6` runs each for a few seconds against a local gateway.
import { fail } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket, type MessageEvent } from 'k6/experimental/websockets';
import ws from 'k6/ws';

/** A positive number from the environment, or the default. */
export function num(name: string, def: number): number {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) fail(`${name} must be a positive number, got "${raw}"`);
  return n;
}

/** The gateway's WebSocket endpoint (PROTOCOL.md §2). Load tests only ever target hosts you run. */
export const WS_URL = __ENV['WS_URL'] ?? 'ws://127.0.0.1:8080/';
/** The password of every group the scripts create: a fixed test value, never a real one. */
export const PASSWORD = __ENV['GROUP_PASSWORD'] ?? 'bench-password';

export type Transport = 'ws_json' | 'ws_text';

// ---- metrics (k6 built-ins ws_connecting, ws_msgs_sent, … come on top) ----

/** Sender's clock → receipt at another member (one k6 process: one clock). */
export const e2eLatency = new Trend('chat_e2e_latency', true);
/** `send` → its `ack` (WS JSON). */
export const ackLatency = new Trend('chat_ack_latency', true);
/** Socket opened → menu received. */
export const menuLatency = new Trend('chat_menu_latency', true);
/** Socket opened → welcomed into the group. */
export const joinLatency = new Trend('chat_join_latency', true);
export const delivered = new Counter('chat_delivered');
export const sent = new Counter('chat_sent');
export const acks = new Counter('chat_acks');
export const serverErrors = new Counter('chat_server_errors');
export const joinFailed = new Rate('chat_join_failed');

/** Chat text carries the sender's clock: `bench <ms> <padding>`. */
export const MARK = 'bench ';
export const padding = (bytes: number): string => 'x'.repeat(Math.max(1, bytes - 21));
export const benchText = (pad: string): string => `${MARK}${Date.now()} ${pad}`;

function sentAtOf(text: string, from: number): number | null {
  const at = parseInt(text.slice(from), 10);
  return Number.isFinite(at) ? at : null;
}

/**
 * setup(): create `n` groups through one JSON connection and return their IDs.
 * k6/ws blocks until its socket closes, which is what setup() needs.
 */
export function createGroups(n: number): string[] {
  const ids: string[] = [];
  let error = '';
  const res = ws.connect(WS_URL, { headers: { 'Sec-WebSocket-Protocol': 'chat.json' } }, (socket) => {
    const next = (): void => {
      if (ids.length < n) socket.send(JSON.stringify({ op: 'create', name: 'k6-admin', password: PASSWORD }));
      else socket.close(1000);
    };
    socket.on('message', (data: string) => {
      const m = JSON.parse(data) as { type?: string; groupId?: string; message?: string };
      if (m.type === 'menu' || m.type === 'joined') next();
      else if (m.type === 'created' && typeof m.groupId === 'string') ids.push(m.groupId);
      else if (m.type === 'error') {
        error = m.message ?? 'error';
        socket.close(1000);
      }
    });
    socket.setTimeout(() => {
      error = `timed out after creating ${ids.length} of ${n} groups`;
      socket.close(1000);
    }, 120_000);
  });
  if (!res || res.status !== 101) fail(`setup: WebSocket upgrade to ${WS_URL} failed (${res ? res.status : 'no response'})`);
  if (ids.length < n) fail(`setup: created ${ids.length} of ${n} groups: ${error}`);
  return ids;
}

export interface MemberHooks {
  /** In the group: start sending, schedule the close. */
  joined(m: Member): void;
  /** A `send` was acknowledged (WS JSON only). */
  acked?(m: Member, id: number): void;
}

/** One member: opens its socket, answers the menu, joins `groupId`, records what it receives. */
export class Member {
  readonly socket: WebSocket;
  inGroup = false;
  private readonly opened = Date.now();

  constructor(
    readonly transport: Transport,
    readonly name: string,
    readonly groupId: string,
    private readonly hooks: MemberHooks,
  ) {
    // k6 picks the subprotocol from this header (the constructor's protocols argument is not in every k6).
    const headers: Record<string, string> = transport === 'ws_json' ? { 'Sec-WebSocket-Protocol': 'chat.json' } : {};
    this.socket = new WebSocket(WS_URL, null, { headers, tags: { transport } });
    this.socket.onmessage = (ev?: MessageEvent) => {
      if (ev && typeof ev.data === 'string') this.frame(ev.data);
    };
    this.socket.onerror = () => {
      if (!this.inGroup) joinFailed.add(true, { transport });
    };
  }

  send(text: string, id: number): void {
    if (this.transport === 'ws_json') this.socket.send(JSON.stringify({ op: 'send', text, id }));
    else this.socket.send(text);
    sent.add(1, { transport: this.transport });
  }

  close(): void {
    this.socket.close(1000);
  }

  private welcomed(): void {
    this.inGroup = true;
    joinLatency.add(Date.now() - this.opened, { transport: this.transport });
    joinFailed.add(false, { transport: this.transport });
    this.hooks.joined(this);
  }

  private refused(): void {
    joinFailed.add(true, { transport: this.transport });
    this.close();
  }

  private chat(at: number | null): void {
    if (at === null) return;
    e2eLatency.add(Date.now() - at, { transport: this.transport });
    delivered.add(1, { transport: this.transport });
  }

  private frame(data: string): void {
    if (this.transport === 'ws_json') return this.jsonFrame(data);
    // WS text: the seed's strings, one per frame (PROTOCOL.md §1).
    const i = data.indexOf(': ' + MARK);
    if (i >= 0) return this.chat(sentAtOf(data, i + 2 + MARK.length));
    if (data.startsWith('Hello client')) {
      menuLatency.add(Date.now() - this.opened, { transport: this.transport });
      // Answers pipelined: the server takes them in order.
      for (const answer of ['1', this.name, this.groupId, PASSWORD]) this.socket.send(answer);
    } else if (data === `Hi ${this.name}! welcome to group ${this.groupId}!`) this.welcomed();
    else if (!this.inGroup && (data.startsWith('Wrong ID') || data.startsWith('Wrong password') || data.startsWith('You have chosen'))) this.refused();
  }

  private jsonFrame(data: string): void {
    if (data.startsWith('{"type":"message"')) {
      const m = JSON.parse(data) as { text?: unknown };
      if (typeof m.text === 'string' && m.text.startsWith(MARK)) this.chat(sentAtOf(m.text, MARK.length));
      return;
    }
    const m = JSON.parse(data) as { type?: string; id?: unknown; code?: string };
    switch (m.type) {
      case 'ack':
        acks.add(1);
        if (typeof m.id === 'number') this.hooks.acked?.(this, m.id);
        return;
      case 'menu':
        menuLatency.add(Date.now() - this.opened, { transport: this.transport });
        this.socket.send(JSON.stringify({ op: 'join', name: this.name, groupId: this.groupId, password: PASSWORD }));
        return;
      case 'joined':
        return this.welcomed();
      case 'error':
        serverErrors.add(1, { code: m.code ?? 'unknown' });
        if (!this.inGroup) this.refused();
        return;
    }
  }
}

/** `ws_json:10,ws_text:10` → the transport of member j of a group. */
export function transportOf(j: number, mix: string): Transport {
  const parts = mix.split(',').map((p) => {
    const [t, w] = p.split(':');
    if (t !== 'ws_json' && t !== 'ws_text') fail(`MIX: transports are ws_json and ws_text (k6 has no raw TCP), got "${t}"`);
    return { t: t as Transport, w: Math.max(1, Number(w ?? 1)) };
  });
  const total = parts.reduce((s, p) => s + p.w, 0);
  let k = j % total;
  for (const p of parts) {
    if (k < p.w) return p.t;
    k -= p.w;
  }
  return 'ws_json';
}
