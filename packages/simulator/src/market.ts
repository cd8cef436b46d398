import type { Rng } from './rng.js';
import { big, dec, decimalsOf, toStep, type Big } from './money.js';
import type { SymbolSpec } from './symbols.js';

/** One step of one symbol: the tick as published plus the numbers the detectors read. */
export interface MarketBar {
  readonly symbol: string;
  readonly price: Big;
  readonly volume: Big;
  /** The price as published: exactly the tick's decimals. */
  readonly priceText: string;
  /** The same values as numbers, for the statistics of indicators and pattern detectors (never for money). */
  readonly priceNum: number;
  readonly volumeNum: number;
}

/**
 * Geometric Brownian motion per symbol, with volume. The walk runs in floats (it is
 * statistics, not money); every published price is snapped to the symbol's tick as
 * a decimal, and the next step starts from that snapped price, so a replay from the
 * published ticks reproduces the walk exactly.
 */
export class MarketModel {
  readonly #prices = new Map<string, Big>();

  constructor(
    readonly symbols: readonly SymbolSpec[],
    private readonly rng: Rng,
  ) {
    for (const s of symbols) this.#prices.set(s.symbol, big(s.startPrice));
  }

  price(symbol: string): Big | undefined {
    return this.#prices.get(symbol);
  }

  /** Moves one symbol one step. */
  step(spec: SymbolSpec): MarketBar {
    const last = this.#prices.get(spec.symbol) ?? big(spec.startPrice);
    const z = this.rng.normal();
    // A rare shock gives the pattern detectors climaxes and springs to find.
    const shock = this.rng.chance(0.01) ? (this.rng.chance(0.5) ? -1 : 1) * spec.sigma * (4 + 4 * this.rng.next()) : 0;
    const factor = Math.exp(spec.mu - (spec.sigma * spec.sigma) / 2 + spec.sigma * z + shock);
    let price = toStep(last.times(factor.toFixed(12)), spec.tick);
    if (price.lte(0)) price = spec.tick;
    this.#prices.set(spec.symbol, price);

    // Volume: log-normal around the base, larger on big moves, now and then a spike ("pump").
    const spike = this.rng.chance(0.02) ? 4 + 6 * this.rng.next() : 1;
    const lots = Math.max(1, Math.round(spec.baseVolume * Math.exp(0.35 * this.rng.normal()) * (1 + 40 * Math.abs(Math.log(factor))) * spike));
    const volume = spec.lot.times(lots);
    return { symbol: spec.symbol, price, volume, priceText: price.toFixed(decimalsOf(spec.tick)), priceNum: Number(dec(price)), volumeNum: Number(dec(volume)) };
  }
}
