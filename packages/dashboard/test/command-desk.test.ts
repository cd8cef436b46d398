import { describe, expect, it } from 'vitest';
import type { CommandOptions, CommandResult, CommandUpdate } from '@tradesync/client';
import { applyEvent, initialState, type OrdersState, type SignalsState, type StreamState } from '@tradesync/protocol';
import { CommandDesk, type CommandSender } from '../src/core/command-desk.js';
import type { ToastSpec } from '../src/core/notifications.js';
import { testStores } from './support/fakes.js';

interface Sent {
  readonly action: string;
  readonly payload: Record<string, unknown>;
  readonly options: CommandOptions;
}

const signals = applyEvent(initialState('signals'), {
  type: 'signal:new',
  data: { id: 'sig-1', symbol: 'AAPL', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: 's1' },
});
const orders = applyEvent(initialState('orders'), {
  type: 'order:updated',
  data: { order_id: 'ord-1', symbol: 'MSFT', side: 'buy', order_type: 'limit', quantity: '1', price: '400', filled_quantity: '0', status: 'open', session_id: 's1', created_at: '2025-01-01T00:00:00Z' },
});

function harness(account = 'demo') {
  const stores = testStores(account);
  const sent: Sent[] = [];
  const toasts: ToastSpec[] = [];
  let fail: Error | undefined;
  const sender: CommandSender = {
    command(action, payload, options) {
      sent.push({ action, payload, options });
      return fail ? Promise.reject(fail) : Promise.resolve<CommandResult>({ success: true, commandId: options.commandId ?? '', action });
    },
  };
  const states: Record<string, StreamState> = { [`signals:${account}`]: signals, [`orders:${account}`]: orders };
  const desk = new CommandDesk({
    sender,
    ui: stores.ui,
    account: () => account,
    state: <S extends StreamState>(stream: string) => states[stream] as S | undefined,
    announce: (t) => toasts.push(t),
    now: () => 1234,
  });
  const update = (phase: CommandUpdate['phase'], error?: CommandUpdate['error'], index = -1) => {
    const last = sent.at(index)!;
    desk.onUpdate({ commandId: last.options.commandId!, action: last.action, phase, ...(error ? { error } : {}) });
  };
  return { desk, sent, toasts, stores, update, failWith: (e: Error) => (fail = e) };
}

describe('the command desk', () => {
  it('sends execute through the SDK’s optimistic command, on the account’s signals stream, with a reusable id', () => {
    const h = harness();
    h.desk.executeSignal('sig-1');
    const [sent] = h.sent;
    expect(sent).toMatchObject({ action: 'execute_signal', payload: { signal_id: 'sig-1' }, options: { account: 'demo', optimistic: { stream: 'signals:demo' } } });
    expect(sent?.options.commandId).toMatch(/^ui-execute_signal-sig-1-/);
  });

  it('marks the signal pending with an event the protocol’s reducer applies, never a hand-made patch', () => {
    const h = harness();
    h.desk.executeSignal('sig-1');
    h.desk.rejectSignal('sig-1');
    const [execute, reject] = h.sent.map((s) => s.options.optimistic!.apply);
    const signal = signals.signals['sig-1']!;
    expect(execute!(signals)).toEqual(applyEvent(signals, { type: 'signal:new', data: { ...signal, pending_action: 'execute' } }));
    expect((reject!(signals) as SignalsState).signals['sig-1']).toMatchObject({ status: 'pending', pending_action: 'reject' });
    // The confirmed state the SDK hands in is never written.
    expect(signals.signals['sig-1']).not.toHaveProperty('pending_action');
  });

  it('marks the order being cancelled the same way', () => {
    const h = harness();
    h.desk.cancelOrder('ord-1');
    const [sent] = h.sent;
    expect(sent).toMatchObject({ action: 'cancel_order', payload: { order_id: 'ord-1' }, options: { optimistic: { stream: 'orders:demo' } } });
    const next = sent!.options.optimistic!.apply(orders) as OrdersState;
    expect(next.orders['ord-1']).toEqual({ ...orders.orders['ord-1'], pending_action: 'cancel' });
  });

  it('leaves the state as it is when the target is gone by the time the SDK applies the change', () => {
    const h = harness();
    h.desk.cancelOrder('ord-1');
    h.desk.executeSignal('sig-1');
    const empty = [initialState('orders'), initialState('signals')];
    h.sent.forEach((s, i) => expect(s.options.optimistic!.apply(empty[i]!)).toBe(empty[i]));
  });

  it('follows the command’s phases on its row: pending, then confirmed', () => {
    const h = harness();
    h.desk.executeSignal('sig-1');
    h.update('pending');
    expect(h.stores.ui.getState().commands['sig-1']).toMatchObject({ action: 'execute_signal', target: 'sig-1', phase: 'pending', at: 1234 });
    h.update('confirmed');
    expect(h.stores.ui.getState().commands['sig-1']?.phase).toBe('confirmed');
    expect(h.toasts).toEqual([]);
  });

  it('says why in a toast when the SDK rolled the command back, naming the row', () => {
    const h = harness();
    h.desk.cancelOrder('ord-1');
    h.update('rolled_back', { code: 'RISK_LIMIT', message: 'Heat limit reached' });
    expect(h.stores.ui.getState().commands['ord-1']).toMatchObject({ phase: 'rolled_back', message: 'Heat limit reached' });
    expect(h.toasts).toEqual([{ kind: 'error', title: 'Cancel MSFT failed', description: 'Heat limit reached' }]);
  });

  it('forgets a command once it is settled, and ignores commands other pages or components sent', () => {
    const h = harness();
    h.desk.executeSignal('sig-1');
    h.update('rolled_back');
    h.update('rolled_back');
    expect(h.toasts).toEqual([{ kind: 'error', title: 'Execute AAPL failed', description: 'rolled back' }]);
    h.desk.onUpdate({ commandId: 'cmd-elsewhere', action: 'cancel_order', phase: 'pending' });
    expect(Object.keys(h.stores.ui.getState().commands)).toEqual(['sig-1']);
  });

  it('names the target by id when its symbol is unknown', () => {
    const h = harness();
    h.desk.rejectSignal('sig-unknown');
    h.update('rolled_back', { code: 'TIMEOUT', message: 'no confirmation in time' });
    expect(h.toasts[0]?.title).toBe('Reject sig-unknown failed');
  });

  it('does not let a rejected promise escape: the rollback comes through the command event', async () => {
    const h = harness();
    h.failWith(new Error('connection lost'));
    h.desk.executeSignal('sig-1');
    await new Promise((r) => setTimeout(r, 0));
    expect(h.sent).toHaveLength(1);
  });
});
