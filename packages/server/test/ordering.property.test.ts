import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OrdersState, PortfolioState, StreamState } from '@tradesync/protocol';
import { order, publish, startGateway, TestClient, tick, type TestGateway } from '@tradesync/testing';
import { Replica, stateSnapshot } from '@tradesync/testing/replica';

/**
 * Random interleavings of publishes (HTTP and in-process, batches over 2-3 streams,
 * awaited or left in flight), disconnects with resume, mid-stream subscribes and
 * compactions. The client replica is built only from what the socket delivered, with
 * the one reducer; at the end it must equal the server's state, and within each
 * connection segment every stream's offsets must follow each other with no gap and
 * no duplicate.
 */

type EventSpec =
  | { readonly kind: 'order'; readonly id: number; readonly status: 'open' | 'partially_filled' | 'filled' | 'cancelled' }
  | { readonly kind: 'order_closed'; readonly id: number }
  | { readonly kind: 'balance'; readonly currency: 'USD' | 'BTC'; readonly total: number }
  | { readonly kind: 'position'; readonly symbol: 'BTC-USD' | 'ETH-USD'; readonly qty: number }
  | { readonly kind: 'position_closed'; readonly symbol: 'BTC-USD' | 'ETH-USD' }
  | { readonly kind: 'tick'; readonly price: number };

type Action =
  | { readonly do: 'publish'; readonly via: 'http' | 'direct'; readonly wait: boolean; readonly events: ReadonlyArray<{ stream: number; spec: EventSpec }> }
  /** Disconnect; `missed` is published (and maybe compacted away) while the client is gone; `settle` waits for the resume replies. */
  | { readonly do: 'reconnect'; readonly missed: ReadonlyArray<{ stream: number; spec: EventSpec }>; readonly compactAway: boolean; readonly settle: boolean }
  | { readonly do: 'subscribe'; readonly stream: number }
  | { readonly do: 'compact' };

const specFor = (kind: 'orders' | 'portfolio' | 'market'): fc.Arbitrary<EventSpec> => {
  switch (kind) {
    case 'orders':
      return fc.oneof(
        fc.record({ kind: fc.constant('order' as const), id: fc.nat(5), status: fc.constantFrom('open', 'partially_filled', 'filled', 'cancelled') }),
        fc.record({ kind: fc.constant('order_closed' as const), id: fc.nat(5) }),
      );
    case 'portfolio':
      return fc.oneof(
        fc.record({ kind: fc.constant('balance' as const), currency: fc.constantFrom('USD', 'BTC'), total: fc.nat(100_000) }),
        fc.record({ kind: fc.constant('position' as const), symbol: fc.constantFrom('BTC-USD', 'ETH-USD'), qty: fc.integer({ min: 1, max: 50 }) }),
        fc.record({ kind: fc.constant('position_closed' as const), symbol: fc.constantFrom('BTC-USD', 'ETH-USD') }),
      );
    case 'market':
      return fc.record({ kind: fc.constant('tick' as const), price: fc.integer({ min: 1, max: 1_000_000 }) });
  }
};

const KINDS = ['orders', 'portfolio', 'market'] as const;

const eventArb = fc.nat(2).chain((stream) => specFor(KINDS[stream]!).map((spec) => ({ stream, spec })));

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ do: fc.constant('publish' as const), via: fc.constantFrom('http' as const, 'direct' as const), wait: fc.boolean(), events: fc.array(eventArb, { minLength: 1, maxLength: 12 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({ do: fc.constant('reconnect' as const), missed: fc.array(eventArb, { maxLength: 20 }), compactAway: fc.boolean(), settle: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('subscribe' as const), stream: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.constant({ do: 'compact' as const }) },
);

function streamsOf(account: string): string[] {
  return [`orders:${account}`, `portfolio:${account}`, `market:${account}`];
}

function toInput(account: string, { stream, spec }: { stream: number; spec: EventSpec }): { stream: string; type: string; data: Record<string, unknown> } {
  const name = streamsOf(account)[stream]!;
  switch (spec.kind) {
    case 'order':
      return order(account, { order_id: `o${spec.id}`, status: spec.status, filled_quantity: spec.status === 'partially_filled' ? '0.25' : '0' });
    case 'order_closed':
      return { stream: name, type: 'order:closed', data: { order_id: `o${spec.id}`, status: 'cancelled' } };
    case 'balance':
      return { stream: name, type: 'balance:updated', data: { currency: spec.currency, total: `${spec.total}.00`, available: `${spec.total}.00`, reserved: '0.00' } };
    case 'position':
      return {
        stream: name,
        type: 'position:updated',
        data: { symbol: spec.symbol, side: 'long', quantity: `${spec.qty}`, avg_price: '100.0', mark_price: '101.0', unrealized_pnl: `${spec.qty}.0` },
      };
    case 'position_closed':
      return { stream: name, type: 'position:closed', data: { symbol: spec.symbol } };
    case 'tick':
      return tick(account, `${spec.price}.5`);
  }
}

const byKey = (key: string) => (a: Record<string, unknown>, b: Record<string, unknown>) => String(a[key]).localeCompare(String(b[key]));

describe('ordering under random interleavings', () => {
  let gw: TestGateway;
  let run = 0;

  beforeAll(async () => {
    // Small windows so resumes go through the engine and compaction trims behind clients.
    gw = await startGateway({ history: { memoryWindow: 4, maxEvents: 10, snapshotEvery: 5 } });
  });
  afterAll(async () => {
    await gw[Symbol.asyncDispose]();
  });

  it('leaves a resuming client with exactly the server state and gap-free, duplicate-free offsets', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 3 }), fc.array(actionArb, { minLength: 1, maxLength: 30, size: 'medium' }), async (streamCount, actions) => {
        const account = `prop${++run}`;
        const names = streamsOf(account).slice(0, streamCount);
        const replica = new Replica();
        const wanted = new Set<string>([names[0]!]);
        const inFlight: Array<Promise<unknown>> = [];
        let client = await TestClient.connect(gw.wsUrl);
        replica.attach(client);
        client.send({ id: 'sub0', type: 'subscribe', data: { stream: names[0] } });
        try {
          for (const action of actions) {
            switch (action.do) {
              case 'publish': {
                const events = action.events.filter((e) => e.stream < streamCount).map((e) => toInput(account, e));
                if (events.length === 0) break;
                const done = action.via === 'http' ? publish(gw.url, events).then((r) => expect(r.status).toBe(200)) : gw.gateway.publish(events);
                if (action.wait) await done;
                else inFlight.push(done);
                break;
              }
              case 'reconnect': {
                client.close();
                await client.closed;
                replica.consume();
                const missed = action.missed.filter((e) => e.stream < streamCount).map((e) => toInput(account, e));
                if (missed.length > 0) await gw.gateway.publish(missed);
                if (action.compactAway) await gw.gateway.compact();
                client = await TestClient.connect(gw.wsUrl);
                replica.attach(client);
                for (const stream of wanted) client.send({ type: 'subscribe', data: { stream, since: replica.since(stream) } });
                if (action.settle) {
                  await vi.waitFor(
                    () => {
                      replica.consume();
                      for (const stream of wanted) if (!replica.isLive(stream)) throw new Error(`no subscribed reply for ${stream} yet`);
                    },
                    { timeout: 10_000, interval: 5 },
                  );
                }
                break;
              }
              case 'subscribe': {
                const stream = names[action.stream % streamCount]!;
                if (wanted.has(stream)) break;
                wanted.add(stream);
                client.send({ type: 'subscribe', data: { stream } });
                break;
              }
              case 'compact':
                await gw.gateway.compact();
                break;
            }
          }
          await Promise.all(inFlight);
          // Wait until the client has seen every stream's head (or its subscribed reply at it).
          await vi.waitFor(
            () => {
              replica.consume();
              for (const stream of wanted) {
                const head = gw.gateway.store.get(stream)?.head ?? 0;
                const at = replica.streams.get(stream);
                if (!at || at.offset < head) throw new Error(`${stream}: client at ${at?.offset}, head ${head}`);
              }
            },
            { timeout: 10_000, interval: 5 },
          );
          expect(replica.problems).toEqual([]);
          for (const stream of wanted) {
            const entry = gw.gateway.store.get(stream);
            const mine = replica.streams.get(stream)!;
            if (!entry) {
              expect(mine.offset).toBe(0);
              continue;
            }
            expect({ stream, epoch: mine.epoch, offset: mine.offset }).toEqual({ stream, epoch: entry.epoch, offset: entry.head });
            expect(mine.state).toEqual(entry.state);
          }
          // The REST view of the account agrees with the replica.
          const rest = await stateSnapshot(gw.url, account);
          const orders = replica.streams.get(names[0]!)!.state as OrdersState;
          expect([...(rest.pending_orders as Array<Record<string, unknown>>)].sort(byKey('order_id'))).toEqual(
            Object.values(orders.orders).sort(byKey('order_id')),
          );
          const portfolio = replica.streams.get(names[1]!)?.state as PortfolioState | undefined;
          if (portfolio) {
            expect([...(rest.positions as Array<Record<string, unknown>>)].sort(byKey('symbol'))).toEqual(
              Object.values(portfolio.positions).sort(byKey('symbol')),
            );
          }
        } finally {
          await Promise.allSettled(inFlight);
          client.close();
          await client.closed;
        }
      }),
      { numRuns: 40, interruptAfterTimeLimit: 15_000 },
    );
  });

  it('puts no gap and no duplicate between the subscribed offset and the first live event under racing publishes', async () => {
    for (let i = 0; i < 50; i++) {
      const account = `race${i}`;
      const stream = `orders:${account}`;
      // Some history first, so half the subscribes can resume from a known position.
      await gw.gateway.publish(Array.from({ length: 3 }, () => order(account)));
      const entry = gw.gateway.store.get(stream)!;
      const known: { epoch: string; offset: number; state: StreamState } = { epoch: entry.epoch, offset: entry.head, state: entry.state };
      const replica = new Replica();
      await using client = await TestClient.connect(gw.wsUrl);
      replica.attach(client);
      const resume = i % 2 === 1;
      if (resume) replica.streams.set(stream, { ...known, jumps: false, verified: 0 });

      const publishes = Array.from({ length: 12 }, (_, k) => {
        const events = Array.from({ length: 1 + ((i + k) % 4) }, () => order(account));
        return k % 2 === 0 ? publish(gw.url, events).then((r) => expect(r.status).toBe(200)) : gw.gateway.publish(events);
      });
      // Subscribe while those are in flight, after a varying number of event-loop turns.
      for (let turn = 0; turn < i % 5; turn++) await new Promise((resolve) => setImmediate(resolve));
      const sub = await client.request('subscribe', resume ? { stream, since: { epoch: known.epoch, offset: known.offset } } : { stream });
      await Promise.all(publishes);
      const head = gw.gateway.store.get(stream)!.head;
      await vi.waitFor(
        () => {
          replica.consume();
          if ((replica.streams.get(stream)?.offset ?? 0) < head) throw new Error(`client not at head ${head} yet`);
        },
        { timeout: 10_000, interval: 5 },
      );
      expect(sub.type).toBe('subscribed');
      expect(replica.problems, `iteration ${i}`).toEqual([]);
      expect(replica.streams.get(stream)!.state).toEqual(gw.gateway.store.get(stream)!.state);
      // Every event after the reply arrived live, exactly once, in order.
      const live = client.events(stream).map((e) => e.offset);
      expect(live).toEqual(Array.from({ length: head - (sub.offset as number) }, (_, k) => (sub.offset as number) + 1 + k));
    }
  });
});
