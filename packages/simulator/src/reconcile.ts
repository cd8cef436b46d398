import type { EventInput, Order, OrdersState, PortfolioState, Position } from '@tradesync/protocol';
import { iso } from './clock.js';
import { orderEntity, type PaperBroker } from './broker.js';
import { parseDecimal } from './money.js';
import type { StateReader } from './sink.js';

/**
 * What reconciliation needs from a broker: its truth about positions and open
 * orders, as wire entities. The paper broker is one; a real broker's adapter would
 * map its API into the same shapes.
 */
export interface BrokerAdapter {
  readonly accounts: readonly string[];
  positions(account: string): readonly Position[];
  openOrders(account: string): readonly Order[];
}

export class PaperBrokerAdapter implements BrokerAdapter {
  constructor(private readonly broker: PaperBroker) {}

  get accounts(): string[] {
    return [...this.broker.accounts.keys()];
  }

  positions(account: string): Position[] {
    const a = this.broker.account(account);
    return [...a.positions.values()].map((p) => this.broker.positionEntity(a, p) as Position);
  }

  openOrders(account: string): Order[] {
    return [...this.broker.account(account).orders.values()].map((o) => orderEntity(o) as Order);
  }
}

export interface Difference {
  readonly field: string;
  readonly gateway: unknown;
  readonly broker: unknown;
}

/** Position fields that must agree (marks move every step and are republished on their own). */
const POSITION_FIELDS = ['side', 'quantity', 'avg_price'] as const;
const ORDER_FIELDS = ['symbol', 'side', 'order_type', 'quantity', 'price', 'filled_quantity', 'status'] as const;

function same(a: unknown, b: unknown): boolean {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (x && y) return x.eq(y);
  return a === b;
}

function differences(gateway: Record<string, unknown> | undefined, broker: Record<string, unknown> | undefined, fields: readonly string[]): Difference[] {
  return fields.filter((f) => !same(gateway?.[f] ?? null, broker?.[f] ?? null)).map((field) => ({ field, gateway: gateway?.[field] ?? null, broker: broker?.[field] ?? null }));
}

/**
 * Compares the gateway's materialized positions and open orders with the broker's,
 * and for each difference emits a `reconciliation_mismatch` alert plus the events
 * that make the gateway tell the broker's truth again (seed 003's "periodic
 * reconciliation with broker positions").
 */
export class Reconciler {
  #seq = 0;

  constructor(
    private readonly broker: BrokerAdapter,
    private readonly state: StateReader,
    private readonly runId: string,
  ) {}

  run(nowMs: number): EventInput[] {
    const out: EventInput[] = [];
    for (const account of this.broker.accounts) {
      this.#positions(account, nowMs, out);
      this.#orders(account, nowMs, out);
    }
    return out;
  }

  #positions(account: string, nowMs: number, out: EventInput[]): void {
    const state = this.state.stateOf(`portfolio:${account}`) as PortfolioState | undefined;
    const gateway = state?.positions ?? {};
    const broker = new Map(this.broker.positions(account).map((p) => [p.symbol, p]));
    const stream = `portfolio:${account}`;
    for (const symbol of new Set([...Object.keys(gateway), ...broker.keys()])) {
      const g = Object.hasOwn(gateway, symbol) ? gateway[symbol] : undefined;
      const b = broker.get(symbol);
      const diff = differences(g, b, POSITION_FIELDS);
      if (diff.length === 0) continue;
      const what = !b ? `the gateway shows a ${symbol} position the broker does not have` : !g ? `the broker has a ${symbol} position the gateway does not show` : `the ${symbol} position differs (${diff.map((d) => d.field).join(', ')})`;
      this.#alert(account, 'position', symbol, what, diff, nowMs, out);
      out.push(b ? { stream, type: 'position:updated', data: { ...b } } : { stream, type: 'position:closed', data: { symbol, reason: 'reconciliation' } });
    }
  }

  #orders(account: string, nowMs: number, out: EventInput[]): void {
    const state = this.state.stateOf(`orders:${account}`) as OrdersState | undefined;
    const gateway = state?.orders ?? {};
    const broker = new Map(this.broker.openOrders(account).map((o) => [o.order_id, o]));
    const stream = `orders:${account}`;
    for (const id of new Set([...Object.keys(gateway), ...broker.keys()])) {
      const g = Object.hasOwn(gateway, id) ? gateway[id] : undefined;
      const b = broker.get(id);
      const diff = differences(g, b, ORDER_FIELDS);
      if (diff.length === 0) continue;
      const what = !b ? `the gateway shows order ${id} open; the broker does not` : !g ? `the broker has open order ${id}; the gateway does not show it` : `order ${id} differs (${diff.map((d) => d.field).join(', ')})`;
      this.#alert(account, 'order', id, what, diff, nowMs, out);
      out.push(b ? { stream, type: 'order:updated', data: { ...b } } : { stream, type: 'order:closed', data: { order_id: id, status: 'cancelled', reason: 'not open at the broker (reconciliation)' } });
    }
  }

  #alert(account: string, entity: 'position' | 'order', key: string, what: string, diff: Difference[], nowMs: number, out: EventInput[]): void {
    out.push({
      stream: `alerts:${account}`,
      type: 'reconciliation_mismatch',
      data: {
        id: `recon-${account}-${this.runId}-${++this.#seq}`,
        severity: 'warning',
        message: `Reconciliation: ${what}; corrected to the broker's state`,
        entity,
        key,
        ...(entity === 'position' ? { symbol: key } : { order_id: key }),
        differences: diff,
        corrected: true,
        account,
        timestamp: iso(nowMs),
      },
    });
  }
}
