import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyEvents, initialState, type StreamState } from '@tradesync/protocol';
import { StreamReplica, type LiveEvent } from '../src/index.js';

const STREAM = 'orders:acme';
const EPOCH = 'e1';
const TS = '2025-01-01T00:00:00.000Z';

/**
 * A contiguous range 1..n of order events whose final state depends on their order:
 * the same few orders are updated, filled and closed again and again.
 */
function makeEvents(n: number, epoch = EPOCH): LiveEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const offset = i + 1;
    const orderId = `o${offset % 3}`;
    const data =
      offset % 4 === 0
        ? { order_id: orderId, status: 'filled' }
        : {
            order_id: orderId,
            symbol: 'BTC-USD',
            side: 'buy',
            order_type: 'limit',
            quantity: `${offset}`,
            price: '100.00',
            filled_quantity: '0',
            status: 'open',
            session_id: null,
            created_at: TS,
          };
    return { type: offset % 4 === 0 ? 'order:closed' : 'order:updated', stream: STREAM, epoch, offset, timestamp: TS, data };
  });
}

const inOrder = (events: readonly LiveEvent[]): StreamState => applyEvents(initialState('orders'), events);

/** A replica that completed a first sync at offset 0 of `EPOCH` and is live. */
function liveReplica(maxBuffered = 10_000): StreamReplica {
  const replica = new StreamReplica(STREAM, 'orders', maxBuffered);
  replica.beginSync();
  replica.applySubscribed({ epoch: EPOCH, offset: 0, recovered: false, snapshot: { epoch: EPOCH, offset: 0, state: initialState('orders') } });
  return replica;
}

describe('a stream replica', () => {
  it('keeps a bounded number of unreduced events when nobody reads its state, and its state stays exact', () => {
    const replica = liveReplica();
    const events = makeEvents(5000);
    let most = 0;
    for (const event of events) {
      expect(replica.applyLive(event)).toBe('applied');
      most = Math.max(most, replica.unreduced);
    }
    expect(most).toBeLessThanOrEqual(256);
    expect(replica.state).toEqual(inOrder(events));
  });

  it('applies live events in offset order and drops a duplicate', () => {
    const events = makeEvents(3);
    const replica = liveReplica();
    expect(events.map((e) => replica.applyLive(e))).toEqual(['applied', 'applied', 'applied']);
    expect(replica.applyLive(events[1]!)).toBe('duplicate');
    expect(replica.offset).toBe(3);
    expect(replica.state).toEqual(inOrder(events));
  });

  it('reports a gap when a live event skips an offset, and holds it for after the resync', () => {
    const events = makeEvents(4);
    const replica = liveReplica();
    replica.applyLive(events[0]!);
    expect(replica.applyLive(events[2]!)).toBe('gap');
    expect(replica.holding).toBe(true);
    expect(replica.offset).toBe(1);
    // The resync replays offset 2 (and 3 it already holds); 4 arrives live.
    const result = replica.applySubscribed({ epoch: EPOCH, offset: 3, recovered: true, events: [events[1]!, events[2]!] });
    expect(result).toMatchObject({ recovered: true, gap: false });
    expect(replica.applyLive(events[3]!)).toBe('applied');
    expect(replica.state).toEqual(inOrder(events));
  });

  it('asks for a resync when a live event comes from another epoch', () => {
    const replica = liveReplica();
    replica.applyLive(makeEvents(1)[0]!);
    expect(replica.applyLive(makeEvents(1, 'e2')[0]!)).toBe('gap');
    expect(replica.holding).toBe(true);
    const fresh = { orders: { x: { order_id: 'x' } } };
    const result = replica.applySubscribed({ epoch: 'e2', offset: 7, recovered: false, snapshot: { epoch: 'e2', offset: 7, state: fresh } });
    expect(result.recovered).toBe(false);
    expect(replica.position).toEqual({ epoch: 'e2', offset: 7 });
    expect(replica.state).toEqual(fresh);
  });

  it('buffers live events while syncing and applies those after the snapshot in order', () => {
    const events = makeEvents(6);
    const replica = new StreamReplica(STREAM, 'orders', 100);
    replica.beginSync();
    for (const e of [events[5]!, events[3]!, events[4]!, events[2]!]) expect(replica.applyLive(e)).toBe('buffered');
    const result = replica.applySubscribed({ epoch: EPOCH, offset: 3, recovered: false, snapshot: { epoch: EPOCH, offset: 3, state: inOrder(events.slice(0, 3)) } });
    expect(result.applied.map((e) => e.offset)).toEqual([4, 5, 6]);
    expect(replica.holding).toBe(false);
    expect(replica.state).toEqual(inOrder(events));
  });

  it('asks for a resync when its buffer overflowed while syncing', () => {
    const events = makeEvents(5);
    const replica = new StreamReplica(STREAM, 'orders', 2);
    replica.beginSync();
    for (const e of events.slice(1)) replica.applyLive(e);
    const result = replica.applySubscribed({ epoch: EPOCH, offset: 1, recovered: false, snapshot: { epoch: EPOCH, offset: 1, state: inOrder(events.slice(0, 1)) } });
    expect(result.gap).toBe(true);
    expect(replica.holding).toBe(true);
  });

  it('asks for a resync when a recovered reply ends before the offset it announces', () => {
    const events = makeEvents(3);
    const replica = liveReplica();
    replica.beginSync();
    const result = replica.applySubscribed({ epoch: EPOCH, offset: 3, recovered: true, events: [events[0]!] });
    expect(result.gap).toBe(true);
    expect(replica.offset).toBe(1);
  });

  it('ends, for any permutation and duplication of a contiguous range delivered while syncing and live, in the in-order state, applying each offset exactly once', () => {
    const scenario = fc
      .integer({ min: 1, max: 30 })
      .chain((n) =>
        fc.record({
          n: fc.constant(n),
          // Every event at least once, some twice or three times, in any order.
          deliveries: fc
            .array(fc.integer({ min: 1, max: n }), { maxLength: n * 2 })
            .chain((extra) => fc.shuffledSubarray([...Array.from({ length: n }, (_, i) => i + 1), ...extra], { minLength: n + extra.length })),
          // Where the subscribed reply arrives among the deliveries, and how far its history goes.
          replyAt: fc.integer({ min: 0, max: 3 * n }),
          replyHead: fc.integer({ min: 0, max: n }),
          recovered: fc.boolean(),
        }),
      );
    fc.assert(
      fc.property(scenario, ({ n, deliveries, replyAt, replyHead, recovered }) => {
        const events = makeEvents(n);
        const byOffset = (o: number) => events[o - 1]!;
        const replica = new StreamReplica(STREAM, 'orders', 10_000);
        const applied: number[] = [];
        /** The server: answers a subscribe with what it holds after `since` (up to `head`). */
        const answer = (head: number) => {
          const since = replica.offset;
          const reply =
            recovered || replica.epoch !== undefined
              ? { epoch: EPOCH, offset: head, recovered: true, events: events.slice(since, head) }
              : { epoch: EPOCH, offset: head, recovered: false, snapshot: { epoch: EPOCH, offset: head, state: inOrder(events.slice(0, head)) } };
          if (replica.epoch === undefined && reply.recovered) {
            // A first subscribe has nothing to resume from: the server sends a snapshot at 0.
            return replica.applySubscribed({ epoch: EPOCH, offset: 0, recovered: false, snapshot: { epoch: EPOCH, offset: 0, state: initialState('orders') } });
          }
          return replica.applySubscribed(reply);
        };
        const record = (result: ReturnType<typeof answer>, snapshotTo?: number) => {
          if (snapshotTo !== undefined) applied.push(...Array.from({ length: snapshotTo }, (_, i) => i + 1));
          applied.push(...result.applied.map((e) => e.offset));
          return result.gap;
        };
        const sync = (head: number) => {
          replica.beginSync();
          const before = replica.epoch;
          const result = answer(head);
          const snapshotTo = before === undefined ? replica.offset - result.applied.length : undefined;
          let gap = record(result, snapshotTo);
          // A gap after a reply: the client resyncs (the server now holds everything).
          while (gap) {
            replica.beginSync();
            gap = record(answer(n));
          }
        };
        replica.beginSync();
        let replied = false;
        deliveries.forEach((offset, i) => {
          if (i === replyAt) {
            sync(replyHead);
            replied = true;
          }
          const outcome = replica.applyLive(byOffset(offset));
          if (outcome === 'applied') applied.push(offset);
          if (outcome === 'gap') sync(Math.max(offset, replica.offset));
        });
        if (!replied) sync(replyHead);
        // Anything still held behind a gap is fetched by one last resync.
        if (replica.offset < n || replica.holding) sync(n);
        expect(replica.offset).toBe(n);
        expect(replica.state).toEqual(inOrder(events));
        expect(applied).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      }),
      { numRuns: 300 },
    );
  });
});
