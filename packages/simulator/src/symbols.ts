import { big, type Big } from './money.js';

/** What the simulator knows about one traded instrument. */
export interface SymbolSpec {
  readonly symbol: string;
  readonly assetClass: 'crypto' | 'equity';
  /** Opening price of the random walk. */
  readonly startPrice: string;
  /** Prices are multiples of this. */
  readonly tick: Big;
  /** Quantities are multiples of this. */
  readonly lot: Big;
  /** Volatility of one step of the walk (a fraction of price). */
  readonly sigma: number;
  /** Drift of one step. */
  readonly mu: number;
  /** Typical volume of one step, in lots. */
  readonly baseVolume: number;
  /** Isolated-margin leverage of positions in this symbol. */
  readonly leverage: Big;
  /** Default distance of a protective stop, as a fraction of the entry price. */
  readonly stopFraction: Big;
}

function spec(s: Omit<SymbolSpec, 'tick' | 'lot' | 'leverage' | 'stopFraction'> & { tick: string; lot: string; leverage: number; stopFraction: string }): SymbolSpec {
  return { ...s, tick: big(s.tick), lot: big(s.lot), leverage: big(s.leverage), stopFraction: big(s.stopFraction) };
}

/** The default universe: three crypto pairs and two equities. */
export const DEFAULT_SYMBOLS: readonly SymbolSpec[] = [
  spec({ symbol: 'BTC-USD', assetClass: 'crypto', startPrice: '42000.00', tick: '0.01', lot: '0.0001', sigma: 0.0016, mu: 0, baseVolume: 4000, leverage: 20, stopFraction: '0.012' }),
  spec({ symbol: 'ETH-USD', assetClass: 'crypto', startPrice: '2250.00', tick: '0.01', lot: '0.001', sigma: 0.0021, mu: 0, baseVolume: 6000, leverage: 20, stopFraction: '0.015' }),
  spec({ symbol: 'SOL-USD', assetClass: 'crypto', startPrice: '98.000', tick: '0.001', lot: '0.01', sigma: 0.0032, mu: 0, baseVolume: 9000, leverage: 10, stopFraction: '0.02' }),
  spec({ symbol: 'AAPL', assetClass: 'equity', startPrice: '189.50', tick: '0.01', lot: '1', sigma: 0.0009, mu: 0, baseVolume: 500, leverage: 5, stopFraction: '0.008' }),
  spec({ symbol: 'MSFT', assetClass: 'equity', startPrice: '415.20', tick: '0.01', lot: '1', sigma: 0.0008, mu: 0, baseVolume: 300, leverage: 5, stopFraction: '0.008' }),
];
