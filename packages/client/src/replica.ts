import { applyEvents, initialState, type StreamKind, type StreamPosition, type StreamState } from '@tradesync/protocol';

/** A stream event as the client receives it (alone or inside a `batch_update`). */
export interface LiveEvent {
  readonly type: string;
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
  readonly timestamp: string;
  readonly data: Record<string, unknown>;
}

/** The fields of a `subscribed` reply the replica reads. */
export interface SubscribedReply {
  readonly epoch: string;
  readonly offset: number;
  readonly recovered: boolean;
  readonly events?: readonly LiveEvent[];
  readonly snapshot?: { readonly epoch: string; readonly offset: number; readonly state: unknown };
}

/** What a live event did to the replica. */
export type LiveOutcome = 'applied' | 'buffered' | 'duplicate' | 'gap';

export interface SyncResult {
  /** Events applied, in order (the replayed ones, then buffered live ones). */
  readonly applied: readonly LiveEvent[];
  readonly recovered: boolean;
  /** How many of `applied` came from the reply's missed events (recovered). */
  readonly replayed: number;
  /** The offset of the snapshot that replaced the state (not recovered); buffered events after it are in `applied`. */
  readonly snapshotOffset: number | undefined;
  /** A gap remains after the reply: the stream must be synced again. */
  readonly gap: boolean;
}

/**
 * The client's copy of one stream, kept with the protocol's reducer. Pure logic, no
 * I/O: it is told about replies and live events and says what it did.
 *
 * Invariant: `state` is exactly the server's state at `offset` of `epoch`. Every event
 * applied has offset `offset + 1`; anything else is a duplicate (dropped), early
 * (buffered while a sync is in flight) or a gap (the caller resyncs).
 */
export class StreamReplica {
  epoch: string | undefined;
  offset = 0;
  #state: StreamState;
  /**
   * Events accepted (offsets already advanced) but not yet reduced: they are applied
   * together, as one reducer batch, the next time the state is read or replaced.
   */
  #unapplied: LiveEvent[] = [];
  /** `syncing` from a subscribe until its reply; `live` while events apply in order. */
  phase: 'idle' | 'syncing' | 'live' = 'idle';
  #buffer: LiveEvent[] = [];
  #overflowed = false;

  constructor(
    readonly stream: string,
    readonly kind: StreamKind,
    private readonly maxBuffered: number,
  ) {
    this.#state = initialState(kind);
  }

  /** The server's state at `offset` of `epoch`. */
  get state(): StreamState {
    if (this.#unapplied.length > 0) {
      this.#state = applyEvents(this.#state, this.#unapplied);
      this.#unapplied = [];
    }
    return this.#state;
  }

  set state(state: StreamState) {
    this.#unapplied = [];
    this.#state = state;
  }

  /** Where to resume from; undefined before the first sync. */
  get position(): StreamPosition | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, offset: this.offset };
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  /** A subscribe (or resubscribe) was sent: hold live events until its reply. */
  beginSync(): void {
    this.phase = 'syncing';
  }

  /** The connection dropped: keep state and position for the resume. */
  suspend(): void {
    this.phase = 'idle';
  }

  applySubscribed(reply: SubscribedReply): SyncResult {
    const applied: LiveEvent[] = [];
    let gap = false;
    let snapshotOffset: number | undefined;
    let replayed = 0;
    const recovered = reply.recovered && this.epoch === reply.epoch;
    if (recovered) {
      for (const event of reply.events ?? []) {
        if (event.offset <= this.offset) continue;
        if (event.offset !== this.offset + 1) {
          gap = true;
          break;
        }
        this.#apply(event);
        applied.push(event);
      }
      replayed = applied.length;
    } else if (reply.snapshot) {
      // A snapshot replaces everything at once: never merge old state with new.
      this.state = reply.snapshot.state as StreamState;
      this.epoch = reply.snapshot.epoch;
      this.offset = reply.snapshot.offset;
      snapshotOffset = this.offset;
    } else {
      // "Recovered" from a position we no longer hold (the replica moved while the
      // reply was in flight), or no snapshot at all: nothing here is safe to apply.
      gap = true;
    }
    if (this.#overflowed) {
      // Live events were dropped while syncing: what we hold may have holes.
      this.#overflowed = false;
      this.#buffer = [];
      gap = true;
    }
    if (!gap) gap = this.#drain(applied);
    // The reply announced a head we did not reach (its events stopped short, and no
    // buffered live event filled the rest): what is missing must be fetched.
    if (!gap && this.epoch === reply.epoch && this.offset < reply.offset) gap = true;
    this.phase = gap ? 'syncing' : 'live';
    return { applied, recovered, replayed, snapshotOffset, gap };
  }

  applyLive(event: LiveEvent): LiveOutcome {
    if (this.phase !== 'live') {
      if (this.#buffer.length >= this.maxBuffered) this.#overflowed = true;
      else this.#buffer.push(event);
      return 'buffered';
    }
    if (event.epoch !== this.epoch) {
      this.phase = 'syncing';
      return 'gap';
    }
    if (event.offset <= this.offset) return 'duplicate';
    if (event.offset !== this.offset + 1) {
      this.#buffer.push(event);
      this.phase = 'syncing';
      return 'gap';
    }
    this.#apply(event);
    return 'applied';
  }

  /** Applies buffered events that continue the replica; true when a gap remains. */
  #drain(applied: LiveEvent[]): boolean {
    if (this.#buffer.length === 0) return false;
    const buffered = this.#buffer.sort((a, b) => a.offset - b.offset);
    this.#buffer = [];
    for (let i = 0; i < buffered.length; i++) {
      const event = buffered[i]!;
      if (event.epoch !== this.epoch || event.offset <= this.offset) continue;
      if (event.offset !== this.offset + 1) {
        this.#buffer = buffered.slice(i).filter((e) => e.epoch === this.epoch);
        return true;
      }
      this.#apply(event);
      applied.push(event);
    }
    return false;
  }

  #apply(event: LiveEvent): void {
    this.#unapplied.push(event);
    this.offset = event.offset;
  }
}
