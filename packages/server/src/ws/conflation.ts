/**
 * Conflated subscriptions (`subscribe` with `params.max_rate`, market and indicator
 * streams only): between two frames only the newest event per entity is kept, and a
 * subscription's events go out at most `max_rate` times a second. A screen then never
 * shows a price that waited behind older ones in a queue.
 *
 * The subscribers of one stream at one rate form a group that conflates once for all of
 * them: an event costs one map write per group, not one per subscriber (measured: per
 * subscriber, 1,000 clients × 1,000 ticks/s were a million writes a second and a whole
 * core). Groups release on fixed slots, multiples of 1000 / max_rate ms, shared by every
 * group of that rate, so a client conflating five symbols gets one frame per slot with
 * all five, and the clients of a slot share its frame bodies (see BatchFrames).
 *
 * Every event keeps its true offset, so a conflated subscriber sees offsets jump; the
 * state after each frame is still exactly the server's at the frame's highest offset,
 * because each of these events carries the whole value of its entity.
 */
import { conflationKey, type StreamKind } from '@tradesync/protocol';
import type { StoredEvent } from '../engines/engine.js';
import { BatchFrames, type PendingEvent } from './frames.js';

/** What a group releases to: a connection that queues the events and writes them when flushed. */
export interface ConflationMember {
  enqueue(event: PendingEvent): void;
  flush(frames?: BatchFrames): void;
}

/** One timer per release slot, shared by every group due then. */
export class ConflationClock {
  readonly #due = new Map<number, Set<ConflationGroup>>();

  /** Releases `group` at `slot` (performance.now() time). */
  schedule(group: ConflationGroup, slot: number): void {
    let groups = this.#due.get(slot);
    if (!groups) {
      this.#due.set(slot, (groups = new Set()));
      setTimeout(() => this.#fire(slot), Math.max(0, Math.ceil(slot - performance.now()))).unref();
    }
    groups.add(group);
  }

  #fire(slot: number): void {
    // Timers may fire a little early by this clock; a release must never come early.
    const early = slot - performance.now();
    if (early > 0) {
      setTimeout(() => this.#fire(slot), Math.ceil(early)).unref();
      return;
    }
    const groups = this.#due.get(slot);
    this.#due.delete(slot);
    if (!groups) return;
    // Every group of the slot queues its events first, so a member of several groups writes one frame.
    const members = new Set<ConflationMember>();
    for (const group of groups) group.release(members);
    const frames = new BatchFrames();
    for (const member of members) member.flush(frames);
  }
}

/** The conflated subscribers of one stream at one rate, and the newest pending event per entity. */
export class ConflationGroup {
  readonly members = new Set<ConflationMember>();
  readonly #pending = new Map<string, PendingEvent>();
  readonly #gapMs: number;
  /** The slot of the next release once one is scheduled, and of the last one. */
  #nextSlot: number | undefined;
  #lastSlot = Number.NEGATIVE_INFINITY;

  constructor(
    readonly stream: string,
    readonly maxRate: number,
    private readonly clock: ConflationClock,
    /** Told each event released, with how many members get it (the per-type sent counts). */
    private readonly released: (type: string, members: number) => void = () => {},
  ) {
    this.#gapMs = 1000 / maxRate;
  }

  /** Events waiting for the next release (one per entity). */
  get size(): number {
    return this.#pending.size;
  }

  /** Keeps `event` in place of an older one of the same entity, and makes sure a release is coming. */
  add(event: PendingEvent): void {
    const key = event.key ?? '';
    const kept = this.#pending.get(key);
    if (kept && kept.offset > event.offset) return;
    this.#pending.set(key, event);
    if (this.#nextSlot !== undefined) return;
    // The next slot of this rate, and never the one just released: releases are a whole gap apart.
    const index = Math.max(Math.ceil(performance.now() / this.#gapMs), Math.round(this.#lastSlot / this.#gapMs) + 1);
    this.#nextSlot = index * this.#gapMs;
    this.clock.schedule(this, this.#nextSlot);
  }

  /** Queues the pending events, oldest offset first, on every member, and adds the members to `touched`. */
  release(touched: Set<ConflationMember>): void {
    this.#lastSlot = this.#nextSlot ?? this.#lastSlot;
    this.#nextSlot = undefined;
    if (this.#pending.size === 0) return;
    const events = [...this.#pending.values()].sort((a, b) => a.offset - b.offset);
    this.#pending.clear();
    for (const member of this.members) {
      for (const event of events) member.enqueue(event);
      touched.add(member);
    }
    for (const event of events) this.released(event.event.type, this.members.size);
  }

  /** The stream restarted (a new epoch): what was kept belongs to the old one. */
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
