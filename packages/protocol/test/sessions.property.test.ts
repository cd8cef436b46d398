import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyEvent, initialState, type StreamState } from '../src/reducer.js';
import { applyWithSessions, eventForSession, sessionOfEvent, stateForSession } from '../src/sessions.js';
import type { StreamKind } from '../src/streams.js';

/** Each entity keeps the session it was created in (derived from its id): A, B, none (null) or account-wide (no field). */
const SESSIONS = ['A', 'B', null, undefined] as const;
const sessionOf = (n: number) => SESSIONS[n % SESSIONS.length];
const withSession = (n: number, data: Record<string, unknown>) => {
  const session = sessionOf(n);
  return session === undefined ? data : { ...data, session_id: session };
};

const id = fc.nat({ max: 7 });
const strategyEvent = fc.oneof(
  id.map((n) => ({ type: 'instance_added', data: withSession(n, { instance_id: `i${n}`, strategy: 'wyckoff', symbol: 'BTC-USD', state: 'MONITORING' }) })),
  fc.tuple(id, fc.constantFrom('SIGNAL_DETECTED', 'ENTRY_PENDING', 'POSITION_OPEN')).map(([n, state]) => ({ type: 'state_change', data: { instance_id: `i${n}`, state, previous_state: null } })),
  id.map((n) => ({ type: 'instance_removed', data: { instance_id: `i${n}` } })),
  fc.uniqueArray(id, { maxLength: 5 }).map((ns) => ({ type: 'full_update', data: { instances: ns.map((n) => withSession(n, { instance_id: `i${n}`, strategy: 'wyckoff', symbol: 'ETH-USD', state: 'EXITING' })) } })),
);
const orderEvent = fc.oneof(
  fc.tuple(id, fc.constantFrom('open', 'partially_filled', 'filled')).map(([n, status]) => ({
    type: 'order:updated',
    data: { order_id: `o${n}`, symbol: 'BTC-USD', side: 'buy', order_type: 'limit', quantity: '1', price: '1', filled_quantity: '0', status, session_id: sessionOf(n) ?? null, created_at: '2026-01-01T00:00:00.000Z' },
  })),
  id.map((n) => ({ type: 'order:closed', data: { order_id: `o${n}`, status: 'cancelled' } })),
);
const signalEvent = fc.oneof(
  id.map((n) => ({ type: 'signal:new', data: { id: `s${n}`, symbol: 'BTC-USD', pattern_type: 'SPRING', confidence_score: 80, status: 'pending', session_id: sessionOf(n) ?? null } })),
  fc.tuple(id, fc.constantFrom('signal:executed', 'signal:rejected')).map(([n, type]) => ({ type, data: { id: `s${n}` } })),
  id.map((n) => ({ type: 'pattern_detected', data: withSession(n, { id: `p${n}`, symbol: 'BTC-USD', pattern_type: 'SC', confidence_score: 70, phase: 'A', test_confirmed: false }) })),
);
const portfolioEvent = fc.oneof(
  id.map((n) => ({ type: 'position:updated', data: withSession(n, { symbol: `SYM${n}`, side: 'long', quantity: '1', avg_price: '1', mark_price: '1', unrealized_pnl: '0' }) })),
  id.map((n) => ({ type: 'position:closed', data: { symbol: `SYM${n}` } })),
  id.map((n) => ({ type: 'balance:updated', data: { currency: `C${n}`, total: '1', available: '1', reserved: '0' } })),
);

const cases: ReadonlyArray<[StreamKind, fc.Arbitrary<{ type: string; data: Record<string, unknown> }>]> = [
  ['state_machines', strategyEvent],
  ['orders', orderEvent],
  ['signals', signalEvent],
  ['portfolio', portfolioEvent],
];

describe('session-scoped views', () => {
  for (const [kind, event] of cases) {
    it(`${kind}: reducing only the events a session is given yields the server state filtered to that session, at every offset`, () => {
      fc.assert(
        fc.property(fc.array(event, { maxLength: 60 }), fc.constantFrom('A', 'B'), (events, session) => {
          let server: StreamState = initialState(kind);
          let replica: StreamState = initialState(kind);
          for (const e of events) {
            const eventSession = sessionOfEvent(kind, server, e);
            server = applyEvent(server, e);
            const given = eventForSession(kind, e, session, eventSession);
            if (given) replica = applyEvent(replica, given);
            expect(replica).toEqual(stateForSession(kind, server, session));
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it("gives a session none of another session's entities, and every account-wide one", () => {
    const state = {
      balances: { USD: { currency: 'USD' } },
      positions: { BTC: { symbol: 'BTC', session_id: 'A' }, ETH: { symbol: 'ETH', session_id: 'B' }, SOL: { symbol: 'SOL' } },
      portfolio: {},
      campaigns: {},
    } as unknown as StreamState;
    expect(stateForSession('portfolio', state, 'A')).toEqual({ ...state, positions: { BTC: { symbol: 'BTC', session_id: 'A' }, SOL: { symbol: 'SOL' } } });
    const market = { last: null } as StreamState;
    expect(stateForSession('market', market, 'A')).toBe(market);
  });
});

describe('applyWithSessions', () => {
  it('gives the state applyEvents gives, and for each event the session sessionOfEvent gives one event at a time', () => {
    for (const [kind, event] of cases) {
      fc.assert(
        fc.property(fc.array(event, { maxLength: 40 }), (events) => {
          let state: StreamState = initialState(kind);
          const expected: Array<string | null | undefined> = [];
          for (const e of events) {
            expected.push(sessionOfEvent(kind, state, e));
            state = applyEvent(state, e);
          }
          const result = applyWithSessions(kind, initialState(kind), events);
          expect(result.sessions).toEqual(expected);
          expect(result.state).toEqual(state);
        }),
        { numRuns: 100 },
      );
    }
  });
});
