import { eventForSession, hasSessions, sessionOfEvent, stateForSession, type Snapshot, type StreamPosition } from '@tradesync/protocol';
import type { Engine, StoredEvent } from '../engines/engine.js';
import type { StreamEntry, StreamStore } from '../state/store.js';
import { newestPerEntity } from './conflation.js';

/** What a `subscribed` reply carries: the missed events, or a snapshot. */
export type SubscribePlan =
  | { readonly recovered: true; readonly epoch: string; readonly offset: number; readonly events: readonly StoredEvent[] }
  | { readonly recovered: false; readonly epoch: string; readonly offset: number; readonly snapshot: Snapshot };

/** Events read from the engine ahead of time, for a resume the memory window cannot answer. */
export type Prefetched = readonly StoredEvent[] | undefined;

/**
 * The asynchronous half of a subscribe: when the client's position is older than the
 * memory window but may still be in the engine's history, read those events now.
 */
export async function prefetchMissed(
  store: StreamStore,
  engine: Engine,
  entry: StreamEntry,
  since: StreamPosition | undefined,
  maxRecoveryEvents: number,
): Promise<Prefetched> {
  if (!since || since.epoch !== entry.epoch || since.offset >= entry.head) return undefined;
  if (entry.head - since.offset > maxRecoveryEvents) return undefined;
  if (store.windowAfter(entry, since.offset)) return undefined;
  const result = await engine.read(entry.name, since.offset, maxRecoveryEvents);
  return result.trimmed ? undefined : result.events;
}

/**
 * The synchronous half: decides recovered-or-snapshot against the stream as it is at
 * this very moment. The caller registers the subscription in the same synchronous
 * block, so the reply's offset and the first live event after it are adjacent:
 * no gap, no duplicate. A conflated subscription's resume replays only the newest
 * event per entity; a session-scoped one gets that session's view (see the protocol's
 * sessions.ts): its snapshot, and only the replayed events it would have been sent.
 */
export function planSubscription(
  store: StreamStore,
  entry: StreamEntry,
  since: StreamPosition | undefined,
  prefetched: Prefetched,
  maxRecoveryEvents: number,
  scope: { readonly conflated?: boolean; readonly session?: string | undefined } = {},
): SubscribePlan {
  const plan = planFull(store, entry, since, prefetched, maxRecoveryEvents);
  const { session } = scope;
  if (session !== undefined && hasSessions(entry.kind)) {
    if (!plan.recovered) return { ...plan, snapshot: { ...plan.snapshot, state: { ...stateForSession(entry.kind, entry.state, session) } } };
    const events: StoredEvent[] = [];
    for (const event of plan.events) {
      // Events read from the engine (older than this process) were not judged when applied:
      // judge them against the state now (an entity gone since is account-wide to them, and they are sent).
      const eventSession = entry.sessions.has(event) ? entry.sessions.get(event) : sessionOfEvent(entry.kind, entry.state, event);
      const given = eventForSession(entry.kind, event, session, eventSession);
      if (given) events.push(given);
    }
    return { ...plan, events };
  }
  return scope.conflated && plan.recovered ? { ...plan, events: newestPerEntity(entry.kind, plan.events) } : plan;
}

function planFull(
  store: StreamStore,
  entry: StreamEntry,
  since: StreamPosition | undefined,
  prefetched: Prefetched,
  maxRecoveryEvents: number,
): SubscribePlan {
  const { epoch, head } = entry;
  if (since && since.epoch === epoch && since.offset <= head && head - since.offset <= maxRecoveryEvents) {
    const fromWindow = store.windowAfter(entry, since.offset);
    if (fromWindow) return { recovered: true, epoch, offset: head, events: fromWindow };
    if (prefetched && prefetched.length > 0 && prefetched[0]!.offset === since.offset + 1) {
      const last = prefetched[prefetched.length - 1]!.offset;
      // Events appended while we read come from the window; both halves must meet.
      const rest = last >= head ? [] : store.windowAfter(entry, last);
      if (rest) {
        const events = [...prefetched.filter((e) => e.offset <= head), ...rest];
        if (events.length === head - since.offset) return { recovered: true, epoch, offset: head, events };
      }
    }
  }
  return { recovered: false, epoch, offset: head, snapshot: snapshotOf(entry) };
}

/** The stream's state at its head, as a `subscribed` reply carries it. */
export function snapshotOf(entry: StreamEntry): Snapshot {
  // A shallow copy of the top level (a handful of collections), which also makes the
  // typed state a plain record without a cast.
  return { epoch: entry.epoch, offset: entry.head, state: { ...entry.state } };
}
