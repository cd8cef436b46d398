import {
  ACCOUNT_STREAM_KINDS,
  streamName,
  type OrdersState,
  type PortfolioState,
  type SignalsState,
  type StateMachinesState,
  type IndicatorsState,
  type StateSyncData,
} from '@tradesync/protocol';
import type { StreamStore } from './store.js';

/**
 * Read-only views over the store for the request/response parts of the contract:
 * `state_sync_response` / `GET /api/state/snapshot` and `initial_state`.
 */

const bySession = (sessionId: string | undefined) => (entity: { session_id?: unknown }) =>
  sessionId === undefined || entity.session_id === sessionId;

export function buildStateSync(store: StreamStore, account: string, sessionId: string | undefined): StateSyncData {
  const portfolio = store.stateOf(streamName('portfolio', account)) as PortfolioState;
  const orders = store.stateOf(streamName('orders', account)) as OrdersState;
  const signals = store.stateOf(streamName('signals', account)) as SignalsState;
  const machines = store.stateOf(streamName('state_machines', account)) as StateMachinesState;
  const indicators = store.stateOf(streamName('indicators', account)) as IndicatorsState;
  return {
    timestamp: new Date().toISOString(),
    account,
    session_id: sessionId ?? null,
    positions: Object.values(portfolio.positions),
    active_signals: Object.values(signals.signals).filter((s) => s.status === 'pending').filter(bySession(sessionId)),
    state_machine_state: Object.values(machines.instances).filter(bySession(sessionId)),
    indicator_values: indicators.indicators,
    pending_orders: Object.values(orders.orders).filter(bySession(sessionId)),
    streams: streamPositions(store, account),
  };
}

/** `{epoch, offset}` of each of an account's streams, so a client knows where the data stands. */
function streamPositions(store: StreamStore, account: string): Record<string, { epoch: string; offset: number }> {
  const out: Record<string, { epoch: string; offset: number }> = {};
  for (const kind of ACCOUNT_STREAM_KINDS) {
    const entry = store.get(streamName(kind, account));
    if (entry) out[entry.name] = { epoch: entry.epoch, offset: entry.head };
  }
  return out;
}

export function portfolioPart(store: StreamStore, account: string): Record<string, unknown> {
  const name = streamName('portfolio', account);
  const state = store.stateOf(name) as PortfolioState;
  const entry = store.get(name);
  return {
    account,
    ...state.portfolio,
    balances: state.balances,
    positions: state.positions,
    campaigns: state.campaigns,
    // When the portfolio last changed: the time of its newest event (null before any).
    last_updated: entry?.window.at(-1)?.timestamp ?? null,
    epoch: entry?.epoch ?? null,
    offset: entry?.head ?? 0,
  };
}

export function balancesPart(store: StreamStore, account: string): Record<string, unknown> {
  return { ...(store.stateOf(streamName('portfolio', account)) as PortfolioState).balances };
}

export function ordersPart(store: StreamStore, account: string): Record<string, unknown> {
  const name = streamName('orders', account);
  const open = Object.values((store.stateOf(name) as OrdersState).orders);
  const entry = store.get(name);
  return { open_orders: open, count: open.length, epoch: entry?.epoch ?? null, offset: entry?.head ?? 0 };
}
