import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from '../src/index.js';

const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

describe('reconnect backoff', () => {
  it('waits 1, 2, 4, 8, 16 s, then 30 s for every later attempt', () => {
    const delays = Array.from({ length: 12 }, (_, i) => backoffDelay(i + 1, noJitter));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000, 30000, 30000]);
  });

  it('treats attempt 0 or below as the first attempt', () => {
    expect(backoffDelay(0, noJitter)).toBe(1000);
    expect(backoffDelay(-3, noJitter)).toBe(1000);
  });

  it('spreads each delay by at most the jitter: random 0 gives the lower bound, 0.999… the upper', () => {
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0)).toBe(800);
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0.999_999)).toBe(1200);
    expect(backoffDelay(6, DEFAULT_BACKOFF, () => 0)).toBe(24_000);
    expect(backoffDelay(9, DEFAULT_BACKOFF, () => 0.999_999)).toBe(36_000);
  });

  it('keeps every delay within ±jitter of its base, for any attempt, schedule and random value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 120_000 }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, delaysMs, jitter, r) => {
          const base = delaysMs[Math.min(attempt, delaysMs.length) - 1]!;
          const delay = backoffDelay(attempt, { delaysMs, jitter }, () => r);
          expect(delay).toBeGreaterThanOrEqual(Math.floor(base * (1 - jitter)));
          expect(delay).toBeLessThanOrEqual(Math.ceil(base * (1 + jitter)));
        },
      ),
    );
  });
});
