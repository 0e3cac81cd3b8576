// The fan-out member loop shared by fanout.ts and mixed.ts: every VU is one
// member; the first SENDERS members of each group send at RATE msgs/s once
// everyone had WARMUP seconds to join; everyone closes after the window.
import exec from 'k6/execution';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import { benchText, Member, padding, transportOf } from './chat.ts';

export interface FanoutConfig {
  groups: number;
  members: number;
  senders: number;
  rate: number;
  warmupS: number;
  durationS: number;
  textBytes: number;
  mix: string;
}

export function fanoutMember(cfg: FanoutConfig, groupIds: string[]): void {
  const idx = exec.vu.idInTest - 1;
  const g = Math.floor(idx / cfg.members) % cfg.groups;
  const j = idx % cfg.members;
  const groupId = groupIds[g] as string;
  // Every member works to the same clock: the scenario's start (all VUs start together).
  const startAt = exec.scenario.startTime + cfg.warmupS * 1000;
  const endAt = startAt + cfg.durationS * 1000;
  const pad = padding(cfg.textBytes);
  let nextId = 0;
  new Member(transportOf(j, cfg.mix), `k${idx}`, groupId, {
    joined(m) {
      setTimeout(() => m.close(), Math.max(0, endAt + 2000 - Date.now()));
      if (j >= cfg.senders) return;
      // Spread the senders over the interval so groups do not send in lockstep.
      const interval = 1000 / cfg.rate;
      setTimeout(
        () => {
          const timer = setInterval(() => {
            if (Date.now() >= endAt) return clearInterval(timer);
            m.send(benchText(pad), nextId++);
          }, interval);
        },
        Math.max(0, startAt - Date.now()) + Math.random() * interval,
      );
    },
  });
}
