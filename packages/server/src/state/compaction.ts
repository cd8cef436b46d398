import type { Engine } from '../engines/engine.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { StreamEntry, StreamStore } from './store.js';
import type { MigrationRegistry } from './migrations.js';

export interface HistoryLimits {
  readonly maxEvents: number;
  readonly maxAgeMs: number;
  readonly snapshotEvery: number;
  readonly compactIntervalMs: number;
}

/**
 * Bounds each stream's history (by count and by age) and folds what is trimmed into
 * snapshots. Invariant: a snapshot at an offset >= the trim point is stored before
 * any event is trimmed, so state can always be rebuilt as snapshot + the log after it.
 */
export class Compactor {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    private readonly store: StreamStore,
    private readonly engine: Engine,
    private readonly limits: HistoryLimits,
    private readonly migrations: MigrationRegistry,
    private readonly log: Logger,
    /** Snapshots written, passes, trims and failures (`tradesync_snapshots_written_total`, ...); none in tests of the compactor alone. */
    private readonly metrics?: Metrics,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.run(), this.limits.compactIntervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One pass over every stream; passes never overlap. */
  run(now = Date.now()): Promise<void> {
    this.#running ??= this.#pass(now).finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Snapshots every stream at its head (on shutdown, so a restart replays nothing). */
  async snapshotAll(): Promise<void> {
    for (const entry of [...this.store.entries()]) {
      if (entry.head > entry.snapshotOffset) await this.#snapshot(entry);
    }
  }

  async #pass(now: number): Promise<void> {
    this.metrics?.compactions.inc();
    for (const entry of [...this.store.entries()]) {
      try {
        await this.#compact(entry, now);
      } catch (err) {
        this.metrics?.compactionErrors.inc();
        this.log.error({ err, stream: entry.name }, 'compaction failed');
      }
    }
  }

  async #compact(entry: StreamEntry, now: number): Promise<void> {
    if (entry.head === 0) return;
    const byCount = entry.head - this.limits.maxEvents;
    const byAge = await this.engine.offsetBefore(entry.name, new Date(now - this.limits.maxAgeMs).toISOString());
    const cutoff = Math.max(byCount, byAge);
    if (entry.head - entry.snapshotOffset >= this.limits.snapshotEvery || cutoff > entry.snapshotOffset) {
      await this.#snapshot(entry);
    }
    if (cutoff > 0) {
      const removed = await this.engine.trim(entry.name, Math.min(cutoff, entry.snapshotOffset));
      if (removed > 0) {
        this.metrics?.eventsTrimmed.inc(removed);
        this.log.debug({ stream: entry.name, removed, upTo: cutoff }, 'history trimmed');
      }
    }
  }

  async #snapshot(entry: StreamEntry): Promise<void> {
    // Read state, offset and epoch together, synchronously: they describe one moment.
    const { state, head: offset, epoch } = entry;
    await this.engine.saveSnapshot({
      stream: entry.name,
      epoch,
      offset,
      schemaVersion: this.migrations.currentVersion,
      state,
      createdAt: new Date().toISOString(),
    });
    // Counted once the engine holds it: a save that threw wrote nothing.
    this.metrics?.snapshotsWritten.inc();
    if (entry.epoch === epoch) entry.snapshotOffset = Math.max(entry.snapshotOffset, offset);
  }
}
