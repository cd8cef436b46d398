import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { order, publish, startGateway, tick } from '@tradesync/testing';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const children: ChildProcess[] = [];

/** Runs `tradesync tail …` and collects its stdout lines. */
function runTail(args: string[]) {
  const child = spawn(process.execPath, [...TRADESYNC_CLI, 'tail', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { lines: [] as string[], stderr: '' };
  let partial = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    out.lines.push(...parts);
  });
  child.stderr.on('data', (chunk: Buffer) => (out.stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('tradesync tail', () => {
  it('prints each event with its stream, offset and type, says Live, and reports a recovery after a restart', async () => {
    const first = await startGateway({}, { keepData: true });
    const port = first.gateway.port;
    await publish(first.url, [order('acme', { order_id: 'ord-1' })]);
    const { out } = runTail(['orders:acme', 'market:BTC-USD', '--url', first.wsUrl]);
    await vi.waitFor(() => expect(out.lines.some((l) => l.includes('-- Live'))).toBe(true), { timeout: 15_000 });
    await vi.waitFor(() => expect(out.lines.filter((l) => l.includes('resynced from a snapshot'))).toHaveLength(2));
    await publish(first.url, [order('acme', { order_id: 'ord-2' }), tick('BTC-USD', '43000.5')]);
    await vi.waitFor(() => {
      expect(out.lines.some((l) => /orders:acme {2}#2 {2}order:updated {2}order_id=ord-2/.test(l))).toBe(true);
      expect(out.lines.some((l) => /market:BTC-USD {2}#1 {2}market:tick {2}.*price=43000\.5/.test(l))).toBe(true);
    });

    await first.stop();
    await vi.waitFor(() => expect(out.lines.some((l) => /Reconnecting \(attempt 1\/10\) — retrying in \ds/.test(l))).toBe(true));
    await using second = await startGateway({ port }, { dataDir: first.dataDir });
    await publish(second.url, [order('acme', { order_id: 'ord-3' })]);
    await vi.waitFor(() => expect(out.lines.some((l) => /orders:acme recovered: 1 missed event replayed/.test(l))).toBe(true), { timeout: 10_000 });
    expect(out.lines.some((l) => /orders:acme {2}#3 {2}order:updated {2}order_id=ord-3/.test(l))).toBe(true);
  });

  it('prints JSON lines with --json', async () => {
    await using gw = await startGateway();
    const { out } = runTail(['market:ETH-USD', '--url', gw.wsUrl, '--json']);
    await vi.waitFor(() => expect(out.lines.some((l) => l.includes('"kind":"synced"'))).toBe(true), { timeout: 15_000 });
    await publish(gw.url, [tick('ETH-USD', '2500')]);
    await vi.waitFor(() => {
      const events = out.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.kind === 'event');
      expect(events).toEqual([expect.objectContaining({ stream: 'market:ETH-USD', offset: 1, type: 'market:tick', data: expect.objectContaining({ price: '2500' }) })]);
    });
  });

  it('refuses to start without a stream, and with an invalid one', async () => {
    expect(await runTail([]).exited).toBe(2);
    const bad = runTail(['nonsense']);
    expect(await bad.exited).toBe(2);
    expect(bad.out.stderr).toContain('invalid stream name');
  });
});
