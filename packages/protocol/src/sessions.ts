import { applyEvents, type AlertsState, type IndicatorsState, type MarketState, type OrdersState, type PortfolioState, type SignalsState, type StateMachinesState, type StreamState, type StreamStates } from './reducer.js';
import type { StreamKind } from './streams.js';

/**
 * Session-scoped subscriptions (`subscribe` with `params.session_id`, seed 001's
 * `subscribe('state_machines', {session_id})`): the subscriber sees only that session's
 * entities — in its snapshot, its replayed events, its live events and its checksums.
 *
 * The rule, the same for every kind: an entity that carries a `session_id` field belongs
 * to that session (`null`: to none) and is shown only to a subscription of that session;
 * an entity without the field (a balance, the portfolio totals, a campaign, a position
 * or pattern with no session) belongs to the account and is shown to every session.
 * Orders, signals and strategy instances always carry `session_id`; positions and
 * patterns when the producer sets it. Market and indicator streams have no sessions.
 *
 * An event goes to a session's subscription when the entity it touches is of that
 * session or of the account: an upsert says so in its `session_id`; an update or removal
 * by id (`state_change`, `order:closed`, `signal:executed`, …) is of the session the
 * entity had before it. A `full_update` goes with its instances filtered. So the state a
 * session subscriber reduces is exactly the server's state filtered to the session, at
 * every offset (offsets of the events it is not given are skipped: they jump).
 */
export const SESSION_KINDS: readonly StreamKind[] = ['orders', 'signals', 'state_machines', 'portfolio'];

export function hasSessions(kind: StreamKind): boolean {
  return SESSION_KINDS.includes(kind);
}

type Entity = Readonly<Record<string, unknown>>;

/** The session an entity belongs to: its `session_id`, or undefined for an account-wide one (no such field). */
function sessionOfEntity(entity: unknown): string | null | undefined {
  if (entity === null || typeof entity !== 'object' || !Object.hasOwn(entity, 'session_id')) return undefined;
  const session = (entity as Entity).session_id;
  return typeof session === 'string' ? session : null;
}

function shownTo(entity: unknown, session: string): boolean {
  const own = sessionOfEntity(entity);
  return own === undefined || own === session;
}

function filterMap<T>(map: Readonly<Record<string, T>>, session: string): Readonly<Record<string, T>> {
  let kept: Record<string, T> | undefined;
  const keys = Object.keys(map);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (shownTo(map[key], session)) {
      if (kept) kept[key] = map[key]!;
    } else if (!kept) {
      // Copy lazily: a map with nothing to drop is returned as it is.
      kept = {};
      for (let j = 0; j < i; j++) kept[keys[j]!] = map[keys[j]!]!;
    }
  }
  return kept ?? map;
}

const filters: { readonly [K in StreamKind]: (state: StreamStates[K], session: string) => StreamStates[K] } = {
  orders: (s: OrdersState, session) => ({ orders: filterMap(s.orders, session) }),
  signals: (s: SignalsState, session) => ({ signals: filterMap(s.signals, session), patterns: filterMap(s.patterns, session) }),
  state_machines: (s: StateMachinesState, session) => ({ instances: filterMap(s.instances, session) }),
  portfolio: (s: PortfolioState, session) => ({ ...s, positions: filterMap(s.positions, session) }),
  indicators: (s: IndicatorsState) => s,
  alerts: (s: AlertsState) => s,
  market: (s: MarketState) => s,
};

/** The state a subscription of `session` sees: the stream's state with other sessions' entities left out. */
export function stateForSession<S extends StreamState>(kind: StreamKind, state: S, session: string): S {
  return (filters[kind] as (state: StreamState, session: string) => StreamState)(state, session) as S;
}

/**
 * The session of the entity an event touches, judged against the state *before* it:
 * the event's own `session_id` when it has one, else that of the entity it names by
 * id; undefined when it is about the account (or about an entity the state never had).
 */
export function sessionOfEvent(kind: StreamKind, before: StreamState, event: { readonly type: string; readonly data: Entity }): string | null | undefined {
  const { type, data } = event;
  if (Object.hasOwn(data, 'session_id')) return sessionOfEntity(data);
  const byId = (map: Readonly<Record<string, unknown>>, id: unknown) => (typeof id === 'string' && Object.hasOwn(map, id) ? sessionOfEntity(map[id]) : undefined);
  switch (kind) {
    case 'orders':
      return byId((before as OrdersState).orders, data.order_id);
    case 'signals':
      return type === 'pattern_detected' ? undefined : byId((before as SignalsState).signals, data.id);
    case 'state_machines':
      return byId((before as StateMachinesState).instances, data.instance_id);
    case 'portfolio':
      return type === 'position:closed' ? byId((before as PortfolioState).positions, data.symbol) : undefined;
    default:
      return undefined;
  }
}

/**
 * The event as a subscription of `session` gets it: as it is, with its instances
 * filtered (`full_update`), or not at all (another session's entity). `eventSession`
 * is what `sessionOfEvent` said for it.
 */
export function eventForSession<E extends { readonly type: string; readonly data: Entity }>(
  kind: StreamKind,
  event: E,
  session: string,
  eventSession: string | null | undefined,
): E | undefined {
  if (!hasSessions(kind)) return event;
  if (event.type === 'full_update' && Array.isArray(event.data.instances)) {
    const instances = (event.data.instances as unknown[]).filter((instance) => shownTo(instance, session));
    return instances.length === event.data.instances.length ? event : { ...event, data: { ...event.data, instances } };
  }
  return eventSession === undefined || eventSession === session ? event : undefined;
}

/**
 * Applies events in order (as `applyEvents`) and says, for each, `sessionOfEvent`
 * against the state just before it. Events that name their session need no state, so
 * the state is reduced in as few batches as the lookups of the others allow.
 */
export function applyWithSessions<S extends StreamState>(
  kind: StreamKind,
  state: S,
  events: readonly { readonly type: string; readonly data: Entity }[],
): { state: S; sessions: Array<string | null | undefined> } {
  const sessions: Array<string | null | undefined> = [];
  let current = state;
  let reduced = 0;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (Object.hasOwn(event.data, 'session_id') || !hasSessions(kind)) {
      sessions.push(sessionOfEntity(event.data));
      continue;
    }
    if (reduced < i) {
      current = applyEvents(current, events.slice(reduced, i));
      reduced = i;
    }
    sessions.push(sessionOfEvent(kind, current, event));
  }
  if (reduced < events.length) current = applyEvents(current, reduced === 0 ? events : events.slice(reduced));
  return { state: current, sessions };
}
