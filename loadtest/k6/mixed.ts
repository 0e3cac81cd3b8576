// (d) Mixed transports: like fanout.ts, with each group's members split over
// WS JSON and WS text (MIX, e.g. ws_json:10,ws_text:10), latency per
// receiving transport. k6 has no raw TCP socket in its core API, so the TCP
// line members of the Node harness's mixed scenario are left out here (an
// xk6 TCP extension could add them).
//
//   k6 run -e WS_URL=ws://127.0.0.1:8080/ -e MIX=ws_json:10,ws_text:10 loadtest/k6/mixed.ts
import type { Options } from 'k6/options';
import { createGroups, num } from './lib/chat.ts';
import { fanoutMember, type FanoutConfig } from './lib/fanout.ts';

const cfg: FanoutConfig = {
  groups: num('GROUPS', 50),
  members: num('MEMBERS', 20),
  senders: num('SENDERS', 2),
  rate: num('RATE', 5),
  warmupS: num('WARMUP', 10),
  durationS: num('DURATION', 30),
  textBytes: num('TEXT_BYTES', 64),
  mix: __ENV['MIX'] ?? 'ws_json:10,ws_text:10',
};

export const options: Options = {
  setupTimeout: '120s',
  scenarios: {
    mixed: {
      executor: 'per-vu-iterations',
      vus: cfg.groups * cfg.members,
      iterations: 1,
      maxDuration: `${cfg.warmupS + cfg.durationS + 30}s`,
    },
  },
  thresholds: {
    'chat_e2e_latency{transport:ws_json}': ['p(95)<50', 'p(99)<100'],
    'chat_e2e_latency{transport:ws_text}': ['p(95)<50', 'p(99)<100'],
    chat_join_failed: ['rate<0.001'],
    chat_delivered: ['count>0'],
  },
};

export function setup(): { groups: string[] } {
  return { groups: createGroups(cfg.groups) };
}

export default function (data: { groups: string[] }): void {
  fanoutMember(cfg, data.groups);
}
