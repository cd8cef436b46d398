import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyEvents, initialState, parseStream } from '@tradesync/protocol';
import type { Engine } from '../src/engines/engine.js';
import { order, publish, startGateway, tick, type TestGateway } from '@tradesync/testing';
import { readAllEvents } from '@tradesync/testing/replica';

const ORDERS = 'orders:acc1';
const MARKET = 'market:ETH-USD';

let priceSeq = 0;
const nextTick = () => tick('ETH-USD', `${2000 + ++priceSeq}.25`);

/** Publishes `n` events alternating between the orders and market streams. */
async function publishMixed(gw: TestGateway, n: number): Promise<void> {
  const events = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? order('acc1') : nextTick()));
  const answer = await publish(gw.url, events);
  expect(answer.status).toBe(200);
}

/** The compaction invariant: a snapshot at or past every trim point, and the kept log right after it. */
async function expectSnapshotCoversTrim(engine: Engine, stream: string): Promise<{ first: number; snapshotOffset: number }> {
  const head = await engine.head(stream);
  const snapshot = await engine.loadSnapshot(stream);
  if (head.first > 1) {
    expect(snapshot, `${stream} was trimmed to ${head.first} without a snapshot`).toBeDefined();
    expect(snapshot!.offset).toBeGreaterThanOrEqual(head.first - 1);
    expect(snapshot!.epoch).toBe(head.epoch);
  }
  return { first: head.first, snapshotOffset: snapshot?.offset ?? 0 };
}

function statesOf(gw: TestGateway): Record<string, unknown> {
  return Object.fromEntries([...gw.gateway.store.entries()].map((e) => [e.name, { epoch: e.epoch, head: e.head, state: e.state }]));
}

describe('history compaction', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('trims each stream to the newest max events and keeps a snapshot at or past the trim point', async () => {
    const gw = await startGateway({ history: { maxEvents: 10, snapshotEvery: 1000, memoryWindow: 4 } }, { keepData: true });
    dirs.push(gw.dataDir);
    await publishMixed(gw, 50); // 25 per stream
    const reference = applyEvents(initialState('orders'), (await readAllEvents(gw.url, ORDERS)).events);
    await gw.gateway.compact();

    for (const stream of [ORDERS, MARKET]) {
      const { first, snapshotOffset } = await expectSnapshotCoversTrim(gw.gateway.engine, stream);
      expect(first).toBe(16);
      expect(snapshotOffset).toBe(25);
      const kept = await readAllEvents(gw.url, `${stream}`).catch((err: Error) => err);
      // Reading from the start is refused with 410: those events now live only in the snapshot.
      expect(kept).toBeInstanceOf(Error);
      expect((kept as Error).message).toContain('410');
      const res = await fetch(`${gw.url}/api/v1/streams/${stream}/events?after=15`);
      const body = (await res.json()) as { events: Array<{ offset: number }> };
      expect(body.events.map((e) => e.offset)).toEqual(Array.from({ length: 10 }, (_, k) => 16 + k));
    }
    expect(gw.gateway.store.get(ORDERS)!.state).toEqual(reference);

    const before = statesOf(gw);
    await gw.stop();
    await using again = await startGateway({ history: { maxEvents: 10, snapshotEvery: 1000, memoryWindow: 4 } }, { dataDir: gw.dataDir });
    expect(statesOf(again)).toEqual(before);
  });

  it('trims events older than max age, judged against the time compaction is given', async () => {
    const gw = await startGateway({ history: { maxAgeMs: 60_000, maxEvents: 100_000, snapshotEvery: 100_000 } }, { keepData: true });
    dirs.push(gw.dataDir);
    await publishMixed(gw, 20); // 10 per stream

    // Nothing is old yet.
    await gw.gateway.compact(Date.now());
    expect(await gw.gateway.engine.head(ORDERS)).toMatchObject({ offset: 10, first: 1 });

    // Two minutes later every event is older than a minute.
    await gw.gateway.compact(Date.now() + 120_000);
    for (const stream of [ORDERS, MARKET]) {
      const { first, snapshotOffset } = await expectSnapshotCoversTrim(gw.gateway.engine, stream);
      expect(first).toBe(11);
      expect(snapshotOffset).toBe(10);
    }
    // The stream goes on at the next offset after everything was trimmed.
    await publishMixed(gw, 2);
    const kept = await readAllEvents(gw.url, ORDERS).catch(() => undefined);
    expect(kept).toBeUndefined();
    const res = await fetch(`${gw.url}/api/v1/streams/${ORDERS}/events?after=10`);
    expect(((await res.json()) as { events: Array<{ offset: number }> }).events.map((e) => e.offset)).toEqual([11]);

    const before = statesOf(gw);
    await gw.stop();
    await using again = await startGateway({}, { dataDir: gw.dataDir });
    expect(statesOf(again)).toEqual(before);
  });

  it('writes a snapshot every snapshot-every events without trimming anything', async () => {
    await using gw = await startGateway({ history: { snapshotEvery: 5, maxEvents: 1000 } });
    await publishMixed(gw, 14); // 7 per stream
    await gw.gateway.compact();
    for (const stream of [ORDERS, MARKET]) {
      expect(await gw.gateway.engine.loadSnapshot(stream)).toMatchObject({ offset: 7 });
      expect(await gw.gateway.engine.head(stream)).toMatchObject({ offset: 7, first: 1 });
      expect(gw.gateway.store.get(stream)!.snapshotOffset).toBe(7);
    }
  });

  it('keeps the invariant and a rebuildable state while compactions race with publishes', async () => {
    const history = { maxEvents: 7, snapshotEvery: 3, memoryWindow: 3 };
    const gw = await startGateway({ history }, { keepData: true });
    dirs.push(gw.dataDir);
    const publishing = (async () => {
      for (let round = 0; round < 30; round++) {
        if (round % 2 === 0) await publishMixed(gw, 1 + (round % 5));
        else await gw.gateway.publish([order('acc1'), nextTick(), nextTick()]);
      }
    })();
    for (let pass = 0; pass < 15; pass++) {
      await gw.gateway.compact();
      for (const stream of [ORDERS, MARKET]) await expectSnapshotCoversTrim(gw.gateway.engine, stream);
    }
    await publishing;
    await gw.gateway.compact();

    // The files as they are while the gateway still runs (what a crash leaves: no shutdown
    // snapshot written, the log partly in the WAL) rebuild the same state. (A second gateway
    // on the same data directory is refused: see embedded-engine.test.ts.)
    const crashed = mkdtempSync(join(tmpdir(), 'tradesync-crashed-'));
    dirs.push(crashed);
    for (const file of readdirSync(gw.dataDir)) copyFileSync(join(gw.dataDir, file), join(crashed, file));
    {
      await using reader = await startGateway({ history }, { dataDir: crashed, keepData: true });
      expect(statesOf(reader)).toEqual(statesOf(gw));
    }
    const before = statesOf(gw);
    await gw.stop();
    await using again = await startGateway({ history }, { dataDir: gw.dataDir });
    expect(statesOf(again)).toEqual(before);
    for (const stream of [ORDERS, MARKET]) await expectSnapshotCoversTrim(again.gateway.engine, stream);
  });

  it('keeps the memory window bounded by twice its configured size, contiguous up to the head', async () => {
    const memoryWindow = 5;
    await using gw = await startGateway({ history: { memoryWindow } });
    for (const size of [1, 7, 3, 11, 2, 9, 1, 13, 6]) {
      await publishMixed(gw, size * 2);
      for (const stream of [ORDERS, MARKET]) {
        const entry = gw.gateway.store.get(stream)!;
        expect(entry.window.length).toBeLessThanOrEqual(2 * memoryWindow);
        expect(entry.window.length).toBeGreaterThan(0);
        expect(entry.window.map((e) => e.offset)).toEqual(
          Array.from({ length: entry.window.length }, (_, k) => entry.head - entry.window.length + 1 + k),
        );
        expect(parseStream(entry.name)).toBeDefined();
      }
    }
  });
});
