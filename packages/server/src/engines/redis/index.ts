/** The Redis Streams engine (see engine.ts for how its parts fit). */
export { RedisEngine } from './engine.js';
export type { RedisEngineOptions } from './options.js';
export { judgeDurability, parseInfo } from './durability.js';
