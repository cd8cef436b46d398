import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EngineUnavailableError, type StoredEvent, type StreamHead } from '../src/engines/engine.js';
import { RedisEngine, type RedisEngineOptions } from '../src/engines/redis/index.js';
import { describeEngineConformance, ev, MARKET, ORDERS } from './support/engine-conformance.js';
import { useTestRedis } from '@tradesync/testing/redis';

/*
 * The shared engine behaviours (support/engine-conformance.ts) against the Redis engine,
 * plus what only a shared engine has: several engines (nodes) over one Redis, lost
 * history, an outage.
 */

const redis = useTestRedis();
let engines: RedisEngine[] = [];
let engine: RedisEngine;

async function openEngine(options: Partial<RedisEngineOptions> = {}): Promise<RedisEngine> {
  const e = new RedisEngine({ url: redis.url, watchIntervalMs: 100, sweepIntervalMs: 500, ...options });
  engines.push(e);
  await e.open();
  return e;
}

async function openMainEngine(): Promise<void> {
  engine = await openEngine();
}

afterEach(async () => {
  vi.useRealTimers();
  for (const e of engines) await e.close();
  engines = [];
});

describeEngineConformance('RedisEngine', {
  open: (options) => openEngine(options),
  async reopen(e) {
    await e.close();
    return openEngine();
  },
});

describe('RedisEngine across several nodes', () => {
  beforeEach(openMainEngine);

  it('keeps any JSON data exactly, through the log and through another node notification', async () => {
    const other = await openEngine();
    const heard: StoredEvent[] = [];
    other.onAppend((events) => heard.push(...events));
    const data = { text: 'ünïcødé "quoted" \\ back\u2028slash 📈', nested: { list: [1, '2', null, { deep: true }], empty: {} }, n: -0.5 };
    const batch = Array.from({ length: 500 }, (_, k) => ({ stream: ORDERS, type: 'order:updated', data: { ...data, k } }));
    const stored = await engine.append(batch);
    expect(stored.at(-1)).toMatchObject({ offset: 500, data: { ...data, k: 499 } });
    const read = await engine.read(ORDERS, 0, 1000);
    expect(read).toEqual({ trimmed: false, events: stored });
    await vi.waitFor(() => expect(heard).toHaveLength(500));
    expect(heard).toEqual(stored);
  });

  it('keeps offsets dense and the events of one call contiguous under concurrent appends from several nodes', async () => {
    const nodes = [engine, await openEngine(), await openEngine()];
    const calls = await Promise.all(
      Array.from({ length: 60 }, (_, k) => nodes[k % 3]!.append([ev(ORDERS, k * 10), ev(ORDERS, k * 10 + 1), ev(MARKET, k, 'market:tick')])),
    );
    for (const call of calls) {
      // The two ORDERS events of one call got adjacent offsets: nothing interleaved.
      expect(call[1]!.offset).toBe(call[0]!.offset + 1);
      expect(call[1]!.data['i']).toBe((call[0]!.data['i'] as number) + 1);
    }
    const offsets = calls.flatMap((c) => c.filter((e) => e.stream === ORDERS).map((e) => e.offset)).sort((a, b) => a - b);
    expect(offsets).toEqual(Array.from({ length: 120 }, (_, k) => k + 1));
    const read = await engine.read(ORDERS, 0, 1000);
    if (read.trimmed) throw new Error('unexpected trim');
    expect(read.events.map((e) => e.offset)).toEqual(offsets);
  });
  it('tells every node of every append, in offset order per stream', async () => {
    const other = await openEngine();
    const third = await openEngine();
    const heard = new Map<RedisEngine, StoredEvent[]>([
      [engine, []],
      [other, []],
      [third, []],
    ]);
    for (const [node, list] of heard) node.onAppend((events) => list.push(...events));
    await Promise.all(Array.from({ length: 30 }, (_, k) => [engine, other, third][k % 3]!.append([ev(ORDERS, k), ev(MARKET, k, 'market:tick')])));
    for (const list of heard.values()) {
      await vi.waitFor(() => expect(list).toHaveLength(60));
      for (const stream of [ORDERS, MARKET]) {
        expect(list.filter((e) => e.stream === stream).map((e) => e.offset)).toEqual(Array.from({ length: 30 }, (_, k) => k + 1));
      }
    }
  });
  it('gives an unknown stream one epoch every node agrees on, which the first append from any node keeps', async () => {
    const head = await engine.head('orders:nobody');
    const other = await openEngine();
    expect(await other.head('orders:nobody')).toEqual(head);
    const [first] = await other.append([ev('orders:nobody', 1)]);
    expect(first).toMatchObject({ epoch: head.epoch, offset: 1 });
  });

  it('keeps offsetBefore correct over many events, after a trim, and when a node clock lags behind', async () => {
    let now = Date.parse('2025-01-01T00:00:00.000Z');
    const fast = await openEngine({ now: () => now });
    for (let k = 0; k < 200; k++) {
      now += 1000;
      await fast.append([ev(MARKET, k, 'market:tick')]);
    }
    // Event k+1 is stamped at start + (k+1) s.
    const at = (s: number) => new Date(Date.parse('2025-01-01T00:00:00.000Z') + s * 1000).toISOString();
    expect(await fast.offsetBefore(MARKET, at(100))).toBe(99);
    expect(await fast.offsetBefore(MARKET, at(100).replace('.000Z', '.001Z'))).toBe(100);
    await fast.trim(MARKET, 150);
    expect(await fast.offsetBefore(MARKET, at(100))).toBe(0);
    expect(await fast.offsetBefore(MARKET, at(180))).toBe(179);
    // A node whose clock is behind never stamps an event before the previous one.
    const slow = await openEngine({ now: () => now - 60_000 });
    const [late] = await slow.append([ev(MARKET, 999, 'market:tick')]);
    expect(Date.parse(late!.timestamp)).toBe(now);
    expect(await fast.offsetBefore(MARKET, new Date(now + 1).toISOString())).toBe(201);
  });
  it('never lets a lagging node replace a newer snapshot, nor store one of a lost epoch', async () => {
    const epoch = (await engine.head(ORDERS)).epoch;
    const newer = { stream: ORDERS, epoch, offset: 9, schemaVersion: 1, state: { n: 9 }, createdAt: 'now' };
    await engine.saveSnapshot(newer);
    await engine.saveSnapshot({ ...newer, offset: 4, state: { n: 4 } });
    await engine.saveSnapshot({ ...newer, epoch: 'an-old-epoch', offset: 20, state: { n: 20 } });
    expect(await engine.loadSnapshot(ORDERS)).toEqual(newer);
  });
});

describe('RedisEngine shared history', () => {
  beforeEach(openMainEngine);

  it('gives a flushed stream a new epoch: every node reports the reset, and offsets start again at 1', async () => {
    const other = await openEngine();
    const [before] = await engine.append([ev(ORDERS, 1)]);
    await vi.waitFor(async () => expect((await other.head(ORDERS)).offset).toBe(1));
    const resets = new Map<RedisEngine, Array<[string, StreamHead]>>([
      [engine, []],
      [other, []],
    ]);
    for (const [node, list] of resets) node.onReset((stream, head) => list.push([stream, head]));

    await redis.command('FLUSHALL');
    for (const list of resets.values()) await vi.waitFor(() => expect(list).toHaveLength(1), { timeout: 5000 });
    const [[, headA]] = resets.get(engine)! as [[string, StreamHead]];
    const [[streamB, headB]] = resets.get(other)! as [[string, StreamHead]];
    expect(streamB).toBe(ORDERS);
    expect(headA.epoch).not.toBe(before!.epoch);
    expect(headB.epoch).toBe(headA.epoch);
    const [after] = await other.append([ev(ORDERS, 2)]);
    expect(after).toMatchObject({ epoch: headA.epoch, offset: 1 });
    expect(await engine.streams()).toEqual([ORDERS]);
  });

  it('an append to a flushed stream before anyone noticed reports the reset too, once', async () => {
    const resets: string[] = [];
    const heard: StoredEvent[] = [];
    const quiet = await openEngine({ watchIntervalMs: 60_000, sweepIntervalMs: 60_000 });
    quiet.onReset((stream) => resets.push(stream));
    quiet.onAppend((events) => heard.push(...events));
    const [old] = await quiet.append([ev(ORDERS, 1)]);
    await redis.command('FLUSHALL');
    const [fresh] = await engine.append([ev(ORDERS, 2)]);
    expect(fresh!.epoch).not.toBe(old!.epoch);
    await vi.waitFor(() => expect(heard.map((e) => [e.epoch, e.offset])).toEqual([[old!.epoch, 1], [fresh!.epoch, 1]]));
    expect(resets).toEqual([ORDERS]);
  });

  it('recovers a lost notification from the log, in order', async () => {
    const heard: number[] = [];
    const other = await openEngine();
    other.onAppend((events) => heard.push(...events.filter((e) => e.stream === ORDERS).map((e) => e.offset)));
    await engine.append([ev(ORDERS, 1)]);
    await vi.waitFor(() => expect(heard).toEqual([1]));
    // Write behind the engines' backs, without a notification: as if it were lost.
    await redis.command('EVAL', "redis.call('XADD', KEYS[2], '2-0', 't', 'order:updated', 'd', '{\"i\":2}', 'ts', '1'); redis.call('HSET', KEYS[1], 'head', 2)", '2', `tradesync:m:${ORDERS}`, `tradesync:l:${ORDERS}`);
    // The next notification is ahead: the gap is read from the log before it is delivered.
    await engine.append([ev(ORDERS, 3)]);
    await vi.waitFor(() => expect(heard).toEqual([1, 2, 3]));
    // A lost tail (nothing after it) is found by the sweep.
    await redis.command('EVAL', "redis.call('XADD', KEYS[2], '4-0', 't', 'order:updated', 'd', '{\"i\":4}', 'ts', '1'); redis.call('HSET', KEYS[1], 'head', 4)", '2', `tradesync:m:${ORDERS}`, `tradesync:l:${ORDERS}`);
    await vi.waitFor(() => expect(heard).toEqual([1, 2, 3, 4]), { timeout: 5000 });
  });
});

describe('RedisEngine outage', () => {
  beforeEach(openMainEngine);

  it('fails fast with EngineUnavailableError while Redis is down, and catches up by itself when it is back', async () => {
    const other = await openEngine();
    const heard: StoredEvent[] = [];
    other.onAppend((events) => heard.push(...events));
    await engine.append([ev(ORDERS, 1)]);
    await vi.waitFor(() => expect(heard).toHaveLength(1));
    const resets: string[] = [];
    other.onReset((stream) => resets.push(stream));

    await redis.stop();
    const started = Date.now();
    await expect(engine.append([ev(ORDERS, 2)])).rejects.toBeInstanceOf(EngineUnavailableError);
    await expect(engine.read(ORDERS, 0, 10)).rejects.toBeInstanceOf(EngineUnavailableError);
    await expect(engine.head(ORDERS)).rejects.toBeInstanceOf(EngineUnavailableError);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await engine.health()).toMatchObject({ ok: false });

    // The test server has no persistence: it comes back empty, so the history is lost.
    await redis.restart();
    await vi.waitFor(async () => expect(await engine.health()).toEqual({ ok: true }), { timeout: 10_000 });
    await vi.waitFor(() => expect(resets).toEqual([ORDERS]), { timeout: 10_000 });
    const [next] = await engine.append([ev(ORDERS, 3)]);
    expect(next!.offset).toBe(1);
    await vi.waitFor(() => expect(heard.at(-1)).toMatchObject({ epoch: next!.epoch, offset: 1 }), { timeout: 5000 });
  });

  it('refuses to open when Redis cannot be reached', async () => {
    const nowhere = new RedisEngine({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300 });
    await expect(nowhere.open()).rejects.toBeInstanceOf(EngineUnavailableError);
  });
});
