/** Where the simulator's timestamps come from. `advance()` is called once per step. */
export interface Clock {
  now(): number;
  advance(): void;
}

/** Simulated time: start + n × dt. The same start and dt give the same timestamps. */
export class SimClock implements Clock {
  #steps = 0;
  constructor(
    readonly startMs: number,
    readonly dtMs: number,
  ) {}

  now(): number {
    return this.startMs + this.#steps * this.dtMs;
  }

  advance(): void {
    this.#steps++;
  }
}

/** Wall time for a live run, never going backwards (so created_at orders stay ordered). */
export class WallClock implements Clock {
  #last = 0;
  constructor(private readonly source: () => number = Date.now) {}

  now(): number {
    return Math.max(this.#last, this.source());
  }

  advance(): void {
    this.#last = this.now();
  }
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
