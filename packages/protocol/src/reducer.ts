import type { Alert, Balance, Campaign, Instance, MarketTick, Order, Pattern, PortfolioTotals, Position, Signal } from './entities.js';
import { CLOSED_ORDER_STATUSES } from './entities.js';
import { EVENT_TYPES, isEventType, type ReducibleEvent } from './events.js';
import type { StreamKind } from './streams.js';

/**
 * The one reducer. The server's state store and every client replica call it, so a
 * replica and the server cannot drift by construction. It is pure (a new state is
 * returned, the old one is never touched) and idempotent (events carry whole
 * entities, upserted or removed by id, so applying one twice changes nothing).
 *
 * Within one `applyEvents` call a collection is copied at most once and then changed
 * in place (copy-on-write per batch): a batch of a hundred signals copies the signals
 * map once, not a hundred times.
 *
 * Longer than ~300 lines on purpose: the rules of every stream kind, side by side in
 * the one file that server and clients share, so a change to one kind is read against
 * all the others.
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

/**
 * Bounds that keep a stream's state from growing without end; oldest entries go first.
 * Signals and patterns may exceed their limit by a tenth before the oldest are dropped
 * all at once (dropping one per insert would rebuild the map on every event).
 */
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

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Copy-on-write for one batch: `own(x)` returns a writable copy of `x` the first time
 * and the same copy after that. Objects the caller passed in are never written.
 */
class Draft {
  readonly #fresh = new WeakSet<object>();

  own<T extends object>(value: T): Writable<T> {
    if (this.#fresh.has(value)) return value;
    const copy = (Array.isArray(value) ? value.slice() : { ...value }) as Writable<T>;
    this.#fresh.add(copy);
    return copy;
  }

  /** Registers an object this batch built from scratch, so it is written in place. */
  made<T extends object>(value: T): T {
    this.#fresh.add(value);
    return value;
  }
}

type Reducer<S> = (state: S, event: ReducibleEvent, draft: Draft) => S;

/**
 * Key counts of collections, remembered per object. States are never changed once a
 * batch returns them, so a count stays true for its object; `bounded` then needs no
 * scan of a thousand keys on every insert.
 */
const sizes = new WeakMap<object, number>();

function sizeOf(map: object): number {
  let size = sizes.get(map);
  if (size === undefined) sizes.set(map, (size = Object.keys(map).length));
  return size;
}

function upsert<T>(draft: Draft, map: Readonly<Record<string, T>>, id: string, value: T): Record<string, T> {
  const size = sizeOf(map) + (Object.hasOwn(map, id) ? 0 : 1);
  const next = draft.own(map) as Record<string, T>;
  next[id] = value;
  sizes.set(next, size);
  return next;
}

function remove<T>(draft: Draft, map: Readonly<Record<string, T>>, id: string): Readonly<Record<string, T>> {
  if (!Object.hasOwn(map, id)) return map;
  const size = sizeOf(map) - 1;
  const next = draft.own(map) as Record<string, T>;
  delete next[id];
  sizes.set(next, size);
  return next;
}

/** Keeps at most `limit` + a tenth keys; past that, the newest `limit` (insertion order). */
function bounded<T>(draft: Draft, map: Record<string, T>, limit: number): Record<string, T> {
  if (sizeOf(map) <= limit + Math.ceil(limit / 10)) return map;
  const keys = Object.keys(map);
  const kept: Record<string, T> = {};
  for (const key of keys.slice(keys.length - limit)) kept[key] = map[key]!;
  sizes.set(kept, limit);
  return draft.made(kept);
}

const str = (value: unknown): string => String(value);

/** The entity stored under `id`, never one inherited from Object.prototype (e.g. `constructor`). */
function own<T>(map: Readonly<Record<string, T>>, id: string): T | undefined {
  return Object.hasOwn(map, id) ? map[id] : undefined;
}

const reduceOrders: Reducer<OrdersState> = (state, { type, data }, draft) => {
  switch (type) {
    case 'order:updated': {
      const id = str(data.order_id);
      const next = draft.own(state);
      // An update that closes the order removes it: the state holds open orders only.
      next.orders = CLOSED_ORDER_STATUSES.has(str(data.status)) ? remove(draft, state.orders, id) : upsert(draft, state.orders, id, data as Order);
      return next;
    }
    case 'order:closed': {
      const orders = remove(draft, state.orders, str(data.order_id));
      if (orders === state.orders) return state;
      const next = draft.own(state);
      next.orders = orders;
      return next;
    }
    default:
      return state;
  }
};

const reducePortfolio: Reducer<PortfolioState> = (state, { type, data }, draft) => {
  switch (type) {
    case 'balance:updated': {
      const next = draft.own(state);
      next.balances = upsert(draft, state.balances, str(data.currency), data as Balance);
      return next;
    }
    case 'position:updated': {
      const next = draft.own(state);
      next.positions = upsert(draft, state.positions, str(data.symbol), data as Position);
      return next;
    }
    case 'position:closed': {
      const positions = remove(draft, state.positions, str(data.symbol));
      if (positions === state.positions) return state;
      const next = draft.own(state);
      next.positions = positions;
      return next;
    }
    case 'portfolio:updated': {
      const next = draft.own(state);
      next.portfolio = { ...(data as PortfolioTotals) };
      return next;
    }
    case 'campaign:updated': {
      const next = draft.own(state);
      next.campaigns = upsert(draft, state.campaigns, str(data.campaign_id), data as Campaign);
      return next;
    }
    default:
      return state;
  }
};

const reduceSignals: Reducer<SignalsState> = (state, { type, data }, draft) => {
  switch (type) {
    case 'signal:new': {
      const next = draft.own(state);
      next.signals = bounded(draft, upsert(draft, state.signals, str(data.id), data as Signal), STATE_LIMITS.signals);
      return next;
    }
    case 'signal:executed':
    case 'signal:rejected': {
      const id = str(data.id);
      const existing = own(state.signals, id);
      if (!existing) return state;
      const status = type === 'signal:executed' ? 'executed' : 'rejected';
      const next = draft.own(state);
      next.signals = upsert(draft, state.signals, id, { ...existing, status, ...data });
      return next;
    }
    case 'pattern_detected': {
      const next = draft.own(state);
      next.patterns = bounded(draft, upsert(draft, state.patterns, str(data.id), data as Pattern), STATE_LIMITS.patterns);
      return next;
    }
    default:
      return state;
  }
};

function keyById(instances: readonly Instance[]): Record<string, Instance> {
  const out: Record<string, Instance> = {};
  for (const instance of instances) out[instance.instance_id] = instance;
  return out;
}

const reduceStateMachines: Reducer<StateMachinesState> = (state, { type, data }, draft) => {
  switch (type) {
    case 'instance_added': {
      const next = draft.own(state);
      next.instances = upsert(draft, state.instances, str(data.instance_id), data as Instance);
      return next;
    }
    case 'state_change': {
      const id = str(data.instance_id);
      const existing = own(state.instances, id);
      // A change for an instance we never saw cannot make a whole entity: ignore it.
      if (!existing) return state;
      const next = draft.own(state);
      next.instances = upsert(draft, state.instances, id, { ...existing, ...data });
      return next;
    }
    case 'instance_removed': {
      const instances = remove(draft, state.instances, str(data.instance_id));
      if (instances === state.instances) return state;
      const next = draft.own(state);
      next.instances = instances;
      return next;
    }
    case 'full_update': {
      const next = draft.own(state);
      next.instances = draft.made(keyById(data.instances as Instance[]));
      return next;
    }
    default:
      return state;
  }
};

const reduceIndicators: Reducer<IndicatorsState> = (state, { type, data }, draft) => {
  if (type !== 'indicator:updated') return state;
  const symbol = str(data.symbol);
  const values = upsert(draft, own(state.indicators, symbol) ?? {}, str(data.name), str(data.value));
  const next = draft.own(state);
  next.indicators = upsert(draft, state.indicators, symbol, values);
  return next;
};

const reduceAlerts: Reducer<AlertsState> = (state, { type, data }, draft) => {
  if (type !== 'liquidation_alert' && type !== 'reconciliation_mismatch') return state;
  const entry = { ...data, alert_type: type } as AlertEntry;
  const alerts: AlertEntry[] = draft.own(state.alerts);
  const index = alerts.findIndex((a) => a.id === entry.id);
  if (index >= 0) alerts[index] = entry;
  else {
    alerts.push(entry);
    if (alerts.length > STATE_LIMITS.alerts) alerts.splice(0, alerts.length - STATE_LIMITS.alerts);
  }
  const next = draft.own(state);
  next.alerts = alerts;
  return next;
};

const reduceMarket: Reducer<MarketState> = (state, { type, data }, draft) => {
  if (type !== 'market:tick') return state;
  const next = draft.own(state);
  next.last = data as MarketTick;
  return next;
};

const reducers: { readonly [K in StreamKind]: Reducer<StreamStates[K]> } = {
  orders: reduceOrders,
  portfolio: reducePortfolio,
  signals: reduceSignals,
  state_machines: reduceStateMachines,
  indicators: reduceIndicators,
  alerts: reduceAlerts,
  market: reduceMarket,
};

function reduce(state: StreamState, event: ReducibleEvent, draft: Draft): StreamState {
  if (!isEventType(event.type)) return state;
  const reducer = reducers[EVENT_TYPES[event.type].kind] as Reducer<StreamState>;
  return reducer(state, event, draft);
}

/**
 * Applies one event to the state of the stream kind the event's type belongs to.
 * An unknown type leaves the state as it was.
 */
export function applyEvent<S extends StreamState>(state: S, event: ReducibleEvent): S {
  return reduce(state, event, new Draft()) as S;
}

/** Applies events in order, copying each collection they touch once for the whole batch. */
export function applyEvents<S extends StreamState>(state: S, events: Iterable<ReducibleEvent>): S {
  const draft = new Draft();
  let next: StreamState = state;
  for (const event of events) next = reduce(next, event, draft);
  return next as S;
}
