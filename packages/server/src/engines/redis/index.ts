/** The Redis Streams engine (see engine.ts for how its parts fit). */
export { RedisEngine } from './engine.js';
export type { RedisEngineOptions } from './options.js';
export { redactUrl } from './connection.js';
export { checkDurability, judgeDurability, parseInfo, DURABILITY_OK, DURABILITY_UNCHECKED } from './durability.js';
export type { DurabilityCode, DurabilityStatus, RedisDurability } from './durability.js';
