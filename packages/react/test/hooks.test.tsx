import { StrictMode, useState, type ReactNode } from 'react';
import type { Root } from 'react-dom/client';
import { Window } from 'happy-dom';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { describeStatus, TradeSyncClient, type Logger, type WebSocketConstructor } from '@tradesync/client';
import type { OrdersState } from '@tradesync/protocol';
import type { CommandHandler } from '@tradesync/server';
import { order, publish, startGateway, type TestGateway } from '@tradesync/testing';
import { TradeSyncProvider, useCommand, useConnectionStatus, useStream, useTradeSync } from '../src/index.js';

/**
 * The hooks against a real gateway over real sockets, rendered by React DOM into a DOM
 * (happy-dom). The gateway runs in this Node process, so the DOM is a window of its own
 * made global before React DOM loads, rather than a whole DOM test environment.
 * Updates come from the network, outside `act`: the assertions wait for the DOM instead.
 */
const dom = new Window({ url: 'http://127.0.0.1/' });
Object.assign(globalThis, { window: dom, document: dom.document, navigator: dom.navigator, HTMLElement: dom.HTMLElement, Node: dom.Node });
const { createRoot } = await import('react-dom/client');
const document = dom.document as unknown as Document;
const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const cleanups: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(options: { commands?: CommandHandler } = {}): Promise<{ gw: TestGateway; client: TradeSyncClient; render(node: ReactNode): Promise<HTMLElement>; root: () => Root }> {
  const gw = await startGateway({}, options.commands ? { commands: options.commands } : {});
  const client = new TradeSyncClient({ url: gw.wsUrl, WebSocket: WebSocket as unknown as WebSocketConstructor, logger: quiet, backoff: { delaysMs: [50], jitter: 0 } });
  const container = document.createElement('div');
  document.body.append(container);
  const root = createRoot(container);
  cleanups.push(
    async () => await gw[Symbol.asyncDispose](),
    () => client.disconnect(),
    () => {
      root.unmount();
      container.remove();
    },
  );
  return {
    gw,
    client,
    root: () => root,
    async render(node) {
      root.render(<TradeSyncProvider client={client}>{node}</TradeSyncProvider>);
      // React renders on its own schedule (no `act` here): wait for the first commit.
      await vi.waitFor(() => expect(container.childNodes.length).toBeGreaterThan(0));
      return container;
    },
  };
}

const text = (el: HTMLElement, testId: string) => el.querySelector(`[data-testid="${testId}"]`)?.textContent ?? null;

function OpenOrders({ account }: { account: string }) {
  const orders = useStream<OrdersState>(`orders:${account}`);
  if (!orders) return <p data-testid="orders">syncing</p>;
  return <p data-testid="orders">{Object.keys(orders.orders).sort().join(',') || 'none'}</p>;
}

describe('@tradesync/react', () => {
  it('useStream shows the live state of a stream and follows it event by event', async () => {
    const { gw, render } = await setup();
    await publish(gw.url, [order('demo', { order_id: 'o1' })]);
    const el = await render(<OpenOrders account="demo" />);
    await vi.waitFor(() => expect(text(el, 'orders')).toBe('o1'));
    await publish(gw.url, [order('demo', { order_id: 'o2' })]);
    await vi.waitFor(() => expect(text(el, 'orders')).toBe('o1,o2'));
    await publish(gw.url, [{ stream: 'orders:demo', type: 'order:closed', data: { order_id: 'o1', status: 'filled' } }]);
    await vi.waitFor(() => expect(text(el, 'orders')).toBe('o2'));
  });

  it('re-renders a component only when what its selector picked changed, even for a selector that builds a new array', async () => {
    const { gw, render } = await setup();
    let renders = 0;
    function BtcOrders() {
      renders++;
      // A new array on every call: equal by content, so `isEqual` keeps the old one.
      const ids = useStream<OrdersState, string[]>('orders:demo', {
        selector: (s) => Object.values(s.orders).filter((o) => o.symbol === 'BTC-USD').map((o) => o.order_id),
        isEqual: (a, b) => a.length === b.length && a.every((x, i) => x === b[i]),
      });
      return <p data-testid="btc">{ids?.join(',') ?? 'syncing'}</p>;
    }
    const el = await render(<BtcOrders />);
    await publish(gw.url, [order('demo', { order_id: 'b1', symbol: 'BTC-USD' })]);
    await vi.waitFor(() => expect(text(el, 'btc')).toBe('b1'));
    const before = renders;
    // Three orders of another symbol: the selection stays the same, so no render.
    await publish(gw.url, [order('demo', { order_id: 'e1', symbol: 'ETH-USD' }), order('demo', { order_id: 'e2', symbol: 'ETH-USD' }), order('demo', { order_id: 'e3', symbol: 'ETH-USD' })]);
    await publish(gw.url, [order('demo', { order_id: 'b2', symbol: 'BTC-USD' })]);
    await vi.waitFor(() => expect(text(el, 'btc')).toBe('b1,b2'));
    expect(renders - before).toBe(1);
  });

  it('shares one subscription among components naming the same stream, switches streams, and unsubscribes on unmount', async () => {
    const { gw, client, render } = await setup();
    await publish(gw.url, [order('acme', { order_id: 'a1' }), order('demo', { order_id: 'd1' })]);
    let setAccount!: (a: string) => void;
    function Desk() {
      const [account, set] = useState('demo');
      setAccount = set;
      return (
        <>
          <OpenOrders account={account} />
          <OpenOrders account={account} />
        </>
      );
    }
    const el = await render(
      <StrictMode>
        <Desk />
      </StrictMode>,
    );
    await vi.waitFor(() => expect(text(el, 'orders')).toBe('d1'));
    expect(client.streams()).toEqual([expect.objectContaining({ stream: 'orders:demo', listeners: 2 })]);
    const subscriptions = () => [...gw.gateway.connections].flatMap((c) => c.positions().map((p) => p.stream));
    expect(subscriptions()).toEqual(['orders:demo']);

    setAccount('acme');
    await vi.waitFor(() => expect(text(el, 'orders')).toBe('a1'));
    expect(client.streams().map((s) => s.stream)).toEqual(['orders:acme']);
    await vi.waitFor(() => expect(subscriptions()).toEqual(['orders:acme']));
  });

  it('useConnectionStatus follows the socket through a gateway stop and back', async () => {
    const { gw, render } = await setup();
    function Status() {
      return <p data-testid="status">{describeStatus(useConnectionStatus())}</p>;
    }
    const el = await render(<Status />);
    await vi.waitFor(() => expect(text(el, 'status')).toBe('Live'));
    const port = gw.gateway.port;
    await gw.stop();
    await vi.waitFor(() => expect(text(el, 'status')).toMatch(/^Reconnecting \(attempt \d+\/10\)$/));
    await using again = await startGateway({ port }, { dataDir: gw.dataDir });
    await vi.waitFor(() => expect(text(el, 'status')).toBe('Live'), { timeout: 10_000 });
    expect(again.gateway.connections.size).toBe(1);
  });

  it('useCommand sends a command through the client and gives its result', async () => {
    const received: string[] = [];
    const commands: CommandHandler = {
      actions: ['cancel_order'],
      async handle(command) {
        received.push(String(command.order_id));
        return { success: true, result: { order_id: command.order_id } };
      },
    };
    const { render } = await setup({ commands });
    let send!: ReturnType<typeof useCommand>;
    const seen = new Set<ReturnType<typeof useCommand>>();
    function Cancel() {
      send = useCommand();
      seen.add(send);
      return <p data-testid="status">{describeStatus(useConnectionStatus())}</p>;
    }
    const el = await render(<Cancel />);
    await vi.waitFor(() => expect(text(el, 'status')).toBe('Live'));
    const result = await send('cancel_order', { order_id: 'o-9' });
    expect(result).toMatchObject({ success: true, result: { order_id: 'o-9' } });
    expect(received).toEqual(['o-9']);
    // The same function on every render (safe in effect dependencies).
    expect(seen.size).toBe(1);
  });

  it('says where the provider is missing instead of failing later', async () => {
    const container = document.createElement('div');
    const errors: unknown[] = [];
    function Orphan() {
      useTradeSync();
      return null;
    }
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    // React reports an error thrown while rendering to the root's onUncaughtError.
    const root = createRoot(container, { onUncaughtError: (err) => errors.push(err) });
    try {
      root.render(<Orphan />);
      await vi.waitFor(() => expect(errors).toHaveLength(1));
    } finally {
      spy.mockRestore();
      root.unmount();
    }
    expect(String(errors[0])).toMatch(/inside <TradeSyncProvider client=\{\.\.\.\}>/);
  });
});
