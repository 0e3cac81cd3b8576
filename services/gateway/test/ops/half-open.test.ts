// Half-open clients: members in a network namespace whose link goes down without a FIN or an RST
// (a phone that left the Wi-Fi, a NAT that forgot the flow). Nothing tells the gateway; it must
// find out by itself, within what it states:
// - WebSocket, direct or through HAProxy: by its pings (IDLE_TIMEOUT_SECONDS);
// - TCP through HAProxy: HAProxy's client-side keep-alive (clitcpka) for an idle one and its TCP
//   user timeout (tcp-ut) for one with lines in flight (deploy/haproxy/haproxy.cfg); HAProxy then
//   closes the gateway side;
// - TCP direct: the gateway's keep-alive (TCP_KEEPALIVE_SECONDS + 10 probes 1 s apart), which
//   Linux only runs while nothing is in flight: with lines unacknowledged it is the kernel's
//   retransmission limit (net.ipv4.tcp_retries2, ≈ 15 min) or the backpressure bound, since Node
//   cannot set TCP_USER_TIMEOUT. So the direct TCP members here sit each in a group of its own,
//   where nothing is sent to them after the cut (docs/OPERATIONS.md says this).
// Once reaped, presence shows them gone, the other members are told, and the node's connection and
// session counts are back where they were.
// Needs root (ip netns, veth); skipped without it, and failed under CI.
// HALF_OPEN_CLIENTS=500 (default 120) sets how many; `make chaos` runs the larger count.
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gatewayOn } from '../helpers/engines.js';
import type { Gateway } from '../helpers/gateway.js';
import { HaProxy } from '../helpers/haproxy.js';
import { canMakeNamespaces, NetNs } from '../helpers/netns.js';
import { parseMetrics, rssBytes } from '../helpers/proc.js';
import { JsonChat } from '../helpers/redis-cluster.js';
import { RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

const FLEET = resolve(fileURLToPath(import.meta.url), '../../helpers/fleet.js');
const IDLE_TIMEOUT_S = 8; // the gateway's least
const TCP_KEEPALIVE_S = 2;
const LB_KA = { idle: 2, intvl: 1, cnt: 3, ut: 4 }; // HAProxy: 2 s of silence, then 3 probes 1 s apart; 4 s unacknowledged
const total = Math.max(10, Number(process.env['HALF_OPEN_CLIENTS'] ?? 120));
// Spread over the three ways in: direct WebSocket (JSON and text), direct TCP, and TCP and
// WebSocket through HAProxy.
const direct = { json: Math.floor(total * 0.4), text: Math.floor(total * 0.1), lines: Math.floor(total * 0.2) };
const viaLb = { json: Math.floor(total * 0.15), lines: total - direct.json - direct.text - direct.lines - Math.floor(total * 0.15) };

const able = canMakeNamespaces();
const skip = able ? false : process.env['CI'] ? false : 'needs root and ip netns';

/** A fleet process in the namespace: resolves on `ready`, rejects on `failed` or exit. */
function fleet(ns: NetNs, spec: Record<string, unknown>): Promise<{ closed: () => number }> {
  const p = ns.spawn(process.execPath, [FLEET, JSON.stringify(spec)]);
  let closed = 0;
  let out = '';
  return new Promise((res, rej) => {
    p.stdout!.setEncoding('utf8');
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    p.stdout!.on('data', (d: string) => {
      out += d;
      for (const line of d.split('\n')) {
        if (line.startsWith('ready ')) res({ closed: () => closed });
        else if (line.startsWith('closed ')) closed = Number(line.slice(7));
        else if (line.startsWith('failed ')) rej(new Error(`fleet: ${line}\n${out}`));
      }
    });
    p.once('exit', (code) => rej(new Error(`fleet exited (${code}) before ready:\n${out}`)));
  });
}

async function metrics(gw: Gateway): Promise<Map<string, number>> {
  return parseMetrics((await gw.http('/metrics', gw.metricsPort)).body);
}
const connections = (m: Map<string, number>): number =>
  ['ws_text', 'ws_json', 'tcp'].reduce((n, t) => n + (m.get(`chat_connections{transport="${t}"}`) ?? 0), 0);

describe('half-open clients (a link gone without FIN or RST)', { skip }, () => {
  let redis: RedisServer;
  let gw: Gateway;
  let lb: HaProxy;
  let ns: NetNs;
  const clients: JsonChat[] = [];

  before(async () => {
    redis = await RedisServer.start();
    gw = await gatewayOn('redis', {
      redis,
      env: {
        HOST: '0.0.0.0',
        NODE_ID: 'ho1',
        IDLE_TIMEOUT_SECONDS: String(IDLE_TIMEOUT_S),
        TCP_KEEPALIVE_SECONDS: String(TCP_KEEPALIVE_S),
        TRUSTED_PROXIES: '127.0.0.1',
        // Every member in the namespace comes from one address: the per-address budgets are not what is tested.
        MAX_CONNECTIONS_PER_IP: '0',
        AUTH_BUDGET: '0',
        PASSWORD_QUEUE_PER_ADDRESS: '0',
        RATE_LIMIT_PER_SEC: '0',
      },
    });
    lb = await HaProxy.start([gw, gw, gw], {
      host: '0.0.0.0',
      env: { LB_CLITCPKA_IDLE: `${LB_KA.idle}s`, LB_CLITCPKA_INTVL: `${LB_KA.intvl}s`, LB_CLITCPKA_CNT: String(LB_KA.cnt), LB_TCP_USER_TIMEOUT: `${LB_KA.ut}s` },
    });
    ns = NetNs.create('ho');
  });
  after(async () => {
    ns?.removeSync();
    for (const c of clients) c.close();
    await lb?.stop();
    await gw?.stop();
    await redis?.close();
  });

  test(`${total} members in a namespace whose link goes down are reaped within the stated bounds, and leave`, async () => {
    const watcher = await JsonChat.open(gw);
    clients.push(watcher);
    const groupId = await watcher.create('Watcher', 'pw-half-open');
    // A group of its own for each direct TCP member (see the top of the file).
    const loner = await JsonChat.open(gw);
    clients.push(loner);
    const lineGroups: string[] = [];
    for (let i = 0; i < direct.lines; i++) lineGroups.push(await loner.create(`Loner${i}`, 'pw-half-open'));
    await loner.join('Watcher', groupId, 'pw-half-open'); // out of the last one: every loner group is empty
    const before = await metrics(gw);
    const rssBefore = rssBytes(gw.proc.pid!);

    const a = await fleet(ns, { ws: `ws://${ns.hostAddr}:${gw.port}/`, tcp: { host: ns.hostAddr, port: gw.tcpPort }, groupId, lineGroups, password: 'pw-half-open', prefix: 'd', ...direct });
    const b = await fleet(ns, { ws: `ws://${ns.hostAddr}:${lb.ws}/`, tcp: { host: ns.hostAddr, port: lb.tcp }, groupId, password: 'pw-half-open', prefix: 'lb', ...viaLb });
    assert.equal((await watcher.who()).length, total - direct.lines + 2, 'every member of the shared group in presence');
    const joined = await metrics(gw);
    assert.equal(connections(joined), connections(before) + total);
    const rssJoined = rssBytes(gw.proc.pid!);

    // Count the leave notices from here on.
    const left = new Set<string>();
    const counting = (async () => {
      while (left.size < total - direct.lines) {
        const ev = await watcher.events.take((e) => e.type === 'member_left', 60_000, 'member_left');
        left.add(String(ev['name']));
      }
    })();

    const t0 = Date.now();
    ns.linkDown();
    // The bound each way in states: WebSocket closes a socket silent for IDLE_TIMEOUT_SECONDS (its
    // last frame may be up to that long before the cut: 2×); TCP after the keep-alive idle + 10
    // probes; HAProxy after its idle + cnt × intvl, then the gateway sees the FIN at once.
    const bound = Math.max(2 * IDLE_TIMEOUT_S, TCP_KEEPALIVE_S + 10, LB_KA.idle + LB_KA.cnt * LB_KA.intvl, LB_KA.ut) + 3;
    let left_: Map<string, number> = new Map();
    await until(
      async () => {
        left_ = await metrics(gw);
        return connections(left_) === connections(before);
      },
      bound * 1000,
      `the ${total} half-open connections reaped within ${bound} s`,
    ).catch((e: unknown) => {
      const open = ['ws_text', 'ws_json', 'tcp'].map((t) => `${t} ${left_.get(`chat_connections{transport="${t}"}`)}`).join(', ');
      throw new Error(`${e instanceof Error ? e.message : String(e)}; still open: ${open}`);
    });
    const reapedS = (Date.now() - t0) / 1000;
    await counting;
    assert.equal(left.size, total - direct.lines, 'the watcher was told of every one');
    assert.deepEqual((await watcher.who()).sort(), ['Watcher', 'Watcher'], 'presence shows them gone');
    for (const g of lineGroups) {
      await loner.join('Loner', g, 'pw-half-open');
      assert.deepEqual(await loner.who(), ['Loner'], `group ${g}: its TCP member is gone from presence`);
    }

    const after = await metrics(gw);
    for (const state of ['menu', 'auth', 'chat'])
      assert.equal(after.get(`chat_sessions{state="${state}"}`), before.get(`chat_sessions{state="${state}"}`), `sessions in ${state} back where they were`);
    // Nothing in the namespace saw a close: the link was gone before the gateway gave up.
    assert.equal(a.closed() + b.closed(), 0, 'no close reached the namespace');
    // The watcher still chats.
    assert.equal(await watcher.sayOk('still here'), 1);
    const rssAfter = rssBytes(gw.proc.pid!);
    process.stdout.write(
      `# half-open: ${total} members (${JSON.stringify(direct)} direct, ${JSON.stringify(viaLb)} via HAProxy) reaped ${reapedS.toFixed(1)} s after the cut (bound ${bound} s); ` +
        `gateway RSS ${(rssBefore / 2 ** 20).toFixed(1)} → ${(rssJoined / 2 ** 20).toFixed(1)} → ${(rssAfter / 2 ** 20).toFixed(1)} MB\n`,
    );
  });
});
