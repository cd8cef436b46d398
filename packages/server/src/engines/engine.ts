import type { EventInput, StreamEvent } from '@tradesync/protocol';

/**
 * Where the log lives. The gateway talks to this interface only, chosen at start-up
 * (embedded SQLite, or Redis Streams for several nodes): no engine-specific branch
 * anywhere else.
 *
 * Offsets are dense per stream: 1, 2, 3, … A stream's epoch changes only when its
 * history is lost (a new database, a flushed Redis), so a client holding
 * `{epoch, offset}` from before can tell its position is meaningless now.
 */
export interface Engine {
  /** `embedded` or `redis`, for health and logs. */
  readonly kind: string;

  /** Opens storage (creates tables, connects). Must be called once before anything else. */
  open(): Promise<void>;
  /** Flushes and releases everything; further calls fail. */
  close(): Promise<void>;

  /**
   * Appends events, assigning each the next offset of its stream and the time of the
   * append. Events of one call are appended atomically and in the given order. When
   * the promise resolves the events are durable. Tail listeners hear of them too.
   */
  append(events: readonly EventInput[]): Promise<StoredEvent[]>;

  /**
   * Events of `stream` with offset > `after`, oldest first, at most `limit`.
   * `{trimmed: true}` when some of the events right after `after` are no longer kept
   * (history was trimmed past it): the caller must fall back to a snapshot.
   */
  read(stream: string, after: number, limit: number): Promise<ReadResult>;

  /** The stream's epoch, head offset (0 when empty) and first retained offset. */
  head(stream: string): Promise<StreamHead>;

  /** Every stream that has ever had an event appended (and still has an epoch). */
  streams(): Promise<string[]>;

  /** Stores a snapshot of a stream's state at `offset`, replacing any older one. */
  saveSnapshot(snapshot: StoredSnapshot): Promise<void>;
  /** The newest snapshot of a stream, if any. */
  loadSnapshot(stream: string): Promise<StoredSnapshot | undefined>;

  /**
   * Deletes events of `stream` with offset <= `upTo`. Callers keep a snapshot at an
   * offset >= `upTo` first, so that state can always be rebuilt.
   */
  trim(stream: string, upTo: number): Promise<number>;
  /** The highest offset of `stream` appended before `time` (ISO), 0 if none. */
  offsetBefore(stream: string, time: string): Promise<number>;

  /**
   * Hears every append, from this process or (for shared engines) any other node,
   * in offset order per stream. Returns the function that stops listening.
   */
  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void;

  /**
   * Hears when a stream's epoch changes under the gateway (its history vanished,
   * e.g. a flushed Redis). Engines whose history cannot vanish never call it.
   */
  onReset(listener: (stream: string, head: StreamHead) => void): () => void;

  /** Whether the engine can append and read right now. */
  health(): Promise<EngineHealth>;
}

export type StoredEvent = StreamEvent;

export interface StreamHead {
  readonly epoch: string;
  /** Offset of the newest event; 0 for a stream without events. */
  readonly offset: number;
  /** Offset of the oldest event still kept; `offset + 1` when none is kept. */
  readonly first: number;
}

export type ReadResult = { readonly trimmed: false; readonly events: StoredEvent[] } | { readonly trimmed: true };

export interface StoredSnapshot {
  readonly stream: string;
  readonly epoch: string;
  readonly offset: number;
  /** The state schema version the snapshot was written with (see state/migrations.ts). */
  readonly schemaVersion: number;
  readonly state: unknown;
  readonly createdAt: string;
}

export interface EngineHealth {
  readonly ok: boolean;
  readonly detail?: string;
}

/** Raised by engines when storage cannot be reached; the HTTP layer answers 503. */
export class EngineUnavailableError extends Error {
  override readonly name = 'EngineUnavailableError';
}
