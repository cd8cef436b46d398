import { describe, expect, it } from 'vitest';
import { createThrottle, TOAST_LIMIT } from '../src/core/throttle.js';

describe('toast throttle', () => {
  it('lets at most 3 through in any 10 seconds by default', () => {
    const t = createThrottle();
    expect(TOAST_LIMIT).toEqual({ limit: 3, windowMs: 10_000 });
    expect([0, 100, 200, 300, 400].map((at) => t.allow(at))).toEqual([true, true, true, false, false]);
  });

  it('opens again when the oldest pass leaves the window (sliding, not fixed buckets)', () => {
    const t = createThrottle(3, 10_000);
    t.allow(0);
    t.allow(4000);
    t.allow(8000);
    expect(t.allow(9999)).toBe(false);
    expect(t.allow(10_000)).toBe(true); // the pass at 0 has left
    expect(t.allow(12_000)).toBe(false); // 4000, 8000, 10000 are still in
    expect(t.allow(14_000)).toBe(true);
  });

  it('does not count refusals against the limit', () => {
    const t = createThrottle(1, 1000);
    expect(t.allow(0)).toBe(true);
    for (let at = 1; at < 1000; at += 100) expect(t.allow(at)).toBe(false);
    expect(t.allow(1000)).toBe(true);
  });

  it('never lets more than the limit through in any window, whatever the arrival times', () => {
    const t = createThrottle(3, 10_000);
    const passed: number[] = [];
    let at = 0;
    for (let i = 0; i < 2000; i++) {
      at += (i * 7919) % 1500;
      if (t.allow(at)) passed.push(at);
    }
    for (let i = 3; i < passed.length; i++) expect(passed[i]! - passed[i - 3]!).toBeGreaterThanOrEqual(10_000);
  });

  it('counts and resets', () => {
    const t = createThrottle(2, 100);
    t.allow(0);
    expect(t.count(50)).toBe(1);
    expect(t.count(100)).toBe(0);
    t.allow(100);
    t.allow(101);
    t.reset();
    expect(t.allow(102)).toBe(true);
  });

  it('rejects a nonsensical limit or window', () => {
    expect(() => createThrottle(0, 1000)).toThrow(RangeError);
    expect(() => createThrottle(3, 0)).toThrow(RangeError);
  });
});
