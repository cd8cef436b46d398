import { createHash, randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { EventInput } from '@tradesync/protocol';
import type { Logger } from '../logger.js';
import {
  EngineUnavailableError,
  type Engine,
  type EngineHealth,
  type ReadResult,
  type StoredEvent,
  type StoredSnapshot,
  type StreamHead,
} from './engine.js';
import { checkDurability, DURABILITY_OK, DURABILITY_UNCHECKED, type DurabilityStatus, type RedisDurability } from './redis-durability.js';

export interface RedisEngineOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  readonly url: string;
  /**
   * Prepended to every key and to the fan-out channel, so several deployments can share
   * one Redis. Every node of one cluster must use the same prefix.
   * @default 'tradesync:'
   */
  readonly prefix?: string;
  /** A command that takes longer fails with EngineUnavailableError. @default 2000 */
  readonly commandTimeoutMs?: number;
  /** How long `health()` waits for PING. @default 500 */
  readonly healthTimeoutMs?: number;
  /**
   * How often the node checks that Redis still holds the history it knows (a cheap GET
   * of one key). A flushed or restarted-empty Redis is noticed within this time.
   * @default 1000
   */
  readonly watchIntervalMs?: number;
  /**
   * How often every known stream's head is compared with what this node delivered, a
   * safety net for a lost notification (they are also re-checked on every reconnect).
   * @default 10000
   */
  readonly sweepIntervalMs?: number;
  /**
   * An append resolves once this node's own listeners heard of its events (so a reader
   * of the gateway state after a publish sees it), or after this long at most.
   * @default 1000
   */
  readonly deliveryTimeoutMs?: number;
  /**
   * What Redis must guarantee before an append is acknowledged (`redis_durability`):
   * `aof` needs `appendonly yes`, `fsync` also `appendfsync always`, `none` checks
   * nothing. Verified at open, after every reconnect and every `watchIntervalMs`; while
   * it does not hold, appends fail with EngineUnavailableError and `health()` says why.
   * @default 'fsync'
   */
  readonly durability?: RedisDurability;
  /**
   * When > 0, every append is followed by `WAIT waitReplicas waitTimeoutMs`: fewer
   * replicas acknowledging in time fail the append with EngineUnavailableError (the
   * events may be stored all the same, as after a timeout). @default 0
   */
  readonly waitReplicas?: number;
  /**
   * The WAIT timeout. Below the command timeout, so the reply arrives before the client
   * gives up on the connection. @default commandTimeoutMs minus a quarter (at most 250 ms)
   */
  readonly waitTimeoutMs?: number;
  /** The clock stamping events (ms since the epoch). @default Date.now */
  readonly now?: () => number;
  readonly log?: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Told when an `onAppend` listener throws; listener errors never fail an append. */
  readonly onListenerError?: (error: unknown) => void;
}

/* ---------------------------------------------------------------------------------
 * Keys (all under the prefix):
 *   streams          SET   every stream that has had an event appended
 *   generation       STRING random id of this Redis dataset; gone after FLUSHALL or a
 *                           restart without persistence (the cheap "history lost" probe)
 *   m:<stream>       HASH  epoch, head (last offset), first (oldest kept), ts (last stamp)
 *   l:<stream>       STREAM entries `<offset>-0` with fields t (type), d (data JSON), ts (ms)
 *   s:<stream>       HASH  the newest snapshot: epoch, offset, v, state, at
 *   appends          pub/sub channel: one message per append call
 * --------------------------------------------------------------------------------- */

/**
 * Appends every event of one call atomically (a Lua script runs alone): assigns dense
 * offsets from each stream's head, stamps them with a time that never goes backwards
 * per stream (so `offsetBefore` can binary-search), and publishes them in the same
 * script, so notifications leave in exactly the order the offsets were given.
 *
 * KEYS: streams-set, then (meta, log) per distinct stream.
 * ARGV: channel, epoch-for-new-streams, now-ms, S, S stream names, then per event
 *       (stream index 1..S, type, data JSON).
 * Returns (epoch, head before the call, ts) per stream.
 */
const APPEND_LUA = `
local S = tonumber(ARGV[4])
local now = tonumber(ARGV[3])
local epochs, heads, starts, stamps = {}, {}, {}, {}
for i = 1, S do
  local meta = KEYS[2 * i]
  local m = redis.call('HMGET', meta, 'epoch', 'head', 'ts')
  local epoch = m[1]
  if not epoch then
    epoch = ARGV[2]
    redis.call('HSET', meta, 'epoch', epoch, 'head', 0, 'first', 1)
  end
  epochs[i] = epoch
  heads[i] = tonumber(m[2] or '0')
  starts[i] = heads[i]
  local last = tonumber(m[3] or '0')
  if now > last then stamps[i] = now else stamps[i] = last end
  redis.call('SADD', KEYS[1], ARGV[4 + i])
end
local parts = {}
local n = (#ARGV - 4 - S) / 3
for j = 0, n - 1 do
  local base = 5 + S + 3 * j
  local i = tonumber(ARGV[base])
  heads[i] = heads[i] + 1
  redis.call('XADD', KEYS[2 * i + 1], heads[i] .. '-0', 't', ARGV[base + 1], 'd', ARGV[base + 2], 'ts', stamps[i])
  parts[#parts + 1] = '[' .. (i - 1) .. ',' .. heads[i] .. ',' .. stamps[i] .. ',' .. cjson.encode(ARGV[base + 1]) .. ',' .. ARGV[base + 2] .. ']'
end
local names, out = {}, {}
for i = 1, S do
  redis.call('HSET', KEYS[2 * i], 'head', heads[i], 'ts', stamps[i])
  names[i] = ARGV[4 + i]
  out[#out + 1] = epochs[i]
  out[#out + 1] = starts[i]
  out[#out + 1] = stamps[i]
end
redis.call('PUBLISH', ARGV[1], '{"s":' .. cjson.encode(names) .. ',"e":' .. cjson.encode(epochs) .. ',"v":[' .. table.concat(parts, ',') .. ']}')
return out
`;

/**
 * The stream's head, creating its epoch when it has none (HSETNX: whichever node comes
 * first wins, every node then reads the same epoch). KEYS: meta. ARGV: epoch candidate.
 */
const HEAD_LUA = `
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'head', 0, 'first', 1)
end
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
return {m[1], tonumber(m[2] or '0'), tonumber(m[3] or '1')}
`;

/**
 * Head, trim point and the events after `after`, read together so "trimmed" and the
 * events describe the same moment. KEYS: meta, log. ARGV: after, limit.
 * Returns {0} for a stream without an epoch, {1, epoch, head, first} when trimmed,
 * {2, epoch, head, first, entries} otherwise.
 */
const READ_LUA = `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
if not m[1] then return {0} end
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local head, first = tonumber(m[2] or '0'), tonumber(m[3] or '1')
if after < first - 1 then return {1, m[1], head, first} end
if limit <= 0 or after >= head then return {2, m[1], head, first, {}} end
return {2, m[1], head, first, redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', limit)}
`;

/**
 * Deletes events with offset <= upTo and moves `first`, never past head + 1.
 * KEYS: meta, log. ARGV: upTo. Returns the number of events deleted.
 */
const TRIM_LUA = `
local m = redis.call('HMGET', KEYS[1], 'head', 'first')
if not m[1] then return 0 end
local head, first = tonumber(m[1]), tonumber(m[2] or '1')
local target = math.min(math.max(first, tonumber(ARGV[1]) + 1), head + 1)
if target == first then return 0 end
local deleted = redis.call('XTRIM', KEYS[2], 'MINID', target .. '-0')
redis.call('HSET', KEYS[1], 'first', target)
return deleted
`;

/**
 * The highest kept offset stamped strictly before a time: a binary search over the
 * log, valid because stamps never decrease along a stream. KEYS: meta, log. ARGV: ms.
 */
const OFFSET_BEFORE_LUA = `
local m = redis.call('HMGET', KEYS[1], 'head', 'first')
if not m[1] then return 0 end
local lo, hi = tonumber(m[2] or '1'), tonumber(m[1])
local t = tonumber(ARGV[1])
local found = 0
while lo <= hi do
  local mid = math.floor((lo + hi) / 2)
  local entry = redis.call('XRANGE', KEYS[2], mid .. '-0', mid .. '-0')
  local ts = nil
  if entry[1] then
    local fields = entry[1][2]
    for k = 1, #fields, 2 do
      if fields[k] == 'ts' then ts = tonumber(fields[k + 1]) end
    end
  end
  -- A missing entry counts as "not before": trimming then keeps more, never less.
  if ts and ts < t then
    found = mid
    lo = mid + 1
  else
    hi = mid - 1
  end
end
return found
`;

/**
 * Replaces the stored snapshot unless it would go backwards: a lagging node must never
 * overwrite a newer snapshot (another node may already have trimmed up to it), and a
 * snapshot of an epoch the stream no longer has is dropped. KEYS: meta, snapshot.
 * ARGV: epoch, offset, schema version, state JSON, created at. Returns 1 when stored.
 */
const SAVE_SNAPSHOT_LUA = `
local current = redis.call('HGET', KEYS[1], 'epoch')
if current and current ~= ARGV[1] then return 0 end
local old = redis.call('HMGET', KEYS[2], 'epoch', 'offset')
if old[1] == ARGV[1] and tonumber(old[2]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[1], 'offset', ARGV[2], 'v', ARGV[3], 'state', ARGV[4], 'at', ARGV[5])
return 1
`;

/**
 * A stream whose head went *backwards* in the same epoch lost acknowledged events (a
 * Redis restarted from an AOF that missed its last writes, e.g. `appendfsync everysec`
 * with a write postponed behind a slow fsync, or a failover to a lagging replica). Its
 * next appends would reuse offsets that clients already hold with other content, so it
 * gets a new epoch (every node and client then rebuilds from a snapshot). Only if the
 * epoch is still the one the caller saw and the head is still below what it delivered:
 * whichever node notices first wins, the others read the new epoch.
 * KEYS: meta. ARGV: epoch seen, offset delivered, new epoch. Returns {epoch, head, first}.
 */
const REGRESSED_LUA = `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'head', 'first')
if m[1] == ARGV[1] and tonumber(m[2] or '0') < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
  m[1] = ARGV[3]
end
return {m[1], tonumber(m[2] or '0'), tonumber(m[3] or '1')}
`;

/** A Lua script run by SHA, loaded on first use (and again after Redis forgot it). */
class Script {
  readonly #sha: string;
  constructor(readonly source: string) {
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

const SCRIPTS = {
  append: new Script(APPEND_LUA),
  head: new Script(HEAD_LUA),
  read: new Script(READ_LUA),
  trim: new Script(TRIM_LUA),
  offsetBefore: new Script(OFFSET_BEFORE_LUA),
  saveSnapshot: new Script(SAVE_SNAPSHOT_LUA),
  regressed: new Script(REGRESSED_LUA),
};

/** A published append: stream names, their epochs, and [stream index, offset, ms, type, data] per event. */
interface AppendMessage {
  readonly s: string[];
  readonly e: string[];
  readonly v: Array<[number, number, number, string, Record<string, unknown>]>;
}

/**
 * What this node has delivered to its listeners for one stream. Delivery is gap-free
 * from `offset`: a notification further ahead (one was lost while the subscriber was
 * reconnecting) starts a fill from the log, and notifications arriving meanwhile wait
 * in `pending`, so listeners always hear a stream in offset order.
 */
interface Cursor {
  epoch: string;
  offset: number;
  filling: boolean;
  pending: StoredEvent[];
  /**
   * Epochs this stream had before, newest last. A notification published just before a
   * flush can arrive after the node already moved on (it learned the new epoch over the
   * command connection): it must be dropped, never taken for another reset.
   */
  retired: string[];
}

interface AppendWaiter {
  readonly epoch: string;
  readonly offset: number;
  readonly done: () => void;
}

/** Events read from the log per round trip when filling a gap. */
const FILL_PAGE = 1000;
/** Beyond this many notifications waiting for a fill, drop them: the log has them all. */
const MAX_PENDING = 10_000;
/** Redis replies meaning "cannot serve right now" rather than "bad request". */
const UNAVAILABLE_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|NOREPLICAS|CLUSTERDOWN|TRYAGAIN|MISCONF)\b/;

const newEpoch = (): string => randomBytes(8).toString('hex');
const isoOf = (ms: number): string => new Date(ms).toISOString();

/**
 * The shared engine: every gateway node of a cluster appends to and reads from the same
 * Redis, so offsets are assigned once (in Redis, atomically) and every node serves the
 * same history. Live fan-out between nodes is Redis pub/sub on a dedicated subscriber
 * connection; pub/sub is at-most-once, so what it may lose (while a connection is down)
 * is read back from the log, which is the single source of truth.
 */
export class RedisEngine implements Engine {
  readonly kind = 'redis';

  readonly #options: Required<Omit<RedisEngineOptions, 'log' | 'onListenerError'>>;
  readonly #log: RedisEngineOptions['log'];
  readonly #onListenerError: ((error: unknown) => void) | undefined;
  readonly #appendListeners = new Set<(events: readonly StoredEvent[]) => void>();
  readonly #resetListeners = new Set<(stream: string, head: StreamHead) => void>();
  readonly #cursors = new Map<string, Cursor>();
  readonly #waiters = new Map<string, AppendWaiter[]>();
  readonly #timers: NodeJS.Timeout[] = [];
  #cmd: Redis | undefined;
  #sub: Redis | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  /** Notifications that arrived before the cursors were loaded at open. */
  #early: string[] | undefined = [];
  #subscribed = false;
  #generation: string | undefined;
  #sweeping: Promise<void> | undefined;
  #sweepAgain = false;
  #connectionLost = false;
  /** Whether Redis keeps what it acknowledges, as `durability` requires (see redis-durability.ts). */
  #durability: DurabilityStatus = DURABILITY_UNCHECKED;
  /** The durability code last logged, so a WARN is written once per change. */
  #durabilityLogged: string | undefined;
  #checking: Promise<DurabilityStatus> | undefined;

  constructor(options: RedisEngineOptions) {
    const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
    this.#options = {
      url: options.url,
      prefix: options.prefix ?? 'tradesync:',
      commandTimeoutMs,
      healthTimeoutMs: options.healthTimeoutMs ?? 500,
      watchIntervalMs: options.watchIntervalMs ?? 1000,
      sweepIntervalMs: options.sweepIntervalMs ?? 10_000,
      deliveryTimeoutMs: options.deliveryTimeoutMs ?? 1000,
      durability: options.durability ?? 'fsync',
      waitReplicas: options.waitReplicas ?? 0,
      waitTimeoutMs: options.waitTimeoutMs ?? Math.max(1, commandTimeoutMs - Math.min(250, Math.floor(commandTimeoutMs / 4))),
      now: options.now ?? (() => Date.now()),
    };
    if (this.#options.durability === 'none') this.#durability = DURABILITY_OK;
    this.#log = options.log;
    this.#onListenerError = options.onListenerError;
  }

  /* ------------------------------------------------------------------ keys */

  #key(name: string): string {
    return this.#options.prefix + name;
  }
  #meta(stream: string): string {
    return this.#key(`m:${stream}`);
  }
  #logKey(stream: string): string {
    return this.#key(`l:${stream}`);
  }
  #snapKey(stream: string): string {
    return this.#key(`s:${stream}`);
  }
  get #channel(): string {
    return this.#key('appends');
  }

  /* ------------------------------------------------------------------ lifecycle */

  async open(): Promise<void> {
    if (this.#state === 'closed') throw new EngineUnavailableError('redis engine is closed');
    if (this.#state !== 'new') return;
    this.#state = 'opening';
    const common: RedisOptions = {
      lazyConnect: true,
      connectTimeout: this.#options.commandTimeoutMs,
      // Reconnect for ever, quickly: a node must come back by itself when Redis does.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 1000),
    };
    // Commands fail at once while disconnected (no offline queue, no retry of a command
    // in flight): the caller answers 503 instead of hanging, and an append is never
    // silently replayed after a reconnect.
    // socketTimeout: a connection that stays silent while a command waits for its reply
    // is dropped and reconnected. Without it a half-open connection (a network
    // partition, a suspended host) keeps failing every command until TCP gives up, and
    // replies of commands that timed out could be matched to later ones.
    const socketTimeout = this.#options.commandTimeoutMs;
    const cmd = new Redis(this.#options.url, {
      ...common,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.#options.commandTimeoutMs,
      socketTimeout,
    });
    const sub = new Redis(this.#options.url, { ...common, autoResubscribe: false, maxRetriesPerRequest: null, socketTimeout });
    this.#cmd = cmd;
    this.#sub = sub;
    cmd.on('error', (err: Error) => this.#onConnectionError('command', err));
    sub.on('error', (err: Error) => this.#onConnectionError('subscriber', err));
    cmd.on('close', () => {
      // Whatever answers the next connection is verified again before it is trusted.
      if (this.#options.durability !== 'none') this.#durability = DURABILITY_UNCHECKED;
      this.#onClose();
    });
    sub.on('close', () => {
      this.#subscribed = false;
      this.#onClose();
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#onMessage(message);
    });
    try {
      await Promise.all([cmd.connect(), sub.connect()]);
      // Subscribe before reading heads: whatever is appended after the heads we read
      // arrives as a notification, and whatever arrives earlier is a duplicate.
      await sub.subscribe(this.#channel);
      this.#subscribed = true;
      await this.#loadCursors();
      if (this.#options.durability === 'none') {
        this.#log?.warn(
          { redis_durability: 'none' },
          'redis_durability is none: Redis persistence is not checked; acknowledged events can be lost on a Redis restart (set appendonly yes and redis_durability: aof)',
        );
      } else {
        await this.#checkDurability(cmd);
      }
    } catch (error) {
      this.#state = 'closed';
      cmd.disconnect();
      sub.disconnect();
      throw unavailable(error, `cannot connect to redis at ${redactUrl(this.#options.url)}`);
    }
    this.#state = 'open';
    for (const text of this.#early?.splice(0) ?? []) this.#onMessage(text);
    this.#early = undefined;
    // Only reconnections from now on; the first 'ready' happened inside connect().
    cmd.on('ready', () => this.#onReconnected('command'));
    sub.on('ready', () => void this.#resubscribe());
    this.#every(this.#options.watchIntervalMs, () => void this.#watch());
    this.#every(this.#options.sweepIntervalMs, () => void this.#sweep());
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    for (const waiters of this.#waiters.values()) for (const w of waiters) w.done();
    this.#waiters.clear();
    await this.#sweeping?.catch(() => undefined);
    const cmd = this.#cmd;
    const sub = this.#sub;
    await Promise.all([quit(cmd), quit(sub)]);
  }

  /* ------------------------------------------------------------------ the Engine */

  async append(events: readonly EventInput[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const cmd = this.#client();
    await this.#requireDurability(cmd);
    // Serialise first: an event that cannot be encoded fails the call before Redis sees any of it.
    const names: string[] = [];
    const index = new Map<string, number>();
    const args: Array<string | number> = [];
    for (const event of events) {
      let i = index.get(event.stream);
      if (i === undefined) {
        i = names.push(event.stream);
        index.set(event.stream, i);
      }
      args.push(i, event.type, JSON.stringify(event.data));
    }
    const keys = [this.#key('streams'), ...names.flatMap((s) => [this.#meta(s), this.#logKey(s)])];
    const reply = (await this.#call(() =>
      SCRIPTS.append.run(cmd, keys, [this.#channel, newEpoch(), this.#options.now(), names.length, ...names, ...args]),
    )) as Array<string | number>;
    if (!Array.isArray(reply) || reply.length !== 3 * names.length) {
      // Never acknowledge on a reply we cannot read: the connection is suspect, start a new one.
      cmd.disconnect(true);
      throw new EngineUnavailableError(`unexpected reply to the append script from redis (${typeof reply}); the events may be stored`);
    }

    const perStream = names.map((stream, k) => ({
      stream,
      epoch: String(reply[3 * k]),
      /** The head before this call, as the script read it. */
      before: Number(reply[3 * k + 1]),
      next: Number(reply[3 * k + 1]),
      timestamp: isoOf(Number(reply[3 * k + 2])),
    }));
    const stored = events.map((event): StoredEvent => {
      const s = perStream[index.get(event.stream)! - 1]!;
      s.next += 1;
      // The input object itself: the gateway validated it as plain JSON, so it equals what a read returns.
      return { type: event.type, stream: event.stream, epoch: s.epoch, offset: s.next, timestamp: s.timestamp, data: event.data };
    });
    for (const s of perStream) this.#observe(s.stream, s.epoch, s.before);
    if (this.#options.waitReplicas > 0) await this.#waitForReplicas(cmd);
    await this.#delivered(perStream.map((s) => ({ stream: s.stream, epoch: s.epoch, offset: s.next })));
    return stored;
  }

  async read(stream: string, after: number, limit: number): Promise<ReadResult> {
    const page = await this.#read(stream, after, limit);
    if (page.status === 'unknown') return { trimmed: false, events: [] };
    if (page.status === 'trimmed') return { trimmed: true };
    return { trimmed: false, events: page.events };
  }

  async head(stream: string): Promise<StreamHead> {
    const cmd = this.#client();
    const [epoch, offset, first] = (await this.#call(() => SCRIPTS.head.run(cmd, [this.#meta(stream)], [newEpoch()]))) as [string, number, number];
    const head = { epoch, offset: Number(offset), first: Number(first) };
    this.#observe(stream, head.epoch, head.offset);
    return head;
  }

  async streams(): Promise<string[]> {
    const cmd = this.#client();
    const names = await this.#call(() => cmd.smembers(this.#key('streams')));
    return names.sort();
  }

  async saveSnapshot(snapshot: StoredSnapshot): Promise<void> {
    const cmd = this.#client();
    const state = JSON.stringify(snapshot.state);
    await this.#call(() =>
      SCRIPTS.saveSnapshot.run(
        cmd,
        [this.#meta(snapshot.stream), this.#snapKey(snapshot.stream)],
        [snapshot.epoch, snapshot.offset, snapshot.schemaVersion, state, snapshot.createdAt],
      ),
    );
  }

  async loadSnapshot(stream: string): Promise<StoredSnapshot | undefined> {
    const cmd = this.#client();
    const row = await this.#call(() => cmd.hgetall(this.#snapKey(stream)));
    if (row['epoch'] === undefined || row['state'] === undefined) return undefined;
    return {
      stream,
      epoch: row['epoch'],
      offset: Number(row['offset']),
      schemaVersion: Number(row['v']),
      state: JSON.parse(row['state']) as unknown,
      createdAt: row['at'] ?? '',
    };
  }

  async trim(stream: string, upTo: number): Promise<number> {
    const cmd = this.#client();
    return Number(await this.#call(() => SCRIPTS.trim.run(cmd, [this.#meta(stream), this.#logKey(stream)], [Math.floor(upTo)])));
  }

  async offsetBefore(stream: string, time: string): Promise<number> {
    const cmd = this.#client();
    const ms = Date.parse(time);
    if (Number.isNaN(ms)) throw new TypeError(`offsetBefore: "${time}" is not an ISO time`);
    return Number(await this.#call(() => SCRIPTS.offsetBefore.run(cmd, [this.#meta(stream), this.#logKey(stream)], [ms])));
  }

  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  onReset(listener: (stream: string, head: StreamHead) => void): () => void {
    this.#resetListeners.add(listener);
    return () => this.#resetListeners.delete(listener);
  }

  async health(): Promise<EngineHealth> {
    if (this.#state !== 'open' || !this.#cmd) return { ok: false, detail: this.#state === 'closed' ? 'closed' : 'not open' };
    const cmd = this.#cmd;
    try {
      await withTimeout(cmd.ping(), this.#options.healthTimeoutMs, 'PING timed out');
    } catch (error) {
      return { ok: false, detail: `redis unreachable: ${error instanceof Error ? error.message : String(error)}` };
    }
    // Without the subscriber this node would serve stale state: say so to the load balancer.
    if (!this.#subscribed) return { ok: false, detail: 'redis subscriber reconnecting: live events from other nodes are not arriving' };
    let durability = this.#durability;
    if (durability.code === 'unchecked') {
      try {
        durability = await withTimeout(this.#checkDurability(cmd), this.#options.healthTimeoutMs, 'persistence check timed out');
      } catch {
        // Reported as unchecked below.
      }
    }
    if (!durability.ok) return { ok: false, detail: durability.detail ?? durability.code };
    return { ok: true };
  }

  /* ------------------------------------------------------------------ reading */

  async #read(
    stream: string,
    after: number,
    limit: number,
  ): Promise<
    | { status: 'unknown' }
    | { status: 'trimmed'; epoch: string; head: number; first: number }
    | { status: 'ok'; epoch: string; head: number; first: number; events: StoredEvent[] }
  > {
    const cmd = this.#client();
    const reply = (await this.#call(() =>
      SCRIPTS.read.run(cmd, [this.#meta(stream), this.#logKey(stream)], [Math.floor(after), Math.floor(limit)]),
    )) as [number, string?, number?, number?, Array<[string, string[]]>?];
    if (reply[0] === 0) return { status: 'unknown' };
    const epoch = String(reply[1]);
    const head = Number(reply[2]);
    const first = Number(reply[3]);
    if (reply[0] === 1) return { status: 'trimmed', epoch, head, first };
    const events = (reply[4] ?? []).map(([id, fields]) => toStoredEvent(stream, epoch, id, fields));
    return { status: 'ok', epoch, head, first, events };
  }

  /* ------------------------------------------------------------------ delivery */

  /** Handles one published append, delivering what is next in line for each stream. */
  #onMessage(text: string): void {
    if (this.#early) {
      this.#early.push(text);
      return;
    }
    if (this.#state !== 'open') return;
    let message: AppendMessage;
    try {
      message = JSON.parse(text) as AppendMessage;
    } catch (error) {
      this.#log?.error({ err: error }, 'unreadable append notification from redis; ignored');
      return;
    }
    const stamps = new Map<number, string>();
    const events = message.v.map(([i, offset, ms, type, data]): StoredEvent => {
      let timestamp = stamps.get(ms);
      if (timestamp === undefined) stamps.set(ms, (timestamp = isoOf(ms)));
      return { type, stream: message.s[i] ?? '', epoch: message.e[i] ?? '', offset, timestamp, data };
    });
    this.#accept(events);
  }

  /** Routes events (in offset order per stream) to listeners, to a pending fill, or past duplicates. */
  #accept(events: readonly StoredEvent[]): void {
    const ready: StoredEvent[] = [];
    for (const event of events) {
      let cursor = this.#cursors.get(event.stream);
      if (!cursor) {
        // A stream this node never saw: everything from offset 1 is new to it.
        cursor = newCursor(event.epoch, 0);
        this.#cursors.set(event.stream, cursor);
      } else if (cursor.retired.includes(event.epoch)) {
        continue;
      } else if (cursor.epoch !== event.epoch) {
        // The stream's history was replaced (another node noticed first and appended).
        this.#deliver(ready.splice(0));
        this.#resetCursor(event.stream, cursor, { epoch: event.epoch, offset: event.offset - 1, first: 1 });
      }
      if (event.offset <= cursor.offset) continue;
      if (cursor.filling || event.offset > cursor.offset + 1) {
        if (cursor.pending.length < MAX_PENDING) cursor.pending.push(event);
        void this.#fill(event.stream);
        continue;
      }
      cursor.offset = event.offset;
      ready.push(event);
    }
    this.#deliver(ready);
  }

  /**
   * Reads what this node missed of a stream from the log, delivers it, then what waited
   * meanwhile. One fill per stream at a time; a failure leaves the rest to the next sweep.
   */
  async #fill(stream: string): Promise<void> {
    const cursor = this.#cursors.get(stream);
    if (!cursor || cursor.filling || this.#state !== 'open') return;
    cursor.filling = true;
    let failed = false;
    try {
      for (;;) {
        const page = await this.#read(stream, cursor.offset, FILL_PAGE);
        if (this.#state !== 'open') return;
        if (page.status === 'unknown') {
          // The history vanished: `head` creates the new epoch and reports the reset.
          await this.head(stream);
          return;
        }
        if (page.epoch !== cursor.epoch) {
          this.#resetCursor(stream, cursor, { epoch: page.epoch, offset: page.head, first: page.first });
          break;
        }
        if (page.status === 'trimmed') {
          // Gone for good: continue from the oldest kept event. The store sees the gap
          // and answers it with a snapshot (its own catch-up reads "trimmed" too).
          this.#log?.warn({ stream, from: cursor.offset, first: page.first }, 'events missed while disconnected were already trimmed');
          cursor.offset = page.first - 1;
          continue;
        }
        const fresh = page.events.filter((e) => e.offset > cursor.offset);
        if (fresh.length > 0) {
          // XRANGE is ascending and the log has no holes, so `fresh` starts at cursor + 1.
          cursor.offset = fresh[fresh.length - 1]!.offset;
          this.#deliver(fresh);
        }
        // A short page reached the head as it was when read; later events are notified.
        if (page.events.length < FILL_PAGE) break;
      }
      // Notifications that arrived during the fill: deliver the contiguous ones; a new
      // gap among them (another lost notification) means one more round.
      const pending = cursor.pending.splice(0).filter((e) => e.epoch === cursor.epoch && e.offset > cursor.offset);
      pending.sort((a, b) => a.offset - b.offset);
      const ready: StoredEvent[] = [];
      for (const event of pending) {
        if (event.offset <= cursor.offset) continue;
        if (event.offset !== cursor.offset + 1) {
          cursor.pending = pending.filter((e) => e.offset > cursor.offset);
          break;
        }
        cursor.offset = event.offset;
        ready.push(event);
      }
      this.#deliver(ready);
    } catch (error) {
      failed = true;
      this.#log?.warn({ err: error, stream }, 'reading missed events failed; retrying on the next sweep');
    } finally {
      cursor.filling = false;
    }
    // Never straight after a failure: Redis is likely down, and the sweep after the reconnect retries.
    if (!failed && cursor.pending.length > 0 && this.#state === 'open') void this.#fill(stream);
  }

  #deliver(events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    // A copy: a listener may unsubscribe (itself or another) while we iterate.
    for (const listener of [...this.#appendListeners]) {
      try {
        listener(events);
      } catch (error) {
        this.#onListenerError?.(error);
      }
    }
    if (this.#waiters.size === 0) return;
    let last: string | undefined;
    for (const event of events) {
      if (event.stream !== last) this.#release(event.stream);
      last = event.stream;
    }
  }

  /**
   * Learns a stream's epoch from a reply. A stream seen for the first time starts at
   * `offset` (whoever asked reads the log up to it); a different epoch than the one
   * delivered so far means its history was lost.
   */
  #observe(stream: string, epoch: string, offset: number): void {
    const cursor = this.#cursors.get(stream);
    if (!cursor) {
      this.#cursors.set(stream, newCursor(epoch, 0));
      // Offsets up to `offset` exist but this node never delivered them: read them now.
      if (offset > 0) void this.#fill(stream);
      return;
    }
    if (cursor.epoch !== epoch && !cursor.retired.includes(epoch)) this.#resetCursor(stream, cursor, { epoch, offset, first: 1 });
  }

  /** Moves a cursor to a new epoch and tells the reset listeners (who rebuild from the log). */
  #resetCursor(stream: string, cursor: Cursor, head: StreamHead): void {
    this.#log?.warn({ stream, old_epoch: cursor.epoch, epoch: head.epoch }, 'stream history was lost in redis; new epoch');
    cursor.retired = [...cursor.retired.slice(-7), cursor.epoch];
    cursor.epoch = head.epoch;
    cursor.offset = head.offset;
    cursor.pending = [];
    this.#release(stream);
    for (const listener of [...this.#resetListeners]) {
      try {
        listener(stream, head);
      } catch (error) {
        this.#onListenerError?.(error);
      }
    }
  }

  /** Resolves when this node delivered the appended offsets (or gave up waiting). */
  #delivered(targets: ReadonlyArray<{ stream: string; epoch: string; offset: number }>): Promise<void> {
    const outstanding = targets.filter((t) => !this.#isDelivered(t.stream, t.epoch, t.offset));
    if (outstanding.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let left = outstanding.length;
      const timer = setTimeout(() => {
        // The notification is late or lost: resolve (the events are stored) and read the log.
        left = 0;
        for (const t of outstanding) void this.#fill(t.stream);
        resolve();
      }, this.#options.deliveryTimeoutMs);
      const done = () => {
        if (left > 0 && --left === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const t of outstanding) {
        let list = this.#waiters.get(t.stream);
        if (!list) this.#waiters.set(t.stream, (list = []));
        list.push({ epoch: t.epoch, offset: t.offset, done });
      }
    });
  }

  #isDelivered(stream: string, epoch: string, offset: number): boolean {
    const cursor = this.#cursors.get(stream);
    return !cursor || cursor.epoch !== epoch || cursor.offset >= offset;
  }

  #release(stream: string): void {
    const list = this.#waiters.get(stream);
    if (!list) return;
    const keep = list.filter((w) => {
      if (!this.#isDelivered(stream, w.epoch, w.offset)) return true;
      w.done();
      return false;
    });
    if (keep.length === 0) this.#waiters.delete(stream);
    else this.#waiters.set(stream, keep);
  }

  /* ------------------------------------------------------------------ recovery */

  /** At open: every stored stream starts at its head (the store reads the log up to there). */
  async #loadCursors(): Promise<void> {
    const cmd = this.#cmd!;
    const names = await cmd.smembers(this.#key('streams'));
    const heads = await this.#metaOf(cmd, names);
    names.forEach((stream, k) => {
      const meta = heads[k];
      if (meta?.epoch !== undefined) this.#cursors.set(stream, newCursor(meta.epoch, meta.head));
    });
    await cmd.set(this.#key('generation'), newEpoch(), 'NX');
    this.#generation = (await cmd.get(this.#key('generation'))) ?? undefined;
  }

  /** The cheap probe: has the dataset been replaced (FLUSHALL, restart without persistence)? */
  async #watch(): Promise<void> {
    const cmd = this.#cmd;
    if (this.#state !== 'open' || !cmd || cmd.status !== 'ready') return;
    // A silent subscriber connection (half-open) is found by its socket timeout.
    const sub = this.#sub;
    if (sub?.status === 'ready' && this.#subscribed) sub.ping().catch(() => undefined);
    if (this.#options.durability !== 'none') await this.#checkDurability(cmd).catch(() => undefined);
    try {
      const generation = await cmd.get(this.#key('generation'));
      if (generation !== null && generation === this.#generation) return;
      this.#log?.warn({ generation: this.#generation }, 'redis dataset changed (flushed or restarted empty); checking every stream');
      await cmd.set(this.#key('generation'), newEpoch(), 'NX');
      this.#generation = (await cmd.get(this.#key('generation'))) ?? undefined;
      await this.#sweep();
    } catch (error) {
      this.#log?.debug({ err: error }, 'redis watch failed');
    }
  }

  /**
   * Compares every known stream (and every stored one) with what was delivered: new
   * epochs are reported, missed events filled from the log. Runs after every reconnect
   * and periodically; concurrent requests fold into one more pass.
   */
  #sweep(): Promise<void> {
    if (this.#sweeping) {
      this.#sweepAgain = true;
      return this.#sweeping;
    }
    this.#sweeping = (async () => {
      do {
        this.#sweepAgain = false;
        await this.#sweepOnce();
      } while (this.#sweepAgain && this.#state === 'open');
    })().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    const cmd = this.#cmd;
    if (this.#state !== 'open' || !cmd || cmd.status !== 'ready') return;
    try {
      const stored = await cmd.smembers(this.#key('streams'));
      const names = [...new Set([...this.#cursors.keys(), ...stored])];
      const metas = await this.#metaOf(cmd, names);
      for (const [k, stream] of names.entries()) {
        if (this.#state !== 'open') return;
        const meta = metas[k];
        const cursor = this.#cursors.get(stream);
        if (meta?.epoch === undefined) {
          // Known here, gone there: give it a new epoch now (every node agrees on it).
          if (cursor) await this.head(stream);
        } else if (!cursor || cursor.epoch !== meta.epoch) {
          this.#observe(stream, meta.epoch, meta.head);
        } else if (meta.head < cursor.offset && !cursor.filling) {
          await this.#onRegressed(cmd, stream, cursor);
        } else if (meta.head > cursor.offset) {
          await this.#fill(stream);
        }
      }
    } catch (error) {
      this.#log?.debug({ err: error }, 'redis sweep failed; retrying later');
    }
  }

  /** Gives a stream whose head went backwards a new epoch (see REGRESSED_LUA) and reports the reset. */
  async #onRegressed(cmd: Redis, stream: string, cursor: Cursor): Promise<void> {
    const seen = { epoch: cursor.epoch, offset: cursor.offset };
    const [epoch, head, first] = (await SCRIPTS.regressed.run(cmd, [this.#meta(stream)], [seen.epoch, seen.offset, newEpoch()])) as [string, number, number];
    if (cursor.epoch !== seen.epoch || epoch === seen.epoch) return;
    this.#log?.error(
      { stream, epoch: seen.epoch, delivered: seen.offset, head: Number(head), new_epoch: epoch },
      'redis lost acknowledged events of this stream (its head went backwards): new epoch, clients get a snapshot; check redis persistence (appendfsync always)',
    );
    this.#resetCursor(stream, cursor, { epoch, offset: Number(head), first: Number(first) });
  }

  /** After a reconnect, before appending: streams whose head went backwards get a new epoch first. */
  async #checkRegressions(cmd: Redis): Promise<void> {
    const names = [...this.#cursors.keys()];
    const metas = await this.#metaOf(cmd, names);
    for (const [k, stream] of names.entries()) {
      const cursor = this.#cursors.get(stream);
      const meta = metas[k];
      if (cursor && meta?.epoch === cursor.epoch && meta.head < cursor.offset && !cursor.filling) await this.#onRegressed(cmd, stream, cursor);
    }
  }

  async #metaOf(cmd: Redis, names: readonly string[]): Promise<Array<{ epoch: string | undefined; head: number } | undefined>> {
    if (names.length === 0) return [];
    const pipeline = cmd.pipeline();
    for (const stream of names) pipeline.hmget(this.#meta(stream), 'epoch', 'head');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => {
      if (error) throw error;
      const [epoch, head] = value as [string | null, string | null];
      return { epoch: epoch ?? undefined, head: Number(head ?? 0) };
    });
  }

  async #resubscribe(): Promise<void> {
    const sub = this.#sub;
    if (this.#state !== 'open' || !sub) return;
    try {
      await sub.subscribe(this.#channel);
      this.#subscribed = true;
      this.#onReconnected('subscriber');
    } catch (error) {
      this.#log?.warn({ err: error }, 'resubscribing to redis failed; the connection will retry');
    }
  }

  #onReconnected(which: string): void {
    if (this.#state !== 'open') return;
    if (this.#connectionLost) this.#log?.info({ connection: which }, 'redis connection restored; catching up');
    this.#connectionLost = false;
    // The Redis behind the new connection may be another one (a restart, a failover).
    if (which === 'command' && this.#options.durability !== 'none' && this.#cmd) void this.#checkDurability(this.#cmd).catch(() => undefined);
    // Whatever was published while we were away is in the log: read it back.
    void this.#watch().then(() => this.#sweep());
  }

  #onClose(): void {
    if (this.#state !== 'open' || this.#connectionLost) return;
    this.#connectionLost = true;
    this.#log?.warn('redis connection lost; appends fail (503) until it is back');
  }

  #onConnectionError(which: string, err: Error): void {
    // ioredis reports every failed reconnect attempt; the transition is logged once in #onClose.
    this.#log?.debug({ err, connection: which }, 'redis connection error');
  }

  /* ------------------------------------------------------------------ helpers */

  #client(): Redis {
    if (this.#state !== 'open' || !this.#cmd) {
      throw new EngineUnavailableError(`redis engine is ${this.#state === 'closed' ? 'closed' : 'not open'}`);
    }
    return this.#cmd;
  }

  async #call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      // A command that timed out leaves its reply (if any) on the connection: start a new one.
      if (error instanceof Error && error.message === 'Command timed out' && this.#cmd?.status === 'ready') this.#cmd.disconnect(true);
      throw unavailable(error);
    }
  }

  /* ------------------------------------------------------------------ durability */

  /**
   * Reads whether Redis keeps what it acknowledges (one check at a time; concurrent
   * callers share it) and logs a change of verdict once. Throws when Redis could not be
   * asked (the previous verdict stays).
   */
  #checkDurability(cmd: Redis): Promise<DurabilityStatus> {
    this.#checking ??= (async () => {
      try {
        const reconnected = this.#durability.code === 'unchecked';
        const status = await checkDurability(cmd, this.#options.durability);
        if (cmd !== this.#cmd || this.#state === 'closed') return status;
        // Redis may have come back with less than it acknowledged: find out before appending.
        if (reconnected && this.#state === 'open') await this.#checkRegressions(cmd);
        this.#durability = status;
        if (status.code !== this.#durabilityLogged) {
          const first = this.#durabilityLogged === undefined;
          this.#durabilityLogged = status.code;
          if (!status.ok) {
            this.#log?.warn({ redis_durability: this.#options.durability, reason: status.code }, `${status.detail ?? status.code}`);
          } else if (!first) {
            this.#log?.warn({ redis_durability: this.#options.durability }, 'redis persistence is as redis_durability requires again; appends are accepted');
          } else {
            this.#log?.info({ redis_durability: this.#options.durability }, 'redis persistence verified');
          }
        }
        return status;
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  /** Refuses an append unless Redis was verified to keep it (verifying first right after a reconnect). */
  async #requireDurability(cmd: Redis): Promise<void> {
    let status = this.#durability;
    if (status.code === 'unchecked') status = await this.#call(() => this.#checkDurability(cmd));
    if (!status.ok) throw new EngineUnavailableError(status.detail ?? `redis persistence: ${status.code}`);
  }

  /** WAIT for the configured number of replicas to hold this connection's writes so far. */
  async #waitForReplicas(cmd: Redis): Promise<void> {
    const wanted = this.#options.waitReplicas;
    const timeout = this.#options.waitTimeoutMs;
    const acked = Number(await this.#call(() => cmd.wait(wanted, timeout)));
    if (acked < wanted) {
      this.#log?.warn({ replicas: acked, wanted, timeout_ms: timeout }, 'an append was not acknowledged by enough redis replicas; answered unavailable');
      throw new EngineUnavailableError(
        `only ${acked} of ${wanted} redis replicas acknowledged the append within ${timeout} ms (redis_wait_replicas: ${wanted}); the events may be stored`,
      );
    }
  }

  #every(ms: number, work: () => void): void {
    const timer = setInterval(work, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

function toStoredEvent(stream: string, epoch: string, id: string, fields: readonly string[]): StoredEvent {
  let type = '';
  let data = '{}';
  let ms = 0;
  for (let k = 0; k + 1 < fields.length; k += 2) {
    const value = fields[k + 1]!;
    switch (fields[k]) {
      case 't':
        type = value;
        break;
      case 'd':
        data = value;
        break;
      case 'ts':
        ms = Number(value);
        break;
    }
  }
  return { type, stream, epoch, offset: Number.parseInt(id, 10), timestamp: isoOf(ms), data: JSON.parse(data) as Record<string, unknown> };
}

function newCursor(epoch: string, offset: number): Cursor {
  return { epoch, offset, filling: false, pending: [], retired: [] };
}

/**
 * Connection-level failures (refused, reset, timed out, no offline queue) and replies
 * meaning "not now" become EngineUnavailableError (HTTP 503); any other Redis error
 * reply is a bug and is rethrown as it is.
 */
function unavailable(error: unknown, message?: string): Error {
  if (error instanceof EngineUnavailableError) return error;
  const isReply = error instanceof Error && error.name === 'ReplyError';
  if (isReply && !UNAVAILABLE_REPLY.test(error.message)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new EngineUnavailableError(message ? `${message}: ${detail}` : `redis unavailable: ${detail}`, { cause: error });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function quit(client: Redis | undefined): Promise<void> {
  if (!client) return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await withTimeout(client.quit(), 1000, 'QUIT timed out');
  } catch {
    client.disconnect();
  }
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an invalid URL';
  }
}
