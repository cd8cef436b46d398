import type { GatewayConfig } from '../config.js';
import { createLogger } from '../logger.js';
import type { Engine } from './engine.js';
import { EmbeddedEngine } from './embedded.js';
import { RedisEngine } from './redis/index.js';

/** Chooses the engine named by the configuration; the only place that knows them all. */
export function createEngine(config: GatewayConfig): Engine {
  switch (config.engine) {
    case 'embedded': {
      const log = createLogger(config.logLevel).child({ component: 'embedded-engine' });
      return new EmbeddedEngine({
        dataDir: config.dataDir,
        durability: config.durability,
        onListenerError: (err) => log.error({ err }, 'an append listener threw'),
        onCheckpointError: (err) => log.warn({ err }, 'a background WAL checkpoint failed; commits checkpoint the log themselves meanwhile'),
      });
    }
    case 'redis': {
      const log = createLogger(config.logLevel).child({ component: 'redis-engine' });
      return new RedisEngine({
        url: config.redisUrl,
        durability: config.redis.durability,
        waitReplicas: config.redis.waitReplicas,
        log,
        onListenerError: (err) => log.error({ err }, 'an append listener threw'),
      });
    }
    default:
      throw new Error(`engine "${(config as { engine: string }).engine}" is not available`);
  }
}
