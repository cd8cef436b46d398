import type { StoredEvent } from '../engines/engine.js';
import type { Metrics } from '../metrics.js';
import type { AppliedEvent } from '../state/store.js';
import type { Connection, PendingEvent } from './connection.js';

/** An event as every subscriber receives it, serialized once. */
export function serializeEvent(event: StoredEvent): string {
  return JSON.stringify({
    type: event.type,
    stream: event.stream,
    epoch: event.epoch,
    offset: event.offset,
    timestamp: event.timestamp,
    data: event.data,
  });
}

/**
 * Delivers applied events to the connections subscribed to their streams. Each event
 * is serialized once; each connection gets everything that became ready in the same
 * turn of the event loop as one frame, written on the next turn (`setImmediate`), so
 * no event waits to fill a batch.
 */
export class Fanout {
  readonly #subscribers = new Map<string, Set<Connection>>();
  readonly #dirty = new Set<Connection>();
  #received: number[] = [];
  #scheduled = false;

  constructor(private readonly metrics: Metrics) {}

  add(stream: string, connection: Connection): void {
    // A peer can hang up while its subscribe is still being prepared (the handler awaits
    // the engine for missed events, which is real I/O for a networked engine). Once the
    // socket is CLOSED its 'close' handler has already run `removeAll`, so adding it now
    // would keep a dead connection subscribed forever: a leak, and work for every event.
    // (A socket still CLOSING is fine: `removeAll` runs when it closes.)
    if (connection.socket.readyState === connection.socket.CLOSED) return;
    let set = this.#subscribers.get(stream);
    if (!set) this.#subscribers.set(stream, (set = new Set()));
    set.add(connection);
  }

  remove(stream: string, connection: Connection): void {
    const set = this.#subscribers.get(stream);
    if (!set) return;
    set.delete(connection);
    if (set.size === 0) this.#subscribers.delete(stream);
  }

  removeAll(connection: Connection): void {
    for (const stream of connection.subscriptions.keys()) this.remove(stream, connection);
    this.#dirty.delete(connection);
  }

  subscriberCount(stream: string): number {
    return this.#subscribers.get(stream)?.size ?? 0;
  }

  publish(applied: readonly AppliedEvent[]): void {
    for (const { event, receivedAt } of applied) {
      this.#received.push(receivedAt);
      const set = this.#subscribers.get(event.stream);
      if (!set) continue;
      // One queued object per event, shared by every subscriber (no per-connection allocation).
      const pending: PendingEvent = { stream: event.stream, offset: event.offset, json: serializeEvent(event), tail: undefined };
      for (const connection of set) {
        connection.enqueue(pending);
        this.#dirty.add(connection);
      }
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const timestamp = new Date().toISOString();
    for (const connection of this.#dirty) connection.flush(timestamp);
    this.#dirty.clear();
    const now = performance.now();
    for (const receivedAt of this.#received) this.metrics.appendToSend.observe((now - receivedAt) / 1000);
    this.#received = [];
  };
}
