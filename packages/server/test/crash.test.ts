import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyEvents, initialState } from '@tradesync/protocol';
import { EmbeddedEngine } from '../src/engines/embedded.js';
import { order, TestClient, tick } from '@tradesync/testing';
import { readAllEvents, type WireEvent } from '@tradesync/testing/replica';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const STREAMS = ['orders:crash', 'market:BTC-USD', 'market:ETH-USD'] as const;

interface Server {
  readonly child: ChildProcessWithoutNullStreams;
  readonly url: string;
  readonly wsUrl: string;
  readonly exited: Promise<NodeJS.Signals | number | null>;
  readonly stderr: () => string;
}

const children = new Set<ChildProcessWithoutNullStreams>();
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('close', resolve));
      child.kill('SIGKILL');
      await gone;
    }
  }
  children.clear();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs `tradesync serve` on a free port as a child process; resolves once it printed its URL. */
async function serve(dataDir: string, env: Record<string, string> = {}): Promise<Server> {
  const child = spawn(process.execPath, [...TRADESYNC_CLI, 'serve', '--port', '0', '--data-dir', dataDir, '--no-simulator', '--log-level', 'warn'], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TRADESYNC_'))), ...env },
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('close', (code, signal) => resolve(signal ?? code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 20 s; stdout: ${out}; stderr: ${err}`)), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /TradeSync gateway on (http:\/\/[^\s]+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${String(how)}) before listening; stderr: ${err}`));
    });
  });
  return { child, url, wsUrl: `${url.replace(/^http/, 'ws')}/ws`, exited, stderr: () => err };
}

/** One event with a payload unique to (stream, sequence), so a read-back can be matched to what was sent. */
function eventFor(stream: string, seq: number): { stream: string; type: string; data: Record<string, unknown> } {
  if (stream.startsWith('orders:')) return order('crash', { order_id: `crash-${seq}` });
  const symbol = stream.slice('market:'.length);
  return tick(symbol, `${1000 + seq}.5`);
}
const keyOf = (e: { data: Record<string, unknown> }): string => String(e.data.order_id ?? e.data.price);

interface Acked {
  readonly epoch: Map<string, string>;
  /** stream -> offset -> the unique key of what was sent there. */
  readonly byOffset: Map<string, Map<number, string>>;
  count: number;
}

/**
 * Several producers publishing batches over HTTP until `stop()` or the server dies;
 * every acknowledged offset is recorded. Never throws: a failed request ends its loop.
 */
function publishLoop(url: string, producers: number): { acked: Acked; stop: () => Promise<void> } {
  const acked: Acked = { epoch: new Map(), byOffset: new Map(STREAMS.map((s) => [s, new Map()])), count: 0 };
  let running = true;
  let seq = 0;
  const loop = async (p: number) => {
    for (let round = 0; running && round < 10_000; round++) {
      const batch = Array.from({ length: 1 + ((round + p) % 4) }, (_, k) => eventFor(STREAMS[(round + k + p) % STREAMS.length]!, ++seq));
      let body: { offsets: Array<{ stream: string; epoch: string; offset: number }> };
      try {
        const res = await fetch(`${url}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
        if (res.status !== 200) return;
        body = (await res.json()) as typeof body;
      } catch {
        return; // the server is gone: whatever was not answered was not acknowledged
      }
      body.offsets.forEach((o, i) => {
        acked.epoch.set(o.stream, o.epoch);
        acked.byOffset.get(o.stream)!.set(o.offset, keyOf(batch[i]!));
        acked.count++;
      });
    }
  };
  const loops = Promise.all(Array.from({ length: producers }, (_, p) => loop(p)));
  return {
    acked,
    stop: async () => {
      running = false;
      await loops;
    },
  };
}

/** Waits (polling, never asserting on time) until `condition` holds. */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  await vi.waitFor(
    () => {
      if (!condition()) throw new Error(`still waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: 10 },
  );
}

/** Checks that every acknowledged event is stored at its offset, in its epoch, in a gap-free log. */
async function expectAllAcknowledged(url: string, acked: Acked): Promise<Map<string, WireEvent[]>> {
  const logs = new Map<string, WireEvent[]>();
  for (const stream of STREAMS) {
    const sent = acked.byOffset.get(stream)!;
    const log = await readAllEvents(url, stream);
    logs.set(stream, log.events);
    expect(log.epoch).toBe(acked.epoch.get(stream));
    expect(log.events.map((e) => e.offset)).toEqual(Array.from({ length: log.head }, (_, k) => k + 1));
    expect(log.head).toBeGreaterThanOrEqual(Math.max(0, ...sent.keys()));
    for (const [offset, key] of sent) expect(keyOf(log.events[offset - 1]!), `${stream} offset ${offset}`).toBe(key);
  }
  return logs;
}

/** Resumes each stream from its last acknowledged offset over WebSocket; every one must recover. */
async function expectResumeRecovers(wsUrl: string, acked: Acked, logs: Map<string, WireEvent[]>): Promise<void> {
  await using client = await TestClient.connect(wsUrl);
  for (const stream of STREAMS) {
    const lastAcked = Math.max(0, ...acked.byOffset.get(stream)!.keys());
    const epoch = acked.epoch.get(stream)!;
    const log = logs.get(stream)!;
    const sub = await client.request('subscribe', { stream, since: { epoch, offset: lastAcked } });
    expect(sub).toMatchObject({ type: 'subscribed', recovered: true, epoch, offset: log.length });
    // Anything committed after the last acknowledgement (the answer lost in the crash) is replayed too.
    expect((sub.events as WireEvent[]).map((e) => e.offset)).toEqual(log.slice(lastAcked).map((e) => e.offset));
  }
}

describe('the gateway process', () => {
  it('keeps every acknowledged event, offset and epoch when killed with SIGKILL mid-publish', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-crash-'));
    dirs.push(dataDir);
    const first = await serve(dataDir);
    const producers = publishLoop(first.url, 4);
    await waitUntil(() => producers.acked.count >= 400, '400 acknowledged events');
    // The producers are still publishing when the process dies.
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    await producers.stop();
    const { acked } = producers;
    for (const stream of STREAMS) expect(acked.byOffset.get(stream)!.size).toBeGreaterThan(50);

    const second = await serve(dataDir);
    const logs = await expectAllAcknowledged(second.url, acked);
    await expectResumeRecovers(second.wsUrl, acked, logs);

    // It goes on publishing at the next offset of the same epoch.
    const answer = await fetch(`${second.url}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([eventFor(STREAMS[0], 1_000_000)]),
    });
    expect(await answer.json()).toMatchObject({ offsets: [{ stream: STREAMS[0], epoch: acked.epoch.get(STREAMS[0]), offset: logs.get(STREAMS[0])!.length + 1 }] });
    second.child.kill('SIGKILL');
    await second.exited;
  });

  it('rebuilds the same state from snapshot plus log after a SIGKILL while compaction writes snapshots', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-snap-'));
    dirs.push(dataDir);
    // Snapshots every few events, taken every 20 ms: the kill lands among them.
    const env = { TRADESYNC_HISTORY__SNAPSHOT_EVERY: '7', TRADESYNC_HISTORY__COMPACT_INTERVAL: '0.02', TRADESYNC_HISTORY__MEMORY_WINDOW: '5' };
    const first = await serve(dataDir, env);
    const producers = publishLoop(first.url, 3);
    await waitUntil(() => producers.acked.count >= 300, '300 acknowledged events');
    first.child.kill('SIGKILL');
    await first.exited;
    await producers.stop();

    const engine = new EmbeddedEngine({ dataDir });
    await engine.open();
    const snapshot = await engine.loadSnapshot(STREAMS[0]).finally(() => engine.close());
    expect(snapshot?.offset ?? 0).toBeGreaterThan(0);

    const second = await serve(dataDir, env);
    const logs = await expectAllAcknowledged(second.url, producers.acked);
    const res = await fetch(`${second.url}/api/state/snapshot?account=crash`);
    const rest = (await res.json()) as { pending_orders: Array<{ order_id: string }>; streams: Record<string, { offset: number }> };
    const reduced = applyEvents(initialState('orders'), logs.get(STREAMS[0])!);
    expect(rest.streams[STREAMS[0]]).toMatchObject({ offset: logs.get(STREAMS[0])!.length });
    expect(rest.pending_orders.map((o) => o.order_id).sort()).toEqual(Object.keys(reduced.orders).sort());
    expect(rest.pending_orders.length).toBeGreaterThan(50);
    await expectResumeRecovers(second.wsUrl, producers.acked, logs);
  });

  it('stops cleanly on SIGTERM and starts again on the same data with nothing lost', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-term-'));
    dirs.push(dataDir);
    const first = await serve(dataDir);
    const producers = publishLoop(first.url, 2);
    await waitUntil(() => producers.acked.count >= 100, '100 acknowledged events');
    await producers.stop();
    first.child.kill('SIGTERM');
    expect(await first.exited, first.stderr()).toBe(0);

    const second = await serve(dataDir);
    const logs = await expectAllAcknowledged(second.url, producers.acked);
    // Nothing was in flight at the stop, so the log ends exactly at the last acknowledgement.
    for (const stream of STREAMS) expect(logs.get(stream)!.length).toBe(producers.acked.byOffset.get(stream)!.size);
    await expectResumeRecovers(second.wsUrl, producers.acked, logs);
    second.child.kill('SIGTERM');
    expect(await second.exited, second.stderr()).toBe(0);
  });
});
