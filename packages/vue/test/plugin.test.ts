import { describe, expect, it, vi } from 'vitest';
import { defineComponent, h } from 'vue';
import { WebSocket } from 'ws';
import type { TradeSyncClient, WebSocketConstructor } from '@tradesync/client';
import { startGateway } from '@tradesync/testing';
import { createTradeSync, useTradeSync, useWebSocket, useWebSocketStatus, useWebSocketSubscription, useConnectionStatus, useStream } from '../src/index.js';
import { mount } from './support/renderer.js';
import { nodeClient } from './support/client.js';

/** createTradeSync provides one client to the app; useTradeSync finds it, or says plainly why not. */
describe('createTradeSync and useTradeSync', () => {
  it('gives every component of the app the one client it provides', async () => {
    await using gw = await startGateway();
    const plugin = createTradeSync(nodeClient(gw.wsUrl));
    const seen: TradeSyncClient[] = [];
    const Child = defineComponent(() => {
      seen.push(useTradeSync());
      return () => h('p', 'child');
    });
    mount(defineComponent(() => () => h('div', [h(Child), h(Child)])), plugin);
    expect(seen).toHaveLength(2);
    expect(seen.every((c) => c === plugin.client)).toBe(true);
  });

  it('throws a clear error in a component of an app without the plugin, and outside setup()', () => {
    const errors: unknown[] = [];
    const Orphan = defineComponent(() => {
      useTradeSync();
      return () => h('p', 'never');
    });
    mount(Orphan, {
      install: (app) => {
        app.config.errorHandler = (error) => void errors.push(error);
        // Vue also warns that the component, whose setup threw, has nothing to render.
        app.config.warnHandler = () => {};
      },
    });
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toBe('Error: useTradeSync() found no TradeSync client in this app: install one with app.use(createTradeSync({ url })) before mounting');

    expect(() => useTradeSync()).toThrow(/^useTradeSync\(\) was called outside setup\(\)/);
  });

  it('disconnects the client it created from options when the app unmounts, and leaves one it was given alone', async () => {
    await using gw = await startGateway();
    const owned = createTradeSync({ url: gw.wsUrl, WebSocket: WebSocket as unknown as WebSocketConstructor });
    const given = createTradeSync(nodeClient(gw.wsUrl));
    const Empty = defineComponent(() => () => h('p'));
    const first = mount(Empty, owned);
    const second = mount(Empty, given);
    await vi.waitFor(() => expect([owned.client.status.state, given.client.status.state]).toEqual(['connected', 'connected']));

    first.app.unmount();
    second.app.unmount();
    expect(owned.client.status.state).toBe('disconnected');
    expect(given.client.status.state).toBe('connected');
  });

  it("names seed 002's composables as aliases of the same functions", () => {
    expect(useWebSocket).toBe(useTradeSync);
    expect(useWebSocketSubscription).toBe(useStream);
    expect(useWebSocketStatus).toBe(useConnectionStatus);
  });
});
