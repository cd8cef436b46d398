import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  applyEvents,
  initialState,
  STATE_LIMITS,
  type ReducibleEvent,
  type StreamState,
} from '../src/index.js';
import { deepFreeze, ev, instance, order, signal } from './helpers.js';

/** Applies an event to a deep-frozen state and checks that neither the state nor the event changed. */
function apply<S extends StreamState>(state: S, event: ReducibleEvent): S {
  const before = structuredClone(state);
  const eventBefore = structuredClone(event);
  deepFreeze(state);
  deepFreeze(event);
  const next = applyEvent(state, event);
  expect(state).toEqual(before);
  expect(event).toEqual(eventBefore);
  return next;
}

function applyAll<S extends StreamState>(state: S, events: ReducibleEvent[]): S {
  return events.reduce((s, e) => apply(s, e), state);
}

describe('the orders reducer', () => {
  it('adds an open order keyed by its order_id', () => {
    const next = apply(initialState('orders'), ev('order:updated', order()));
    expect(next).toEqual({ orders: { 'o-1': order() } });
  });

  it('replaces an order with the whole newer version on update', () => {
    const s1 = apply(initialState('orders'), ev('order:updated', order()));
    const s2 = apply(s1, ev('order:updated', order({ status: 'partially_filled', filled_quantity: '0.2' })));
    expect(s2.orders['o-1']).toEqual(order({ status: 'partially_filled', filled_quantity: '0.2' }));
    expect(Object.keys(s2.orders)).toEqual(['o-1']);
  });

  it('removes an order on order:closed', () => {
    const s1 = applyAll(initialState('orders'), [ev('order:updated', order()), ev('order:updated', order({ order_id: 'o-2' }))]);
    const s2 = apply(s1, ev('order:closed', { order_id: 'o-1', status: 'cancelled' }));
    expect(Object.keys(s2.orders)).toEqual(['o-2']);
  });

  it.each(['filled', 'cancelled', 'rejected', 'expired'])('removes an order whose update carries the closed status %s', (status) => {
    const s1 = apply(initialState('orders'), ev('order:updated', order()));
    const s2 = apply(s1, ev('order:updated', order({ status })));
    expect(s2.orders).toEqual({});
  });

  it('never adds an order that arrives already closed', () => {
    const next = apply(initialState('orders'), ev('order:updated', order({ status: 'filled' })));
    expect(next.orders).toEqual({});
  });

  it('leaves the state unchanged when an unknown order is closed', () => {
    const s1 = apply(initialState('orders'), ev('order:updated', order()));
    expect(apply(s1, ev('order:closed', { order_id: 'nope', status: 'filled' }))).toEqual(s1);
  });
});

describe('the portfolio reducer', () => {
  const balance = { currency: 'USD', total: '1000.00', available: '900.00', reserved: '100.00' };
  const position = { symbol: 'BTC-USD', side: 'long', quantity: '1', avg_price: '40000', mark_price: '42000', unrealized_pnl: '2000' };
  const totals = { total_value_usd: '50000', unrealized_pnl: '2000', realized_pnl: '-10.5', total_heat: '0.1', available_capacity: '0.9' };

  it('upserts balances by currency', () => {
    const s1 = apply(initialState('portfolio'), ev('balance:updated', balance));
    const s2 = apply(s1, ev('balance:updated', { ...balance, total: '2000.00' }));
    const s3 = apply(s2, ev('balance:updated', { ...balance, currency: 'EUR' }));
    expect(s3.balances).toEqual({ USD: { ...balance, total: '2000.00' }, EUR: { ...balance, currency: 'EUR' } });
  });

  it('upserts positions by symbol and keeps extra fields', () => {
    const s1 = apply(initialState('portfolio'), ev('position:updated', { ...position, leverage: 3 }));
    expect(s1.positions['BTC-USD']).toEqual({ ...position, leverage: 3 });
    const s2 = apply(s1, ev('position:updated', { ...position, quantity: '2' }));
    expect(s2.positions['BTC-USD']).toEqual({ ...position, quantity: '2' });
  });

  it('removes a position on position:closed and keeps the others', () => {
    const s1 = applyAll(initialState('portfolio'), [
      ev('position:updated', position),
      ev('position:updated', { ...position, symbol: 'ETH-USD' }),
    ]);
    const s2 = apply(s1, ev('position:closed', { symbol: 'BTC-USD' }));
    expect(Object.keys(s2.positions)).toEqual(['ETH-USD']);
  });

  it('replaces the portfolio totals wholesale', () => {
    const s1 = apply(initialState('portfolio'), ev('portfolio:updated', { ...totals, extra: 'x' }));
    const s2 = apply(s1, ev('portfolio:updated', totals));
    expect(s2.portfolio).toEqual(totals);
  });

  it('upserts campaigns by campaign_id', () => {
    const s1 = apply(initialState('portfolio'), ev('campaign:updated', { campaign_id: 'c-1', risk_allocated: '0.02', positions_count: 1 }));
    const s2 = apply(s1, ev('campaign:updated', { campaign_id: 'c-1', risk_allocated: '0.04', positions_count: 2 }));
    expect(s2.campaigns).toEqual({ 'c-1': { campaign_id: 'c-1', risk_allocated: '0.04', positions_count: 2 } });
  });

  it('leaves the other parts of the portfolio untouched by an update to one part', () => {
    const s1 = applyAll(initialState('portfolio'), [ev('balance:updated', balance), ev('position:updated', position)]);
    const s2 = apply(s1, ev('portfolio:updated', totals));
    expect(s2.balances).toBe(s1.balances);
    expect(s2.positions).toBe(s1.positions);
    expect(s2.campaigns).toBe(s1.campaigns);
  });
});

describe('the signals reducer', () => {
  it('adds a new signal keyed by id', () => {
    const next = apply(initialState('signals'), ev('signal:new', signal()));
    expect(next.signals).toEqual({ 'sig-1': signal() });
  });

  it('merges signal:executed into the existing signal and sets its status to executed', () => {
    const s1 = apply(initialState('signals'), ev('signal:new', signal()));
    const s2 = apply(s1, ev('signal:executed', { id: 'sig-1', executed_at: '2024-01-01T00:00:01Z' }));
    expect(s2.signals['sig-1']).toEqual({ ...signal(), status: 'executed', executed_at: '2024-01-01T00:00:01Z' });
  });

  it('merges signal:rejected into the existing signal and sets its status to rejected', () => {
    const s1 = apply(initialState('signals'), ev('signal:new', signal()));
    const s2 = apply(s1, ev('signal:rejected', { id: 'sig-1', reason: 'risk' }));
    expect(s2.signals['sig-1']).toEqual({ ...signal(), status: 'rejected', reason: 'risk' });
  });

  it('ignores a status change for a signal it never saw', () => {
    const s1 = apply(initialState('signals'), ev('signal:new', signal()));
    expect(apply(s1, ev('signal:executed', { id: 'sig-unknown' }))).toBe(s1);
    expect(apply(s1, ev('signal:rejected', { id: 'sig-unknown' }))).toBe(s1);
  });

  it('ignores a status change whose id only matches an Object.prototype member', () => {
    const s0 = initialState('signals');
    for (const id of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      expect(apply(s0, ev('signal:executed', { id })).signals).toEqual({});
    }
  });

  it('upserts patterns by id', () => {
    const pattern = { id: 'p-1', symbol: 'BTC-USD', pattern_type: 'SOS', confidence_score: 70, phase: 'D', test_confirmed: false };
    const s1 = apply(initialState('signals'), ev('pattern_detected', pattern));
    const s2 = apply(s1, ev('pattern_detected', { ...pattern, test_confirmed: true }));
    expect(s2.patterns).toEqual({ 'p-1': { ...pattern, test_confirmed: true } });
    expect(s2.signals).toEqual({});
  });

  it('keeps at most STATE_LIMITS.signals plus a tenth, then drops the oldest down to the limit at once', () => {
    const slack = Math.ceil(STATE_LIMITS.signals / 10);
    const upToSlack = Array.from({ length: STATE_LIMITS.signals + slack }, (_, i) => ev('signal:new', signal({ id: `sig-${i}` })));
    const full = applyEvents(initialState('signals'), upToSlack);
    expect(Object.keys(full.signals)).toHaveLength(STATE_LIMITS.signals + slack);
    const next = apply(full, ev('signal:new', signal({ id: 'sig-newest' })));
    const ids = Object.keys(next.signals);
    expect(ids).toHaveLength(STATE_LIMITS.signals);
    expect(ids[0]).toBe(`sig-${slack + 1}`);
    expect(ids.at(-1)).toBe('sig-newest');
    // The input state was not touched by the eviction.
    expect(Object.keys(full.signals)).toHaveLength(STATE_LIMITS.signals + slack);
    expect(full.signals['sig-0']).toBeDefined();
  });

  it('never holds more than the limit plus a tenth however many signals arrive in one batch', () => {
    const slack = Math.ceil(STATE_LIMITS.signals / 10);
    const events = Array.from({ length: STATE_LIMITS.signals * 3 + 7 }, (_, i) => ev('signal:new', signal({ id: `sig-${i}` })));
    const next = applyEvents(initialState('signals'), events);
    const ids = Object.keys(next.signals);
    expect(ids.length).toBeGreaterThanOrEqual(STATE_LIMITS.signals);
    expect(ids.length).toBeLessThanOrEqual(STATE_LIMITS.signals + slack);
    expect(ids.at(-1)).toBe(`sig-${STATE_LIMITS.signals * 3 + 6}`);
    // Batch or one by one, the result is the same.
    expect(next).toEqual(events.reduce((s, e) => applyEvent(s, e), initialState('signals')));
  });

  it('keeps at most STATE_LIMITS.patterns patterns plus a tenth, newest last', () => {
    const slack = Math.ceil(STATE_LIMITS.patterns / 10);
    const events = Array.from({ length: STATE_LIMITS.patterns + slack + 1 }, (_, i) =>
      ev('pattern_detected', { id: `p-${i}`, symbol: 'X', pattern_type: 'SC', confidence_score: 1, phase: 'A', test_confirmed: false }),
    );
    const next = applyEvents(initialState('signals'), events);
    expect(Object.keys(next.patterns)).toHaveLength(STATE_LIMITS.patterns);
    expect(next.patterns['p-0']).toBeUndefined();
    expect(next.patterns[`p-${STATE_LIMITS.patterns + slack}`]).toBeDefined();
  });
});

describe('the state_machines reducer', () => {
  it('adds an instance keyed by instance_id', () => {
    const next = apply(initialState('state_machines'), ev('instance_added', instance()));
    expect(next.instances).toEqual({ 'i-1': instance() });
  });

  it('merges a state_change into the known instance', () => {
    const s1 = apply(initialState('state_machines'), ev('instance_added', instance()));
    const s2 = apply(s1, ev('state_change', { instance_id: 'i-1', state: 'SIGNAL_DETECTED', previous_state: 'MONITORING' }));
    expect(s2.instances['i-1']).toEqual({ ...instance(), state: 'SIGNAL_DETECTED', previous_state: 'MONITORING' });
  });

  it('ignores a state_change for an instance it never saw', () => {
    const s1 = apply(initialState('state_machines'), ev('instance_added', instance()));
    const s2 = apply(s1, ev('state_change', { instance_id: 'i-unknown', state: 'EXITING', previous_state: null }));
    expect(s2).toBe(s1);
  });

  it('ignores a state_change whose instance_id only matches an Object.prototype member', () => {
    const s0 = initialState('state_machines');
    for (const id of ['constructor', 'toString', 'valueOf', '__proto__']) {
      const next = apply(s0, ev('state_change', { instance_id: id, state: 'EXITING', previous_state: null }));
      expect(next.instances).toEqual({});
    }
  });

  it('removes an instance on instance_removed', () => {
    const s1 = applyAll(initialState('state_machines'), [ev('instance_added', instance()), ev('instance_added', instance({ instance_id: 'i-2' }))]);
    const s2 = apply(s1, ev('instance_removed', { instance_id: 'i-1' }));
    expect(Object.keys(s2.instances)).toEqual(['i-2']);
  });

  it('replaces all instances on full_update', () => {
    const s1 = apply(initialState('state_machines'), ev('instance_added', instance()));
    const a = instance({ instance_id: 'i-2', state: 'POSITION_OPEN' });
    const b = instance({ instance_id: 'i-3' });
    const s2 = apply(s1, ev('full_update', { instances: [a, b] }));
    expect(s2.instances).toEqual({ 'i-2': a, 'i-3': b });
  });

  it('empties the instances on a full_update with none', () => {
    const s1 = apply(initialState('state_machines'), ev('instance_added', instance()));
    expect(apply(s1, ev('full_update', { instances: [] })).instances).toEqual({});
  });
});

describe('the indicators reducer', () => {
  it('stores each value under its symbol and name', () => {
    const next = applyAll(initialState('indicators'), [
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'rsi', value: '55.2' }),
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'atr', value: '120' }),
      ev('indicator:updated', { symbol: 'ETH-USD', name: 'rsi', value: '40' }),
      ev('indicator:updated', { symbol: 'BTC-USD', name: 'rsi', value: '56' }),
    ]);
    expect(next.indicators).toEqual({ 'BTC-USD': { rsi: '56', atr: '120' }, 'ETH-USD': { rsi: '40' } });
  });

  it('does not inherit Object.prototype members for a symbol named like one', () => {
    const next = apply(initialState('indicators'), ev('indicator:updated', { symbol: 'constructor', name: 'rsi', value: '1' }));
    expect(next.indicators).toEqual({ constructor: { rsi: '1' } });
  });
});

describe('the alerts reducer', () => {
  it('appends alerts tagged with their event type', () => {
    const next = applyAll(initialState('alerts'), [
      ev('liquidation_alert', { id: 'a-1', severity: 'critical', message: 'near liquidation' }),
      ev('reconciliation_mismatch', { id: 'a-2', severity: 'warning' }),
    ]);
    expect(next.alerts).toEqual([
      { id: 'a-1', severity: 'critical', message: 'near liquidation', alert_type: 'liquidation_alert' },
      { id: 'a-2', severity: 'warning', alert_type: 'reconciliation_mismatch' },
    ]);
  });

  it('replaces an alert with the same id in place instead of appending it', () => {
    const s1 = applyAll(initialState('alerts'), [ev('liquidation_alert', { id: 'a-1' }), ev('liquidation_alert', { id: 'a-2' })]);
    const s2 = apply(s1, ev('liquidation_alert', { id: 'a-1', severity: 'critical' }));
    expect(s2.alerts.map((a) => a.id)).toEqual(['a-1', 'a-2']);
    expect(s2.alerts[0]).toEqual({ id: 'a-1', severity: 'critical', alert_type: 'liquidation_alert' });
  });

  it('keeps only the newest STATE_LIMITS.alerts alerts', () => {
    const total = STATE_LIMITS.alerts + 7;
    const events = Array.from({ length: total }, (_, i) => ev('liquidation_alert', { id: `a-${i}` }));
    const next = applyEvents(initialState('alerts'), events);
    expect(next.alerts).toHaveLength(STATE_LIMITS.alerts);
    expect(next.alerts[0]?.id).toBe('a-7');
    expect(next.alerts.at(-1)?.id).toBe(`a-${total - 1}`);
  });

  it('does not mutate a full alerts state when it drops the oldest alert', () => {
    const full = applyEvents(
      initialState('alerts'),
      Array.from({ length: STATE_LIMITS.alerts }, (_, i) => ev('liquidation_alert', { id: `a-${i}` })),
    );
    const next = apply(full, ev('liquidation_alert', { id: 'a-new' }));
    expect(full.alerts).toHaveLength(STATE_LIMITS.alerts);
    expect(full.alerts[0]?.id).toBe('a-0');
    expect(next.alerts[0]?.id).toBe('a-1');
  });
});

describe('the market reducer', () => {
  it('keeps only the last tick', () => {
    const t1 = { symbol: 'BTC-USD', price: '42000.50', timestamp: '2024-01-01T00:00:00Z' };
    const t2 = { symbol: 'BTC-USD', price: '42001.00', timestamp: '2024-01-01T00:00:01Z' };
    const next = applyAll(initialState('market'), [ev('market:tick', t1), ev('market:tick', t2)]);
    expect(next).toEqual({ last: t2 });
  });

  it('starts with no tick', () => {
    expect(initialState('market')).toEqual({ last: null });
  });
});

describe('applyEvent', () => {
  it('returns the same state for an unknown event type', () => {
    const s = initialState('orders');
    expect(apply(s, ev('nonsense', { order_id: 'x' }))).toBe(s);
  });

  it('returns the same state for a prototype member name used as an event type', () => {
    const s = initialState('orders');
    expect(apply(s, ev('constructor', {}))).toBe(s);
    expect(apply(s, ev('__proto__', {}))).toBe(s);
  });

  it('returns a fresh initial state on each call so replicas never share objects', () => {
    const a = initialState('portfolio');
    const b = initialState('portfolio');
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
    expect(a.balances).not.toBe(b.balances);
  });
});
