/**
 * The embedded engine: the log in one SQLite file (WAL), every Engine method with its
 * statement and transaction. Longer than ~300 lines on purpose: the schema, the
 * prepared statements and the methods that use them are read together.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { EventInput } from '@tradesync/protocol';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';
import {
  EngineUnavailableError,
  type Engine,
  type EngineHealth,
  type ReadResult,
  type StoredEvent,
  type StoredSnapshot,
  type StreamHead,
} from './engine.js';

export interface EmbeddedEngineOptions {
  /** Directory holding `tradesync.db` (created recursively). */
  readonly dataDir: string;
  /**
   * `full` (default): `synchronous=FULL`, an event is durable once `append` resolves,
   * even across kill -9 and power loss. `normal`: `synchronous=NORMAL`, survives a
   * process crash but the last commits may be lost on power loss.
   */
  readonly durability?: 'full' | 'normal';
  /** Told when an `onAppend` listener throws; listener errors never fail an append. */
  readonly onListenerError?: (error: unknown) => void;
  /** Told when a background WAL checkpoint fails (appends go on; the log is still bounded). */
  readonly onCheckpointError?: (error: unknown) => void;
}

const DB_FILE = 'tradesync.db';
/** Held locked by the gateway using the data directory, for as long as it runs. */
const LOCK_FILE = 'tradesync.lock';
/** How often the checkpointer thread copies the WAL into the database (see checkpointer.ts). */
const CHECKPOINT_INTERVAL_MS = 100;
/**
 * WAL pages after which a commit checkpoints itself (SQLite's default is 1,000). Only
 * that checkpoint restarts the log from its beginning, so it bounds the WAL file (~40 MB);
 * the checkpointer has copied all but the newest frames by then, so it has little to sync.
 */
const COMMIT_CHECKPOINT_PAGES = 10_000;

/** How long a statement waits for a lock held by another connection before failing. */
const BUSY_TIMEOUT_MS = 5000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS streams (
    name  TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    head  INTEGER NOT NULL,
    first INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS events (
    stream    TEXT NOT NULL,
    offset    INTEGER NOT NULL,
    type      TEXT NOT NULL,
    data      TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (stream, offset)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS snapshots (
    stream         TEXT PRIMARY KEY,
    epoch          TEXT NOT NULL,
    offset         INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT NOT NULL,
    created_at     TEXT NOT NULL
  ) WITHOUT ROWID;
`;

interface StreamRow {
  epoch: string;
  head: number;
  first: number;
}
interface EventRow {
  offset: number;
  type: string;
  data: string;
  timestamp: string;
}
interface SnapshotRow {
  epoch: string;
  offset: number;
  schema_version: number;
  state: string;
  created_at: string;
}

/** Every statement, prepared once at `open`. */
function prepareStatements(db: Database.Database) {
  return {
    // The head is the stream's last event; `streams.head` keeps it only where no event is
    // left to say it (set when a trim may remove them all), so an append writes no row here.
    getStream: db.prepare<[string], StreamRow>(
      `SELECT epoch, max(head, coalesce((SELECT MAX(offset) FROM events WHERE stream = name), 0)) AS head, first
       FROM streams WHERE name = ?`,
    ),
    insertStream: db.prepare<[string, string]>('INSERT INTO streams (name, epoch, head, first) VALUES (?, ?, 0, 1)'),
    setFirst: db.prepare<[number, number, string]>('UPDATE streams SET first = ?, head = ? WHERE name = ?'),
    listStreams: db.prepare<[], { name: string }>('SELECT name FROM streams ORDER BY name'),
    insertEvent: db.prepare<[string, number, string, string, string]>(
      'INSERT INTO events (stream, offset, type, data, timestamp) VALUES (?, ?, ?, ?, ?)',
    ),
    readEvents: db.prepare<[string, number, number], EventRow>(
      'SELECT offset, type, data, timestamp FROM events WHERE stream = ? AND offset > ? ORDER BY offset LIMIT ?',
    ),
    deleteUpTo: db.prepare<[string, number]>('DELETE FROM events WHERE stream = ? AND offset <= ?'),
    offsetBefore: db.prepare<[string, string], { offset: number | null }>(
      'SELECT MAX(offset) AS offset FROM events WHERE stream = ? AND timestamp < ?',
    ),
    upsertSnapshot: db.prepare<[string, string, number, number, string, string]>(
      `INSERT INTO snapshots (stream, epoch, offset, schema_version, state, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET epoch = excluded.epoch, offset = excluded.offset,
         schema_version = excluded.schema_version, state = excluded.state, created_at = excluded.created_at`,
    ),
    getSnapshot: db.prepare<[string], SnapshotRow>(
      'SELECT epoch, offset, schema_version, state, created_at FROM snapshots WHERE stream = ?',
    ),
    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
  };
}
type Statements = ReturnType<typeof prepareStatements>;

interface OpenState {
  readonly db: Database.Database;
  /** The data directory's lock (see open). */
  readonly lock: Database.Database;
  readonly checkpointer: Checkpointer;
  readonly stmts: Statements;
  /** The database epoch: new streams take it; it changes only with a new database file. */
  readonly epoch: string;
  /**
   * Each stream's head as committed, read from the file once per stream: the file is this
   * process's alone (the lock), so an append needs no SELECT to learn its offset.
   */
  readonly heads: Map<string, StreamHead>;
  /**
   * The appends of one group commit, in one transaction: each call's events, in call
   * order. The heads they move are kept only once it committed (see `committing`).
   */
  readonly appendTx: (calls: ReadonlyArray<readonly EventInput[]>, timestamp: string) => StoredEvent[][];
  readonly trimTx: (stream: string, upTo: number) => number;
}

interface PendingAppend {
  readonly events: readonly EventInput[];
  readonly resolve: (stored: StoredEvent[]) => void;
  readonly reject: (error: unknown) => void;
}

/** SQLite result codes that mean "storage unreachable right now" rather than a bug. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB)/;

/**
 * The single-node engine: one SQLite file in WAL mode. better-sqlite3 is synchronous,
 * so every method does its work before its promise is created: an append, its commit
 * and its listeners run without any other engine call interleaving.
 */
export class EmbeddedEngine implements Engine {
  readonly kind = 'embedded';

  private readonly dataDir: string;
  private readonly durability: 'full' | 'normal';
  private readonly onListenerError: ((error: unknown) => void) | undefined;
  private readonly onCheckpointError: ((error: unknown) => void) | undefined;
  private readonly appendListeners = new Set<(events: readonly StoredEvent[]) => void>();
  private readonly resetListeners = new Set<(stream: string, head: StreamHead) => void>();
  private state: OpenState | undefined;
  private closed = false;
  /** Appends waiting for the group commit at the end of this turn of the event loop. */
  private pending: PendingAppend[] = [];

  constructor(options: EmbeddedEngineOptions) {
    this.dataDir = options.dataDir;
    this.durability = options.durability ?? 'full';
    this.onListenerError = options.onListenerError;
    this.onCheckpointError = options.onCheckpointError;
  }

  async open(): Promise<void> {
    if (this.closed) throw new EngineUnavailableError('embedded engine is closed');
    if (this.state) return;
    mkdirSync(this.dataDir, { recursive: true });
    const file = path.join(this.dataDir, DB_FILE);
    const lock = lockDataDir(path.join(this.dataDir, LOCK_FILE), file);
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      // FULL fsyncs the WAL on every commit: what makes "append resolved" mean durable.
      db.pragma(`synchronous = ${this.durability === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma(`wal_autocheckpoint = ${COMMIT_CHECKPOINT_PAGES}`);
      db.exec(SCHEMA);
      const epoch = loadOrCreateEpoch(db);
      const stmts = prepareStatements(db);
      const heads = new Map<string, StreamHead>();
      const checkpointer = startCheckpointer({
        file,
        synchronous: this.durability === 'full' ? 'FULL' : 'NORMAL',
        intervalMs: CHECKPOINT_INTERVAL_MS,
        onError: (error) => this.onCheckpointError?.(error),
      });
      this.state = {
        db,
        lock,
        checkpointer,
        stmts,
        epoch,
        heads,
        appendTx: committing(
          heads,
          db.transaction((moved: Map<string, MovingHead>, calls: ReadonlyArray<readonly EventInput[]>, timestamp: string) =>
            calls.map((events) => appendInTx(stmts, heads, moved, epoch, events, timestamp)),
          ),
        ),
        trimTx: committing(
          heads,
          db.transaction((moved: Map<string, MovingHead>, stream: string, upTo: number) => trimInTx(stmts, heads, moved, epoch, stream, upTo)),
        ),
      };
    } catch (error) {
      db?.close();
      lock.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    // What was accepted before close is committed (or fails) first.
    this.commitPending();
    this.closed = true;
    const state = this.state;
    this.state = undefined;
    if (!state) return;
    await state.checkpointer.stop();
    // The last connection to close checkpoints the rest of the WAL and removes it.
    state.db.close();
    state.lock.close();
  }

  /**
   * Group commit: the appends made in one turn of the event loop (say, the requests of
   * several producers parsed together) share one transaction, so one commit (and with
   * `full`, one fsync) serves them all. Each call's events stay atomic and in order, and
   * its promise resolves only after the commit.
   */
  async append(events: readonly EventInput[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    this.open_();
    return new Promise((resolve, reject) => {
      this.pending.push({ events, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.commitPending());
    });
  }

  private commitPending(): void {
    const group = this.pending;
    if (group.length === 0) return;
    this.pending = [];
    // One timestamp per commit: its events happened at the same instant.
    const timestamp = new Date().toISOString();
    let stored: StoredEvent[][];
    try {
      const { appendTx } = this.open_();
      stored = guard(() => appendTx(group.map((call) => call.events), timestamp));
    } catch (error) {
      // One call's failure must not fail the others: commit each alone.
      if (group.length === 1) return group[0]!.reject(error);
      for (const call of group) {
        try {
          const { appendTx } = this.open_();
          const [mine] = guard(() => appendTx([call.events], timestamp));
          this.notifyAppend(mine!);
          call.resolve(mine!);
        } catch (own) {
          call.reject(own);
        }
      }
      return;
    }
    // Only after the commit: listeners must never hear of an event that could roll back.
    this.notifyAppend(stored.flat());
    group.forEach((call, i) => call.resolve(stored[i]!));
  }

  async read(stream: string, after: number, limit: number): Promise<ReadResult> {
    const { stmts, epoch, heads } = this.open_();
    return guard(() => {
      const head = headOf(stmts, heads, epoch, stream);
      // The events right after `after` are gone: the caller needs a snapshot instead.
      if (after < head.first - 1) return { trimmed: true } as const;
      if (limit <= 0 || after >= head.offset) return { trimmed: false, events: [] };
      const rows = stmts.readEvents.all(stream, after, limit);
      return { trimmed: false, events: rows.map((row) => toStoredEvent(stream, head.epoch, row)) };
    });
  }

  async head(stream: string): Promise<StreamHead> {
    const { stmts, epoch, heads } = this.open_();
    return guard(() => headOf(stmts, heads, epoch, stream));
  }

  async streams(): Promise<string[]> {
    const { stmts } = this.open_();
    return guard(() => stmts.listStreams.all().map((row) => row.name));
  }

  async saveSnapshot(snapshot: StoredSnapshot): Promise<void> {
    const { stmts } = this.open_();
    guard(() =>
      stmts.upsertSnapshot.run(
        snapshot.stream,
        snapshot.epoch,
        snapshot.offset,
        snapshot.schemaVersion,
        JSON.stringify(snapshot.state),
        snapshot.createdAt,
      ),
    );
  }

  async loadSnapshot(stream: string): Promise<StoredSnapshot | undefined> {
    const { stmts } = this.open_();
    const row = guard(() => stmts.getSnapshot.get(stream));
    if (!row) return undefined;
    return {
      stream,
      epoch: row.epoch,
      offset: row.offset,
      schemaVersion: row.schema_version,
      state: JSON.parse(row.state) as unknown,
      createdAt: row.created_at,
    };
  }

  async trim(stream: string, upTo: number): Promise<number> {
    const { trimTx } = this.open_();
    return guard(() => trimTx(stream, upTo));
  }

  async offsetBefore(stream: string, time: string): Promise<number> {
    const { stmts } = this.open_();
    // ISO UTC strings with a Z compare like the instants they name.
    return guard(() => stmts.offsetBefore.get(stream, time)?.offset ?? 0);
  }

  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** Kept for the interface only: a local file's history cannot vanish under a running process. */
  onReset(listener: (stream: string, head: StreamHead) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  async health(): Promise<EngineHealth> {
    if (!this.state) return { ok: false, detail: this.closed ? 'closed' : 'not open' };
    try {
      this.state.stmts.ping.get();
      return { ok: true };
    } catch (error) {
      return { ok: false, detail: error instanceof Error ? error.message : String(error) };
    }
  }

  /** The open database, or the error every call makes after `close` (or before `open`). */
  private open_(): OpenState {
    if (!this.state) throw new EngineUnavailableError(`embedded engine is ${this.closed ? 'closed' : 'not open'}`);
    return this.state;
  }

  private notifyAppend(stored: readonly StoredEvent[]): void {
    // A copy: a listener may unsubscribe (itself or another) while we iterate.
    for (const listener of [...this.appendListeners]) {
      try {
        listener(stored);
      } catch (error) {
        this.onListenerError?.(error);
      }
    }
  }
}

/**
 * One gateway per data directory: its in-memory state is the log's, so a second process
 * appending to the same file would fork it. The lock is a small database of its own held
 * `locking_mode=EXCLUSIVE` from its first write until close (the OS drops it with the
 * process, even after kill -9); the log itself stays shared so the checkpointer thread
 * can open it. A second gateway waits `BUSY_TIMEOUT_MS` for it, then is refused.
 */
function lockDataDir(lockFile: string, dbFile: string): Database.Database {
  const lock = new Database(lockFile);
  try {
    lock.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    lock.pragma('locking_mode = EXCLUSIVE');
    // A write takes the lock for good; the row says which process holds it.
    lock.exec('CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL)');
    lock.prepare('INSERT OR REPLACE INTO holder (id, pid) VALUES (1, ?)').run(process.pid);
    return lock;
  } catch (error) {
    lock.close();
    if (error instanceof Database.SqliteError && /^SQLITE_BUSY/.test(error.code)) {
      throw new EngineUnavailableError(`${dbFile} is in use by another process (one gateway per data directory)`);
    }
    throw error;
  }
}

/** Reads the database epoch, creating it with the database: it must never change afterwards. */
function loadOrCreateEpoch(db: Database.Database): string {
  db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run('epoch', randomBytes(8).toString('hex'));
  const row = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get('epoch');
  if (!row) throw new Error('database epoch missing after creation');
  return row.value;
}

/** A head a transaction moves, kept in memory only once it commits. */
type MovingHead = { -readonly [K in keyof StreamHead]: StreamHead[K] };

/**
 * Wraps a transaction that moves stream heads: it gets a map of its own for them, and
 * only once it committed do they replace the known ones (a rollback leaves them as they were).
 */
function committing<A extends unknown[], R>(
  heads: Map<string, StreamHead>,
  tx: (moved: Map<string, MovingHead>, ...args: A) => R,
): (...args: A) => R {
  return (...args) => {
    const moved = new Map<string, MovingHead>();
    const result = tx(moved, ...args);
    for (const [stream, head] of moved) heads.set(stream, head);
    return result;
  };
}

/** A stream's head as the file has it; undefined for a stream never appended to. */
function storedHead(stmts: Statements, stream: string): StreamHead | undefined {
  const row = stmts.getStream.get(stream);
  return row && { epoch: row.epoch, offset: row.head, first: row.first };
}

/** A stream's committed head: from memory once read, from the file the first time. */
function headOf(stmts: Statements, heads: Map<string, StreamHead>, dbEpoch: string, stream: string): StreamHead {
  const known = heads.get(stream) ?? storedHead(stmts, stream);
  // A stream never appended to would be created with the database epoch, so report that.
  // Not remembered: most such names are never appended to (a client subscribing to anything).
  if (!known) return { epoch: dbEpoch, offset: 0, first: 1 };
  heads.set(stream, known);
  return known;
}

/**
 * Runs inside the append transaction: offsets stay dense because head and insert commit
 * together. The heads it moves go into `moved`, which the caller keeps only once committed.
 */
function appendInTx(
  stmts: Statements,
  heads: Map<string, StreamHead>,
  moved: Map<string, MovingHead>,
  dbEpoch: string,
  events: readonly EventInput[],
  timestamp: string,
): StoredEvent[] {
  return events.map((event): StoredEvent => {
    let current = moved.get(event.stream);
    if (!current) {
      const known = heads.get(event.stream) ?? storedHead(stmts, event.stream);
      if (known) {
        current = { ...known };
      } else {
        stmts.insertStream.run(event.stream, dbEpoch);
        current = { epoch: dbEpoch, offset: 0, first: 1 };
      }
      moved.set(event.stream, current);
    }
    current.offset += 1;
    stmts.insertEvent.run(event.stream, current.offset, event.type, JSON.stringify(event.data), timestamp);
    return {
      type: event.type,
      stream: event.stream,
      epoch: current.epoch,
      offset: current.offset,
      timestamp,
      // The input object itself: the gateway validated it as plain JSON, so it equals what a read returns.
      data: event.data,
    };
  });
}

function trimInTx(
  stmts: Statements,
  heads: Map<string, StreamHead>,
  moved: Map<string, MovingHead>,
  dbEpoch: string,
  stream: string,
  upTo: number,
): number {
  // A stream never appended to has head 0 and first 1: nothing to delete, nothing moves.
  const head = headOf(stmts, heads, dbEpoch, stream);
  // `first` never passes head + 1, so the next append's event stays readable.
  const first = Math.min(Math.max(head.first, upTo + 1), head.offset + 1);
  const deleted = stmts.deleteUpTo.run(stream, first - 1).changes;
  if (first !== head.first) {
    stmts.setFirst.run(first, head.offset, stream);
    moved.set(stream, { ...head, first });
  }
  return deleted;
}

function toStoredEvent(stream: string, epoch: string, row: EventRow): StoredEvent {
  return {
    type: row.type,
    stream,
    epoch,
    offset: row.offset,
    timestamp: row.timestamp,
    data: JSON.parse(row.data) as Record<string, unknown>,
  };
}

/** Turns "storage unreachable" SQLite errors into the error the HTTP layer answers 503 to. */
function guard<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof Database.SqliteError && UNAVAILABLE_CODES.test(error.code)) {
      throw new EngineUnavailableError(error.message, { cause: error });
    }
    throw error;
  }
}
