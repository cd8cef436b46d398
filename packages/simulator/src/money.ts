import Big from 'big.js';

/**
 * Decimal helpers over big.js. Money, prices and quantities are Big inside the
 * simulator and decimal strings on the wire; floats never touch them.
 */
export type { Big };
export const ZERO = new Big(0);
export const ONE = new Big(1);
export const HUNDRED = new Big(100);

/** Internal precision of money amounts (cash, margin, P&L, average prices). */
const MONEY_DP = 8;

export function big(value: Big | string | number): Big {
  return new Big(value);
}

/** Normal notation, never an exponent, trailing zeros kept as the value has them. */
export function dec(value: Big): string {
  return value.toFixed();
}

/** Rounds to `dp` places (half up) and prints exactly that many. */
export function fixed(value: Big, dp: number): string {
  return value.toFixed(dp, Big.roundHalfUp);
}

export function roundDown(value: Big, dp = MONEY_DP): Big {
  return value.round(dp, Big.roundDown);
}

export function roundUp(value: Big, dp = MONEY_DP): Big {
  return value.round(dp, Big.roundUp);
}

export function round(value: Big, dp = MONEY_DP): Big {
  return value.round(dp, Big.roundHalfUp);
}

/** Snaps a value to a multiple of `step` (e.g. a price tick or lot size). */
export function toStep(value: Big, step: Big, mode: 'down' | 'nearest' = 'nearest'): Big {
  const units = value.div(step).round(0, mode === 'down' ? Big.roundDown : Big.roundHalfUp);
  return units.times(step);
}

export function isMultipleOf(value: Big, step: Big): boolean {
  return value.mod(step).eq(0);
}

export function max(a: Big, b: Big): Big {
  return a.gt(b) ? a : b;
}

export function min(a: Big, b: Big): Big {
  return a.lt(b) ? a : b;
}

/** Parses a wire decimal; undefined when it is not one. */
export function parseDecimal(value: unknown): Big | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return new Big(value);
  if (typeof value !== 'string' || !/^-?\d+(\.\d+)?$/.test(value)) return undefined;
  return new Big(value);
}

/** Decimal places of a tick size such as 0.01 → 2. */
export function decimalsOf(step: Big): number {
  const s = step.toFixed();
  const dot = s.indexOf('.');
  return dot < 0 ? 0 : s.length - dot - 1;
}

