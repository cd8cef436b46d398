import { EventEmitter } from 'node:events';
import { applyEvents, initialState, parseStream, type StreamKind, type StreamRef, type StreamState } from '@tradesync/protocol';
import type { Engine, StoredEvent, StreamHead } from '../engines/engine.js';
import type { Logger } from '../logger.js';
import type { MigrationRegistry } from './migrations.js';

/**
 * The gateway's materialized view of every stream: current state (through the one
 * reducer), head offset, epoch, and a window of recent events kept in memory so that
 * most resumes are answered without touching the engine.
 *
 * Events enter only through the engine's tail (`onAppend`), in offset order per
 * stream; `events` is emitted after they are applied, so a listener that reads a
 * stream's head sees the events it is told about already included.
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
}

/** One applied event with the moment it reached the gateway (for latency metrics). */
export interface AppliedEvent {
  readonly event: StoredEvent;
  readonly receivedAt: number;
}

export interface StoreOptions {
  readonly memoryWindow: number;
}

export interface StoreEvents {
  /** Events applied to their streams, in order. */
  events: [applied: readonly AppliedEvent[]];
  /** A stream's history vanished and its state was replaced (new epoch). */
  reset: [entry: StreamEntry];
}

/** The stored data of a stream cannot be turned back into its exact state. */
export class StateRebuildError extends Error {
  override readonly name = 'StateRebuildError';
}

/** Wait before retrying a catch-up that failed (the engine was unreachable). */
const CATCH_UP_RETRY_MS = 1000;

export class StreamStore extends EventEmitter<StoreEvents> {
  readonly #entries = new Map<string, StreamEntry>();
  /** Streams whose log must be re-read from the engine after a detected gap. */
  readonly #catchingUp = new Map<string, StoredEvent[]>();
  /** Streams to catch up once more when their current catch-up ends (a reset was reported meanwhile, or it failed). */
  readonly #again = new Set<string>();
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
      this.#entries.set(name, await this.#rebuild(ref));
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
    const entry = this.#emptyEntry(ref, head);
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

  #emptyEntry(ref: StreamRef, head: StreamHead): StreamEntry {
    return { name: ref.name, ref, kind: ref.kind, epoch: head.epoch, head: 0, state: initialState(ref.kind), window: [], snapshotOffset: 0 };
  }

  async #rebuild(ref: StreamRef): Promise<StreamEntry> {
    const head = await this.engine.head(ref.name);
    const entry = this.#emptyEntry(ref, head);
    const snapshot = await this.engine.loadSnapshot(ref.name);
    let unusable: string | undefined;
    if (snapshot && snapshot.epoch === head.epoch) {
      try {
        entry.state = this.migrations.migrate(snapshot.state, snapshot.schemaVersion, ref.kind) as StreamState;
        entry.head = snapshot.offset;
        entry.snapshotOffset = snapshot.offset;
      } catch (err) {
        unusable = (err as Error).message;
        this.log.error({ err, stream: ref.name }, 'snapshot cannot be migrated; rebuilding from the log alone');
      }
    }
    const page = 1000;
    for (;;) {
      const result = await this.engine.read(ref.name, entry.head, page);
      if (result.trimmed) {
        // Compaction keeps a snapshot at or past every trim point, so this happens only
        // when that snapshot could not be used. Serving the rest would be serving wrong
        // state under the same epoch (and the next compaction would overwrite the only
        // complete copy): refuse instead, and say what to do.
        throw new StateRebuildError(
          `stream ${ref.name}: its snapshot cannot be used (${unusable ?? 'missing'}) and its log was trimmed past it (first kept offset ${head.first}); ` +
            'the state cannot be rebuilt exactly. Run a server version that reads this snapshot, or remove the stream\'s data to start it over.',
        );
      }
      this.#applyMany(entry, result.events);
      if (result.events.length < page) break;
    }
    return entry;
  }

  /** Applies contiguous events of one stream: one reducer batch, one window append. */
  #applyMany(entry: StreamEntry, events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    entry.state = applyEvents(entry.state, events);
    entry.head = events[events.length - 1]!.offset;
    entry.window.push(...events);
    // Trim the window in chunks so the copy is amortized.
    if (entry.window.length > this.options.memoryWindow * 2) entry.window = entry.window.slice(-this.options.memoryWindow);
  }

  #ingest(events: readonly StoredEvent[]): void {
    const now = performance.now();
    const applied: AppliedEvent[] = [];
    // Events are judged one by one against the head, then applied per stream in one batch.
    const batches = new Map<StreamEntry, StoredEvent[]>();
    for (const event of events) {
      const buffered = this.#catchingUp.get(event.stream);
      if (buffered) {
        buffered.push(event);
        continue;
      }
      const entry = this.#entryForEvent(event);
      if (!entry) continue;
      if (event.epoch !== entry.epoch || event.offset > entry.head + 1) {
        // A gap or a new epoch: the log has what we missed; re-read it in order.
        this.#catchingUp.set(event.stream, [event]);
        void this.#catchUp(entry);
        continue;
      }
      if (event.offset <= entry.head) continue; // already applied (duplicate delivery)
      let batch = batches.get(entry);
      if (!batch) batches.set(entry, (batch = []));
      batch.push(event);
      entry.head = event.offset;
      applied.push({ event, receivedAt: now });
    }
    for (const [entry, batch] of batches) this.#applyMany(entry, batch);
    if (applied.length > 0) this.emit('events', applied);
  }

  #entryForEvent(event: StoredEvent): StreamEntry | undefined {
    const existing = this.#entries.get(event.stream);
    if (existing) return existing;
    const ref = parseStream(event.stream);
    if (!ref) return undefined;
    const entry = this.#emptyEntry(ref, { epoch: event.epoch, offset: 0, first: 1 });
    this.#entries.set(ref.name, entry);
    return entry;
  }

  async #catchUp(entry: StreamEntry): Promise<void> {
    try {
      const head = await this.engine.head(entry.name);
      if (head.epoch !== entry.epoch) {
        await this.#reset(entry.name, head);
      } else {
        const result = await this.engine.read(entry.name, entry.head, Math.max(1, head.offset - entry.head));
        const applied: AppliedEvent[] = [];
        if (result.trimmed) {
          await this.#reset(entry.name, head);
        } else {
          const now = performance.now();
          const contiguous: StoredEvent[] = [];
          let next = entry.head + 1;
          for (const event of result.events) {
            if (event.offset !== next) continue;
            contiguous.push(event);
            applied.push({ event, receivedAt: now });
            next++;
          }
          this.#applyMany(entry, contiguous);
          if (applied.length > 0) this.emit('events', applied);
        }
      }
    } catch (err) {
      this.log.error({ err, stream: entry.name }, 'catching up a stream failed');
      // Retry, but not at once: the engine is most likely unreachable right now (a shared
      // engine can be), and re-ingesting the gap straight away would spin.
      if (!(err instanceof StateRebuildError)) {
        this.#again.add(entry.name);
        await new Promise((resolve) => setTimeout(resolve, CATCH_UP_RETRY_MS).unref());
      }
    } finally {
      const buffered = this.#catchingUp.get(entry.name) ?? [];
      this.#catchingUp.delete(entry.name);
      // Whatever arrived meanwhile goes through the normal path (duplicates are skipped).
      this.#ingest(buffered.filter((e) => e.epoch === entry.epoch));
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
    this.#catchingUp.set(name, []);
    void this.#catchUp(entry);
  }

  /** The stream's history vanished (new epoch): rebuild it from what the engine has now. */
  async #reset(name: string, head: StreamHead): Promise<void> {
    const ref = parseStream(name);
    if (!ref) return;
    const rebuilt = await this.#rebuild(ref);
    const entry = this.#entries.get(name);
    if (entry && entry.epoch === rebuilt.epoch && entry.head >= rebuilt.head) return;
    this.log.warn({ stream: name, epoch: head.epoch }, 'stream history was lost; new epoch');
    if (entry) Object.assign(entry, rebuilt);
    else this.#entries.set(name, rebuilt);
    this.emit('reset', this.#entries.get(name)!);
  }
}
