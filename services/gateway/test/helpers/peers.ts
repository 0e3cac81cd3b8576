// One "text peer" shape over every text transport, so a transcript is written once.
import { LineClient, RawClient, WsClient } from './clients.js';
import type { Gateway } from './gateway.js';

export interface TextPeer {
  send(s: string): void;
  /** The next server message is exactly `s` (framing removed as the transport defines it). */
  expect(s: string, ms?: number): Promise<void>;
  closed: Promise<unknown>;
  close(): void;
}

export type TextTransport = 'tcp-raw' | 'tcp-line' | 'ws-text';

export async function textPeer(gw: Gateway, kind: TextTransport): Promise<TextPeer> {
  if (kind === 'tcp-raw') {
    const c = await RawClient.connect(gw.tcpPort);
    let first = true;
    return {
      send: (s) => c.send(s),
      // The menu goes out before framing is known and always ends with \n; raw replies carry none.
      expect: (s, ms) => {
        const framed = first ? s + '\n' : s;
        first = false;
        return c.expect(framed, ms);
      },
      closed: c.closed,
      close: () => c.close(),
    };
  }
  if (kind === 'tcp-line') {
    const c = await LineClient.connect(gw.tcpPort);
    return {
      send: (s) => c.send(s),
      expect: async (s, ms) => {
        const got = await c.nextLines(s.split('\n').length, ms);
        if (got !== s) throw new Error(`expected ${JSON.stringify(s)}, got ${JSON.stringify(got)}`);
      },
      closed: c.closed,
      close: () => c.close(),
    };
  }
  const c = await WsClient.connect(gw.wsUrl);
  return {
    send: (s) => c.send(s),
    expect: async (s, ms) => {
      const got = await c.next(ms);
      if (got !== s) throw new Error(`expected ${JSON.stringify(s)}, got ${JSON.stringify(got)}`);
    },
    closed: c.closed,
    close: () => c.close(),
  };
}
