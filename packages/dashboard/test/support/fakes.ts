import type { ClientEvents, ClientStatus, CommandOptions, CommandResult, StreamFreshness, StreamHandle } from '@tradesync/client';
import { initialState, parseStream, type StreamEvent, type StreamPosition, type StreamState } from '@tradesync/protocol';
import { createStores, DEFAULT_SETTINGS, type Stores } from '../../src/core/stores.js';
import type { DeskClient } from '../../src/core/desk.js';
import type { StreamSource } from '../../src/core/stream-feed.js';

/** Stand-ins for the SDK in the desk's unit tests: no socket, everything driven by hand. */

/** A status with every field the desk reads (asserted: the SDK may add fields the desk does not read). */
export function status(state: ClientStatus['state'], patch: Partial<ClientStatus> = {}): ClientStatus {
  const base = {
    state,
    attempt: 0,
    maxAttempts: 10,
    nextRetryAt: null,
    url: 'ws://127.0.0.1:1/ws',
    connectionId: null,
    lastMessageAt: null,
    lastSequenceNumber: null,
    degraded: false,
    lastClose: null,
    stopReason: null,
  };
  return { ...base, ...patch };
}

export function testStores(account = 'demo', panels: Partial<Record<string, boolean>> = {}): Stores {
  return createStores({ account, settings: { ...DEFAULT_SETTINGS, panels: { ...DEFAULT_SETTINGS.panels, ...panels } }, now: 0 });
}

type Listener = { onChange?(): void; onEvent?(event: StreamEvent): void };

/** One subscription as the feed sees it; the test moves its state and fires its callbacks. */
export class FakeHandle implements StreamHandle {
  state: StreamState;
  position: StreamPosition | undefined;
  synced = false;
  unsubscribed = false;
  freshness: StreamFreshness;

  constructor(
    readonly stream: string,
    readonly listener: Listener,
    /** The params it was subscribed with (conflation). */
    readonly params: { maxRate?: number } = {},
  ) {
    this.freshness = { stream, verifiedOffset: undefined, verifiedAt: undefined, lastPositionAt: undefined, stale: false };
    const kind = parseStream(stream)?.kind ?? 'market';
    this.state = initialState(kind);
  }

  /** The replica moved to `state` at `offset` (synced from now on). */
  sync(state: StreamState, offset: number): void {
    this.state = state;
    this.position = { epoch: 'e1', offset };
    this.synced = true;
    this.listener.onChange?.();
  }

  event(event: StreamEvent): void {
    this.listener.onEvent?.(event);
  }

  unsubscribe(): void {
    this.unsubscribed = true;
  }
}

export class FakeSource implements StreamSource {
  readonly handles = new Map<string, FakeHandle>();
  /** Streams subscribed, in order (a stream subscribed twice shows twice). */
  readonly subscribed: string[] = [];
  /** Streams that are synced the moment they are subscribed (shared with another listener). */
  readonly alreadySynced = new Map<string, { state: StreamState; offset: number }>();

  subscribe(stream: string, listener: Listener, params: { maxRate?: number } = {}): FakeHandle {
    const handle = new FakeHandle(stream, listener, params);
    const shared = this.alreadySynced.get(stream);
    if (shared) {
      handle.state = shared.state;
      handle.position = { epoch: 'e1', offset: shared.offset };
      handle.synced = true;
    }
    this.handles.set(stream, handle);
    this.subscribed.push(stream);
    return handle;
  }

  get(stream: string): FakeHandle {
    const handle = this.handles.get(stream);
    if (!handle) throw new Error(`${stream} is not subscribed`);
    return handle;
  }
}

type AnyListener = (...args: never[]) => void;

/** The client as the desk sees it: subscriptions from a `FakeSource`, events emitted by the test. */
export class FakeClient implements DeskClient {
  readonly source = new FakeSource();
  status: ClientStatus = status('connected');
  readonly commands: Array<{ action: string; payload: Record<string, unknown>; options: CommandOptions }> = [];
  forceSyncs = 0;
  readonly #listeners = new Map<keyof ClientEvents, Set<AnyListener>>();

  on<E extends keyof ClientEvents>(event: E, listener: (...args: ClientEvents[E]) => void): () => void {
    const set = this.#listeners.get(event) ?? new Set<AnyListener>();
    this.#listeners.set(event, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<E extends keyof ClientEvents>(event: E, ...args: ClientEvents[E]): void {
    for (const listener of this.#listeners.get(event) ?? []) (listener as (...a: ClientEvents[E]) => void)(...args);
  }

  listenerCount(event: keyof ClientEvents): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Moves the status and says so, as the SDK does. */
  move(state: ClientStatus['state']): void {
    const previous = this.status;
    this.status = status(state);
    this.emit('status', this.status, previous);
  }

  readonly subscribe = ((stream: string, listener: Listener, params?: { maxRate?: number }) => this.source.subscribe(stream, listener, params)) as DeskClient['subscribe'];

  command(action: string, payload: Record<string, unknown> = {}, options: CommandOptions = {}): Promise<CommandResult> {
    this.commands.push({ action, payload, options });
    return new Promise<CommandResult>(() => {});
  }

  forceSync(): Promise<void> {
    this.forceSyncs++;
    return Promise.resolve();
  }

}

let offset = 0;
export function streamEvent(stream: string, type: string, data: Record<string, unknown>, patch: Partial<StreamEvent> = {}): StreamEvent {
  return { stream, type, data, epoch: 'e1', offset: ++offset, timestamp: '2025-01-01T00:00:00.000Z', ...patch };
}

/** A frame source the test drives by hand. */
export function manualFrames() {
  const queue: Array<() => void> = [];
  return {
    request: (cb: () => void) => void queue.push(cb),
    get requested() {
      return queue.length;
    },
    run() {
      for (const cb of queue.splice(0)) cb();
    },
  };
}
