import type { Redis } from 'ioredis';
import type { EventInput } from '@tradesync/protocol';
import { EngineUnavailableError, type Engine, type EngineHealth, type ReadResult, type StoredEvent, type StoredSnapshot, type StreamHead } from '../engine.js';
import { encodeAppend } from './codec.js';
import { createConnections, guarded, quit, redactUrl, unavailable, withTimeout } from './connection.js';
import { DurabilityGuard } from './durability-guard.js';
import { Follower } from './follower.js';
import { Keys } from './keys.js';
import { Listeners } from './listeners.js';
import { RedisLog } from './log.js';
import { resolveOptions, type RedisEngineOptions, type ResolvedOptions } from './options.js';

/**
 * The shared engine: every gateway node of a cluster appends to and reads from the same
 * Redis, so offsets are assigned once (in Redis, atomically) and every node serves the
 * same history. Live fan-out between nodes is Redis pub/sub on a dedicated subscriber
 * connection; what pub/sub loses is read back from the log (follower.ts).
 *
 * This file is the orchestration: connections and their lifecycle, the Engine methods,
 * the periodic watch. The parts: connection.ts (connections, errors), log.ts (the data
 * in Redis, scripts in lua/), cursors.ts (pure delivery decisions), follower.ts (carrying
 * them out), listeners.ts, durability-guard.ts.
 */
export class RedisEngine implements Engine {
  readonly kind = 'redis';

  readonly #options: ResolvedOptions;
  readonly #log: RedisEngineOptions['log'];
  readonly #keys: Keys;
  readonly #listeners: Listeners;
  readonly #follower: Follower;
  readonly #durability: DurabilityGuard;
  readonly #timers: NodeJS.Timeout[] = [];
  #cmd: Redis | undefined;
  #sub: Redis | undefined;
  #redis: RedisLog | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  #subscribed = false;
  #generation: string | undefined;
  #connectionLost = false;

  constructor(options: RedisEngineOptions) {
    this.#options = resolveOptions(options);
    this.#log = options.log;
    this.#keys = new Keys(this.#options.prefix);
    const isOpen = () => this.#state === 'open';
    this.#listeners = new Listeners((stream, epoch, offset) => this.#follower.cursors.delivered(stream, epoch, offset), options.onListenerError);
    this.#follower = new Follower(this.#listeners, {
      isOpen,
      log: () => this.#client(),
      readyLog: () => (this.#redis?.cmd.status === 'ready' ? this.#redis : undefined),
      logger: this.#log,
    });
    this.#durability = new DurabilityGuard(this.#options.durability, this.#log, {
      current: (cmd) => cmd === this.#cmd && this.#state !== 'closed',
      beforeTrust: async () => {
        if (isOpen() && this.#redis) await this.#follower.checkRegressions(this.#redis);
      },
    });
  }

  /* ------------------------------------------------------------------ lifecycle */

  async open(): Promise<void> {
    if (this.#state === 'closed') throw new EngineUnavailableError('redis engine is closed');
    if (this.#state !== 'new') return;
    this.#state = 'opening';
    const { cmd, sub } = createConnections(this.#options);
    const redis = new RedisLog(cmd, this.#keys);
    this.#cmd = cmd;
    this.#sub = sub;
    this.#redis = redis;
    cmd.on('error', (err: Error) => this.#onConnectionError('command', err));
    sub.on('error', (err: Error) => this.#onConnectionError('subscriber', err));
    cmd.on('close', () => {
      // Whatever answers the next connection is verified again before it is trusted.
      this.#durability.forget();
      this.#onClose();
    });
    sub.on('close', () => {
      this.#subscribed = false;
      this.#onClose();
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.#keys.channel) this.#follower.onMessage(message);
    });
    try {
      await Promise.all([cmd.connect(), sub.connect()]);
      // Subscribe before reading heads: whatever is appended after the heads we read
      // arrives as a notification, and whatever arrives earlier is a duplicate.
      await sub.subscribe(this.#keys.channel);
      this.#subscribed = true;
      await this.#follower.load(redis);
      this.#generation = await redis.generation();
      if (this.#options.durability === 'none') {
        this.#log?.warn(
          { redis_durability: 'none' },
          'redis_durability is none: Redis persistence is not checked; acknowledged events can be lost on a Redis restart (set appendonly yes and redis_durability: aof)',
        );
      } else {
        await this.#durability.check(cmd);
      }
    } catch (error) {
      this.#state = 'closed';
      cmd.disconnect();
      sub.disconnect();
      throw unavailable(error, `cannot connect to redis at ${redactUrl(this.#options.url)}`);
    }
    this.#state = 'open';
    this.#follower.started();
    // Only reconnections from now on; the first 'ready' happened inside connect().
    cmd.on('ready', () => this.#onReconnected('command'));
    sub.on('ready', () => void this.#resubscribe());
    this.#every(this.#options.watchIntervalMs, () => void this.#watch());
    this.#every(this.#options.sweepIntervalMs, () => void this.#follower.sweep());
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    this.#listeners.releaseAll();
    await this.#follower.sweeping?.catch(() => undefined);
    await Promise.all([quit(this.#cmd), quit(this.#sub)]);
  }

  /* ------------------------------------------------------------------ the Engine */

  async append(events: readonly EventInput[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const redis = this.#client();
    await this.#requireDurability(redis.cmd);
    const encoded = encodeAppend(events);
    const { stored, streams } = await guarded(redis.cmd, () => redis.append(events, encoded, this.#options.now()));
    for (const s of streams) this.#follower.observe(s.stream, s.epoch, s.before);
    if (this.#options.waitReplicas > 0) await this.#waitForReplicas(redis.cmd);
    await this.#listeners.delivered(
      streams.map((s) => ({ stream: s.stream, epoch: s.epoch, offset: s.last })),
      this.#options.deliveryTimeoutMs,
      (stream) => void this.#follower.fill(stream),
    );
    return stored;
  }

  async read(stream: string, after: number, limit: number): Promise<ReadResult> {
    const redis = this.#client();
    const page = await guarded(redis.cmd, () => redis.read(stream, after, limit));
    if (page.status === 'unknown') return { trimmed: false, events: [] };
    if (page.status === 'trimmed') return { trimmed: true };
    return { trimmed: false, events: page.events };
  }

  head(stream: string): Promise<StreamHead> {
    return this.#follower.head(stream);
  }

  async streams(): Promise<string[]> {
    const redis = this.#client();
    return (await guarded(redis.cmd, () => redis.streams())).sort();
  }

  async saveSnapshot(snapshot: StoredSnapshot): Promise<void> {
    const redis = this.#client();
    await guarded(redis.cmd, () => redis.saveSnapshot(snapshot));
  }

  async loadSnapshot(stream: string): Promise<StoredSnapshot | undefined> {
    const redis = this.#client();
    return guarded(redis.cmd, () => redis.loadSnapshot(stream));
  }

  async trim(stream: string, upTo: number): Promise<number> {
    const redis = this.#client();
    return guarded(redis.cmd, () => redis.trim(stream, upTo));
  }

  async offsetBefore(stream: string, time: string): Promise<number> {
    const redis = this.#client();
    const ms = Date.parse(time);
    if (Number.isNaN(ms)) throw new TypeError(`offsetBefore: "${time}" is not an ISO time`);
    return guarded(redis.cmd, () => redis.offsetBefore(stream, ms));
  }

  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void {
    return this.#listeners.onAppend(listener);
  }

  onReset(listener: (stream: string, head: StreamHead) => void): () => void {
    return this.#listeners.onReset(listener);
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
    let durability = this.#durability.status;
    if (durability.code === 'unchecked') {
      try {
        durability = await withTimeout(this.#durability.check(cmd), this.#options.healthTimeoutMs, 'persistence check timed out');
      } catch {
        // Reported as unchecked below.
      }
    }
    if (!durability.ok) return { ok: false, detail: durability.detail ?? durability.code };
    return { ok: true };
  }

  /* ------------------------------------------------------------------ recovery */

  /** The cheap probe: has the dataset been replaced (FLUSHALL, restart without persistence)? */
  async #watch(): Promise<void> {
    const redis = this.#redis;
    if (this.#state !== 'open' || !redis || redis.cmd.status !== 'ready') return;
    // A silent subscriber connection (half-open) is found by its socket timeout.
    const sub = this.#sub;
    if (sub?.status === 'ready' && this.#subscribed) sub.ping().catch(() => undefined);
    if (this.#options.durability !== 'none') await this.#durability.check(redis.cmd).catch(() => undefined);
    try {
      const generation = await redis.currentGeneration();
      if (generation !== null && generation === this.#generation) return;
      this.#log?.warn({ generation: this.#generation }, 'redis dataset changed (flushed or restarted empty); checking every stream');
      this.#generation = await redis.generation();
      await this.#follower.sweep();
    } catch (error) {
      this.#log?.debug({ err: error }, 'redis watch failed');
    }
  }

  async #resubscribe(): Promise<void> {
    const sub = this.#sub;
    if (this.#state !== 'open' || !sub) return;
    try {
      await sub.subscribe(this.#keys.channel);
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
    if (which === 'command' && this.#options.durability !== 'none' && this.#cmd) void this.#durability.check(this.#cmd).catch(() => undefined);
    // Whatever was published while we were away is in the log: read it back.
    void this.#watch().then(() => this.#follower.sweep());
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

  #client(): RedisLog {
    if (this.#state !== 'open' || !this.#redis) {
      throw new EngineUnavailableError(`redis engine is ${this.#state === 'closed' ? 'closed' : 'not open'}`);
    }
    return this.#redis;
  }

  /** Refuses an append unless Redis was verified to keep it (verifying first right after a reconnect). */
  async #requireDurability(cmd: Redis): Promise<void> {
    let status = this.#durability.status;
    if (status.code === 'unchecked') status = await guarded(cmd, () => this.#durability.check(cmd));
    if (!status.ok) throw new EngineUnavailableError(status.detail ?? `redis persistence: ${status.code}`);
  }

  /** WAIT for the configured number of replicas to hold this connection's writes so far. */
  async #waitForReplicas(cmd: Redis): Promise<void> {
    const wanted = this.#options.waitReplicas;
    const timeout = this.#options.waitTimeoutMs;
    const acked = Number(await guarded(cmd, () => cmd.wait(wanted, timeout)));
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
