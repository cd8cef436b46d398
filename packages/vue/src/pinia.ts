import { markRaw, type UnwrapRef } from 'vue';
import type { PiniaPlugin, PiniaPluginContext, StateTree } from 'pinia';
import type { StreamHandle, SubscribeParams, TradeSyncClient } from '@tradesync/client';
import type { StreamState } from '@tradesync/protocol';
import { holdStream } from './scope.js';

/** The keys of a store's state that can hold a stream's state (a setup store's state holds refs of it). */
export type StreamStateKeys<S> = { [K in keyof S]: UnwrapRef<S[K]> extends StreamState ? K : never }[keyof S] & string;

/** A stream's name, or a getter of it from the store (the binding follows it when it changes). */
export type StreamName<Store> = string | ((store: Store) => string);

/** What one state key mirrors: a stream, or a stream with subscribe params. */
export type StreamBinding<Store> = StreamName<Store> | (SubscribeParams & { readonly stream: StreamName<Store> });

export interface TradeSyncStoreOptions<S extends StateTree, Store> {
  /**
   * State key → the stream whose state it mirrors, e.g. `{ orders: 'orders:demo' }`.
   * (A state without such a key gets an object that accepts no key: the mapped type
   * alone would be `{}`, which TypeScript lets any object literal through.)
   */
  readonly streams: [StreamStateKeys<S>] extends [never] ? { readonly [key: string]: never } : { readonly [K in StreamStateKeys<S>]?: StreamBinding<Store> };
}

declare module 'pinia' {
  // The type parameters are pinia's own, by name and constraint: that is how interfaces merge.
  export interface DefineStoreOptionsBase<S extends StateTree, Store> {
    /** Streams this store mirrors into its state (`pinia.use(tradeSyncPinia(client))` does it). */
    tradesync?: TradeSyncStoreOptions<S, Store>;
  }
}

/**
 * A Pinia plugin: a store that declares `tradesync: { streams: { orders: 'orders:demo' } }`
 * has its `orders` state replaced by the stream's state on every change, from the first
 * snapshot on, across reconnects, until the store is disposed (`store.$dispose()`, or
 * its Pinia's). Getters over that key recompute when it is replaced.
 *
 * The state put in the store is the replica's own (immutable: the reducer returns new
 * objects), marked raw, so Vue does not wrap each of its thousands of orders in a proxy.
 * Replace it, never mutate it: the next event replaces it anyway.
 */
export function tradeSyncPinia(client: TradeSyncClient): PiniaPlugin {
  return (context: PiniaPluginContext) => {
    const streams = context.options.tradesync?.streams as Record<string, StreamBinding<unknown> | undefined> | undefined;
    if (!streams) return;
    const { store } = context;
    for (const [key, binding] of Object.entries(streams)) {
      if (binding === undefined) continue;
      if (!(key in store.$state)) {
        throw new Error(`store "${store.$id}" mirrors a stream into "${key}", which its state does not have: declare "${key}" in state() with the stream's empty state`);
      }
      bind(client, store, key, binding);
    }
  };
}

/** Keeps `store[key]` equal to the stream's state; runs in the store's effect scope, so it ends with the store. */
function bind(client: TradeSyncClient, store: PiniaPluginContext['store'], key: string, binding: StreamBinding<unknown>): void {
  const { stream, ...params } = typeof binding === 'object' ? binding : { stream: binding };
  const write = (state: StreamState) =>
    store.$patch((s: StateTree) => {
      s[key] = markRaw(state);
    });
  const open = (name: string): StreamHandle => {
    const handle: StreamHandle = client.subscribe(name, { onChange: () => write(handle.state) }, params);
    // A stream the client already holds has its state now; a new one starts empty.
    write(handle.state);
    return handle;
  };

  holdStream(typeof stream === 'function' ? () => stream(store) : stream, open);
}
