import {
  ACCOUNT_STREAM_KINDS,
  ErrorCode,
  streamName,
  type FailedStream,
  type AccountStreamKind,
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
  const failed: FailedStream[] = [];
  // A part comes from one stream; a stream this node knows to be behind its log gives null.
  const part = <S, T>(kind: AccountStreamKind, build: (state: S) => T): T | null => {
    const name = streamName(kind, account);
    const why = store.unavailable(name);
    if (why === undefined) return build(store.stateOf(name) as S);
    failed.push(unavailableStream(name, why));
    return null;
  };
  const inSession = bySession(sessionId);
  const data = {
    timestamp: new Date().toISOString(),
    account,
    session_id: sessionId ?? null,
    positions: part('portfolio', (s: PortfolioState) => Object.values(s.positions)),
    active_signals: part('signals', (s: SignalsState) => Object.values(s.signals).filter((x) => x.status === 'pending').filter(inSession)),
    state_machine_state: part('state_machines', (s: StateMachinesState) => Object.values(s.instances).filter(inSession)),
    indicator_values: part('indicators', (s: IndicatorsState) => s.indicators),
    pending_orders: part('orders', (s: OrdersState) => Object.values(s.orders).filter(inSession)),
    streams: streamPositions(store, account),
  };
  return { ...data, failed_streams: failed };
}

/** A stream whose log cannot be re-read now (see StreamStore.unavailable), as a state sync names it. */
export function unavailableStream(name: string, why: string): FailedStream {
  return { stream: name, code: ErrorCode.UNAVAILABLE, message: `${name} cannot be read from the event log right now: ${why}` };
}

/** `success` and, when a part failed, the `error` that sums it up (seed 000's `success: false`). */
export function stateSyncOutcome(sync: StateSyncData): { success: boolean; error?: { code: string; message: string } } {
  const failed = sync.failed_streams;
  if (failed.length === 0) return { success: true };
  return { success: false, error: { code: ErrorCode.UNAVAILABLE, message: `could not build the part${failed.length > 1 ? 's' : ''} of ${failed.map((f) => f.stream).join(', ')}; the rest is current` } };
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
