/**
 * Moves the embedded engine's WAL checkpoints off the event loop. A checkpoint copies
 * the log's pages into the database file and fsyncs both; the copy takes under a
 * millisecond, the fsyncs 15–20 ms when ~500 appends spread over many streams
 * are dirty. Done by the connection that commits (SQLite's autocheckpoint), that is a
 * stall of the whole gateway (twice a second at 1,000 appends/s). Here a worker thread with its own
 * connection runs a PASSIVE checkpoint (never blocking a writer) every `intervalMs`, so
 * the commit's own checkpoint, which SQLite still needs to restart the log, finds only
 * the last few frames left and little to fsync.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

export interface CheckpointerOptions {
  /** The database file (WAL mode, opened by the engine first). */
  readonly file: string;
  /** `synchronous` of the checkpointing connection: the engine's, so a checkpoint syncs as its commits do. */
  readonly synchronous: 'FULL' | 'NORMAL';
  /** Time between checkpoints. */
  readonly intervalMs: number;
  /** Told when a checkpoint fails (the commit's own checkpoint still bounds the log). */
  readonly onError: (error: Error) => void;
}

export interface Checkpointer {
  /** Stops the worker once its checkpoint in progress (if any) ends, and closes its connection. */
  stop(): Promise<void>;
}

// CommonJS for `eval`: the same code runs from the sources and from the built package.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('synchronous = ' + workerData.synchronous);
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    parentPort.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export function startCheckpointer(options: CheckpointerOptions): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { driver, file: options.file, synchronous: options.synchronous, intervalMs: options.intervalMs },
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (message: { error: string }) => options.onError(new Error(`WAL checkpoint failed: ${message.error}`)));
  worker.on('error', (error) => options.onError(error));
  // A checkpointer must never keep a process alive that has nothing else to do.
  worker.unref();
  return {
    async stop() {
      // Held until it exits: a shutdown awaiting it must keep the process alive meanwhile.
      worker.ref();
      worker.postMessage('stop');
      await exited;
    },
  };
}
