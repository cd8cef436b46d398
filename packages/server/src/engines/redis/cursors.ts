import { Sequencer } from '@tradesync/protocol';
import type { StoredEvent, StreamHead } from '../engine.js';

/**
 * What this node has delivered to its listeners, per stream, and what to do next: the
 * engine's delivery decisions without any I/O (the engine reads Redis and carries the
 * decisions out; tests drive this directly).
 *
 * Invariant: listeners hear each stream gap-free and in offset order within an epoch.
 * Notifications (pub/sub, at most once) go through the stream's protocol `Sequencer`:
 * the next one is delivered, an old one dropped, one past a hole (a notification was
 * lost while the subscriber reconnected) starts a *fill* from the log, and
 * notifications arriving during a fill wait in the sequencer until it ends.
 *
 * A stream's epoch changes when its history was lost (a flushed Redis, a head that went
 * backwards): the cursor moves to the new epoch and the reset listeners rebuild. The
 * epochs it had before are remembered, so a notification published just before a flush
 * that arrives after the node moved on is dropped rather than taken for another reset.
 */

/** Events read from the log per round trip when filling a gap. */
export const FILL_PAGE = 1000;
/** Beyond this many notifications waiting for a fill, drop them: the log has them all. */
const MAX_PENDING = 10_000;
/** Retired epochs remembered per stream. */
const RETIRED_KEPT = 8;

/** Something the engine carries out, in order. */
export type Step =
  | { readonly kind: 'deliver'; readonly events: readonly StoredEvent[] }
  /** The stream moved from epoch `from` to `head.epoch`: tell the reset listeners. */
  | { readonly kind: 'reset'; readonly stream: string; readonly from: string; readonly head: StreamHead };

/** Steps to carry out now, then the streams to fill from the log. */
export interface Plan {
  readonly steps: Step[];
  readonly fill: Set<string>;
}

/** A page of the log as the read script returns it. */
export type LogPage =
  | { readonly status: 'unknown' }
  | { readonly status: 'trimmed'; readonly epoch: string; readonly head: number; readonly first: number }
  | { readonly status: 'ok'; readonly epoch: string; readonly head: number; readonly first: number; readonly events: StoredEvent[] };

export interface PageOutcome {
  readonly steps: Step[];
  /** `more`: read the next page; `done`: end the fill; `vanished`: the stream has no epoch in Redis any more (ask for its head, which creates one). */
  readonly next: 'more' | 'done' | 'vanished';
  /** Set when events after the cursor were trimmed already: delivery goes on from the oldest kept. */
  readonly trimmed?: { readonly from: number; readonly first: number };
}

/** What a sweep does for a stream, given its meta in Redis. */
export type SweepAction = 'none' | 'vanished' | 'observe' | 'regressed' | 'fill';

export interface Meta {
  readonly epoch: string | undefined;
  readonly head: number;
}

class Cursor {
  readonly sequencer: Sequencer<StoredEvent>;
  /** A fill of this stream is in flight (the sequencer holds notifications meanwhile). */
  filling = false;
  retired: string[] = [];

  constructor(epoch: string, offset: number, maxPending: number) {
    this.sequencer = new Sequencer<StoredEvent>(maxPending, { epoch, offset });
  }

  get epoch(): string {
    return this.sequencer.epoch ?? '';
  }

  get offset(): number {
    return this.sequencer.head;
  }
}

export class Cursors {
  readonly #cursors = new Map<string, Cursor>();

  constructor(readonly maxPending: number = MAX_PENDING) {}

  /** Every stream this node follows. */
  names(): string[] {
    return [...this.#cursors.keys()];
  }

  /** Where delivery of a stream stands, if this node follows it. */
  position(stream: string): { readonly epoch: string; readonly offset: number; readonly filling: boolean; readonly waiting: number } | undefined {
    const c = this.#cursors.get(stream);
    return c && { epoch: c.epoch, offset: c.offset, filling: c.filling, waiting: c.sequencer.kept };
  }

  /** At open: a stored stream starts at its head (the store reads the log up to there). */
  start(stream: string, epoch: string, offset: number): void {
    this.#cursors.set(stream, new Cursor(epoch, offset, this.maxPending));
  }

  /** Judges notifications (in offset order per stream as published). */
  accept(events: readonly StoredEvent[]): Plan {
    const steps: Step[] = [];
    const fill = new Set<string>();
    let ready: StoredEvent[] = [];
    for (const event of events) {
      let cursor = this.#cursors.get(event.stream);
      if (!cursor) {
        // A stream this node never saw: everything from offset 1 is new to it.
        cursor = new Cursor(event.epoch, 0, this.maxPending);
        this.#cursors.set(event.stream, cursor);
      } else if (cursor.retired.includes(event.epoch)) {
        continue;
      } else if (cursor.epoch !== event.epoch) {
        // The stream's history was replaced (another node noticed first and appended).
        if (ready.length > 0) steps.push({ kind: 'deliver', events: ready });
        ready = [];
        steps.push(this.#reset(event.stream, cursor, { epoch: event.epoch, offset: event.offset - 1, first: 1 }));
      }
      switch (cursor.sequencer.offer(event)) {
        case 'applied':
          ready.push(event);
          break;
        case 'gap':
          fill.add(event.stream);
          break;
        case 'buffered':
          // Held: by the fill in flight, or past a hole a failed fill left (fill again).
          if (!cursor.filling) fill.add(event.stream);
          break;
        case 'duplicate':
          break;
      }
    }
    if (ready.length > 0) steps.push({ kind: 'deliver', events: ready });
    return { steps, fill };
  }

  /**
   * Learns a stream's epoch from a reply. A stream seen for the first time starts at
   * 0 and is filled up to `offset` (those events exist but this node never delivered
   * them); a different epoch than the one delivered so far means its history was lost.
   */
  observe(stream: string, epoch: string, offset: number): Plan {
    const cursor = this.#cursors.get(stream);
    if (!cursor) {
      this.#cursors.set(stream, new Cursor(epoch, 0, this.maxPending));
      return { steps: [], fill: new Set(offset > 0 ? [stream] : []) };
    }
    if (cursor.epoch !== epoch && !cursor.retired.includes(epoch)) return { steps: [this.#reset(stream, cursor, { epoch, offset, first: 1 })], fill: new Set() };
    return { steps: [], fill: new Set() };
  }

  /** Starts a fill: the offset to read after, or undefined when the stream is unknown or one is in flight already. */
  beginFill(stream: string): number | undefined {
    const cursor = this.#cursors.get(stream);
    if (!cursor || cursor.filling) return undefined;
    cursor.filling = true;
    cursor.sequencer.hold();
    return cursor.offset;
  }

  /** Takes one page read during a fill; the next read starts after `position(stream).offset`. */
  page(stream: string, page: LogPage): PageOutcome {
    const cursor = this.#cursors.get(stream);
    if (!cursor || page.status === 'unknown') return { steps: [], next: 'vanished' };
    if (page.epoch !== cursor.epoch) return { steps: [this.#reset(stream, cursor, { epoch: page.epoch, offset: page.head, first: page.first })], next: 'done' };
    if (page.status === 'trimmed') {
      // Gone for good: continue from the oldest kept event. The store sees the gap and
      // answers it with a snapshot (its own catch-up reads "trimmed" too).
      const from = cursor.offset;
      cursor.sequencer.moveTo(cursor.epoch, page.first - 1);
      return { steps: [], next: 'more', trimmed: { from, first: page.first } };
    }
    const ready: StoredEvent[] = [];
    for (const event of page.events) {
      const taken = cursor.sequencer.take(event);
      if (taken === 'applied') ready.push(event);
      else if (taken === 'gap') {
        // The log is the authority and has no holes (trimming moves `first`); should one
        // show all the same, deliver what it holds rather than stall behind it.
        cursor.sequencer.moveTo(cursor.epoch, event.offset - 1);
        cursor.sequencer.take(event);
        ready.push(event);
      }
    }
    // A short page reached the head as it was when read; later events are notified.
    return { steps: ready.length > 0 ? [{ kind: 'deliver', events: ready }] : [], next: page.events.length < FILL_PAGE ? 'done' : 'more' };
  }

  /**
   * Ends a fill: the notifications that waited and continue the head are delivered; a
   * hole still open among them (another lost notification) asks for one more round,
   * but never straight after a failure (Redis is likely down; the next sweep retries).
   */
  endFill(stream: string, failed: boolean): { readonly steps: Step[]; readonly again: boolean } {
    const cursor = this.#cursors.get(stream);
    if (!cursor) return { steps: [], again: false };
    cursor.filling = false;
    const { ready, gap } = cursor.sequencer.drain();
    return { steps: ready.length > 0 ? [{ kind: 'deliver', events: ready }] : [], again: gap && !failed };
  }

  /** What a sweep does for a stream whose meta in Redis is `meta`. */
  sweep(stream: string, meta: Meta): SweepAction {
    const cursor = this.#cursors.get(stream);
    // Known here, gone there: its head gets a new epoch now (every node agrees on it).
    if (meta.epoch === undefined) return cursor ? 'vanished' : 'none';
    if (!cursor || cursor.epoch !== meta.epoch) return 'observe';
    if (this.regressed(stream, meta)) return 'regressed';
    if (meta.head > cursor.offset) return 'fill';
    return 'none';
  }

  /**
   * The head went backwards in the epoch delivered: Redis lost acknowledged events. Not
   * while a fill is in flight (its cursor is moving).
   */
  regressed(stream: string, meta: Meta): boolean {
    const cursor = this.#cursors.get(stream);
    return cursor !== undefined && meta.epoch === cursor.epoch && meta.head < cursor.offset && !cursor.filling;
  }

  /**
   * After the regression script ran for a stream seen at `seen`: the reset to its new
   * epoch, unless the cursor moved meanwhile or the script found nothing to do.
   */
  afterRegression(stream: string, seen: { readonly epoch: string }, head: StreamHead): Step | undefined {
    const cursor = this.#cursors.get(stream);
    if (!cursor || cursor.epoch !== seen.epoch || head.epoch === seen.epoch) return undefined;
    return this.#reset(stream, cursor, head);
  }

  /** Whether listeners heard `offset` of `epoch` (or can no longer: the epoch is gone). */
  delivered(stream: string, epoch: string, offset: number): boolean {
    const cursor = this.#cursors.get(stream);
    return !cursor || cursor.epoch !== epoch || cursor.offset >= offset;
  }

  #reset(stream: string, cursor: Cursor, head: StreamHead): Step {
    const from = cursor.epoch;
    cursor.retired = [...cursor.retired.slice(-(RETIRED_KEPT - 1)), from];
    // Notifications of the old epoch are void; a fill in flight keeps holding new ones.
    cursor.sequencer.clear();
    cursor.sequencer.moveTo(head.epoch, head.offset);
    if (cursor.filling) cursor.sequencer.hold();
    return { kind: 'reset', stream, from, head };
  }
}
