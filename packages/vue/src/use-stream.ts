import { computed, shallowRef, type MaybeRefOrGetter, type Ref, type ShallowRef } from 'vue';
import type { LiveEvent, StreamHandle, SubscribeParams, TradeSyncClient } from '@tradesync/client';
import type { StreamPosition, StreamState } from '@tradesync/protocol';
import { useTradeSync } from './plugin.js';
import { holdStream, requireScope } from './scope.js';

export interface UseStreamOptions extends SubscribeParams {
  /** Each event applied to the replica, live or replayed after a reconnect, in offset order. */
  readonly onEvent?: (event: LiveEvent) => void;
  /** The client to use. @default the app's (`useTradeSync()`) */
  readonly client?: TradeSyncClient;
}

export interface UseStreamSelectOptions<S extends StreamState, T> extends UseStreamOptions {
  /**
   * Derives the piece a component shows. It runs in a `computed`: again when the stream
   * changes or a ref it reads changes, and only when `state` is read.
   */
  readonly select: (state: S) => T;
}

/** A stream as refs. They change only when the stream does; read them in templates or computeds. */
export interface StreamRefs<T> {
  /**
   * The replica's state (with pending optimistic patches), replaced whole on every
   * change and never deep-proxied: the reducer returns a new object, so a `shallowRef`
   * tracks it at the cost of one comparison, whatever the number of orders in it.
   * Before the first sync it is the stream's empty state: look at `synced`.
   */
  readonly state: Readonly<Ref<T>>;
  /** true once the first sync of the stream completed (it stays true across reconnects, which resume or resync). */
  readonly synced: Readonly<ShallowRef<boolean>>;
  /** Where the replica stands (`{epoch, offset}`); undefined before the first sync. */
  readonly position: Readonly<ShallowRef<StreamPosition | undefined>>;
  /** Why the stream could not sync after its retries; cleared when it syncs. */
  readonly error: Readonly<ShallowRef<Error | undefined>>;
}

/**
 * Subscribes to a stream for as long as the calling scope (a component's setup, a store,
 * an `effectScope`) lives. The stream may be a ref or a getter: when its value changes
 * the composable moves to the new stream. Components that watch the same stream share
 * one server subscription.
 */
export function useStream<S extends StreamState, T>(stream: MaybeRefOrGetter<string>, options: UseStreamSelectOptions<S, T>): StreamRefs<T>;
export function useStream<S extends StreamState = StreamState>(stream: MaybeRefOrGetter<string>, options?: UseStreamOptions): StreamRefs<S>;
export function useStream(stream: MaybeRefOrGetter<string>, options: UseStreamOptions & { readonly select?: (state: StreamState) => unknown } = {}): StreamRefs<unknown> {
  requireScope('useStream()');
  const { client = useTradeSync(), onEvent, select, sessionId, maxRate } = options;
  const params: SubscribeParams = { ...(sessionId !== undefined ? { sessionId } : {}), ...(maxRate !== undefined ? { maxRate } : {}) };

  const open = (name: string): StreamHandle => {
    const next = client.subscribe(
      name,
      {
        onChange: () => {
          raw.value = next.state;
          position.value = next.position;
        },
        onSynced: () => {
          synced.value = true;
          position.value = next.position;
          error.value = undefined;
        },
        onSyncFailed: (info) => {
          error.value = info.error;
        },
        ...(onEvent ? { onEvent } : {}),
      },
      params,
    );
    return next;
  };

  // Listeners are only called after subscribe() returns (replies come from the socket),
  // so the refs can be made from the handle it returns.
  // A refused new name (a TypeError) leaves the composable on the stream it had, with
  // refs that still describe it.
  const handle = holdStream(stream, open, (next) => {
    raw.value = next.state;
    synced.value = next.synced;
    position.value = next.position;
    error.value = undefined;
  });
  const raw = shallowRef(handle.state);
  const synced = shallowRef(handle.synced);
  const position = shallowRef(handle.position);
  const error = shallowRef<Error | undefined>(undefined);

  return { state: select ? computed(() => select(raw.value)) : raw, synced, position, error };
}
