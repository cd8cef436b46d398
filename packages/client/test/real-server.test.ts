import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  getClient,
  releaseClient,
  ServerError,
  TradeSyncClient,
  type ClientOptions,
  type LiveEvent,
  type Logger,
  type SyncedInfo,
} from '../src/index.js';
import { http, order, position, publish, startGateway, tick } from '@tradesync/testing';

const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const fast = { delaysMs: [50], jitter: 0 };
const clients: TradeSyncClient[] = [];

function makeClient(options: ClientOptions): TradeSyncClient {
  const client = new TradeSyncClient({ WebSocket: WebSocket as never, logger: quiet, backoff: fast, ...options });
  clients.push(client);
  return client;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

/** Records the offsets each stream applied, per sync: between syncs they must rise by exactly 1. */
function offsetsOf(client: TradeSyncClient, stream: string) {
  const applied: number[] = [];
  const synced: SyncedInfo[] = [];
  const handle = client.subscribe(stream, { onEvent: (e: LiveEvent) => applied.push(e.offset), onSynced: (s) => synced.push(s) });
  return { handle, applied, synced };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function adminConnections(url: string) {
  const { body } = await http(url, '/api/admin/websocket/connections');
  return body as { count: number; connections: Array<{ subscriptions: Array<{ stream: string }> }> };
}

describe('the client against real gateways', () => {
  it('resumes with recovered: true after a server restart, applying every offset exactly once', async () => {
    const first = await startGateway({}, { keepData: true });
    const port = first.gateway.port;
    const client = makeClient({ url: first.wsUrl });
    const orders = offsetsOf(client, 'orders:acme');
    const market = offsetsOf(client, 'market:ETH-USD');
    await vi.waitFor(() => expect(orders.synced.length + market.synced.length).toBe(2));
    await publish(first.url, [order('acme'), order('acme'), tick('ETH-USD', '1'), order('acme')]);
    await vi.waitFor(() => expect(orders.handle.position?.offset).toBe(3));
    await vi.waitFor(() => expect(market.handle.position?.offset).toBe(1));
    await first.stop();
    await vi.waitFor(() => expect(client.status.state).toBe('reconnecting'));
    await using second = await startGateway({ port }, { dataDir: first.dataDir });
    await publish(second.url, [order('acme'), order('acme'), tick('ETH-USD', '2')]);
    await vi.waitFor(() => {
      expect(orders.handle.position?.offset).toBe(5);
      expect(market.handle.position?.offset).toBe(2);
    });
    expect(orders.synced.slice(1).every((s) => s.recovered)).toBe(true);
    expect(market.synced.slice(1).every((s) => s.recovered)).toBe(true);
    expect(orders.applied).toEqual(range(1, 5));
    expect(market.applied).toEqual(range(1, 2));
    expect(orders.handle.state).toEqual(second.gateway.store.get('orders:acme')!.state);
    expect(market.handle.state).toEqual(second.gateway.store.get('market:ETH-USD')!.state);
  });

  it('takes a snapshot (recovered: false) equal to the server state when history was trimmed while it was away', async () => {
    await using gw = await startGateway({ history: { maxEvents: 5, snapshotEvery: 5, memoryWindow: 5, maxRecoveryEvents: 5 } });
    const client = makeClient({ url: gw.wsUrl });
    const orders = offsetsOf(client, 'orders:acme');
    await vi.waitFor(() => expect(orders.synced).toHaveLength(1));
    await publish(gw.url, [order('acme'), order('acme')]);
    await vi.waitFor(() => expect(orders.handle.position?.offset).toBe(2));
    client.disconnect();
    await publish(gw.url, Array.from({ length: 20 }, (_, i) => order('acme', { order_id: `away-${i % 4}`, quantity: `${i + 1}` })));
    await gw.gateway.compact();
    client.connect();
    await vi.waitFor(() => expect(orders.synced).toHaveLength(2));
    expect(orders.synced[1]).toMatchObject({ recovered: false, offset: 22, replayed: 0 });
    expect(orders.handle.state).toEqual(gw.gateway.store.get('orders:acme')!.state);
    // Live again after the snapshot, in order.
    await publish(gw.url, [order('acme')]);
    await vi.waitFor(() => expect(orders.applied.at(-1)).toBe(23));
    expect(orders.handle.state).toEqual(gw.gateway.store.get('orders:acme')!.state);
  });

  it('serves two listeners of a stream over one socket and one server subscription', async () => {
    await using gw = await startGateway();
    const client = makeClient({ url: gw.wsUrl });
    const a = client.subscribe('orders:acme');
    const b = client.subscribe('orders:acme');
    await vi.waitFor(() => expect(a.synced && b.synced).toBe(true));
    const admin = await adminConnections(gw.url);
    expect(admin.count).toBe(1);
    expect(admin.connections[0]!.subscriptions.map((s) => s.stream)).toEqual(['orders:acme']);
    a.unsubscribe();
    await publish(gw.url, [order('acme')]);
    await vi.waitFor(() => expect(b.position?.offset).toBe(1));
    expect((await adminConnections(gw.url)).connections[0]!.subscriptions).toHaveLength(1);
    b.unsubscribe();
    await vi.waitFor(async () => expect((await adminConnections(gw.url)).connections[0]!.subscriptions).toHaveLength(0));
  });

  it('gives every caller of getClient the same client for a URL, and another for another URL', async () => {
    await using gw = await startGateway();
    const other = gw.wsUrl.replace('127.0.0.1', 'localhost');
    try {
      const one = getClient(gw.wsUrl, { WebSocket: WebSocket as never, logger: quiet });
      expect(getClient(gw.wsUrl)).toBe(one);
      const two = getClient(other, { WebSocket: WebSocket as never, logger: quiet });
      expect(two).not.toBe(one);
      one.subscribe('market:BTC-USD');
      getClient(gw.wsUrl).subscribe('orders:acme');
      await vi.waitFor(() => expect(one.streams().every((s) => s.synced)).toBe(true));
      await vi.waitFor(async () => expect((await adminConnections(gw.url)).count).toBe(2));
    } finally {
      releaseClient(gw.wsUrl);
      releaseClient(other);
    }
  });

  it('warns when applying one live event and running its listeners takes over 100 ms, at most once per 10 s with the count since', async () => {
    await using gw = await startGateway();
    const warnings: Array<{ message: string; context: Record<string, unknown> | undefined }> = [];
    const client = makeClient({ url: gw.wsUrl, logger: { ...quiet, warn: (message, context) => warnings.push({ message, context }) } });
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    const seen: number[] = [];
    let synced = false;
    client.subscribe('orders:slow', {
      onSynced: () => (synced = true),
      onEvent: (e: LiveEvent) => {
        seen.push(e.offset);
        // The 2nd and 3rd events are slow; the 1st and 4th are not.
        if (e.offset === 2 || e.offset === 3) busy(120);
      },
    });
    await vi.waitFor(() => expect(synced).toBe(true));
    for (let i = 0; i < 4; i++) await publish(gw.url, [order('slow', { order_id: `o${i}` })]);
    await vi.waitFor(() => expect(seen).toEqual([1, 2, 3, 4]));
    const slow = warnings.filter((w) => w.message === 'processing one event took over the limit');
    expect(slow).toHaveLength(1);
    expect(slow[0]!.context).toMatchObject({ stream: 'orders:slow', type: 'order:updated', offset: 2, limit_ms: 100, slow_events_since_last_warning: 0 });
    expect(slow[0]!.context!.ms as number).toBeGreaterThanOrEqual(120);
  });

  it('answers stateSync, getInitialState (and its INVALID_INCLUDE error) and forceSync', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [position('acme'), order('acme', { order_id: 'ord-x' })]);
    const client = makeClient({ url: gw.wsUrl });
    const orders = offsetsOf(client, 'orders:acme');
    const portfolio = offsetsOf(client, 'portfolio:acme');
    await vi.waitFor(() => expect(orders.synced.length + portfolio.synced.length).toBe(2));

    const { success, data: sync } = await client.stateSync({ account: 'acme' });
    expect(success).toBe(true);
    expect(sync.failed_streams).toEqual([]);
    expect(sync.positions).toEqual([expect.objectContaining({ symbol: 'BTC-USD' })]);
    expect(sync.pending_orders).toEqual([expect.objectContaining({ order_id: 'ord-x' })]);
    expect(sync.streams['orders:acme']).toEqual(orders.handle.position);

    const initial = await client.getInitialState(['orders', 'subscriptions'], 'acme');
    expect(Object.keys(initial).sort()).toEqual(['orders', 'subscriptions']);
    await expect(client.getInitialState(['bogus'])).rejects.toSatisfy((e) => e instanceof ServerError && e.code === 'INVALID_INCLUDE');

    await client.forceSync();
    expect(orders.synced.at(-1)).toMatchObject({ recovered: false, offset: 1 });
    expect(portfolio.synced.at(-1)).toMatchObject({ recovered: false, offset: 1 });
    expect(orders.handle.state).toEqual(gw.gateway.store.get('orders:acme')!.state);
  });

  it('moves to the next URL when the first node is gone', async () => {
    const gone = await startGateway();
    const goneUrl = gone.wsUrl;
    await gone[Symbol.asyncDispose]();
    await using gw = await startGateway();
    const client = makeClient({ url: [goneUrl, gw.wsUrl] });
    const orders = offsetsOf(client, 'orders:acme');
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: 'connected', url: gw.wsUrl }));
    await vi.waitFor(() => expect(orders.synced).toHaveLength(1));
    expect(client.status.lastClose).not.toBeNull();
  });

  it('refreshes from GET /api/state/snapshot and reports degraded while the socket cannot connect but HTTP answers', async () => {
    await using gw = await startGateway();
    await publish(gw.url, [order('acme'), order('acme'), tick('ETH-USD', '7')]);
    await using proxy = await httpOnlyProxy(gw.gateway.port);
    const client = makeClient({ url: `ws://127.0.0.1:${proxy.port}/ws`, degradedPollMs: 100, maxAttempts: 1000, backoff: { delaysMs: [200], jitter: 0 } });
    const orders = client.subscribe('orders:acme');
    const market = client.subscribe('market:ETH-USD');
    await vi.waitFor(() => expect(client.status).toMatchObject({ state: 'reconnecting', degraded: true }), { timeout: 5000 });
    expect(orders.state).toEqual(gw.gateway.store.get('orders:acme')!.state);
    expect(market.state).toEqual(gw.gateway.store.get('market:ETH-USD')!.state);
    expect(orders.position).toEqual({ epoch: gw.gateway.store.get('orders:acme')!.epoch, offset: 2 });
  });
});

/** An HTTP proxy that forwards plain requests to the gateway and refuses every WebSocket upgrade. */
async function httpOnlyProxy(targetPort: number): Promise<{ port: number } & AsyncDisposable> {
  const server: Server = createServer((req, res) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: targetPort, path: req.url, method: req.method, headers: req.headers, agent: false }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (_req, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
