import type { Alert, Balance, Campaign, Instance, MarketTick, Order, Pattern, PortfolioTotals, Position, Signal } from './entities.js';
import { CLOSED_ORDER_STATUSES } from './entities.js';
import { EVENT_TYPES, isEventType, type ReducibleEvent } from './events.js';
import type { StreamKind } from './streams.js';

/**
 * The one reducer. The server's state store and every client replica call it, so a
 * replica and the server cannot drift by construction. It is pure (a new state is
 * returned, the old one is never touched) and idempotent (events carry whole
 * entities, upserted or removed by id, so applying one twice changes nothing).
 */

export interface OrdersState { readonly orders: Readonly<Record<string, Order>> }
export interface PortfolioState {
  readonly balances: Readonly<Record<string, Balance>>;
  readonly positions: Readonly<Record<string, Position>>;
  readonly portfolio: Readonly<Partial<PortfolioTotals>>;
  readonly campaigns: Readonly<Record<string, Campaign>>;
}
export interface SignalsState {
  readonly signals: Readonly<Record<string, Signal>>;
  readonly patterns: Readonly<Record<string, Pattern>>;
}
export interface StateMachinesState { readonly instances: Readonly<Record<string, Instance>> }
export interface IndicatorsState { readonly indicators: Readonly<Record<string, Readonly<Record<string, string>>>> }
export type AlertEntry = Alert & { readonly alert_type: string };
export interface AlertsState { readonly alerts: readonly AlertEntry[] }
export interface MarketState { readonly last: MarketTick | null }

export interface StreamStates {
  orders: OrdersState;
  portfolio: PortfolioState;
  signals: SignalsState;
  state_machines: StateMachinesState;
  indicators: IndicatorsState;
  alerts: AlertsState;
  market: MarketState;
}
export type StreamState = StreamStates[StreamKind];

/** Bounds that keep a stream's state from growing without end; oldest entries go first. */
export const STATE_LIMITS = { signals: 1000, patterns: 200, alerts: 100 } as const;

export function initialState<K extends StreamKind>(kind: K): StreamStates[K] {
  const states: StreamStates = {
    orders: { orders: {} },
    portfolio: { balances: {}, positions: {}, portfolio: {}, campaigns: {} },
    signals: { signals: {}, patterns: {} },
    state_machines: { instances: {} },
    indicators: { indicators: {} },
    alerts: { alerts: [] },
    market: { last: null },
  };
  return states[kind];
}

type Reducer<S> = (state: S, event: ReducibleEvent) => S;

function upsert<T>(map: Readonly<Record<string, T>>, id: string, value: T): Record<string, T> {
  return { ...map, [id]: value };
}

function remove<T>(map: Readonly<Record<string, T>>, id: string): Readonly<Record<string, T>> {
  if (!Object.hasOwn(map, id)) return map;
  const next = { ...map };
  delete next[id];
  return next;
}

/** Keeps the newest `limit` keys (insertion order), so memory stays bounded. */
function bounded<T>(map: Record<string, T>, limit: number): Record<string, T> {
  const keys = Object.keys(map);
  if (keys.length <= limit) return map;
  for (const key of keys.slice(0, keys.length - limit)) delete map[key];
  return map;
}

const str = (value: unknown): string => String(value);

/** The entity stored under `id`, never one inherited from Object.prototype (e.g. `constructor`). */
function own<T>(map: Readonly<Record<string, T>>, id: string): T | undefined {
  return Object.hasOwn(map, id) ? map[id] : undefined;
}

const reduceOrders: Reducer<OrdersState> = (state, { type, data }) => {
  switch (type) {
    case 'order:updated': {
      const id = str(data.order_id);
      // An update that closes the order removes it: the state holds open orders only.
      if (CLOSED_ORDER_STATUSES.has(str(data.status))) return { orders: remove(state.orders, id) };
      return { orders: upsert(state.orders, id, data as Order) };
    }
    case 'order:closed':
      return { orders: remove(state.orders, str(data.order_id)) };
    default:
      return state;
  }
};

const reducePortfolio: Reducer<PortfolioState> = (state, { type, data }) => {
  switch (type) {
    case 'balance:updated':
      return { ...state, balances: upsert(state.balances, str(data.currency), data as Balance) };
    case 'position:updated':
      return { ...state, positions: upsert(state.positions, str(data.symbol), data as Position) };
    case 'position:closed':
      return { ...state, positions: remove(state.positions, str(data.symbol)) };
    case 'portfolio:updated':
      return { ...state, portfolio: { ...(data as PortfolioTotals) } };
    case 'campaign:updated':
      return { ...state, campaigns: upsert(state.campaigns, str(data.campaign_id), data as Campaign) };
    default:
      return state;
  }
};

const reduceSignals: Reducer<SignalsState> = (state, { type, data }) => {
  switch (type) {
    case 'signal:new':
      return { ...state, signals: bounded(upsert(state.signals, str(data.id), data as Signal), STATE_LIMITS.signals) };
    case 'signal:executed':
    case 'signal:rejected': {
      const id = str(data.id);
      const existing = own(state.signals, id);
      if (!existing) return state;
      const status = type === 'signal:executed' ? 'executed' : 'rejected';
      return { ...state, signals: upsert(state.signals, id, { ...existing, status, ...data } as Signal) };
    }
    case 'pattern_detected':
      return { ...state, patterns: bounded(upsert(state.patterns, str(data.id), data as Pattern), STATE_LIMITS.patterns) };
    default:
      return state;
  }
};

function keyById(instances: readonly Instance[]): Record<string, Instance> {
  const out: Record<string, Instance> = {};
  for (const instance of instances) out[instance.instance_id] = instance;
  return out;
}

const reduceStateMachines: Reducer<StateMachinesState> = (state, { type, data }) => {
  switch (type) {
    case 'instance_added':
      return { instances: upsert(state.instances, str(data.instance_id), data as Instance) };
    case 'state_change': {
      const id = str(data.instance_id);
      const existing = own(state.instances, id);
      // A change for an instance we never saw cannot make a whole entity: ignore it.
      if (!existing) return state;
      return { instances: upsert(state.instances, id, { ...existing, ...data } as Instance) };
    }
    case 'instance_removed':
      return { instances: remove(state.instances, str(data.instance_id)) };
    case 'full_update':
      return { instances: keyById(data.instances as Instance[]) };
    default:
      return state;
  }
};

const reduceIndicators: Reducer<IndicatorsState> = (state, { type, data }) => {
  if (type !== 'indicator:updated') return state;
  const symbol = str(data.symbol);
  const values = state.indicators[symbol] ?? {};
  return { indicators: { ...state.indicators, [symbol]: { ...values, [str(data.name)]: str(data.value) } } };
};

const reduceAlerts: Reducer<AlertsState> = (state, { type, data }) => {
  if (type !== 'liquidation_alert' && type !== 'reconciliation_mismatch') return state;
  const entry = { ...data, alert_type: type } as AlertEntry;
  const index = state.alerts.findIndex((a) => a.id === entry.id);
  if (index >= 0) {
    const alerts = state.alerts.slice();
    alerts[index] = entry;
    return { alerts };
  }
  return { alerts: [...state.alerts, entry].slice(-STATE_LIMITS.alerts) };
};

const reduceMarket: Reducer<MarketState> = (state, { type, data }) =>
  type === 'market:tick' ? { last: data as MarketTick } : state;

export const reducers: { readonly [K in StreamKind]: Reducer<StreamStates[K]> } = {
  orders: reduceOrders,
  portfolio: reducePortfolio,
  signals: reduceSignals,
  state_machines: reduceStateMachines,
  indicators: reduceIndicators,
  alerts: reduceAlerts,
  market: reduceMarket,
};

/**
 * Applies one event to the state of the stream kind the event's type belongs to.
 * An unknown type leaves the state as it was.
 */
export function applyEvent<S extends StreamState>(state: S, event: ReducibleEvent): S {
  if (!isEventType(event.type)) return state;
  const reducer = reducers[EVENT_TYPES[event.type].kind] as Reducer<StreamState>;
  return reducer(state, event) as S;
}

/** Applies events in order. */
export function applyEvents<S extends StreamState>(state: S, events: Iterable<ReducibleEvent>): S {
  let next = state;
  for (const event of events) next = applyEvent(next, event);
  return next;
}
