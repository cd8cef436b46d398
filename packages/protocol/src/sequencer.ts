/**
 * The one place that decides, for one stream, whether an event comes next, was seen
 * already, or shows a hole: used by the client's replica, the server's state store and
 * the Redis engine's delivery. Pure, no I/O.
 *
 * Invariant: `head` is the offset of the last event taken in order within `epoch`;
 * an event is handed back as `applied` only when its offset is exactly `head + 1` of
 * the same epoch, so whoever applies what it is given applies every offset once, in
 * order, with no hole.
 *
 * Two ways in:
 * - `offer(event)` for live events, which may arrive early, late or twice. While the
 *   sequencer holds (a sync or a read of the log is in flight) every event is kept for
 *   `drain()`; otherwise the next one is applied, an old one is a duplicate, and one
 *   past a hole (or of another epoch) is kept and reported as a gap.
 * - `take(event)` for events read in order from the authority (a `subscribed` reply, a
 *   page of the log): applied or a duplicate, never kept; a hole is reported as a gap.
 *
 * A conflated subscription (`jumps`) is given only the newest event per entity, so its
 * offsets skip by design: there any later offset of the same epoch comes next, and the
 * invariant becomes "offsets only rise". What it cannot see by itself, a lost frame, the
 * stream's `stream_position` shows.
 */

export interface Sequenced {
  readonly epoch: string;
  readonly offset: number;
}

export type Offered = 'applied' | 'duplicate' | 'gap' | 'buffered';
export type Taken = 'applied' | 'duplicate' | 'gap';

export interface Drained<E> {
  /** Kept events that continue the head, in offset order; the head has moved past them. */
  readonly ready: E[];
  /** Events remain past a hole (they stay kept), or some were dropped for lack of room: fetch what is missing. */
  readonly gap: boolean;
}

export class Sequencer<E extends Sequenced> {
  #epoch: string | undefined;
  #head: number;
  #kept: E[] = [];
  #holding = false;
  #overflowed = false;
  /** Offsets may skip (a conflated subscription): any later one comes next. */
  jumps = false;

  /**
   * @param maxKept most events kept while holding or after a gap; beyond it they are
   *   dropped and the next `drain()` reports a gap (the caller reads them again).
   */
  constructor(
    readonly maxKept: number = Number.POSITIVE_INFINITY,
    position?: { readonly epoch: string; readonly offset: number },
  ) {
    this.#epoch = position?.epoch;
    this.#head = position?.offset ?? 0;
  }

  get epoch(): string | undefined {
    return this.#epoch;
  }

  get head(): number {
    return this.#head;
  }

  /** True from `hold()` (or a gap) until a `drain()` that leaves no hole. */
  get holding(): boolean {
    return this.#holding;
  }

  /** Events kept for the next `drain()`. */
  get kept(): number {
    return this.#kept.length;
  }

  /**
   * The stream is now at `offset` of `epoch` (a first sync, a snapshot, a new epoch).
   * Kept events stay: `drain()` applies those that continue the new position and drops
   * the rest.
   */
  moveTo(epoch: string, offset: number): void {
    this.#epoch = epoch;
    this.#head = offset;
  }

  /** Keeps every offered event until `drain()`: a sync or a read of the log is in flight. */
  hold(): void {
    this.#holding = true;
  }

  offer(event: E): Offered {
    if (this.#holding) {
      this.#keep(event);
      return 'buffered';
    }
    if (event.epoch === this.#epoch) {
      if (event.offset <= this.#head) return 'duplicate';
      if (this.#next(event.offset)) {
        this.#head = event.offset;
        return 'applied';
      }
    }
    // Past a hole, or of an epoch we are not at: keep it for after the catch-up.
    this.#keep(event);
    this.#holding = true;
    return 'gap';
  }

  take(event: E): Taken {
    if (event.epoch !== this.#epoch) return 'gap';
    if (event.offset <= this.#head) return 'duplicate';
    if (!this.#next(event.offset)) return 'gap';
    this.#head = event.offset;
    return 'applied';
  }

  /**
   * Ends the hold: hands back the kept events that continue the head, in order. When a
   * hole remains, the events past it stay kept and the sequencer keeps holding.
   */
  drain(): Drained<E> {
    if (this.#overflowed) {
      this.#overflowed = false;
      this.#kept = [];
      return { ready: [], gap: true };
    }
    const ready: E[] = [];
    const kept = this.#kept.sort((a, b) => a.offset - b.offset);
    this.#kept = [];
    for (let i = 0; i < kept.length; i++) {
      const event = kept[i]!;
      if (event.epoch !== this.#epoch || event.offset <= this.#head) continue;
      if (!this.#next(event.offset)) {
        this.#kept = kept.slice(i).filter((e) => e.epoch === this.#epoch);
        this.#holding = true;
        return { ready, gap: true };
      }
      this.#head = event.offset;
      ready.push(event);
    }
    this.#holding = false;
    return { ready, gap: false };
  }

  /** Forgets kept events (the stream was left or replaced); the position stays. */
  clear(): void {
    this.#kept = [];
    this.#overflowed = false;
    this.#holding = false;
  }

  /** Whether `offset` (past the head, same epoch) continues it. */
  #next(offset: number): boolean {
    return this.jumps || offset === this.#head + 1;
  }

  #keep(event: E): void {
    if (this.#kept.length >= this.maxKept) this.#overflowed = true;
    else this.#kept.push(event);
  }
}
