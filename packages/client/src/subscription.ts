import { parseStream, type StreamPosition, type StreamState } from '@tradesync/protocol';
import { StreamReplica, type LiveEvent } from './replica.js';

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
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * One stream as the client holds it: the replica, the listeners sharing it (one
 * server subscription however many listeners), and optimistic patches on top.
 */
export class Subscription {
  readonly replica: StreamReplica;
  readonly listeners = new Set<StreamListener>();
  readonly patches: OptimisticPatch[] = [];
  /** A sync in flight, so concurrent triggers (gap, reconnect, force) share it. */
  syncing: Promise<void> | undefined;
  /** A further sync was asked for while one was in flight. */
  resyncQueued: 'resume' | 'fresh' | undefined;
  synced = false;
  /** The server invalidated our position (close 4009): the next sync asks for a snapshot. */
  snapshotNext = false;
  /** The client wants this stream (false once the last listener left). */
  active = true;
  #view: StreamState | undefined;

  constructor(
    readonly stream: string,
    readonly sessionId: string | undefined,
    maxBuffered: number,
  ) {
    const ref = parseStream(stream);
    if (!ref) throw new TypeError(`invalid stream name "${stream}"`);
    this.replica = new StreamReplica(stream, ref.kind, maxBuffered);
  }

  get position(): StreamPosition | undefined {
    return this.replica.position;
  }

  /** The confirmed state with pending optimistic patches applied. */
  get state(): StreamState {
    if (this.patches.length === 0) return this.replica.state;
    this.#view ??= this.patches.reduce((state, patch) => patch.apply(state), this.replica.state);
    return this.#view;
  }

  /** Call after the replica or the patches changed. */
  invalidate(): void {
    this.#view = undefined;
  }
}
