import type Big from 'big.js';
import { HUNDRED, ONE, ZERO, big, fixed } from './money.js';
import type { MarketBar } from './market.js';

/** The indicator names published on `indicators:<account>`. */
export const INDICATOR_NAMES = ['ema_20', 'rsi_14', 'vwap', 'pump_score'] as const;
export type IndicatorName = (typeof INDICATOR_NAMES)[number];

const EMA_PERIOD = 20;
const ALPHA = big(2).div(EMA_PERIOD + 1).round(12);
const RSI_PERIOD = 14;
/** VWAP over a rolling window of this many bars (a session VWAP never forgets). */
const VWAP_WINDOW = 120;
const VOLUME_WINDOW = 30;

/**
 * Indicators of one symbol, updated bar by bar in decimals (VWAP is a price, so all
 * of them stay in big.js for consistency). Values are decimal strings.
 */
export class IndicatorSet {
  #ema: Big | undefined;
  #avgGain = ZERO;
  #avgLoss = ZERO;
  #prev: Big | undefined;
  #bars = 0;
  readonly #vwapBars: Array<{ pv: Big; v: Big }> = [];
  #pv = ZERO;
  #v = ZERO;
  readonly #volumes: number[] = [];

  constructor(private readonly tickDp: number) {}

  update(bar: MarketBar): Record<IndicatorName, string> {
    const p = bar.price;
    // EMA: ema += alpha × (p − ema), alpha = 2 / (n + 1).
        // Rounded each bar: an unrounded recurrence would grow digits (and cost) without end.
    this.#ema = this.#ema === undefined ? p : this.#ema.plus(ALPHA.times(p.minus(this.#ema))).round(12);

    // RSI with Wilder's smoothing.
    if (this.#prev !== undefined) {
      const change = p.minus(this.#prev);
      const gain = change.gt(0) ? change : ZERO;
      const loss = change.lt(0) ? change.abs() : ZERO;
      const n = Math.min(this.#bars, RSI_PERIOD);
      this.#avgGain = this.#avgGain.times(Math.max(n - 1, 0)).plus(gain).div(Math.max(n, 1)).round(12);
      this.#avgLoss = this.#avgLoss.times(Math.max(n - 1, 0)).plus(loss).div(Math.max(n, 1)).round(12);
    }
    this.#prev = p;
    this.#bars++;
    let rsi = big(50);
    if (this.#avgLoss.eq(0) && this.#avgGain.gt(0)) rsi = HUNDRED;
    else if (this.#avgLoss.gt(0)) rsi = HUNDRED.minus(HUNDRED.div(ONE.plus(this.#avgGain.div(this.#avgLoss))));

    // Rolling VWAP.
    const pv = p.times(bar.volume);
    this.#vwapBars.push({ pv, v: bar.volume });
    this.#pv = this.#pv.plus(pv);
    this.#v = this.#v.plus(bar.volume);
    if (this.#vwapBars.length > VWAP_WINDOW) {
      const old = this.#vwapBars.shift()!;
      this.#pv = this.#pv.minus(old.pv);
      this.#v = this.#v.minus(old.v);
    }
    const vwap = this.#v.gt(0) ? this.#pv.div(this.#v) : p;

    // Pump score: this bar's volume against the recent average, 0–100 (50 = twice the average).
    const avg = this.#volumes.length > 0 ? this.#volumes.reduce((a, b) => a + b, 0) / this.#volumes.length : bar.volumeNum;
    this.#volumes.push(bar.volumeNum);
    if (this.#volumes.length > VOLUME_WINDOW) this.#volumes.shift();
    const ratio = avg > 0 ? big(bar.volumeNum.toFixed(8)).div(avg.toFixed(8)) : ONE;
    const score = ratio.lte(1) ? ZERO : ratio.minus(1).times(50);
    const pump = score.gt(HUNDRED) ? HUNDRED : score;

    return {
      ema_20: fixed(this.#ema, this.tickDp),
      rsi_14: fixed(rsi, 2),
      vwap: fixed(vwap, this.tickDp),
      pump_score: fixed(pump, 2),
    };
  }
}
