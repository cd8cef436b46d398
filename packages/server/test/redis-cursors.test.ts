import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../src/engines/engine.js';
import { Cursors, type LogPage, type Step } from '../src/engines/redis/cursors.js';

/** The Redis engine's delivery decisions, without Redis: notifications, fills, epochs, regressions. */

const S = 's';
const ev = (offset: number, epoch = 'e1', stream = S): StoredEvent => ({ type: 'market:tick', stream, epoch, offset, timestamp: '2025-01-01T00:00:00.000Z', data: {} });
const page = (events: StoredEvent[], head = events.at(-1)?.offset ?? 0, epoch = 'e1'): LogPage => ({ status: 'ok', epoch, head, first: 1, events });
const delivered = (steps: readonly Step[]): number[] => steps.flatMap((s) => (s.kind === 'deliver' ? s.events.map((e) => e.offset) : []));

describe('Redis delivery cursors', () => {
  it('deliver every offset once, in order, however notifications are lost, repeated or delayed, once fills read the log', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            copies: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: n, maxLength: n }),
            keys: fc.array(fc.nat(), { minLength: 2 * n, maxLength: 2 * n }),
            // How many notifications later a fill's read comes back, and whether it fails.
            latency: fc.array(fc.nat({ max: 5 }), { minLength: 1, maxLength: 20 }),
            failures: fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
            maxPending: fc.integer({ min: 1, max: 80 }),
          }),
        ),
        ({ n, copies, keys, latency, failures, maxPending }) => {
          const cursors = new Cursors(maxPending);
          cursors.start(S, 'e1', 0);
          const out: number[] = [];
          const take = (steps: readonly Step[]) => {
            const offsets = delivered(steps);
            // Every delivery continues what was delivered before.
            offsets.forEach((o, i) => expect(o).toBe((out.at(-1) ?? 0) + 1 + i));
            out.push(...offsets);
          };
          // The log holds 1..n; a fill reads after its cursor, `latency` notifications later.
          let fill: { after: number; dueIn: number; fails: boolean } | undefined;
          let fills = 0;
          const startFill = (canFail = true) => {
            const after = cursors.beginFill(S);
            if (after === undefined) return;
            fill = { after, dueIn: latency[fills % latency.length]!, fails: canFail && failures[fills % failures.length]! };
            fills++;
          };
          const finishFill = () => {
            const f = fill!;
            fill = undefined;
            if (!f.fails) {
              const outcome = cursors.page(S, page(Array.from({ length: n - f.after }, (_, i) => ev(f.after + 1 + i)), n));
              expect(outcome.next).toBe('done');
              take(outcome.steps);
            }
            const end = cursors.endFill(S, f.fails);
            take(end.steps);
            if (end.again) startFill();
          };
          const list: StoredEvent[] = [];
          for (let o = 1; o <= n; o++) for (let c = 0; c < copies[o - 1]!; c++) list.push(ev(o));
          const arrivals = list.map((e, i) => ({ e, k: keys[i]! })).sort((a, b) => a.k - b.k).map(({ e }) => e);
          for (const event of arrivals) {
            const plan = cursors.accept([event]);
            take(plan.steps);
            if (plan.fill.has(S)) startFill();
            if (fill && fill.dueIn-- === 0) finishFill();
          }
          while (fill) finishFill();
          // The periodic sweep: whatever is still missing is filled from the log.
          for (let round = 0; round < 3 && cursors.sweep(S, { epoch: 'e1', head: n }) === 'fill'; round++) {
            startFill(false);
            while (fill) finishFill();
          }
          expect(out).toEqual(Array.from({ length: n }, (_, i) => i + 1));
          expect(cursors.position(S)).toEqual({ epoch: 'e1', offset: n, filling: false, waiting: 0 });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('delivers the next notification, drops an old one, and asks for a fill past a hole', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 3);
    expect(cursors.accept([ev(4), ev(4), ev(2)])).toEqual({ steps: [{ kind: 'deliver', events: [ev(4)] }], fill: new Set() });
    expect(cursors.accept([ev(7)])).toEqual({ steps: [], fill: new Set([S]) });
    expect(cursors.beginFill(S)).toBe(4);
    // A fill in flight: notifications wait, nothing more is asked for.
    expect(cursors.accept([ev(8)])).toEqual({ steps: [], fill: new Set() });
    expect(delivered(cursors.page(S, page([ev(5), ev(6), ev(7)])).steps)).toEqual([5, 6, 7]);
    expect(cursors.endFill(S, false)).toEqual({ steps: [{ kind: 'deliver', events: [ev(8)] }], again: false });
    expect(cursors.position(S)).toEqual({ epoch: 'e1', offset: 8, filling: false, waiting: 0 });
  });

  it('follows a stream it never saw from offset 1', () => {
    const cursors = new Cursors();
    expect(delivered(cursors.accept([ev(1, 'e1', 'new'), ev(2, 'e1', 'new')]).steps)).toEqual([1, 2]);
    expect(cursors.accept([ev(3, 'e1', 'other')]).fill).toEqual(new Set(['other']));
  });

  it('resets to a new epoch seen in a notification, delivering what came before first, and then drops notifications of the old epoch', () => {
    const cursors = new Cursors();
    cursors.start(S, 'old', 5);
    const plan = cursors.accept([ev(6, 'old'), ev(3, 'new'), ev(4, 'new')]);
    expect(plan.steps).toEqual([
      { kind: 'deliver', events: [ev(6, 'old')] },
      { kind: 'reset', stream: S, from: 'old', head: { epoch: 'new', offset: 2, first: 1 } },
      { kind: 'deliver', events: [ev(3, 'new'), ev(4, 'new')] },
    ]);
    // Published before the flush, arriving after: not another reset.
    expect(cursors.accept([ev(7, 'old')])).toEqual({ steps: [], fill: new Set() });
    expect(cursors.observe(S, 'old', 7)).toEqual({ steps: [], fill: new Set() });
  });

  it('learns epochs from replies: a first sight with events asks for a fill, another epoch resets', () => {
    const cursors = new Cursors();
    expect(cursors.observe(S, 'e1', 0)).toEqual({ steps: [], fill: new Set() });
    expect(cursors.observe('t', 'e1', 4)).toEqual({ steps: [], fill: new Set(['t']) });
    expect(cursors.position('t')).toMatchObject({ epoch: 'e1', offset: 0 });
    expect(cursors.observe(S, 'e1', 9).steps).toEqual([]);
    expect(cursors.observe(S, 'e2', 9).steps).toEqual([{ kind: 'reset', stream: S, from: 'e1', head: { epoch: 'e2', offset: 9, first: 1 } }]);
  });

  it('during a fill: goes on from the oldest kept event when the log was trimmed, resets on another epoch, reports a vanished stream', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 2);
    cursors.beginFill(S);
    expect(cursors.page(S, { status: 'trimmed', epoch: 'e1', head: 20, first: 10 })).toEqual({ steps: [], next: 'more', trimmed: { from: 2, first: 10 } });
    expect(cursors.position(S)?.offset).toBe(9);
    expect(delivered(cursors.page(S, page([ev(10), ev(11)], 20)).steps)).toEqual([10, 11]);
    // Notification of the new epoch during the fill keeps waiting until the fill ends.
    expect(cursors.page(S, page([], 5, 'e2'))).toEqual({ steps: [{ kind: 'reset', stream: S, from: 'e1', head: { epoch: 'e2', offset: 5, first: 1 } }], next: 'done' });
    expect(cursors.accept([ev(6, 'e2')]).steps).toEqual([]);
    expect(cursors.endFill(S, false)).toEqual({ steps: [{ kind: 'deliver', events: [ev(6, 'e2')] }], again: false });
    cursors.beginFill(S);
    expect(cursors.page(S, { status: 'unknown' }).next).toBe('vanished');
  });

  it('after a failed fill asks for no retry at once, but the next notification past the hole starts one', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 0);
    cursors.accept([ev(3)]);
    cursors.beginFill(S);
    expect(cursors.endFill(S, true)).toEqual({ steps: [], again: false });
    expect(cursors.accept([ev(4)]).fill).toEqual(new Set([S]));
  });

  it('drops notifications beyond maxPending during a fill and reads them from the log instead', () => {
    const cursors = new Cursors(2);
    cursors.start(S, 'e1', 0);
    cursors.beginFill(S);
    cursors.accept([ev(2), ev(3), ev(4), ev(5)]);
    expect(delivered(cursors.page(S, page([ev(1)])).steps)).toEqual([1]);
    expect(cursors.endFill(S, false)).toEqual({ steps: [], again: true });
    expect(cursors.beginFill(S)).toBe(1);
    expect(delivered(cursors.page(S, page([ev(2), ev(3), ev(4), ev(5)])).steps)).toEqual([2, 3, 4, 5]);
  });

  it('judges a sweep: gone in Redis, another epoch, a head gone backwards (not while filling), events to fill, nothing', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 5);
    expect(cursors.sweep(S, { epoch: undefined, head: 0 })).toBe('vanished');
    expect(cursors.sweep('unknown', { epoch: undefined, head: 0 })).toBe('none');
    expect(cursors.sweep('unknown', { epoch: 'e1', head: 3 })).toBe('observe');
    expect(cursors.sweep(S, { epoch: 'e2', head: 5 })).toBe('observe');
    expect(cursors.sweep(S, { epoch: 'e1', head: 4 })).toBe('regressed');
    expect(cursors.sweep(S, { epoch: 'e1', head: 7 })).toBe('fill');
    expect(cursors.sweep(S, { epoch: 'e1', head: 5 })).toBe('none');
    cursors.beginFill(S);
    expect(cursors.regressed(S, { epoch: 'e1', head: 4 })).toBe(false);
  });

  it('resets after a regression only when the script gave a new epoch and the cursor did not move meanwhile', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 5);
    // Another node had already fixed nothing: same epoch back.
    expect(cursors.afterRegression(S, { epoch: 'e1' }, { epoch: 'e1', offset: 3, first: 1 })).toBeUndefined();
    expect(cursors.afterRegression(S, { epoch: 'e1' }, { epoch: 'e9', offset: 3, first: 1 })).toEqual({
      kind: 'reset',
      stream: S,
      from: 'e1',
      head: { epoch: 'e9', offset: 3, first: 1 },
    });
    expect(cursors.afterRegression(S, { epoch: 'e1' }, { epoch: 'e10', offset: 3, first: 1 })).toBeUndefined();
    expect(cursors.position(S)).toMatchObject({ epoch: 'e9', offset: 3 });
  });

  it('tells appends their offsets were delivered, or can no longer be (another epoch, an unknown stream)', () => {
    const cursors = new Cursors();
    cursors.start(S, 'e1', 5);
    expect(cursors.delivered(S, 'e1', 5)).toBe(true);
    expect(cursors.delivered(S, 'e1', 6)).toBe(false);
    expect(cursors.delivered(S, 'e0', 6)).toBe(true);
    expect(cursors.delivered('unknown', 'e1', 1)).toBe(true);
  });
});
