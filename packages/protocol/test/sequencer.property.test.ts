import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Sequencer, type Sequenced } from '../src/sequencer.js';

const ev = (offset: number, epoch = 'e1'): Sequenced => ({ epoch, offset });

/** A delivery of events 1..n with duplicates, reordering and losses, and holds/drains in between. */
const deliveryArb = fc.integer({ min: 1, max: 60 }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    // Each event delivered 0 (lost), 1 or 2 times, at a random position.
    copies: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
    order: fc.array(fc.nat(), { minLength: 2 * n, maxLength: 2 * n }),
    // Before which deliveries the consumer starts holding (a resync) or drains.
    holds: fc.array(fc.nat({ max: 2 * n }), { maxLength: 4 }),
    drains: fc.array(fc.nat({ max: 2 * n }), { maxLength: 4 }),
  }),
);

function deliveries(n: number, copies: readonly number[], order: readonly number[]): Sequenced[] {
  const list: Sequenced[] = [];
  for (let offset = 1; offset <= n; offset++) for (let c = 0; c < copies[offset - 1]!; c++) list.push(ev(offset));
  // Shuffle by the random keys.
  return list.map((e, i) => ({ e, k: order[i] ?? i })).sort((a, b) => a.k - b.k).map(({ e }) => e);
}

describe('Sequencer', () => {
  it('hands out every offset at most once, in order, with no hole, however events arrive, and reaches the head once the log fills the losses', () => {
    fc.assert(
      fc.property(deliveryArb, ({ n, copies, order, holds, drains }) => {
        const seq = new Sequencer<Sequenced>();
        seq.moveTo('e1', 0);
        const applied: number[] = [];
        const list = deliveries(n, copies, order);
        list.forEach((event, i) => {
          if (holds.includes(i)) seq.hold();
          if (drains.includes(i)) for (const e of seq.drain().ready) applied.push(e.offset);
          if (seq.offer(event) === 'applied') applied.push(event.offset);
        });
        for (const e of seq.drain().ready) applied.push(e.offset);
        // In order, each once, starting at 1.
        expect(applied).toEqual(Array.from({ length: applied.length }, (_, i) => i + 1));
        expect(seq.head).toBe(applied.length);
        // Everything up to the first loss arrived, so it was all applied.
        const firstLost = copies.findIndex((c) => c === 0);
        expect(seq.head).toBe(firstLost === -1 ? n : firstLost);
        // The authority fills the losses (read in order from the log), then the kept rest drains.
        for (let offset = seq.head + 1; offset <= n; offset++) {
          const taken = seq.take(ev(offset));
          if (taken === 'applied') applied.push(offset);
          for (const e of seq.drain().ready) {
            applied.push(e.offset);
            offset = e.offset;
          }
        }
        expect(applied).toEqual(Array.from({ length: n }, (_, i) => i + 1));
        expect(seq.holding).toBe(false);
        expect(seq.kept).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('never keeps more than maxKept events, and reports a gap after dropping any', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(fc.integer({ min: 2, max: 40 }), { minLength: 1, maxLength: 60 }), (maxKept, offsets) => {
        const seq = new Sequencer<Sequenced>(maxKept, { epoch: 'e1', offset: 0 });
        seq.hold();
        for (const offset of offsets) {
          expect(seq.offer(ev(offset))).toBe('buffered');
          expect(seq.kept).toBeLessThanOrEqual(maxKept);
        }
        const { ready, gap } = seq.drain();
        // Offset 1 never came: nothing continues the head.
        expect(ready).toEqual([]);
        expect(gap).toBe(true);
        if (offsets.length > maxKept) expect(seq.kept).toBe(0);
      }),
    );
  });

  it('judges live events: next applied, old duplicate, past a hole a gap that starts holding', () => {
    const seq = new Sequencer<Sequenced>(Number.POSITIVE_INFINITY, { epoch: 'e1', offset: 5 });
    expect(seq.offer(ev(6))).toBe('applied');
    expect(seq.offer(ev(6))).toBe('duplicate');
    expect(seq.offer(ev(3))).toBe('duplicate');
    expect(seq.offer(ev(9))).toBe('gap');
    expect(seq.holding).toBe(true);
    expect(seq.offer(ev(7))).toBe('buffered');
    expect(seq.drain()).toEqual({ ready: [ev(7)], gap: true });
    expect(seq.take(ev(8))).toBe('applied');
    expect(seq.drain()).toEqual({ ready: [ev(9)], gap: false });
    expect(seq.head).toBe(9);
  });

  it('treats another epoch as a gap, and after moving to it applies the kept events of that epoch only', () => {
    const seq = new Sequencer<Sequenced>(Number.POSITIVE_INFINITY, { epoch: 'old', offset: 10 });
    expect(seq.offer(ev(3, 'new'))).toBe('gap');
    expect(seq.offer(ev(11, 'old'))).toBe('buffered');
    expect(seq.take(ev(1, 'new'))).toBe('gap');
    // A snapshot of the new epoch at offset 2 arrives.
    seq.moveTo('new', 2);
    expect(seq.drain()).toEqual({ ready: [ev(3, 'new')], gap: false });
    expect(seq.offer(ev(4, 'new'))).toBe('applied');
  });

  it('forgets what it kept on clear, keeping its position', () => {
    const seq = new Sequencer<Sequenced>(Number.POSITIVE_INFINITY, { epoch: 'e1', offset: 1 });
    seq.offer(ev(5));
    seq.clear();
    expect({ kept: seq.kept, holding: seq.holding, head: seq.head }).toEqual({ kept: 0, holding: false, head: 1 });
  });
});

describe('Sequencer with jumps (a conflated subscription)', () => {
  it('takes any later offset of its epoch as next, still drops old and repeated ones, and keeps offsets rising', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 80 }), fc.array(fc.nat({ max: 80 }), { maxLength: 3 }), (offsets, holds) => {
        const seq = new Sequencer<Sequenced>();
        seq.jumps = true;
        seq.moveTo('e1', 0);
        const applied: number[] = [];
        offsets.forEach((offset, i) => {
          if (holds.includes(i)) seq.hold();
          if (seq.offer(ev(offset)) === 'applied') applied.push(offset);
        });
        for (const e of seq.drain().ready) applied.push(e.offset);
        for (let i = 1; i < applied.length; i++) expect(applied[i]!).toBeGreaterThan(applied[i - 1]!);
        expect(seq.head).toBe(Math.max(0, ...applied));
        expect(seq.holding).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('still reports another epoch as a gap', () => {
    const seq = new Sequencer<Sequenced>();
    seq.jumps = true;
    seq.moveTo('e1', 5);
    expect(seq.offer(ev(9))).toBe('applied');
    expect(seq.offer(ev(12, 'e2'))).toBe('gap');
    expect(seq.take(ev(20, 'e2'))).toBe('gap');
  });
});
