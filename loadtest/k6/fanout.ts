// (a) Fan-out: GROUPS × MEMBERS over WS JSON; SENDERS per group send at RATE
// msgs/s; latency from the sender's clock to receipt at every other member.
//
//   k6 run -e WS_URL=ws://127.0.0.1:8080/ -e GROUPS=50 -e MEMBERS=20 -e RATE=10 loadtest/k6/fanout.ts
//
// The gateway must run with RATE_LIMIT_PER_SEC=0 (or a limit above RATE) and
// MAX_CONNECTIONS_PER_IP=0 (every VU comes from one address).
import type { Options } from 'k6/options';
import { createGroups, num } from './lib/chat.ts';
import { fanoutMember, type FanoutConfig } from './lib/fanout.ts';

const cfg: FanoutConfig = {
  groups: num('GROUPS', 50),
  members: num('MEMBERS', 20),
  senders: num('SENDERS', 1),
  rate: num('RATE', 10),
  warmupS: num('WARMUP', 10),
  durationS: num('DURATION', 30),
  textBytes: num('TEXT_BYTES', 64),
  mix: 'ws_json:1',
};

export const options: Options = {
  setupTimeout: '120s',
  scenarios: {
    fanout: {
      executor: 'per-vu-iterations',
      vus: cfg.groups * cfg.members,
      iterations: 1,
      maxDuration: `${cfg.warmupS + cfg.durationS + 30}s`,
    },
  },
  thresholds: {
    chat_e2e_latency: ['p(50)<10', 'p(95)<50', 'p(99)<100'],
    chat_join_failed: ['rate<0.001'],
    chat_delivered: ['count>0'],
    ws_connecting: ['p(95)<500'],
  },
};

export function setup(): { groups: string[] } {
  return { groups: createGroups(cfg.groups) };
}

export default function (data: { groups: string[] }): void {
  fanoutMember(cfg, data.groups);
}
