/**
 * Soak test: one gateway under steady load and constant small reconnect storms for a
 * long time, then proof that every client replica equals the server and that nothing
 * grew without bound.
 *
 *   node --conditions=@tradesync/source --import tsx bench/soak.ts [--minutes 30] [--clients 1000] [--rate 500]
 *                                   [--accounts N] [--drop-every 5] [--durability normal] [--memory-window N]
 *
 * - `tradesync serve` runs as a child process on a free 127.0.0.1 port with the built-in
 *   simulator on (default rate) and `TRADESYNC_LIMITS__MAX_CONNECTIONS_PER_IP=20000`.
 * - This process POSTs `--rate` extra events/s to `/api/v1/events` (batches every 20 ms),
 *   spread over `orders:acct-N` and `portfolio:acct-N` (bounded: a small pool of order
 *   ids, currencies, symbols per account) and a few `market:SOAK-k` streams.
 * - `--clients` SDK clients (`TradeSyncClient`, replicas) run in two worker threads. Each
 *   subscribes to its own account stream, two of the simulator's demo streams and one
 *   market stream (simulator or producer).
 * - Every `--drop-every` seconds a random 1–5% of the connected clients lose their socket
 *   (half `terminate()`d: a dead TCP connection; half closed with 4000, a resume code);
 *   the SDK must reconnect and resume by itself.
 * - Every minute: server RSS (/proc/<pid>/status), heap used, event-loop lag p99 and
 *   connections (GET /metrics), events appended per second.
 * - At the end: the producer and the drops stop, the clients settle, then each replica
 *   is compared with `GET /api/state/snapshot?account=&streams=` (canonical JSON, at the
 *   same offset: the simulator keeps publishing, so the workers keep a short history of
 *   replica states by offset while verifying), and `GET /api/admin/websocket/connections`
 *   must count exactly the clients connected.
 *
 * Memory: the gateway keeps up to 2 × `history.memory_window` (default 1000) recent events
 * per stream in memory, so RSS and heap rise until those windows are full; the header
 * says when that is for the chosen load. Growth before then is expected; growth after
 * it is what to look at. `--memory-window` sets TRADESYNC_HISTORY__MEMORY_WINDOW for the
 * gateway, to reach the plateau sooner.
 *
 * Exits 1 when a replica diverged (or could not be verified, or the connection count is
 * off), 3 when the hard deadline (--minutes + 4 min) passed. The server is killed on any
 * exit, Ctrl-C included; its log goes to a file in the temp directory (path printed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { WebSocket } from 'ws';
import { TradeSyncClient, type Logger, type StreamHandle, type WebSocketConstructor } from '@tradesync/client';
import type { StreamState } from '@tradesync/protocol';
import { cpuMs, freePort, rssBytes, sleep } from './peers/common.js';
import { track } from './peers/servers.js';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';


/** The simulator's default accounts and symbols (packages/simulator). */
const DEMO_STREAMS = ['demo', 'demo-2'].flatMap((a) => ['portfolio', 'orders', 'signals', 'state_machines', 'indicators', 'alerts'].map((k) => `${k}:${a}`));
const SIM_SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL', 'MSFT'];
const SOAK_SYMBOLS = ['SOAK-0', 'SOAK-1', 'SOAK-2', 'SOAK-3', 'SOAK-4'];

// ---------------------------------------------------------------------------------------
// Shared between the main thread and the client workers
// ---------------------------------------------------------------------------------------

interface ClientSpec {
  readonly id: number;
  readonly streams: readonly string[];
}

interface WorkerInit {
  readonly port: number;
  readonly clients: readonly ClientSpec[];
}

/** The server's state of one stream, as the workers compare it. */
interface Snap {
  readonly epoch: string;
  readonly offset: number;
  readonly hash: string;
  readonly state: unknown;
}

type ToWorker =
  | { readonly id: number; readonly op: 'drop'; readonly count: number }
  | { readonly id: number; readonly op: 'stats' }
  | { readonly id: number; readonly op: 'record'; readonly on: boolean }
  | { readonly id: number; readonly op: 'verify'; readonly snaps: Record<string, Snap> }
  | { readonly id: number; readonly op: 'close' };

interface Counters {
  dropsTerminate: number;
  dropsClose: number;
  /** Back to `connected` after having been connected. */
  reconnects: number;
  /** A dropped client back with every stream synced again. */
  resumes: number;
  recoveredSyncs: number;
  snapshotSyncs: number;
  httpSyncs: number;
  syncFailed: number;
  /** The socket closed and we did not drop it (slow consumer, heartbeat, server close...). */
  unexpectedCloses: number;
  /** Reconnect attempts that failed (the next attempt followed). */
  failedAttempts: number;
  failedClients: number;
  warns: number;
  errors: number;
}

interface WorkerStats {
  readonly connected: number;
  readonly notConnected: number;
  /** Dropped clients not yet fully resynced. */
  readonly resuming: number;
  readonly counters: Counters;
  readonly closeCodes: Record<string, number>;
  /** Drop → all streams synced again, ms, since the last stats. */
  readonly resumeMs: readonly number[];
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  readonly logs: Record<string, number>;
}

interface VerifyResult {
  readonly ok: number;
  readonly diverged: number;
  /** Streams with replicas not decided yet (replica behind, ahead of its history, or offline). */
  readonly undecided: readonly string[];
  readonly undecidedCount: number;
  readonly details: readonly string[];
}

/** A command as the main thread sends it (the id is added by `ClientWorker.ask`). */
type WorkerCommand = ToWorker extends infer T ? (T extends ToWorker ? Omit<T, 'id'> : never) : never;

type FromWorker =
  | { readonly op: 'ready'; readonly connected: number; readonly failed: number; readonly replicas: number }
  | { readonly op: 'reply'; readonly id: number; readonly value: unknown }
  | { readonly op: 'fatal'; readonly message: string };

/** JSON with sorted keys (undefined members dropped, as JSON does): equal states, equal text. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonical(v))).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(record[k])}`).join(',')}}`;
}

const hashOf = (value: unknown): string => createHash('sha1').update(canonical(value)).digest('hex');

/** Where two states first differ, for the report. */
function firstDiff(a: unknown, b: unknown, path = '$'): string | undefined {
  if (a === b) return undefined;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return canonical(a) === canonical(b) ? undefined : `${path}: replica ${canonical(a).slice(0, 80)} vs server ${canonical(b).slice(0, 80)}`;
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const key of [...keys].sort()) {
    if (!(key in ra)) return `${path}.${key}: missing in replica`;
    if (!(key in rb)) return `${path}.${key}: not on the server`;
    const diff = firstDiff(ra[key], rb[key], `${path}.${key}`);
    if (diff) return diff;
  }
  return undefined;
}

const percentile = (values: readonly number[], p: number): number => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

// ---------------------------------------------------------------------------------------
// Client worker (a worker thread)
// ---------------------------------------------------------------------------------------

interface SimClient {
  readonly spec: ClientSpec;
  readonly client: TradeSyncClient;
  /** The socket the SDK opened last (our WebSocket subclass records it). */
  readonly slot: { ws?: WebSocket };
  readonly handles: Map<string, StreamHandle>;
  /** While verifying: replica states by offset, per stream (bounded). */
  readonly history: Map<string, Map<number, StreamState>>;
  readonly firstSynced: Set<string>;
  everConnected: boolean;
  /** We dropped the socket and its close is still to come. */
  dropping: boolean;
  dropAt: number | undefined;
  pendingSync: Set<string> | undefined;
}

async function runWorker(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const url = `ws://127.0.0.1:${init.port}/ws`;
  const counters: Counters = {
    dropsTerminate: 0,
    dropsClose: 0,
    reconnects: 0,
    resumes: 0,
    recoveredSyncs: 0,
    snapshotSyncs: 0,
    httpSyncs: 0,
    syncFailed: 0,
    unexpectedCloses: 0,
    failedAttempts: 0,
    failedClients: 0,
    warns: 0,
    errors: 0,
  };
  const closeCodes: Record<string, number> = {};
  const logs: Record<string, number> = {};
  let resumeMs: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  let recording = false;
  const HISTORY = 400;

  const note = (level: 'warn' | 'error', message: string, context?: Record<string, unknown>): void => {
    if (level === 'warn') counters.warns++;
    else counters.errors++;
    const code = context && 'code' in context ? ` (${String(context.code)})` : '';
    const key = `${level}: ${message}${code}`.slice(0, 160);
    // Bounded: a flood of distinct messages must not become the leak.
    if (key in logs || Object.keys(logs).length < 50) logs[key] = (logs[key] ?? 0) + 1;
  };
  const logger: Logger = { debug: () => {}, warn: (m, c) => note('warn', m, c), error: (m, c) => note('error', m, c) };

  const sims: SimClient[] = [];

  const remember = (sim: SimClient, stream: string): void => {
    const handle = sim.handles.get(stream);
    const position = handle?.position;
    if (!handle || !position) return;
    let history = sim.history.get(stream);
    if (!history) sim.history.set(stream, (history = new Map<number, StreamState>()));
    history.set(position.offset, handle.state);
    if (history.size > HISTORY) history.delete(history.keys().next().value!);
  };

  const open = (spec: ClientSpec): Promise<boolean> => {
    const slot: { ws?: WebSocket } = {};
    class TrackedSocket extends WebSocket {
      constructor(address: string) {
        super(address);
        slot.ws = this;
      }
    }
    const client = new TradeSyncClient({ url, WebSocket: TrackedSocket as unknown as WebSocketConstructor, logger });
    const sim: SimClient = {
      spec,
      client,
      slot,
      handles: new Map(),
      history: new Map(),
      firstSynced: new Set(),
      everConnected: false,
      dropping: false,
      dropAt: undefined,
      pendingSync: undefined,
    };
    sims.push(sim);
    client.on('status', (next, previous) => {
      if (next.state === 'connected' && previous.state !== 'connected') {
        if (sim.everConnected) counters.reconnects++;
        sim.everConnected = true;
      }
      if (previous.state === 'connected' && next.state !== 'connected') {
        if (sim.dropping) sim.dropping = false;
        else {
          counters.unexpectedCloses++;
          const code = String(next.lastClose?.code ?? '?');
          closeCodes[code] = (closeCodes[code] ?? 0) + 1;
        }
      }
      if (next.state === 'reconnecting' && previous.state === 'reconnecting' && next.attempt > previous.attempt) counters.failedAttempts++;
      if (next.state === 'failed' && previous.state !== 'failed') counters.failedClients++;
    });
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      for (const stream of spec.streams) {
        const handle = client.subscribe(stream, {
          onSynced: (info) => {
            if (!sim.firstSynced.has(stream)) {
              sim.firstSynced.add(stream);
              if (sim.firstSynced.size === spec.streams.length) {
                clearTimeout(timer);
                resolve(true);
              }
            } else if (info.via === 'http') counters.httpSyncs++;
            else if (info.recovered) counters.recoveredSyncs++;
            else counters.snapshotSyncs++;
            if (info.via === 'socket' && sim.pendingSync?.delete(stream) && sim.pendingSync.size === 0) {
              counters.resumes++;
              resumeMs.push(performance.now() - sim.dropAt!);
              sim.pendingSync = undefined;
              sim.dropAt = undefined;
            }
          },
          onChange: () => {
            if (recording) remember(sim, stream);
          },
          onSyncFailed: () => counters.syncFailed++,
        });
        sim.handles.set(stream, handle);
      }
    });
  };

  // Connect a chunk at a time, each client fully synced before the next chunk.
  let connected = 0;
  let failed = 0;
  const CHUNK = 50;
  for (let i = 0; i < init.clients.length; i += CHUNK) {
    const results = await Promise.all(init.clients.slice(i, i + CHUNK).map(open));
    for (const ok of results) {
      if (ok) connected++;
      else failed++;
    }
  }
  const replicas = sims.reduce((n, s) => n + s.handles.size, 0);
  port.postMessage({ op: 'ready', connected, failed, replicas } satisfies FromWorker);

  const drop = (count: number): number => {
    const eligible = sims.filter((s) => s.client.status.state === 'connected' && s.dropAt === undefined && s.slot.ws);
    let dropped = 0;
    for (let i = 0; i < count && eligible.length > 0; i++) {
      const pick = Math.floor(Math.random() * eligible.length);
      const sim = eligible[pick]!;
      eligible[pick] = eligible[eligible.length - 1]!;
      eligible.pop();
      sim.dropping = true;
      sim.dropAt = performance.now();
      sim.pendingSync = new Set(sim.handles.keys());
      if (Math.random() < 0.5) {
        counters.dropsTerminate++;
        sim.slot.ws!.terminate();
      } else {
        counters.dropsClose++;
        sim.slot.ws!.close(4000, 'soak: dropped');
      }
      dropped++;
    }
    return dropped;
  };

  const stats = (): WorkerStats => {
    const s: WorkerStats = {
      connected: sims.filter((x) => x.client.status.state === 'connected').length,
      notConnected: sims.filter((x) => x.client.status.state !== 'connected').length,
      resuming: sims.filter((x) => x.dropAt !== undefined).length,
      counters: { ...counters },
      closeCodes: { ...closeCodes },
      resumeMs,
      loopP99Ms: loop.percentile(99) / 1e6,
      loopMaxMs: loop.max / 1e6,
      logs: { ...logs },
    };
    resumeMs = [];
    loop.reset();
    return s;
  };

  const hashes = new WeakMap<object, string>();
  const hashState = (state: StreamState): string => {
    let hash = hashes.get(state);
    if (hash === undefined) hashes.set(state, (hash = hashOf(state)));
    return hash;
  };
  const decided = new Set<string>();
  const verify = (snaps: Record<string, Snap>): VerifyResult => {
    let ok = 0;
    let diverged = 0;
    let undecidedCount = 0;
    const undecided = new Set<string>();
    const details: string[] = [];
    for (const sim of sims) {
      for (const [stream, handle] of sim.handles) {
        const key = `${sim.spec.id}|${stream}`;
        const snap = snaps[stream];
        if (!snap || decided.has(key)) continue;
        const position = handle.position;
        let state: StreamState | undefined;
        if (sim.client.status.state === 'connected' && position?.epoch === snap.epoch) {
          state = position.offset === snap.offset ? handle.state : sim.history.get(stream)?.get(snap.offset);
        }
        if (state === undefined) {
          undecided.add(stream);
          undecidedCount++;
          continue;
        }
        decided.add(key);
        if (hashState(state) === snap.hash) {
          ok++;
          continue;
        }
        diverged++;
        if (details.length < 10) {
          details.push(`client ${sim.spec.id} ${stream} @${snap.offset} (replica at ${position?.offset}): ${firstDiff(state, snap.state) ?? 'canonical JSON differs'}`);
        }
      }
    }
    return { ok, diverged, undecided: [...undecided], undecidedCount, details };
  };

  port.on('message', (msg: ToWorker) => {
    let value: unknown;
    switch (msg.op) {
      case 'drop':
        value = drop(msg.count);
        break;
      case 'stats':
        value = stats();
        break;
      case 'record':
        recording = msg.on;
        for (const sim of sims) {
          sim.history.clear();
          if (recording) for (const stream of sim.handles.keys()) remember(sim, stream);
        }
        value = true;
        break;
      case 'verify':
        value = verify(msg.snaps);
        break;
      case 'close':
        for (const sim of sims) sim.client.disconnect();
        value = true;
        break;
    }
    port.postMessage({ op: 'reply', id: msg.id, value } satisfies FromWorker);
  });
}

/** The main thread's handle on one client worker. */
class ClientWorker {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, (value: unknown) => void>();
  #nextId = 1;
  readonly ready: Promise<{ connected: number; failed: number; replicas: number }>;

  constructor(init: WorkerInit, onFatal: (message: string) => void) {
    // Node 20 does not pass `--import tsx` on to worker threads: register tsx, then load this file.
    const api = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
    this.#worker = new Worker(code, { eval: true, workerData: init });
    this.ready = new Promise((resolve) => {
      this.#worker.on('message', (msg: FromWorker) => {
        if (msg.op === 'ready') resolve(msg);
        else if (msg.op === 'reply') {
          this.#waiting.get(msg.id)?.(msg.value);
          this.#waiting.delete(msg.id);
        } else onFatal(msg.message);
      });
    });
    this.#worker.on('error', (err) => onFatal(`client worker failed: ${err.stack ?? err.message}`));
  }

  ask<T>(cmd: WorkerCommand, timeoutMs = 60_000): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`client worker: no answer to '${cmd.op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, (value) => {
        clearTimeout(timer);
        resolve(value as T);
      });
      this.#worker.postMessage({ ...cmd, id });
    });
  }

  terminate(): Promise<number> {
    return this.#worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------
// Main thread: server, producer, drops, samples, verification
// ---------------------------------------------------------------------------------------

interface Options {
  readonly minutes: number;
  readonly clients: number;
  readonly rate: number;
  readonly accounts: number;
  readonly dropEveryMs: number;
  readonly durability: string;
  readonly memoryWindow: number | undefined;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      clients: { type: 'string', default: '1000' },
      rate: { type: 'string', default: '500' },
      accounts: { type: 'string' },
      'drop-every': { type: 'string', default: '5' },
      durability: { type: 'string', default: 'normal' },
      'memory-window': { type: 'string' },
    },
  });
  const minutes = Number(values.minutes);
  const clients = Number(values.clients);
  const rate = Number(values.rate);
  const accounts = values.accounts === undefined ? Math.max(10, Math.round(clients / 4)) : Number(values.accounts);
  const dropEvery = Number(values['drop-every']);
  const memoryWindow = values['memory-window'] === undefined ? undefined : Number(values['memory-window']);
  if (memoryWindow !== undefined && !(Number.isInteger(memoryWindow) && memoryWindow >= 1)) {
    console.error('soak: --memory-window must be a positive integer');
    process.exit(2);
  }
  if (!(minutes > 0) || !(clients >= 2) || !Number.isInteger(clients) || !(rate >= 0) || !(accounts >= 1) || !(dropEvery > 0)) {
    console.error('soak: --minutes > 0, --clients an integer >= 2, --rate >= 0, --accounts >= 1, --drop-every > 0 (seconds)');
    process.exit(2);
  }
  return { minutes, clients, rate, accounts: Math.floor(accounts), dropEveryMs: dropEvery * 1000, durability: values.durability, memoryWindow };
}

const log = (line: string): void => console.log(line);
const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const pct = (from: number, to: number): string => `${to >= from ? '+' : ''}${(((to - from) / from) * 100).toFixed(1)}%`;

/** A small seeded PRNG, so two soaks publish the same sequence. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ServerProcess {
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly logStats: { warns: number; errors: number; messages: Map<string, number> };
  stop(): Promise<void>;
}

async function startGateway(opts: Options): Promise<ServerProcess> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-soak-'));
  process.on('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  const logFile = join(tmpdir(), `tradesync-soak-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
  const logOut = createWriteStream(logFile);
  const args = [...TRADESYNC_CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--durability', opts.durability, '--log-level', 'warn'];
  const env: NodeJS.ProcessEnv = { ...process.env, TRADESYNC_LIMITS__MAX_CONNECTIONS_PER_IP: '20000' };
  if (opts.memoryWindow !== undefined) env.TRADESYNC_HISTORY__MEMORY_WINDOW = String(opts.memoryWindow);
  const child = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
  const logStats = { warns: 0, errors: 0, messages: new Map<string, number>() };
  let out = '';
  let partial = '';
  const onLine = (line: string): void => {
    if (!line.startsWith('{')) return;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      if ((entry.level ?? 0) < 40) return;
      if ((entry.level ?? 0) >= 50) logStats.errors++;
      else logStats.warns++;
      const key = `${(entry.level ?? 0) >= 50 ? 'error' : 'warn'}: ${entry.msg ?? '?'}`.slice(0, 160);
      if (logStats.messages.has(key) || logStats.messages.size < 50) logStats.messages.set(key, (logStats.messages.get(key) ?? 0) + 1);
    } catch {
      // not a log line
    }
  };
  const onData = (chunk: Buffer): void => {
    logOut.write(chunk);
    const text = partial + chunk.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > 1_000_000) partial = '';
    for (const line of lines) onLine(line);
    if (out.length < 100_000) out += chunk.toString();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start within 60 s:\n${out}`)), 60_000);
    const check = (): void => {
      if (out.includes('Simulator running')) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited early (${code}):\n${out}`));
    });
  });
  return {
    port,
    pid: child.pid!,
    child,
    logFile,
    logStats,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await new Promise((resolve) => logOut.end(resolve));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Events for the producer: bounded state per stream (small pools of ids). */
function makeEventFactory(accounts: number): () => { stream: string; type: string; data: Record<string, unknown> } {
  const random = mulberry32(42);
  const int = (n: number): number => Math.floor(random() * n);
  const price = (base: number): string => (base * (0.95 + random() * 0.1)).toFixed(2);
  let seq = 0;
  return () => {
    seq++;
    const now = new Date().toISOString();
    const r = random();
    if (r < 0.15) {
      const k = int(SOAK_SYMBOLS.length);
      return { stream: `market:${SOAK_SYMBOLS[k]}`, type: 'market:tick', data: { symbol: SOAK_SYMBOLS[k], price: price(100 + k * 50), timestamp: now, seq } };
    }
    const account = `acct-${int(accounts)}`;
    if (r < 0.6) {
      const stream = `orders:${account}`;
      const orderId = `${account}-o${int(8)}`;
      if (random() < 0.25) return { stream, type: 'order:closed', data: { order_id: orderId, status: random() < 0.5 ? 'filled' : 'cancelled' } };
      const quantity = (1 + int(10)) / 10;
      return {
        stream,
        type: 'order:updated',
        data: {
          order_id: orderId,
          symbol: SIM_SYMBOLS[int(SIM_SYMBOLS.length)],
          side: random() < 0.5 ? 'buy' : 'sell',
          order_type: 'limit',
          quantity: quantity.toFixed(1),
          price: price(1000),
          filled_quantity: (quantity * (int(3) / 4)).toFixed(3),
          status: random() < 0.5 ? 'open' : 'partially_filled',
          session_id: null,
          created_at: now,
          seq,
        },
      };
    }
    const stream = `portfolio:${account}`;
    const pick = random();
    if (pick < 0.3) {
      const total = price(10_000);
      return { stream, type: 'balance:updated', data: { currency: ['USD', 'USDT', 'BTC'][int(3)], total, available: total, reserved: '0.00' } };
    }
    if (pick < 0.6) {
      const symbol = SIM_SYMBOLS[int(SIM_SYMBOLS.length)];
      return {
        stream,
        type: 'position:updated',
        data: { symbol, side: random() < 0.5 ? 'long' : 'short', quantity: '1.5', avg_price: price(500), mark_price: price(500), unrealized_pnl: (random() * 200 - 100).toFixed(2) },
      };
    }
    if (pick < 0.75) return { stream, type: 'position:closed', data: { symbol: SIM_SYMBOLS[int(SIM_SYMBOLS.length)] } };
    if (pick < 0.9) {
      return {
        stream,
        type: 'portfolio:updated',
        data: { total_value_usd: price(50_000), unrealized_pnl: (random() * 200 - 100).toFixed(2), realized_pnl: price(100), total_heat: (random() * 10).toFixed(2), available_capacity: price(20_000) },
      };
    }
    return { stream, type: 'campaign:updated', data: { campaign_id: `c${int(3)}`, risk_allocated: price(1000), positions_count: int(5) } };
  };
}

/** POSTs `rate` events/s, a batch every 20 ms; whatever fell due while requests were in flight goes in the next one. */
class Producer {
  sent = 0;
  failed = 0;
  readonly statuses = new Map<string, number>();
  #stopped = false;
  readonly done: Promise<void>;

  constructor(port: number, rate: number, accounts: number) {
    const make = makeEventFactory(accounts);
    this.done = (async () => {
      if (rate <= 0) return;
      const start = performance.now();
      let due = 0;
      const inFlight = new Set<Promise<void>>();
      while (!this.#stopped) {
        await sleep(20);
        const target = Math.floor(((performance.now() - start) * rate) / 1000);
        if (inFlight.size >= 4 || target <= due) continue;
        const n = Math.min(2000, target - due);
        due += n;
        const events = Array.from({ length: n }, make);
        const p = fetch(`http://127.0.0.1:${port}/api/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(events),
          signal: AbortSignal.timeout(30_000),
        })
          .then(async (res) => {
            await res.arrayBuffer();
            if (res.ok) this.sent += n;
            else {
              this.failed += n;
              this.statuses.set(String(res.status), (this.statuses.get(String(res.status)) ?? 0) + 1);
            }
          })
          .catch((err: unknown) => {
            this.failed += n;
            const key = (err as Error).name;
            this.statuses.set(key, (this.statuses.get(key) ?? 0) + 1);
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
    })();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.done;
  }
}

/** `name{labels} value` lines, summed over labels. */
async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (Number.isFinite(value)) values.set(match[1]!, (values.get(match[1]!) ?? 0) + value);
  }
  return values;
}

interface Sample {
  readonly minute: number;
  readonly atMs: number;
  readonly rss: number;
  readonly heap: number;
  readonly connections: number;
  readonly appended: number;
  readonly delivered: number;
  readonly loopP99Ms: number;
  readonly cpuMs: number;
}

async function takeSample(server: ServerProcess, minute: number): Promise<Sample> {
  const metrics = await scrape(server.port);
  return {
    minute,
    atMs: performance.now(),
    rss: rssBytes(server.pid),
    heap: metrics.get('tradesync_process_nodejs_heap_size_used_bytes') ?? NaN,
    connections: metrics.get('tradesync_connections') ?? NaN,
    appended: metrics.get('tradesync_events_appended_total') ?? NaN,
    delivered: metrics.get('tradesync_events_delivered_total') ?? NaN,
    loopP99Ms: (metrics.get('tradesync_process_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
    cpuMs: cpuMs(server.pid),
  };
}

/** The server's state of each stream, fetched per account (at most 100 streams a request). */
async function fetchSnaps(port: number, streams: Iterable<string>): Promise<Record<string, Snap>> {
  const groups = new Map<string, string[]>();
  for (const stream of streams) {
    const account = stream.startsWith('market:') ? 'demo' : stream.slice(stream.indexOf(':') + 1);
    const group = groups.get(account) ?? [];
    group.push(stream);
    groups.set(account, group);
  }
  const requests: Array<{ account: string; streams: string[] }> = [];
  for (const [account, list] of groups) for (let i = 0; i < list.length; i += 100) requests.push({ account, streams: list.slice(i, i + 100) });
  const snaps: Record<string, Snap> = {};
  const CONCURRENCY = 8;
  for (let i = 0; i < requests.length; i += CONCURRENCY) {
    await Promise.all(
      requests.slice(i, i + CONCURRENCY).map(async ({ account, streams: list }) => {
        const query = new URLSearchParams({ account, streams: list.join(',') });
        const res = await fetch(`http://127.0.0.1:${port}/api/state/snapshot?${query}`, { signal: AbortSignal.timeout(15_000) });
        if (!res.ok) throw new Error(`GET /api/state/snapshot (${account}): ${res.status} ${await res.text()}`);
        const body = (await res.json()) as { snapshots?: Record<string, { epoch: string; offset: number; state: unknown }> };
        for (const [stream, s] of Object.entries(body.snapshots ?? {})) snaps[stream] = { epoch: s.epoch, offset: s.offset, state: s.state, hash: hashOf(s.state) };
      }),
    );
  }
  return snaps;
}

function sumCounters(stats: readonly WorkerStats[]): Counters {
  const total = { ...stats[0]!.counters };
  for (const s of stats.slice(1)) for (const key of Object.keys(total) as Array<keyof Counters>) total[key] += s.counters[key];
  return total;
}

async function runMain(): Promise<void> {
  const opts = options();
  const runMs = opts.minutes * 60_000;
  const hardDeadline = setTimeout(() => {
    console.error(`soak: hard deadline (${opts.minutes} min + 4 min) passed; killing everything`);
    process.exit(3); // the exit handlers kill the gateway and remove its data
  }, runMs + 240_000);
  hardDeadline.unref();

  log(`# TradeSync soak: ${opts.minutes} min, ${opts.clients} clients, producer ${opts.rate} events/s over ${opts.accounts} accounts, drops every ${opts.dropEveryMs / 1000} s`);
  // Producer mix: 15% market ticks over 5 streams, 45% orders and 40% portfolio over the accounts.
  const memWindow = opts.memoryWindow ?? 1000;
  const perAccountStream = (opts.rate * 0.425) / opts.accounts;
  const fillMin = perAccountStream > 0 ? (2 * memWindow) / perAccountStream / 60 : Infinity;
  log(
    `server memory window: up to ${2 * memWindow} events per stream; account streams get ~${perAccountStream.toFixed(2)} events/s each, ` +
      `so their windows fill after ~${fillMin.toFixed(0)} min${fillMin > opts.minutes ? ' (after this run ends: expect RSS/heap to rise all along)' : ''}`,
  );
  const server = await startGateway(opts);
  log(`gateway pid ${server.pid} on 127.0.0.1:${server.port} (simulator on, durability ${opts.durability}); server log: ${server.logFile}`);
  let fatal: string | undefined;
  const abort = (message: string): void => {
    if (fatal !== undefined) return;
    fatal = message;
    console.error(`soak: ${message}`);
    process.exit(1);
  };
  let stopping = false;
  server.child.once('exit', (code, signal) => {
    if (!stopping) abort(`the gateway exited during the run (code ${code}, signal ${signal}); see ${server.logFile}`);
  });

  // Clients: own account stream + two demo streams + one market stream (simulator's or the producer's).
  const specs: ClientSpec[] = [];
  for (let i = 0; i < opts.clients; i++) {
    const account = `acct-${i % opts.accounts}`;
    const own = Math.floor(i / opts.accounts) % 2 === 0 ? `orders:${account}` : `portfolio:${account}`;
    const demoA = DEMO_STREAMS[i % DEMO_STREAMS.length]!;
    const demoB = DEMO_STREAMS[(i + 5) % DEMO_STREAMS.length]!;
    const market = i % 2 === 0 ? `market:${SIM_SYMBOLS[i % SIM_SYMBOLS.length]}` : `market:${SOAK_SYMBOLS[i % SOAK_SYMBOLS.length]}`;
    specs.push({ id: i, streams: [own, demoA, demoB, market] });
  }
  const connectStart = performance.now();
  const workers = [0, 1].map((w) => new ClientWorker({ port: server.port, clients: specs.filter((_, i) => i % 2 === w) }, abort));
  const ready = await Promise.all(workers.map((w) => w.ready));
  const connected = ready.reduce((n, r) => n + r.connected, 0);
  const failedToConnect = ready.reduce((n, r) => n + r.failed, 0);
  const replicas = ready.reduce((n, r) => n + r.replicas, 0);
  log(`${connected} clients connected and synced (${replicas} replicas) in ${((performance.now() - connectStart) / 1000).toFixed(1)} s${failedToConnect ? `; ${failedToConnect} FAILED to sync within 60 s` : ''}`);

  const askAll = <T>(cmd: WorkerCommand, timeoutMs?: number): Promise<T[]> => Promise.all(workers.map((w) => w.ask<T>(cmd, timeoutMs)));

  // Baseline (also resets the server's event-loop histogram and the workers' counters of the interval).
  const baseline = await takeSample(server, 0);
  let previous = baseline;
  await askAll<WorkerStats>({ op: 'stats' });
  log(`minute 0: rss ${mb(previous.rss)} MB, heap ${mb(previous.heap)} MB, connections ${previous.connections}`);

  const start = performance.now();
  const producer = new Producer(server.port, opts.rate, opts.accounts);
  let injected = 0;
  let dropping = true;
  const dropLoop = (async () => {
    while (dropping) {
      await sleep(opts.dropEveryMs * (0.75 + Math.random() * 0.5));
      if (!dropping) break;
      const count = Math.max(1, Math.round((opts.clients * (1 + Math.random() * 4)) / 100));
      const shares = [Math.ceil(count / 2), Math.floor(count / 2)];
      try {
        const dropped = await Promise.all(workers.map((w, i) => w.ask<number>({ op: 'drop', count: shares[i]! })));
        injected += dropped.reduce((n, d) => n + d, 0);
      } catch (error) {
        // A starved load generator (another program took the CPU) is reported, not fatal.
        process.stderr.write(`drop skipped: ${(error as Error).message}\n`);
      }
    }
  })();

  const samples: Sample[] = [];
  const allResumeMs: number[] = [];
  const minutes = Math.ceil(opts.minutes);
  let lastProducerSent = 0;
  for (let minute = 1; minute <= minutes; minute++) {
    const at = start + Math.min(minute * 60_000, runMs);
    await sleep(Math.max(0, at - performance.now()));
    const sample = await takeSample(server, minute);
    const stats = await askAll<WorkerStats>({ op: 'stats' });
    const seconds = (sample.atMs - previous.atMs) / 1000;
    const counters = sumCounters(stats);
    const resumeMs = stats.flatMap((s) => s.resumeMs);
    allResumeMs.push(...resumeMs);
    const produced = producer.sent - lastProducerSent;
    lastProducerSent = producer.sent;
    samples.push(sample);
    log(
      `minute ${minute}: rss ${mb(sample.rss)} MB, heap ${mb(sample.heap)} MB, connections ${sample.connections}, ` +
        `${((sample.appended - previous.appended) / seconds).toFixed(0)} events/s appended (producer ${(produced / seconds).toFixed(0)}/s, failed ${producer.failed}), ` +
        `${((sample.delivered - previous.delivered) / seconds).toFixed(0)} delivered/s, loop p99 ${sample.loopP99Ms.toFixed(1)} ms, ` +
        `cpu ${(((sample.cpuMs - previous.cpuMs) / (seconds * 1000)) * 100).toFixed(0)}% | drops ${injected}, resumes ${counters.resumes} ` +
        `(resume p50 ${percentile(resumeMs, 50).toFixed(0)} ms, max ${Math.max(0, ...resumeMs).toFixed(0)} ms), ` +
        `syncs recovered ${counters.recoveredSyncs} / snapshot ${counters.snapshotSyncs} / http ${counters.httpSyncs}, ` +
        `unexpected closes ${counters.unexpectedCloses}, sync failures ${counters.syncFailed}, failed clients ${counters.failedClients}, ` +
        `client loop p99 ${Math.max(...stats.map((s) => s.loopP99Ms)).toFixed(0)} ms`,
    );
    previous = sample;
  }

  // Drain: no more drops, no more producer events; let every client get back and settle.
  dropping = false;
  await dropLoop;
  await producer.stop();
  log(`producer stopped: ${producer.sent} events sent, ${producer.failed} failed${producer.statuses.size ? ` (${[...producer.statuses].map(([k, v]) => `${k}×${v}`).join(', ')})` : ''}`);
  const settleBy = performance.now() + 60_000;
  let settled: WorkerStats[] = [];
  for (;;) {
    settled = await askAll<WorkerStats>({ op: 'stats' });
    const out = settled.reduce((n, s) => n + s.notConnected + s.resuming, 0);
    if (out === 0 || performance.now() > settleBy) break;
    await sleep(500);
  }
  allResumeMs.push(...settled.flatMap((s) => s.resumeMs));
  const notSettled = settled.reduce((n, s) => n + s.notConnected, 0);
  if (notSettled > 0) log(`WARN: ${notSettled} clients still not connected after 60 s`);
  await sleep(3000); // quiet: the producer's streams stop changing; the simulator's go on (handled below)

  // Verify every replica at the same offset as the server's snapshot.
  await askAll({ op: 'record', on: true });
  const allStreams = new Set(specs.flatMap((s) => s.streams));
  let pending: Set<string> = allStreams;
  let ok = 0;
  let diverged = 0;
  let undecided = 0;
  const details: string[] = [];
  for (let round = 1; round <= 8 && pending.size > 0; round++) {
    const snaps = await fetchSnaps(server.port, pending);
    const missing = [...pending].filter((s) => !(s in snaps));
    if (missing.length > 0) log(`WARN: the snapshot endpoint left out ${missing.length} streams, e.g. ${missing.slice(0, 3).join(', ')}`);
    await sleep(1000); // replicas reach (at least) the snapshot's offsets
    const results = await askAll<VerifyResult>({ op: 'verify', snaps }, 120_000);
    ok += results.reduce((n, r) => n + r.ok, 0);
    diverged += results.reduce((n, r) => n + r.diverged, 0);
    undecided = results.reduce((n, r) => n + r.undecidedCount, 0);
    details.push(...results.flatMap((r) => r.details));
    pending = new Set(results.flatMap((r) => r.undecided));
    if (pending.size > 0) log(`verify round ${round}: ${undecided} replicas not at a comparable offset yet (${pending.size} streams); again`);
  }
  await askAll({ op: 'record', on: false });

  // Connections: the server's count must be exactly the clients connected.
  const final = await askAll<WorkerStats>({ op: 'stats' });
  const clientsConnected = final.reduce((n, s) => n + s.connected, 0);
  const admin = (await (await fetch(`http://127.0.0.1:${server.port}/api/admin/websocket/connections`, { signal: AbortSignal.timeout(15_000) })).json()) as { count: number };
  const gauge = (await scrape(server.port)).get('tradesync_connections') ?? NaN;

  const counters = sumCounters(final);
  const closeCodes: Record<string, number> = {};
  const clientLogs: Record<string, number> = {};
  for (const s of final) {
    for (const [k, v] of Object.entries(s.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.logs)) clientLogs[k] = (clientLogs[k] ?? 0) + v;
  }

  // Shut down.
  await askAll({ op: 'close' });
  await Promise.all(workers.map((w) => w.terminate()));
  stopping = true;
  await server.stop();

  // Report.
  log('');
  log('| minute | rss MB | heap MB | connections | events/s | loop lag p99 |');
  log('|---:|---:|---:|---:|---:|---:|');
  let before = baseline;
  for (const s of samples) {
    const rate = ((s.appended - before.appended) / ((s.atMs - before.atMs) / 1000)).toFixed(0);
    log(`| ${s.minute} | ${mb(s.rss)} | ${mb(s.heap)} | ${s.connections} | ${rate} | ${s.loopP99Ms.toFixed(1)} ms |`);
    before = s;
  }
  log('');
  log('(loop lag p99: prom-client monitorEventLoopDelay at 10 ms resolution, so an idle loop reads ~10–17 ms)');
  log('');
  const first = samples[0];
  const last = samples[samples.length - 1];
  const connectionsOk = admin.count === clientsConnected && clientsConnected === connected;
  const unverified = undecided;
  log(
    `divergent replicas: ${diverged} of ${replicas} (verified equal ${ok}, unverified ${unverified}) | ` +
      (first && last ? `RSS ${mb(first.rss)} → ${mb(last.rss)} MB (${pct(first.rss, last.rss)}) | heap ${mb(first.heap)} → ${mb(last.heap)} MB (${pct(first.heap, last.heap)}) | ` : '') +
      `disconnects injected: ${injected} (${counters.dropsTerminate} terminated, ${counters.dropsClose} closed 4000) | ` +
      `resumes: ${counters.resumes} (reconnects ${counters.reconnects}; stream syncs recovered ${counters.recoveredSyncs}, snapshot ${counters.snapshotSyncs}, http ${counters.httpSyncs}; ` +
      `resume p50 ${percentile(allResumeMs, 50).toFixed(0)} ms, p99 ${percentile(allResumeMs, 99).toFixed(0)} ms) | ` +
      `connections: admin ${admin.count}, gauge ${gauge}, clients connected ${clientsConnected} of ${opts.clients}${connectionsOk ? '' : ' MISMATCH'}`,
  );
  const notes: string[] = [];
  if (counters.unexpectedCloses > 0) notes.push(`unexpected closes ${counters.unexpectedCloses} (codes ${JSON.stringify(closeCodes)})`);
  if (counters.failedAttempts > 0) notes.push(`failed reconnect attempts ${counters.failedAttempts}`);
  if (counters.syncFailed > 0) notes.push(`sync failures ${counters.syncFailed}`);
  if (counters.failedClients > 0) notes.push(`clients that gave up ${counters.failedClients}`);
  if (failedToConnect > 0) notes.push(`clients that never synced ${failedToConnect}`);
  if (producer.failed > 0) notes.push(`producer events refused ${producer.failed}`);
  if (notes.length > 0) log(`notes: ${notes.join('; ')}`);
  if (Object.keys(clientLogs).length > 0) log(`client SDK log (warn/error): ${Object.entries(clientLogs).map(([k, v]) => `${v}× ${k}`).join(' | ')}`);
  if (server.logStats.messages.size > 0) {
    log(`server log: ${server.logStats.warns} warn, ${server.logStats.errors} error: ${[...server.logStats.messages].map(([k, v]) => `${v}× ${k}`).join(' | ')}`);
  }
  if (first && last && samples.length >= 3 && last.heap > first.heap * 1.25 && last.heap - first.heap > 20 * 1024 * 1024) {
    log(`WARN: heap grew ${pct(first.heap, last.heap)} from the first to the last minute`);
  }
  for (const d of details) log(`DIVERGED: ${d}`);

  const failedRun = diverged > 0 || unverified > 0 || !connectionsOk;
  process.exit(failedRun ? 1 : 0);
}

if (isMainThread) {
  runMain().catch((err: unknown) => {
    console.error('soak failed:', err);
    process.exit(1);
  });
} else {
  runWorker(workerData as WorkerInit).catch((err: unknown) => {
    parentPort!.postMessage({ op: 'fatal', message: `client worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` } satisfies FromWorker);
  });
}
