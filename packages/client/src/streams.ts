import { isConflatable, parseStream, type StreamPosition, type StreamPositionMessage, type StreamState } from '@tradesync/protocol';
import { ClientClosedError, ConnectionLostError } from './errors.js';
import { judgePosition, type StreamFreshness } from './freshness.js';
import type { ResolvedOptions } from './options.js';
import type { LiveEvent, SubscribedReply } from './replica.js';
import type { Requests } from './requests.js';
import {
  Subscription,
  type StateChangeReason,
  type StreamListener,
  type SubscriptionState,
  type SyncedInfo,
  type SyncFailedInfo,
  type SyncMode,
} from './subscription.js';

export interface StreamHandle<S extends StreamState = StreamState> {
  readonly stream: string;
  /** The replica's state with pending optimistic patches. */
  readonly state: S;
  readonly position: StreamPosition | undefined;
  /** true once the first sync of this stream completed. */
  readonly synced: boolean;
  /** What the server's positions proved of the replica, and whether it is stale. */
  readonly freshness: StreamFreshness;
  /** Leaves the stream; the last listener leaving unsubscribes on the server. */
  unsubscribe(): void;
}

export interface StreamsDeps {
  readonly options: ResolvedOptions;
  readonly requests: Pick<Requests, 'send'>;
  isOpen(): boolean;
  emitSynced(info: SyncedInfo): void;
  emitSyncFailed(info: SyncFailedInfo): void;
  /** A checksum proved a replica wrong; it is being replaced by a snapshot. */
  emitDiverged(info: DivergedInfo): void;
  /** A position showed live events lost on the way; the stream is resuming. */
  emitLost(info: LostInfo): void;
  /** A stream turned stale (no position for two of its intervals) or fresh again. */
  emitFreshness(info: StreamFreshness): void;
  /** Debug hook: every change of a subscription's state. */
  onTransition?(sub: Subscription, from: SubscriptionState, to: SubscriptionState): void;
}

/** What a failed checksum says: the replica at `offset` is not the server's state there. */
export interface DivergedInfo {
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
  /** The server's checksum, and the replica's. */
  readonly expected: string;
  readonly actual: string;
  /** Where the mismatch showed: a `stream_position`, or a `subscribed` reply's replayed events. */
  readonly source: 'position' | 'subscribed';
}

/** What a position past the replica says: live events between `have` and `position` never arrived. */
export interface LostInfo {
  readonly stream: string;
  readonly epoch: string;
  /** The replica's offset, and the position's. */
  readonly have: number;
  readonly position: number;
}

/** Freshness counts since the client started. */
export interface FreshnessCounts {
  /** Positions whose checksum matched the replica. */
  verified: number;
  /** Positions that showed live events lost (the replica behind): resumed. */
  behind: number;
  /** Checksum mismatches: resynced from a snapshot. */
  diverged: number;
  /** Streams that turned stale. */
  stale: number;
}

/** At most one slow-event warning per this long (each says how many were not logged). */
const SLOW_EVENT_LOG_MS = 10_000;

/**
 * Every stream the client holds: ref-counted subscriptions, their sync state machines
 * (subscription.ts), and the order in which listeners hear about replies and events.
 *
 * A little over ~300 lines: the sync run and the reply/event dispatch share the
 * listener-ordering rules and the state machine's transitions; split apart, each half
 * would need the other's internals. Degraded polling lives in degraded.ts.
 */
export class Streams {
  readonly #subs = new Map<string, Subscription>();
  readonly #deps: StreamsDeps;
  #runs = 0;
  /** When the last slow-event warning was logged (performance.now), and slow events since, not logged. */
  #slowLoggedAt = Number.NEGATIVE_INFINITY;
  #slowSuppressed = 0;
  /** The server's `stream_position` interval on this connection (0: it sends none, so nothing is judged stale). */
  #positionIntervalMs = 0;
  #watch: ReturnType<StreamsDeps['options']['timers']['setInterval']> | undefined;
  readonly counts: FreshnessCounts = { verified: 0, behind: 0, diverged: 0, stale: 0 };

  constructor(deps: StreamsDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#subs.size;
  }

  get(stream: string): Subscription | undefined {
    return this.#subs.get(stream);
  }

  names(): IterableIterator<string> {
    return this.#subs.keys();
  }

  /**
   * Listens to a stream. The first listener subscribes on the server; more listeners
   * share that one subscription; the last `unsubscribe()` ends it.
   */
  subscribe<S extends StreamState = StreamState>(stream: string, listener: StreamListener<S>, params: { sessionId?: string; maxRate?: number }): StreamHandle<S> {
    const ref = parseStream(stream);
    if (!ref) throw new TypeError(`invalid stream name "${stream}"`);
    const { maxRate } = params;
    if (maxRate !== undefined) {
      if (!(Number.isFinite(maxRate) && maxRate > 0 && maxRate <= 1000)) throw new TypeError(`maxRate must be a positive number of events per second, at most 1000; got ${maxRate}`);
      if (!isConflatable(ref.kind)) throw new TypeError(`maxRate applies to market and indicators streams only; ${ref.kind} streams are never conflated`);
    }
    // Listeners of every state type share the set; each reads the state it asked for.
    const entry = listener as StreamListener;
    let sub = this.#subs.get(stream);
    // One server subscription per stream: listeners share its session scope, so another session cannot join it.
    if (sub && sub.sessionId !== params.sessionId) {
      throw new TypeError(`${stream} is already subscribed ${sub.sessionId === undefined ? 'without a session' : `for session "${sub.sessionId}"`}; a client holds one subscription per stream`);
    }
    if (!sub) {
      const { maxBufferedEvents, timers } = this.#deps.options;
      const deps = this.#deps;
      sub = new Subscription(stream, params.sessionId, maxBufferedEvents, timers, deps.onTransition && ((s, from, to) => deps.onTransition?.(s, from, to)));
      this.#subs.set(stream, sub);
      sub.listeners.add(entry);
      sub.rates.set(entry, maxRate);
      if (this.#deps.isOpen()) void this.sync(sub, 'resume');
    } else {
      const rateBefore = sub.maxRate;
      sub.listeners.add(entry);
      sub.rates.set(entry, maxRate);
      // A listener that changes what the subscription must carry re-subscribes it (from where it stands).
      if (sub.maxRate !== rateBefore) void this.sync(sub, 'resume');
    }
    const owner = sub;
    let left = false;
    return {
      stream,
      get state() {
        return owner.view as S;
      },
      get position() {
        return owner.position;
      },
      get synced() {
        return owner.synced;
      },
      get freshness() {
        return owner.freshness.snapshot(stream);
      },
      unsubscribe: () => {
        if (left) return;
        left = true;
        owner.listeners.delete(entry);
        const rate = owner.maxRate;
        owner.rates.delete(entry);
        if (owner.listeners.size === 0) this.#release(owner);
        else if (owner.maxRate !== rate) void this.sync(owner, 'resume');
      },
    };
  }

  /** Streams with at least one listener, and where each stands. */
  list(): Array<{ stream: string; position: StreamPosition | undefined; synced: boolean; listeners: number; maxRate: number | undefined; freshness: StreamFreshness }> {
    return [...this.#subs.values()].map((s) => ({
      stream: s.stream,
      position: s.position,
      synced: s.synced,
      listeners: s.listeners.size,
      maxRate: s.maxRate,
      freshness: s.freshness.snapshot(s.stream),
    }));
  }

  #release(sub: Subscription): void {
    sub.release();
    this.#subs.delete(sub.stream);
    if (this.#deps.isOpen()) {
      this.#deps.requests.send('unsubscribe', { stream: sub.stream }).catch(() => {
        // The socket went away: the server forgets the subscription with it.
      });
    }
  }

  /* ------------------------------------------------------------------ connection */

  /** The connection opened: resume every stream from where its replica stands. */
  resumeAll(): void {
    for (const sub of this.#subs.values()) void this.sync(sub, 'resume');
  }

  /** The connection dropped: every stream waits, holding what still arrives. `invalidated` (4009): snapshots next. */
  suspendAll(invalidated: boolean): void {
    for (const sub of this.#subs.values()) {
      sub.replica.suspend();
      const state = sub.state;
      // A snapshot that was asked for and not yet received is still owed.
      const owed = invalidated || (state.name === 'idle' && state.next === 'fresh') || (state.name === 'syncing' && (state.mode === 'fresh' || state.queued === 'fresh'));
      sub.moveTo({ name: 'idle', next: owed ? 'fresh' : 'resume' });
    }
  }

  /** Fresh snapshots of the streams named (every subscribed stream when omitted); resolves when they are synced again. */
  async forceSync(streams?: Iterable<string>): Promise<void> {
    const subs = streams === undefined ? [...this.#subs.values()] : [...new Set(streams)].flatMap((name) => this.#subs.get(name) ?? []);
    await Promise.all(subs.map((sub) => this.sync(sub, 'fresh')));
  }

  /* ------------------------------------------------------------------ sync */

  /**
   * Brings one stream up to date. Concurrent triggers share one run: a trigger during a
   * run queues one more pass (`fresh` wins over `resume`), which the run makes before it
   * ends; retries end in `sync_failed`.
   */
  sync(sub: Subscription, mode: SyncMode): Promise<void> {
    const state = sub.state;
    switch (state.name) {
      case 'released':
        return Promise.resolve();
      case 'syncing':
        if (mode === 'fresh' || !state.queued) sub.moveTo({ ...state, queued: mode });
        return state.done;
      case 'idle':
        if (state.next === 'fresh') mode = 'fresh';
        if (!this.#deps.isOpen()) {
          sub.moveTo({ name: 'idle', next: mode });
          return Promise.resolve();
        }
        break;
      case 'live':
        if (!this.#deps.isOpen()) return Promise.resolve();
        break;
    }
    const run = ++this.#runs;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    sub.moveTo({ name: 'syncing', run, mode, queued: undefined, done });
    void this.#run(sub, run).finally(finish);
    return done;
  }

  async #run(sub: Subscription, run: number): Promise<void> {
    const { logger, syncRetries, requestTimeoutMs } = this.#deps.options;
    /** The state while this run owns the subscription; undefined once it does not. */
    const mine = () => {
      const state = sub.state;
      return state.name === 'syncing' && state.run === run ? state : undefined;
    };
    let attempts = 0;
    const fail = (error: Error) => {
      const info: SyncFailedInfo = { stream: sub.stream, error, attempts };
      logger.error('stream sync failed', { stream: sub.stream, error: String(error) });
      for (const listener of sub.listeners) this.#call(() => listener.onSyncFailed?.(info));
      this.#deps.emitSyncFailed(info);
    };
    /** Ends the run: a queued pass starts over with fresh attempts, else the stream rests in `state`. */
    const end = (rest: SubscriptionState): boolean => {
      const state = mine();
      if (!state) return false;
      if (state.queued) {
        sub.moveTo({ ...state, mode: state.queued, queued: undefined });
        attempts = 0;
        return true;
      }
      sub.moveTo(rest);
      return false;
    };
    for (;;) {
      const state = mine();
      if (!state || !this.#deps.isOpen()) return;
      attempts++;
      sub.replica.beginSync();
      const since = state.mode === 'resume' ? sub.position : undefined;
      try {
        const reply = await this.#deps.requests.send(
          'subscribe',
          { stream: sub.stream, ...(since ? { since } : {}), ...subscribeParams(sub) },
          requestTimeoutMs,
        );
        if (!mine()) return;
        const again = this.applyReply(sub, reply);
        const current = mine();
        if (!current) return;
        if (!again) {
          if (end({ name: 'live' })) continue;
          return;
        }
        // Bounded: a server whose replies never close the gap must not be asked forever.
        if (attempts > syncRetries) {
          fail(new Error(`${sub.stream}: replies left a gap after ${attempts} attempts`));
          if (end({ name: 'idle', next: 'resume' })) continue;
          return;
        }
        sub.moveTo({ ...current, mode: again });
      } catch (error) {
        if (error instanceof ConnectionLostError || error instanceof ClientClosedError) return; // resumed on reconnect
        if (!mine()) return;
        if (attempts > syncRetries) {
          fail(error instanceof Error ? error : new Error(String(error)));
          if (end({ name: 'idle', next: 'resume' })) continue;
          return;
        }
      }
    }
  }

  /** One event took over `slowEventMs` to apply and hand to its listeners: a WARN, at most one per SLOW_EVENT_LOG_MS. */
  #slowEvent(event: LiveEvent, ms: number): void {
    const now = performance.now();
    if (now - this.#slowLoggedAt < SLOW_EVENT_LOG_MS) {
      this.#slowSuppressed++;
      return;
    }
    this.#deps.options.logger.warn('processing one event took over the limit', {
      stream: event.stream,
      type: event.type,
      offset: event.offset,
      ms: Math.round(ms),
      limit_ms: this.#deps.options.slowEventMs,
      slow_events_since_last_warning: this.#slowSuppressed,
    });
    this.#slowLoggedAt = now;
    this.#slowSuppressed = 0;
  }

  /* ------------------------------------------------------------------ messages */

  /** A `subscribed` nobody asked for: the stream's history vanished and the server sent a fresh snapshot. */
  onUnrequestedReply(stream: string, reply: SubscribedReply): void {
    const sub = this.#subs.get(stream);
    if (!sub) return;
    // A gap (e.g. live events overflowed the buffer) needs a sync, which may not be running.
    const again = this.applyReply(sub, reply);
    if (again) void this.sync(sub, again);
    else if (sub.state.name === 'idle') sub.moveTo({ name: 'live' });
  }

  onLiveEvents(events: readonly LiveEvent[]): void {
    const touched = new Set<Subscription>();
    const slowMs = this.#deps.options.slowEventMs;
    for (const event of events) {
      const sub = this.#subs.get(event.stream);
      if (!sub) continue;
      const started = slowMs > 0 ? performance.now() : 0;
      const outcome = sub.replica.applyLive(event);
      if (outcome === 'applied') {
        touched.add(sub);
        sub.freshness.unverifiedSince ??= this.#deps.options.timers.now();
        if (sub.patches.length > 0) sub.dropConfirmedPatches();
        // No closure for listeners without onEvent: this runs for every event.
        for (const listener of sub.listeners) if (listener.onEvent) this.#call(() => listener.onEvent?.(event));
      } else if (outcome === 'gap') {
        this.#deps.options.logger.warn('gap in stream; resyncing', { stream: event.stream, have: sub.replica.offset, got: event.offset });
        void this.sync(sub, 'resume');
      }
      if (slowMs > 0) {
        const ms = performance.now() - started;
        if (ms > slowMs) this.#slowEvent(event, ms);
      }
    }
    // One state notification per stream per frame, however many events it held.
    for (const sub of touched) this.notify(sub, 'event');
  }

  /**
   * Applies a `subscribed` reply. Returns how the stream must sync again: `resume` when
   * a gap remains, `fresh` when the replayed state failed the reply's checksum; nothing
   * when it is in sync. (A snapshot that fails its own checksum is still the server's
   * state: it is kept, and the disagreement reported.) Listeners hear things in the order they happened to the replica: replayed events
   * then "synced" for a recovery; for a snapshot, "synced" (the state jumped to the
   * snapshot's offset) before the buffered live events that continue it.
   */
  applyReply(sub: Subscription, reply: SubscribedReply): SyncMode | undefined {
    const result = sub.replica.applySubscribed(reply);
    if (result.diverged !== undefined) this.#diverged(sub, { epoch: reply.epoch, offset: reply.offset, expected: reply.checksum ?? '', actual: result.diverged, source: 'subscribed' });
    const again: SyncMode | undefined = result.gap ? 'resume' : result.diverged !== undefined && result.recovered ? 'fresh' : undefined;
    const announce = () => {
      if (again) return;
      const info: SyncedInfo = {
        stream: sub.stream,
        recovered: result.recovered,
        epoch: sub.replica.epoch ?? reply.epoch,
        offset: sub.replica.offset,
        replayed: result.replayed,
        via: 'socket',
        ...(result.snapshotOffset !== undefined ? { snapshotOffset: result.snapshotOffset } : {}),
      };
      sub.lastSync = info;
      this.announce(sub, info);
    };
    if (result.snapshotOffset !== undefined) announce();
    for (const event of result.applied) {
      for (const listener of sub.listeners) if (listener.onEvent) this.#call(() => listener.onEvent?.(event));
    }
    this.notify(sub, result.recovered ? 'recovered' : 'snapshot');
    if (result.snapshotOffset === undefined) announce();
    return again;
  }

  /* ------------------------------------------------------------------ freshness */

  /** The server's `connected` said how often positions come (0 or absent: never). */
  setPositionInterval(intervalMs: number): void {
    this.#positionIntervalMs = intervalMs;
  }

  /**
   * A `stream_position`: every event up to its offset was written before it, so a
   * replica behind it lost live events (resume), and one at it with another checksum is
   * wrong (snapshot). A matching checksum proves the replica.
   */
  onPosition(position: StreamPositionMessage): void {
    const sub = this.#subs.get(position.stream);
    if (!sub) return;
    const { timers, logger } = this.#deps.options;
    const now = timers.now();
    const freshness = sub.freshness;
    freshness.lastPositionAt = now;
    const verdict = judgePosition(sub.replica, position);
    freshness.unverifiedSince = sub.replica.offset > position.offset && verdict === 'skip' ? now : undefined;
    if (freshness.stale) this.#setStale(sub, false);
    switch (verdict) {
      case 'verified':
        this.counts.verified++;
        // A scoped subscription is not sent the events of other sessions: proven, it stands at the position.
        sub.replica.advanceTo(position.offset);
        freshness.verifiedOffset = position.offset;
        freshness.verifiedAt = now;
        return;
      case 'behind':
        this.counts.behind++;
        logger.warn('live events were lost: the stream is past this replica; resuming', { stream: sub.stream, have: sub.replica.offset, position: position.offset });
        this.#deps.emitLost({ stream: sub.stream, epoch: position.epoch, have: sub.replica.offset, position: position.offset });
        void this.sync(sub, 'resume');
        return;
      case 'diverged':
        this.#diverged(sub, { epoch: position.epoch, offset: position.offset, expected: position.checksum, actual: sub.replica.checksum(), source: 'position' });
        void this.sync(sub, 'fresh');
        return;
      case 'other_epoch':
        void this.sync(sub, 'resume');
        return;
      case 'skip':
        return;
    }
  }

  #diverged(sub: Subscription, mismatch: Omit<DivergedInfo, 'stream'>): void {
    const info: DivergedInfo = { stream: sub.stream, ...mismatch };
    this.counts.diverged++;
    this.#deps.options.logger.warn('replica diverged from the server: its checksum differs; taking a snapshot', { ...info });
    this.#deps.emitDiverged(info);
  }

  /**
   * While the connection is open, checks every live stream against its freshness
   * deadline (see Freshness.staleAt) twice per position interval; a stale stream is
   * flagged and resumed, which also re-registers it on the server.
   */
  watchFreshness(open: boolean): void {
    const { timers } = this.#deps.options;
    timers.clearInterval(this.#watch);
    this.#watch = undefined;
    if (!open || this.#positionIntervalMs <= 0) return;
    const interval = this.#positionIntervalMs;
    this.#watch = timers.setInterval(() => this.checkFreshness(), Math.max(1, Math.round(interval / 2)));
  }

  /** Flags the live streams whose positions stopped coming (see watchFreshness). */
  checkFreshness(): void {
    if (this.#positionIntervalMs <= 0) return;
    const now = this.#deps.options.timers.now();
    for (const sub of this.#subs.values()) {
      const rate = sub.maxRate;
      const at = sub.freshness.staleAt(this.#positionIntervalMs, rate ? 1000 / rate : 0);
      if (at === undefined || now < at || sub.freshness.stale) continue;
      this.counts.stale++;
      this.#deps.options.logger.warn('no stream position from the server for two of its intervals: the stream may be stale; resubscribing', {
        stream: sub.stream,
        silentForMs: now - (sub.freshness.lastPositionAt ?? sub.freshness.liveSince ?? now),
      });
      this.#setStale(sub, true);
      void this.sync(sub, 'resume');
    }
  }

  #setStale(sub: Subscription, stale: boolean): void {
    sub.freshness.stale = stale;
    this.#deps.emitFreshness(sub.freshness.snapshot(sub.stream));
  }

  /** Tells a stream's listeners its visible state changed. */
  notify(sub: Subscription, reason: StateChangeReason): void {
    sub.invalidate();
    // The state is reduced only if a listener asks for it now (onState); onChange
    // listeners read it later, once for many messages.
    let state: StreamState | undefined;
    for (const listener of sub.listeners) {
      if (listener.onState) this.#call(() => listener.onState?.((state ??= sub.view), reason));
      if (listener.onChange) this.#call(() => listener.onChange?.(reason));
    }
  }

  /** Tells a stream's listeners, then the client's, that it is in sync at `info`. */
  announce(sub: Subscription, info: SyncedInfo): void {
    for (const listener of sub.listeners) this.#call(() => listener.onSynced?.(info));
    this.#deps.emitSynced(info);
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#deps.options.logger.error('a stream listener threw', { error: String(error) });
    }
  }
}

/** The `params` of a subscription's `subscribe`, when it has any. */
function subscribeParams(sub: Subscription): { params?: { session_id?: string; max_rate?: number } } {
  const maxRate = sub.maxRate;
  if (!sub.sessionId && maxRate === undefined) return {};
  return { params: { ...(sub.sessionId ? { session_id: sub.sessionId } : {}), ...(maxRate !== undefined ? { max_rate: maxRate } : {}) } };
}
