import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  applyEvents,
  EVENT_TYPES,
  eventTypesOf,
  initialState,
  STREAM_KINDS,
  type EventType,
  type ReducibleEvent,
  type StreamKind,
  type StreamState,
} from '../src/index.js';
import { deepFreeze } from './helpers.js';

const NUM_RUNS = 150;
const SEED = 20240601;
const params = { numRuns: NUM_RUNS, seed: SEED };

/* ---------------------------------------------------------------------------
 * Generators of valid event data. Ids come from a tiny pool (including a name
 * that shadows an Object.prototype member) so that collisions are frequent.
 * ------------------------------------------------------------------------- */

const id = fc.constantFrom('a', 'b', 'c', 'constructor');
const symbol = fc.constantFrom('BTC-USD', 'ETH-USD', 'toString');
const decimal = fc.stringMatching(/^-?\d{1,6}(\.\d{1,4})?$/);
const isoTime = fc
  .date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const sessionId = fc.option(fc.constantFrom('s-1', 's-2'), { nil: null });
const score = fc.integer({ min: 0, max: 100 });
const patternType = fc.constantFrom('SPRING', 'UTAD', 'SOS', 'LPS', 'SC', 'AR', 'ST');
const orderStatus = fc.constantFrom('pending', 'open', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired');
const strategyState = fc.constantFrom('MONITORING', 'SIGNAL_DETECTED', 'ENTRY_PENDING', 'POSITION_OPEN', 'EXITING');

const instanceData = fc.record({
  instance_id: id,
  session_id: sessionId,
  strategy: fc.constantFrom('wyckoff', 'breakout'),
  symbol,
  state: strategyState,
});

const dataArbs: { [T in EventType]: fc.Arbitrary<Record<string, unknown>> } = {
  'order:updated': fc.record({
    order_id: id,
    symbol,
    side: fc.constantFrom('buy', 'sell'),
    order_type: fc.constantFrom('market', 'limit', 'stop', 'stop_limit'),
    quantity: decimal,
    price: fc.option(decimal, { nil: null }),
    filled_quantity: decimal,
    status: orderStatus,
    session_id: sessionId,
    created_at: isoTime,
  }),
  'order:closed': fc.record({ order_id: id, status: orderStatus }),
  'balance:updated': fc.record({ currency: fc.constantFrom('USD', 'EUR', 'BTC'), total: decimal, available: decimal, reserved: decimal }),
  'position:updated': fc.record({
    symbol,
    side: fc.constantFrom('long', 'short'),
    quantity: decimal,
    avg_price: decimal,
    mark_price: decimal,
    unrealized_pnl: decimal,
  }),
  'position:closed': fc.record({ symbol }),
  'portfolio:updated': fc.record({
    total_value_usd: decimal,
    unrealized_pnl: decimal,
    realized_pnl: decimal,
    total_heat: decimal,
    available_capacity: decimal,
  }),
  'campaign:updated': fc.record({ campaign_id: id, risk_allocated: decimal, positions_count: fc.nat(20) }),
  'signal:new': fc.record({
    id,
    symbol,
    pattern_type: patternType,
    confidence_score: score,
    status: fc.constantFrom('pending', 'executed', 'rejected', 'expired'),
    session_id: sessionId,
  }),
  'signal:executed': fc.record({ id, executed_at: isoTime, order_id: id }, { requiredKeys: ['id'] }),
  'signal:rejected': fc.record({ id, reason: fc.constantFrom('risk', 'manual') }, { requiredKeys: ['id'] }),
  pattern_detected: fc.record({
    id,
    symbol,
    pattern_type: patternType,
    confidence_score: score,
    phase: fc.constantFrom('A', 'B', 'C', 'D', 'E'),
    test_confirmed: fc.boolean(),
  }),
  instance_added: instanceData,
  state_change: fc.record({ instance_id: id, state: strategyState, previous_state: fc.option(strategyState, { nil: null }) }),
  instance_removed: fc.record({ instance_id: id }),
  full_update: fc.record({ instances: fc.array(instanceData, { maxLength: 4 }) }),
  'indicator:updated': fc.record({ symbol, name: fc.constantFrom('rsi', 'atr', 'valueOf'), value: decimal }),
  liquidation_alert: fc.record(
    { id, severity: fc.constantFrom('info', 'warning', 'critical'), message: fc.string({ maxLength: 10 }) },
    { requiredKeys: ['id'] },
  ),
  reconciliation_mismatch: fc.record(
    { id, severity: fc.constantFrom('info', 'warning', 'critical'), message: fc.string({ maxLength: 10 }) },
    { requiredKeys: ['id'] },
  ),
  'market:tick': fc.record({ symbol, price: decimal, timestamp: isoTime }),
};

function eventOf(kind: StreamKind): fc.Arbitrary<ReducibleEvent> {
  return fc.oneof(...eventTypesOf(kind).map((type) => dataArbs[type].map((data): ReducibleEvent => ({ type, data }))));
}

function eventsOf(kind: StreamKind, maxLength = 30): fc.Arbitrary<ReducibleEvent[]> {
  return fc.array(eventOf(kind), { maxLength });
}

/** A state reached by replaying random events, so properties start from more than the empty state. */
function stateOf(kind: StreamKind): fc.Arbitrary<StreamState> {
  return eventsOf(kind, 15).map((events) => applyEvents(initialState<StreamKind>(kind), events));
}

/* ------------------------------------------------------------------------- */

describe.each(STREAM_KINDS.map((kind) => [kind]))('the reducer for %s streams', (kind) => {
  it('is fed only event data that passes its EVENT_TYPES schema', () => {
    fc.assert(
      fc.property(eventsOf(kind), (events) => {
        for (const event of events) {
          const type = event.type as EventType;
          expect(EVENT_TYPES[type].kind).toBe(kind);
          const parsed = EVENT_TYPES[type].data.safeParse(event.data);
          expect(parsed.success, JSON.stringify({ event, error: parsed.error?.issues })).toBe(true);
        }
      }),
      params,
    );
  });

  it('gives the same state when an event is applied twice in a row as when it is applied once', () => {
    fc.assert(
      fc.property(stateOf(kind), eventOf(kind), (state, event) => {
        const once = applyEvent(state, event);
        expect(applyEvent(once, event)).toEqual(once);
        expect(applyEvent(once, structuredClone(event))).toEqual(once);
      }),
      params,
    );
  });

  it('gives the same state for a sequence with redelivered duplicates as for the sequence without them', () => {
    fc.assert(
      fc.property(
        eventsOf(kind).chain((events) => fc.tuple(fc.constant(events), fc.array(fc.boolean(), { minLength: events.length, maxLength: events.length }))),
        ([events, duplicated]) => {
          const withDuplicates = events.flatMap((event, i) => (duplicated[i] ? [event, structuredClone(event)] : [event]));
          const start = initialState<StreamKind>(kind);
          expect(applyEvents(start, withDuplicates)).toEqual(applyEvents(start, events));
        },
      ),
      params,
    );
  });

  it('never mutates the state or the event it is given', () => {
    fc.assert(
      fc.property(eventsOf(kind), (events) => {
        let state = initialState<StreamKind>(kind);
        for (const event of events) {
          const stateBefore = structuredClone(state);
          const eventBefore = structuredClone(event);
          deepFreeze(state);
          deepFreeze(event);
          const next = applyEvent(state, event);
          expect(state).toEqual(stateBefore);
          expect(event).toEqual(eventBefore);
          state = next;
        }
      }),
      params,
    );
  });

  it('gives the same state applying a batch at once as applying its events one by one, without touching the input', () => {
    fc.assert(
      fc.property(eventsOf(kind), eventsOf(kind), (before, batch) => {
        const start = applyEvents(initialState<StreamKind>(kind), before);
        const copy = structuredClone(start);
        deepFreeze(start);
        const oneByOne = batch.reduce<StreamState>((state, event) => applyEvent(state, event), start);
        expect(applyEvents(start, batch)).toEqual(oneByOne);
        expect(start).toEqual(copy);
      }),
      params,
    );
  });

  it('gives the same state from a JSON snapshot of a prefix plus the remaining events as from the full replay', () => {
    fc.assert(
      fc.property(
        eventsOf(kind).chain((events) => fc.tuple(fc.constant(events), fc.integer({ min: 0, max: events.length }))),
        ([events, cut]) => {
          const start = initialState<StreamKind>(kind);
          const full = applyEvents(start, events);
          const snapshot = JSON.parse(JSON.stringify(applyEvents(start, events.slice(0, cut)))) as StreamState;
          const resumed = applyEvents(snapshot, events.slice(cut));
          expect(resumed).toEqual(full);
          expect(JSON.parse(JSON.stringify(resumed))).toEqual(JSON.parse(JSON.stringify(full)));
        },
      ),
      params,
    );
  });
});
