// A fuzz process of the chaos fuzz scenario: the seeded generator of ops/fuzz.test.ts
// (helpers/fuzz-gen.ts) over WS text, WS JSON and TCP at once, through a balancer's
// WebSocket and TCP frontends, paced to `perSecond` frames a second per transport.
import { fuzzTcp, fuzzWs, Gen, prng } from '../helpers/fuzz-gen.js';

export type ToFuzzer = { t: 'fuzz'; wsUrl: string; tcpPort: number; groupId: string; seed: number; framesPerTransport: number; perSecond: number } | { t: 'exit' };
export type FromFuzzer = { t: 'fuzzed'; frames: number[] } | { t: 'failed'; error: string };

const reply = (m: FromFuzzer): void => {
  process.send?.(m);
};

async function fuzz(m: Extract<ToFuzzer, { t: 'fuzz' }>): Promise<void> {
  const gen = (k: number): Gen => new Gen(prng(m.seed + k), m.groupId);
  const pace = { perSecond: m.perSecond };
  const frames = await Promise.all([
    fuzzWs(m.wsUrl, gen(0), 'chat.text', m.framesPerTransport, pace),
    fuzzWs(m.wsUrl, gen(1), 'chat.json', m.framesPerTransport, pace),
    fuzzTcp(m.tcpPort, gen(2), m.framesPerTransport, pace),
  ]);
  reply({ t: 'fuzzed', frames });
}

process.on('message', (raw) => {
  const m = raw as ToFuzzer;
  if (m.t === 'fuzz') fuzz(m).catch((e: unknown) => reply({ t: 'failed', error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  else process.exit(0);
});
process.on('disconnect', () => process.exit(0));
