import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedEngine } from '../src/engines/embedded.js';
import { describeEngineConformance, ev, MARKET, ORDERS, type EngineOpenOptions } from './support/engine-conformance.js';

/*
 * The shared engine behaviours (support/engine-conformance.ts) against the SQLite
 * engine, plus what only it has: one epoch for the whole database, kept on disk across
 * reopen and a killed process, and a new one for a new data dir.
 */

let dirs: string[] = [];
let engines: EmbeddedEngine[] = [];
const dataDirOf = new Map<EmbeddedEngine, string>();

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tradesync-'));
  dirs.push(dir);
  return dir;
}

async function openEngine(dataDir: string, options: EngineOpenOptions = {}) {
  const engine = new EmbeddedEngine({ dataDir, ...options });
  engines.push(engine);
  dataDirOf.set(engine, dataDir);
  await engine.open();
  return engine;
}

afterEach(async () => {
  for (const e of engines) await e.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  engines = [];
  dataDirOf.clear();
  dirs = [];
});

describeEngineConformance('EmbeddedEngine', {
  open: (options) => openEngine(tempDir(), options),
  async reopen(engine) {
    const dataDir = dataDirOf.get(engine as EmbeddedEngine)!;
    await engine.close();
    return openEngine(dataDir);
  },
});

describe('EmbeddedEngine group commit', () => {
  it('commits the appends of one turn together, each call atomic and in call order, heard once by listeners', async () => {
    const engine = await openEngine(tempDir());
    const heard: number[][] = [];
    engine.onAppend((events) => heard.push(events.map((e) => e.offset)));
    const calls = [ev(ORDERS, 1), ev(MARKET, 1), ev(ORDERS, 2)].map((e) => engine.append([e, { ...e, data: { again: true } }]));
    const stored = await Promise.all(calls);
    expect(stored.map((s) => s.map((e) => `${e.stream}@${e.offset}`))).toEqual([
      [`${ORDERS}@1`, `${ORDERS}@2`],
      [`${MARKET}@1`, `${MARKET}@2`],
      [`${ORDERS}@3`, `${ORDERS}@4`],
    ]);
    // One transaction: one commit time for all, and one notification.
    expect(new Set(stored.flat().map((e) => e.timestamp)).size).toBe(1);
    expect(heard).toEqual([[1, 2, 1, 2, 3, 4]]);
  });

  it('fails only the call that cannot be stored when a group goes wrong, and stores the others', async () => {
    const engine = await openEngine(tempDir());
    const good = engine.append([ev(ORDERS, 1)]);
    // A value JSON cannot hold: this call's events cannot be written.
    const bad = engine.append([{ stream: ORDERS, type: 'order:updated', data: { n: 1n } }]);
    const later = engine.append([ev(ORDERS, 2)]);
    await expect(bad).rejects.toThrow();
    expect((await good).map((e) => e.offset)).toEqual([1]);
    expect((await later).map((e) => e.offset)).toEqual([2]);
    expect((await engine.head(ORDERS)).offset).toBe(2);
  });

  it('leaves a stream head where it was when the append moving it rolls back', async () => {
    const engine = await openEngine(tempDir());
    await engine.append([ev(ORDERS, 1)]);
    // The first event is written, the second cannot be: the whole call rolls back.
    const failed = engine.append([ev(ORDERS, 2), { stream: ORDERS, type: 'order:updated', data: { n: 1n } }]);
    await expect(failed).rejects.toThrow();
    expect((await engine.head(ORDERS)).offset).toBe(1);
    expect((await engine.append([ev(ORDERS, 3)])).map((e) => e.offset)).toEqual([2]);
    expect(await engine.read(ORDERS, 0, 10)).toMatchObject({ trimmed: false, events: [{ offset: 1, data: ev(ORDERS, 1).data }, { offset: 2, data: ev(ORDERS, 3).data }] });
  });

  it('commits what was accepted before close', async () => {
    const dir = tempDir();
    const engine = await openEngine(dir);
    const appended = engine.append([ev(ORDERS, 1)]);
    await engine.close();
    expect((await appended).map((e) => e.offset)).toEqual([1]);
    const reopened = await openEngine(dir);
    expect((await reopened.head(ORDERS)).offset).toBe(1);
  });
});

describe('EmbeddedEngine epoch', () => {
  it('gives every stream, even one never appended to, the one epoch of the database', async () => {
    const engine = await openEngine(tempDir());
    await engine.append([ev(ORDERS, 1), ev(MARKET, 1, 'market:tick')]);
    const epoch = (await engine.head(ORDERS)).epoch;
    expect(await engine.head(MARKET)).toMatchObject({ epoch });
    expect(await engine.head('orders:nobody')).toEqual({ epoch, offset: 0, first: 1 });
  });
});

describe('EmbeddedEngine persistence', () => {
  it('creates a missing nested data dir, keeps its epoch and any snapshot across reopen, and a new data dir gets a new epoch', async () => {
    const nested = path.join(tempDir(), 'a', 'b');
    const e1 = await openEngine(nested);
    await e1.append([ev(ORDERS, 1), ev(ORDERS, 2), ev(MARKET, 1, 'market:tick')]);
    // The embedded engine stores a snapshot whatever its epoch says.
    await e1.saveSnapshot({ stream: ORDERS, epoch: 'x', offset: 1, schemaVersion: 1, state: [1], createdAt: 'now' });
    const epoch = (await e1.head(ORDERS)).epoch;
    await e1.close();
    expect(fs.existsSync(nested)).toBe(true);

    const e2 = await openEngine(nested);
    expect(await e2.head(ORDERS)).toEqual({ epoch, offset: 2, first: 1 });
    expect((await e2.head('orders:never')).epoch).toBe(epoch);
    expect(await e2.loadSnapshot(ORDERS)).toMatchObject({ epoch: 'x', state: [1] });

    const other = await openEngine(tempDir());
    expect((await other.head(ORDERS)).epoch).not.toBe(epoch);
  });

  it('refuses a second engine on the same data directory while the first holds it, and opens once it is closed', async () => {
    const dir = tempDir();
    const first = await openEngine(dir);
    await first.append([ev(ORDERS, 1)]);
    const second = new EmbeddedEngine({ dataDir: dir });
    await expect(second.open()).rejects.toThrow(/in use by another process \(one gateway per data directory\)/);
    await first.close();
    const third = await openEngine(dir);
    expect(await third.head(ORDERS)).toMatchObject({ offset: 1 });
  });

  it('copies the WAL into the database file in the background, with no commit crossing its own checkpoint threshold', async () => {
    const dir = tempDir();
    const engine = new EmbeddedEngine({ dataDir: dir, durability: 'normal' });
    engines.push(engine);
    await engine.open();
    const dbFile = path.join(dir, 'tradesync.db');
    const before = fs.statSync(dbFile).size;
    // ~300 KB over 100 streams: far below the 10,000 WAL pages after which a commit checkpoints.
    for (let i = 0; i < 10; i++) {
      await engine.append(Array.from({ length: 30 }, (_, j) => ({ stream: `orders:acct-${(i * 30 + j) % 100}`, type: 'order:updated', data: { pad: 'x'.repeat(1000) } })));
    }
    const deadline = Date.now() + 5000;
    while (fs.statSync(dbFile).size < before + 300_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(fs.statSync(dbFile).size).toBeGreaterThan(before + 300_000);
    expect(fs.statSync(`${dbFile}-wal`).size).toBeGreaterThan(0);
    // Still one log: what the checkpointer copied reads back whole.
    const read = await engine.read('orders:acct-7', 0, 100);
    expect(read).toMatchObject({ trimmed: false });
    expect(read.trimmed ? [] : read.events.map((e) => e.offset)).toEqual([1, 2, 3]);
  });

  it('keeps the head of a stream trimmed of every event across reopen, and goes on from it', async () => {
    const dir = tempDir();
    const e1 = await openEngine(dir);
    await e1.append([ev(ORDERS, 1), ev(ORDERS, 2), ev(ORDERS, 3)]);
    expect(await e1.trim(ORDERS, 3)).toBe(3);
    await e1.close();
    const e2 = await openEngine(dir);
    expect(await e2.head(ORDERS)).toMatchObject({ offset: 3, first: 4 });
    const [next] = await e2.append([ev(ORDERS, 4)]);
    expect(next).toMatchObject({ offset: 4 });
  });

  it('keeps every acknowledged append when the process is killed with SIGKILL', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/append-forever.ts', import.meta.url));
    const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
    const crashDir = tempDir();
    const child = spawn(process.execPath, ['--conditions=@tradesync/source', '--import', 'tsx', fixture, crashDir], {
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
