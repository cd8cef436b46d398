import type { Rng } from './rng.js';
import type { MarketBar } from './market.js';

export type PatternType = 'SPRING' | 'UTAD' | 'SOS' | 'LPS' | 'SC' | 'AR' | 'ST';

/** A detected Wyckoff event, before it gets an id and a place on a stream. */
export interface Detection {
  readonly symbol: string;
  readonly pattern_type: PatternType;
  /** 70–95. */
  readonly confidence_score: number;
  readonly phase: string;
  readonly test_confirmed: boolean;
}

/** The Wyckoff phase each event belongs to. */
const PHASE: Record<PatternType, string> = { SC: 'A', AR: 'A', ST: 'B', SPRING: 'C', UTAD: 'C', SOS: 'D', LPS: 'D' };

const RANGE_BARS = 30;
const COOLDOWN_BARS = 20;

/**
 * A small, honest Wyckoff detector over a rolling trading range of one symbol:
 *  - SC (selling climax): a new range low on heavy volume;
 *  - AR (automatic rally): a bounce into the upper half of the range soon after an SC;
 *  - ST (secondary test): a return near the SC low on lighter volume, after an AR;
 *  - SPRING: a dip below the range low that closes back inside it;
 *  - UTAD: a push above the range high that closes back inside it;
 *  - SOS (sign of strength): a close above the range high on strong volume;
 *  - LPS (last point of support): a pullback to the broken high that holds, after an SOS.
 * Confidence (70–95) grows with the volume evidence, plus a seeded jitter.
 */
export class PatternDetector {
  readonly #prices: number[] = [];
  readonly #volumes: number[] = [];
  #sinceLast = COOLDOWN_BARS;
  #last: { type: PatternType; bars: number; level: number } | undefined;

  constructor(
    readonly symbol: string,
    private readonly rng: Rng,
  ) {}

  update(bar: MarketBar): Detection | undefined {
    const detection = this.#detect(bar);
    this.#prices.push(bar.priceNum);
    this.#volumes.push(bar.volumeNum);
    if (this.#prices.length > RANGE_BARS) {
      this.#prices.shift();
      this.#volumes.shift();
    }
    this.#sinceLast++;
    if (this.#last) this.#last = { ...this.#last, bars: this.#last.bars + 1 };
    if (!detection) return undefined;
    this.#sinceLast = 0;
    this.#last = { type: detection.type, bars: 0, level: detection.level };
    const volumeBonus = Math.min(15, Math.max(0, (detection.volumeRatio - 1) * 6));
    const confidence = Math.round(Math.min(95, 70 + volumeBonus + this.rng.next() * 10));
    return {
      symbol: this.symbol,
      pattern_type: detection.type,
      confidence_score: confidence,
      phase: PHASE[detection.type],
      test_confirmed: detection.type === 'ST' || detection.type === 'LPS' || (detection.type === 'SPRING' && detection.volumeRatio < 1),
    };
  }

  #detect(bar: MarketBar): { type: PatternType; level: number; volumeRatio: number } | undefined {
    if (this.#prices.length < RANGE_BARS || this.#sinceLast < COOLDOWN_BARS) return undefined;
    const p = bar.priceNum;
    const high = Math.max(...this.#prices);
    const low = Math.min(...this.#prices);
    const width = high - low;
    if (width <= 0) return undefined;
    const avgVolume = this.#volumes.reduce((a, b) => a + b, 0) / this.#volumes.length;
    const volumeRatio = avgVolume > 0 ? bar.volumeNum / avgVolume : 1;
    const prev = this.#prices.at(-1)!;
    const recentLow = Math.min(...this.#prices.slice(-3));
    const recentHigh = Math.max(...this.#prices.slice(-3));
    const olderLow = Math.min(...this.#prices.slice(0, -3));
    const olderHigh = Math.max(...this.#prices.slice(0, -3));
    const last = this.#last;

    if (last?.type === 'SC' && last.bars <= 15 && p > low + width * 0.6) return { type: 'AR', level: p, volumeRatio };
    if (last?.type === 'AR' && last.bars <= 20 && Math.abs(p - low) <= width * 0.15 && volumeRatio < 1.1) return { type: 'ST', level: p, volumeRatio };
    if (last?.type === 'SOS' && last.bars <= 20 && p < prev && p >= last.level - width * 0.1 && p <= last.level + width * 0.15) {
      return { type: 'LPS', level: p, volumeRatio };
    }
    if (p < low && volumeRatio > 1.8) return { type: 'SC', level: p, volumeRatio };
    if (p > high && volumeRatio > 1.4) return { type: 'SOS', level: high, volumeRatio };
    if (recentLow < olderLow && p > olderLow && p > prev) return { type: 'SPRING', level: recentLow, volumeRatio };
    if (recentHigh > olderHigh && p < olderHigh && p < prev) return { type: 'UTAD', level: recentHigh, volumeRatio };
    return undefined;
  }
}

/** The side a signal from this pattern trades, or undefined when the pattern is context only. */
export function signalSide(type: PatternType): 'buy' | 'sell' | undefined {
  switch (type) {
    case 'SPRING':
    case 'SOS':
    case 'LPS':
      return 'buy';
    case 'UTAD':
      return 'sell';
    case 'SC':
    case 'AR':
    case 'ST':
      return undefined;
  }
}
