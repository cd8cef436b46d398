import fc from 'fast-check';
import Big from 'big.js';
import { describe, expect, it } from 'vitest';
import type { PortfolioState, StrategyState } from '@tradesync/protocol';
import { isLegalTransition, type Simulator, type EventRecorder } from '../src/index.js';
import { recordedSimulator } from './support.js';

const SYMBOLS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AAPL', 'MSFT'];
const QTY: Record<string, string[]> = { 'BTC-USD': ['0.01', '0.5', '3'], 'ETH-USD': ['0.1', '2', '40'], 'SOL-USD': ['1', '50', '900'], AAPL: ['1', '20', '400'], MSFT: ['1', '10', '200'] };

const action = fc.oneof(
  fc.record({ kind: fc.constant('steps' as const), n: fc.integer({ min: 1, max: 25 }) }),
  fc.record({ kind: fc.constant('order' as const), account: fc.constantFrom('demo', 'demo-2'), symbol: fc.constantFrom(...SYMBOLS), side: fc.constantFrom('buy', 'sell'), size: fc.integer({ min: 0, max: 2 }), limit: fc.boolean() }),
  fc.record({ kind: fc.constant('cancel' as const), account: fc.constantFrom('demo', 'demo-2'), pick: fc.nat() }),
  fc.record({ kind: fc.constant('close' as const), account: fc.constantFrom('demo', 'demo-2'), symbol: fc.constantFrom(...SYMBOLS) }),
  fc.record({ kind: fc.constant('signal' as const), account: fc.constantFrom('demo', 'demo-2'), execute: fc.boolean(), pick: fc.nat() }),
);

async function act(sim: Simulator, recorder: EventRecorder, a: typeof action extends fc.Arbitrary<infer T> ? T : never): Promise<void> {
  switch (a.kind) {
    case 'steps':
      for (let i = 0; i < a.n; i++) await sim.step();
      return;
    case 'order': {
      const mark = sim.broker.mark(a.symbol);
      const price = mark && a.limit ? mark.times(a.side === 'buy' ? '0.999' : '1.001').round(2).toFixed(2) : undefined;
      await sim.commands.handle({ action: 'place_order', symbol: a.symbol, side: a.side, quantity: QTY[a.symbol]![a.size]!, order_type: price ? 'limit' : 'market', price }, { account: a.account });
      return;
    }
    case 'cancel': {
      const orders = Object.keys((recorder.stateOf(`orders:${a.account}`) as { orders: object }).orders);
      if (orders.length > 0) await sim.commands.handle({ action: 'cancel_order', order_id: orders[a.pick % orders.length]! }, { account: a.account });
      return;
    }
    case 'close':
      await sim.commands.handle({ action: 'close_position', symbol: a.symbol }, { account: a.account });
      return;
    case 'signal': {
      const signals = Object.entries((recorder.stateOf(`signals:${a.account}`) as { signals: Record<string, { status: string }> }).signals).filter(([, s]) => s.status === 'pending');
      const picked = signals[a.pick % Math.max(signals.length, 1)];
      if (picked) await sim.commands.handle({ action: a.execute ? 'execute_signal' : 'reject_signal', signal_id: picked[0] }, { account: a.account });
      return;
    }
  }
}

function checkInvariants(sim: Simulator, recorder: EventRecorder): void {
  for (const [id, account] of sim.broker.accounts) {
    // No negative available balance, in the broker and as published.
    expect(account.available().gte(0)).toBe(true);
    const state = recorder.stateOf(`portfolio:${id}`) as PortfolioState;
    const usd = state.balances.USD!;
    expect(new Big(usd.available).gte(0)).toBe(true);
    expect(new Big(usd.total).minus(usd.reserved).eq(usd.available)).toBe(true);
    // Position quantity equals the signed sum of fills.
    for (const symbol of SYMBOLS) {
      const p = account.positions.get(symbol);
      const signed = p ? (p.side === 'long' ? p.quantity : p.quantity.neg()) : new Big(0);
      expect(signed.eq(account.fillTotals.get(symbol) ?? 0)).toBe(true);
      const published = state.positions[symbol];
      expect(published ? new Big(published.quantity).eq(p!.quantity) : p === undefined).toBe(true);
    }
    // Portfolio totals agree with the published balance and positions.
    if (state.portfolio.total_value_usd !== undefined) {
      const upnl = Object.values(state.positions).reduce((sum, p) => sum.plus(p.unrealized_pnl), new Big(0));
      expect(new Big(state.portfolio.unrealized_pnl!).eq(upnl)).toBe(true);
      expect(new Big(state.portfolio.total_value_usd).eq(upnl.plus(usd.total))).toBe(true);
    }
  }
}

function checkTransitions(recorder: EventRecorder): void {
  const states = new Map<string, StrategyState>();
  for (const e of recorder.events) {
    if (e.type === 'full_update') for (const i of e.data.instances as Array<{ instance_id: string; state: StrategyState }>) states.set(i.instance_id, i.state);
    if (e.type === 'instance_added') states.set(String(e.data.instance_id), e.data.state as StrategyState);
    if (e.type === 'state_change') {
      const from = e.data.previous_state as StrategyState;
      expect(states.get(String(e.data.instance_id))).toBe(from);
      expect(isLegalTransition(from, e.data.state as StrategyState)).toBe(true);
      states.set(String(e.data.instance_id), e.data.state as StrategyState);
    }
    if (e.type === 'instance_removed') states.delete(String(e.data.instance_id));
  }
}

describe('invariants over long random runs', () => {
  it('hold for any seed and any sequence of commands', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.array(action, { minLength: 5, maxLength: 40 }), async (seed, actions) => {
        const { sim, recorder } = recordedSimulator({ seed, desk: { sessionSteps: 150, signalTtlSteps: 40 } });
        await sim.start();
        for (const a of actions) {
          await act(sim, recorder, a);
          checkInvariants(sim, recorder);
        }
        checkTransitions(recorder);
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});
