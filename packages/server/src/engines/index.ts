import type { GatewayConfig } from '../config.js';
import type { Engine } from './engine.js';
import { EmbeddedEngine } from './embedded.js';

/** Chooses the engine named by the configuration; the only place that knows them all. */
export function createEngine(config: GatewayConfig): Engine {
  switch (config.engine) {
    case 'embedded':
      return new EmbeddedEngine({ dataDir: config.dataDir, durability: config.durability });
    default:
      throw new Error(`engine "${config.engine}" is not available`);
  }
}
