import type { Logger } from '../../logger.js';
import type { RedisDurability } from './durability.js';

export interface RedisEngineOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  readonly url: string;
  /**
   * Prepended to every key and to the fan-out channel, so several deployments can share
   * one Redis. Every node of one cluster must use the same prefix.
   * @default 'tradesync:'
   */
  readonly prefix?: string;
  /** A command that takes longer fails with EngineUnavailableError. @default 2000 */
  readonly commandTimeoutMs?: number;
  /** How long `health()` waits for PING. @default 500 */
  readonly healthTimeoutMs?: number;
  /**
   * How often the node checks that Redis still holds the history it knows (a cheap GET
   * of one key). A flushed or restarted-empty Redis is noticed within this time.
   * @default 1000
   */
  readonly watchIntervalMs?: number;
  /**
   * How often every known stream's head is compared with what this node delivered, a
   * safety net for a lost notification (they are also re-checked on every reconnect).
   * @default 10000
   */
  readonly sweepIntervalMs?: number;
  /**
   * An append resolves once this node's own listeners heard of its events (so a reader
   * of the gateway state after a publish sees it), or after this long at most.
   * @default 1000
   */
  readonly deliveryTimeoutMs?: number;
  /**
   * What Redis must guarantee before an append is acknowledged (`redis_durability`):
   * `aof` needs `appendonly yes`, `fsync` also `appendfsync always`, `none` checks
   * nothing. Verified at open, after every reconnect and every `watchIntervalMs`; while
   * it does not hold, appends fail with EngineUnavailableError and `health()` says why.
   * @default 'fsync'
   */
  readonly durability?: RedisDurability;
  /**
   * When > 0, every append is followed by `WAIT waitReplicas waitTimeoutMs`: fewer
   * replicas acknowledging in time fail the append with EngineUnavailableError (the
   * events may be stored all the same, as after a timeout). @default 0
   */
  readonly waitReplicas?: number;
  /**
   * The WAIT timeout. Below the command timeout, so the reply arrives before the client
   * gives up on the connection. @default commandTimeoutMs minus a quarter (at most 250 ms)
   */
  readonly waitTimeoutMs?: number;
  /** The clock stamping events (ms since the epoch). @default Date.now */
  readonly now?: () => number;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Told when an `onAppend` listener throws; listener errors never fail an append. */
  readonly onListenerError?: (error: unknown) => void;
}

export type ResolvedOptions = Required<Omit<RedisEngineOptions, 'log' | 'onListenerError'>>;

/** The options with every default filled in. */
export function resolveOptions(options: RedisEngineOptions): ResolvedOptions {
  const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
  return {
    url: options.url,
    prefix: options.prefix ?? 'tradesync:',
    commandTimeoutMs,
    healthTimeoutMs: options.healthTimeoutMs ?? 500,
    watchIntervalMs: options.watchIntervalMs ?? 1000,
    sweepIntervalMs: options.sweepIntervalMs ?? 10_000,
    deliveryTimeoutMs: options.deliveryTimeoutMs ?? 1000,
    durability: options.durability ?? 'fsync',
    waitReplicas: options.waitReplicas ?? 0,
    waitTimeoutMs: options.waitTimeoutMs ?? Math.max(1, commandTimeoutMs - Math.min(250, Math.floor(commandTimeoutMs / 4))),
    now: options.now ?? (() => Date.now()),
  };
}
