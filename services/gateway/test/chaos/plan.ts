// Which scenarios run, at what load. This machine has 2 cores shared with other work (load
// average 15-25 during these runs) and a limit of 20,000 fds per process, so the load is
// modest: 100 groups × 10 members each sending one message every 10 s (100 msg/s, ≈900
// deliveries/s), and for the gateway kill 1,000 × 10 members (≥3,000 on the killed node) at
// one message every 100 s each, over two HAProxy processes (one holds at most ~9,000 proxied
// connections).
import { clusterFailover, connectionFlood, freezeRedis, fuzzThroughBalancer, killGateway, killRedis, rollingRestart, type Load, type Scenario } from './scenarios.js';

export interface Planned {
  key: string;
  scenario: Scenario;
  load: Load;
}

const base: Load = { groups: 100, members: 10, rate: 0.1, processes: 2, balancers: 1 };
const small: Load = { groups: 20, members: 5, rate: 1, processes: 1, balancers: 1 };

export function plan(quick: boolean): Planned[] {
  if (quick)
    return [
      { key: 'rolling', scenario: rollingRestart, load: small },
      { key: 'kill', scenario: killGateway(20), load: small },
    ];
  return [
    { key: 'rolling', scenario: rollingRestart, load: base },
    { key: 'kill', scenario: killGateway(3000), load: { groups: 1000, members: 10, rate: 0.01, processes: 4, balancers: 2 } },
    { key: 'freeze', scenario: freezeRedis(10), load: base },
    { key: 'redis-kill', scenario: killRedis('everysec'), load: base },
    { key: 'redis-kill-always', scenario: killRedis('always'), load: base },
    // 20,000 idle connections over three HAProxy processes (~7,000 each with the members), from 4 flood processes.
    { key: 'flood', scenario: connectionFlood(20_000, 4), load: { ...base, balancers: 3 } },
    // 100,002 fuzz frames through HAProxy in ~60 s, from 2 fuzz processes (3 senders each).
    { key: 'fuzz', scenario: fuzzThroughBalancer(100_000, 2, 60), load: base },
    { key: 'cluster-failover', scenario: clusterFailover(0), load: base },
    { key: 'cluster-failover-wait', scenario: clusterFailover(1), load: base },
    { key: 'cluster-lag', scenario: clusterFailover(0, 2), load: base },
    { key: 'cluster-lag-wait', scenario: clusterFailover(1, 2), load: base },
  ];
}
