import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { CloseCode } from '@tradesync/protocol';
import { TradeSyncClient, type StreamHandle } from '../../client/src/index.js';
import { order, publish, startGateway, tick, type TestGateway } from '@tradesync/testing';
import { readAllEvents } from '@tradesync/testing/replica';
import { startRedis, type TestRedis } from '@tradesync/testing/redis';

/*
 * Whatever happens to the nodes of a cluster (stopped, started again, a client's
 * connection dropped so it moves to the next node) while producers publish through
 * whichever node is up, every client replica ends equal to the state on every node.
 */

const STREAMS = ['orders:acc7', 'market:SOL-USD'] as const;
const NODES = 3;

type Action =
  | { readonly do: 'publish'; readonly node: number; readonly stream: number; readonly count: number }
  | { readonly do: 'stop'; readonly node: number }
  | { readonly do: 'start'; readonly node: number }
  | { readonly do: 'move'; readonly client: number }
  | { readonly do: 'pause'; readonly ms: number };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ do: fc.constant('publish' as const), node: fc.nat(NODES - 1), stream: fc.nat(STREAMS.length - 1), count: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('stop' as const), node: fc.nat(NODES - 1) }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('start' as const), node: fc.nat(NODES - 1) }) },
  { weight: 2, arbitrary: fc.record({ do: fc.constant('move' as const), client: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ do: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 80 }) }) },
);

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.[Symbol.asyncDispose]();
});

let seq = 0;
const eventFor = (stream: number) => {
  seq++;
  return stream === 0 ? order('acc7', { order_id: `o${seq % 6}`, quantity: String(seq), status: seq % 5 === 0 ? 'filled' : 'open' }) : tick('SOL-USD', String(100 + seq));
};

describe('a Redis cluster under node failures', () => {
  it('every client replica ends equal to the state on every node', { timeout: 180_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 3, maxLength: 12 }), async (actions) => {
        await redis.command('FLUSHALL');
        const nodes: Array<TestGateway | undefined> = [];
        const ports: number[] = [];
        for (let i = 0; i < NODES; i++) {
          const g = await startGateway({ engine: 'redis', redisUrl: redis.url });
          nodes.push(g);
          ports.push(g.gateway.port);
        }
        const wsUrl = (i: number) => `ws://127.0.0.1:${ports[i]}/ws`;
        const clients = [0, 1].map(
          (c) =>
            new TradeSyncClient({
              url: [0, 1, 2].map((k) => wsUrl((k + c) % NODES)),
              WebSocket: WebSocket as never,
              backoff: { delaysMs: [20, 40], jitter: 0 },
              maxAttempts: 10_000,
            }),
        );
        const handles: StreamHandle[][] = clients.map((c) => STREAMS.map((s) => c.subscribe(s)));
        try {
          await vi.waitFor(() => expect(handles.flat().every((h) => h.synced)).toBe(true), { timeout: 10_000 });
          const up = () => nodes.flatMap((g, i) => (g ? [i] : []));
          for (const action of actions) {
            switch (action.do) {
              case 'publish': {
                // Through the chosen node, or the next one that is up.
                const i = up().find((k) => k >= action.node) ?? up()[0]!;
                const res = await publish(nodes[i]!.url, Array.from({ length: action.count }, () => eventFor(action.stream)));
                expect(res.status).toBe(200);
                break;
              }
              case 'stop':
                // At least one node stays up: clients always have somewhere to go.
                if (nodes[action.node] && up().length > 1) {
                  await nodes[action.node]!.stop();
                  await nodes[action.node]![Symbol.asyncDispose]();
                  nodes[action.node] = undefined;
                }
                break;
              case 'start':
                if (!nodes[action.node]) nodes[action.node] = await startGateway({ engine: 'redis', redisUrl: redis.url, port: ports[action.node]! });
                break;
              case 'move': {
                // Drop the client's connection on the server side: it reconnects to its next URL.
                const id = clients[action.client]!.status.connectionId;
                for (const g of nodes) for (const conn of g?.gateway.connections ?? []) if (conn.id === id) conn.close(CloseCode.GOING_AWAY, 'moved by the test');
                break;
              }
              case 'pause':
                await new Promise((r) => setTimeout(r, action.ms));
                break;
            }
          }
          // Everyone back: the cluster and the clients must converge.
          for (let i = 0; i < NODES; i++) nodes[i] ??= await startGateway({ engine: 'redis', redisUrl: redis.url, port: ports[i]! });
          const live = nodes as TestGateway[];
          for (const [s, stream] of STREAMS.entries()) {
            const { epoch, head } = await readAllEvents(live[0]!.url, stream);
            for (const g of live) {
              // A node nobody asked about a stream without events may not hold an entry for it.
              if (head > 0) await vi.waitFor(() => expect(g.gateway.store.get(stream)).toMatchObject({ epoch, head }), { timeout: 10_000 });
              expect(g.gateway.store.stateOf(stream)).toEqual(live[0]!.gateway.store.stateOf(stream));
            }
            for (const h of handles) {
              const handle = h[s]!;
              await vi.waitFor(() => expect(handle.position?.offset ?? 0).toBe(head), { timeout: 10_000 });
              expect(handle.state).toEqual(live[0]!.gateway.store.stateOf(stream));
            }
          }
        } finally {
          for (const c of clients) c.disconnect();
          for (const g of nodes) await g?.[Symbol.asyncDispose]();
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });
});
