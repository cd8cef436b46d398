import { describe, expect, it, vi } from 'vitest';
import type { Alert, AlertsState, EventInput, OrdersState, PortfolioState } from '@tradesync/protocol';
import { order, position, publish, startGateway, TestClient, type TestGateway } from '@tradesync/testing';
import { PaperBrokerAdapter, SimClock, Simulator } from '../src/index.js';
import { big } from '../src/money.js';
import { START } from './support.js';

/**
 * Seed 003: "automatic state sync on startup". A gateway restarted over a stored state
 * that no longer matches the broker (the broker traded, or the gateway lost reports,
 * while it was down) must not serve that state as the truth: when the simulator starts,
 * before its first step, it compares the broker with the gateway's materialized streams
 * and publishes, per difference, one `reconciliation_mismatch` alert and the event that
 * makes the gateway tell the broker's truth.
 */

/** A later run than the one that wrote the stored state: its ids (which carry the run) never collide with that run's. */
const RESTART = START + 86_400_000;

const mismatches = (gw: TestGateway, account: string): Alert[] =>
  ((gw.gateway.store.stateOf(`alerts:${account}`) as AlertsState).alerts ?? []).filter((a) => a.alert_type === 'reconciliation_mismatch');

/** Fills a market order at the broker without telling the gateway (its reports are dropped). */
function tradeBehindTheGatewaysBack(sim: Simulator): { limitId: string } {
  const unreported: EventInput[] = [];
  const now = sim.clock.now();
  sim.broker.setMark('AAPL', big('190.00'));
  sim.broker.setMark('MSFT', big('415.00'));
  sim.broker.place('demo', { symbol: 'AAPL', side: 'buy', order_type: 'market', quantity: big('10'), session_id: 'manual' }, now, unreported);
  // Partial fills happen: match until the market order is done.
  while ([...sim.broker.account('demo').orders.values()].some((o) => o.symbol === 'AAPL')) sim.broker.match(now, unreported);
  const limit = sim.broker.place('demo', { symbol: 'MSFT', side: 'buy', order_type: 'limit', quantity: big('3'), price: big('1.00'), session_id: 'manual' }, now, unreported);
  return { limitId: limit.order_id };
}

describe('reconciliation at start-up, against a real gateway', () => {
  it('repairs a restarted gateway whose stored positions and orders differ from the broker, with one reconciliation_mismatch per difference, before the first step', async () => {
    // The state a previous run left in the log: one position the broker holds with
    // another quantity, one it does not hold, and an order it does not have open.
    const previous = await startGateway({}, { keepData: true });
    await publish(previous.url, [
      position('demo', { symbol: 'AAPL', quantity: '999', avg_price: '150.00', mark_price: '190.00', unrealized_pnl: '39960.00' }),
      position('demo', { symbol: 'SOL-USD', quantity: '4', avg_price: '90.000', mark_price: '98.000', unrealized_pnl: '32.00' }),
      order('demo', { order_id: 'ghost', symbol: 'MSFT', price: '400.00', quantity: '2' }),
    ]);
    await previous.stop();

    await using gw = await startGateway({}, { dataDir: previous.dataDir });
    const stored = gw.gateway.store.stateOf('portfolio:demo') as PortfolioState;
    expect(stored.positions.AAPL?.quantity).toBe('999');

    // A desk that was open through the restart is watching when the simulator starts.
    await using desk = await TestClient.connect(gw.wsUrl);
    for (const stream of ['alerts:demo', 'portfolio:demo', 'orders:demo']) await desk.request('subscribe', { stream });

    const sim = new Simulator({ sink: gw.gateway, state: gw.gateway.store, seed: 3, clock: new SimClock(RESTART, 1000), desk: { autoExecute: 0 }, reconcileEverySteps: 5 });
    gw.gateway.setCommandHandler(sim.commands);
    const { limitId } = tradeBehindTheGatewaysBack(sim);
    const broker = new PaperBrokerAdapter(sim.broker);
    const truth = broker.positions('demo');
    expect(truth.map((p) => [p.symbol, p.quantity])).toEqual([['AAPL', '10']]);
    expect(mismatches(gw, 'demo')).toEqual([]);

    await sim.start();

    // Not one step yet: no market data, no trading. The repair came first.
    expect(sim.steps).toBe(0);
    expect([...gw.gateway.store.entries()].filter((e) => e.kind === 'market' && e.head > 0)).toEqual([]);

    const alerts = mismatches(gw, 'demo');
    expect(alerts.map((a) => a.key).sort()).toEqual(['AAPL', 'SOL-USD', 'ghost', limitId].sort());
    expect(new Set(alerts.map((a) => a.id)).size).toBe(4);
    for (const alert of alerts) expect(alert).toMatchObject({ severity: 'warning', corrected: true, account: 'demo' });
    const byKey = new Map(alerts.map((a) => [a.key, a]));
    expect(byKey.get('AAPL')).toMatchObject({ entity: 'position', symbol: 'AAPL' });
    expect(byKey.get('AAPL')?.differences).toContainEqual({ field: 'quantity', gateway: '999', broker: '10' });
    expect(byKey.get('SOL-USD')?.message).toContain('the gateway shows a SOL-USD position the broker does not have');
    expect(byKey.get('ghost')).toMatchObject({ entity: 'order', order_id: 'ghost' });
    expect(byKey.get(limitId)?.message).toContain(`the broker has open order ${limitId}`);
    // demo-2 agreed with its broker account (both empty): nothing to say.
    expect(mismatches(gw, 'demo-2')).toEqual([]);

    // The gateway now tells the broker's truth.
    const portfolio = gw.gateway.store.stateOf('portfolio:demo') as PortfolioState;
    expect(Object.keys(portfolio.positions)).toEqual(['AAPL']);
    expect(portfolio.positions.AAPL).toMatchObject({ quantity: '10', avg_price: truth[0]!.avg_price });
    const orders = (gw.gateway.store.stateOf('orders:demo') as OrdersState).orders;
    expect(Object.keys(orders)).toEqual([limitId]);
    expect(orders[limitId]).toMatchObject({ status: 'open', price: '1', quantity: '3' });

    // The desk saw each repair live, as alert and correction.
    await vi.waitFor(() => expect(desk.events('alerts:demo').filter((e) => e.type === 'reconciliation_mismatch')).toHaveLength(4));
    await vi.waitFor(() => {
      const fixes = desk.events('portfolio:demo').filter((e) => e.type === 'position:closed' || (e.type === 'position:updated' && (e.data as { symbol: string }).symbol === 'AAPL'));
      expect(fixes.map((e) => e.type).sort()).toEqual(['position:closed', 'position:updated']);
      expect(desk.events('orders:demo').map((e) => e.type).sort()).toEqual(['order:closed', 'order:updated']);
    });

    // Repaired for good: the next scheduled pass finds nothing, and trading goes on.
    for (let i = 0; i < 5; i++) await sim.step();
    expect(mismatches(gw, 'demo')).toHaveLength(4);
    expect(gw.gateway.store.get('market:AAPL')?.head).toBe(5);
    gw.gateway.setCommandHandler(undefined);
  });

  it('raises nothing when the stored state already agrees with the broker', async () => {
    await using gw = await startGateway();
    const first = new Simulator({ sink: gw.gateway, state: gw.gateway.store, seed: 3, clock: new SimClock(START, 1000), reconcileEverySteps: 0 });
    // Until the broker holds something to compare: a position or an open order.
    const held = () => [...first.broker.accounts.values()].reduce((n, a) => n + a.positions.size + a.orders.size, 0);
    while (held() === 0 && first.steps < 3000) await first.step();
    expect(held()).toBeGreaterThan(0);
    // A second start over the same broker and the same gateway: nothing differs.
    const again = new Simulator({ sink: gw.gateway, state: gw.gateway.store, seed: 3, clock: new SimClock(RESTART, 1000) });
    for (const [id, account] of first.broker.accounts) {
      const target = again.broker.account(id);
      for (const [symbol, p] of account.positions) target.positions.set(symbol, p);
      for (const [orderId, o] of account.orders) target.orders.set(orderId, o);
    }
    await again.start();
    expect(mismatches(gw, 'demo')).toEqual([]);
    expect(mismatches(gw, 'demo-2')).toEqual([]);
  });
});
