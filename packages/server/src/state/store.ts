import { EventEmitter } from 'node:events';
import { initialState, parseStream, Sequencer, type StreamKind, type StreamRef, type StreamState } from '@tradesync/protocol';
import type { Engine, StoredEvent, StreamHead } from '../engines/engine.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { MigrationRegistry } from './migrations.js';
import { applyMany, emptyEntry, rebuildEntry, StateRebuildError } from './rebuild.js';


/**
 * The gateway's materialized view of every stream: current state (through the one
 * reducer), head offset, epoch, and a window of recent events kept in memory so that
 * most resumes are answered without touching the engine.
 *
 * Events enter only through the engine's tail (`onAppend`), in offset order per
 * stream; `events` is emitted after they are applied, so a listener that reads a
 * stream's head sees the events it is told about already included. Each stream's
 * protocol `Sequencer` judges what arrives (next, duplicate, past a hole); a hole or a
 * new epoch is answered by re-reading the log while later events wait in the sequencer.
 */
export interface StreamEntry {
  readonly name: string;
  readonly ref: StreamRef;
  readonly kind: StreamKind;
  epoch: string;
  head: number;
  state: StreamState;
  /** Recent events, ascending and contiguous, ending at `head`. */
  window: StoredEvent[];
  /** Offset of the newest snapshot stored in the engine (0 when none). */
  snapshotOffset: number;
  /**
   * The session of the entity each applied event touched (see the protocol's
   * sessionOfEvent; undefined: account-wide), for every event applied to a stream of a
   * kind with sessions. Session-scoped subscriptions read it to know which events they get.
   */
  sessions: WeakMap<StoredEvent, string | null | undefined>;
}

/** One applied event with the moment it reached the gateway (for latency metrics). */
export interface AppliedEvent {
  readonly event: StoredEvent;
  readonly receivedAt: number;
  /** The session of the entity it touched; undefined when account-wide (see StreamEntry.sessions). */
  readonly session: string | null | undefined;
}

export interface StoreOptions {
  readonly memoryWindow: number;
  /** Where rebuild times are recorded (`tradesync_state_rebuild_seconds`); none in unit tests of the store alone. */
  readonly metrics?: Metrics;
}

/** Why a stream is rebuilt from the engine: at start-up, or because its history was replaced. */
type RebuildReason = 'start' | 'reset';

export interface StoreEvents {
  /** Events applied to their streams, in order. */
  events: [applied: readonly AppliedEvent[]];
  /** A stream's history vanished and its state was replaced (new epoch). */
  reset: [entry: StreamEntry];
}

/** Wait before retrying a catch-up that failed (the engine was unreachable). */
const CATCH_UP_RETRY_MS = 1000;

export class StreamStore extends EventEmitter<StoreEvents> {
  readonly #entries = new Map<string, StreamEntry>();
  /**
   * Per stream, where its entry stands (`head === entry.head`, same epoch) and the live
   * events held while its log is re-read. Created from the entry, moved with it on a reset.
   */
  readonly #sequencers = new Map<string, Sequencer<StoredEvent>>();
  /** Streams whose log is being re-read from the engine (after a gap, a reset, a `reach`). */
  readonly #catchingUp = new Set<string>();
  /** Streams to catch up once more when their current catch-up ends (a reset was reported meanwhile, or it failed). */
  readonly #again = new Set<string>();
  /**
   * Streams whose last catch-up failed, with why: their log could not be re-read, so
   * what this node holds is known to be behind. Cleared by the next catch-up that succeeds.
   */
  readonly #unavailable = new Map<string, string>();
  #closed = false;
  readonly #unsubscribe: Array<() => void> = [];

  constructor(
    private readonly engine: Engine,
    private readonly migrations: MigrationRegistry,
    private readonly options: StoreOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  /** Rebuilds every stream from its newest snapshot plus the log after it, then follows the tail. */
  async load(): Promise<void> {
    // Listen first, buffer what arrives while loading, so nothing appended meanwhile is lost.
    const early: StoredEvent[] = [];
    let loading = true;
    this.#unsubscribe.push(
      this.engine.onAppend((events) => (loading ? early.push(...events) : this.#ingest(events))),
      this.engine.onReset((stream) => this.#resync(stream)),
    );
    for (const name of await this.engine.streams()) {
      const ref = parseStream(name);
      if (!ref) {
        this.log.warn({ stream: name }, 'skipping a stored stream with an invalid name');
        continue;
      }
      this.#entries.set(name, await this.#rebuild(ref, 'start'));
    }
    loading = false;
    this.#ingest(early);
  }

  close(): void {
    this.#closed = true;
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  get(name: string): StreamEntry | undefined {
    return this.#entries.get(name);
  }

  entries(): IterableIterator<StreamEntry> {
    return this.#entries.values();
  }

  /** The entry of a valid stream, created empty (at the engine's epoch) if it has no events yet. */
  async entry(ref: StreamRef): Promise<StreamEntry> {
    const existing = this.#entries.get(ref.name);
    if (existing) return existing;
    const head = await this.engine.head(ref.name);
    // Another call may have created it while we waited.
    const raced = this.#entries.get(ref.name);
    if (raced) return raced;
    const entry = emptyEntry(ref, head);
    this.#entries.set(ref.name, entry);
    return entry;
  }

  /**
   * Waits until this node's copy of a stream reaches `offset`, re-reading the log now
   * rather than waiting for the next notification. With a shared engine a client may
   * come from a node that is ahead of this one. False when `timeoutMs` passes first.
   */
  reach(entry: StreamEntry, offset: number, timeoutMs: number): Promise<boolean> {
    if (entry.head >= offset) return Promise.resolve(true);
    this.#resync(entry.name);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('events', check);
        resolve(entry.head >= offset);
      };
      const check = () => {
        if (entry.head >= offset) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.on('events', check);
    });
  }

  /**
   * Why a stream cannot be served as current right now (its log could not be re-read
   * after a gap or a reset; the store keeps retrying), or undefined when it can.
   */
  unavailable(name: string): string | undefined {
    return this.#unavailable.get(name);
  }

  /** State of a stream now; the initial state for a stream without events. */
  stateOf(name: string): StreamState | undefined {
    const entry = this.#entries.get(name);
    if (entry) return entry.state;
    const ref = parseStream(name);
    return ref ? initialState(ref.kind) : undefined;
  }

  /** Events in the memory window with offset > `after`, or undefined when the window does not reach back that far. */
  windowAfter(entry: StreamEntry, after: number): StoredEvent[] | undefined {
    const first = entry.window[0]?.offset ?? entry.head + 1;
    if (after < first - 1) return undefined;
    return entry.window.slice(after - first + 1);
  }

  #applyMany(entry: StreamEntry, events: readonly StoredEvent[]): void {
    applyMany(entry, events, this.options.memoryWindow);
  }

  async #rebuild(ref: StreamRef, reason: RebuildReason): Promise<StreamEntry> {
    const started = performance.now();
    const entry = await rebuildEntry(ref, { engine: this.engine, migrations: this.migrations, log: this.log, memoryWindow: this.options.memoryWindow });
    // Only rebuilds that produced a state: a failed one is an ERROR line, not a duration.
    this.options.metrics?.rebuildSeconds.observe({ reason }, (performance.now() - started) / 1000);
    return entry;
  }

  #sequencerOf(entry: StreamEntry): Sequencer<StoredEvent> {
    let sequencer = this.#sequencers.get(entry.name);
    if (!sequencer) this.#sequencers.set(entry.name, (sequencer = new Sequencer(Number.POSITIVE_INFINITY, { epoch: entry.epoch, offset: entry.head })));
    return sequencer;
  }

  #ingest(events: readonly StoredEvent[]): void {
    const now = performance.now();
    const applied: Array<{ event: StoredEvent; entry: StreamEntry }> = [];
    // Events are judged one by one against the head, then applied per stream in one batch.
    const batches = new Map<StreamEntry, StoredEvent[]>();
    for (const event of events) {
      const entry = this.#entryForEvent(event);
      if (!entry) continue;
      switch (this.#sequencerOf(entry).offer(event)) {
        case 'applied': {
          let batch = batches.get(entry);
          if (!batch) batches.set(entry, (batch = []));
          batch.push(event);
          applied.push({ event, entry });
          break;
        }
        case 'gap':
          // A hole or a new epoch: the log has what we missed; re-read it in order (the
          // sequencer keeps this event and the next ones until then).
          this.#startCatchUp(entry);
          break;
        case 'duplicate': // already applied (a repeated delivery)
        case 'buffered': // a catch-up is in flight; it drains the sequencer when done
          break;
      }
    }
    for (const [entry, batch] of batches) this.#applyMany(entry, batch);
    if (applied.length > 0) this.emit('events', applied.map(({ event, entry }) => ({ event, receivedAt: now, session: entry.sessions.get(event) })));
  }

  /** Applies events the sequencer handed out (contiguous, past the head) and tells the listeners. */
  #applyInOrder(entry: StreamEntry, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    this.#applyMany(entry, events);
    const now = performance.now();
    this.emit('events', events.map((event) => ({ event, receivedAt: now, session: entry.sessions.get(event) })));
  }

  #entryForEvent(event: StoredEvent): StreamEntry | undefined {
    const existing = this.#entries.get(event.stream);
    if (existing) return existing;
    const ref = parseStream(event.stream);
    if (!ref) return undefined;
    const entry = emptyEntry(ref, { epoch: event.epoch, offset: 0, first: 1 });
    this.#entries.set(ref.name, entry);
    return entry;
  }

  #startCatchUp(entry: StreamEntry): void {
    this.#catchingUp.add(entry.name);
    void this.#catchUp(entry);
  }

  async #catchUp(entry: StreamEntry): Promise<void> {
    const sequencer = this.#sequencerOf(entry);
    try {
      const head = await this.engine.head(entry.name);
      if (head.epoch !== entry.epoch) {
        await this.#reset(entry.name, head);
      } else {
        const result = await this.engine.read(entry.name, entry.head, Math.max(1, head.offset - entry.head));
        if (result.trimmed) {
          await this.#reset(entry.name, head);
        } else {
          // Read in order from the authority: each is the next one or already applied.
          this.#applyInOrder(entry, result.events.filter((event) => sequencer.take(event) === 'applied'));
        }
      }
      this.#unavailable.delete(entry.name);
    } catch (err) {
      this.log.error({ err, stream: entry.name }, 'catching up a stream failed');
      this.#unavailable.set(entry.name, err instanceof Error ? err.message : String(err));
      // Retry, but not at once: the engine is most likely unreachable right now (a shared
      // engine can be), and re-reading the gap straight away would spin.
      if (!(err instanceof StateRebuildError)) {
        this.#again.add(entry.name);
        await new Promise((resolve) => setTimeout(resolve, CATCH_UP_RETRY_MS).unref());
      }
    } finally {
      this.#catchingUp.delete(entry.name);
      // Whatever arrived meanwhile and continues the head is applied; events of another
      // epoch and duplicates are dropped; a hole still open means one more catch-up.
      const { ready, gap } = sequencer.drain();
      this.#applyInOrder(entry, ready);
      if (gap && !this.#closed) this.#startCatchUp(entry);
      if (this.#again.delete(entry.name)) this.#resync(entry.name);
    }
  }

  /**
   * The engine reports that a stream's history was replaced (new epoch). Re-read it
   * through the catch-up path, so events arriving meanwhile are held back until the
   * rebuild is in place, and a failed rebuild is retried instead of thrown away.
   */
  #resync(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry || this.#closed) return;
    if (this.#catchingUp.has(name)) {
      this.#again.add(name);
      return;
    }
    this.#sequencerOf(entry).hold();
    this.#startCatchUp(entry);
  }

  /** The stream's history vanished (new epoch): rebuild it from what the engine has now. */
  async #reset(name: string, head: StreamHead): Promise<void> {
    const ref = parseStream(name);
    if (!ref) return;
    const rebuilt = await this.#rebuild(ref, 'reset');
    const entry = this.#entries.get(name);
    if (entry && entry.epoch === rebuilt.epoch && entry.head >= rebuilt.head) return;
    this.log.warn({ stream: name, epoch: head.epoch }, 'stream history was lost; new epoch');
    if (entry) Object.assign(entry, rebuilt);
    else this.#entries.set(name, rebuilt);
    // Events held meanwhile continue from the rebuilt position (those of the old epoch are dropped).
    this.#sequencers.get(name)?.moveTo(rebuilt.epoch, rebuilt.head);
    this.emit('reset', this.#entries.get(name)!);
  }
}
