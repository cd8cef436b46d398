import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { defineComponent, effectScope, h, nextTick, ref, type Component } from 'vue';
import type { TradeSyncClient } from '@tradesync/client';
import type { OrdersState } from '@tradesync/protocol';
import { EmbeddedEngine } from '@tradesync/server';
import { order, publish, startGateway } from '@tradesync/testing';
import { UnreadableStreamsEngine } from '@tradesync/testing/unreadable-engine';
import { createTradeSync, useStream } from '../src/index.js';
import { mount } from './support/renderer.js';
import { nodeClient, serverSubscriptions } from './support/client.js';

/**
 * useStream against a real gateway and a real client over `ws`: components mounted with
 * Vue's renderer (see support/renderer.ts) show what the gateway publishes, and what
 * they subscribed to ends when they do.
 */

const mountWith = (component: Component, client: TradeSyncClient) => mount(component, createTradeSync(client));
const ids = (state: OrdersState) => Object.keys(state.orders).sort().join(',');
const shows = (text: () => string, expected: string) => vi.waitFor(() => expect(text()).toBe(expected), { timeout: 10_000, interval: 10 });

describe('useStream', () => {
  it('shows the stream live in a mounted component: syncing, the snapshot, then each event', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('demo', { order_id: 'a' })]);
    const client = nodeClient(gw.wsUrl);
    const Orders = defineComponent(() => {
      const { state, synced, position } = useStream<OrdersState>('orders:demo');
      return () => h('p', synced.value ? `${ids(state.value)} @${position.value?.offset}` : 'syncing');
    });
    const { text } = mountWith(Orders, client);
    expect(text()).toBe('syncing');
    await shows(text, 'a @1');
    await publish(gw.url, [order('demo', { order_id: 'b' })]);
    await shows(text, 'a,b @2');
    await publish(gw.url, [{ stream: 'orders:demo', type: 'order:closed', data: { order_id: 'a', status: 'filled' } }]);
    await shows(text, 'b @3');
  });

  it('shares one server subscription between components, and ends it when the last one unmounts', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('demo', { order_id: 'a' })]);
    const client = nodeClient(gw.wsUrl);
    const showFirst = ref(true);
    const Panel = defineComponent((props: { name: string }) => {
      const { state, synced } = useStream<OrdersState>('orders:demo');
      return () => h('p', `${props.name}:${synced.value ? ids(state.value) : '-'} `);
    }, { props: ['name'] });
    const Page = defineComponent(() => () => h('div', [showFirst.value ? h(Panel, { name: 'first' }) : null, h(Panel, { name: 'second' })]));
    const { app, text } = mountWith(Page, client);
    await shows(text, 'first:a second:a ');
    expect(await serverSubscriptions(gw.url)).toEqual(['orders:demo']);
    expect(client.streams().map((s) => [s.stream, s.listeners])).toEqual([['orders:demo', 2]]);

    showFirst.value = false;
    await nextTick();
    expect(client.streams().map((s) => [s.stream, s.listeners])).toEqual([['orders:demo', 1]]);
    await publish(gw.url, [order('demo', { order_id: 'b' })]);
    await shows(text, 'second:a,b ');

    app.unmount();
    expect(client.streams()).toEqual([]);
    await vi.waitFor(async () => expect(await serverSubscriptions(gw.url)).toEqual([]));
  });

  it('moves to another stream when the name it was given (a getter) changes', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('alice', { order_id: 'a1' }), order('bob', { order_id: 'b1' }), order('bob', { order_id: 'b2' })]);
    const client = nodeClient(gw.wsUrl);
    const account = ref('alice');
    const Orders = defineComponent(() => {
      const { state, synced, position } = useStream<OrdersState>(() => `orders:${account.value}`);
      return () => h('p', synced.value ? `${ids(state.value)} @${position.value?.offset}` : 'syncing');
    });
    const { text } = mountWith(Orders, client);
    await shows(text, 'a1 @1');

    account.value = 'bob';
    await nextTick();
    // The new stream's refs at once: not the old stream's orders under the new name.
    expect(text()).toBe('syncing');
    await shows(text, 'b1,b2 @2');
    expect(client.streams().map((s) => s.stream)).toEqual(['orders:bob']);
    await vi.waitFor(async () => expect(await serverSubscriptions(gw.url)).toEqual(['orders:bob']));

    // Alice's stream is no longer heard; Bob's is.
    await publish(gw.url, [order('alice', { order_id: 'a2' }), order('bob', { order_id: 'b3' })]);
    await shows(text, 'b1,b2,b3 @3');
  });

  it('derives a piece with select, again when the stream or a ref it reads changes', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('demo', { order_id: 'small', quantity: '0.1' }), order('demo', { order_id: 'big', quantity: '5' })]);
    const client = nodeClient(gw.wsUrl);
    const minimum = ref(1);
    const Big = defineComponent(() => {
      const { state } = useStream('orders:demo', {
        select: (s: OrdersState) =>
          Object.values(s.orders)
            .filter((o) => Number(o.quantity) >= minimum.value)
            .map((o) => o.order_id)
            .sort(),
      });
      return () => h('p', state.value.join(',') || 'none');
    });
    const { text } = mountWith(Big, client);
    await shows(text, 'big');
    await publish(gw.url, [order('demo', { order_id: 'bigger', quantity: '9' })]);
    await shows(text, 'big,bigger');
    minimum.value = 0;
    await shows(text, 'big,bigger,small');
  });

  it('says why a stream could not sync in error, and clears it once the stream syncs', async () => {
    const engine = new UnreadableStreamsEngine(new EmbeddedEngine({ dataDir: mkdtempSync(join(tmpdir(), 'tradesync-vue-')) }));
    await using gw = await startGateway({}, { engine });
    await publish(gw.url, [order('demo', { order_id: 'a' })]);
    await engine.breakStreams('orders:demo');
    await vi.waitFor(() => expect(gw.gateway.store.unavailable('orders:demo')).toBeDefined());
    const client = nodeClient(gw.wsUrl, { syncRetries: 1 });
    const Orders = defineComponent(() => {
      const { state, synced, error } = useStream<OrdersState>('orders:demo');
      return () => h('p', error.value ? `error: ${error.value.message}` : synced.value ? ids(state.value) : 'syncing');
    });
    const { text } = mountWith(Orders, client);
    await vi.waitFor(() => expect(text()).toMatch(/^error: subscribe: UNAVAILABLE: orders:demo cannot be read/), { timeout: 15_000 });

    engine.heal();
    await vi.waitFor(() => expect(gw.gateway.store.unavailable('orders:demo')).toBeUndefined(), { timeout: 10_000 });
    await client.forceSync(['orders:demo']);
    await shows(text, 'a');
  });

  it('ends with the effect scope that called it, and refuses to run outside one', async () => {
    await using gw = await startGateway();
    const client = nodeClient(gw.wsUrl);
    const scope = effectScope();
    const refs = scope.run(() => useStream<OrdersState>('orders:demo', { client }))!;
    await vi.waitFor(() => expect(refs.synced.value).toBe(true));
    expect(client.streams().map((s) => s.stream)).toEqual(['orders:demo']);
    scope.stop();
    expect(client.streams()).toEqual([]);

    expect(() => useStream('orders:demo', { client })).toThrow('useStream() must be called in setup(), a Pinia store or an effectScope()');
  });
});
