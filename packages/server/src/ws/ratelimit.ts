/**
 * A token bucket: `rate` tokens a second, holding at most `burst`. One message costs
 * one token. The clock is injectable so tests need not wait.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  take(): boolean {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Rate-limit drops are counted over this window to tell a burst from a flood. */
const RATE_ABUSE_WINDOW_MS = 10_000;

/** What the rate limit makes of one message: served, dropped (and answered), or the flood that closes the connection. */
export type RateVerdict = 'admitted' | 'dropped' | 'flood';

/**
 * A connection's message rate: a token bucket, and a count of the messages it dropped
 * in the current abuse window. Every dropped message is answered; more drops than a
 * burst's worth within one window is a flood that goes on, fast or slow.
 */
export class MessageRate {
  readonly #bucket: TokenBucket;
  #droppedInWindow = 0;
  #windowStart = 0;

  constructor(
    messagesPerSecond: number,
    private readonly burst: number,
    now?: () => number,
  ) {
    this.#bucket = new TokenBucket(messagesPerSecond, burst, now);
  }

  /** Judges one message; `wallNow` dates the abuse window. */
  take(wallNow = Date.now()): RateVerdict {
    if (this.#bucket.take()) return 'admitted';
    if (wallNow - this.#windowStart > RATE_ABUSE_WINDOW_MS) {
      this.#windowStart = wallNow;
      this.#droppedInWindow = 0;
    }
    return ++this.#droppedInWindow > this.burst ? 'flood' : 'dropped';
  }
}
