// Placeholder until the Redis engine lands (issue 4): fail loudly, never pretend.
import type { Config } from '../../config.js';
import type { Engine } from '../engine.js';

export class RedisEngine {
  constructor(_config: Config) {
    throw new Error('REDIS_URL is set but the Redis engine is not built yet; unset REDIS_URL to run the embedded engine');
  }
}
export type { Engine };
