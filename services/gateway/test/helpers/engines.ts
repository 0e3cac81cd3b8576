// Which engines the gateway-level suites run against. Each entry starts a
// gateway wired to that engine (and whatever the engine needs).
import { startGateway, type Gateway, type StartOptions } from './gateway.js';

export type EngineName = 'memory';

export const ENGINES: readonly EngineName[] = ['memory'];

export async function gatewayOn(engine: EngineName, opts: StartOptions = {}): Promise<Gateway> {
  switch (engine) {
    case 'memory':
      return startGateway(opts);
  }
}
