// (c) Throughput: PUBLISHERS VUs, each alone in its own group, keep INFLIGHT
// unacknowledged sends; the ack rate is the publish rate the node sustains.
//
//   k6 run -e WS_URL=ws://127.0.0.1:8080/ -e PUBLISHERS=8 -e INFLIGHT=32 loadtest/k6/throughput.ts
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { setTimeout } from 'k6/timers';
import { ackLatency, benchText, createGroups, Member, num, padding } from './lib/chat.ts';

const PUBLISHERS = num('PUBLISHERS', 8);
const INFLIGHT = num('INFLIGHT', 32);
const WARMUP = num('WARMUP', 5);
const DURATION = num('DURATION', 30);
const RING = 1024;
/** The ack-rate floor the run must reach (the smoke run on a small machine lowers it). */
const MIN_ACK_RATE = num('MIN_ACK_RATE', 10_000);

export const options: Options = {
  setupTimeout: '120s',
  scenarios: {
    publishers: {
      executor: 'per-vu-iterations',
      vus: PUBLISHERS,
      iterations: 1,
      maxDuration: `${WARMUP + DURATION + 30}s`,
    },
  },
  thresholds: {
    chat_ack_latency: ['p(95)<50', 'p(99)<100'],
    // The rate is over the whole test, warm-up included: a floor, not the peak.
    chat_acks: [`rate>${MIN_ACK_RATE}`],
    chat_join_failed: ['rate==0'],
  },
};

export function setup(): { groups: string[] } {
  return { groups: createGroups(PUBLISHERS) };
}

export default function (data: { groups: string[] }): void {
  const idx = exec.vu.idInTest - 1;
  const endAt = exec.scenario.startTime + (WARMUP + DURATION) * 1000;
  const pad = padding(num('TEXT_BYTES', 64));
  const sentAt = new Array<number>(RING).fill(0);
  let nextId = 0;
  let inflight = 0;
  const sendOne = (m: Member): void => {
    sentAt[nextId % RING] = Date.now();
    inflight++;
    m.send(benchText(pad), nextId++);
  };
  new Member('ws_json', `p${idx}`, data.groups[idx] as string, {
    joined(m) {
      for (let k = 0; k < Math.min(INFLIGHT, RING); k++) sendOne(m);
      // Bounded: whatever is still unacknowledged 5 s after the end is given up on.
      setTimeout(() => m.close(), Math.max(0, endAt + 5000 - Date.now()));
    },
    acked(m, id) {
      inflight--;
      ackLatency.add(Date.now() - (sentAt[id % RING] as number));
      // Closed loop: each ack frees a slot, until the window ends.
      if (Date.now() < endAt) sendOne(m);
      else if (inflight === 0) m.close();
    },
  });
}
