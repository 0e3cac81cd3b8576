// Seeded fuzz: 10,000+ random and malformed frames over WS text, WS JSON and TCP.
// No crash, no unhandled rejection, and no control byte reaches a well-behaved peer.
// Reproduce a failure with FUZZ_SEED=<seed printed in the diagnostic>.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineClient, WsClient } from '../helpers/clients.js';
import { CONTROL, fuzzTcp, fuzzWs, Gen, prng } from '../helpers/fuzz-gen.js';
import { startGateway } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20261125);
const FRAMES_PER_TRANSPORT = 3400; // × 3 transports > 10,000

test(`fuzz: ${FRAMES_PER_TRANSPORT * 3} seeded frames over WS text, WS JSON and TCP (seed ${SEED})`, async (t) => {
  t.diagnostic(`FUZZ_SEED=${SEED}`);
  const gw = await startGateway({ env: { RATE_LIMIT_PER_SEC: '0', MAX_FRAME_BYTES: '4096' } });
  try {
    const owner = await WsClient.connect(gw.wsUrl, 'chat.json');
    owner.sendJson({ op: 'create', name: 'Owner', password: 'pw' });
    const { groupId } = await owner.nextOfType<{ groupId: string }>('created');
    await owner.nextOfType('joined');
    const tcpPeer = await LineClient.connect(gw.tcpPort);
    await tcpPeer.nextLines(4);
    for (const say of ['1', 'TcpPeer', groupId, 'pw']) tcpPeer.send(say);
    await tcpPeer.until(`Hi TcpPeer! welcome to group ${groupId}!`);
    const wsPeer = await WsClient.connect(gw.wsUrl);
    const wsFrames: string[] = [];
    wsPeer.ws.on('message', (d) => wsFrames.push(d.toString()));
    const jsonFrames: string[] = [];
    owner.ws.on('message', (d) => jsonFrames.push(d.toString()));
    for (const say of ['1', 'WsPeer', groupId, 'pw']) wsPeer.send(say);

    const seeds = [SEED, SEED + 1, SEED + 2];
    const counts = await Promise.all([
      fuzzWs(gw.wsUrl, new Gen(prng(seeds[0] as number), groupId), 'chat.text', FRAMES_PER_TRANSPORT),
      fuzzWs(gw.wsUrl, new Gen(prng(seeds[1] as number), groupId), 'chat.json', FRAMES_PER_TRANSPORT),
      fuzzTcp(gw.tcpPort, new Gen(prng(seeds[2] as number), groupId), FRAMES_PER_TRANSPORT),
    ]);
    assert.ok(counts.reduce((a, b) => a + b) >= 10_000);

    // The node is alive and the group still works end to end.
    assert.equal(gw.proc.exitCode, null, 'gateway still running');
    owner.sendJson({ op: 'send', text: 'sentinel' });
    await tcpPeer.until('Owner: sentinel', 20_000);
    await within(
      new Promise<void>((res) => {
        const check = (): void => (wsFrames.includes('Owner: sentinel') ? res() : void wsPeer.ws.once('message', check));
        check();
      }),
      20_000,
      'sentinel at the WS text peer',
    );
    assert.equal((await gw.http('/readyz')).status, 200);

    for (const line of tcpPeer.all) assert.ok(!CONTROL.test(line), `TCP peer got ${JSON.stringify(line)}`);
    for (const f of wsFrames) if (!f.startsWith('Hello client')) assert.ok(!CONTROL.test(f), `WS peer got ${JSON.stringify(f)}`);
    for (const f of jsonFrames) {
      const ev = JSON.parse(f) as Record<string, unknown>;
      for (const k of ['text', 'from', 'name']) if (typeof ev[k] === 'string') assert.ok(!CONTROL.test(ev[k] as string), `JSON peer got ${f}`);
    }
    const errors = gw.output.filter((l) => /"level":(50|60)/.test(l) || /unhandled|Uncaught|TypeError|RangeError/.test(l));
    assert.deepEqual(errors, [], 'no error-level log lines');
    t.diagnostic(`frames: ${counts.join(' + ')}; TCP peer lines ${tcpPeer.all.length}, WS peer frames ${wsFrames.length}`);
    owner.close();
    tcpPeer.close();
    wsPeer.close();
  } finally {
    await gw.stop();
  }
});
