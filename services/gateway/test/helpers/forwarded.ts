// Clients that arrive "from" an address of their choosing through a trusted
// proxy: the gateway runs with TRUSTED_PROXIES=127.0.0.1, WebSocket clients send
// X-Forwarded-For, TCP clients a PROXY v1 header. One machine, many addresses.
import { LineClient, WsClient } from './clients.js';
import type { Gateway } from './gateway.js';

export const TRUST_LOOPBACK = { TRUSTED_PROXIES: '127.0.0.1' } as const;

/** A WS-JSON client from `ip`, its menu read. */
export async function jsonFrom(gw: Gateway, ip: string): Promise<WsClient> {
  const c = await WsClient.connect(gw.wsUrl, 'chat.json', { 'x-forwarded-for': ip });
  await c.nextOfType('menu');
  return c;
}

/** A TCP line client from `ip` (PROXY v1 header first), its menu not yet read. */
export async function tcpFrom(gw: Gateway, ip: string): Promise<LineClient> {
  const c = await LineClient.connect(gw.tcpPort);
  const v6 = ip.includes(':');
  c.socket.write(`PROXY ${v6 ? 'TCP6' : 'TCP4'} ${ip} ${v6 ? '::1' : '127.0.0.1'} 40000 ${gw.tcpPort}\r\n`);
  return c;
}

type Answer = { type: string; code?: string; groupId?: string; message?: string };

/** The answer to a create or join: `joined`/`created`…, or the error. */
export async function answer(c: WsClient, ms = 30_000): Promise<Answer> {
  const f = await c.frames.next(ms, 'a create/join answer', (s) => /"type":"(joined|error)"/.test(s));
  return JSON.parse(f) as Answer;
}

/** The value of one series (first match) in the gateway's /metrics. */
export async function metric(gw: Gateway, name: string, labels = ''): Promise<number> {
  const body = (await gw.http('/metrics', gw.metricsPort)).body;
  for (const line of body.split('\n')) {
    if (!line.startsWith(name)) continue;
    const [series, value] = line.split(' ') as [string, string];
    if (series === name || (series.startsWith(`${name}{`) && series.includes(labels))) return Number(value);
  }
  return NaN;
}
