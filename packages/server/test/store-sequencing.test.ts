import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { applyEvents, initialState } from '@tradesync/protocol';
import type { Engine, ReadResult, StoredEvent, StreamHead } from '../src/engines/engine.js';
import { defaultMigrations } from '../src/state/migrations.js';
import { StreamStore } from '../src/state/store.js';

/**
 * The store's intake, without a real engine: what the tail delivers (late, twice, past a
 * hole, of a new epoch) is judged by the protocol Sequencer and holes are read back from
 * the log, so the store applies every offset once, in order.
 */

const STREAM = 'market:AAPL';
const tick = (offset: number, epoch = 'e1'): StoredEvent => ({
  type: 'market:tick',
  stream: STREAM,
  epoch,
  offset,
  timestamp: '2025-01-01T00:00:00.000Z',
  data: { symbol: 'AAPL', price: `${100 + offset}.00`, timestamp: '2025-01-01T00:00:00.000Z' },
});

/** An engine whose log is an array and whose tail the test drives by hand. */
class HandEngine implements Engine {
  readonly kind = 'hand';
  epoch = 'e1';
  log: StoredEvent[] = [];
  #tail: ((events: readonly StoredEvent[]) => void) | undefined;
  #reset: ((stream: string, head: StreamHead) => void) | undefined;
  /** Reads wait for this, so a test can deliver events while a catch-up is in flight. */
  gate: Promise<void> = Promise.resolve();

  head(): Promise<StreamHead> {
    return Promise.resolve({ epoch: this.epoch, offset: this.log.length, first: 1 });
  }
  async read(_stream: string, after: number, limit: number): Promise<ReadResult> {
    await this.gate;
    return { trimmed: false, events: this.log.slice(after, after + limit) };
  }
  streams(): Promise<string[]> {
    return Promise.resolve([]);
  }
  loadSnapshot(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  onAppend(listener: (events: readonly StoredEvent[]) => void): () => void {
    this.#tail = listener;
    return () => (this.#tail = undefined);
  }
  onReset(listener: (stream: string, head: StreamHead) => void): () => void {
    this.#reset = listener;
    return () => (this.#reset = undefined);
  }
  open(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  append(): Promise<StoredEvent[]> {
    return Promise.reject(new Error('the store never appends'));
  }
  saveSnapshot(): Promise<void> {
    return Promise.resolve();
  }
  trim(): Promise<number> {
    return Promise.resolve(0);
  }
  offsetBefore(): Promise<number> {
    return Promise.resolve(0);
  }
  health(): Promise<{ ok: boolean }> {
    return Promise.resolve({ ok: true });
  }
  deliver(...events: StoredEvent[]): void {
    this.#tail?.(events);
  }
  reportReset(): void {
    void this.head().then((head) => this.#reset?.(STREAM, head));
  }
}

async function storeOver(engine: HandEngine): Promise<{ store: StreamStore; applied: number[] }> {
  const store = new StreamStore(engine, defaultMigrations(), { memoryWindow: 100 }, pino({ level: 'silent' }));
  await store.load();
  const applied: number[] = [];
  store.on('events', (events) => applied.push(...events.map((a) => a.event.offset)));
  return { store, applied };
}

describe('the stream store intake', () => {
  it('applies the next event, skips a repeated one, and reads a hole back from the log', async () => {
    const engine = new HandEngine();
    engine.log = [1, 2, 3, 4].map((o) => tick(o));
    const { store, applied } = await storeOver(engine);
    engine.deliver(tick(1), tick(1), tick(2));
    expect(applied).toEqual([1, 2]);
    engine.deliver(tick(4));
    await vi.waitFor(() => expect(store.get(STREAM)?.head).toBe(4));
    expect(applied).toEqual([1, 2, 3, 4]);
    store.close();
  });

  it('holds what arrives during a catch-up and applies it after, in order, once', async () => {
    const engine = new HandEngine();
    engine.log = [1, 2, 3, 4, 5, 6].map((o) => tick(o));
    let open!: () => void;
    engine.gate = new Promise((resolve) => (open = resolve));
    const { store, applied } = await storeOver(engine);
    engine.deliver(tick(3)); // a hole: 1 and 2 are read from the log
    engine.deliver(tick(6), tick(4), tick(4), tick(5));
    expect(applied).toEqual([]);
    open();
    await vi.waitFor(() => expect(store.get(STREAM)?.head).toBe(6));
    expect(applied).toEqual([1, 2, 3, 4, 5, 6]);
    store.close();
  });

  it('rebuilds a stream whose epoch changed and continues with the new epoch only', async () => {
    const engine = new HandEngine();
    engine.log = [1, 2].map((o) => tick(o));
    const { store } = await storeOver(engine);
    const resets: string[] = [];
    store.on('reset', (entry) => resets.push(`${entry.epoch}@${entry.head}`));
    engine.deliver(tick(1), tick(2));
    engine.epoch = 'e2';
    engine.log = [tick(1, 'e2')];
    engine.deliver(tick(2, 'e2'), tick(3, 'e1'));
    engine.log.push(tick(2, 'e2'));
    await vi.waitFor(() => expect(store.get(STREAM)).toMatchObject({ epoch: 'e2', head: 2 }));
    expect(resets).toEqual(['e2@2']);
    engine.deliver(tick(3, 'e2'));
    expect(store.get(STREAM)).toMatchObject({ epoch: 'e2', head: 3 });
    store.close();
  });

  it('ends with the exact state of the log however the tail loses, repeats and reorders events', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            copies: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
            keys: fc.array(fc.nat(), { minLength: 2 * n, maxLength: 2 * n }),
            resets: fc.array(fc.nat({ max: 2 * n }), { maxLength: 2 }),
          }),
        ),
        async ({ n, copies, keys, resets }) => {
          const engine = new HandEngine();
          engine.log = Array.from({ length: n }, (_, i) => tick(i + 1));
          const { store, applied } = await storeOver(engine);
          const list: StoredEvent[] = [];
          for (let o = 1; o <= n; o++) for (let c = 0; c < copies[o - 1]!; c++) list.push(tick(o));
          const arrivals = list.map((e, i) => ({ e, k: keys[i]! })).sort((a, b) => a.k - b.k).map(({ e }) => e);
          arrivals.forEach((event, i) => {
            // A reset reported for the same epoch (a `reach`, a spurious notice) changes nothing.
            if (resets.includes(i)) engine.reportReset();
            engine.deliver(event);
          });
          // The last event arrives (or a sweep notices it): whatever is missing is read back.
          engine.deliver(tick(n));
          await vi.waitFor(() => expect(store.get(STREAM)?.head).toBe(n), { interval: 1 });
          await new Promise((resolve) => setTimeout(resolve, 0));
          expect(applied).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect(store.stateOf(STREAM)).toEqual(applyEvents(initialState('market'), engine.log));
          store.close();
        },
      ),
      { numRuns: 100 },
    );
  });
});
