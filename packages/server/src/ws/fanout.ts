import { CloseCode, conflationKey, isConflatable, stateForSession, type StreamKind, type StreamPosition } from '@tradesync/protocol';
import type { StoredEvent } from '../engines/engine.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { AppliedEvent, StreamEntry } from '../state/store.js';
import { ConflationClock, ConflationGroup } from './conflation.js';
import type { Connection } from './connection.js';
import { BatchFrames, serializeEvent, SharedMessage, type PendingEvent } from './frames.js';
import { snapshotOf } from './resume.js';

/**
 * Live messages should stay under 10 KB (the seed dashboards' rule: a big payload goes
 * by link, as `pattern_detected`'s `full_details_url`). A bigger one is delivered all the
 * same, counted in `tradesync_large_events_total{type}` and logged once a minute per type.
 */
const LARGE_EVENT_BYTES = 10 * 1024;
const LARGE_EVENT_LOG_EVERY_MS = 60_000;


/**
 * Delivers applied events to the connections subscribed to their streams. Each event
 * is serialized once; each connection gets everything that became ready in the same
 * turn of the event loop as one frame, written on the next turn (`setImmediate`), so
 * no event waits to fill a batch.
 *
 * It is also the one place a subscription is registered: a connection is in a
 * stream's subscriber set exactly when it tracks that stream.
 */
export class Fanout {
  /** Every subscriber of each stream. */
  readonly #subscribers = new Map<string, Set<Connection>>();
  /** Of those, the ones given each event as it comes (not conflated). */
  readonly #direct = new Map<string, Set<Connection>>();
  /** The conflated ones, in one group per stream and rate. */
  readonly #groups = new Map<string, Map<number, ConflationGroup>>();
  readonly #dirty = new Set<Connection>();
  /** Releases the conflated subscriptions' frames (one timer per release time, for all of them). */
  readonly #clock = new ConflationClock();
  #received: number[] = [];
  #scheduled = false;

  /** When each event type last had a large-event WARN (see LARGE_EVENT_BYTES). */
  readonly #largeWarned = new Map<string, number>();

  constructor(
    private readonly metrics: Metrics,
    private readonly log?: Logger,
  ) {}

  #large(event: StoredEvent, length: number): void {
    this.metrics.largeEvents.inc({ type: event.type });
    const now = performance.now();
    const last = this.#largeWarned.get(event.type);
    if (last !== undefined && now - last < LARGE_EVENT_LOG_EVERY_MS) return;
    this.#largeWarned.set(event.type, now);
    this.log?.warn({ stream: event.stream, type: event.type, offset: event.offset, bytes: length }, 'a live event over 10 KB: clients receive it whole; send a summary with a link to the details instead');
  }

  /**
   * Registers a subscription whose `subscribed` reply gives the stream up to `position`,
   * conflated to `maxRate` frames a second when set. False (nothing registered) when the
   * peer has already hung up.
   */
  subscribe(connection: Connection, stream: string, sessionId: string | undefined, position: StreamPosition, maxRate?: number): boolean {
    // A peer can hang up while its subscribe is still being prepared (the handler awaits
    // the engine for missed events, which is real I/O for a networked engine). Once the
    // socket is CLOSED its 'close' handler has already run `removeAll`, so adding it now
    // would keep a dead connection subscribed forever: a leak, and work for every event.
    // (A socket still CLOSING is fine: `removeAll` runs when it closes.)
    if (connection.hungUp) return false;
    // A subscribe of a stream already subscribed replaces it (another rate, another position).
    this.#leave(connection, stream);
    let group: ConflationGroup | undefined;
    if (maxRate === undefined) {
      addTo(this.#direct, stream, connection);
    } else {
      let groups = this.#groups.get(stream);
      if (!groups) this.#groups.set(stream, (groups = new Map<number, ConflationGroup>()));
      group = groups.get(maxRate);
      if (!group) groups.set(maxRate, (group = new ConflationGroup(stream, maxRate, this.#clock, (type, members) => this.metrics.countSent(type, members))));
      group.members.add(connection);
    }
    connection.track(stream, sessionId, position, group);
    addTo(this.#subscribers, stream, connection);
    return true;
  }

  unsubscribe(connection: Connection, stream: string): void {
    this.#leave(connection, stream);
    connection.untrack(stream);
  }

  #leave(connection: Connection, stream: string): void {
    const maxRate = connection.maxRateOf(stream);
    if (maxRate !== undefined) {
      const groups = this.#groups.get(stream);
      const group = groups?.get(maxRate);
      group?.members.delete(connection);
      if (group && group.members.size === 0) {
        groups!.delete(maxRate);
        if (groups!.size === 0) this.#groups.delete(stream);
      }
    }
    removeFrom(this.#direct, stream, connection);
    removeFrom(this.#subscribers, stream, connection);
  }

  /** The socket closed: it leaves every stream. */
  removeAll(connection: Connection): void {
    for (const stream of connection.subscribedStreams()) this.unsubscribe(connection, stream);
    this.#dirty.delete(connection);
  }

  subscriberCount(stream: string): number {
    return this.#subscribers.get(stream)?.size ?? 0;
  }

  /** The subscribers of a stream; undefined when it has none. */
  subscribersOf(stream: string): ReadonlySet<Connection> | undefined {
    return this.#subscribers.get(stream);
  }

  /** Every stream with subscribers, and its subscribers. */
  subscriptions(): IterableIterator<[stream: string, subscribers: ReadonlySet<Connection>]> {
    return this.#subscribers.entries();
  }

  publish(applied: readonly AppliedEvent[]): void {
    for (const { event, receivedAt, session } of applied) {
      this.#received.push(receivedAt);
      const direct = this.#direct.get(event.stream);
      const groups = this.#groups.get(event.stream);
      if (!direct && !groups) continue;
      // Sent per type: one count of all its direct subscribers per event, not one per
      // connection (conflated ones are counted when their group releases the event).
      if (direct) this.metrics.countSent(event.type, direct.size);
      // One queued object per event, shared by every subscriber (no per-connection allocation).
      const json = serializeEvent(event);
      if (json.length > LARGE_EVENT_BYTES) this.#large(event, json.length);
      const kind = kindOf(event.stream);
      const key = isConflatable(kind) ? conflationKey(kind, event.data) : undefined;
      const pending: PendingEvent = { stream: event.stream, kind, offset: event.offset, key, event, session, json, tail: undefined };
      if (direct) {
        for (const connection of direct) {
          connection.enqueue(pending);
          this.#dirty.add(connection);
        }
      }
      // Conflated subscribers: one write per group; the group's release slot writes their frames.
      if (groups) for (const group of groups.values()) group.add(pending);
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /**
   * A stream's history vanished (new epoch): each subscriber gets the new state in
   * place, as an unasked `subscribed` with a snapshot (serialized once for all). A
   * subscriber whose send buffer cannot take that snapshot now is not sent it (pushing
   * it would only trip the slow-consumer guard with the whole snapshot queued, and a
   * reset of many streams at once would push them all): it is closed with 4009
   * STATE_INVALIDATED, reconnects, and takes its snapshots by subscribing again.
   */
  reset(entry: StreamEntry, checksumOf: (session: string | undefined) => string): void {
    const set = this.#subscribers.get(entry.name);
    if (!set || set.size === 0) return;
    const position = { epoch: entry.epoch, offset: entry.head };
    // What conflated subscribers still held is of the old epoch.
    for (const group of this.#groups.get(entry.name)?.values() ?? []) group.clear();
    // One message per conflation rate and session scope among the subscribers (usually one or two): each reply names its own.
    const messages = new Map<string, SharedMessage<'subscribed'>>();
    for (const connection of set) {
      const maxRate = connection.maxRateOf(entry.name);
      const session = connection.scopeOf(entry.name);
      const key = `${maxRate ?? ''}/${session ?? ''}`;
      let message = messages.get(key);
      if (!message) {
        const snapshot = session === undefined ? snapshotOf(entry) : { ...position, state: { ...stateForSession(entry.kind, entry.state, session) } };
        message = new SharedMessage('subscribed', {
          stream: entry.name,
          ...position,
          recovered: false,
          snapshot,
          checksum: checksumOf(session),
          ...(maxRate !== undefined ? { max_rate: maxRate } : {}),
          ...(session !== undefined ? { session_id: session } : {}),
        });
        messages.set(key, message);
      }
      connection.restart(entry.name, position);
      if (connection.sendShared(message)) continue;
      connection.log.warn({ stream: entry.name, epoch: entry.epoch, snapshot_bytes: message.tail.length }, 'stream reset: its snapshot does not fit the send buffer; closing with 4009');
      connection.close(CloseCode.STATE_INVALIDATED, 'state invalidated: reconnect and take snapshots');
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    // One BatchFrames per flush: connections that get the same events share one encoded body.
    const frames = new BatchFrames();
    for (const connection of this.#dirty) connection.flush(frames);
    this.#dirty.clear();
    const now = performance.now();
    for (const receivedAt of this.#received) this.metrics.appendToSend.observe((now - receivedAt) / 1000);
    this.#received = [];
  };
}

/** `orders:demo` → `orders`: the stream was validated when it was appended. */
function kindOf(stream: string): StreamKind {
  return stream.slice(0, stream.indexOf(':')) as StreamKind;
}

function addTo(map: Map<string, Set<Connection>>, stream: string, connection: Connection): void {
  let set = map.get(stream);
  if (!set) map.set(stream, (set = new Set()));
  set.add(connection);
}

function removeFrom(map: Map<string, Set<Connection>>, stream: string, connection: Connection): void {
  const set = map.get(stream);
  if (!set) return;
  set.delete(connection);
  if (set.size === 0) map.delete(stream);
}
