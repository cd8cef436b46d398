import { describe, expect, it } from 'vitest';
import { recordedSimulator, steps, untilPendingSignal } from './support.js';

const demo = { account: 'demo' };

describe('simulator commands', () => {
  it('execute_signal places the entry and a second execution is refused', async () => {
    const { sim, recorder } = recordedSimulator({ desk: { autoExecute: 0 } });
    const id = await untilPendingSignal(sim, recorder);
    const before = recorder.events.length;
    const ok = await sim.commands.handle({ action: 'execute_signal', signal_id: id, command_id: 'e1' }, demo);
    expect(ok.success).toBe(true);
    const caused = recorder.events.slice(before).map((e) => e.type);
    expect(caused).toEqual(expect.arrayContaining(['order:updated', 'signal:executed', 'state_change', 'balance:updated']));
    const again = await sim.commands.handle({ action: 'execute_signal', signal_id: id, command_id: 'e2' }, demo);
    expect(again.error?.code).toBe('SIGNAL_ALREADY_EXECUTED');
    const unknown = await sim.commands.handle({ action: 'execute_signal', signal_id: 'sig-nope' }, demo);
    expect(unknown.error?.code).toBe('UNKNOWN_SIGNAL');
  });

  it('is idempotent by command id: the same id answers the same without acting twice', async () => {
    const { sim, recorder } = recordedSimulator({ desk: { autoExecute: 0 } });
    await steps(sim, 2);
    const cmd = { action: 'place_order', symbol: 'BTC-USD', side: 'buy', quantity: '0.01', command_id: 'same' };
    const first = await sim.commands.handle(cmd, demo);
    const count = recorder.events.length;
    const second = await sim.commands.handle(cmd, demo);
    expect(second).toEqual(first);
    expect(recorder.events.length).toBe(count);
    const [a, b] = await Promise.all([sim.commands.handle({ ...cmd, command_id: 'race' }, demo), sim.commands.handle({ ...cmd, command_id: 'race' }, demo)]);
    expect(a).toEqual(b);
  });

  it('reject_signal frees the instance; a rejected signal cannot be executed', async () => {
    const { sim, recorder } = recordedSimulator({ desk: { autoExecute: 0 } });
    const id = await untilPendingSignal(sim, recorder);
    expect((await sim.commands.handle({ action: 'reject_signal', signal_id: id, reason: 'no' }, demo)).success).toBe(true);
    const state = recorder.stateOf('signals:demo') as { signals: Record<string, { status: string }> };
    expect(state.signals[id]?.status).toBe('rejected');
    expect((await sim.commands.handle({ action: 'execute_signal', id }, demo)).error?.code).toBe('SIGNAL_NOT_PENDING');
  });

  it('place_order refuses bad input with a clear code', async () => {
    const { sim } = recordedSimulator({ desk: { autoExecute: 0 } });
    await steps(sim, 1);
    const place = (fields: Record<string, unknown>) => sim.commands.handle({ action: 'place_order', ...fields }, demo);
    expect((await place({ symbol: 'DOGE', side: 'buy', quantity: '1' })).error?.code).toBe('UNKNOWN_SYMBOL');
    expect((await place({ symbol: 'AAPL', side: 'buy', quantity: '0.5' })).error?.code).toBe('INVALID_QUANTITY');
    expect((await place({ symbol: 'AAPL', side: 'buy', quantity: '1', order_type: 'limit' })).error?.code).toBe('INVALID_PRICE');
    expect((await place({ symbol: 'AAPL', side: 'up', quantity: '1' })).error?.code).toBe('INVALID_COMMAND');
    expect((await place({ symbol: 'BTC-USD', side: 'buy', quantity: '1000' })).error?.code).toBe('INSUFFICIENT_BALANCE');
    expect((await sim.commands.handle({ action: 'fly' }, demo)).error?.code).toBe('UNKNOWN_ACTION');
    expect((await place.call(null, { symbol: 'AAPL', side: 'buy', quantity: '1' })).success).toBe(true);
    expect((await sim.commands.handle({ action: 'place_order', symbol: 'AAPL', side: 'buy', quantity: '1' }, { account: 'ghost' })).error?.code).toBe('UNKNOWN_ACCOUNT');
  });

  it('cancel_order releases the reservation; cancelling again says the order is unknown', async () => {
    const { sim, recorder } = recordedSimulator({ desk: { autoExecute: 0 } });
    await steps(sim, 1);
    const placed = await sim.commands.handle({ action: 'place_order', symbol: 'AAPL', side: 'buy', order_type: 'limit', quantity: '10', price: '1.00' }, demo);
    const orderId = String(placed.result?.order_id);
    const balance = () => (recorder.stateOf('portfolio:demo') as { balances: Record<string, { reserved: string }> }).balances.USD!.reserved;
    expect(Number(balance())).toBeGreaterThan(0);
    expect((await sim.commands.handle({ action: 'cancel_order', order_id: orderId }, demo)).success).toBe(true);
    expect(balance()).toBe('0');
    expect((recorder.stateOf('orders:demo') as { orders: Record<string, unknown> }).orders[orderId]).toBeUndefined();
    expect((await sim.commands.handle({ action: 'cancel_order', order_id: orderId }, demo)).error?.code).toBe('UNKNOWN_ORDER');
  });

  it('close_position closes a filled position; without a position it says so', async () => {
    const { sim, recorder } = recordedSimulator({ desk: { autoExecute: 0 } });
    await steps(sim, 1);
    expect((await sim.commands.handle({ action: 'close_position', symbol: 'MSFT' }, demo)).error?.code).toBe('UNKNOWN_POSITION');
    await sim.commands.handle({ action: 'place_order', symbol: 'MSFT', side: 'buy', quantity: '5' }, demo);
    await steps(sim, 5);
    const positions = () => (recorder.stateOf('portfolio:demo') as { positions: Record<string, { quantity: string }> }).positions;
    expect(positions().MSFT?.quantity).toBe('5');
    expect((await sim.commands.handle({ action: 'close_position', symbol: 'MSFT' }, demo)).success).toBe(true);
    expect((await sim.commands.handle({ action: 'close_position', symbol: 'MSFT' }, demo)).error?.code).toBe('POSITION_ALREADY_CLOSING');
    await steps(sim, 5);
    expect(positions().MSFT).toBeUndefined();
  });
});
