import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { applyEvent, initialState, type StreamState } from '@tradesync/protocol';
import { TradeSyncClient, type SyncedInfo } from '../../client/src/index.js';
import { EngineUnavailableError, type StoredSnapshot } from '../src/engines/engine.js';
import { RedisEngine } from '../src/engines/redis/index.js';
import { http, order, publish, startGateway, TestClient, tick, type TestGateway } from '@tradesync/testing';
import { readAllEvents, Replica, waitForOffset } from '@tradesync/testing/replica';
import { useTestRedis } from '@tradesync/testing/redis';

/*
 * Several gateway nodes over one Redis: the cluster behaves as one gateway. A client
 * that loses its node resumes on another without missing or repeating an event, every
 * node serves the same offsets and state, and an outage or a flushed Redis never
 * leaves a replica wrong.
 */

const redis = useTestRedis();

const node = (port = 0): Promise<TestGateway> => startGateway({ engine: 'redis', redisUrl: redis.url, port });

function client(urls: string[]): TradeSyncClient {
  return new TradeSyncClient({ url: urls, WebSocket: WebSocket as never, backoff: { delaysMs: [50], jitter: 0 }, maxAttempts: 1000 });
}

/** Publishes on `target` every `everyMs` until stopped; returns the last offset acknowledged. */
function producer(target: () => string, make: (k: number) => unknown[], everyMs = 10) {
  let running = true;
  let last = 0;
  let k = 0;
  const done = (async () => {
    while (running) {
      const res = await publish(target(), make(k++));
      if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${JSON.stringify(res.body)}`);
      const offsets = res.body['offsets'] as Array<{ offset: number }>;
      last = offsets.at(-1)!.offset;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    get last() {
      return last;
    },
    async stop(): Promise<number> {
      running = false;
      await done;
      return last;
    },
  };
}

const stateOf = (g: TestGateway, stream: string): StreamState | undefined => g.gateway.store.get(stream)?.state;

describe('a Redis cluster of gateways', () => {
  it('moves a client whose node stopped to another node, resuming with recovered: true and no gap, while a producer publishes on a third', async () => {
    await using a = await node();
    await using b = await node();
    await using c = await node();
    const STREAM = 'orders:acc1';
    const tc = client([a.wsUrl, b.wsUrl, c.wsUrl]);
    const synced: SyncedInfo[] = [];
    tc.on('synced', (s) => synced.push(s));
    const seen: number[] = [];
    const handle = tc.subscribe(STREAM, { onEvent: (e) => seen.push(e.offset) });
    await vi.waitFor(() => expect(synced).toHaveLength(1));
    expect(tc.status.url).toBe(a.wsUrl);

    const p = producer(() => c.url, (k) => [order('acc1', { order_id: `o${k % 7}`, quantity: String(k + 1) })]);
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(20), { timeout: 5000 });
    await a.stop();
    await vi.waitFor(() => expect(synced).toHaveLength(2), { timeout: 10_000 });
    expect(tc.status.url).toBe(b.wsUrl);
    expect(synced[1]).toMatchObject({ stream: STREAM, recovered: true });
    const afterMove = seen.length;
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(afterMove + 20), { timeout: 5000 });
    const head = await p.stop();

    await vi.waitFor(() => expect(handle.position?.offset).toBe(head), { timeout: 5000 });
    // Every event exactly once, in order, across the move.
    expect(seen).toEqual(Array.from({ length: head }, (_, k) => k + 1));
    expect(handle.state).toEqual(stateOf(b, STREAM));
    await vi.waitFor(() => expect(c.gateway.store.get(STREAM)?.head).toBe(head));
    expect(stateOf(c, STREAM)).toEqual(stateOf(b, STREAM));
    tc.disconnect();
  });

  it('assigns dense offsets, identical on every node, to producers publishing concurrently on all nodes', async () => {
    await using a = await node();
    await using b = await node();
    await using c = await node();
    const nodes = [a, b, c];
    const ORDERS = 'orders:acc2';
    const MARKET = 'market:ETH-USD';
    const answers = await Promise.all(
      nodes.flatMap((n, i) =>
        Array.from({ length: 30 }, (_, k) =>
          publish(n.url, [order('acc2', { order_id: `n${i}-${k % 4}`, quantity: String(k + 1) }), tick('ETH-USD', String(1000 + k))]),
        ),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200));
    const given = answers.flatMap((r) => (r.body['offsets'] as Array<{ stream: string; offset: number }>).filter((o) => o.stream === ORDERS).map((o) => o.offset));
    expect(given.sort((x, y) => x - y)).toEqual(Array.from({ length: 90 }, (_, k) => k + 1));

    const logs = await Promise.all(nodes.map((n) => readAllEvents(n.url, ORDERS)));
    for (const log of logs) {
      expect(log.events.map((e) => e.offset)).toEqual(given);
      expect(log).toEqual(logs[0]);
    }
    const expected = logs[0]!.events.reduce((s, e) => applyEvent(s, e), initialState('orders'));
    for (const n of nodes) {
      await vi.waitFor(() => expect(n.gateway.store.get(ORDERS)?.head).toBe(90));
      await vi.waitFor(() => expect(n.gateway.store.get(MARKET)?.head).toBe(90));
      expect(stateOf(n, ORDERS)).toEqual(expected);
      expect(n.gateway.store.get(ORDERS)?.epoch).toBe(logs[0]!.epoch);
      expect(stateOf(n, MARKET)).toEqual(stateOf(a, MARKET));
    }
    const snapshots = await Promise.all(nodes.map((n) => http(n.url, '/api/state/snapshot?account=acc2')));
    for (const s of snapshots) expect(s.body['pending_orders']).toEqual(snapshots[0]!.body['pending_orders']);
  });

  it('recovers notifications lost while the subscriber connections were cut, without a reconnect of any client', async () => {
    await using a = await node();
    await using b = await node();
    const STREAM = 'orders:acc3';
    await using ws = await TestClient.connect(b.wsUrl);
    const replica = new Replica();
    replica.attach(ws);
    await ws.request('subscribe', { stream: STREAM });
    const p = producer(() => a.url, (k) => [order('acc3', { order_id: `o${k % 5}`, quantity: String(k + 1) })], 2);
    for (let cut = 0; cut < 5; cut++) {
      await new Promise((r) => setTimeout(r, 60));
      // Drops every pub/sub connection: notifications published meanwhile are lost.
      await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
    }
    const head = await p.stop();
    await waitForOffset(ws, STREAM, head);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(STREAM)?.offset).toBe(head);
    expect(replica.streams.get(STREAM)?.state).toEqual(stateOf(a, STREAM));
    expect(stateOf(b, STREAM)).toEqual(stateOf(a, STREAM));
  });

  it('is unhealthy and answers 503 while Redis is down, then catches up by itself when Redis keeps its data', async () => {
    await using a = await node();
    await using b = await node();
    const STREAM = 'orders:acc4';
    expect((await publish(a.url, [order('acc4', { order_id: 'x' })])).status).toBe(200);
    await vi.waitFor(() => expect(b.gateway.store.get(STREAM)?.head).toBe(1));
    const epoch = b.gateway.store.get(STREAM)!.epoch;

    // SAVE then stop: the restarted server loads the same data (like appendonly yes).
    await redis.command('SAVE');
    await redis.stop();
    for (const n of [a, b]) {
      const health = await http(n.url, '/health');
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'unhealthy', engine: { kind: 'redis', ok: false } });
    }
    const refused = await publish(b.url, [order('acc4', { order_id: 'y' })]);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ success: false, error: { code: 'UNAVAILABLE' } });

    await redis.restart();
    for (const n of [a, b]) await vi.waitFor(async () => expect((await http(n.url, '/health')).status).toBe(200), { timeout: 10_000 });
    const accepted = await publish(b.url, [order('acc4', { order_id: 'z' })]);
    expect(accepted.status).toBe(200);
    expect(accepted.body['offsets']).toEqual([{ stream: STREAM, epoch, offset: 2, type: 'order:updated' }]);
    for (const n of [a, b]) {
      await vi.waitFor(() => expect(n.gateway.store.get(STREAM)).toMatchObject({ epoch, head: 2 }));
      expect(Object.keys((stateOf(n, STREAM) as { orders: object }).orders).sort()).toEqual(['x', 'z']);
    }
  });

  it('after Redis came back empty, gives subscribed clients a snapshot of the new epoch and never a wrong delta', async () => {
    await using a = await node();
    await using b = await node();
    const STREAM = 'orders:acc5';
    await publish(a.url, Array.from({ length: 5 }, (_, k) => order('acc5', { order_id: `old${k}` })));
    const tc = client([b.wsUrl]);
    const synced: SyncedInfo[] = [];
    tc.on('synced', (s) => synced.push(s));
    const handle = tc.subscribe(STREAM);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(5));

    await redis.stop();
    await vi.waitFor(async () => expect((await http(b.url, '/health')).status).toBe(503));
    await redis.restart();
    await vi.waitFor(async () => expect((await http(a.url, '/health')).status).toBe(200), { timeout: 10_000 });
    const res = await publish(a.url, [order('acc5', { order_id: 'new1' })]);
    expect(res.status).toBe(200);
    const [{ epoch }] = res.body['offsets'] as [{ epoch: string }];

    await vi.waitFor(() => expect(handle.position).toEqual({ epoch, offset: 1 }), { timeout: 10_000 });
    expect(synced.some((s) => !s.recovered && s.epoch === epoch)).toBe(true);
    expect(handle.state).toEqual(stateOf(b, STREAM));
    expect(Object.keys((handle.state as { orders: object }).orders)).toEqual(['new1']);
    tc.disconnect();
  });

  it('when Redis is flushed, a subscribed client gets a snapshot (recovered: false) and its replica equals the server state', async () => {
    await using a = await node();
    await using b = await node();
    await using c = await node();
    const STREAM = 'orders:acc6';
    await publish(a.url, Array.from({ length: 5 }, (_, k) => order('acc6', { order_id: `old${k}` })));
    await using ws = await TestClient.connect(b.wsUrl);
    const replica = new Replica();
    replica.attach(ws);
    await ws.request('subscribe', { stream: STREAM });
    const tc = client([a.wsUrl]);
    const synced: SyncedInfo[] = [];
    tc.on('synced', (s) => synced.push(s));
    const handle = tc.subscribe(STREAM);
    await vi.waitFor(() => expect(handle.position?.offset).toBe(5));

    // Flush while a producer keeps publishing: the first append after it creates the new epoch.
    const p = producer(() => c.url, (k) => [order('acc6', { order_id: `new${k % 3}`, quantity: String(k + 1) })], 5);
    await new Promise((r) => setTimeout(r, 100));
    await redis.command('FLUSHALL');
    await new Promise((r) => setTimeout(r, 300));
    const head = await p.stop();
    const { epoch } = await readAllEvents(c.url, STREAM);

    await vi.waitFor(() => expect(handle.position).toEqual({ epoch, offset: head }), { timeout: 10_000 });
    expect(synced.filter((s) => !s.recovered && s.epoch === epoch).length).toBeGreaterThanOrEqual(1);
    await waitForOffset(ws, STREAM, head);
    await vi.waitFor(() => {
      replica.consume();
      expect(replica.streams.get(STREAM)).toMatchObject({ epoch, offset: head });
    });
    expect(replica.problems).toEqual([]);
    for (const n of [a, b, c]) {
      await vi.waitFor(() => expect(n.gateway.store.get(STREAM)).toMatchObject({ epoch, head }));
      expect(stateOf(n, STREAM)).toEqual(stateOf(c, STREAM));
    }
    expect(replica.streams.get(STREAM)?.state).toEqual(stateOf(b, STREAM));
    expect(handle.state).toEqual(stateOf(a, STREAM));
    expect(Object.keys((handle.state as { orders: object }).orders).every((id) => id.startsWith('new'))).toBe(true);
    tc.disconnect();
  });

  it('retries a reset whose rebuild fails (Redis flaky right then) instead of crashing or staying stale', async () => {
    class FlakyEngine extends RedisEngine {
      failures = 0;
      override async loadSnapshot(stream: string): Promise<StoredSnapshot | undefined> {
        if (this.failures > 0) {
          this.failures--;
          throw new EngineUnavailableError('flaky redis');
        }
        return super.loadSnapshot(stream);
      }
    }
    const engine = new FlakyEngine({ url: redis.url, watchIntervalMs: 100 });
    await using a = await startGateway({}, { engine });
    const STREAM = 'orders:acc8';
    await publish(a.url, [order('acc8', { order_id: 'before' })]);
    await using ws = await TestClient.connect(a.wsUrl);
    await ws.request('subscribe', { stream: STREAM });
    engine.failures = 2;
    await redis.command('FLUSHALL');
    const reset = await ws.next((m) => m.type === 'subscribed' && m.id === undefined, 10_000);
    expect(engine.failures).toBe(0);
    expect(reset).toMatchObject({ stream: STREAM, recovered: false, offset: 0, snapshot: { offset: 0, state: { orders: {} } } });
    expect(reset['epoch']).toBe((await engine.head(STREAM)).epoch);
  });
});
