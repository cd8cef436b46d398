import { describe, expect, it } from 'vitest';
import type { AlertsState, OrdersState, PortfolioState } from '@tradesync/protocol';
import { recordedSimulator, steps } from './support.js';

describe('broker reconciliation', () => {
  it('finds drift injected into the gateway state and repairs it', async () => {
    const { sim, recorder } = recordedSimulator({ reconcileEverySteps: 10, markEverySteps: 1000, desk: { autoExecute: 0 } });
    await steps(sim, 2);
    await sim.commands.handle({ action: 'place_order', symbol: 'AAPL', side: 'buy', quantity: '10' }, { account: 'demo' });
    const limit = await sim.commands.handle({ action: 'place_order', symbol: 'MSFT', side: 'buy', order_type: 'limit', quantity: '3', price: '1.00' }, { account: 'demo' });
    await steps(sim, 3);
    const portfolio = () => recorder.stateOf('portfolio:demo') as PortfolioState;
    const orders = () => (recorder.stateOf('orders:demo') as OrdersState).orders;
    const truth = portfolio().positions.AAPL!;
    const limitId = String(limit.result?.order_id);

    // Another producer publishes wrong facts: a wrong quantity, a phantom position, a phantom order, a lost order.
    await recorder.publish([
      { stream: 'portfolio:demo', type: 'position:updated', data: { ...truth, quantity: '999' } },
      { stream: 'portfolio:demo', type: 'position:updated', data: { ...truth, symbol: 'SOL-USD' } },
      { stream: 'orders:demo', type: 'order:updated', data: { ...orders()[limitId]!, order_id: 'ghost' } },
      { stream: 'orders:demo', type: 'order:closed', data: { order_id: limitId, status: 'cancelled' } },
    ]);
    expect(portfolio().positions.AAPL!.quantity).toBe('999');

    await steps(sim, 10);
    const alerts = (recorder.stateOf('alerts:demo') as AlertsState).alerts.filter((a) => a.alert_type === 'reconciliation_mismatch');
    expect(alerts.map((a) => a.key).sort()).toEqual(['AAPL', 'SOL-USD', 'ghost', limitId].sort());
    expect(new Set(alerts.map((a) => a.id)).size).toBe(alerts.length);
    expect(portfolio().positions.AAPL!.quantity).toBe('10');
    expect(portfolio().positions['SOL-USD']).toBeUndefined();
    expect(orders().ghost).toBeUndefined();
    expect(orders()[limitId]?.status).toBe('open');

    // Repaired: the next pass finds nothing.
    const count = alerts.length;
    await steps(sim, 10);
    expect((recorder.stateOf('alerts:demo') as AlertsState).alerts.filter((a) => a.alert_type === 'reconciliation_mismatch')).toHaveLength(count);
  });

  it('finds and repairs broker reports lost on their way to the gateway', async () => {
    const { sim, recorder } = recordedSimulator({ reconcileEverySteps: 5, loseReportEverySteps: 7, markEverySteps: 1 });
    await sim.commands.handle({ action: 'place_order', symbol: 'AAPL', side: 'buy', quantity: '10' }, { account: 'demo' });
    await steps(sim, 200);
    const mismatches = ['demo', 'demo-2'].flatMap((account) =>
      (recorder.stateOf(`alerts:${account}`) as AlertsState).alerts.filter((a) => a.alert_type === 'reconciliation_mismatch'),
    );
    expect(mismatches.length).toBeGreaterThan(0);
    // Right after a reconciliation pass the gateway tells the broker's truth again.
    await steps(sim, 5 - (200 % 5));
    for (const account of ['demo', 'demo-2']) {
      const positions = (recorder.stateOf(`portfolio:${account}`) as PortfolioState).positions;
      for (const p of sim.broker.account(account).positions.values()) expect(positions[p.symbol]?.quantity).toBe(p.quantity.toString());
    }
  });
});

