import { EVENT_TYPES, applyEvent, initialState, isEventType, parseStream, type EventInput, type StreamState } from '@tradesync/protocol';

/**
 * The narrow way the simulator reaches a gateway: append events, in order, and
 * resolve once they are stored. `Gateway.publish` is one; `EventRecorder` another.
 */
export interface EventSink {
  publish(events: readonly EventInput[]): Promise<readonly unknown[]>;
}

/** Reads the materialized state of a stream (the gateway's `store`, or a recorder). */
export interface StateReader {
  stateOf(stream: string): StreamState | undefined;
}

export interface RecordedEvent extends EventInput {
  readonly offset: number;
}

/** Raised by EventRecorder for an event the gateway would refuse. */
export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
}

/**
 * An in-memory gateway stand-in for tests and tools: validates every event the way
 * the gateway does (stream kind, event type, schema), numbers it per stream and
 * applies the protocol's reducer, so `stateOf` answers like the gateway's store.
 */
export class EventRecorder implements EventSink, StateReader {
  readonly events: RecordedEvent[] = [];
  readonly #states = new Map<string, StreamState>();
  readonly #heads = new Map<string, number>();

  async publish(events: readonly EventInput[]): Promise<readonly RecordedEvent[]> {
    // All or nothing, like the gateway: validate everything before storing anything.
    for (const [index, event] of events.entries()) {
      const ref = parseStream(event.stream);
      if (!ref) throw new InvalidEventError(`event ${index}: unknown stream ${event.stream}`);
      if (!isEventType(event.type) || EVENT_TYPES[event.type].kind !== ref.kind) {
        throw new InvalidEventError(`event ${index}: ${event.type} does not belong on ${event.stream}`);
      }
      const parsed = EVENT_TYPES[event.type].data.safeParse(event.data);
      if (!parsed.success) throw new InvalidEventError(`event ${index} (${event.type}): ${parsed.error.message}`);
      if (ref.kind === 'market' && event.data.symbol !== ref.symbol) throw new InvalidEventError(`event ${index}: tick for another symbol`);
    }
    const stored: RecordedEvent[] = [];
    for (const event of events) {
      const offset = (this.#heads.get(event.stream) ?? 0) + 1;
      this.#heads.set(event.stream, offset);
      const state = this.stateOf(event.stream)!;
      this.#states.set(event.stream, applyEvent(state, event));
      const recorded = { ...event, offset };
      this.events.push(recorded);
      stored.push(recorded);
    }
    return stored;
  }

  stateOf(stream: string): StreamState | undefined {
    const existing = this.#states.get(stream);
    if (existing) return existing;
    const ref = parseStream(stream);
    return ref ? initialState(ref.kind) : undefined;
  }

  streams(): string[] {
    return [...this.#heads.keys()];
  }
}
