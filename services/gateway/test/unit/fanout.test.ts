// The fan-out's cost structure, in-process on the real transports (uWS and node:net on loopback):
// a codec is encoded only when this node has members for it, and once however many they are.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { TrustedProxies } from '../../src/clientip.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import type { Conn, Gate, Inbound } from '../../src/ports.js';
import { Encoded } from '../../src/protocol/codecs.js';
import { TcpTransport } from '../../src/transport/tcp.js';
import { UwsTransport } from '../../src/transport/uws.js';
import { Inbox } from '../helpers/wait.js';

/** Counts how often each encoding is asked for. */
class CountingEncoded extends Encoded {
  asked = { text: 0, json: 0 };
  override get text(): string | null {
    this.asked.text++;
    return super.text;
  }
  override get json(): string | null {
    this.asked.json++;
    return super.json;
  }
}

const message = (seq: number): CountingEncoded =>
  new CountingEncoded({ type: 'message', groupId: '5', seq, from: 'ann', text: `m${seq}`, ts: Date.now() });

/** A gate that admits everyone and hands out the transports' connections to the test. */
class TestGate implements Gate {
  readonly conns = new Inbox<Conn>();
  admit(): boolean {
    return true;
  }
  connect(conn: Conn): Inbound {
    this.conns.push(conn);
    return { id: 't/1', input: () => undefined, reject: () => undefined, closed: () => undefined };
  }
  isReady(): boolean {
    return true;
  }
  isDraining(): boolean {
    return false;
  }
}

describe('fan-out encodes only what this node has members for', () => {
  const config = loadConfig({ PORT: '0', TCP_PORT: '0', HOST: '127.0.0.1', CHAT_SECRET: 'fanout-test-secret-0123456789abcdef' });
  const log = createLogger('silent', 't');
  const gate = new TestGate();
  let ws: UwsTransport;
  let tcp: TcpTransport;
  let port = 0;
  const sockets: WebSocket[] = [];

  before(async () => {
    ws = new UwsTransport(gate, new TrustedProxies([]), config, new Metrics('t'), log);
    tcp = new TcpTransport(gate, new TrustedProxies([]), config, new Metrics('t'), log);
    port = await ws.listen();
  });
  after(() => {
    for (const s of sockets) s.terminate();
    ws.close();
    tcp.stopAccepting();
  });

  test('no members here: nothing is encoded', () => {
    const out = message(1);
    ws.fanout.publish('5', out, null, true);
    tcp.fanout.publish('5', out, null, true);
    assert.deepEqual(out.asked, { text: 0, json: 0 });
  });

  test('JSON members only: JSON is encoded once for all of them, text never', async () => {
    const received = new Inbox<string>();
    for (let i = 0; i < 3; i++) {
      const s = new WebSocket(`ws://127.0.0.1:${port}/`, 'chat.json');
      sockets.push(s);
      s.on('message', (d) => received.push(d.toString()));
      await new Promise((resolve, reject) => s.once('open', resolve).once('error', reject));
      (await gate.conns.next(5000, 'the transport to hand over the connection')).subscribe('5');
    }
    const out = message(2);
    ws.fanout.publish('5', out, null, true);
    tcp.fanout.publish('5', out, null, true);
    for (let i = 0; i < 3; i++) assert.equal(JSON.parse(await received.next(5000, `delivery ${i + 1}`)).seq, 2);
    assert.equal(out.asked.text, 0, 'no text members: no text encoding');
    assert.equal(out.asked.json, 1, 'one encoding for three members');
  });
});
