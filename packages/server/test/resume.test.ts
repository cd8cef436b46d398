import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyEvents, initialState, type OrdersState, type StreamState } from '@tradesync/protocol';
import { EmbeddedEngine } from '../src/engines/embedded.js';
import type { ReadResult } from '../src/engines/engine.js';
import { MigrationRegistry } from '../src/state/migrations.js';
import { order, publish, startGateway, TestClient, testConfig, type Message, type TestGateway } from '@tradesync/testing';
import { readAllEvents, Replica, stateSnapshot, waitForOffset, type WireEvent } from '@tradesync/testing/replica';

const ACCOUNT = 'acc1';
const ORDERS = `orders:${ACCOUNT}`;

/** Publishes `n` new open orders over HTTP; returns the offsets given. */
async function publishOrders(gw: TestGateway, n: number): Promise<number[]> {
  const answer = await publish(gw.url, Array.from({ length: n }, () => order(ACCOUNT)));
  expect(answer.status).toBe(200);
  return (answer.body.offsets as Array<{ offset: number }>).map((o) => o.offset);
}

/** The state the one reducer gives for every event the stream ever had. */
function reduced(events: readonly WireEvent[]): StreamState {
  return applyEvents(initialState('orders'), events);
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => from + k);
const offsetsOf = (m: Message): number[] => ((m.events as WireEvent[] | undefined) ?? []).map((e) => e.offset);

describe('resuming a subscription with since', () => {
  it('replays exactly the missed events, then continues live at head + 1', async () => {
    await using gw = await startGateway();
    const first = await TestClient.connect(gw.wsUrl);
    const replica = new Replica();
    replica.attach(first);
    await first.request('subscribe', { stream: ORDERS });
    await publishOrders(gw, 5);
    await waitForOffset(first, ORDERS, 5);
    replica.consume();
    first.close();
    await first.closed;

    const since = replica.since(ORDERS)!;
    expect(since.offset).toBe(5);
    await publishOrders(gw, 3);

    await using second = await TestClient.connect(gw.wsUrl);
    replica.attach(second);
    const sub = await second.request('subscribe', { stream: ORDERS, since });
    expect(sub).toMatchObject({ type: 'subscribed', stream: ORDERS, recovered: true, epoch: since.epoch, offset: 8 });
    expect(sub.snapshot).toBeUndefined();
    expect(offsetsOf(sub)).toEqual([6, 7, 8]);

    await publishOrders(gw, 1);
    const live = await second.next((m) => m.type === 'order:updated');
    expect(live).toMatchObject({ stream: ORDERS, offset: 9, epoch: since.epoch });

    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(replica.streams.get(ORDERS)!.state).toEqual(gw.gateway.store.get(ORDERS)!.state);
  });

  it('recovers with no events when since is the head', async () => {
    await using gw = await startGateway();
    await publishOrders(gw, 4);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 4 } });
    expect(sub).toMatchObject({ recovered: true, epoch, offset: 4, events: [] });
    await publishOrders(gw, 1);
    expect(await client.next((m) => m.type === 'order:updated')).toMatchObject({ offset: 5 });
  });

  it('answers with a snapshot equal to the reducer state when history was trimmed past since', async () => {
    await using gw = await startGateway({ history: { maxEvents: 5, snapshotEvery: 5, memoryWindow: 2 } });
    await publishOrders(gw, 12);
    // Close a few orders too, so the state is not just "everything published".
    await publish(gw.url, [order(ACCOUNT, { order_id: 'ord-x', status: 'open' }), order(ACCOUNT, { order_id: 'ord-x', status: 'filled' })]);
    await gw.gateway.compact();
    const head = await gw.gateway.engine.head(ORDERS);
    expect(head.offset).toBe(14);
    expect(head.first).toBeGreaterThan(4);

    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch: head.epoch, offset: 3 } });
    expect(sub).toMatchObject({ recovered: false, epoch: head.epoch, offset: 14 });
    expect(sub.events).toBeUndefined();
    const snapshot = sub.snapshot as { epoch: string; offset: number; state: OrdersState };
    expect(snapshot).toMatchObject({ epoch: head.epoch, offset: 14 });
    expect(snapshot.state).toEqual(gw.gateway.store.get(ORDERS)!.state);
    expect(Object.keys(snapshot.state.orders)).not.toContain('ord-x');
    // The same open orders as the REST view of the account.
    const rest = await stateSnapshot(gw.url, ACCOUNT);
    expect(Object.values(snapshot.state.orders)).toEqual(rest.pending_orders);
    expect(rest.streams).toMatchObject({ [ORDERS]: { epoch: head.epoch, offset: 14 } });
  });

  it('answers with a snapshot when since names another epoch', async () => {
    await using gw = await startGateway();
    await publishOrders(gw, 3);
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch: '00000000deadbeef', offset: 1 } });
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    expect(sub).toMatchObject({ recovered: false, epoch, offset: 3, snapshot: { epoch, offset: 3 } });
    expect((sub.snapshot as { state: unknown }).state).toEqual(gw.gateway.store.get(ORDERS)!.state);
  });

  it('answers with a snapshot when since is beyond the head', async () => {
    await using gw = await startGateway();
    await publishOrders(gw, 3);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 10 } });
    expect(sub).toMatchObject({ recovered: false, epoch, offset: 3, snapshot: { epoch, offset: 3 } });
    await publishOrders(gw, 1);
    expect(await client.next((m) => m.type === 'order:updated')).toMatchObject({ offset: 4 });
  });

  it('recovers through the engine when since is older than the memory window but still stored', async () => {
    await using gw = await startGateway({ history: { memoryWindow: 3 } });
    await publishOrders(gw, 20);
    const entry = gw.gateway.store.get(ORDERS)!;
    expect(entry.window.length).toBeLessThanOrEqual(6);
    expect(gw.gateway.store.windowAfter(entry, 2)).toBeUndefined();
    const read = vi.spyOn(gw.gateway.engine, 'read');

    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch: entry.epoch, offset: 2 } });
    expect(sub).toMatchObject({ recovered: true, epoch: entry.epoch, offset: 20 });
    expect(offsetsOf(sub)).toEqual(range(3, 20));
    expect(read).toHaveBeenCalledWith(ORDERS, 2, expect.any(Number));
    const all = await readAllEvents(gw.url, ORDERS);
    expect(sub.events).toEqual(all.events.slice(2));
  });

  it('answers with a snapshot when more events were missed than max recovery events allows', async () => {
    await using gw = await startGateway({ history: { maxRecoveryEvents: 5 } });
    await publishOrders(gw, 20);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    await using client = await TestClient.connect(gw.wsUrl);
    const tooFar = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 14 } });
    expect(tooFar).toMatchObject({ recovered: false, offset: 20, snapshot: { offset: 20 } });
    const justEnough = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 15 } });
    expect(justEnough).toMatchObject({ recovered: true, offset: 20 });
    expect(offsetsOf(justEnough)).toEqual(range(16, 20));
  });
});

/**
 * An embedded engine whose reads, while `hold` is set, answer only at `release()` with
 * what the log held when they were asked: a slow (e.g. networked) engine.
 */
class SlowReadEngine extends EmbeddedEngine {
  hold = false;
  readonly waiting: Array<() => void> = [];
  override async read(stream: string, after: number, limit: number): Promise<ReadResult> {
    const result = await super.read(stream, after, limit);
    if (this.hold) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return result;
  }
  release(): void {
    this.hold = false;
    for (const resume of this.waiting.splice(0)) resume();
  }
}

/** An engine that stops telling the gateway about appends: a node lagging behind the shared log. */
class LaggingEngine extends EmbeddedEngine {
  deaf = false;
  override onAppend(listener: Parameters<EmbeddedEngine['onAppend']>[0]): () => void {
    return super.onAppend((events) => {
      if (!this.deaf) listener(events);
    });
  }
}

describe('a resume on a node that lags behind the shared log', () => {
  it('catches up and recovers instead of sending the client back in time with an older snapshot', async () => {
    const dataDir = testConfig().dataDir;
    const engine = new LaggingEngine({ dataDir });
    await using gw = await startGateway({}, { dataDir, engine });
    await publishOrders(gw, 3);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    // Another node appended two more; this one has not heard yet.
    engine.deaf = true;
    await engine.append([order(ACCOUNT), order(ACCOUNT)]);
    expect(gw.gateway.store.get(ORDERS)!.head).toBe(3);

    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 4 } });
    expect(sub).toMatchObject({ recovered: true, offset: 5 });
    expect(offsetsOf(sub)).toEqual([5]);
    expect(gw.gateway.store.get(ORDERS)!.state).toEqual(reduced((await readAllEvents(gw.url, ORDERS)).events));
  });
});

describe('a resume read from a slow engine', () => {
  it('leaves no subscription behind for a client that disconnected while its missed events were read', async () => {
    const dataDir = testConfig().dataDir;
    const engine = new SlowReadEngine({ dataDir });
    await using gw = await startGateway({ history: { memoryWindow: 3 } }, { dataDir, engine });
    await publishOrders(gw, 20);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;

    engine.hold = true;
    const client = await TestClient.connect(gw.wsUrl);
    // Older than the memory window: the gateway must read the engine, which is slow.
    client.send({ type: 'subscribe', data: { stream: ORDERS, since: { epoch, offset: 2 } } });
    await vi.waitFor(() => expect(engine.waiting.length).toBe(1));
    client.close();
    await client.closed;
    await vi.waitFor(() => expect(gw.gateway.connections.size).toBe(0));
    engine.release();
    // From the released read to the registration the handler only chains promises, so
    // it has finished by the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    expect(gw.gateway.ctx.fanout.subscriberCount(ORDERS)).toBe(0);

    // Live traffic goes on for everyone else.
    await using other = await TestClient.connect(gw.wsUrl);
    await other.request('subscribe', { stream: ORDERS });
    expect(gw.gateway.ctx.fanout.subscriberCount(ORDERS)).toBe(1);
  });
});

describe('a resume read racing with publishes on a slow engine', () => {
  it('joins the events read from the engine with those published meanwhile, then goes on live', async () => {
    const dataDir = testConfig().dataDir;
    const engine = new SlowReadEngine({ dataDir });
    await using gw = await startGateway({ history: { memoryWindow: 3 } }, { dataDir, engine });
    await publishOrders(gw, 20);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    await using client = await TestClient.connect(gw.wsUrl);
    engine.hold = true;
    const reply = client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 2 } });
    await vi.waitFor(() => expect(engine.waiting.length).toBe(1));
    await publishOrders(gw, 2); // 21, 22: after the read, still in the memory window
    engine.release();
    const sub = await reply;
    expect(sub).toMatchObject({ recovered: true, epoch, offset: 22 });
    expect(offsetsOf(sub)).toEqual(range(3, 22));
    expect(sub.events).toEqual((await readAllEvents(gw.url, ORDERS)).events.slice(2));
    await publishOrders(gw, 1);
    expect(await client.next((m) => m.type === 'order:updated')).toMatchObject({ offset: 23 });
  });

  it('falls back to a snapshot when more was published during the read than the memory window holds', async () => {
    const dataDir = testConfig().dataDir;
    const engine = new SlowReadEngine({ dataDir });
    await using gw = await startGateway({ history: { memoryWindow: 3 } }, { dataDir, engine });
    await publishOrders(gw, 20);
    const epoch = gw.gateway.store.get(ORDERS)!.epoch;
    await using client = await TestClient.connect(gw.wsUrl);
    engine.hold = true;
    const reply = client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 2 } });
    await vi.waitFor(() => expect(engine.waiting.length).toBe(1));
    for (let i = 0; i < 5; i++) await publishOrders(gw, 3); // 21..35: the window no longer reaches 21
    engine.release();
    const sub = await reply;
    expect(sub).toMatchObject({ recovered: false, epoch, offset: 35, snapshot: { epoch, offset: 35 } });
    expect((sub.snapshot as { state: unknown }).state).toEqual(gw.gateway.store.get(ORDERS)!.state);
    await publishOrders(gw, 1);
    expect(await client.next((m) => m.type === 'order:updated')).toMatchObject({ offset: 36 });
  });
});

describe('resuming across a gateway restart', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('recovers the missed events in the same epoch with no gap after a restart on the same data', async () => {
    const gw1 = await startGateway({}, { keepData: true });
    dirs.push(gw1.dataDir);
    const replica = new Replica();
    {
      await using client = await TestClient.connect(gw1.wsUrl);
      replica.attach(client);
      await client.request('subscribe', { stream: ORDERS });
      await publishOrders(gw1, 5);
      await waitForOffset(client, ORDERS, 5);
      replica.consume();
    }
    // Missed while the client was away, just before the restart.
    await publishOrders(gw1, 4);
    const before = gw1.gateway.store.get(ORDERS)!;
    const beforeState = before.state;
    await gw1.stop();

    await using gw2 = await startGateway({}, { dataDir: gw1.dataDir });
    const after = gw2.gateway.store.get(ORDERS)!;
    expect({ epoch: after.epoch, head: after.head }).toEqual({ epoch: before.epoch, head: 9 });
    expect(after.state).toEqual(beforeState);

    await using client = await TestClient.connect(gw2.wsUrl);
    replica.attach(client);
    const since = replica.since(ORDERS)!;
    const sub = await client.request('subscribe', { stream: ORDERS, since });
    expect(sub).toMatchObject({ recovered: true, epoch: since.epoch, offset: 9 });
    expect(offsetsOf(sub)).toEqual(range(6, 9));
    await publishOrders(gw2, 2);
    await waitForOffset(client, ORDERS, 11);
    replica.consume();
    expect(replica.problems).toEqual([]);
    expect(positionAndState(replica.streams.get(ORDERS))).toEqual({ epoch: since.epoch, offset: 11, state: gw2.gateway.store.get(ORDERS)!.state });
  });

  it('loses nothing for a resuming client across repeated restarts right after bursts and compactions', async () => {
    const history = { maxEvents: 8, snapshotEvery: 4, memoryWindow: 3 };
    let gw = await startGateway({ history }, { keepData: true });
    dirs.push(gw.dataDir);
    const replica = new Replica();
    try {
      for (let cycle = 0; cycle < 6; cycle++) {
        const client = await TestClient.connect(gw.wsUrl);
        replica.attach(client);
        const since = replica.since(ORDERS);
        const sub = await client.request('subscribe', since ? { stream: ORDERS, since } : { stream: ORDERS });
        // Resuming right after a restart recovers unless compaction trimmed past the position.
        if (since && gw.gateway.store.get(ORDERS)!.head - since.offset <= history.maxEvents) {
          expect(sub, `cycle ${cycle}`).toMatchObject({ recovered: true });
        }
        // A burst the client may or may not have received when the gateway stops.
        await gw.gateway.publish(Array.from({ length: 2 + cycle * 3 }, (_, k) => order(ACCOUNT, k % 3 === 2 ? { order_id: `ord-x${cycle}`, status: 'filled' } : {})));
        if (cycle % 2 === 0) await gw.gateway.compact();
        await gw.gateway.publish([order(ACCOUNT, { order_id: `ord-x${cycle}`, status: 'open' })]);
        const before = { epoch: gw.gateway.store.get(ORDERS)!.epoch, head: gw.gateway.store.get(ORDERS)!.head, state: gw.gateway.store.get(ORDERS)!.state };
        await gw.stop();
        await client.closed;
        replica.consume();
        gw = await startGateway({ history }, { dataDir: gw.dataDir, keepData: true });
        const after = gw.gateway.store.get(ORDERS)!;
        expect({ epoch: after.epoch, head: after.head, state: after.state }).toEqual(before);
      }
      await using client = await TestClient.connect(gw.wsUrl);
      replica.attach(client);
      await client.request('subscribe', { stream: ORDERS, since: replica.since(ORDERS) });
      replica.consume();
      expect(replica.problems).toEqual([]);
      expect(positionAndState(replica.streams.get(ORDERS))).toEqual({ epoch: gw.gateway.store.get(ORDERS)!.epoch, offset: gw.gateway.store.get(ORDERS)!.head, state: gw.gateway.store.get(ORDERS)!.state });
    } finally {
      await gw.stop();
    }
  });

  it('recovers with no events after a restart when the client had seen the head', async () => {
    const gw1 = await startGateway({}, { keepData: true });
    dirs.push(gw1.dataDir);
    await publishOrders(gw1, 3);
    const epoch = gw1.gateway.store.get(ORDERS)!.epoch;
    await gw1.stop();
    await using gw2 = await startGateway({}, { dataDir: gw1.dataDir });
    await using client = await TestClient.connect(gw2.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch, offset: 3 } });
    expect(sub).toMatchObject({ recovered: true, epoch, offset: 3, events: [] });
  });
});

describe('snapshot schema versions', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** Appends orders straight into a fresh engine; returns its data dir and the stored events. */
  async function seed(n: number): Promise<{ dataDir: string; engine: EmbeddedEngine; events: WireEvent[] }> {
    const dataDir = testConfig().dataDir;
    dirs.push(dataDir);
    const engine = new EmbeddedEngine({ dataDir });
    await engine.open();
    const events = (await engine.append(Array.from({ length: n }, () => order(ACCOUNT)))) as WireEvent[];
    return { dataDir, engine, events };
  }

  it('migrates a snapshot written with an old schema version on start', async () => {
    const { dataDir, engine, events } = await seed(6);
    // Version 1 kept open orders as an array; version 2 (the reducer's shape) keys them by id.
    const v1State = { orders: Object.values((reduced(events.slice(0, 4)) as OrdersState).orders) };
    await engine.saveSnapshot({ stream: ORDERS, epoch: events[0]!.epoch, offset: 4, schemaVersion: 1, state: v1State, createdAt: new Date().toISOString() });
    // Only the snapshot can give the first four orders now.
    await engine.trim(ORDERS, 4);
    await engine.close();

    const migrate = vi.fn((state: unknown) => ({
      orders: Object.fromEntries((state as { orders: Array<{ order_id: string }> }).orders.map((o) => [o.order_id, o])),
    }));
    const migrations = new MigrationRegistry(2, [{ from: 1, migrate }]);
    await using gw = await startGateway({}, { dataDir, migrations });
    expect(migrate).toHaveBeenCalledTimes(1);
    const entry = gw.gateway.store.get(ORDERS)!;
    expect(entry.head).toBe(6);
    expect(entry.state).toEqual(reduced(events));
    const rest = await stateSnapshot(gw.url, ACCOUNT);
    expect(rest.pending_orders).toEqual(Object.values((reduced(events) as OrdersState).orders));

    // New snapshots are written with the current version.
    await publishOrders(gw, 1);
    await gw.stop();
    const reopened = new EmbeddedEngine({ dataDir });
    await reopened.open();
    try {
      expect(await reopened.loadSnapshot(ORDERS)).toMatchObject({ offset: 7, schemaVersion: 2 });
    } finally {
      await reopened.close();
    }
  });

  it('rebuilds from the log, without crashing, when a snapshot is newer than the server knows', async () => {
    const { dataDir, engine, events } = await seed(5);
    await engine.saveSnapshot({
      stream: ORDERS,
      epoch: events[0]!.epoch,
      offset: 3,
      schemaVersion: 99,
      state: { something: 'from the future' },
      createdAt: new Date().toISOString(),
    });
    await engine.close();

    await using gw = await startGateway({}, { dataDir });
    const entry = gw.gateway.store.get(ORDERS)!;
    expect(entry.head).toBe(5);
    expect(entry.state).toEqual(reduced(events));
    const health = await fetch(`${gw.url}/health`);
    expect(health.status).toBe(200);
    await using client = await TestClient.connect(gw.wsUrl);
    const sub = await client.request('subscribe', { stream: ORDERS, since: { epoch: entry.epoch, offset: 2 } });
    expect(sub).toMatchObject({ recovered: true, offset: 5 });
    expect(offsetsOf(sub)).toEqual([3, 4, 5]);
  });
  it('refuses to start, naming the stream, when a snapshot it cannot read is the only copy of trimmed history', async () => {
    const { dataDir, engine, events } = await seed(6);
    await engine.saveSnapshot({ stream: ORDERS, epoch: events[0]!.epoch, offset: 4, schemaVersion: 99, state: {}, createdAt: new Date().toISOString() });
    await engine.trim(ORDERS, 4);
    await engine.close();

    // Serving orders 5 and 6 alone under the same epoch would be wrong state.
    await expect(startGateway({}, { dataDir, keepData: true })).rejects.toThrow(/orders:.*cannot be rebuilt exactly/);
    const reopened = new EmbeddedEngine({ dataDir });
    await reopened.open();
    try {
      // The only complete copy is left untouched.
      expect(await reopened.loadSnapshot(ORDERS)).toMatchObject({ offset: 4, schemaVersion: 99 });
    } finally {
      await reopened.close();
    }
  });
});

/** What a replica holds of a stream, without its bookkeeping (jumps, checksums verified). */
function positionAndState(stream: { epoch: string; offset: number; state: unknown } | undefined) {
  return stream && { epoch: stream.epoch, offset: stream.offset, state: stream.state };
}
