import { describe, expect, it, vi } from 'vitest';
import { defineComponent, h, isReactive, ref } from 'vue';
import { createPinia, defineStore, type Pinia } from 'pinia';
import type { TradeSyncClient } from '@tradesync/client';
import { initialState, type OrdersState } from '@tradesync/protocol';
import { order, publish, startGateway } from '@tradesync/testing';
import { tradeSyncPinia } from '../src/pinia.js';
import { createApp, mount } from './support/renderer.js';
import { nodeClient, serverSubscriptions } from './support/client.js';

/** The Pinia plugin: a store's state key mirrors a stream, live, until the store is disposed. */

/** A Pinia with the plugin, installed in an app (Pinia runs plugins only once it is). */
function piniaFor(client: TradeSyncClient): Pinia {
  const pinia = createPinia().use(tradeSyncPinia(client));
  createApp({ render: () => null }).use(pinia);
  return pinia;
}

const useOrdersStore = defineStore('orders', {
  state: () => ({ account: 'alice', orders: initialState('orders') }),
  getters: {
    ids: (state) => Object.keys(state.orders.orders).sort(),
  },
  tradesync: {
    streams: { orders: (store) => `orders:${store.account}` },
  },
});

describe('tradeSyncPinia', () => {
  it('mirrors a stream into a state key of an option store, live, with getters that follow it', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('alice', { order_id: 'a1' })]);
    const store = useOrdersStore(piniaFor(nodeClient(gw.wsUrl)));
    // The stream's empty state until the snapshot comes.
    expect(store.ids).toEqual([]);
    await vi.waitFor(() => expect(store.ids).toEqual(['a1']));
    await publish(gw.url, [order('alice', { order_id: 'a2' })]);
    await vi.waitFor(() => expect(store.ids).toEqual(['a1', 'a2']));
    await publish(gw.url, [{ stream: 'orders:alice', type: 'order:closed', data: { order_id: 'a1', status: 'cancelled' } }]);
    await vi.waitFor(() => expect(store.ids).toEqual(['a2']));
    // The replica's own state, not a deep proxy of it.
    expect(isReactive(store.orders)).toBe(false);
    expect(store.$state.orders).toBe(store.orders);
  });

  it('follows a stream name computed from the store, and unbinds when the store is disposed', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('alice', { order_id: 'a1' }), order('bob', { order_id: 'b1' })]);
    const client = nodeClient(gw.wsUrl);
    const store = useOrdersStore(piniaFor(client));
    await vi.waitFor(() => expect(store.ids).toEqual(['a1']));

    store.account = 'bob';
    await vi.waitFor(() => expect(store.ids).toEqual(['b1']));
    expect(client.streams().map((s) => s.stream)).toEqual(['orders:bob']);
    await vi.waitFor(async () => expect(await serverSubscriptions(gw.url)).toEqual(['orders:bob']));

    store.$dispose();
    expect(client.streams()).toEqual([]);
    await vi.waitFor(async () => expect(await serverSubscriptions(gw.url)).toEqual([]));
    // Nothing writes to the disposed store any more: a new listener hears b2, the store does not.
    const probe = client.subscribe<OrdersState>('orders:bob');
    await publish(gw.url, [order('bob', { order_id: 'b2' })]);
    await vi.waitFor(() => expect(Object.keys(probe.state.orders).sort()).toEqual(['b1', 'b2']));
    expect(store.ids).toEqual(['b1']);
  });

  it('binds setup stores (options as the third argument), with subscribe params, and a component sees the store change', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('demo', { order_id: 'mine', session_id: 's1' }), order('demo', { order_id: 'theirs', session_id: 's2' })]);
    const useSessionOrders = defineStore(
      'session-orders',
      () => {
        const orders = ref<OrdersState>(initialState('orders'));
        return { orders };
      },
      { tradesync: { streams: { orders: { stream: 'orders:demo', sessionId: 's1' } } } },
    );
    const pinia = createPinia().use(tradeSyncPinia(nodeClient(gw.wsUrl)));
    const Orders = defineComponent(() => {
      const store = useSessionOrders();
      return () => h('p', Object.keys(store.orders.orders).join(',') || 'none');
    });
    const { text } = mount(Orders, pinia);
    await vi.waitFor(() => expect(text()).toBe('mine'));
    await publish(gw.url, [order('demo', { order_id: 'mine-too', session_id: 's1' }), order('demo', { order_id: 'not-mine', session_id: 's2' })]);
    await vi.waitFor(() => expect(text()).toBe('mine,mine-too'));
  });

  it('refuses a binding to a key the state does not have, when the store is made', async () => {
    await using gw = await startGateway();
    // @ts-expect-error -- `order` is not a key of the state: the types say so before the plugin does
    const useBroken = defineStore('broken', {
      state: () => ({ orders: initialState('orders') }),
      tradesync: { streams: { order: 'orders:demo' } },
    });
    // @ts-expect-error -- `account` holds a string, not a stream's state
    defineStore('typed', { state: () => ({ account: 'alice', orders: initialState('orders') }), tradesync: { streams: { account: 'orders:alice' } } });
    // @ts-expect-error -- nor when no key of the state could hold one
    defineStore('untyped', { state: () => ({ account: 'alice' }), tradesync: { streams: { account: 'orders:alice' } } });
    expect(() => useBroken(piniaFor(nodeClient(gw.wsUrl)))).toThrow('store "broken" mirrors a stream into "order", which its state does not have: declare "order" in state() with the stream\'s empty state');
  });
});
