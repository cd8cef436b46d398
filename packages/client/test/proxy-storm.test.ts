import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { TradeSyncClient, type Logger } from '../src/index.js';
import { balance, order, position, publish, startGateway, tick } from '@tradesync/testing';

const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const STREAMS = ['orders:acme', 'portfolio:acme', 'market:BTC-USD'] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy between the client and the gateway that can misbehave: cut every
 * connection, stall (hold all bytes, both ways, until healed) and delay each chunk.
 * Bytes of one direction always keep their order, as TCP does.
 */
class FaultyProxy {
  #server: Server;
  #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #stalled: { promise: Promise<void>; release: () => void } | undefined;
  maxDelayMs = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<FaultyProxy> {
    const server = createServer();
    const proxy = new FaultyProxy(server);
    server.on('connection', (client) => proxy.#pipe(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  #pipe(client: Socket, targetPort: number): void {
    const upstream = createConnection({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      let chain = Promise.resolve();
      from.on('data', (chunk: Buffer) => {
        chain = chain.then(async () => {
          if (this.maxDelayMs > 0) await sleep(Math.floor(Math.random() * this.maxDelayMs));
          while (this.#stalled) await this.#stalled.promise;
          if (!to.destroyed) to.write(chunk);
        });
      });
      from.on('close', end);
      from.on('error', end);
    }
  }

  cut(): void {
    for (const { client, upstream } of [...this.#pairs]) {
      client.destroy();
      upstream.destroy();
    }
  }

  stall(): void {
    if (this.#stalled) return;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    this.#stalled = { promise, release };
  }

  heal(): void {
    this.maxDelayMs = 0;
    const stalled = this.#stalled;
    this.#stalled = undefined;
    stalled?.release();
  }

  async close(): Promise<void> {
    this.heal();
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

type Fault = { kind: 'cut' } | { kind: 'stall'; ms: number } | { kind: 'delay'; maxMs: number; ms: number } | { kind: 'calm'; ms: number };

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  fc.constant<Fault>({ kind: 'cut' }),
  fc.record({ kind: fc.constant('stall' as const), ms: fc.integer({ min: 100, max: 900 }) }),
  fc.record({ kind: fc.constant('delay' as const), maxMs: fc.integer({ min: 5, max: 80 }), ms: fc.integer({ min: 100, max: 600 }) }),
  fc.record({ kind: fc.constant('calm' as const), ms: fc.integer({ min: 20, max: 300 }) }),
);

describe('the client behind a faulty network', () => {
  /** Over all runs: how often the client lost its connection, and how streams came back. */
  const seen = { reconnects: 0, recovered: 0, snapshots: 0 };

  it('ends every stream equal to the server, each offset applied once, whatever the proxy cut, stalled or delayed', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(faultArb, { minLength: 3, maxLength: 8 }), async (faults) => {
        // A small memory window and history so some resumes must fall back to snapshots.
        await using gw = await startGateway({ heartbeat: { pingIntervalMs: 200 }, history: { memoryWindow: 30, maxEvents: 60, snapshotEvery: 20, maxRecoveryEvents: 60 } });
        const proxy = await FaultyProxy.start(gw.gateway.port);
        const client = new TradeSyncClient({
          url: `ws://127.0.0.1:${proxy.port}/ws`,
          WebSocket: WebSocket as never,
          logger: quiet,
          backoff: { delaysMs: [20, 50, 100], jitter: 0.2 },
          maxAttempts: 1000,
          connectTimeoutMs: 1000,
          requestTimeoutMs: 1000,
        });
        client.on('status', (now, before) => {
          if (now.state === 'reconnecting' && before.state === 'connected') seen.reconnects++;
        });
        client.on('synced', (info) => (info.recovered ? seen.recovered++ : seen.snapshots++));
        // Per stream: the offset each applied event must continue from; a snapshot moves it.
        const cursor = new Map<string, number>();
        const violations: string[] = [];
        const handles = STREAMS.map((stream) =>
          client.subscribe(stream, {
            onSynced: (info) => {
              if (info.snapshotOffset !== undefined) cursor.set(stream, info.snapshotOffset);
            },
            onEvent: (event) => {
              const at = cursor.get(stream) ?? 0;
              if (event.offset !== at + 1) violations.push(`${stream}: applied ${event.offset} after ${at}`);
              cursor.set(stream, event.offset);
            },
          }),
        );
        let producing = true;
        let n = 0;
        // Compaction now and then, so a resume may find its history trimmed.
        const compactNow = () => (n % 10 === 0 ? gw.gateway.compact() : Promise.resolve());
        const producer = (async () => {
          while (producing) {
            n++;
            await publish(gw.url, [
              order('acme', { order_id: `o${n % 5}`, quantity: `${n}` }),
              ...(n % 2 === 0 ? [position('acme', { quantity: `${n}` })] : [balance('acme', { total: `${n}.00` })]),
              tick('BTC-USD', `${100 + n}`),
            ]);
            await compactNow();
            await sleep(15);
          }
        })();
        try {
          for (const fault of faults) {
            if (fault.kind === 'cut') proxy.cut();
            if (fault.kind === 'stall') {
              proxy.stall();
              await sleep(fault.ms);
              proxy.heal();
            }
            if (fault.kind === 'delay') {
              proxy.maxDelayMs = fault.maxMs;
              await sleep(fault.ms);
              proxy.heal();
            }
            if (fault.kind === 'calm') await sleep(fault.ms);
          }
          proxy.heal();
          producing = false;
          await producer;
          await vi.waitFor(
            () => {
              for (const [i, stream] of STREAMS.entries()) {
                const entry = gw.gateway.store.get(stream)!;
                expect(handles[i]!.position).toEqual({ epoch: entry.epoch, offset: entry.head });
                expect(handles[i]!.state).toEqual(entry.state);
              }
            },
            { timeout: 10_000, interval: 50 },
          );
          expect(violations).toEqual([]);
        } finally {
          producing = false;
          await producer;
          client.disconnect();
          await proxy.close();
        }
      }),
      { numRuns: 6, endOnFailure: true },
    );
    // The storm did hit: connections were lost and streams resumed.
    expect(seen.reconnects).toBeGreaterThan(0);
    expect(seen.recovered).toBeGreaterThan(0);
  }, 120_000);
});
