// In-process engine tests: a group's channel events through the engine's one handler.
import type { Broker, ChannelEvent } from '../../src/engine/engine.js';
import { Inbox } from './wait.js';

const taps = new WeakMap<Broker, Map<string, Inbox<ChannelEvent>>>();

/**
 * Subscribe `b` to group `g`: the group's events in arrival order, as the broker's one handler
 * (Broker.onChannel, registered here once per broker) got them.
 */
export async function listen(b: Broker, g: string): Promise<Inbox<ChannelEvent>> {
  let byGroup = taps.get(b);
  if (!byGroup) {
    const m = new Map<string, Inbox<ChannelEvent>>();
    byGroup = m;
    taps.set(b, m);
    b.onChannel((groupId, ev) => m.get(groupId)?.push(ev));
  }
  const inbox = new Inbox<ChannelEvent>();
  byGroup.set(g, inbox);
  await b.subscribe(g);
  return inbox;
}
