/**
 * Reconnect delays: 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s for every later attempt,
 * each spread by ±`jitter` so that a thousand clients cut at once do not come back
 * in the same millisecond.
 */
export interface BackoffOptions {
  /** Delays of the first attempts, in ms; the last one repeats. @default [1000, 2000, 4000, 8000, 16000, 30000] */
  readonly delaysMs: readonly number[];
  /** Fraction of each delay added or removed at random (0.2 = ±20%). @default 0.2 */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { delaysMs: [1000, 2000, 4000, 8000, 16000, 30000], jitter: 0.2 };

/** The wait before reconnect attempt `attempt` (1-based). `random` returns [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const { delaysMs, jitter } = options;
  const base = delaysMs[Math.min(Math.max(attempt, 1), delaysMs.length) - 1] ?? 0;
  const spread = base * jitter;
  return Math.max(0, Math.round(base - spread + random() * 2 * spread));
}
