// Which engines the gateway-level suites run against. Each entry starts a
// gateway wired to that engine (and whatever the engine needs).
// TEST_ENGINES=memory (comma-separated) narrows the matrix for a quick local run.
import { startGateway, type Gateway, type StartOptions } from './gateway.js';
import { RedisServer } from './redis.js';

export type EngineName = 'memory' | 'redis';

const ALL: readonly EngineName[] = ['memory', 'redis'];
const only = process.env['TEST_ENGINES']?.split(',').map((s) => s.trim());

export const ENGINES: readonly EngineName[] = only ? ALL.filter((e) => only.includes(e)) : ALL;

/** The cluster secret every test gateway on Redis shares (resume tokens work across them). */
export const TEST_CHAT_SECRET = 'test-cluster-secret-0123456789abcdef';

export interface EngineStartOptions extends StartOptions {
  /** Redis engine: use this server (e.g. shared by several gateways) instead of starting one for this gateway. */
  redis?: RedisServer;
}

export async function gatewayOn(engine: EngineName, opts: EngineStartOptions = {}): Promise<Gateway> {
  switch (engine) {
    case 'memory':
      return startGateway(opts);
    case 'redis': {
      // A gateway of its own gets a fresh redis-server, stopped with the gateway.
      const own = opts.redis ? null : await RedisServer.start();
      const server = opts.redis ?? (own as RedisServer);
      try {
        const gw = await startGateway({ ...opts, env: { REDIS_URL: server.url, CHAT_SECRET: TEST_CHAT_SECRET, ...opts.env } });
        if (own) gw.addCleanup(() => own.close());
        return gw;
      } catch (e) {
        await own?.close();
        throw e;
      }
    }
  }
}
