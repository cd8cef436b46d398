import { parseStream, type StreamPosition, type StreamState } from '@tradesync/protocol';
import { ClientClosedError, ConnectionLostError } from './errors.js';
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
  /** Leaves the stream; the last listener leaving unsubscribes on the server. */
  unsubscribe(): void;
}

export interface StreamsDeps {
  readonly options: ResolvedOptions;
  readonly requests: Pick<Requests, 'send'>;
  isOpen(): boolean;
  emitSynced(info: SyncedInfo): void;
  emitSyncFailed(info: SyncFailedInfo): void;
  /** Debug hook: every change of a subscription's state. */
  onTransition?(sub: Subscription, from: SubscriptionState, to: SubscriptionState): void;
}

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
  subscribe<S extends StreamState = StreamState>(stream: string, listener: StreamListener<S>, params: { sessionId?: string }): StreamHandle<S> {
    if (!parseStream(stream)) throw new TypeError(`invalid stream name "${stream}"`);
    let sub = this.#subs.get(stream);
    if (!sub) {
      const { maxBufferedEvents, timers } = this.#deps.options;
      const deps = this.#deps;
      sub = new Subscription(stream, params.sessionId, maxBufferedEvents, timers, deps.onTransition && ((s, from, to) => deps.onTransition?.(s, from, to)));
      this.#subs.set(stream, sub);
      if (this.#deps.isOpen()) void this.sync(sub, 'resume');
    }
    // Listeners of every state type share the set; each reads the state it asked for.
    const entry = listener as StreamListener;
    sub.listeners.add(entry);
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
      unsubscribe: () => {
        if (left) return;
        left = true;
        owner.listeners.delete(entry);
        if (owner.listeners.size === 0) this.#release(owner);
      },
    };
  }

  /** Streams with at least one listener, and where each stands. */
  list(): Array<{ stream: string; position: StreamPosition | undefined; synced: boolean; listeners: number }> {
    return [...this.#subs.values()].map((s) => ({ stream: s.stream, position: s.position, synced: s.synced, listeners: s.listeners.size }));
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

  /** Fresh snapshots of every subscribed stream; resolves when all are synced again. */
  async forceSync(): Promise<void> {
    await Promise.all([...this.#subs.values()].map((sub) => this.sync(sub, 'fresh')));
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
          { stream: sub.stream, ...(since ? { since } : {}), ...(sub.sessionId ? { params: { session_id: sub.sessionId } } : {}) },
          requestTimeoutMs,
        );
        if (!mine()) return;
        const gap = this.applyReply(sub, reply);
        const current = mine();
        if (!current) return;
        if (!gap) {
          if (end({ name: 'live' })) continue;
          return;
        }
        // Bounded: a server whose replies never close the gap must not be asked forever.
        if (attempts > syncRetries) {
          fail(new Error(`${sub.stream}: replies left a gap after ${attempts} attempts`));
          if (end({ name: 'idle', next: 'resume' })) continue;
          return;
        }
        sub.moveTo({ ...current, mode: 'resume' });
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

  /* ------------------------------------------------------------------ messages */

  /** A `subscribed` nobody asked for: the stream's history vanished and the server sent a fresh snapshot. */
  onUnrequestedReply(stream: string, reply: SubscribedReply): void {
    const sub = this.#subs.get(stream);
    if (!sub) return;
    // A gap (e.g. live events overflowed the buffer) needs a sync, which may not be running.
    if (this.applyReply(sub, reply)) void this.sync(sub, 'resume');
    else if (sub.state.name === 'idle') sub.moveTo({ name: 'live' });
  }

  onLiveEvents(events: readonly LiveEvent[]): void {
    const touched = new Set<Subscription>();
    for (const event of events) {
      const sub = this.#subs.get(event.stream);
      if (!sub) continue;
      const outcome = sub.replica.applyLive(event);
      if (outcome === 'applied') {
        touched.add(sub);
        if (sub.patches.length > 0) sub.dropConfirmedPatches();
        // No closure for listeners without onEvent: this runs for every event.
        for (const listener of sub.listeners) if (listener.onEvent) this.#call(() => listener.onEvent?.(event));
      } else if (outcome === 'gap') {
        this.#deps.options.logger.warn('gap in stream; resyncing', { stream: event.stream, have: sub.replica.offset, got: event.offset });
        void this.sync(sub, 'resume');
      }
    }
    // One state notification per stream per frame, however many events it held.
    for (const sub of touched) this.notify(sub, 'event');
  }

  /**
   * Applies a `subscribed` reply; true when a gap remains and the stream must sync again.
   * Listeners hear things in the order they happened to the replica: replayed events
   * then "synced" for a recovery; for a snapshot, "synced" (the state jumped to the
   * snapshot's offset) before the buffered live events that continue it.
   */
  applyReply(sub: Subscription, reply: SubscribedReply): boolean {
    const result = sub.replica.applySubscribed(reply);
    const announce = () => {
      if (result.gap) return;
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
    return result.gap;
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
