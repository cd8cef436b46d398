import Big from 'big.js';

/**
 * Number formatting for the desk. Money, prices and quantities arrive as decimal
 * strings and are formatted with big.js only: a float would round 0.1 + 0.2 and
 * large balances the way a trader must never see.
 */

const DASH = '—';

/** A Big for a wire decimal, or undefined when it is missing or not a number. */
export function toBig(value: unknown): Big | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  try {
    return new Big(typeof value === 'number' ? String(value) : (value as string));
  } catch {
    return undefined;
  }
}

/** `1234567.5` → `1,234,567.5` (the digits are never touched, only grouped). */
export function group(fixed: string): string {
  const negative = fixed.startsWith('-');
  const body = negative ? fixed.slice(1) : fixed;
  const [int = '0', frac] = body.split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${grouped}${frac !== undefined ? `.${frac}` : ''}`;
}

/** Fixed decimals with thousands separators; `—` when missing. */
export function formatDecimal(value: unknown, dp = 2): string {
  const b = toBig(value);
  if (!b) return DASH;
  const out = group(b.toFixed(dp));
  // "-0.00" reads as a loss that is not there.
  return /^-0(\.0+)?$/.test(out) ? out.slice(1) : out;
}

/** Money: two decimals, grouped. */
export function formatMoney(value: unknown): string {
  return formatDecimal(value, 2);
}

/** A signed change (P&L): `+1,250.00` / `-80.10`. */
export function formatSigned(value: unknown, dp = 2): string {
  const b = toBig(value);
  if (!b) return DASH;
  const text = formatDecimal(value, dp);
  return b.gt(0) && text !== formatDecimal(0, dp) ? `+${text}` : text;
}

/**
 * A price at the precision it was quoted (at least 2 decimals, at most 8): the wire
 * already carries the instrument's tick, so `98.125` stays `98.125`.
 */
export function formatPrice(value: unknown): string {
  const b = toBig(value);
  if (!b) return DASH;
  const raw = typeof value === 'string' ? value : b.toString();
  const dot = raw.indexOf('.');
  const dp = Math.min(8, Math.max(2, dot < 0 ? 0 : raw.length - dot - 1));
  return formatDecimal(b, dp);
}

/** A quantity without trailing zeros: `0.5000` → `0.5`, `3` → `3`. */
export function formatQty(value: unknown): string {
  const b = toBig(value);
  if (!b) return DASH;
  const fixed = b.toFixed(8).replace(/\.?0+$/, '');
  return group(fixed === '-0' ? '0' : fixed);
}

/** A percentage already in percent units: `82.456` → `82.46%`. */
export function formatPercent(value: unknown, dp = 2): string {
  const b = toBig(value);
  return b ? `${formatDecimal(b, dp)}%` : DASH;
}

/** -1, 0 or 1 for colouring gains and losses. */
export function sign(value: unknown): -1 | 0 | 1 {
  const b = toBig(value);
  if (!b) return 0;
  return b.gt(0) ? 1 : b.lt(0) ? -1 : 0;
}

/** The share `part / whole` in percent (0 when whole is 0 or missing). */
export function ratioPercent(part: unknown, whole: unknown): Big {
  const p = toBig(part);
  const w = toBig(whole);
  if (!p || !w || w.eq(0)) return new Big(0);
  return p.div(w).times(100);
}

/** How old something is, compactly: `now`, `4s`, `3m`, `2h`, `5d`. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 1000) return 'now';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** A wall-clock time in UTC, `14:03:27`, for tables and tooltips. */
export function formatTime(at: number | string | null | undefined): string {
  if (at === null || at === undefined) return DASH;
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (Number.isNaN(ms)) return DASH;
  return new Date(ms).toISOString().slice(11, 19);
}
