import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EventInput } from '@tradesync/protocol';
import { EngineUnavailableError, type StoredEvent, type StreamHead } from '../src/engines/engine.js';
import { RedisEngine, type RedisEngineOptions } from '../src/engines/redis.js';
import { startRedis, type TestRedis } from './support/redis.js';

/*
 * The behaviours of embedded-engine.test.ts, against the Redis engine, plus what only a
 * shared engine has: several engines (nodes) over one Redis, lost history, an outage.
 */

const ORDERS = 'orders:acc1';
const MARKET = 'market:BTC-USD';

function ev(stream: string, i: number, type = 'order:updated'): EventInput {
  return { stream, type, data: { i } };
}

let redis: TestRedis;
let engines: RedisEngine[] = [];
let engine: RedisEngine;

async function openEngine(options: Partial<RedisEngineOptions> = {}): Promise<RedisEngine> {
  const e = new RedisEngine({ url: redis.url, watchIntervalMs: 100, sweepIntervalMs: 500, ...options });
  engines.push(e);
  await e.open();
  return e;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.[Symbol.asyncDispose]();
});

beforeEach(async () => {
  await redis.command('FLUSHALL');
  engine = await openEngine();
});

afterEach(async () => {
  vi.useRealTimers();
  for (const e of engines) await e.close();
  engines = [];
});

describe('RedisEngine append', () => {
  it('assigns dense offsets 1..n per stream across several appends', async () => {
    const a = await engine.append([ev(ORDERS, 1), ev(MARKET, 1, 'market:tick'), ev(ORDERS, 2)]);
    const b = await engine.append([ev(MARKET, 2, 'market:tick'), ev(ORDERS, 3)]);
    expect(a.map((e) => [e.stream, e.offset])).toEqual([
      [ORDERS, 1],
      [MARKET, 1],
      [ORDERS, 2],
    ]);
    expect(b.map((e) => [e.stream, e.offset])).toEqual([
      [MARKET, 2],
      [ORDERS, 3],
    ]);
    const read = await engine.read(ORDERS, 0, 100);
    expect(read.trimmed).toBe(false);
    if (!read.trimmed) expect(read.events.map((e) => [e.offset, e.data['i']])).toEqual([[1, 1], [2, 2], [3, 3]]);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 3, first: 1 });
    expect(await engine.head(MARKET)).toMatchObject({ offset: 2, first: 1 });
    expect((await engine.streams()).sort()).toEqual([MARKET, ORDERS].sort());
  });

  it('returns stored events in input order with epoch and a UTC ISO timestamp', async () => {
    const epoch = (await engine.head(ORDERS)).epoch;
    expect(epoch).toMatch(/^[0-9a-f]{16}$/);
    const stored = await engine.append([ev(ORDERS, 7)]);
    expect(stored).toEqual([
      { type: 'order:updated', stream: ORDERS, epoch, offset: 1, timestamp: expect.stringMatching(/Z$/), data: { i: 7 } },
    ]);
    expect(new Date(stored[0]!.timestamp).toISOString()).toBe(stored[0]!.timestamp);
    const read = await engine.read(ORDERS, 0, 10);
    expect(read).toEqual({ trimmed: false, events: stored });
  });

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

  it('resolves an empty append to [] without creating anything', async () => {
    expect(await engine.append([])).toEqual([]);
    expect(await engine.streams()).toEqual([]);
  });

  it('is atomic: an event that cannot be stored fails the whole call before anything is written', async () => {
    await engine.append([ev(ORDERS, 1)]);
    // A BigInt cannot be serialised to JSON: the third event fails the call.
    const bad: EventInput = { stream: ORDERS, type: 'order:updated', data: { n: 1n } };
    await expect(engine.append([ev(ORDERS, 2), ev(MARKET, 1, 'market:tick'), bad])).rejects.toThrow();
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 1 });
    expect(await engine.streams()).toEqual([ORDERS]);
    const next = await engine.append([ev(ORDERS, 3)]);
    expect(next[0]!.offset).toBe(2);
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
});

describe('RedisEngine listeners', () => {
  it('calls listeners after the commit with the stored events; a throwing one does not stop the others', async () => {
    const errors: unknown[] = [];
    const e = await openEngine({ onListenerError: (err) => errors.push(err) });
    const seen: StoredEvent[][] = [];
    const headsSeen: number[] = [];
    e.onAppend(() => {
      throw new Error('boom');
    });
    e.onAppend((events) => {
      seen.push([...events]);
    });
    e.onAppend(() => {
      void e.head(ORDERS).then((h) => headsSeen.push(h.offset));
    });
    const stored = await e.append([ev(ORDERS, 1), ev(ORDERS, 2)]);
    // The append resolves once this node's own listeners heard of it.
    expect(seen).toEqual([stored]);
    expect(errors).toHaveLength(1);
    await vi.waitFor(() => expect(headsSeen).toEqual([2]));
  });

  it('stops calling an unsubscribed listener', async () => {
    const calls: number[] = [];
    const off = engine.onAppend((events) => calls.push(events.length));
    const reset = vi.fn();
    const offReset = engine.onReset(reset);
    await engine.append([ev(ORDERS, 1)]);
    off();
    await engine.append([ev(ORDERS, 2)]);
    expect(calls).toEqual([1]);
    expect(reset).not.toHaveBeenCalled();
    offReset();
  });

  it('a failed append notifies nobody', async () => {
    const listener = vi.fn();
    engine.onAppend(listener);
    await expect(engine.append([{ stream: ORDERS, type: 'x', data: { n: 1n } }])).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    expect(listener).not.toHaveBeenCalled();
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
});

describe('RedisEngine read and trim', () => {
  beforeEach(async () => {
    await engine.append(Array.from({ length: 10 }, (_, k) => ev(ORDERS, k + 1)));
  });

  it('reads after an offset, honours limit, and returns [] at or past the head', async () => {
    const r = await engine.read(ORDERS, 3, 4);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([4, 5, 6, 7]);
    expect(await engine.read(ORDERS, 10, 5)).toEqual({ trimmed: false, events: [] });
    expect(await engine.read(ORDERS, 25, 5)).toEqual({ trimmed: false, events: [] });
  });

  it('reports an unknown stream as empty, with one epoch every node agrees on', async () => {
    const head = await engine.head('orders:nobody');
    expect(head).toEqual({ epoch: expect.stringMatching(/^[0-9a-f]{16}$/), offset: 0, first: 1 });
    const other = await openEngine();
    expect(await other.head('orders:nobody')).toEqual(head);
    expect(await engine.read('orders:nobody', 0, 10)).toEqual({ trimmed: false, events: [] });
    expect(await engine.read('orders:never-asked', 0, 10)).toEqual({ trimmed: false, events: [] });
    // The first append keeps the epoch the head promised.
    const [first] = await other.append([ev('orders:nobody', 1)]);
    expect(first).toMatchObject({ epoch: head.epoch, offset: 1 });
  });

  it('trims, moves first, and reports reads before first as trimmed', async () => {
    expect(await engine.trim(ORDERS, 4)).toBe(4);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 10, first: 5 });
    expect(await engine.read(ORDERS, 3, 10)).toEqual({ trimmed: true });
    expect(await engine.read(ORDERS, 0, 10)).toEqual({ trimmed: true });
    const r = await engine.read(ORDERS, 4, 2);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([5, 6]);
    expect(await engine.trim(ORDERS, 2)).toBe(0);
    expect(await engine.head(ORDERS)).toMatchObject({ first: 5 });
  });

  it('never moves first beyond head + 1, and offsets continue after a full trim', async () => {
    expect(await engine.trim(ORDERS, 50)).toBe(10);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 10, first: 11 });
    expect(await engine.read(ORDERS, 10, 5)).toEqual({ trimmed: false, events: [] });
    const [next] = await engine.append([ev(ORDERS, 11)]);
    expect(next!.offset).toBe(11);
    const r = await engine.read(ORDERS, 10, 5);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([11]);
    expect(await engine.trim('orders:nobody', 5)).toBe(0);
  });
});

describe('RedisEngine offsetBefore', () => {
  it('returns the highest offset appended strictly before a time, 0 if none', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2025-01-01T00:00:00.000Z'));
    await engine.append([ev(ORDERS, 1), ev(ORDERS, 2)]);
    vi.setSystemTime(new Date('2025-01-01T00:01:00.000Z'));
    await engine.append([ev(ORDERS, 3)]);
    vi.setSystemTime(new Date('2025-01-01T00:02:00.000Z'));
    await engine.append([ev(ORDERS, 4)]);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:00:00.000Z')).toBe(0);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:00:30.000Z')).toBe(2);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:01:00.000Z')).toBe(2);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:01:00.001Z')).toBe(3);
    expect(await engine.offsetBefore(ORDERS, '2030-01-01T00:00:00.000Z')).toBe(4);
    expect(await engine.offsetBefore('orders:nobody', '2030-01-01T00:00:00.000Z')).toBe(0);
  });

  it('stays correct over many events, after a trim, and when a node clock lags behind', async () => {
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
});

describe('RedisEngine snapshots', () => {
  it('saves, loads and replaces a snapshot', async () => {
    const epoch = (await engine.head(ORDERS)).epoch;
    expect(await engine.loadSnapshot(ORDERS)).toBeUndefined();
    const first = {
      stream: ORDERS,
      epoch,
      offset: 5,
      schemaVersion: 1,
      state: { orders: { a: { qty: '1.5' } } },
      createdAt: '2025-01-01T00:00:00.000Z',
    };
    await engine.saveSnapshot(first);
    expect(await engine.loadSnapshot(ORDERS)).toEqual(first);
    const second = { ...first, offset: 9, schemaVersion: 2, state: { orders: {} }, createdAt: '2025-01-02T00:00:00.000Z' };
    await engine.saveSnapshot(second);
    expect(await engine.loadSnapshot(ORDERS)).toEqual(second);
    expect(await engine.loadSnapshot(MARKET)).toBeUndefined();
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

  it('refuses to open when Redis cannot be reached, and every call fails after close', async () => {
    const nowhere = new RedisEngine({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 300 });
    await expect(nowhere.open()).rejects.toBeInstanceOf(EngineUnavailableError);
    await engine.close();
    await engine.close();
    await expect(engine.head(ORDERS)).rejects.toBeInstanceOf(EngineUnavailableError);
    await expect(engine.append([ev(ORDERS, 1)])).rejects.toBeInstanceOf(EngineUnavailableError);
    expect(await engine.health()).toMatchObject({ ok: false, detail: 'closed' });
  });
});
