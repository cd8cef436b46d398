import { parseStream, type StreamPosition, type StreamState } from '@tradesync/protocol';
import { Freshness } from './freshness.js';
import { StreamReplica, type LiveEvent } from './replica.js';
import type { TimerHandle, Timers } from './timers.js';

/** Why a stream's visible state changed. */
export type StateChangeReason = 'event' | 'snapshot' | 'recovered' | 'optimistic' | 'confirmed' | 'rollback' | 'degraded';

export interface SyncedInfo {
  readonly stream: string;
  /** true: the missed events were replayed; false: a snapshot replaced the state. */
  readonly recovered: boolean;
  readonly epoch: string;
  readonly offset: number;
  /** Events replayed (recovered) — 0 for a snapshot. */
  readonly replayed: number;
  /** For a snapshot: the offset it was taken at (`offset` is later when buffered live events followed it). */
  readonly snapshotOffset?: number;
  /** `http` when the snapshot came from `GET /api/state/snapshot` while the socket was down (degraded mode). */
  readonly via: 'socket' | 'http';
}

export interface SyncFailedInfo {
  readonly stream: string;
  readonly error: Error;
  readonly attempts: number;
}

/** What a component hears about one stream. Every callback is optional. */
export interface StreamListener<S extends StreamState = StreamState> {
  onEvent?(event: LiveEvent): void;
  onState?(state: S, reason: StateChangeReason): void;
  /**
   * The state changed; read `handle.state` when you need it. Unlike `onState` this does
   * not compute the state on every message, so a UI that renders once per frame
   * reduces a whole frame's events in one batch.
   */
  onChange?(reason: StateChangeReason): void;
  onSynced?(info: SyncedInfo): void;
  onSyncFailed?(info: SyncFailedInfo): void;
}

/** A pending optimistic change laid over the confirmed replica. */
export interface OptimisticPatch {
  readonly id: string;
  readonly apply: (state: StreamState) => StreamState;
  /** Set once the server accepted the command; dropped when its events arrive. */
  confirmed: boolean;
  timer: TimerHandle | undefined;
}

/** `resume` asks for the events after the replica's position; `fresh` asks for a snapshot. */
export type SyncMode = 'resume' | 'fresh';

/**
 * The subscription's state machine:
 *
 *   idle ──sync()──▶ syncing ──reply, no gap──▶ live ──gap──▶ syncing
 *    ▲   (connection   │ ▲ reply left a gap: resume again     │
 *    │    open)        │ └ resync queued: runs next ────────── │
 *    │                 ▼ retries exhausted (sync_failed)      │
 *    └──── connection lost / sync failed ◀────────────────────┘
 *   any ──last listener left──▶ released
 *
 * `idle.next` is the mode of the next sync: `fresh` after a 4009 close (the server
 * invalidated our positions) or a forced sync that could not run. While `idle` or
 * `syncing` the replica holds live events; they apply in order after the reply.
 */
export type SubscriptionState =
  | { readonly name: 'idle'; readonly next: SyncMode }
  | { readonly name: 'syncing'; readonly run: number; readonly mode: SyncMode; readonly queued: SyncMode | undefined; readonly done: Promise<void> }
  | { readonly name: 'live' }
  | { readonly name: 'released' };

/**
 * One stream as the client holds it: the replica, the listeners sharing it (one
 * server subscription however many listeners), optimistic patches on top, and the
 * sync state machine above.
 */
export class Subscription {
  readonly replica: StreamReplica;
  readonly listeners = new Set<StreamListener>();
  readonly patches: OptimisticPatch[] = [];
  /** The last sync over the socket that completed; undefined before the first. */
  lastSync: SyncedInfo | undefined;
  /** What the server's positions proved of the replica, and whether they stopped coming. */
  readonly freshness = new Freshness();
  /**
   * The conflation rate each listener asked for (undefined: every event). The
   * subscription is conflated only when every listener accepts it, at the highest rate
   * any asked for, so no listener gets fewer events than it wanted.
   */
  readonly rates = new Map<StreamListener, number | undefined>();
  #state: SubscriptionState = { name: 'idle', next: 'resume' };
  #view: StreamState | undefined;

  constructor(
    readonly stream: string,
    readonly sessionId: string | undefined,
    maxBuffered: number,
    private readonly timers: Pick<Timers, 'clearTimeout' | 'now'>,
    private readonly onTransition?: (sub: Subscription, from: SubscriptionState, to: SubscriptionState) => void,
  ) {
    const ref = parseStream(stream);
    if (!ref) throw new TypeError(`invalid stream name "${stream}"`);
    this.replica = new StreamReplica(stream, ref.kind, maxBuffered);
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  /** The one transition point: every change of the sync state goes through here. */
  moveTo(next: SubscriptionState): void {
    const from = this.#state;
    if (from.name === 'released') return;
    this.#state = next;
    // Freshness deadlines count from when the stream is live; a sync suspends them.
    if (next.name === 'live' && from.name !== 'live') {
      this.freshness.liveSince = this.timers.now();
      this.freshness.unverifiedSince = undefined;
    } else if (next.name !== 'live') {
      this.freshness.liveSince = undefined;
    }
    this.onTransition?.(this, from, next);
  }

  /** The `max_rate` to subscribe with (see `rates`). */
  get maxRate(): number | undefined {
    let max: number | undefined;
    for (const rate of this.rates.values()) {
      if (rate === undefined) return undefined;
      max = Math.max(max ?? 0, rate);
    }
    return max;
  }

  get released(): boolean {
    return this.#state.name === 'released';
  }

  /** true once the first sync of this stream over the socket completed. */
  get synced(): boolean {
    return this.lastSync !== undefined;
  }

  get position(): StreamPosition | undefined {
    return this.replica.position;
  }

  /** The confirmed state with pending optimistic patches applied. */
  get view(): StreamState {
    if (this.patches.length === 0) return this.replica.state;
    this.#view ??= this.patches.reduce((state, patch) => patch.apply(state), this.replica.state);
    return this.#view;
  }

  /** Call after the replica or the patches changed. */
  invalidate(): void {
    this.#view = undefined;
  }

  /** Removes a patch (and its timer); false when it was gone already. */
  dropPatch(patch: OptimisticPatch): boolean {
    const index = this.patches.indexOf(patch);
    if (index < 0) return false;
    this.timers.clearTimeout(patch.timer);
    this.patches.splice(index, 1);
    this.invalidate();
    return true;
  }

  /** Confirmed patches go once an event lands on the stream: the server's truth takes over. */
  dropConfirmedPatches(): void {
    for (const patch of this.patches.filter((p) => p.confirmed)) this.dropPatch(patch);
  }

  /** The last listener left: no sync may run again, and patch timers stop. */
  release(): void {
    for (const patch of this.patches) this.timers.clearTimeout(patch.timer);
    this.moveTo({ name: 'released' });
  }
}
