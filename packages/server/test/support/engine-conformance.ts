import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EventInput } from '@tradesync/protocol';
import { EngineUnavailableError, type Engine, type StoredEvent } from '../../src/engines/engine.js';

/*
 * What every `Engine` must do, written once and run against each engine
 * (embedded-engine.test.ts, redis-engine.test.ts). Behaviours only one engine has
 * (durability across a crash, several nodes over one Redis, lost history, outages)
 * stay in that engine's own test file.
 */

export const ORDERS = 'orders:acc1';
export const MARKET = 'market:BTC-USD';

export function ev(stream: string, i: number, type = 'order:updated'): EventInput {
  return { stream, type, data: { i } };
}

export interface EngineOpenOptions {
  /** Receives what a throwing `onAppend` listener threw. */
  readonly onListenerError?: (error: unknown) => void;
}

export interface EngineHarness {
  /**
   * Creates and opens an engine over empty storage. Storage is emptied by the caller's
   * own hooks before each test (a fresh data dir, a flushed Redis); the suite closes
   * every engine it opened after each test.
   */
  open(options?: EngineOpenOptions): Promise<Engine>;
  /**
   * Closes `engine` and opens a new one over the same storage. Without it, the
   * close-and-reopen behaviour is not checked.
   */
  reopen?(engine: Engine): Promise<Engine>;
}

/** Registers the behaviours every engine shares, as `${label} <area>` describe blocks. */
export function describeEngineConformance(label: string, harness: EngineHarness): void {
  let opened: Engine[] = [];
  let engine: Engine;

  const open = async (options?: EngineOpenOptions): Promise<Engine> => {
    const e = await harness.open(options);
    opened.push(e);
    return e;
  };

  describe(`${label} conformance`, () => {
    beforeEach(async () => {
      engine = await open();
    });

    afterEach(async () => {
      vi.useRealTimers();
      for (const e of opened) await e.close();
      opened = [];
    });

    describe('append', () => {
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

      it('returns stored events in input order with epoch and a UTC ISO timestamp, exactly as a read returns them', async () => {
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

      it('resolves an empty append to [] without creating anything', async () => {
        expect(await engine.append([])).toEqual([]);
        expect(await engine.streams()).toEqual([]);
      });

      it('is atomic: an event that cannot be stored fails the whole call and nothing of it is written', async () => {
        await engine.append([ev(ORDERS, 1)]);
        // A BigInt cannot be serialised to JSON: the third event fails the call.
        const bad: EventInput = { stream: ORDERS, type: 'order:updated', data: { n: 1n } };
        await expect(engine.append([ev(ORDERS, 2), ev(MARKET, 1, 'market:tick'), bad])).rejects.toThrow();
        expect(await engine.head(ORDERS)).toMatchObject({ offset: 1 });
        expect(await engine.streams()).toEqual([ORDERS]);
        const next = await engine.append([ev(ORDERS, 3)]);
        expect(next[0]!.offset).toBe(2);
      });
    });

    describe('listeners', () => {
      it('calls listeners after the commit with the stored events; a throwing one does not stop the others', async () => {
        const errors: unknown[] = [];
        const e = await open({ onListenerError: (err) => errors.push(err) });
        const seen: StoredEvent[][] = [];
        const headsSeen: number[] = [];
        e.onAppend(() => {
          throw new Error('boom');
        });
        e.onAppend((events) => {
          seen.push([...events]);
        });
        // Reading from inside a listener proves the commit happened before it was called.
        e.onAppend(() => {
          void e.head(ORDERS).then((h) => headsSeen.push(h.offset));
        });
        const stored = await e.append([ev(ORDERS, 1), ev(ORDERS, 2)]);
        // The append resolves once this engine's own listeners heard of it.
        expect(seen).toEqual([stored]);
        expect(errors).toHaveLength(1);
        await vi.waitFor(() => expect(headsSeen).toEqual([2]));
      });

      it('stops calling an unsubscribed listener, and calls no reset listener while history is intact', async () => {
        const calls: number[] = [];
        const off = engine.onAppend((events) => calls.push(events.length));
        const reset = vi.fn();
        const offReset = engine.onReset(reset);
        await engine.append([ev(ORDERS, 1)]);
        off();
        await engine.append([ev(ORDERS, 2)]);
        expect(calls).toEqual([1]);
        expect(reset).not.toHaveBeenCalled();
        expect(typeof offReset).toBe('function');
        offReset();
      });

      it('a failed append notifies nobody', async () => {
        const listener = vi.fn();
        engine.onAppend(listener);
        await expect(engine.append([{ stream: ORDERS, type: 'x', data: { n: 1n } }])).rejects.toThrow();
        // Give an asynchronous notification (another node's, say) the time to arrive.
        await new Promise((r) => setTimeout(r, 50));
        expect(listener).not.toHaveBeenCalled();
      });
    });

    describe('read and trim', () => {
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

      it('reports an unknown stream as empty, and its first append keeps the epoch the head promised', async () => {
        const head = await engine.head('orders:nobody');
        expect(head).toEqual({ epoch: expect.stringMatching(/^[0-9a-f]{16}$/), offset: 0, first: 1 });
        expect(await engine.read('orders:nobody', 0, 10)).toEqual({ trimmed: false, events: [] });
        expect(await engine.read('orders:never-asked', 0, 10)).toEqual({ trimmed: false, events: [] });
        const [first] = await engine.append([ev('orders:nobody', 1)]);
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
        // Trimming below first again deletes nothing and does not move first back.
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

    describe('offsetBefore', () => {
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
    });

    describe('snapshots', () => {
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
    });

    describe('lifecycle', () => {
      it('closes idempotently, then fails every call with EngineUnavailableError and reports itself unhealthy', async () => {
        await engine.close();
        await engine.close();
        await expect(engine.head(ORDERS)).rejects.toBeInstanceOf(EngineUnavailableError);
        await expect(engine.append([ev(ORDERS, 1)])).rejects.toBeInstanceOf(EngineUnavailableError);
        expect(await engine.health()).toMatchObject({ ok: false, detail: 'closed' });
      });

      const { reopen } = harness;
      if (reopen) {
        it('keeps the epoch, events, offsets, first and snapshot across close and reopen', async () => {
          await engine.append([ev(ORDERS, 1), ev(ORDERS, 2), ev(MARKET, 1, 'market:tick')]);
          await engine.trim(ORDERS, 1);
          const epoch = (await engine.head(ORDERS)).epoch;
          await engine.saveSnapshot({ stream: ORDERS, epoch, offset: 1, schemaVersion: 1, state: [1], createdAt: 'now' });

          const again = await reopen(engine);
          opened.push(again);
          expect(await again.health()).toEqual({ ok: true });
          expect(await again.head(ORDERS)).toEqual({ epoch, offset: 2, first: 2 });
          expect(await again.head(MARKET)).toMatchObject({ offset: 1, first: 1 });
          const r = await again.read(ORDERS, 1, 10);
          expect(r.trimmed).toBe(false);
          if (!r.trimmed) expect(r.events).toMatchObject([{ offset: 2, epoch, data: { i: 2 } }]);
          expect((await again.loadSnapshot(ORDERS))?.state).toEqual([1]);
          const [next] = await again.append([ev(ORDERS, 3)]);
          expect(next).toMatchObject({ offset: 3, epoch });
        });
      }
    });
  });
}
