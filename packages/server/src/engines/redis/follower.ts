import type { Logger } from '../../logger.js';
import type { StoredEvent, StreamHead } from '../engine.js';
import { decodeAppendMessage } from './codec.js';
import { guarded } from './connection.js';
import { Cursors, FILL_PAGE, type Plan, type Step } from './cursors.js';
import type { Listeners } from './listeners.js';
import type { RedisLog } from './log.js';

/**
 * Keeps this node's delivery up with the log in Redis: carries out what `Cursors`
 * decides (deliver, reset, fill) with the reads it needs. Pub/sub is at most once, so
 * whatever it loses (while a connection is down) is read back from the log, which is the
 * single source of truth: on a gap, after every reconnect (`sweep`) and periodically.
 */
export class Follower {
  readonly cursors = new Cursors();
  /** Notifications that arrived before the cursors were loaded at open. */
  #early: string[] | undefined = [];
  #sweeping: Promise<void> | undefined;
  #sweepAgain = false;

  constructor(
    private readonly listeners: Listeners,
    private readonly env: {
      readonly isOpen: () => boolean;
      /** The log on the command connection; throws EngineUnavailableError when the engine is not open. */
      readonly log: () => RedisLog;
      /** The log when the command connection is ready now, else undefined (background work skips a round). */
      readonly readyLog: () => RedisLog | undefined;
      readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'> | undefined;
    },
  ) {}

  /** At open: every stored stream starts at its head (the store reads the log up to there). */
  async load(log: RedisLog): Promise<void> {
    const names = await log.streams();
    const metas = await log.metaOf(names);
    names.forEach((stream, k) => {
      const meta = metas[k];
      if (meta?.epoch !== undefined) this.cursors.start(stream, meta.epoch, meta.head);
    });
  }

  /** The engine is open: notifications held since the subscription are handled now. */
  started(): void {
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const text of early) this.onMessage(text);
  }

  /** Handles one published append. */
  onMessage(text: string): void {
    if (this.#early) {
      this.#early.push(text);
      return;
    }
    if (!this.env.isOpen()) return;
    let events: StoredEvent[];
    try {
      events = decodeAppendMessage(text);
    } catch (error) {
      this.env.logger?.error({ err: error }, 'unreadable append notification from redis; ignored');
      return;
    }
    this.#carryOut(this.cursors.accept(events));
  }

  /** The stream's head (creating its epoch when it has none), learned by the cursors. */
  async head(stream: string): Promise<StreamHead> {
    const log = this.env.log();
    const head = await guarded(log.cmd, () => log.head(stream));
    this.observe(stream, head.epoch, head.offset);
    return head;
  }

  observe(stream: string, epoch: string, offset: number): void {
    this.#carryOut(this.cursors.observe(stream, epoch, offset));
  }

  /**
   * Reads what this node missed of a stream from the log and delivers it, then what
   * waited meanwhile. One fill per stream at a time; a failure leaves the rest to the
   * next sweep (or the next notification past the hole).
   */
  async fill(stream: string): Promise<void> {
    if (!this.env.isOpen()) return;
    let after = this.cursors.beginFill(stream);
    if (after === undefined) return;
    let failed = false;
    try {
      for (;;) {
        const log = this.env.log();
        const page = await guarded(log.cmd, () => log.read(stream, after!, FILL_PAGE));
        if (!this.env.isOpen()) return;
        const outcome = this.cursors.page(stream, page);
        if (outcome.trimmed) this.env.logger?.warn({ stream, ...outcome.trimmed }, 'events missed while disconnected were already trimmed');
        this.#run(outcome.steps);
        if (outcome.next === 'vanished') {
          // The history vanished: `head` creates the new epoch and reports the reset.
          await this.head(stream);
          break;
        }
        if (outcome.next === 'done') break;
        after = this.cursors.position(stream)!.offset;
      }
    } catch (error) {
      failed = true;
      this.env.logger?.warn({ err: error, stream }, 'reading missed events failed; retrying on the next sweep');
    } finally {
      const end = this.cursors.endFill(stream, failed);
      if (this.env.isOpen()) this.#run(end.steps);
      if (end.again && this.env.isOpen()) void this.fill(stream);
    }
  }

  /**
   * Compares every known stream (and every stored one) with what was delivered: new
   * epochs are reported, missed events filled from the log. Runs after every reconnect
   * and periodically; concurrent requests fold into one more pass.
   */
  sweep(): Promise<void> {
    if (this.#sweeping) {
      this.#sweepAgain = true;
      return this.#sweeping;
    }
    this.#sweeping = (async () => {
      do {
        this.#sweepAgain = false;
        await this.#sweepOnce();
      } while (this.#sweepAgain && this.env.isOpen());
    })().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  /** The sweep in flight, if any (close waits for it). */
  get sweeping(): Promise<void> | undefined {
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    const log = this.env.readyLog();
    if (!this.env.isOpen() || !log) return;
    try {
      const stored = await log.streams();
      const names = [...new Set([...this.cursors.names(), ...stored])];
      const metas = await log.metaOf(names);
      for (const [k, stream] of names.entries()) {
        if (!this.env.isOpen()) return;
        const meta = metas[k] ?? { epoch: undefined, head: 0 };
        switch (this.cursors.sweep(stream, meta)) {
          case 'vanished':
            await this.head(stream);
            break;
          case 'observe':
            this.observe(stream, meta.epoch!, meta.head);
            break;
          case 'regressed':
            await this.#onRegressed(log, stream);
            break;
          case 'fill':
            await this.fill(stream);
            break;
          case 'none':
            break;
        }
      }
    } catch (error) {
      this.env.logger?.debug({ err: error }, 'redis sweep failed; retrying later');
    }
  }

  /** After a reconnect, before appending: streams whose head went backwards get a new epoch first. */
  async checkRegressions(log: RedisLog): Promise<void> {
    const names = this.cursors.names();
    const metas = await log.metaOf(names);
    for (const [k, stream] of names.entries()) {
      const meta = metas[k];
      if (meta && this.cursors.regressed(stream, meta)) await this.#onRegressed(log, stream);
    }
  }

  /** Gives a stream whose head went backwards a new epoch (see lua/regressed.lua) and reports the reset. */
  async #onRegressed(log: RedisLog, stream: string): Promise<void> {
    const position = this.cursors.position(stream);
    if (!position) return;
    const seen = { epoch: position.epoch, offset: position.offset };
    const head = await log.regressed(stream, seen);
    const step = this.cursors.afterRegression(stream, seen, head);
    if (!step) return;
    this.env.logger?.error(
      { stream, epoch: seen.epoch, delivered: seen.offset, head: head.offset, new_epoch: head.epoch },
      'redis lost acknowledged events of this stream (its head went backwards): new epoch, clients get a snapshot; check redis persistence (appendfsync always)',
    );
    this.#run([step]);
  }

  #carryOut(plan: Plan): void {
    this.#run(plan.steps);
    for (const stream of plan.fill) void this.fill(stream);
  }

  #run(steps: readonly Step[]): void {
    for (const step of steps) {
      if (step.kind === 'deliver') {
        this.listeners.deliver(step.events);
      } else {
        this.env.logger?.warn({ stream: step.stream, old_epoch: step.from, epoch: step.head.epoch }, 'stream history was lost in redis; new epoch');
        this.listeners.reset(step.stream, step.head);
      }
    }
  }
}
