/**
 * A stream's history vanishes under the gateway (new epoch): its subscribers get the
 * new state in place, or, when their send buffer cannot take that snapshot, a close
 * with 4009 STATE_INVALIDATED after which a resubscribe gives them the snapshot.
 * Real gateway, real sockets; the engine is the embedded one behind a wrapper that
 * can report "history lost" the way a flushed Redis does (a new epoch + onReset).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CloseCode, stateChecksum } from '@tradesync/protocol';
import type { Engine, StreamHead } from '../src/engines/engine.js';
import { createEngine } from '../src/engines/index.js';
import { order, publish, startGateway, TestClient, testConfig } from '@tradesync/testing';

/** The embedded engine, whose reported epoch the test can change (as if its history were lost). */
function resettableEngine(dataDir: string): { engine: Engine; loseHistory(stream: string): Promise<void> } {
  const inner = createEngine(testConfig({}, dataDir));
  let epoch: string | undefined;
  const listeners = new Set<(stream: string, head: StreamHead) => void>();
  const re = <T extends { readonly epoch: string }>(x: T): T => (epoch === undefined ? x : { ...x, epoch });
  const engine: Engine = {
    kind: inner.kind,
    open: () => inner.open(),
    close: () => inner.close(),
    append: async (events) => (await inner.append(events)).map(re),
    read: async (stream, after, limit) => {
      const result = await inner.read(stream, after, limit);
      return result.trimmed ? result : { trimmed: false, events: result.events.map(re) };
    },
    head: async (stream) => re(await inner.head(stream)),
    streams: () => inner.streams(),
    saveSnapshot: (snapshot) => inner.saveSnapshot(snapshot),
    loadSnapshot: async (stream) => {
      const snapshot = await inner.loadSnapshot(stream);
      return snapshot && re(snapshot);
    },
    trim: (stream, upTo) => inner.trim(stream, upTo),
    offsetBefore: (stream, time) => inner.offsetBefore(stream, time),
    onAppend: (listener) => inner.onAppend((events) => listener(events.map(re))),
    onReset: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    health: () => inner.health(),
  };
  return {
    engine,
    async loseHistory(stream) {
      epoch = `lost-${Math.random().toString(36).slice(2)}`;
      const head = await engine.head(stream);
      for (const listener of listeners) listener(stream, head);
    },
  };
}

async function resettableGateway(limits: { maxBufferedBytes?: number } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-reset-'));
  const { engine, loseHistory } = resettableEngine(dataDir);
  const gw = await startGateway({ limits }, { engine, dataDir });
  return { gw, loseHistory };
}

/** Twelve open orders: a snapshot of a few kilobytes. */
async function fillOrders(url: string): Promise<void> {
  const answer = await publish(url, Array.from({ length: 12 }, (_, i) => order('reset', { order_id: `o${i}`, symbol: `SYM${i}-USD` })));
  expect(answer.status).toBe(200);
}

describe('a stream whose history vanished', () => {
  it('gives each subscriber the new state in place: an unasked subscribed with the new epoch and a snapshot, then live events of that epoch', async () => {
    const { gw, loseHistory } = await resettableGateway();
    await using _gw = gw;
    await fillOrders(gw.url);
    await using client = await TestClient.connect(gw.wsUrl);
    const first = await client.request('subscribe', { stream: 'orders:reset' });
    expect(first).toMatchObject({ recovered: false, offset: 12 });

    await loseHistory('orders:reset');
    const inPlace = await client.next((m) => m.type === 'subscribed' && m.id === undefined);
    const entry = gw.gateway.store.get('orders:reset')!;
    expect(inPlace.epoch).not.toBe(first.epoch);
    expect(inPlace).toMatchObject({ stream: 'orders:reset', epoch: entry.epoch, offset: entry.head, recovered: false, sequence_number: first.sequence_number + 1 });
    expect(inPlace.snapshot).toEqual({ epoch: entry.epoch, offset: entry.head, state: entry.state });
    expect(inPlace.checksum).toBe(stateChecksum(entry.state));

    await publish(gw.url, [order('reset', { order_id: 'after' })]);
    const live = await client.next((m) => m.type === 'order:updated');
    expect(live).toMatchObject({ epoch: entry.epoch, offset: entry.head });
    expect(client.socket.readyState).toBe(client.socket.OPEN);
  });

  it('closes a subscriber whose send buffer cannot take the snapshot with 4009, and its resubscribe with the old position takes the snapshot', async () => {
    // The subscribe reply still goes out (a reply is never refused); what does not fit is a snapshot pushed unasked.
    const { gw, loseHistory } = await resettableGateway({ maxBufferedBytes: 1024 });
    await using _gw = gw;
    await fillOrders(gw.url);
    const client = await TestClient.connect(gw.wsUrl);
    const first = await client.request('subscribe', { stream: 'orders:reset' });
    expect(JSON.stringify(first.snapshot).length).toBeGreaterThan(1024);
    await using bystander = await TestClient.connect(gw.wsUrl);
    await bystander.request('subscribe', { stream: 'market:BTC-USD' });

    await loseHistory('orders:reset');
    expect(await client.closed).toMatchObject({ code: CloseCode.STATE_INVALIDATED });
    expect(client.messages.filter((m) => m.type === 'subscribed')).toHaveLength(1);

    await using again = await TestClient.connect(gw.wsUrl);
    const resumed = await again.request('subscribe', { stream: 'orders:reset', since: { epoch: first.epoch, offset: first.offset } });
    const entry = gw.gateway.store.get('orders:reset')!;
    expect(resumed).toMatchObject({ recovered: false, epoch: entry.epoch, offset: entry.head, snapshot: { epoch: entry.epoch, offset: entry.head, state: entry.state } });
    // Others are not touched.
    expect(bystander.socket.readyState).toBe(bystander.socket.OPEN);
    expect((await bystander.request('ping')).type).toBe('pong');
  });
});
