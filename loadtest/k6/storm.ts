// (b) Connection storm: CONNS connections opened at CONNECT_RATE per second,
// each joining a group of GROUP_SIZE (0 = stay at the menu), all held open
// until HOLD seconds after the last one arrived, then closed.
//
//   k6 run -e WS_URL=ws://127.0.0.1:8080/ -e CONNS=10000 -e CONNECT_RATE=1000 loadtest/k6/storm.ts
//
// Watch the gateway's RSS meanwhile (e.g. /metrics process_resident_memory_bytes)
// for the memory per connection; k6 itself needs ~100 KB+ per open socket.
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/experimental/websockets';
import { createGroups, joinFailed, Member, menuLatency, num, WS_URL } from './lib/chat.ts';

const CONNS = num('CONNS', 10_000);
const RATE = num('CONNECT_RATE', 1000);
const GROUP_SIZE = Number(__ENV['GROUP_SIZE'] ?? 50);
const HOLD = num('HOLD', 10);
const ARRIVAL_S = Math.ceil(CONNS / RATE);

export const options: Options = {
  setupTimeout: '300s',
  scenarios: {
    storm: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${ARRIVAL_S}s`,
      preAllocatedVUs: CONNS,
      maxVUs: CONNS,
      gracefulStop: `${HOLD + 30}s`,
    },
  },
  thresholds: {
    ws_connecting: ['p(95)<1000', 'p(99)<2000'],
    chat_menu_latency: ['p(99)<2000'],
    chat_join_failed: ['rate<0.01'],
  },
};

export function setup(): { groups: string[] } {
  return { groups: GROUP_SIZE > 0 ? createGroups(Math.ceil(CONNS / GROUP_SIZE)) : [] };
}

export default function (data: { groups: string[] }): void {
  const idx = exec.scenario.iterationInTest;
  // Everyone stays until HOLD seconds after the last arrival: all CONNS are open together at the end.
  const closeAt = exec.scenario.startTime + (ARRIVAL_S + HOLD) * 1000;
  const later = (close: () => void): void => {
    setTimeout(close, Math.max(0, closeAt - Date.now()));
  };
  if (GROUP_SIZE > 0) {
    new Member('ws_json', `s${idx}`, data.groups[Math.floor(idx / GROUP_SIZE)] as string, { joined: (m) => later(() => m.close()) });
    return;
  }
  // Idle at the menu.
  const opened = Date.now();
  const socket = new WebSocket(WS_URL, null, { headers: { 'Sec-WebSocket-Protocol': 'chat.json' }, tags: { transport: 'ws_json' } });
  socket.onmessage = () => {
    menuLatency.add(Date.now() - opened, { transport: 'ws_json' });
    socket.onmessage = () => undefined;
    later(() => socket.close(1000));
  };
  socket.onerror = () => joinFailed.add(true, { transport: 'ws_json' });
}
