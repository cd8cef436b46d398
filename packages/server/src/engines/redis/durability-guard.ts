import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.js';
import { checkDurability, DURABILITY_OK, DURABILITY_UNCHECKED, type DurabilityStatus, type RedisDurability } from './durability.js';

/**
 * Whether the Redis behind the command connection keeps what it acknowledges, as
 * `redis_durability` requires (see durability.ts for the verdicts). Forgotten on every
 * disconnect: whatever answers the next connection is verified again before an append
 * is trusted to it. A change of verdict is logged once.
 */
export class DurabilityGuard {
  #status: DurabilityStatus;
  /** The code last logged, so a WARN is written once per change. */
  #logged: string | undefined;
  #checking: Promise<DurabilityStatus> | undefined;

  constructor(
    readonly mode: RedisDurability,
    private readonly log: Pick<Logger, 'info' | 'warn'> | undefined,
    private readonly hooks: {
      /** False once `cmd` is no longer the engine's connection, or the engine closed: the verdict is not kept. */
      readonly current: (cmd: Redis) => boolean;
      /** Runs before the first verdict after a (re)connect is trusted (streams whose head went backwards get a new epoch). */
      readonly beforeTrust: (cmd: Redis) => Promise<void>;
    },
  ) {
    this.#status = mode === 'none' ? DURABILITY_OK : DURABILITY_UNCHECKED;
  }

  get status(): DurabilityStatus {
    return this.#status;
  }

  /** The connection closed: the next Redis may be another one. */
  forget(): void {
    if (this.mode !== 'none') this.#status = DURABILITY_UNCHECKED;
  }

  /**
   * Asks Redis (one check at a time; concurrent callers share it). Throws when Redis
   * could not be asked (the previous verdict stays).
   */
  check(cmd: Redis): Promise<DurabilityStatus> {
    this.#checking ??= (async () => {
      try {
        const reconnected = this.#status.code === 'unchecked';
        const status = await checkDurability(cmd, this.mode);
        if (!this.hooks.current(cmd)) return status;
        // Redis may have come back with less than it acknowledged: find out before appending.
        if (reconnected) await this.hooks.beforeTrust(cmd);
        this.#status = status;
        this.#report(status);
        return status;
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  #report(status: DurabilityStatus): void {
    if (status.code === this.#logged) return;
    const first = this.#logged === undefined;
    this.#logged = status.code;
    if (!status.ok) {
      this.log?.warn({ redis_durability: this.mode, reason: status.code }, `${status.detail ?? status.code}`);
    } else if (!first) {
      this.log?.warn({ redis_durability: this.mode }, 'redis persistence is as redis_durability requires again; appends are accepted');
    } else {
      this.log?.info({ redis_durability: this.mode }, 'redis persistence verified');
    }
  }
}
