import { CLOSED_ORDER_STATUSES } from './entities.js';
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

/** The id an event of a kind with sessions names its entity by (positions: the symbol), or undefined. */
function entityIdOf(kind: StreamKind, event: { readonly type: string; readonly data: Entity }): string | undefined {
  const { type, data } = event;
  const id =
    kind === 'orders' ? data.order_id
    : kind === 'signals' ? (type === 'pattern_detected' ? undefined : data.id)
    : kind === 'state_machines' ? data.instance_id
    : kind === 'portfolio' && (type === 'position:updated' || type === 'position:closed') ? data.symbol
    : undefined;
  return typeof id === 'string' ? id : undefined;
}

/** Whether the event removes the entity it names. */
function removes(type: string, data: Entity): boolean {
  return type === 'order:closed' || type === 'instance_removed' || type === 'position:closed' || (type === 'order:updated' && isClosedStatus(data.status));
}

const isClosedStatus = (status: unknown) => typeof status === 'string' && CLOSED_ORDER_STATUSES.has(status);

const REMOVED = Symbol('removed');

/**
 * Applies events in order (as `applyEvents`, in one batch) and says, for each,
 * `sessionOfEvent` against the state just before it. The state is reduced once: an
 * event that names no session is judged against the state before the batch, overlaid
 * with what the batch's earlier events did to the entities (created with a session,
 * removed, or all replaced by a `full_update`).
 */
export function applyWithSessions<S extends StreamState>(
  kind: StreamKind,
  state: S,
  events: readonly { readonly type: string; readonly data: Entity }[],
): { state: S; sessions: Array<string | null | undefined> } {
  const sessions: Array<string | null | undefined> = [];
  if (!hasSessions(kind)) {
    for (const event of events) sessions.push(sessionOfEntity(event.data));
    return { state: applyEvents(state, events), sessions };
  }
  /** What this batch did to each entity so far; with `replaced`, the state before the batch no longer counts. */
  const overlay = new Map<string, string | null | undefined | typeof REMOVED>();
  let replaced = false;
  for (const event of events) {
    const { type, data } = event;
    const id = entityIdOf(kind, event);
    if (Object.hasOwn(data, 'session_id')) {
      sessions.push(sessionOfEntity(data));
    } else if (id !== undefined && overlay.has(id)) {
      const known = overlay.get(id);
      sessions.push(known === REMOVED ? undefined : known);
    } else {
      sessions.push(replaced ? undefined : sessionOfEvent(kind, state, event));
    }
    // Record the event's effect for the events after it.
    if (type === 'full_update' && Array.isArray(data.instances)) {
      overlay.clear();
      replaced = true;
      for (const instance of data.instances as unknown[]) {
        const instanceId = (instance as Entity | null)?.instance_id;
        if (typeof instanceId === 'string') overlay.set(instanceId, sessionOfEntity(instance));
      }
    } else if (id !== undefined) {
      if (removes(type, data)) overlay.set(id, REMOVED);
      else if (Object.hasOwn(data, 'session_id') || type === 'position:updated' || type === 'instance_added' || type === 'signal:new' || type === 'order:updated') overlay.set(id, sessionOfEntity(data));
    }
  }
  return { state: applyEvents(state, events), sessions };
}
