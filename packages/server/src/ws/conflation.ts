/**
 * Conflated subscriptions (`subscribe` with `params.max_rate`, market and indicator
 * streams only): between two frames a subscription keeps only the newest event per
 * entity, and its events go out in at most `max_rate` frames a second. A screen then
 * never shows a price that waited behind older ones in a queue.
 *
 * Every event keeps its true offset, so a conflated subscriber sees offsets jump; the
 * state after each frame is still exactly the server's at the frame's highest offset,
 * because each of these events carries the whole value of its entity.
 */
import { conflationKey, type StreamKind } from '@tradesync/protocol';
import type { StoredEvent } from '../engines/engine.js';
import { BatchFrames, type PendingEvent } from './frames.js';

/** What the clock releases: a connection with conflated events waiting. */
export interface ConflationTarget {
  flush(frames?: BatchFrames): void;
}

/**
 * Release times are rounded up to this grain, so subscribers that received the same
 * events at the same moment are flushed by one timer, in one pass that shares their
 * frame bodies (see BatchFrames), instead of a timer each.
 */
const GRAIN_MS = 5;

/** One timer per release time, shared by every connection due then. */
export class ConflationClock {
  readonly #due = new Map<number, Set<ConflationTarget>>();

  /** Flushes `target` at `at` (performance.now() time, rounded up to the grain). */
  schedule(target: ConflationTarget, at: number): void {
    const slot = Math.ceil(at / GRAIN_MS) * GRAIN_MS;
    let targets = this.#due.get(slot);
    if (!targets) {
      this.#due.set(slot, (targets = new Set()));
      setTimeout(() => this.#fire(slot), Math.max(0, slot - performance.now())).unref();
    }
    targets.add(target);
  }

  #fire(slot: number): void {
    // Timers may fire a little early by this clock; a release must never come early.
    const early = slot - performance.now();
    if (early > 0) {
      setTimeout(() => this.#fire(slot), Math.ceil(early)).unref();
      return;
    }
    const targets = this.#due.get(slot);
    this.#due.delete(slot);
    if (!targets) return;
    const frames = new BatchFrames();
    for (const target of targets) target.flush(frames);
  }
}

/** The newest event per entity of one conflated subscription, and when its next frame may go. */
export class Conflation {
  readonly #pending = new Map<string, PendingEvent>();
  readonly #gapMs: number;
  /** Monotonic time from which the next frame may go. */
  #nextAt = 0;
  #scheduled = false;

  constructor(
    readonly maxRate: number,
    private readonly clock: ConflationClock,
  ) {
    this.#gapMs = 1000 / maxRate;
  }

  /** Events waiting for the next frame (one per entity). */
  get size(): number {
    return this.#pending.size;
  }

  /** Keeps `event` in place of an older one of the same entity. */
  add(event: PendingEvent): void {
    const key = event.key ?? '';
    const kept = this.#pending.get(key);
    if (kept && kept.offset > event.offset) return;
    this.#pending.set(key, event);
  }

  /**
   * The events for a frame now, oldest offset first, when a frame may go now; otherwise
   * none, and `target` is flushed again once it may.
   */
  release(now: number, target: ConflationTarget): PendingEvent[] {
    // A timer set for the last wait has come due (the clock never fires early).
    if (now >= this.#nextAt) this.#scheduled = false;
    if (this.#pending.size === 0) return [];
    if (now < this.#nextAt) {
      if (!this.#scheduled) {
        this.#scheduled = true;
        this.clock.schedule(target, this.#nextAt);
      }
      return [];
    }
    const events = [...this.#pending.values()].sort((a, b) => a.offset - b.offset);
    this.#pending.clear();
    this.#nextAt = now + this.#gapMs;
    return events;
  }

  /** The subscription ended or restarted: nothing kept goes out. */
  clear(): void {
    this.#pending.clear();
  }
}

/** Of `events` (ascending), the newest per entity, ascending: what a conflated resume replays. */
export function newestPerEntity(kind: StreamKind, events: readonly StoredEvent[]): StoredEvent[] {
  const newest = new Map<string, StoredEvent>();
  for (const event of events) {
    const key = conflationKey(kind, event.data) ?? '';
    newest.delete(key);
    newest.set(key, event);
  }
  return [...newest.values()];
}
