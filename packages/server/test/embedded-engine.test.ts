import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EventInput } from '@tradesync/protocol';
import { EmbeddedEngine } from '../src/engines/embedded.js';
import { EngineUnavailableError, type StoredEvent } from '../src/engines/engine.js';

const ORDERS = 'orders:acc1';
const MARKET = 'market:BTC-USD';

function ev(stream: string, i: number, type = 'order:updated'): EventInput {
  return { stream, type, data: { i } };
}

let dirs: string[] = [];
let engines: EmbeddedEngine[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradesync-'));
  dirs.push(dir);
  return dir;
}

async function openEngine(dataDir: string, options: { onListenerError?: (e: unknown) => void } = {}) {
  const engine = new EmbeddedEngine({ dataDir, ...options });
  engines.push(engine);
  await engine.open();
  return engine;
}

let dir: string;
let engine: EmbeddedEngine;

beforeEach(async () => {
  dir = tempDir();
  engine = await openEngine(dir);
});

afterEach(async () => {
  vi.useRealTimers();
  for (const e of engines) await e.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  engines = [];
  dirs = [];
});

describe('EmbeddedEngine append', () => {
  it('assigns dense offsets 1..n per stream across several appends', async () => {
    const a = await engine.append([ev(ORDERS, 1), ev(MARKET, 1, 'market:tick'), ev(ORDERS, 2)]);
    const b = await engine.append([ev(MARKET, 2, 'market:tick'), ev(ORDERS, 3)]);
    expect(a.map((e) => [e.stream, e.offset])).toEqual([
      [ORDERS, 1],
      [MARKET, 1],
      [ORDERS, 2],
    ]);
    expect(b.map((e) => [e.stream, e.offset])).toEqual([
      [MARKET, 2],
      [ORDERS, 3],
    ]);
    const read = await engine.read(ORDERS, 0, 100);
    expect(read.trimmed).toBe(false);
    if (!read.trimmed) expect(read.events.map((e) => [e.offset, e.data['i']])).toEqual([[1, 1], [2, 2], [3, 3]]);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 3, first: 1 });
    expect(await engine.head(MARKET)).toMatchObject({ offset: 2, first: 1 });
    expect((await engine.streams()).sort()).toEqual([MARKET, ORDERS].sort());
  });

  it('returns stored events in input order with epoch and a UTC ISO timestamp', async () => {
    const epoch = (await engine.head(ORDERS)).epoch;
    expect(epoch).toMatch(/^[0-9a-f]{16}$/);
    const stored = await engine.append([ev(ORDERS, 7)]);
    expect(stored).toEqual([
      { type: 'order:updated', stream: ORDERS, epoch, offset: 1, timestamp: expect.stringMatching(/Z$/), data: { i: 7 } },
    ]);
    expect(new Date(stored[0]!.timestamp).toISOString()).toBe(stored[0]!.timestamp);
  });

  it('resolves an empty append to [] without creating anything', async () => {
    expect(await engine.append([])).toEqual([]);
    expect(await engine.streams()).toEqual([]);
  });

  it('is atomic: a failing event rolls back the whole call', async () => {
    await engine.append([ev(ORDERS, 1)]);
    // A BigInt cannot be serialised to JSON: the third event throws mid-transaction.
    const bad: EventInput = { stream: ORDERS, type: 'order:updated', data: { n: 1n } };
    await expect(engine.append([ev(ORDERS, 2), ev(MARKET, 1, 'market:tick'), bad])).rejects.toThrow();
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 1 });
    expect(await engine.streams()).toEqual([ORDERS]);
    const next = await engine.append([ev(ORDERS, 3)]);
    expect(next[0]!.offset).toBe(2);
  });
});

describe('EmbeddedEngine listeners', () => {
  it('calls listeners after the commit with the stored events; a throwing one does not stop the others', async () => {
    const errors: unknown[] = [];
    const e = await openEngine(tempDir(), { onListenerError: (err) => errors.push(err) });
    const seen: StoredEvent[][] = [];
    const headsSeen: number[] = [];
    e.onAppend(() => {
      throw new Error('boom');
    });
    e.onAppend((events) => {
      seen.push([...events]);
    });
    // Reading from inside a listener proves the commit happened before it was called.
    e.onAppend(() => {
      void e.head(ORDERS).then((h) => headsSeen.push(h.offset));
    });
    const stored = await e.append([ev(ORDERS, 1), ev(ORDERS, 2)]);
    expect(seen).toEqual([stored]);
    expect(errors).toHaveLength(1);
    await Promise.resolve();
    expect(headsSeen).toEqual([2]);
  });

  it('stops calling an unsubscribed listener, and never calls onReset', async () => {
    const calls: number[] = [];
    const off = engine.onAppend((events) => calls.push(events.length));
    const reset = vi.fn();
    const offReset = engine.onReset(reset);
    await engine.append([ev(ORDERS, 1)]);
    off();
    await engine.append([ev(ORDERS, 2)]);
    expect(calls).toEqual([1]);
    expect(reset).not.toHaveBeenCalled();
    expect(typeof offReset).toBe('function');
    offReset();
  });

  it('a failed append notifies nobody', async () => {
    const listener = vi.fn();
    engine.onAppend(listener);
    await expect(engine.append([{ stream: ORDERS, type: 'x', data: { n: 1n } }])).rejects.toThrow();
    expect(listener).not.toHaveBeenCalled();
  });
});

describe('EmbeddedEngine read and trim', () => {
  beforeEach(async () => {
    await engine.append(Array.from({ length: 10 }, (_, k) => ev(ORDERS, k + 1)));
  });

  it('reads after an offset, honours limit, and returns [] at or past the head', async () => {
    const r = await engine.read(ORDERS, 3, 4);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([4, 5, 6, 7]);
    expect(await engine.read(ORDERS, 10, 5)).toEqual({ trimmed: false, events: [] });
    expect(await engine.read(ORDERS, 25, 5)).toEqual({ trimmed: false, events: [] });
  });

  it('reports an unknown stream as empty with the database epoch', async () => {
    const epoch = (await engine.head(ORDERS)).epoch;
    expect(await engine.head('orders:nobody')).toEqual({ epoch, offset: 0, first: 1 });
    expect(await engine.read('orders:nobody', 0, 10)).toEqual({ trimmed: false, events: [] });
  });

  it('trims, moves first, and reports reads before first as trimmed', async () => {
    expect(await engine.trim(ORDERS, 4)).toBe(4);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 10, first: 5 });
    expect(await engine.read(ORDERS, 3, 10)).toEqual({ trimmed: true });
    expect(await engine.read(ORDERS, 0, 10)).toEqual({ trimmed: true });
    const r = await engine.read(ORDERS, 4, 2);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([5, 6]);
    // Trimming below first again deletes nothing and does not move first back.
    expect(await engine.trim(ORDERS, 2)).toBe(0);
    expect(await engine.head(ORDERS)).toMatchObject({ first: 5 });
  });

  it('never moves first beyond head + 1, and offsets continue after a full trim', async () => {
    expect(await engine.trim(ORDERS, 50)).toBe(10);
    expect(await engine.head(ORDERS)).toMatchObject({ offset: 10, first: 11 });
    expect(await engine.read(ORDERS, 10, 5)).toEqual({ trimmed: false, events: [] });
    const [next] = await engine.append([ev(ORDERS, 11)]);
    expect(next!.offset).toBe(11);
    const r = await engine.read(ORDERS, 10, 5);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events.map((e) => e.offset)).toEqual([11]);
    expect(await engine.trim('orders:nobody', 5)).toBe(0);
  });
});

describe('EmbeddedEngine offsetBefore', () => {
  it('returns the highest offset appended strictly before a time, 0 if none', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2025-01-01T00:00:00.000Z'));
    await engine.append([ev(ORDERS, 1), ev(ORDERS, 2)]);
    vi.setSystemTime(new Date('2025-01-01T00:01:00.000Z'));
    await engine.append([ev(ORDERS, 3)]);
    vi.setSystemTime(new Date('2025-01-01T00:02:00.000Z'));
    await engine.append([ev(ORDERS, 4)]);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:00:00.000Z')).toBe(0);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:00:30.000Z')).toBe(2);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:01:00.000Z')).toBe(2);
    expect(await engine.offsetBefore(ORDERS, '2025-01-01T00:01:00.001Z')).toBe(3);
    expect(await engine.offsetBefore(ORDERS, '2030-01-01T00:00:00.000Z')).toBe(4);
    expect(await engine.offsetBefore('orders:nobody', '2030-01-01T00:00:00.000Z')).toBe(0);
  });
});

describe('EmbeddedEngine snapshots', () => {
  it('saves, loads and replaces a snapshot', async () => {
    expect(await engine.loadSnapshot(ORDERS)).toBeUndefined();
    const first = {
      stream: ORDERS,
      epoch: 'e1',
      offset: 5,
      schemaVersion: 1,
      state: { orders: { a: { qty: '1.5' } } },
      createdAt: '2025-01-01T00:00:00.000Z',
    };
    await engine.saveSnapshot(first);
    expect(await engine.loadSnapshot(ORDERS)).toEqual(first);
    const second = { ...first, offset: 9, schemaVersion: 2, state: { orders: {} }, createdAt: '2025-01-02T00:00:00.000Z' };
    await engine.saveSnapshot(second);
    expect(await engine.loadSnapshot(ORDERS)).toEqual(second);
    expect(await engine.loadSnapshot(MARKET)).toBeUndefined();
  });
});

describe('EmbeddedEngine persistence', () => {
  it('keeps the epoch, data and offsets across close and reopen; a new dataDir gets a new epoch', async () => {
    const nested = path.join(tempDir(), 'a', 'b');
    const e1 = await openEngine(nested);
    await e1.append([ev(ORDERS, 1), ev(ORDERS, 2), ev(MARKET, 1, 'market:tick')]);
    await e1.trim(ORDERS, 1);
    await e1.saveSnapshot({ stream: ORDERS, epoch: 'x', offset: 1, schemaVersion: 1, state: [1], createdAt: 'now' });
    const epoch = (await e1.head(ORDERS)).epoch;
    await e1.close();
    await e1.close(); // idempotent
    await expect(e1.head(ORDERS)).rejects.toBeInstanceOf(EngineUnavailableError);
    expect(await e1.health()).toMatchObject({ ok: false });

    const e2 = await openEngine(nested);
    expect(await e2.health()).toEqual({ ok: true });
    expect(await e2.head(ORDERS)).toEqual({ epoch, offset: 2, first: 2 });
    expect((await e2.head('orders:never')).epoch).toBe(epoch);
    const r = await e2.read(ORDERS, 1, 10);
    expect(r.trimmed).toBe(false);
    if (!r.trimmed) expect(r.events).toMatchObject([{ offset: 2, epoch, data: { i: 2 } }]);
    expect((await e2.loadSnapshot(ORDERS))?.state).toEqual([1]);
    const [next] = await e2.append([ev(ORDERS, 3)]);
    expect(next).toMatchObject({ offset: 3, epoch });

    const other = await openEngine(tempDir());
    expect((await other.head(ORDERS)).epoch).not.toBe(epoch);
  });

  it('keeps every acknowledged append when the process is killed with SIGKILL', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/append-forever.ts', import.meta.url));
    const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
    const crashDir = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, crashDir], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.on('close', (code, signal) => resolve(signal ?? code)),
    );
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      // Kill once enough events are acknowledged, wherever the child is in its loop.
      if (out.split('\n').length > 300) child.kill('SIGKILL');
    });
    const ended = await exited;
    expect(ended, err).toBe('SIGKILL');

    // Only complete lines are acknowledgements; a torn last line is not.
    const lines = out.split('\n').slice(0, -1);
    const epochLine = lines.shift();
    expect(epochLine).toMatch(/^epoch [0-9a-f]{16}$/);
    const epoch = epochLine!.slice('epoch '.length);
    const acked = new Map<string, number>();
    for (const line of lines) {
      const [stream, offset] = line.split(' ');
      const n = Number(offset);
      expect(n).toBe((acked.get(stream!) ?? 0) + 1);
      acked.set(stream!, n);
    }
    expect(acked.get(ORDERS)).toBeGreaterThan(100);

    const reopened = await openEngine(crashDir);
    for (const [stream, maxAcked] of acked) {
      const head = await reopened.head(stream);
      expect(head.epoch).toBe(epoch);
      expect(head.offset).toBeGreaterThanOrEqual(maxAcked);
      const r = await reopened.read(stream, 0, maxAcked);
      expect(r.trimmed).toBe(false);
      if (!r.trimmed) {
        expect(r.events.map((e) => e.offset)).toEqual(Array.from({ length: maxAcked }, (_, k) => k + 1));
        expect(r.events.every((e) => e.epoch === epoch)).toBe(true);
      }
    }
  });
});
