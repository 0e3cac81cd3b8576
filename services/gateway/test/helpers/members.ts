// Members of a group on a real gateway, one per transport: a JSON WebSocket client that creates or
// joins, and text clients (TCP lines, WebSocket text) that join through the seed's menu.
import assert from 'node:assert/strict';
import { LineClient, WsClient } from './clients.js';
import type { Gateway } from './gateway.js';
import { MENU } from './transcript.js';

export type Ev = Record<string, unknown> & { type: string };

/** A chat.json client past its menu event. */
export async function jsonClient(gw: Gateway): Promise<WsClient> {
  const c = await WsClient.connect(gw.wsUrl, 'chat.json');
  assert.equal((await c.nextJson<Ev>()).type, 'menu');
  return c;
}

/** A JSON client that created a group: the client, the group ID and its resume token. */
export async function jsonCreate(gw: Gateway, name: string, password: string): Promise<{ c: WsClient; groupId: string; token: string }> {
  const c = await jsonClient(gw);
  c.sendJson({ op: 'create', name, password });
  const { groupId } = await c.nextOfType<{ groupId: string }>('created');
  const { token } = await c.nextOfType<{ token: string }>('joined');
  return { c, groupId, token };
}

/** A JSON client that joined `groupId` (its `joined` event consumed; the replayed history follows). */
export async function jsonJoin(gw: Gateway, name: string, groupId: string, password: string): Promise<{ c: WsClient; token: string; seq: number }> {
  const c = await jsonClient(gw);
  c.sendJson({ op: 'join', name, groupId, password });
  const joined = await c.nextJson<Ev>();
  assert.equal(joined.type, 'joined', JSON.stringify(joined));
  return { c, token: joined['token'] as string, seq: joined['seq'] as number };
}

/** A TCP line client that joined through the menu (the welcome consumed; the replayed history follows). */
export async function tcpJoin(gw: Gateway, name: string, groupId: string, password: string): Promise<LineClient> {
  const t = await LineClient.connect(gw.tcpPort);
  assert.equal(await t.nextLines(4), MENU);
  for (const [say, hear] of [
    ['1', 'Enter your name: '],
    [name, 'Enter group ID: '],
    [groupId, 'Enter password: '],
    [password, `Hi ${name}! welcome to group ${groupId}!`],
  ] as const) {
    t.send(say);
    assert.equal(await t.next(), hear);
  }
  return t;
}

/** A WebSocket text client that joined through the menu (the welcome consumed). */
export async function wsTextJoin(gw: Gateway, name: string, groupId: string, password: string): Promise<WsClient> {
  const w = await WsClient.connect(gw.wsUrl, 'chat.text');
  assert.equal(await w.next(), MENU);
  for (const [say, hear] of [
    ['1', 'Enter your name: '],
    [name, 'Enter group ID: '],
    [groupId, 'Enter password: '],
    [password, `Hi ${name}! welcome to group ${groupId}!`],
  ] as const) {
    w.send(say);
    assert.equal(await w.next(), hear);
  }
  return w;
}
