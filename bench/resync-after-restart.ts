/**
 * How long a client is stale after the gateway restarts.
 *
 *   node --conditions=@tradesync/source --import tsx bench/resync-after-restart.ts [--rounds 20]
 *
 * Starts `tradesync serve` as a child process (fixed free port, one data dir, embedded
 * engine, simulator off), connects a client to three streams while a producer
 * publishes to them every 20 ms, then per round kills the server — SIGTERM on odd
 * rounds (graceful: snapshots, close 1001), SIGKILL on even rounds (crash: no
 * goodbye) — restarts it and measures, until the client reported `synced` for every
 * stream:
 *   - from the kill (what a user sees: stale time),
 *   - from the new server process's spawn (start-up included), and
 *   - from the moment the new server listens (the client's own share: backoff + resync).
 * Run twice: with the SDK's default backoff (1 s first retry, ±20%: the honest
 * number) and with a flat 100 ms backoff (the floor: start-up plus resync).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { TradeSyncClient, type BackoffOptions, type Logger } from '@tradesync/client';
import { BENCH_GATEWAY_ENV } from './peers/common.js';
import { TRADESYNC_CLI } from '@tradesync/testing/serve';

const STREAMS = ['orders:demo', 'portfolio:demo', 'market:BTC-USD'];
const quiet: Logger = { debug: () => {}, warn: () => {}, error: () => {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Round {
  readonly signal: 'SIGTERM' | 'SIGKILL';
  readonly fromKillMs: number;
  readonly fromSpawnMs: number;
  readonly fromListenMs: number;
  readonly recovered: number;
  readonly snapshots: number;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function startServer(port: number, dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...TRADESYNC_CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--no-simulator', '--log-level', 'error'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...BENCH_GATEWAY_ENV },
  });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('TradeSync gateway on')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`server exited early (${code})`)));
  });
}

async function stopServer(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const fmt = (ms: number) => `${ms.toFixed(0).padStart(6)} ms`;

async function run(label: string, backoff: BackoffOptions | undefined, rounds: number, maxAttempts?: number): Promise<Round[]> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'tradesync-bench-'));
  let server = await startServer(port, dataDir);
  const base = `http://127.0.0.1:${port}`;
  let producing = true;
  let n = 0;
  const producer = (async () => {
    while (producing) {
      n++;
      const events = [
        { stream: 'orders:demo', type: 'order:updated', data: { order_id: `o${n % 5}`, symbol: 'BTC-USD', side: 'buy', order_type: 'limit', quantity: `${n}`, price: '100.00', filled_quantity: '0', status: 'open', session_id: null, created_at: new Date().toISOString() } },
        { stream: 'portfolio:demo', type: 'balance:updated', data: { currency: 'USD', total: `${n}.00`, available: `${n}.00`, reserved: '0.00' } },
        { stream: 'market:BTC-USD', type: 'market:tick', data: { symbol: 'BTC-USD', price: `${100 + n}`, timestamp: new Date().toISOString() } },
      ];
      await fetch(`${base}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) }).catch(() => undefined);
      await sleep(20);
    }
  })();

  const client = new TradeSyncClient({ url: `ws://127.0.0.1:${port}/ws`, WebSocket: WebSocket as never, logger: quiet, fetch: null, ...(backoff ? { backoff } : {}), ...(maxAttempts ? { maxAttempts } : {}) });
  // Synced streams since the last kill, and how each came back.
  let pending = new Set<string>();
  let waiter: (() => void) | undefined;
  let recovered = 0;
  let snapshots = 0;
  client.on('synced', (info) => {
    if (!pending.delete(info.stream)) return;
    if (info.recovered) recovered++;
    else snapshots++;
    if (pending.size === 0) waiter?.();
  });
  const allSynced = () => new Promise<void>((resolve) => (waiter = resolve));
  pending = new Set(STREAMS);
  const first = allSynced();
  for (const stream of STREAMS) client.subscribe(stream);
  await first;

  const results: Round[] = [];
  for (let i = 1; i <= rounds; i++) {
    const signal = i % 2 === 1 ? 'SIGTERM' : 'SIGKILL';
    await sleep(200); // let live events flow
    recovered = snapshots = 0;
    pending = new Set(STREAMS);
    const synced = allSynced();
    const killedAt = performance.now();
    await stopServer(server, signal);
    const spawnedAt = performance.now();
    server = await startServer(port, dataDir);
    const listeningAt = performance.now();
    await synced;
    const done = performance.now();
    results.push({ signal, fromKillMs: done - killedAt, fromSpawnMs: done - spawnedAt, fromListenMs: done - listeningAt, recovered, snapshots });
    process.stdout.write(
      `  ${label} round ${String(i).padStart(2)} ${signal.padEnd(7)} kill→synced ${fmt(done - killedAt)}  spawn→synced ${fmt(done - spawnedAt)}  listen→synced ${fmt(done - listeningAt)}  ${recovered} recovered / ${snapshots} snapshot\n`,
    );
  }

  producing = false;
  await producer;
  client.disconnect();
  await stopServer(server, 'SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
  return results;
}

function report(label: string, results: Round[]): void {
  console.log(`\n${label}`);
  console.log(`  ${'subset'.padEnd(10)} ${'measure'.padEnd(14)} ${'median'.padStart(9)} ${'p90'.padStart(9)} ${'max'.padStart(9)}`);
  for (const subset of ['all', 'SIGTERM', 'SIGKILL'] as const) {
    const rows = results.filter((r) => subset === 'all' || r.signal === subset);
    for (const [name, pick] of [
      ['kill→synced', (r: Round) => r.fromKillMs],
      ['spawn→synced', (r: Round) => r.fromSpawnMs],
      ['listen→synced', (r: Round) => r.fromListenMs],
    ] as const) {
      const sorted = rows.map(pick).sort((a, b) => a - b);
      console.log(`  ${subset.padEnd(10)} ${name.padEnd(14)} ${fmt(percentile(sorted, 50))} ${fmt(percentile(sorted, 90))} ${fmt(sorted.at(-1)!)}`);
    }
  }
  const recovered = results.reduce((sum, r) => sum + r.recovered, 0);
  const snapshots = results.reduce((sum, r) => sum + r.snapshots, 0);
  console.log(`  stream syncs: ${recovered} recovered, ${snapshots} from a snapshot (${results.length} rounds × ${STREAMS.length} streams)`);
}

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const rounds = Number(values.rounds);
const honest = await run('default backoff', undefined, rounds);
// Flat 100 ms: the default 10 attempts would run out during the server's start-up.
const floor = await run('100 ms backoff', { delaysMs: [100], jitter: 0.2 }, rounds, 1000);
report('SDK default backoff (1 s, 2 s, 4 s … ±20%)', honest);
report('flat 100 ms backoff ±20% (the floor)', floor);
