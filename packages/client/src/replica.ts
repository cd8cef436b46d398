import { applyEvents, initialState, Sequencer, stateChecksum, type StreamEvent, type StreamKind, type StreamPosition, type StreamState, type SubscribedMessage } from '@tradesync/protocol';

/** A stream event as the client receives it (alone or inside a `batch_update`): the protocol's `StreamEvent`. */
export type LiveEvent = StreamEvent;

/** The fields of a `subscribed` reply the replica reads (a snapshot's state is the server's, trusted). */
export type SubscribedReply = Pick<SubscribedMessage, 'epoch' | 'offset' | 'recovered' | 'events' | 'checksum' | 'max_rate' | 'session_id'> & {
  readonly snapshot?: { readonly epoch: string; readonly offset: number; readonly state: object };
};

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
  /**
   * The reply's checksum did not match the replica at the reply's offset: for a
   * recovery, the replayed state is wrong and a snapshot must replace it; for a
   * snapshot, the two sides disagree on the checksum itself. Holds the replica's own
   * checksum then.
   */
  readonly diverged: string | undefined;
}

/**
 * The client's copy of one stream, kept with the protocol's reducer and ordered by the
 * protocol's `Sequencer`. Pure logic, no I/O: it is told about replies and live events
 * and says what it did.
 *
 * Invariant: `state` is exactly the server's state at `offset` of `epoch`. Every event
 * applied has offset `offset + 1`; anything else is a duplicate (dropped), early
 * (held while a sync is in flight) or a gap (held; the caller resyncs).
 */
/** Most events held back for one reducer batch (see `#unapplied`). */
const UNAPPLIED_LIMIT = 256;

export class StreamReplica {
  readonly #sequencer: Sequencer<LiveEvent>;
  #state: StreamState;
  /**
   * Events accepted (offsets already advanced) but not yet reduced: they are applied
   * together, as one reducer batch, the next time the state is read or replaced, or
   * once UNAPPLIED_LIMIT wait. The bound matters: a subscriber that only listens to
   * events never reads the state, and its replica must not keep every event forever
   * (measured: 100 such clients grew the heap by 3 MB/s).
   */
  #unapplied: LiveEvent[] = [];
  /** The checksum of the last state it was computed for (states are immutable: same object, same checksum). */
  #checksum: { readonly state: StreamState; readonly value: string } | undefined;

  constructor(
    readonly stream: string,
    readonly kind: StreamKind,
    maxBuffered: number,
  ) {
    this.#state = initialState(kind);
    this.#sequencer = new Sequencer<LiveEvent>(maxBuffered);
    // Nothing is live before the first sync: hold what arrives until its reply.
    this.#sequencer.hold();
  }

  get epoch(): string | undefined {
    return this.#sequencer.epoch;
  }

  get offset(): number {
    return this.#sequencer.head;
  }

  /** Events applied to the position but not reduced into the state yet (at most UNAPPLIED_LIMIT). */
  get unreduced(): number {
    return this.#unapplied.length;
  }

  /** The server's state at `offset` of `epoch`. */
  get state(): StreamState {
    if (this.#unapplied.length > 0) {
      this.#state = applyEvents(this.#state, this.#unapplied);
      this.#unapplied = [];
    }
    return this.#state;
  }

  /** Where to resume from; undefined before the first sync. */
  get position(): StreamPosition | undefined {
    const epoch = this.epoch;
    return epoch === undefined ? undefined : { epoch, offset: this.offset };
  }

  /** True for a conflated or session-scoped subscription, whose offsets jump (see Sequencer.jumps). */
  get jumps(): boolean {
    return this.#sequencer.jumps;
  }

  /**
   * A position proved the state is the server's at a later offset (the events between
   * were not for this subscription): the replica stands there now.
   */
  advanceTo(offset: number): void {
    const epoch = this.epoch;
    if (epoch !== undefined && offset > this.offset && !this.holding) this.#sequencer.moveTo(epoch, offset);
  }

  /** The checksum of the state at `offset` (see the protocol's stateChecksum). */
  checksum(): string {
    const state = this.state;
    if (this.#checksum?.state !== state) this.#checksum = { state, value: stateChecksum(state) };
    return this.#checksum.value;
  }

  get buffered(): number {
    return this.#sequencer.kept;
  }

  /** True while live events are held (a sync is in flight or needed) rather than applied. */
  get holding(): boolean {
    return this.#sequencer.holding;
  }

  /** A subscribe (or resubscribe) was sent: hold live events until its reply. */
  beginSync(): void {
    this.#sequencer.hold();
  }

  /** The connection dropped: keep state and position for the resume, hold what still arrives. */
  suspend(): void {
    this.#sequencer.hold();
  }

  applySubscribed(reply: SubscribedReply): SyncResult {
    const applied: LiveEvent[] = [];
    let gap = false;
    let snapshotOffset: number | undefined;
    let replayed = 0;
    let diverged: string | undefined;
    // The reply says whether this subscription is conflated or scoped to a session: its offsets then jump.
    this.#sequencer.jumps = reply.max_rate !== undefined || reply.session_id !== undefined;
    const recovered = reply.recovered && this.epoch === reply.epoch;
    if (recovered) {
      for (const event of reply.events ?? []) {
        const taken = this.#sequencer.take(event);
        if (taken === 'gap') {
          gap = true;
          break;
        }
        if (taken === 'applied') {
          this.#defer(event);
          applied.push(event);
        }
      }
      replayed = applied.length;
    } else if (reply.snapshot) {
      // A snapshot replaces everything at once: never merge old state with new.
      this.#unapplied = [];
      // The server's own state for this stream's kind, as it sent it.
      this.#state = reply.snapshot.state as StreamState;
      this.#sequencer.moveTo(reply.snapshot.epoch, reply.snapshot.offset);
      snapshotOffset = reply.snapshot.offset;
    } else {
      // "Recovered" from a position we no longer hold (the replica moved while the
      // reply was in flight), or no snapshot at all: nothing here is safe to apply.
      gap = true;
    }
    // A scoped replay ends at the last event the session was given; the reply's offset is
    // where the stream (as this session sees it) stands, proven by its checksum below.
    if (!gap && this.#sequencer.jumps && this.epoch === reply.epoch && this.offset < reply.offset) this.#sequencer.moveTo(reply.epoch, reply.offset);
    // The reply's checksum is of the state at its offset: compare before held live events move the replica on.
    if (!gap && reply.checksum !== undefined && this.epoch === reply.epoch && this.offset === reply.offset) {
      const own = this.checksum();
      if (own !== reply.checksum) diverged = own;
    }
    // Held live events that continue the replica apply now; a hole (or events dropped
    // for lack of room) means what is missing must be fetched.
    const drained = this.#sequencer.drain();
    for (const event of drained.ready) {
      this.#defer(event);
      applied.push(event);
    }
    if (drained.gap) gap = true;
    // The reply announced a head we did not reach (its events stopped short, and no
    // held live event filled the rest): what is missing must be fetched.
    if (!gap && this.epoch === reply.epoch && this.offset < reply.offset) gap = true;
    if (gap) this.#sequencer.hold();
    return { applied, recovered, replayed, snapshotOffset, gap, diverged };
  }

  applyLive(event: LiveEvent): LiveOutcome {
    const outcome = this.#sequencer.offer(event);
    if (outcome === 'applied') this.#defer(event);
    return outcome;
  }

  #defer(event: LiveEvent): void {
    this.#unapplied.push(event);
    if (this.#unapplied.length >= UNAPPLIED_LIMIT) {
      this.#state = applyEvents(this.#state, this.#unapplied);
      this.#unapplied = [];
    }
  }
}
