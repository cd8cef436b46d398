import { toBig } from './format.js';

/**
 * Price and indicator history for the chart, one point per second (the last value
 * within a second wins). Bounded: past `max` points the oldest fifth is dropped at
 * once and the buffer says so (`resets`), so the chart reloads instead of updating.
 */
export interface Point {
  readonly time: number;
  readonly value: number;
}

export class PointBuffer {
  points: Point[] = [];
  /** Bumped whenever points were dropped or inserted out of order: redraw all. */
  resets = 0;
  /** Bumped on every accepted push: nothing to draw while it has not moved. */
  version = 0;

  constructor(readonly max = 3600) {}

  /** Adds a value at `timeMs`; a decimal string is read with big.js. */
  push(timeMs: number, value: unknown): void {
    const b = toBig(value);
    if (!b || !Number.isFinite(timeMs)) return;
    const point = { time: Math.floor(timeMs / 1000), value: b.toNumber() };
    this.version++;
    const last = this.points.at(-1);
    if (!last || point.time > last.time) {
      this.points.push(point);
    } else if (point.time === last.time) {
      this.points[this.points.length - 1] = point;
    } else {
      // Late (a backfill or a replay): insert in order, then redraw.
      const index = this.points.findIndex((p) => p.time >= point.time);
      if (this.points[index]?.time === point.time) this.points[index] = point;
      else this.points.splice(index, 0, point);
      this.resets++;
    }
    if (this.points.length > this.max) {
      this.points = this.points.slice(Math.floor(this.max / 5));
      this.resets++;
    }
  }

  /** The points at or after `time` (the chart's last applied time). */
  since(time: number): Point[] {
    let i = this.points.length;
    while (i > 0 && this.points[i - 1]!.time >= time) i--;
    return this.points.slice(i);
  }
}

export const EMA_INDICATOR = 'ema_20';

/** Price and EMA buffers per symbol, with a change listener for the chart. */
export class ChartSeries {
  readonly #price = new Map<string, PointBuffer>();
  readonly #ema = new Map<string, PointBuffer>();
  readonly #listeners = new Set<() => void>();

  price(symbol: string): PointBuffer {
    return this.#get(this.#price, symbol);
  }

  ema(symbol: string): PointBuffer {
    return this.#get(this.#ema, symbol);
  }

  /** Forget an account's EMA lines (account switch); prices are public and stay. */
  clearIndicators(): void {
    this.#ema.clear();
    this.notify();
  }

  #get(map: Map<string, PointBuffer>, symbol: string): PointBuffer {
    let buffer = map.get(symbol);
    if (!buffer) {
      buffer = new PointBuffer();
      map.set(symbol, buffer);
    }
    return buffer;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called once per frame by the desk when any point was added. */
  notify(): void {
    for (const listener of this.#listeners) listener();
  }
}
