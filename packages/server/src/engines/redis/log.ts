import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { EventInput } from '@tradesync/protocol';
import { EngineUnavailableError, type StoredEvent, type StoredSnapshot, type StreamHead } from '../engine.js';
import { isoOf, toStoredEvent, type EncodedAppend } from './codec.js';
import type { LogPage, Meta } from './cursors.js';
import type { Keys } from './keys.js';

/**
 * The log as stored in Redis (see keys.ts), one typed method per operation on the
 * command connection. No policy: errors are the connection's own (the engine turns them
 * into EngineUnavailableError where a caller waits on them).
 */

const newEpoch = (): string => randomBytes(8).toString('hex');

/** One stream of an append: its epoch, the head before the call, and the stamp of its events. */
export interface AppendedStream {
  readonly stream: string;
  readonly epoch: string;
  readonly before: number;
  /** The offset of its last event in this call. */
  readonly last: number;
}

export class RedisLog {
  constructor(
    readonly cmd: Redis,
    readonly keys: Keys,
  ) {}

  /**
   * Appends atomically (lua/append.lua) and publishes the notification; the stored events
   * and each stream's position. `encoded` is `encodeAppend(events)`, made by the caller
   * first so an event that cannot be encoded fails as itself, before Redis sees any.
   */
  async append(events: readonly EventInput[], encoded: EncodedAppend, now: number): Promise<{ stored: StoredEvent[]; streams: AppendedStream[] }> {
    const { names, index, args } = encoded;
    const keys = [this.keys.streams, ...names.flatMap((s) => [this.keys.meta(s), this.keys.log(s)])];
    const reply: unknown = await this.cmd.tradesyncAppend(keys.length, ...keys, this.keys.channel, newEpoch(), now, names.length, ...names, ...args);
    if (!Array.isArray(reply) || reply.length !== 3 * names.length) {
      // Never acknowledge on a reply we cannot read: the connection is suspect, start a new one.
      this.cmd.disconnect(true);
      throw new EngineUnavailableError(`unexpected reply to the append script from redis (${typeof reply}); the events may be stored`);
    }
    const perStream = names.map((stream, k) => ({
      stream,
      epoch: String(reply[3 * k]),
      /** The head before this call, as the script read it. */
      before: Number(reply[3 * k + 1]),
      last: Number(reply[3 * k + 1]),
      timestamp: isoOf(Number(reply[3 * k + 2])),
    }));
    const stored = events.map((event): StoredEvent => {
      const s = perStream[index.get(event.stream)! - 1]!;
      s.last += 1;
      // The input object itself: the gateway validated it as plain JSON, so it equals what a read returns.
      return { type: event.type, stream: event.stream, epoch: s.epoch, offset: s.last, timestamp: s.timestamp, data: event.data };
    });
    return { stored, streams: perStream };
  }

  async read(stream: string, after: number, limit: number): Promise<LogPage> {
    const reply = await this.cmd.tradesyncRead(this.keys.meta(stream), this.keys.log(stream), Math.floor(after), Math.floor(limit));
    if (reply[0] === 0) return { status: 'unknown' };
    const epoch = String(reply[1]);
    const head = Number(reply[2]);
    const first = Number(reply[3]);
    if (reply[0] === 1) return { status: 'trimmed', epoch, head, first };
    const events = (reply[4] ?? []).map(([id, fields]) => toStoredEvent(stream, epoch, id, fields));
    return { status: 'ok', epoch, head, first, events };
  }

  /** The head, creating the stream's epoch when it has none (lua/head.lua). */
  async head(stream: string): Promise<StreamHead> {
    const [epoch, offset, first] = await this.cmd.tradesyncHead(this.keys.meta(stream), newEpoch());
    return { epoch, offset: Number(offset), first: Number(first) };
  }

  async streams(): Promise<string[]> {
    return this.cmd.smembers(this.keys.streams);
  }

  async saveSnapshot(snapshot: StoredSnapshot): Promise<void> {
    const state = JSON.stringify(snapshot.state);
    await this.cmd.tradesyncSaveSnapshot(
      this.keys.meta(snapshot.stream),
      this.keys.snapshot(snapshot.stream),
      snapshot.epoch,
      snapshot.offset,
      snapshot.schemaVersion,
      state,
      snapshot.createdAt,
    );
  }

  async loadSnapshot(stream: string): Promise<StoredSnapshot | undefined> {
    const row = await this.cmd.hgetall(this.keys.snapshot(stream));
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
    return Number(await this.cmd.tradesyncTrim(this.keys.meta(stream), this.keys.log(stream), Math.floor(upTo)));
  }

  async offsetBefore(stream: string, ms: number): Promise<number> {
    return Number(await this.cmd.tradesyncOffsetBefore(this.keys.meta(stream), this.keys.log(stream), ms));
  }

  /** Epoch and head of many streams in one round trip. */
  async metaOf(names: readonly string[]): Promise<Meta[]> {
    if (names.length === 0) return [];
    const pipeline = this.cmd.pipeline();
    for (const stream of names) pipeline.hmget(this.keys.meta(stream), 'epoch', 'head');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => {
      if (error) throw error;
      const [epoch, head] = value as [string | null, string | null];
      return { epoch: epoch ?? undefined, head: Number(head ?? 0) };
    });
  }

  /** A new epoch for a stream whose head went backwards, unless another node gave it one first (lua/regressed.lua). */
  async regressed(stream: string, seen: { readonly epoch: string; readonly offset: number }): Promise<StreamHead> {
    const [epoch, head, first] = await this.cmd.tradesyncRegressed(this.keys.meta(stream), seen.epoch, seen.offset, newEpoch());
    return { epoch, offset: Number(head), first: Number(first) };
  }

  /** The dataset's generation, created when missing (FLUSHALL, a restart without persistence). */
  async generation(): Promise<string | undefined> {
    await this.cmd.set(this.keys.generation, newEpoch(), 'NX');
    return (await this.cmd.get(this.keys.generation)) ?? undefined;
  }

  /** The generation as it is now (null when the dataset lost it). */
  currentGeneration(): Promise<string | null> {
    return this.cmd.get(this.keys.generation);
  }
}
