import { crc32 } from 'node:zlib';
import { POSITION_QUIET_EVERY, stateChecksum, stateForSession, type StreamState } from '@tradesync/protocol';
import type { Metrics } from '../metrics.js';
import type { StreamEntry, StreamStore } from '../state/store.js';
import type { PositionNow } from './connection.js';
import type { Fanout } from './fanout.js';
import { BatchFrames, SharedMessage } from './frames.js';

/** Longest run of position work in one turn of the event loop. */
const SLICE_MS = 2;

/**
 * A tick's sends are spread over this share of the interval, in steps STEP_MS apart, so
 * a stream's position normally comes at most 1.25 intervals after its previous one (a
 * client calls a stream stale after 2 without one), and a thousand streams are never
 * one burst.
 */
const SPREAD_SHARE = 0.25;
const STEP_MS = 5;
/** Fewer streams than this per step are not worth a timer: a tick with up to this many due sends them at once. */
const MIN_PER_STEP = 8;

/**
 * Tells every subscriber where each stream stands, with the checksum of its state there
 * (`stream_position`): a client whose replica is behind has lost live events, and one at
 * the same offset with another checksum holds a wrong state. Sent every `intervalMs` for
 * streams that had events since their last position, every POSITION_QUIET_EVERY intervals for
 * the others.
 *
 * A checksum is computed once per stream and offset (states are immutable, so it is
 * kept by state object), however many subscribers and `subscribed` replies read it; a
 * session-scoped subscription's is of the state it sees (once per session and offset).
 */
export class Positions {
  /** What each stream's last position said, and the ticks since. */
  readonly #sent = new Map<string, { epoch: string; offset: number; quietTicks: number }>();
  /** The message of each stream's position at its current state (per session scope: '' for the whole stream), built once for all subscribers. */
  readonly #current = new Map<string, Map<string, PositionNow & { readonly state: StreamState }>>();
  readonly #checksums = new WeakMap<StreamState, string>();
  readonly #sessionChecksums = new WeakMap<StreamState, Map<string, string>>();
  #timer: NodeJS.Timeout | undefined;
  /** A tick's slices are still being sent. */
  #sending = false;
  /** The timer of the tick's next step, while it has one. */
  #nextStep: NodeJS.Timeout | undefined;
  /** Stopped: slices in flight end. */
  #stopped = false;

  constructor(
    private readonly store: StreamStore,
    private readonly fanout: Fanout,
    private readonly intervalMs: number,
    private readonly metrics: Metrics,
  ) {}

  start(): void {
    this.#stopped = false;
    if (this.intervalMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#nextStep);
    this.#sending = false;
    this.#stopped = true;
  }

  /** The checksum of a stream's state at its head, as a subscription scoped to `session` sees it (the whole state without one). */
  checksumOf(entry: StreamEntry, session?: string): string {
    const state = entry.state;
    if (session === undefined) {
      let checksum = this.#checksums.get(state);
      if (checksum === undefined) this.#checksums.set(state, (checksum = this.#compute(state)));
      return checksum;
    }
    let bySession = this.#sessionChecksums.get(state);
    if (!bySession) this.#sessionChecksums.set(state, (bySession = new Map<string, string>()));
    let checksum = bySession.get(session);
    if (checksum === undefined) bySession.set(session, (checksum = this.#compute(stateForSession(entry.kind, state, session))));
    return checksum;
  }

  #compute(state: StreamState): string {
    // The monotonic clock, not process.cpuUsage(): the computation is synchronous, so its
    // wall time is the event loop's time it took, and two getrusage calls per checksum
    // cost as much as a small state's checksum (measured: ~2.7 µs each).
    const started = performance.now();
    // zlib's CRC-32 is the same function as the protocol's default, several times faster.
    const checksum = stateChecksum(state, crc32);
    this.metrics.checksums.inc();
    this.metrics.checksumSeconds.inc((performance.now() - started) / 1000);
    return checksum;
  }

  /** A stream's position at its head now, as a subscription scoped to `session` sees it (see Connection.sendPosition). */
  readonly positionOf = (stream: string, session?: string): PositionNow | undefined => {
    const entry = this.store.get(stream);
    if (!entry) return undefined;
    let byScope = this.#current.get(stream);
    if (!byScope) this.#current.set(stream, (byScope = new Map<string, PositionNow & { readonly state: StreamState }>()));
    const scope = session ?? '';
    const cached = byScope.get(scope);
    if (cached && cached.state === entry.state && cached.epoch === entry.epoch && cached.offset === entry.head) return cached;
    const { epoch, head: offset } = entry;
    const message = new SharedMessage('stream_position', { stream, epoch, offset, checksum: this.checksumOf(entry, session) });
    const position = { epoch, offset, message, state: entry.state };
    byScope.set(scope, position);
    return position;
  };

  /**
   * One interval: each stream that is due sends its position to every subscriber. The
   * work is spread over a quarter of the interval (see SPREAD_SHARE), each step at most
   * SLICE_MS, so live events are not held up behind a thousand checksums and sends.
   * Measured, 1,000 streams with an event each per second: one synchronous pass raised
   * the events' p99 from 14 to ~70 ms; slices of 2 ms, one per turn of the event loop,
   * still left it at 10.5–11.7 ms against 4.3–4.5 with positions off, as an event waits
   * for a slice in each of the turns it takes (append, commit, flush).
   */
  tick(): void {
    // A tick still sending (very many streams) is finished first; this one is skipped.
    if (this.#sending) return;
    const due: string[] = [];
    for (const [stream] of this.fanout.subscriptions()) {
      const entry = this.store.get(stream);
      if (!entry) continue;
      const last = this.#sent.get(stream);
      const moved = !last || last.epoch !== entry.epoch || last.offset !== entry.head;
      if (!moved && ++last.quietTicks < POSITION_QUIET_EVERY) continue;
      due.push(stream);
    }
    // Streams nobody watches any more are forgotten.
    for (const stream of this.#sent.keys()) {
      if (this.fanout.subscriberCount(stream) === 0) {
        this.#sent.delete(stream);
        this.#current.delete(stream);
      }
    }
    const steps = Math.max(1, Math.floor((this.intervalMs * SPREAD_SHARE) / STEP_MS));
    this.#sendSlices(due, 0, Math.max(MIN_PER_STEP, Math.ceil(due.length / steps)));
  }

  /** Sends up to `perStep` of the due streams' positions from `from` on, then the rest STEP_MS later. */
  #sendSlices(due: readonly string[], from: number, perStep: number): void {
    this.#nextStep = undefined;
    const until = performance.now() + SLICE_MS;
    const end = Math.min(due.length, from + perStep);
    let i = from;
    for (; i < end && (i === from || performance.now() < until); i++) this.#sendOne(due[i]!);
    this.#sending = i < due.length && !this.#stopped;
    if (!this.#sending) return;
    this.#nextStep = setTimeout(() => this.#sendSlices(due, i, perStep), STEP_MS);
    this.#nextStep.unref();
  }

  /** Sends one stream's position (as each subscriber's scope sees it) to all its subscribers. */
  #sendOne(stream: string): void {
    const entry = this.store.get(stream);
    const subscribers = this.fanout.subscribersOf(stream);
    if (!entry || !subscribers) return;
    this.#sent.set(stream, { epoch: entry.epoch, offset: entry.head, quietTicks: 0 });
    const scopes = new Set<string>();
    // Subscribers flushing the same queued events share their encoded batch body.
    const frames = new BatchFrames();
    for (const connection of subscribers) {
      const scope = connection.scopeOf(stream);
      scopes.add(scope ?? '');
      const position = this.positionOf(stream, scope);
      if (position) connection.sendPosition(stream, position, frames);
    }
    // Sessions nobody watches any more are forgotten.
    const byScope = this.#current.get(stream);
    if (byScope) for (const scope of byScope.keys()) if (!scopes.has(scope)) byScope.delete(scope);
  }
}
