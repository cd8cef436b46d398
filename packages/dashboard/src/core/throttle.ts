/**
 * A sliding-window rate limit for toasts: at most `limit` in any `windowMs`. Pure
 * (time is passed in), so it is tested without timers. What it refuses is dropped,
 * not queued: a toast shown late is noise, and the panels show everything anyway.
 */
export interface Throttle {
  /** true when one more may pass now (and counts it). */
  allow(now: number): boolean;
  /** How many passed within the window ending at `now`. */
  count(now: number): number;
  reset(): void;
}

export const TOAST_LIMIT = { limit: 3, windowMs: 10_000 } as const;

export function createThrottle(limit: number = TOAST_LIMIT.limit, windowMs: number = TOAST_LIMIT.windowMs): Throttle {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
  if (!(windowMs > 0)) throw new RangeError('windowMs must be positive');
  // The times of the last passes, oldest first; never more than `limit` long.
  let passed: number[] = [];
  const prune = (now: number) => {
    while (passed.length > 0 && now - passed[0]! >= windowMs) passed.shift();
  };
  return {
    allow(now) {
      prune(now);
      if (passed.length >= limit) return false;
      passed.push(now);
      return true;
    },
    count(now) {
      prune(now);
      return passed.length;
    },
    reset() {
      passed = [];
    },
  };
}
