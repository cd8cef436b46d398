import type { EventInput } from '@tradesync/protocol';
import { unrealizedPnl, type PaperAccount, type PaperPosition } from './broker.js';
import { HUNDRED, ZERO, big, dec, fixed, max, type Big } from './money.js';

/** Heat above which the desk takes no new entries (percent of equity at risk). */
export const MAX_HEAT = big(10);
/** Risk a campaign (one trading session) may take, percent of equity. */
export const CAMPAIGN_RISK_LIMIT = big(5);

/** What the position loses if its protective stop is hit (never negative). */
export function positionRisk(p: PaperPosition): Big {
  const perUnit = p.side === 'long' ? p.avg_price.minus(p.stop_price) : p.stop_price.minus(p.avg_price);
  return max(perUnit, ZERO).times(p.quantity);
}

export function equity(account: PaperAccount): Big {
  let sum = account.cash;
  for (const p of account.positions.values()) sum = sum.plus(unrealizedPnl(p));
  return sum;
}

/** Percent of equity at risk over these positions ("heat"). */
export function heatOf(positions: Iterable<PaperPosition>, accountEquity: Big): Big {
  let risk = ZERO;
  for (const p of positions) risk = risk.plus(positionRisk(p));
  if (risk.eq(0)) return ZERO;
  if (accountEquity.lte(0)) return HUNDRED;
  return risk.div(accountEquity).times(HUNDRED);
}

/**
 * The portfolio totals: equity, P&L, heat and the capacity left under MAX_HEAT.
 * `total_value_usd` is exactly the balance's total plus the positions' unrealized P&L
 * as published, so a dashboard can check one against the others.
 */
export function portfolioTotals(account: PaperAccount): Record<string, string> {
  let unrealized = ZERO;
  for (const p of account.positions.values()) unrealized = unrealized.plus(unrealizedPnl(p));
  const value = account.cash.plus(unrealized);
  const heat = heatOf(account.positions.values(), value);
  const capacity = max(MAX_HEAT.minus(heat), ZERO);
  return {
    total_value_usd: dec(value),
    unrealized_pnl: dec(unrealized),
    realized_pnl: dec(account.realized),
    total_heat: fixed(heat, 2),
    available_capacity: fixed(capacity, 2),
    max_heat: fixed(MAX_HEAT, 2),
    positions_count: String(account.positions.size),
  };
}

export function campaignOf(account: PaperAccount, sessionId: string): Record<string, unknown> {
  const positions = [...account.positions.values()].filter((p) => p.session_id === sessionId);
  const risk = heatOf(positions, equity(account));
  return {
    campaign_id: `${sessionId}-campaign`,
    session_id: sessionId,
    risk_allocated: fixed(risk, 2),
    risk_limit: fixed(CAMPAIGN_RISK_LIMIT, 2),
    utilization: fixed(risk.div(CAMPAIGN_RISK_LIMIT).times(HUNDRED), 2),
    positions_count: positions.length,
    symbols: positions.map((p) => p.symbol),
    status: 'ACTIVE',
  };
}

/** Pushes events whose content changed since the last push, so quiet marks cost nothing. */
export class ChangeFilter {
  readonly #last = new Map<string, string>();

  push(out: EventInput[], event: EventInput, key = `${event.stream}\u0000${event.type}`): void {
    const fingerprint = JSON.stringify(event.data);
    if (this.#last.get(key) === fingerprint) return;
    this.#last.set(key, fingerprint);
    out.push(event);
  }
}
